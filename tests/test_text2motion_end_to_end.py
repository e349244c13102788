"""Text-to-motion through Hydra: fast_dev_run train + generate for each network variant and text encoder."""

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from conftest import compose_config
from motiondiff.core.errors import UserError
from motiondiff.data.formats.bvh import load_bvh
from motiondiff.data.procedural.text_motion import dataset_name, write_procedural_dataset
from motiondiff.generation import run as generate
from motiondiff.runs import train
from test_text_encoders import write_tiny_clip

NUM_MOTIONS = 40
TINY = ["network.latent_dim=32", "network.num_layers=1", "network.num_heads=4", "dataset.batch_size=8"]
FAST = ["+trainer.fast_dev_run=true", "sampler.num_steps=3", "generate_after_training.num_samples=1"]


@pytest.fixture(scope="module")
def data_dir(procedural_data_dir) -> Path:
    """The session's data directory holding one small procedural dataset (and the embedding caches)."""
    directory = procedural_data_dir
    write_procedural_dataset(directory / dataset_name(NUM_MOTIONS, 0), num_motions=NUM_MOTIONS, seed=0)
    return directory


def train_text_run(run_dir: Path, data_dir: Path, *overrides) -> dict:
    """A fast_dev_run of experiment=text2motion on the small procedural dataset."""
    cfg = compose_config(
        "train",
        run_dir,
        [
            "experiment=text2motion",
            f"paths.data_dir={data_dir}",
            f"dataset.procedural.num_motions={NUM_MOTIONS}",
            *TINY,
            *FAST,
            *overrides,
        ],
    )
    return train.run(cfg)


@pytest.fixture(scope="module")
def adaln_run(tmp_path_factory, data_dir) -> dict:
    return train_text_run(tmp_path_factory.mktemp("adaln"), data_dir, "network=adaln")


def test_train_writes_checkpoint_and_prompt_videos(adaln_run):
    final = adaln_run["run_dir"] / "generations" / "final"
    summary = json.loads((final / "generation.json").read_text())
    assert [s["prompt"] for s in summary["samples"]][0] == "a person walks forward then waves with the right hand"
    joints = np.load(final / "sample_00.npy")
    assert joints.ndim == 3 and joints.shape[1:] == (22, 3) and np.isfinite(joints).all()
    assert iio.imread(final / "sample_00.mp4").shape[0] == joints.shape[0]
    assert (final / "grid.mp4").is_file()


def test_generate_with_prompt_length_and_guidance(adaln_run, tmp_path):
    out = tmp_path / "gen"
    cfg = compose_config(
        "generate",
        out,
        [
            f"run_dir={adaln_run['run_dir']}",
            "prompt=a person jumps twice",
            "length=60",
            "num_samples=2",
            "guidance_weight=3",
            "sampler=ddim",
            "sampler.num_steps=3",
        ],
    )
    generate.run(cfg)
    summary = json.loads((out / "generation.json").read_text())
    assert summary["guidance_weight"] == 3 and [s["length"] for s in summary["samples"]] == [60, 60]
    assert np.load(out / "sample_01.npy").shape == (60, 22, 3)
    assert iio.imread(out / "sample_01.mp4").shape[0] == 60
    with pytest.raises(UserError, match="never overwritten"):
        generate.run(cfg)


def test_generate_writes_a_bvh_beside_each_sample_and_records_the_skeleton(adaln_run, tmp_path):
    out = tmp_path / "gen"
    overrides = [f"run_dir={adaln_run['run_dir']}", "prompt=a person jumps", "length=30", "num_samples=2"]
    cfg = compose_config(
        "generate", out, [*overrides, "render=false", "sampler=ddim", "sampler.num_steps=2", "export=bvh"]
    )
    generate.run(cfg)
    summary = json.loads((out / "generation.json").read_text())
    assert summary["skeleton"]["joint_names"][:2] == ["pelvis", "left_hip"] and summary["skeleton"]["fps"] == 20
    clip = load_bvh(out / "sample_01.bvh")
    assert clip.fps == 20 and clip.num_frames == 30 and clip.skeleton.names[:2] == ("pelvis", "left_hip")
    exported = json.loads((out / "export.json").read_text())
    assert [m["bvh"] for m in exported["motions"]] == ["sample_00.bvh", "sample_01.bvh"]
    assert all(m["max_error_m"] <= 0.01 + 2 * m["bone_drift"] for m in exported["motions"])  # drift-limited

    for name, bad, message in (
        ("smpl", ["export=smpl"], "no SMPL body model was given: download SMPL"),
        ("order", ["export=bvh", "export.order=XYY"], "Unknown Euler order 'XYY'"),
        ("map", ["export=bvh", f"export.skeleton={write_tiny_bvh(tmp_path)}"], "is not a human skeleton"),
    ):
        with pytest.raises(UserError, match=message):
            generate.run(compose_config("generate", tmp_path / name, [*overrides, *bad]))
        assert not (tmp_path / name).exists(), "export options are checked before anything is generated"


