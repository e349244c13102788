"""The embedded procedural text-motion dataset: rigid plausible motion, captions that match the motion
(measured on the joints), the HumanML3D layout, determinism and all-or-nothing writing."""

import json
import re

import numpy as np
import pytest

from motiondiff.core.errors import UserError
from motiondiff.data.kinematics.skeleton import SMPL22_NAMES, SMPL22_PARENTS, bone_lengths
from motiondiff.data.procedural import text_motion as ptm
from motiondiff.data.procedural.actions import (
    MAX_FRAMES,
    MIN_FRAMES,
    SMPL22_REST_OFFSETS,
    action_frames,
    make_motion,
    sample_spec,
)
from motiondiff.data.procedural.captions import captions_for
from motiondiff.data.representations import humanml3d_features as hml

J = {name: i for i, name in enumerate(SMPL22_NAMES)}
FEET = [J[n] for n in ("left_ankle", "left_foot", "right_ankle", "right_foot")]
NUM_MOTIONS = 40

UNIVERSAL_POS = set(
    "ADJ ADP ADV AUX CCONJ DET INTJ NOUN NUM PART PRON PROPN PUNCT SCONJ SYM VERB X".split()
)  # spaCy's tags


def single(action: str, seed: int = 0, **params) -> dict:
    """A spec with one action (standing 4 frames before and after it)."""
    entry = {"action": action, "direction": None, "side": None, "reps": None, "angle": None, "speed": "normal"}
    entry.update(params)
    frames = action_frames(entry, np.random.default_rng(seed))
    entry.update(start=4, end=4 + frames)
    return {"length": max(MIN_FRAMES, frames + 8), "actions": [entry]}


def motion_of(spec: dict, seed: int = 0) -> np.ndarray:
    """Joints (T, 22, 3) of a spec."""
    return make_motion(spec, np.random.default_rng(seed))


def heading(joints: np.ndarray) -> np.ndarray:
    """Facing angle (T,) from hips and shoulders, radians, unwrapped; positive is turned to the body's left."""
    left = (
        joints[:, J["left_hip"]]
        - joints[:, J["right_hip"]]
        + joints[:, J["left_shoulder"]]
        - joints[:, J["right_shoulder"]]
    )
    forward = np.cross(left, [0.0, 1.0, 0.0])  # (T, 3)
    return np.unwrap(np.arctan2(forward[:, 0], forward[:, 2]))


def airborne_phases(joints: np.ndarray, threshold: float = 0.05) -> int:
    """How many separate runs of frames have every foot joint `threshold` above the clip's lowest foot."""
    feet = joints[:, FEET, 1].min(1)  # (T,)
    air = (feet - feet.min() > threshold).astype(int)
    return int((np.diff(np.concatenate([[0], air])) == 1).sum())


def measure(joints: np.ndarray, action: dict) -> dict:
    """What an action did, measured on the joints over its frames (directions from its first frame's facing)."""
    start, end = action["start"], min(action["end"], len(joints)) - 1
    yaw = heading(joints)
    forward = np.array([np.sin(yaw[start]), 0.0, np.cos(yaw[start])])
    left = np.array([np.cos(yaw[start]), 0.0, -np.sin(yaw[start])])
    moved = joints[end, 0] - joints[start, 0]
    head = joints[start : end + 1, J["head"], 1]
    lowest = joints[start : end + 1, FEET, 1].min()
    return {
        "forward": float(moved @ forward),
        "left": float(moved @ left),
        "turned": float(np.degrees(yaw[end] - yaw[start])),
        "hand_over_head": {
            s: float((joints[start : end + 1, J[f"{s}_wrist"], 1] - head).max()) for s in ("left", "right")
        },
        "foot_height": {
            s: float(joints[start : end + 1, J[f"{s}_ankle"], 1].max() - lowest) for s in ("left", "right")
        },
        "airborne": airborne_phases(joints[start : end + 1], 0.03 if action["action"] == "jumping_jacks" else 0.05),
    }


