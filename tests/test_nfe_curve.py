"""`nfe_curve`: a tiny dance run through the command, NFE counted as the network's real calls, bad options refused."""

import csv
import json
import subprocess
import sys

import pytest
import torch

from conftest import CONFIG_DIR, ROOT, TINY_NETWORK, compose_config
from motiondiff.cli.preflight import preflight
from motiondiff.core.errors import UserError
from motiondiff.diffusion.denoiser import Denoiser
from motiondiff.diffusion.samplers import DDIMSampler, DPMSolverSampler, KarrasSampler
from motiondiff.diffusion.schedule import LinearSchedule
from motiondiff.evaluation import nfe_curve
from motiondiff.evaluation.nfe_curve import CountingSampler
from motiondiff.networks.punet import PUNet
from motiondiff.runs import train

QUICK = ["skip_ddpm=true", "replications=2", "clips=2", "duration_factor=0.1", "ddim_reference_steps=3"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    overrides = ["experiment=dance2d", "+trainer.fast_dev_run=true", "generate_after_training.num_samples=0"]
    train.run(compose_config("train", run_dir, [*overrides, *TINY_NETWORK]))
    return run_dir


def count_network_calls(patch: pytest.MonkeyPatch) -> list:
    """Every call of the network's forward (the EMA copy samples) from now on, as its batch size."""
    calls, forward = [], PUNet.forward

    def counted(self, x, *args, **kwargs):
        calls.append(x.shape[0])
        return forward(self, x, *args, **kwargs)

    patch.setattr(PUNet, "forward", counted)
    return calls


@pytest.fixture
def network_calls(monkeypatch):
    return count_network_calls(monkeypatch)


@pytest.fixture(scope="module")
def curve(trained_run, tmp_path_factory):
    """The command on the tiny run: ddim and karras_heun at 2 and 3 steps, DDIM-3 as the DDIM reference."""
    out = tmp_path_factory.mktemp("curve")
    overrides = [f"run_dir={trained_run}", "samplers=[ddim,karras_heun]", "steps=[3,2]", *QUICK]
    with pytest.MonkeyPatch.context() as patch:
        calls = count_network_calls(patch)
        result = nfe_curve.run(compose_config("nfe_curve", out, overrides))
    return out, result, calls


def test_the_table_and_the_plot_are_written(curve):
    out, result, _ = curve
    for name in ("nfe_curve.json", "nfe_curve.md", "nfe_curve.csv", "nfe_curve.png", "points.jsonl", "source.json"):
        assert (out / name).is_file(), name
    record = json.loads((out / "nfe_curve.json").read_text())
    labels = [(p["kind"], p["label"], p["steps"]) for p in record["points"]]
    assert labels == [
        ("curve", "ddim", 2),
        ("curve", "ddim", 3),
        ("curve", "karras_heun", 2),
        ("curve", "karras_heun", 3),
        ("reference", "ddim-3", 3),
    ]
    assert record["settings"]["metrics"] == ["coverage", "jitter_ratio"] and record["settings"]["replications"] == 2
    assert all(len(p["metrics"]["coverage"]["values"]) == 2 for p in record["points"])
    rows = list(csv.DictReader((out / "nfe_curve.csv").open()))
    assert [row["kind"] for row in rows] == ["curve"] * 4 + ["reference", "data", "target", "target"]
    text = (out / "nfe_curve.md").read_text()
    assert (
        "| curve | karras_heun | 3 | 5 |" in text and "## Targets" in text and "not measured (skip_ddpm=true)" in text
    )
    assert [goal["met"] for goal in result["targets"]][0] is None  # DDPM skipped: the first target not measured
    assert (out / "nfe_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_nfe_is_the_real_network_calls_per_sampling_call(curve):
    _, result, calls = curve
    points = result["points"]
    assert [p["nfe"] for p in points] == [2, 3, 3, 5, 3]  # Heun: 2 calls a step, the last step Euler
    assert all(p["nfe"] == p["nfe_formula"] and p["nfe_per_call"] == [p["nfe"]] for p in points)
    measured = points[:4]  # the DDIM-3 reference is the ddim point at 3 steps, not sampled again
    assert points[4]["network_calls"] == points[1]["network_calls"]
    assert sum(p["network_calls"] for p in measured) == len(calls)  # every real forward call, none more
    windows = result["settings"]["evaluation"]["chained_windows"]
    assert result["settings"]["evaluation"]["chain_sampling"] == "joint" and windows > 1
    assert all(p["sampling_calls"] == 2 and p["batch_factor"] == 1.0 for p in measured)  # a call a replication
    assert set(calls) == {2 * windows}  # all windows of the two clips in one batch


def test_an_existing_curve_is_never_overwritten(curve, trained_run, network_calls):
    out, _, _ = curve
    overrides = [f"run_dir={trained_run}", "samplers=[ddim]", "steps=[2]", *QUICK]
    with pytest.raises(UserError, match="never overwrite"):
        nfe_curve.run(compose_config("nfe_curve", out, overrides))
    assert network_calls == []


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["samplers=[ddim,heun]"], "'heun' is not a sampler; use one of .*ddim, dpmsolver, karras"),
        (["samplers=[ddpm]"], "ddpm takes every step of the schedule"),
        (["samplers=[ddim,ddim]"], "repeated entry"),
        (["samplers=[{name:ddim,rho:7}]"], "sets rho, which ddim does not take here; use eta, progress"),
        (["samplers=[{name:ddim,eta:-1}]"], "sampler.eta=-1 must be from 0 to 1"),
        (["samplers=[{name:karras_euler,rho:0}]"], "sampler.rho=0 must be > 0"),
        (["steps=[0,5]"], "steps=0 must be a positive integer"),
        (["steps=[2.5]"], "steps=2.5 must be a positive integer"),
        (["steps=5"], "must be a list of positive integers"),
        (["steps=[5,2000]"], "exceeds the 1000 diffusion steps"),
    ],
)
def test_bad_options_are_refused_before_any_sampling(trained_run, tmp_path, network_calls, overrides, message):
    cfg = compose_config("nfe_curve", tmp_path / "out", [f"run_dir={trained_run}", *QUICK, *overrides])
    with pytest.raises(UserError, match=message.replace("[", r"\[")):
        nfe_curve.run(cfg)
    assert network_calls == [] and not (tmp_path / "out").exists()


