"""Every config group composes and instantiates; bad names are refused with the valid options."""

import dataclasses
import subprocess
import sys

import pytest
from hydra.utils import instantiate

from conftest import CONFIG_DIR, ROOT, compose_config
from motiondiff.core.errors import UserError
from motiondiff.data.info import KeypointData, TextMotionData
from motiondiff.training.build import build_module

GROUP_OPTIONS = {
    group: sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))
    for group in [
        "module",
        "network",
        "schedule",
        "loss",
        "sampler",
        "optimizer",
        "lr_scheduler",
        "trainer",
        "experiment",
        "text_encoder",
    ]
}
SKELETON = dict(num_joints=20, joint_names=[f"j{i}" for i in range(20)], parents=[-1, *range(19)], fps=30.0)
DATA_INFO = KeypointData(
    features=40, dims=2, window=48, bone_lengths=[1.0] * 19, feature_abs_max=2.0, source="test", **SKELETON
)
TEXT_DATA_INFO = TextMotionData(
    features=40,
    dims=3,
    feature_abs_max=2.0,
    source="test",
    representation="humanml3d",
    layout="humanml3d",
    max_frames=60,
    min_frames=10,
    text_dim=8,
    text_encoder="fake",
    text_tokens=8,
    dataset_id="fake",
    num_train=4,
    num_val=2,
    length_distribution=[60],
    **SKELETON,
)
TEXT_NETWORKS = ("incontext", "adaln", "cross_attention", "tmr")
# Options that only make sense together: the evaluator module and its network.
TEACHERS = ["module.clip_x0=1.2", "module.guidance_weight=2.5"]  # null in the config: runs.distill copies the teacher's
COMPANIONS = {
    ("network", "tmr"): ["module=evaluator"],
    ("module", "evaluator"): ["network=tmr"],
    ("module", "distill"): TEACHERS,
    ("experiment", "distill"): TEACHERS,
}
TINY_TRANSFORMER = ["network.latent_dim=16", "network.num_layers=1", "network.num_heads=2"]


def _data_info_for(group: str, option: str) -> dict:
    """The text data description for text networks and the text experiment, else the dance one."""
    text = (group == "network" and option in TEXT_NETWORKS) or (group, option) in (
        ("experiment", "text2motion"),
        ("experiment", "evaluator"),
        ("module", "evaluator"),
    )
    return TEXT_DATA_INFO if text else DATA_INFO


@pytest.mark.parametrize("group, option", [(g, o) for g, opts in GROUP_OPTIONS.items() for o in opts])
def test_every_option_composes_and_builds(tmp_path, group, option):
    tiny = TINY_TRANSFORMER if _data_info_for(group, option) is TEXT_DATA_INFO else []
    cfg = compose_config("train", tmp_path, [f"{group}={option}", *COMPANIONS.get((group, option), []), *tiny])
    module = build_module(cfg, _data_info_for(group, option))
    assert module.data.features == 40
    if group == "sampler":
        assert type(instantiate(cfg.sampler)).__name__.lower().startswith(option)
    if group == "trainer" and option not in ("gpu", "ddp"):  # these need GPUs
        trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
        assert trainer.max_epochs == cfg.trainer.max_epochs


@pytest.mark.parametrize(
    "network, data_info, message",
    [
        ("punet", TEXT_DATA_INFO, "cannot read text"),
        ("adaln", DATA_INFO, "needs text"),
        ("tmr", TEXT_DATA_INFO, "experiment=evaluator"),
        ("adaln module=evaluator", TEXT_DATA_INFO, "network=tmr"),
        ("cross_attention", dataclasses.replace(TEXT_DATA_INFO, text_tokens=1), "hold one pooled vector per caption"),
    ],
)
def test_network_and_data_mismatch_is_one_clear_error(tmp_path, network, data_info, message):
    network, *more = network.split()
    cfg = compose_config(
        "train", tmp_path, [f"network={network}", *more, *TINY_TRANSFORMER[: 3 * (network != "punet")]]
    )
    with pytest.raises(UserError, match=message):
        build_module(cfg, data_info)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["network=punet", "+network.base_chanels=64"],
            "network.base_chanels is not an option of PUNet; its options are: .*base_channels",
        ),
        (
            ["network=adaln", "+network.ff_size=64", *TINY_TRANSFORMER],
            "network.ff_size is not an option of AdaLNTransformer; .*mlp_ratio",
        ),
        (
            ["network=cross_attention", "+network.text_token=true", *TINY_TRANSFORMER],
            "network.text_token is not .*time_conditioning",
        ),
    ],
)
def test_unknown_network_option_is_named_with_the_valid_ones(tmp_path, overrides, message):
    cfg = compose_config("train", tmp_path, overrides)
    with pytest.raises(UserError, match=message):
        build_module(cfg, DATA_INFO if "network=punet" in overrides else TEXT_DATA_INFO)


def test_train_overrides_reach_the_objects(tmp_path):
    cfg = compose_config(
        "train", tmp_path, ["experiment=dance2d", "network.base_channels=32", "sampler=ddim", "loss=x0"]
    )
    module = build_module(cfg, DATA_INFO)
    assert module.network.input.out_channels == 32
    assert module.loss.prediction == "x0"
    assert type(instantiate(cfg.sampler)).__name__ == "DDIMSampler"
    assert cfg.run_name == "dance2d-punet"


@pytest.mark.parametrize("name", ["generate", "evaluate", "render_data", "convert_bvh"])
def test_other_entry_configs_compose(tmp_path, name):
    overrides = ["run_dir=outputs/x"] if name in ("generate", "evaluate") else []
    cfg = compose_config(name, tmp_path, overrides)
    assert cfg.task_name == name


def test_unknown_group_option_lists_the_valid_ones():
    result = subprocess.run(
        [sys.executable, "-m", "motiondiff.train", "network=nosuchnet"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "nosuchnet" in result.stderr and "punet" in result.stderr
    assert "Traceback" not in result.stderr