def assert_matches(joints: np.ndarray, action: dict) -> None:
    """The joints do what the action's parameters (and so its captions) say."""
    m, name = measure(joints, action), action["action"]
    context = (action, m)
    if name == "walk":
        assert (m["forward"] > 0.4) if action["direction"] == "forward" else (m["forward"] < -0.4), context
        assert abs(m["left"]) < 0.3 * abs(m["forward"]), context
    if name == "run":
        assert m["forward"] > 1.0, context
    if name == "sidestep":
        assert (m["left"] > 0.3) if action["direction"] == "left" else (m["left"] < -0.3), context
    if name == "turn":
        wanted = action["angle"] * (1 if action["direction"] == "left" else -1)
        assert abs(m["turned"] - wanted) < 30, context
    if name in ("wave", "raise_arms"):
        raised = ("left", "right") if action["side"] == "both" else (action["side"],)
        for side in ("left", "right"):
            assert (m["hand_over_head"][side] > 0.05) if side in raised else (m["hand_over_head"][side] < -0.2), context
    if name in ("jump", "hop"):
        assert m["airborne"] == action["reps"], context
    if name == "jumping_jacks":
        assert m["airborne"] == 2 * action["reps"], context
    if name in ("walk", "wave", "raise_arms", "squat", "turn", "clap", "punch", "bow", "kick", "sidestep"):
        assert m["airborne"] == 0, context
    if name == "kick":
        other = "right" if action["side"] == "left" else "left"
        assert m["foot_height"][action["side"]] > 0.3 and m["foot_height"][other] < 0.1, context


# ---------------------------------------------------------------- the body and the motion


def test_rest_skeleton_is_smpl_like():
    assert SMPL22_REST_OFFSETS.shape == (22, 3)
    assert SMPL22_REST_OFFSETS[0, 1] == pytest.approx(0.95, abs=0.06)  # pelvis height
    assert SMPL22_REST_OFFSETS[J["left_hip"], 0] > 0 > SMPL22_REST_OFFSETS[J["right_hip"], 0]  # left is +x
    assert SMPL22_REST_OFFSETS[J["left_foot"], 2] > 0  # the feet point forward, +z
    np.testing.assert_allclose(np.linalg.norm(SMPL22_REST_OFFSETS[1:], axis=-1), hml.REFERENCE_BONE_LENGTHS, rtol=1e-9)


def test_specs_have_lengths_in_range_and_ordered_actions():
    rng = np.random.default_rng(3)
    for _ in range(300):
        spec = sample_spec(rng)
        assert MIN_FRAMES <= spec["length"] <= MAX_FRAMES
        assert 1 <= len(spec["actions"]) <= 2
        ends = [0] + [edge for a in spec["actions"] for edge in (a["start"], a["end"])] + [spec["length"]]
        assert all(a <= b for a, b in zip(ends, ends[1:])), spec


def test_bone_lengths_are_constant_and_motion_is_finite():
    rng = np.random.default_rng(5)
    for _ in range(15):
        joints = make_motion(sample_spec(rng), rng)
        assert joints.shape[1:] == (22, 3) and np.isfinite(joints).all()
        lengths = bone_lengths(joints, SMPL22_PARENTS)  # (T, 21)
        assert np.abs(lengths - lengths[0]).max() < 1e-6
        np.testing.assert_allclose(lengths[0], hml.REFERENCE_BONE_LENGTHS, atol=1e-6)


def test_walking_keeps_a_foot_on_the_floor_and_swings_the_legs():
    joints = motion_of(single("walk", direction="forward"))
    feet = joints[:, FEET, 1]  # (T, 4)
    assert np.abs(feet.min(1) - feet.min()).max() < 0.03  # some foot on the floor in every frame
    assert feet.min() == pytest.approx(0.026, abs=0.02)  # the floor is y = 0 (ball of the foot ~2.6 cm up)
    assert (feet[:, [0, 2]].max(0) - feet[:, [0, 2]].min(0) > 0.08).all()  # both ankles lift in the swing
    contact = hml.joints_to_features(joints)[:, hml.feature_slices()["foot_contact"]]  # (T-1, 4)
    assert (contact.max(1) > 0).mean() > 0.9  # the dataset's contact labels see a standing foot


