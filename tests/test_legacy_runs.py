"""Runs written by earlier versions of motiondiff still load: their saved configs name classes where they were
and their checkpoints carry the data description as a plain dict.

The fixtures were written by the version before the package was reorganised (commit c456e89): each run's
config.yaml as saved, and its checkpoint's plain contents (hyper-parameters, and the name, shape and dtype of
every tensor of its state dict). The test rebuilds a checkpoint of that layout with random weights.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from conftest import compose_config, shared_path
from motiondiff.core.errors import UserError
from motiondiff.evaluation.evaluators.trained import load_trained_evaluator
from motiondiff.generation import run as generate
from motiondiff.runs.directories import load_run_config
from motiondiff.training.contrastive_module import MotionTextContrastive
from motiondiff.training.diffusion_module import MotionDiffusion
from motiondiff.training.distill_module import ConsistencyDistillation

FIXTURES = Path(__file__).parent / "fixtures" / "legacy_runs"


def legacy_run(name: str, where: Path) -> Path:
    """A run directory as the old version left it: its config.yaml and a checkpoint of the recorded layout."""
    run_dir = where / name
    (run_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(FIXTURES / name / "config.yaml", run_dir / "config.yaml")
    record = json.loads((FIXTURES / name / "checkpoint.json").read_text())
    generator = torch.Generator().manual_seed(0)
    state_dict = {}
    for key, (shape, dtype) in record["state_dict"].items():
        dtype = getattr(torch, dtype)
        if dtype.is_floating_point:
            state_dict[key] = 0.5 + 0.1 * torch.rand(shape, generator=generator, dtype=dtype)
        else:
            state_dict[key] = torch.zeros(shape, dtype=dtype)
    checkpoint = {key: {} for key in record["top_level_keys"]}
    checkpoint.update(epoch=0, global_step=1, state_dict=state_dict, hyper_parameters=record["hyper_parameters"])
    torch.save(checkpoint, run_dir / "checkpoints" / "last.ckpt")
    return run_dir


def test_old_configs_name_the_moved_classes_where_they_are_now(tmp_path):
    for name in ("dance", "text", "evaluator"):
        old = (FIXTURES / name / "config.yaml").read_text()
        assert "motiondiff.training.module." in old or "motiondiff.training.evaluator_module." in old
        cfg = load_run_config(legacy_run(name, tmp_path))
        assert cfg.module._target_.startswith(
            ("motiondiff.training.diffusion_module.", "motiondiff.training.contrastive_module.")
        )
        assert "val_evaluator" not in cfg.module


def test_an_old_dance_run_generates(tmp_path):
    run_dir = legacy_run("dance", tmp_path)
    overrides = [
        f"run_dir={run_dir}",
        "num_samples=2",
        "sampler=ddim",
        "sampler.num_steps=3",
        "chain_windows=0",
        "render=false",
    ]
    generate.run(compose_config("generate", tmp_path / "gen", overrides))
    samples = np.load(tmp_path / "gen" / "samples.npy")
    assert samples.shape == (2, 48, 20, 2) and np.isfinite(samples).all()


def test_an_old_text_run_generates(tmp_path):
    run_dir = legacy_run("text", tmp_path)
    overrides = [
        f"run_dir={run_dir}",
        "prompt=a person jumps",
        "length=40",
        "sampler=ddim",
        "sampler.num_steps=3",
        "render=false",
    ]
    generate.run(compose_config("generate", tmp_path / "gen", overrides))
    joints = np.load(tmp_path / "gen" / "sample_00.npy")
    assert joints.shape == (40, 22, 3) and np.isfinite(joints).all()


def test_an_old_evaluator_run_loads_and_embeds(tmp_path):
    evaluator = load_trained_evaluator(str(legacy_run("evaluator", tmp_path)))
    assert isinstance(evaluator.module, MotionTextContrastive)
    recorded = json.loads((FIXTURES / "evaluator" / "checkpoint.json").read_text())["hyper_parameters"]["data_info"]
    assert evaluator.module.description.to_dict() == recorded
    motion = torch.randn(2, 40, recorded["features"])
    assert evaluator.module.embed_motion(motion, torch.ones(2, 40, dtype=torch.bool)).shape[0] == 2


@pytest.mark.parametrize("name", ["dance", "text", "evaluator"])
def test_the_data_description_round_trips_through_the_checkpoint(name):
    from motiondiff.data.info import describe_data

    saved = json.loads((FIXTURES / name / "checkpoint.json").read_text())["hyper_parameters"]["data_info"]
    assert describe_data(saved).to_dict() == saved


def test_resuming_a_transformer_run_saved_before_the_cost_options_keeps_its_network():
    from motiondiff.runs.legacy import added_option_overrides

    old = OmegaConf.create(
        {"network": {"_target_": "motiondiff.networks.conditioning.AdaLNTransformer", "dropout": 0.1}}
    )
    assert added_option_overrides(old) == [
        "network.dropout_placement=residual",
        "network.gelu=tanh",
        "network.fused_qkv=false",
        "network.attention_mask=always",
        "network.dropout_masks=torch",
        "network.fused_adaln=false",
        "network.mlp_chunk_tokens=0",
        "network.skip_padded=false",
        "network.sample_chunk_tokens=0",
    ]
    new = OmegaConf.create({"network": {**old.network, "gelu": "exact", "dropout_placement": "mlp"}})
    assert added_option_overrides(new) == [
        "network.fused_qkv=false",
        "network.attention_mask=always",
        "network.dropout_masks=torch",
        "network.fused_adaln=false",
        "network.mlp_chunk_tokens=0",
        "network.skip_padded=false",
        "network.sample_chunk_tokens=0",
    ]
    punet = OmegaConf.create({"network": {"_target_": "motiondiff.networks.punet.PUNet"}})
    assert added_option_overrides(punet) == []


@pytest.mark.parametrize("experiment", ["text2motion", "evaluator"])
def test_resuming_a_run_saved_before_the_cost_options_is_accepted_with_its_own_settings(tmp_path, experiment):
    from motiondiff.runs.directories import save_resumed_config, save_run_config
    from motiondiff.runs.legacy import OPTIONS_ADDED, added_option_overrides

    today = compose_config("train", tmp_path, [f"experiment={experiment}"])
    old = OmegaConf.create(OmegaConf.to_container(today, resolve=True))
    for group, (target, options) in OPTIONS_ADDED.items():  # as a run written before the options existed
        if str(old[group].get("_target_", "")).startswith(target):
            for key in options:
                old[group].pop(key)
    save_run_config(old, tmp_path)
    overrides = added_option_overrides(old)
    assert "optimizer.fused=false" in overrides
    assert ("network.dropout_masks=torch" in overrides) == (experiment == "text2motion")
    assert {"dataset.max_source_frames=null", "dataset.subclips=per_span"} <= set(overrides)  # every length, as before
    with pytest.raises(UserError, match=r"with (dataset.max_source_frames=200|optimizer.fused=True) where the run had"):
        save_resumed_config(today, tmp_path, step=10)  # today's cheaper options and loaders' items are not the run's
    resumed = compose_config("train", tmp_path, [f"experiment={experiment}", *overrides])
    save_resumed_config(resumed, tmp_path, step=10)  # its own settings: accepted
    assert resumed.optimizer.fused is False and resumed.dataset.max_source_frames is None


def test_resuming_a_distilled_run_whose_teacher_predates_the_cost_options_is_accepted(tmp_path):
    """A distilled run's network group is its teacher's, copied again on resume: the options are missing on both
    sides, which reads as the same earlier values (this was refused once the saved side alone was filled in)."""
    from motiondiff.runs.directories import save_resumed_config, save_run_config

    network = {"_target_": "motiondiff.networks.conditioning.InContextTransformer", "guidance_embedding": True}
    optimizer = {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-3, "fused": True}
    cfg = OmegaConf.create({"network": network, "optimizer": optimizer, "trainer": {"max_steps": 10}})
    save_run_config(cfg, tmp_path)
    save_resumed_config(cfg, tmp_path, step=5)
    changed = OmegaConf.create({**cfg, "network": {**network, "gelu": "exact"}})
    with pytest.raises(UserError, match="network.gelu='exact' where the run had 'tanh'"):
        save_resumed_config(changed, tmp_path, step=5)


def test_resuming_a_run_saved_before_options_at_their_class_defaults_is_accepted(tmp_path):
    """Keys added since a run was saved, at their class's default (the value the run was built with), are no change;
    a key whose config value is not its class's default still is."""
    from motiondiff.runs.directories import save_resumed_config, save_run_config
    from motiondiff.runs.legacy import is_constructor_default

    today = compose_config("train", tmp_path, ["experiment=dance2d"])
    old = OmegaConf.create(OmegaConf.to_container(today, resolve=True))
    for group, key in (("network", "context"), ("module", "context_prob"), ("loss", "velocity_weight")):
        old[group].pop(key)  # added at later stops; their configs hold the class defaults
    save_run_config(old, tmp_path)
    save_resumed_config(today, tmp_path, step=10)
    old.network.pop("channel_mults")  # dance2d's [1, 2] is not PUNet's default (1, 2, 4): a run without it differs
    save_run_config(old, tmp_path / "other")
    with pytest.raises(UserError, match=r"network.channel_mults=\[1, 2\] where the run had None"):
        save_resumed_config(today, tmp_path / "other", step=10)
    # The default 0.0, excused as a number above, is not excused as a bool (False == 0.0 in Python).
    assert not is_constructor_default(
        OmegaConf.create({"module": {**today.module, "context_prob": False}}), "module.context_prob"
    )


