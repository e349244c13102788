"""SMPL export: the model read safely from files in SMPL's real layout, joints -> SMPL parameters -> the same
joints through smplx, AMASS's z-up frame as HumanML3D's preparation undoes it, and the mesh video.

SMPL itself is licensed and never here: `synthetic_smpl` builds a model in the real layout (24 joints on SMPL's
tree, 6890 vertices, 10 shape and 207 pose blend shapes, a sparse J_regressor) whose mesh is a crude body of
tubes round the bones, written like the official files: an .npz and a Python 2 pickle (protocol 0, as smplx's
clean_ch.py writes SMPL's chumpy-free .pkl), or a Python 3 one.
"""

import io
import os
import pickle
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import scipy.sparse as sp

from conftest import SHARED_DATA
from motiondiff.core.errors import UserError
from motiondiff.core.files import write_new_file
from motiondiff.data.formats.bvh_write import write_bvh
from motiondiff.data.formats.smpl_model import SMPL24_PARENTS, load_smpl, pose_smpl, rest_joints
from motiondiff.data.formats.smpl_params import joints_to_smpl, read_smpl_npz, write_smpl_npz
from motiondiff.data.kinematics.skeleton import SMPL22_PARENTS, Skeleton
from motiondiff.data.procedural.actions import SMPL22_REST_OFFSETS
from motiondiff.export.smpl import render_mesh, solve
from motiondiff.render.mesh import MeshView, render_mesh_video, write_obj_sequence
from motiondiff.render.skeleton_video import labels_height

REAL_MOTION = SHARED_DATA / "humanml3d_sample" / "new_joints" / "012314.npy"
VERTICES = 6890
# Tube radii (m) of the bone into each joint (1..23), for the crude body.
RADII = (0.08, 0.08, 0.1, 0.065, 0.065, 0.11, 0.05, 0.05, 0.12, 0.04, 0.04, 0.05, 0.07, 0.07, 0.05, 0.05, 0.05)
RADII += (0.045, 0.045, 0.04, 0.04, 0.035, 0.035)
SEGMENTS = 16  # vertices round each ring of a tube
J0 = np.array([0.0, -0.22, 0.03])  # the pelvis's rest position: SMPL's is below the mesh origin, not at it


def smpl_like_rest_joints() -> np.ndarray:
    """24 rest joints (y up, facing +z, T-pose): the project's SMPL-like rest skeleton, hands 9 cm past the wrists."""
    joints = np.zeros((24, 3))
    joints[0] = J0
    for j, parent in enumerate(SMPL24_PARENTS[1:], start=1):
        offset = SMPL22_REST_OFFSETS[j] if j < 22 else np.array([0.09 if j == 22 else -0.09, 0.0, 0.0])
        joints[j] = joints[parent] + offset
    return joints