def test_same_spec_differs_with_the_random_variation():
    spec = single("walk", direction="forward")
    a, b = motion_of(spec, seed=0), motion_of(spec, seed=1)
    assert a.shape == b.shape and np.abs(a - b).max() > 0.05


@pytest.mark.parametrize(
    "params",
    [
        dict(action="walk", direction="forward"),
        dict(action="walk", direction="backward", speed="slow"),
        dict(action="run", direction="forward"),
        dict(action="sidestep", direction="left", reps=2),
        dict(action="sidestep", direction="right", reps=3),
        dict(action="turn", direction="left", angle=90),
        dict(action="turn", direction="right", angle=90),
        dict(action="turn", direction="right", angle=180),
        dict(action="turn", direction="left", angle=360),
        dict(action="wave", side="left"),
        dict(action="wave", side="right"),
        dict(action="wave", side="both"),
        dict(action="raise_arms", side="right", reps=2),
        dict(action="jump", direction="in_place", reps=1),
        dict(action="jump", direction="in_place", reps=3, speed="fast"),
        dict(action="hop", side="left", reps=2),
        dict(action="jumping_jacks", reps=2),
        dict(action="kick", side="left", reps=1),
        dict(action="kick", side="right", reps=2),
    ],
    ids=lambda p: "-".join(str(v) for v in p.values()),
)
def test_motion_does_what_the_spec_says(params):
    spec = single(**params)
    assert_matches(motion_of(spec), spec["actions"][0])


def test_jump_forward_travels_and_in_place_does_not():
    forward = measure(motion_of(single("jump", direction="forward", reps=2)), single("jump", reps=2)["actions"][0])
    in_place = measure(motion_of(single("jump", direction="in_place", reps=2)), single("jump", reps=2)["actions"][0])
    assert forward["forward"] > 0.6 and abs(in_place["forward"]) < 0.15
    assert forward["airborne"] == in_place["airborne"] == 2


def test_turn_then_walk_forward_walks_in_the_new_facing():
    first = single("turn", direction="left", angle=90)["actions"][0]
    walk = single("walk", direction="forward")["actions"][0]
    walk.update(start=first["end"], end=first["end"] + walk["end"] - walk["start"])
    spec = {"length": walk["end"] + 4, "actions": [first, walk]}
    joints = motion_of(spec)
    moved = joints[-1, 0] - joints[first["end"], 0]
    assert moved[0] > 0.8 and abs(moved[2]) < 0.3  # the body's first left is +x
    assert_matches(joints, walk)


# ---------------------------------------------------------------- captions


SIDE_WORDS = re.compile(r"\b(left|right)\b")


def test_captions_name_only_what_the_spec_says():
    rng = np.random.default_rng(11)
    for _ in range(200):
        spec = sample_spec(rng)
        captions = captions_for(spec, rng)
        assert len(captions) == 3 and len(set(captions)) == 3
        allowed = {a[k] for a in spec["actions"] for k in ("side", "direction")} & {"left", "right"}
        for text in captions:
            assert "#" not in text and text == text.strip()
            assert set(SIDE_WORDS.findall(text.lower())) <= allowed, (text, spec)
            if len(spec["actions"]) == 2:
                assert " then " in text or "after that" in text, text


def test_caption_examples_mention_side_count_and_direction():
    rng = np.random.default_rng(0)
    for spec, words in [
        (single("wave", side="right"), ["right"]),
        (single("jump", direction="in_place", reps=2), ["twice|two"]),
        (single("turn", direction="left", angle=90), ["left"]),
        (single("walk", direction="backward"), ["back|reverse"]),
        (single("kick", side="left", reps=3), ["left", "three"]),
    ]:
        for text in captions_for(spec, rng):
            for word in words:
                assert re.search(word, text), (text, word)