def test_resuming_a_3d_dance_saved_before_the_foot_term_default_keeps_its_weight(tmp_path):
    from motiondiff.runs.directories import save_resumed_config, save_run_config
    from motiondiff.runs.legacy import added_option_overrides

    source = f"dataset.source={shared_path('bvh', 'Walk-In-Circle.bvh')}"
    old = compose_config("train", tmp_path, ["experiment=dance3d", source, "module.foot_contact_weight=0.0"])
    save_run_config(old, tmp_path)  # as a run trained before `auto` saved it
    assert added_option_overrides(old) == ["module.foot_contact_weight=0.0"]
    resumed = compose_config("train", tmp_path, ["experiment=dance3d", source, *added_option_overrides(old)])
    save_resumed_config(resumed, tmp_path, step=10)  # its own settings: accepted
    today = compose_config("train", tmp_path, ["experiment=dance3d", source])
    assert added_option_overrides(today) == []  # `auto` is resolved again from the same data
    with pytest.raises(UserError, match="module.foot_contact_weight='auto' where the run had 0.0"):
        save_resumed_config(today, tmp_path, step=10)


def test_the_added_options_table_holds_the_class_defaults():
    """runs/legacy.OPTIONS_ADDED is the one table of the cost options (bench.py reads it): its values must be the
    constructors' defaults, which runs saved before the options trained with."""
    import inspect

    from motiondiff.networks.transformer import MotionTransformer
    from motiondiff.runs.legacy import OPTIONS_ADDED

    parameters = inspect.signature(MotionTransformer.__init__).parameters
    _, options = OPTIONS_ADDED["network"]
    assert {key: parameters[key].default for key in options} == options
    _, module = OPTIONS_ADDED["module"]  # ConsistencyDistillation passes foot_contact_weight on to MotionDiffusion
    assert module == {
        "foot_contact_weight": inspect.signature(MotionDiffusion.__init__).parameters["foot_contact_weight"].default,
        "target_dropout": inspect.signature(ConsistencyDistillation.__init__).parameters["target_dropout"].default,
    }
    _, optimizer = OPTIONS_ADDED["optimizer"]
    # torch's default None is no fused kernel: the per-tensor loop on the CPU, as False
    assert optimizer == {"fused": False} and inspect.signature(torch.optim.AdamW).parameters["fused"].default is None