def test_a_run_without_a_checkpoint_is_refused(trained_run, tmp_path, network_calls):
    run_dir = tmp_path / "unfinished"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text((trained_run / "config.yaml").read_text())
    with pytest.raises(UserError, match="has no last checkpoint"):
        nfe_curve.run(compose_config("nfe_curve", tmp_path / "out", [f"run_dir={run_dir}", *QUICK]))
    assert network_calls == []


def test_the_run_s_own_config_is_read_before_anything_is_imported(trained_run):
    """cli.preflight: a list sweep of samplers composes (its first job is a list, not a string); a step count beyond
    the run's schedule and guidance on a dance run are refused from the run's config.yaml."""
    argv = preflight(CONFIG_DIR, "nfe_curve", ["-m", f"run_dir={trained_run}", "samplers=[ddim,dpmsolver],[karras]"])
    assert "samplers=[ddim,dpmsolver],[karras]" in argv
    with pytest.raises(UserError, match="steps=2000 exceeds the 1000 diffusion steps the run was trained with"):
        preflight(CONFIG_DIR, "nfe_curve", [f"run_dir={trained_run}", "steps=[5,2000]"])
    with pytest.raises(UserError, match="guidance_weight=3 needs a text-conditioned run"):
        preflight(CONFIG_DIR, "nfe_curve", [f"ckpt_path={trained_run}/checkpoints/last.ckpt", "guidance_weight=3"])


ANSWER = """
import sys
from motiondiff.cli import nfe_curve
sys.argv = ["motiondiff.nfe_curve", *sys.argv[1:]]
try:
    nfe_curve.main()
except SystemExit as exit:
    print(exit.code, [name for name in ("lightning", "motiondiff.evaluation.nfe_curve") if name in sys.modules])
"""


@pytest.mark.parametrize(
    "argv, message",
    [
        (["samplers=[ddim,fast]"], "samplers: 'fast' is not a sampler; use one of"),
        (["steps=[5,0]"], "steps=0 must be a positive integer"),
    ],
)
def test_the_command_line_says_one_sentence_before_lightning_is_imported(trained_run, tmp_path, argv, message):
    """cli.preflight checks the samplers and step counts (evaluation.nfe_plan): about 3 s instead of 13."""
    out = tmp_path / "cli"
    command = [sys.executable, "-c", ANSWER, f"run_dir={trained_run}", *argv, f"hydra.run.dir={out}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = result.stderr.strip().splitlines()
    assert result.stdout.strip() == "2 []", result.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), lines
    assert not out.exists()  # nothing was made


@pytest.mark.parametrize("sampler, nfe", [(DDIMSampler(4), 4), (DPMSolverSampler(4), 4), (KarrasSampler(4, "heun"), 7)])
def test_a_guided_call_is_one_nfe_on_a_doubled_batch(sampler, nfe):
    batches = []

    def network(x, t, cond=None, mask=None):
        batches.append(x.shape[0])
        return torch.zeros_like(x)

    denoiser = Denoiser(network, LinearSchedule(100), "epsilon", cond={"text": torch.zeros(3, 8)}, guidance_weight=2.5)
    counting = CountingSampler(sampler)
    counting.sample(denoiser, LinearSchedule(100), torch.randn(3, 5, 2))
    tally = counting.tally()
    assert tally["nfe"] == nfe == len(batches) and set(batches) == {6} and tally["batch_factor"] == 2.0