# ---------------------------------------------------------------- the written dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return ptm.write_procedural_dataset(tmp_path_factory.mktemp("procedural") / "t2m", num_motions=NUM_MOTIONS, seed=0)


def read_specs(root) -> list:
    """specs.jsonl as a list of dicts, in id order."""
    return [json.loads(line) for line in (root / "specs.jsonl").read_text().splitlines()]


def test_layout_loads_with_the_humanml3d_shapes(dataset):
    specs = read_specs(dataset)
    assert [s["id"] for s in specs] == [f"{i:06d}" for i in range(NUM_MOTIONS)]
    for spec in specs:
        features = np.load(dataset / "new_joint_vecs" / f"{spec['id']}.npy")
        joints = np.load(dataset / "new_joints" / f"{spec['id']}.npy")
        assert features.dtype == np.float32 and joints.dtype == np.float32
        assert features.shape == (spec["length"] - 1, 263) and joints.shape == (spec["length"] - 1, 22, 3)
        assert MIN_FRAMES - 1 <= len(features) <= MAX_FRAMES - 1
        np.testing.assert_allclose(hml.features_to_joints(features), joints, atol=1e-5)
        lines = (dataset / "texts" / f"{spec['id']}.txt").read_text().splitlines()
        assert 3 <= len(lines) <= 4
        for line in lines:
            caption, tokens, start, end = line.split("#")
            assert tokens.split() and all(t.rpartition("/")[2] in UNIVERSAL_POS for t in tokens.split())
            assert caption in spec["captions"] or (spec.get("subclip") or {}).get("caption") == caption
            assert (float(start), float(end)) == (0.0, 0.0) or "subclip" in spec


def test_subclip_lines_mark_one_action_exactly(tmp_path):
    seed, index = next((0, i) for i in range(400) if ptm.generate_motion(0, i)["subclip"] is not None)
    motion = ptm.generate_motion(seed, index)
    _, _, start, end = motion["lines"][-1].split("#")
    frames = (int(float(start) * 20), int(float(end) * 20))  # as the HumanML3D loader cuts a sub-clip
    action = next(a for a in motion["spec"]["actions"] if a["start"] == frames[0])
    assert frames[1] == min(action["end"], motion["spec"]["length"] - 1) and frames[1] - frames[0] >= MIN_FRAMES
    assert motion["subclip"]["caption"] == motion["lines"][-1].split("#")[0]


def test_splits_are_disjoint_and_cover_all_ids(dataset):
    splits = {name: (dataset / f"{name}.txt").read_text().split() for name in ("train", "val", "test")}
    all_ids = [i for ids in splits.values() for i in ids]
    assert sorted(all_ids) == [f"{i:06d}" for i in range(NUM_MOTIONS)]
    assert [len(splits[n]) for n in ("train", "val", "test")] == [32, 2, 6]
    assert all(s["split"] in splits and s["id"] in splits[s["split"]] for s in read_specs(dataset))


def test_statistics_are_over_the_training_split(dataset):
    mean, std = np.load(dataset / "Mean.npy"), np.load(dataset / "Std.npy")
    assert mean.shape == std.shape == (263,) and np.isfinite(mean).all() and np.isfinite(std).all()
    train = (dataset / "train.txt").read_text().split()
    frames = np.concatenate([np.load(dataset / "new_joint_vecs" / f"{i}.npy") for i in train]).astype(np.float64)
    np.testing.assert_allclose(mean, frames.mean(0), atol=1e-5)
    assert (std > 0).all() and (std[frames.std(0) > 0] > 1e-4).all()
    contact = hml.feature_slices()["foot_contact"]
    assert np.ptp(std[contact]) == 0  # one scale per feature group, as the dataset's Std.npy


