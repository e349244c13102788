"""Training faults and untrusted files: non-finite steps are skipped and counted, a run of them stops with
the last good checkpoint intact, checkpoints are written atomically, and files carrying pickled code are
refused without running it."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import CONFIG_DIR, TINY_NETWORK, compose_config
from motiondiff.cli.preflight import preflight
from motiondiff.core.errors import UserError
from motiondiff.data.dance_windows import load_dance_sequence
from motiondiff.evaluation import run as evaluate
from motiondiff.generation import run as generate
from motiondiff.runs import train
from motiondiff.runs.provenance import file_sha256
from motiondiff.text.cache import EmbeddingTable
from motiondiff.training.checkpoint_io import AtomicCheckpointIO, load_checkpoint
from motiondiff.training.diffusion_module import MotionDiffusion
from motiondiff.training.faults import SkipNonFiniteSteps

QUICK = [
    "experiment=dance2d",
    *TINY_NETWORK,
    "generate_after_training.num_samples=0",
    "module.sample_every_n_epochs=1000",
    "trainer.check_val_every_n_epoch=1",
    "trainer.max_epochs=-1",
    "~callbacks.progress_bar",
]


class CreatesFile:
    """An object whose unpickling runs a shell command that creates `path` (what a malicious file carries)."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return os.system, (f"touch '{self.path}'",)


@pytest.fixture(scope="module")
def dance_run(tmp_path_factory):
    cfg = compose_config("train", tmp_path_factory.mktemp("run"), [*QUICK, "trainer.max_steps=3"])
    return train.run(cfg)["run_dir"]


def poison_steps(monkeypatch, steps, seen: dict):
    """Make the training loss NaN at the given global steps; remember the module and its weights at the first one."""
    original = MotionDiffusion.training_step

    def training_step(self, batch, batch_idx):
        loss = original(self, batch, batch_idx)
        if self.global_step in steps:
            seen.setdefault("weights", {k: v.clone() for k, v in self.network.state_dict().items()})
            seen["module"] = self
            return loss * float("nan")
        return loss

    monkeypatch.setattr(MotionDiffusion, "training_step", training_step)


# ------------------------------------------------------------ untrusted files


