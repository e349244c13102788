"""`python -m motiondiff.export`: generation folders and joints .npy files -> BVH, with its record and refusals."""

import json
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import scipy.sparse as sp

from conftest import compose_config
from motiondiff.cli.app import CONFIG_DIR
from motiondiff.cli.preflight import preflight
from motiondiff.core.errors import UserError
from motiondiff.data.formats.bvh import load_bvh
from motiondiff.data.formats.smpl_params import read_smpl_npz
from motiondiff.data.kinematics.skeleton import KIT21_NAMES, SMPL22_NAMES, SMPL22_PARENTS
from motiondiff.data.procedural.actions import make_motion, sample_spec
from motiondiff.export.run import read_motions, run
from test_export_smpl import synthetic_smpl
from test_kit import kit_walk


def procedural_motions(count: int, seed: int = 0) -> list:
    """`count` procedural motions (T, 22, 3), metres, y up, 20 fps, with rigid bones."""
    rng = np.random.default_rng(seed)
    return [make_motion(sample_spec(rng), rng).astype(np.float32) for _ in range(count)]


def generation_folder(folder: Path, motions: list, skeleton: bool = True) -> Path:
    """A folder as `generate` leaves it for a text run: sample_XX.npy and generation.json."""
    folder.mkdir(parents=True)
    samples = []
    for index, motion in enumerate(motions):
        np.save(folder / f"sample_{index:02d}.npy", motion)
        samples.append({"prompt": f"motion {index}", "length": len(motion), "joints": f"sample_{index:02d}.npy"})
    summary = {"seed": 0, "samples": samples}
    if skeleton:
        summary["skeleton"] = {"joint_names": list(SMPL22_NAMES), "parents": list(SMPL22_PARENTS), "fps": 20.0}
    (folder / "generation.json").write_text(json.dumps(summary))
    return folder


def export(input_path: Path, out: Path, *overrides) -> list:
    """Run the export command's `run` as Hydra would, writing to `out`."""
    return run(compose_config("export", out, [f"input={input_path}", *overrides]))


def test_a_generation_folder_exports_one_bvh_per_sample_that_reads_back_to_its_joints(tmp_path):
    motions = procedural_motions(2)
    folder = generation_folder(tmp_path / "gen", motions)
    records = export(folder, tmp_path / "out")
    assert [r["bvh"] for r in records] == ["sample_00.bvh", "sample_01.bvh"]
    for motion, record in zip(motions, records):
        clip = load_bvh(tmp_path / "out" / record["bvh"])
        assert clip.fps == 20 and clip.num_frames == len(motion) and record["caption"].startswith("motion")
        order = [clip.skeleton.names.index(name) for name in SMPL22_NAMES]  # the file lists joints depth first
        assert np.abs(clip.positions()[:, order] - motion).max() < 1e-4  # rigid bones: the file holds the motion
    summary = json.loads((tmp_path / "out" / "export.json").read_text())
    assert summary["format"]["format"] == "bvh" and len(summary["motions"]) == 2
    with pytest.raises(UserError, match="never overwrite"):
        export(folder, tmp_path / "out")


def test_a_npy_of_several_motions_is_named_by_index_and_an_old_generation_by_joint_count(tmp_path):
    motion = procedural_motions(1)[0][:40]
    np.save(tmp_path / "joints.npy", np.stack([motion, motion[::-1]]))  # (2, T, 22, 3)
    assert [m.name for m in read_motions(tmp_path / "joints.npy")] == ["joints_00", "joints_01"]
    assert read_motions(tmp_path / "joints.npy", fps=30)[0].fps == 30
    kit = kit_walk(frames=6)  # (6, 21, 3) millimetres, as KIT-ML's new_joints/ hold them
    np.save(tmp_path / "kit.npy", kit)
    with pytest.raises(UserError, match=r"kit.npy' has a bone .* m long read as units=m: .*give units=mm"):
        read_motions(tmp_path / "kit.npy")
    (metres,) = read_motions(tmp_path / "kit.npy", units="mm")
    np.testing.assert_allclose(metres.positions, kit / 1000)
    assert metres.joint_names == KIT21_NAMES and metres.fps == 12.5
    old = generation_folder(tmp_path / "old", [motion], skeleton=False)  # written before skeletons were recorded
    (only,) = read_motions(old)
    assert only.joint_names[0] == "pelvis" and only.fps == 20 and only.caption == "motion 0"


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((48, 20, 2), np.float32), "2D keypoints"),
        (np.zeros((48, 23, 3), np.float32), "23 joints"),
        (np.zeros((48, 22), np.float32), "has shape"),
    ],
)
def test_inputs_that_are_not_3d_motions_on_a_known_tree_are_one_sentence(tmp_path, array, message):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(UserError, match=message):
        read_motions(tmp_path / "bad.npy")


def test_the_command_line_is_checked_before_anything_is_written(tmp_path):
    with pytest.raises(UserError, match="say what to export: input="):
        preflight(CONFIG_DIR, "export", [])
    with pytest.raises(UserError, match="no such file or folder: input=/no/such"):
        preflight(CONFIG_DIR, "export", ["input=/no/such"])
    with pytest.raises(UserError, match="no such file: export.skeleton=/no/such.bvh"):
        preflight(CONFIG_DIR, "export", [f"input={tmp_path}", "export.skeleton=/no/such.bvh"])
    with pytest.raises(UserError, match="did you mean export=smpl"):
        preflight(CONFIG_DIR, "export", [f"input={tmp_path}", "export=smp"])


def test_python_m_motiondiff_export_writes_beside_the_input_and_a_missing_model_leaves_nothing(tmp_path):
    folder = generation_folder(tmp_path / "gen", procedural_motions(1))
    done = subprocess.run(
        [sys.executable, "-m", "motiondiff.export", f"input={folder}"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    (exported,) = (folder / "exports").iterdir()
    assert (exported / "sample_00.bvh").is_file() and (exported / "export.log").is_file()
    refused = subprocess.run(
        [sys.executable, "-m", "motiondiff.export", f"input={folder}", "export=smpl"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2 and "no SMPL body model was given: download SMPL" in refused.stderr
    assert list((folder / "exports").iterdir()) == [exported], "the failed export removed its folder"


def test_smpl_parameters_and_a_mesh_video_with_the_users_body_model(tmp_path):
    data = synthetic_smpl()  # SMPL's layout, a crude body: the real SMPL is licensed and never in the repository
    (tmp_path / "models").mkdir()
    np.savez(
        tmp_path / "models" / "SMPL_NEUTRAL.npz",
        **{
            k: v.toarray() if sp.issparse(v) else v
            for k, v in data.items()
            if isinstance(v, np.ndarray) or sp.issparse(v)
        },
    )
    motion = procedural_motions(1, seed=3)[0][:12]
    folder = generation_folder(tmp_path / "gen", [motion])
    overrides = ["export=smpl", "render=mesh", f"smpl.model_path={tmp_path / 'models'}", "smpl.obj=true"]
    (record,) = export(folder, tmp_path / "out", *overrides)
    params = read_smpl_npz(tmp_path / "out" / record["smpl"])
    assert params.poses.shape == (12, 72) and params.fps == 20 and record["up"] == "z"
    assert iio.imread(tmp_path / "out" / record["mesh_video"]).shape == (12, 480, 480, 3)
    assert len(list((tmp_path / "out" / "sample_00_obj").glob("*.obj"))) == 12