def tube(start, end, radius, rings):
    """Vertices (rings*SEGMENTS, 3) and faces of an open tube round a segment, a little past both ends."""
    axis = (end - start) / np.linalg.norm(end - start)
    helper = np.array([0.0, 0.0, 1.0]) if abs(axis[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(axis, helper)
    u /= np.linalg.norm(u)
    v = np.cross(axis, u)
    along = np.linspace(-0.3 * radius, np.linalg.norm(end - start) + 0.3 * radius, rings)
    angle = np.linspace(0, 2 * np.pi, SEGMENTS, endpoint=False)
    circle = radius * (np.cos(angle)[:, None] * u + np.sin(angle)[:, None] * v)  # (S, 3)
    points = start + along[:, None, None] * axis + circle[None]  # (R, S, 3)
    ring, seg = np.meshgrid(np.arange(rings - 1), np.arange(SEGMENTS), indexing="ij")
    a, b = ring * SEGMENTS + seg, ring * SEGMENTS + (seg + 1) % SEGMENTS
    faces = np.concatenate([np.stack([a, b, a + SEGMENTS], -1), np.stack([b, b + SEGMENTS, a + SEGMENTS], -1)])
    return points.reshape(-1, 3), faces.reshape(-1, 3)


def sphere(centre, radius, rings=14):
    """Vertices and faces of a latitude-longitude sphere (poles as tiny rings)."""
    lat = np.linspace(0.02, np.pi - 0.02, rings)
    lon = np.linspace(0, 2 * np.pi, SEGMENTS, endpoint=False)
    points = np.stack(
        [np.sin(lat)[:, None] * np.cos(lon), np.cos(lat)[:, None] + 0 * lon, np.sin(lat)[:, None] * np.sin(lon)], -1
    )
    _, faces = tube(np.zeros(3), np.array([0.0, 1.0, 0.0]), 1.0, rings)
    return centre + radius * points.reshape(-1, 3), faces


def synthetic_smpl(seed: int = 0) -> dict:
    """A model in SMPL's layout (the keys, shapes and dtypes of SMPL 1.1.0's file) with a crude body of tubes."""
    rng = np.random.default_rng(seed)
    joints = smpl_like_rest_joints()
    parts = [(sphere(joints[15] + [0.0, 0.06, 0.02], 0.1), 15)]
    for j, parent in enumerate(SMPL24_PARENTS[1:], start=1):
        length = np.linalg.norm(joints[j] - joints[parent])
        parts.append((tube(joints[parent], joints[j], RADII[j - 1], max(3, round(length / 0.016))), parent))
    vertices, faces, owner = [], [], []
    for (points, part_faces), joint in parts:
        faces.append(part_faces + sum(len(p) for p in vertices))
        vertices.append(points)
        owner += [joint] * len(points)
    anchors = joints[:, None] + 0.01 * np.array([[1, 0, 0], [-1, 0, 0], [0, 0, 1], [0, 0, -1]])  # (24, 4, 3)
    first_anchor = sum(len(p) for p in vertices)
    vertices.append(anchors.reshape(-1, 3))
    owner += list(np.repeat(np.arange(24), 4))
    filler = VERTICES - sum(len(p) for p in vertices)
    assert filler >= 0, "the crude body has more vertices than SMPL"
    vertices.append(np.repeat(joints[:1], filler, axis=0))
    owner += [0] * filler
    vertices = np.concatenate(vertices)
    regressor = np.zeros((24, VERTICES))
    regressor[np.repeat(np.arange(24), 4), first_anchor + np.arange(96)] = 0.25  # each joint: its 4 anchors' mean
    weights = np.zeros((VERTICES, 24))
    weights[np.arange(VERTICES), owner] = 1.0
    kintree = np.array([[4294967295] + list(SMPL24_PARENTS[1:]), list(range(24))], dtype=np.int64)
    return {
        "v_template": vertices,
        "shapedirs": 0.01 * rng.normal(size=(VERTICES, 3, 10)),
        "posedirs": (1e-4 * rng.normal(size=(VERTICES, 3, 207))).astype(np.float32),
        "J_regressor": sp.csc_matrix(regressor),
        "J_regressor_prior": sp.csc_matrix(regressor),
        "weights": weights,
        "weights_prior": weights,
        "kintree_table": kintree,
        "J": regressor @ vertices,
        "f": np.concatenate(faces).astype(np.uint32),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
        "vert_sym_idxs": np.arange(VERTICES),
        "pose_training_info": {"num_subjects": 0},
    }


class Python2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 str (STRING opcodes), so the file reads as SMPL's Python 2 pickles do."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj):
        self.write(b"S" + repr(obj)[1:].encode("ascii") + b"\n")
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def python2_pickle(data: dict) -> bytes:
    """A protocol 0 pickle with Python 2's module names (copy_reg, __builtin__, numpy.core, scipy.sparse.csc)."""
    out = io.BytesIO()
    Python2Pickler(out, protocol=0).dump(data)
    names = ((b"numpy._core.multiarray", b"numpy.core.multiarray"), (b"scipy.sparse._csc", b"scipy.sparse.csc"))
    text = out.getvalue()
    for new, old in names:
        text = text.replace(new, old)
    return text


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """A folder per layout: npz/SMPL_NEUTRAL.npz, py2/smpl/SMPL_NEUTRAL.pkl, py3/<official name>.pkl."""
    root = tmp_path_factory.mktemp("smpl")
    data = synthetic_smpl()
    dense = {key: data[key].toarray() if sp.issparse(data[key]) else data[key] for key in data}
    (root / "npz").mkdir()
    np.savez(root / "npz" / "SMPL_NEUTRAL.npz", **{k: v for k, v in dense.items() if isinstance(v, np.ndarray)})
    (root / "py2" / "smpl").mkdir(parents=True)
    (root / "py2" / "smpl" / "SMPL_NEUTRAL.pkl").write_bytes(python2_pickle(data))
    (root / "py3").mkdir()
    (root / "py3" / "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl").write_bytes(pickle.dumps(data, protocol=2))
    return root


@pytest.fixture(scope="module")
def model(model_files):
    return load_smpl(model_files / "npz")


def random_motion(model, frames: int = 24, seed: int = 1) -> np.ndarray:
    """Joints (T, 22, 3) the model reaches: its own forward pass with random poses, turning and travelling."""
    rng = np.random.default_rng(seed)
    poses = np.zeros((frames, 72))
    poses[:, 3:66] = 0.35 * rng.normal(size=(frames, 63))
    yaw = np.linspace(0, 2.5, frames)
    poses[:, :3] = np.stack([0.2 * np.sin(yaw), yaw, 0.1 * np.cos(yaw)], -1)
    trans = np.stack([np.linspace(0, 1, frames), 0.9 + 0.05 * np.sin(yaw), np.linspace(0, -0.5, frames)], -1)
    _, joints = pose_smpl(model, poses, trans)
    return joints[:, :22].astype(np.float64)


def humanml3d_from_amass(joints: np.ndarray) -> np.ndarray:
    """HumanML3D's raw_pose_processing on AMASS joints, its two lines verbatim in effect."""
    trans_matrix = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    data = np.dot(joints, trans_matrix)
    data[..., 0] *= -1
    return data


def test_the_model_loads_from_npz_python2_and_python3_pickles_alike(model_files, model):
    reference = rest_joints(model)
    assert np.allclose(reference, smpl_like_rest_joints(), atol=1e-5)
    for folder in ("py2", "py3"):
        other = load_smpl(model_files / folder)
        assert np.allclose(rest_joints(other), reference, atol=1e-6)
        assert np.array_equal(other.faces, model.faces)
        assert other.parents.tolist() == [-1] + list(SMPL24_PARENTS[1:])


def test_parameters_from_the_models_own_motion_give_its_joints_back(model):
    positions = random_motion(model)
    params = joints_to_smpl(positions, 20, rest_joints(model), up="y")
    assert params.poses.shape == (24, 72) and params.poses.dtype == np.float32
    assert np.all(params.poses[:, 66:] == 0)  # the hands at rest
    _, joints = pose_smpl(model, params.poses, params.trans)
    error = np.linalg.norm(joints[:, :22] - positions, axis=-1).max()
    assert error < 1e-4, error  # float32 through smplx: measured 2e-6 m


def test_a_real_humanml3d_motion_keeps_its_bone_directions(model):
    if not REAL_MOTION.is_file():
        pytest.skip(f"{REAL_MOTION} is absent (../shared/data is not here)")
    positions = np.load(REAL_MOTION).astype(np.float64)
    params = joints_to_smpl(positions, 20, rest_joints(model), up="y")
    _, joints = pose_smpl(model, params.poses, params.trans)
    parents = np.array(SMPL22_PARENTS)
    bone = positions[:, 1:] - positions[:, parents[1:]]
    posed = joints[:, 1:22] - joints[:, parents[1:]]
    cosine = np.sum(bone * posed, -1) / np.linalg.norm(bone, axis=-1) / np.linalg.norm(posed, axis=-1)
    angle = np.degrees(np.arccos(np.clip(cosine, -1, 1)))  # (T, 21)
    single = [j - 1 for j in range(1, 22) if parents[j] not in (0, 9)]  # bones whose parent has one child
    assert angle[:, single].max() < 0.1, angle[:, single].max()  # the swing is exact: measured 0.026 degrees
    # Hips, spine1, neck, collars: each group's best fit; off by the fixed difference between the group's shape in
    # HumanML3D's skeleton and in this model's rest (measured 2.3 to 12.8 degrees), the same in every frame.
    assert angle.max() < 15, angle.max()
    assert np.ptp(angle, axis=0).max() < 0.1, np.ptp(angle, axis=0)
    assert np.abs(joints[:, 0] - positions[:, 0]).max() < 1e-5  # the pelvis lands on the motion's


def test_the_z_up_file_goes_back_to_our_joints_through_humanml3ds_preparation(model, tmp_path):
    positions = random_motion(model, seed=2)
    path = write_smpl_npz(tmp_path / "motion.npz", solve(positions, 20, model, up="z"))
    params = read_smpl_npz(path)
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == ["betas", "gender", "mocap_framerate", "poses", "trans"]
        assert data["poses"].shape == (len(positions), 156)  # AMASS's SMPL+H width: 22 body joints, then hands
        assert not data["poses"][:, 66:].any() and np.allclose(data["poses"][:, :66], params.poses[:, :66])
        assert data["gender"] == "neutral" and float(data["mocap_framerate"]) == 20.0
    _, amass_joints = pose_smpl(model, params.poses, params.trans)
    assert np.abs(amass_joints[:, 0, 2] - positions[:, 0, 1]).max() < 1e-5  # the pelvis height is z in AMASS
    back = humanml3d_from_amass(amass_joints[:, :22])
    assert np.linalg.norm(back - positions, axis=-1).max() < 1e-4
    with pytest.raises(UserError, match="never overwrites"):
        write_smpl_npz(path, params)


def test_the_mesh_video_shows_the_body_where_the_joints_are(model, tmp_path):
    positions = random_motion(model, frames=6, seed=3)
    params = joints_to_smpl(positions, 20, rest_joints(model), up="y")
    vertices, _ = pose_smpl(model, params.poses, params.trans)
    view = MeshView(vertices, model.faces, caption="a person turns", fps=20)
    path = render_mesh_video(vertices, model.faces, tmp_path / "mesh.mp4", 20, caption="a person turns")
    frames = np.stack(list(iio.imiter(path, plugin="FFMPEG")))
    assert frames.shape == (6, 480, 480, 3)
    background = np.asarray(view.background, dtype=np.int16)
    for index in (0, 5):
        changed = np.abs(frames[index].astype(np.int16) - background).max(-1) > 40
        changed[: view.top] = changed[480 - labels_height(480) :] = False  # the view only, not caption or counter
        assert changed.sum() > 2000, changed.sum()  # the body covers thousands of pixels
        rows, cols = np.nonzero(changed)
        pixels, _ = view.project(positions[index])
        inside = (
            (pixels[:, 0] >= cols.min() - 3)
            & (pixels[:, 0] <= cols.max() + 3)
            & (pixels[:, 1] + view.top >= rows.min() - 3)
            & (pixels[:, 1] + view.top <= rows.max() + 3)
        )
        assert inside.all(), pixels[~inside]
        head, feet = pixels[15, 1], pixels[[10, 11], 1].mean()
        assert head < feet  # upright: the head above the feet on screen


def test_render_smpl_mesh_and_obj_sequence(model, tmp_path):
    positions = random_motion(model, frames=3, seed=4)
    video = render_mesh(
        model, solve(positions, 20, model, up="z"), "z", tmp_path / "smpl.mp4", "a caption", tmp_path / "obj"
    )
    assert video.is_file() and video.stat().st_size > 1000
    objs = sorted((tmp_path / "obj").glob("*.obj"))
    assert [p.name for p in objs] == ["frame_0000.obj", "frame_0001.obj", "frame_0002.obj"]
    lines = objs[0].read_text().splitlines()
    assert sum(line.startswith("v ") for line in lines) == VERTICES
    assert sum(line.startswith("f ") for line in lines) == len(model.faces)
    with pytest.raises(UserError, match="never overwrites"):
        write_obj_sequence(tmp_path / "obj", np.zeros((1, 3, 3)), np.array([[0, 1, 2]]))


def test_a_pickle_that_runs_code_is_refused_without_running(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "SMPL_NEUTRAL.pkl").write_bytes(pickle.dumps({"v_template": Payload()}, protocol=2))
    with pytest.raises(UserError, match="holds more than arrays") as error:
        load_smpl(folder)
    assert "system" in str(error.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    "crafted",
    [
        b"(dp0\nVv_template\np1\ncbuiltins\neval\np2\n(V1+1\ntRp3\ns.",  # a global that runs code
        b"(dp0\nVf\np1\nccopy_reg\n_reconstructor\np2\n(cnumpy\nndarray\nc__builtin__\nobject\nNtRs.",  # not sparse
        b"(dp0\nVf\np1\nc_codecs\nencode\n(Vx\nVutf-16\ntRs.",  # bytes other than latin-1 text
    ],
)
def test_crafted_pickles_are_refused(tmp_path, crafted):
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(crafted)
    with pytest.raises(UserError, match="holds more than arrays"):
        load_smpl(tmp_path)


def test_a_missing_model_names_the_download_and_the_setting(tmp_path):
    for where in (tmp_path / "nothing", None):
        with pytest.raises(UserError, match=r"https://smpl.is.tue.mpg.de.*smpl.model_path=<dir>.*SMPL_NEUTRAL.pkl"):
            load_smpl(where)


def test_a_chumpy_pickle_gets_its_sentence(tmp_path):
    chumpy = b"\x80\x02}q\x00X\n\x00\x00\x00v_templateq\x01cchumpy.ch\nCh\nq\x02)\x81q\x03}q\x04bs."
    path = tmp_path / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"
    path.write_bytes(chumpy)
    with pytest.raises(UserError, match=r"chumpy version \(SMPL 1.0.0.*SMPL 1.1.0\) or use an .npz"):
        load_smpl(tmp_path)


def test_files_in_another_layout_are_refused(tmp_path, model_files):
    with np.load(model_files / "npz" / "SMPL_NEUTRAL.npz") as data:
        arrays = dict(data)
    arrays["J_regressor"] = np.zeros((52, VERTICES))
    np.savez(tmp_path / "SMPL_NEUTRAL.npz", **arrays)
    with pytest.raises(UserError, match=r"SMPL_NEUTRAL.npz' has J_regressor \(52, 6890\), not SMPL's layout.*SMPL-H"):
        load_smpl(tmp_path)
    with pytest.raises(UserError, match="gender"):
        load_smpl(tmp_path, gender="child")
    with pytest.raises(UserError, match=r"\(frames, 22, 3\)"):
        joints_to_smpl(np.zeros((4, 24, 3)), 20, smpl_like_rest_joints())


def write_params(path, **arrays) -> Path:
    """An AMASS-layout .npz of 2 frames at rest with the given arrays added or replaced."""
    np.savez(path, **{"poses": np.zeros((2, 156)), "trans": np.zeros((2, 3)), "mocap_framerate": 60.0, **arrays})
    return path


def test_amass_files_with_16_betas_keep_the_first_10(tmp_path):
    betas = np.arange(16, dtype=np.float64)[None] / 10  # (1, 16): AMASS's SMPL-H files
    params = read_smpl_npz(write_params(tmp_path / "amass.npz", betas=betas))
    assert params.betas.shape == (10,) and np.allclose(params.betas, np.arange(10) / 10)
    assert params.poses.shape == (2, 72) and params.fps == 60.0
    assert np.allclose(read_smpl_npz(write_params(tmp_path / "eight.npz", betas=np.ones(8))).betas, [1] * 8 + [0] * 2)
    smplh = np.zeros((2, 156))
    smplh[:, 63:66], smplh[:, 66:69], smplh[:, 111:114] = 0.3, 0.5, 0.7  # right wrist; left index1; right index1
    poses = read_smpl_npz(write_params(tmp_path / "fingers.npz", poses=smplh)).poses.reshape(2, 24, 3)
    assert np.allclose(poses[:, 21], 0.3) and np.allclose(poses[:, 22:], 0)  # no finger lands on SMPL's hands
    smpl = np.arange(2 * 72).reshape(2, 72) / 1000
    assert np.allclose(read_smpl_npz(write_params(tmp_path / "smpl.npz", poses=smpl)).poses, smpl)  # SMPL's own
    with pytest.raises(UserError, match=r"smplx.npz' has poses \(2, 165\) .*SMPL-X's 165 pose values"):
        read_smpl_npz(write_params(tmp_path / "smplx.npz", poses=np.zeros((2, 165))))
    with pytest.raises(UserError, match=r"per_frame.npz' has betas of shape \(2, 10\) .*not one row"):
        read_smpl_npz(write_params(tmp_path / "per_frame.npz", betas=np.zeros((2, 10))))
    with pytest.raises(UserError, match=r"text.npz' has betas of shape \(10,\) and dtype <U1"):
        read_smpl_npz(write_params(tmp_path / "text.npz", betas=np.array(list("abcdefghij"))))


@pytest.fixture
def racing_writer(monkeypatch):
    """Another process that creates each file just before it is renamed or linked into place."""

    def racing(original):
        def publish(source, target, *args, **kwargs):
            if not Path(target).exists():
                Path(target).write_bytes(b"written by another process")
            return original(source, target, *args, **kwargs)

        return publish

    monkeypatch.setattr(os, "replace", racing(os.replace))
    monkeypatch.setattr(os, "link", racing(os.link))


def test_a_file_created_while_exporting_is_never_overwritten(tmp_path, racing_writer):
    params = joints_to_smpl(np.zeros((2, 22, 3)) + smpl_like_rest_joints()[:22], 20, smpl_like_rest_joints())
    with pytest.raises(UserError, match="motion.npz' already exists: SMPL export never overwrites a file"):
        write_smpl_npz(tmp_path / "motion.npz", params)
    skeleton = Skeleton(("hip", "leg"), (-1, 0), np.array([[0.0, 1.0, 0.0], [0.0, -0.5, 0.0]]))
    with pytest.raises(UserError, match="motion.bvh' already exists: BVH export never overwrites a file"):
        write_bvh(tmp_path / "motion.bvh", skeleton, np.tile(np.eye(3), (2, 2, 1, 1)), np.zeros((2, 3)), 30)
    with pytest.raises(UserError, match="frame_0000.obj' already exists: mesh export never overwrites a file"):
        write_obj_sequence(tmp_path / "obj", np.zeros((1, 3, 3)), np.array([[0, 1, 2]]))
    for name in ("motion.npz", "motion.bvh", "obj/frame_0000.obj"):
        assert (tmp_path / name).read_bytes() == b"written by another process", name
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["frame_0000.obj", "motion.bvh", "motion.npz", "obj"]


def test_write_new_file_publishes_whole_files_only(tmp_path):
    path = write_new_file(tmp_path / "sub" / "a.txt", lambda temporary: temporary.write_text("whole"))
    assert path.read_text() == "whole" and [p.name for p in path.parent.iterdir()] == ["a.txt"]
    with pytest.raises(UserError, match="a.txt' already exists: export never overwrites a file; give a new path"):
        write_new_file(path, lambda temporary: temporary.write_text("other"))

    def fails(temporary):
        temporary.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_new_file(tmp_path / "b.txt", fails)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.txt", "sub"]