def test_the_malicious_fixture_would_run_code_if_unpickled(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": CreatesFile(marker)}, path)
    torch.load(path, weights_only=False)  # what a plain torch.load would do
    assert marker.exists()


def test_a_checkpoint_carrying_code_is_refused_by_generate_resume_and_evaluate(tmp_path, dance_run):
    marker, run = tmp_path / "pwned", tmp_path / "run"  # a run directory whose last.ckpt carries code
    evil = run / "checkpoints" / "last.ckpt"
    evil.parent.mkdir(parents=True)
    (run / "config.yaml").write_text((dance_run / "config.yaml").read_text())
    torch.save({"state_dict": {}, "hyper_parameters": {"data_info": {}}, "payload": CreatesFile(marker)}, evil)
    with pytest.raises(UserError, match="holds objects other than tensors and plain data, so it was not loaded"):
        generate.run(compose_config("generate", tmp_path / "g", [f"run_dir={run}", "render=false"]))
    with pytest.raises(UserError, match="not loaded"):
        train.run(compose_config("train", tmp_path / "t", [*QUICK, "trainer.max_steps=1", f"ckpt_path={evil}"]))
    with pytest.raises(UserError, match="not loaded"):
        AtomicCheckpointIO().load_checkpoint(evil)
    with pytest.raises(UserError, match="not loaded"):
        from motiondiff.evaluation.evaluators.trained import load_trained_evaluator

        load_trained_evaluator(str(run))
    assert not marker.exists()


def test_npy_and_npz_files_carrying_code_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    npy = tmp_path / "keypoints.npy"
    np.save(npy, np.array([CreatesFile(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match="not a plain numeric .npy array"):
        load_dance_sequence(str(npy), 30.0, "auto", {}, {})
    npz = tmp_path / "text-minilm.npz"
    np.savez(npz, name=np.array("x"), keys=np.array([CreatesFile(marker)], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle=False"):
        EmbeddingTable.load(npz)
    assert not marker.exists()


# ------------------------------------------------------------ checkpoints are written atomically


def test_a_failed_save_leaves_the_previous_checkpoint_and_no_partial_file(tmp_path, monkeypatch):
    io, path = AtomicCheckpointIO(), tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "global_step": 1}, path)
    before = path.read_bytes()

    def disk_full(obj, file, *args, **kwargs):
        file.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "global_step": 2}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]
    assert load_checkpoint(path)["global_step"] == 1


def test_training_writes_its_checkpoints_through_the_atomic_writer(dance_run):
    checkpoint = load_checkpoint(dance_run / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 3 and not list((dance_run / "checkpoints").glob(".*tmp*"))
    assert any("SkipNonFiniteSteps" in key for key in checkpoint["callbacks"])


# ------------------------------------------------------------ non-finite steps


def test_isolated_nonfinite_steps_are_skipped_counted_and_change_nothing(tmp_path, monkeypatch):
    seen: dict = {}
    poison_steps(monkeypatch, {2}, seen)
    result = train.run(compose_config("train", tmp_path, [*QUICK, "trainer.max_steps=5"]))
    assert result["metrics"]["train/skipped_steps"] == 1.0
    assert all(torch.isfinite(p).all() for p in result["module"].parameters())
    assert load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["global_step"] == 5


def test_nonfinite_steps_in_a_row_stop_the_run_and_keep_the_last_good_checkpoint(tmp_path, monkeypatch):
    seen: dict = {}
    first_bad = 8
    poison_steps(monkeypatch, set(range(first_bad, 1000)), seen)
    with pytest.raises(
        UserError,
        match=r"NaN/infinite for 5 steps in a row .*lower optimizer.lr .*last good checkpoint is '.*last.ckpt'",
    ):
        train.run(compose_config("train", tmp_path, [*QUICK, "trainer.max_steps=40"]))
    for name, value in seen["module"].network.state_dict().items():  # the skipped steps changed no weight
        torch.testing.assert_close(value, seen["weights"][name], rtol=0, atol=0)
    checkpoint = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] > 0  # saved during training; its weights are the last good ones
    for name, value in seen["weights"].items():
        torch.testing.assert_close(checkpoint["state_dict"][f"network.{name}"], value, rtol=0, atol=0)
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())


def test_the_skip_limit_is_checked():
    with pytest.raises(UserError, match="max_in_a_row=0 must be a positive integer"):
        SkipNonFiniteSteps(max_in_a_row=0)


# ------------------------------------------------------------ impossible combinations, refused before data


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["sampler=ddim", "sampler.num_steps=2000"], r"sampler.num_steps=2000 exceeds the 1000 diffusion steps"),
        (["val_sampler.num_steps=1500"], r"val_sampler.num_steps=1500 exceeds"),
        (["module.guidance_weight=3"], r"module.guidance_weight=3 needs a text-conditioned model, but network=PUNet"),
        (
            ["network=cross_attention", "dataset=text_motion", "text_encoder=precomputed", "text_encoder.tokens=false"],
            r"network=cross_attention attends to the caption's token embeddings, but text_encoder.tokens=false",
        ),
        (["dataset.source=procedural", "dataset.window=1000"], r"900 frames, too short for windows of 1000 frames"),
    ],
)
def test_impossible_training_combinations_are_refused_before_the_data_is_read(tmp_path, overrides, message):
    missing = (
        []
        if "dataset.source=procedural" in overrides or "dataset=text_motion" in overrides
        else ["dataset.source=/no/such.npy"]
    )
    cfg = compose_config("train", tmp_path, ["experiment=dance2d", *overrides, *missing])
    with pytest.raises(UserError, match=message):
        train.run(cfg)
    assert not (tmp_path / "config.yaml").exists()  # refused before the run started


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["guidance_weight=3"],
            r"guidance_weight=3 needs a text-conditioned run, but this run's network \(PUNet\) is unconditional",
        ),
        (["sampler=ddim", "sampler.num_steps=5000"], r"sampler.num_steps=5000 exceeds the 1000 diffusion steps"),
    ],
)
def test_impossible_generation_options_are_refused(tmp_path, dance_run, overrides, message):
    for task, command in ((generate, "generate"), (evaluate, "evaluate")):
        cfg = compose_config(command, tmp_path / command, [f"run_dir={dance_run}", *overrides])
        with pytest.raises(UserError, match=message):
            task.run(cfg)
    for command in ("generate", "evaluate", "edit", "app", "nfe_curve"):  # the run as it is: accepted by every command
        preflight(
            CONFIG_DIR, command, [f"run_dir={dance_run}", *([f"source={dance_run}"] if command == "edit" else [])]
        )
    commands = ("generate", "evaluate", "edit") + (() if "sampler=ddim" in overrides else ("app",))  # app: no sampler
    for command in commands:  # and before Lightning is imported, from the run's saved config
        source = [f"source={dance_run}"] if command == "edit" else []  # edit's input must exist (checked first)
        with pytest.raises(UserError, match=message):
            preflight(CONFIG_DIR, command, [f"run_dir={dance_run}", *source, *overrides])


# ------------------------------------------------------------ outputs say where they came from


def test_generations_and_evaluations_record_the_config_and_checkpoint_hash(tmp_path, dance_run):
    import json

    from omegaconf import OmegaConf

    generate.run(
        compose_config(
            "generate",
            tmp_path / "g",
            [
                f"run_dir={dance_run}",
                "num_samples=1",
                "sampler=ddim",
                "sampler.num_steps=2",
                "render=false",
                "chain_windows=0",
            ],
        )
    )
    evaluate.run(
        compose_config(
            "evaluate",
            tmp_path / "e",
            [
                f"run_dir={dance_run}",
                "clips=2",
                "duration_factor=0.1",
                "replications=1",
                "sampler=ddim",
                "sampler.num_steps=2",
            ],
        )
    )
    checkpoint = dance_run / "checkpoints" / "last.ckpt"
    for out in (tmp_path / "g", tmp_path / "e"):
        source = json.loads((out / "source.json").read_text())
        assert source["checkpoint"] == str(checkpoint) and source["checkpoint_sha256"] == file_sha256(checkpoint)
        assert OmegaConf.load(out / "run_config.yaml") == OmegaConf.load(dance_run / "config.yaml")
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["settings"]["checkpoint_sha256"] == file_sha256(
        checkpoint
    )
    with pytest.raises(UserError, match="already exists: evaluations never overwrite"):
        evaluate.run(compose_config("evaluate", tmp_path / "e", [f"run_dir={dance_run}", "replications=1"]))