def write_tiny_bvh(folder: Path) -> Path:
    """A two-joint BVH that no joint map fits."""
    path = folder / "tiny.bvh"
    path.write_text(
        "HIERARCHY\nROOT a\n{\n OFFSET 0 0 0\n CHANNELS 3 Zrotation Xrotation Yrotation\n"
        " JOINT b\n {\n  OFFSET 0 1 0\n  CHANNELS 3 Zrotation Xrotation Yrotation\n"
        "  End Site\n  {\n   OFFSET 0 1 0\n  }\n }\n}\nMOTION\nFrames: 1\nFrame Time: 0.05\n0 0 0 0 0 0\n"
    )
    return path


def test_generate_from_a_prompts_file_draws_lengths_when_not_given(adaln_run, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a person kicks with the left leg#50\n\na person squats\n")
    out = tmp_path / "gen"
    cfg = compose_config(
        "generate",
        out,
        [
            f"run_dir={adaln_run['run_dir']}",
            f"prompts_file={prompts}",
            "num_samples=1",
            "render=false",
            "sampler=ddim",
            "sampler.num_steps=2",
        ],
    )
    generate.run(cfg)
    samples = json.loads((out / "generation.json").read_text())["samples"]
    assert [s["prompt"] for s in samples] == ["a person kicks with the left leg", "a person squats"]
    assert samples[0]["length"] == 50 and 40 <= samples[1]["length"] <= 196


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["prompt= "], "empty"),
        (["prompt=a person jumps", "length=500"], "length=500"),
        (["prompt=a person jumps", "guidance_weight=-1"], "guidance_weight"),
        ([], "no prompt"),
        (["prompt=" + "jump " * 300], "tokens"),
    ],
)
def test_bad_generation_requests_are_clear_errors(adaln_run, tmp_path, overrides, message):
    cfg = compose_config("generate", tmp_path / "gen", [f"run_dir={adaln_run['run_dir']}", "render=false", *overrides])
    with pytest.raises(UserError, match=message):
        generate.run(cfg)


@pytest.mark.parametrize("network", ["incontext", "cross_attention"])
def test_other_variants_train_and_generate(tmp_path, data_dir, network):
    result = train_text_run(tmp_path / "run", data_dir, f"network={network}")
    joints = np.load(result["run_dir"] / "generations" / "final" / "sample_03.npy")
    assert joints.shape[1:] == (22, 3) and np.isfinite(joints).all()


def test_clip_text_encoder_trains_and_generates(tmp_path, data_dir):
    clip = write_tiny_clip(tmp_path / "clip")
    result = train_text_run(
        tmp_path / "run",
        data_dir,
        "network=cross_attention",
        "text_encoder=clip",
        f"text_encoder.model={clip}",
        "generate_after_training.prompts=[jumps]",
    )  # tiny vocabulary, 24 tokens
    assert (result["run_dir"] / "generations" / "final" / "sample_00.npy").is_file()


def test_precomputed_text_features_train_and_refuse_new_prompts(tmp_path, data_dir):
    root = data_dir / dataset_name(NUM_MOTIONS, 0)  # the shared folder may hold other sizes too
    features = tmp_path / "features"
    features.mkdir()
    rng = np.random.default_rng(0)
    for text_file in (root / "texts").glob("*.txt"):
        lines = [line for line in text_file.read_text().splitlines() if line.strip()]
        np.save(features / f"{text_file.stem}.npy", rng.normal(size=(len(lines), 16)).astype(np.float32))
    overrides = [
        "text_encoder=precomputed",
        f"text_encoder.directory={features}",
        "generate_after_training.num_samples=0",
    ]
    result = train_text_run(tmp_path / "run", data_dir, *overrides)
    assert (result["run_dir"] / "checkpoints" / "last.ckpt").is_file()
    cfg = compose_config("generate", tmp_path / "gen", [f"run_dir={result['run_dir']}", "prompt=a person jumps"])
    with pytest.raises(UserError, match="precomputed"):
        generate.run(cfg)