def test_written_motions_match_their_captions(dataset):
    checked = 0
    for spec in read_specs(dataset):
        joints = np.load(dataset / "new_joints" / f"{spec['id']}.npy")  # through the 263 features and back
        for action in spec["actions"]:
            assert_matches(joints, action)
            checked += 1
    assert checked >= NUM_MOTIONS


# ---------------------------------------------------------------- determinism and all-or-nothing writing


def tree_bytes(root) -> dict:
    """{relative path: bytes} of every file under root."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    a = tree_bytes(ptm.write_procedural_dataset(tmp_path / "a", num_motions=6, seed=4))
    b = tree_bytes(ptm.write_procedural_dataset(tmp_path / "b", num_motions=6, seed=4))
    c = tree_bytes(ptm.write_procedural_dataset(tmp_path / "c", num_motions=6, seed=5))
    assert a == b
    assert a.keys() == c.keys() and a["new_joint_vecs/000000.npy"] != c["new_joint_vecs/000000.npy"]


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def failing_write(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_write(*args)

    real_write = ptm.write_motion
    monkeypatch.setattr(ptm, "write_motion", failing_write)
    with pytest.raises(KeyboardInterrupt):
        ptm.write_procedural_dataset(tmp_path / "data", num_motions=5)
    assert list(tmp_path.iterdir()) == []  # neither the root nor the partial sibling


def test_existing_root_is_reused_only_when_complete_and_the_same(tmp_path):
    root = ptm.write_procedural_dataset(tmp_path / "data", num_motions=4, seed=1)
    before = tree_bytes(root)
    assert ptm.write_procedural_dataset(root, num_motions=4, seed=1) == root
    assert tree_bytes(root) == before
    with pytest.raises(UserError, match="num_motions"):
        ptm.write_procedural_dataset(root, num_motions=5, seed=1)
    (root / "new_joints" / "000002.npy").unlink()
    with pytest.raises(UserError, match="incomplete"):
        ptm.write_procedural_dataset(root, num_motions=4, seed=1)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "train.txt").write_text("000000\n")
    with pytest.raises(UserError, match="not a complete procedural dataset"):
        ptm.write_procedural_dataset(tmp_path / "other", num_motions=4)


def test_bad_arguments_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="splits"):
        ptm.write_procedural_dataset(tmp_path / "x", num_motions=4, splits=(0.5, 0.2, 0.2))
    with pytest.raises(UserError, match="num_motions"):
        ptm.write_procedural_dataset(tmp_path / "x", num_motions=0)
    assert not (tmp_path / "x").exists()


def test_captions_per_motion_sets_the_whole_motion_lines(tmp_path):
    default = ptm.write_procedural_dataset(tmp_path / "three", num_motions=4, seed=2)
    five = ptm.write_procedural_dataset(tmp_path / "five", num_motions=4, seed=2, captions_per_motion=5)
    for root, count in ((default, 3), (five, 5)):
        for path in sorted((root / "texts").glob("*.txt")):
            whole = [line for line in path.read_text().splitlines() if line.endswith("#0.0#0.0")]
            assert len(whole) == count, path
    assert "captions_per_motion" not in json.loads((default / ptm.MANIFEST).read_text())  # older sets stay valid
    assert json.loads((five / ptm.MANIFEST).read_text())["captions_per_motion"] == 5
    assert ptm.dataset_name(4, 2) == "procedural_text_motion-v3-n4-seed2"
    assert ptm.dataset_name(4, 2, captions_per_motion=5) == "procedural_text_motion-v3-n4-seed2-c5"
    with pytest.raises(UserError, match="num_motions"):
        ptm.write_procedural_dataset(five, num_motions=4, seed=2)  # the same folder holds another set
    with pytest.raises(UserError, match="captions_per_motion"):
        ptm.write_procedural_dataset(tmp_path / "none", num_motions=4, captions_per_motion=0)
