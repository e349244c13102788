"""The embedded text-to-motion dataset: procedural motions with captions, written in the HumanML3D layout.

Each motion is drawn from its own random stream (seed, index): a spec (`sample_spec`: one or two
actions with direction, side, repetitions, speed and frame ranges), the joints (`make_motion`)
and three captions (`captions_for`; `captions_per_motion` sets how many). `write_procedural_dataset`
writes, under one root:

    new_joint_vecs/<id>.npy   (T-1, 263) float32   HumanML3D features of the joints
    new_joints/<id>.npy       (T-1, 22, 3) float32 the joints recovered from those features
    texts/<id>.txt            `caption#lemma/POS ...#0.0#0.0` lines; some two-action motions add a
                              line for one action alone with its start and end in seconds (as the
                              dataset's sub-clip annotations: feature frames [start*20, end*20))
    train.txt, val.txt, test.txt   ids (6 digits), a seeded random split
    Mean.npy, Std.npy         (263,) over the training features, the std averaged per feature group
                              as the dataset's own statistics are
    specs.jsonl               per motion: id, split, length, actions (with frame ranges), captions
    procedural.json           the generator's settings; written last, it marks a complete dataset

Everything is written into a hidden sibling directory that is renamed into place at the end, so
an interrupted run never leaves a half dataset behind.
"""

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from motiondiff.core.checks import whole_number
from motiondiff.core.errors import UserError
from motiondiff.core.units import megabytes
from motiondiff.data.formats.bvh_to_humanml3d import caption_line
from motiondiff.data.procedural.actions import FPS, MIN_FRAMES, make_motion, sample_spec
from motiondiff.data.procedural.captions import captions_for
from motiondiff.data.representations import humanml3d_features as hml
from motiondiff.text.progress import Progress

__all__ = ["write_procedural_dataset", "make_motion", "sample_spec", "captions_for", "generate_motion"]

log = logging.getLogger(__name__)

GENERATOR_VERSION = 3  # 2: captions carry word/POS tokens (text.pos_tags) instead of word/OTHER; 3: a -s word after a
# pronoun tagged a verb, as spaCy does
MANIFEST = "procedural.json"
SPLIT_NAMES = ("train", "val", "test")
CAPTIONS_PER_MOTION = 3
SUBCLIP_FRACTION = 0.15  # two-action motions that also get a caption for one action alone


def motion_id(index: int) -> str:
    """The HumanML3D-style id of motion `index`: six digits."""
    return f"{index:06d}"


def generate_motion(seed: int, index: int, captions_per_motion: int = CAPTIONS_PER_MOTION) -> dict:
    """Motion `index` of the dataset with seed `seed`: spec, joints (T, 22, 3), captions and caption lines."""
    rng = np.random.default_rng([seed, index])
    spec = sample_spec(rng)
    joints = make_motion(spec, rng)  # (T, 22, 3)
    captions = captions_for(spec, rng, captions_per_motion)
    lines = [caption_line(text) for text in captions]
    subclip = None
    long_enough = [a for a in spec["actions"] if min(a["end"], spec["length"] - 1) - a["start"] >= MIN_FRAMES]
    if len(spec["actions"]) == 2 and long_enough and rng.random() < SUBCLIP_FRACTION:
        action = long_enough[rng.integers(len(long_enough))]
        start, end = action["start"], min(action["end"], spec["length"] - 1)  # feature frames
        text = captions_for({"length": spec["length"], "actions": [action]}, rng, 1)[0]
        subclip = {"caption": text, "start": start / FPS, "end": end / FPS}
        lines.append(f"{caption_line(text)[: -len('#0.0#0.0')]}#{start / FPS}#{end / FPS}")
    return {"spec": spec, "joints": joints, "captions": captions, "lines": lines, "subclip": subclip}


def split_ids(num_motions: int, seed: int, splits) -> dict:
    """{split name: sorted ids}: a seeded shuffle cut by the split fractions."""
    fractions = np.asarray(splits, dtype=float)
    if fractions.shape != (3,) or (fractions < 0).any() or abs(fractions.sum() - 1.0) > 1e-6:
        raise UserError(f"splits must be three non-negative fractions (train, val, test) summing to 1, got {splits!r}.")
    order = np.random.default_rng([seed, 2**31]).permutation(num_motions)
    cuts = np.round(np.cumsum(fractions)[:2] * num_motions).astype(int)
    return {name: sorted(motion_id(int(i)) for i in part) for name, part in zip(SPLIT_NAMES, np.split(order, cuts))}


class FeatureStatistics:
    """Mean and std (263,) of the training frames, merged motion by motion in float64 (Chan et al.)."""

    def __init__(self, features: int = hml.FEATURES):
        # One motion at a time: concatenating the 29k motions of a HumanML3D-size set ran out of memory.
        self.count, self.mean, self.squares = 0, np.zeros(features), np.zeros(features)  # squares: sum of (x - mean)^2

    def add(self, frames: np.ndarray) -> None:
        """Count the frames (T, 263) of one motion."""
        frames = frames.astype(np.float64)
        count, mean = len(frames), frames.mean(0)  # (263,)
        total, delta = self.count + count, mean - self.mean
        self.squares += ((frames - mean) ** 2).sum(0) + delta**2 * self.count * count / total
        self.mean += delta * count / total
        self.count = total

    def result(self) -> tuple:
        """(mean, std), each (263,) float32."""
        std = np.sqrt(self.squares / self.count)
        for part in hml.feature_slices().values():  # as the dataset's statistics: one scale per group
            std[part] = std[part].mean()
        return self.mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32)


def manifest(num_motions: int, seed: int, splits, captions_per_motion: int = CAPTIONS_PER_MOTION) -> dict:
    """The settings that determine a procedural dataset (captions_per_motion only when not the default 3)."""
    settings = {
        "generator": "motiondiff.data.procedural.text_motion",
        "version": GENERATOR_VERSION,
        "num_motions": int(num_motions),
        "seed": int(seed),
        "splits": [float(s) for s in splits],
    }
    if captions_per_motion != CAPTIONS_PER_MOTION:
        settings["captions_per_motion"] = int(captions_per_motion)
    return settings


def missing_parts(root: Path, num_motions: int) -> list:
    """What a complete procedural dataset under `root` would have that is not there."""
    names = [MANIFEST, "Mean.npy", "Std.npy", "specs.jsonl"] + [f"{name}.txt" for name in SPLIT_NAMES]
    missing = [name for name in names if not (root / name).is_file()]
    for folder, suffix in (("new_joint_vecs", ".npy"), ("new_joints", ".npy"), ("texts", ".txt")):
        count = len([p for p in (root / folder).glob(f"*{suffix}")]) if (root / folder).is_dir() else 0
        if count != num_motions:
            missing.append(f"{folder}/ ({count} of {num_motions} files)")
    return missing


def check_existing(root: Path, wanted: dict) -> None:
    """Accept an existing root holding exactly the wanted dataset; otherwise a UserError."""
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise UserError(
            f"'{root}' exists but is not a complete procedural dataset (no {MANIFEST}); "
            "remove it or choose another root."
        )
    try:
        found = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"Cannot read '{manifest_path}' ({error}); remove '{root}' to regenerate it.") from error
    if found != wanted:
        raise UserError(
            f"'{root}' holds a procedural dataset made with {found}, not {wanted}; "
            "remove it to regenerate, or choose another root."
        )
    missing = missing_parts(root, wanted["num_motions"])
    if missing:
        raise UserError(
            f"'{root}' is an incomplete procedural dataset (missing {', '.join(missing[:4])}); remove it to regenerate."
        )


def write_motion(folder: Path, motion_name: str, motion: dict) -> np.ndarray:
    """Write one motion's features, recovered joints and captions; return its features (T-1, 263)."""
    features = hml.joints_to_features(motion["joints"])  # (T-1, 263) float32
    recovered = hml.features_to_joints(features)  # (T-1, 22, 3)
    np.save(folder / "new_joint_vecs" / f"{motion_name}.npy", features.astype(np.float32))
    np.save(folder / "new_joints" / f"{motion_name}.npy", recovered.astype(np.float32))
    (folder / "texts" / f"{motion_name}.txt").write_text("\n".join(motion["lines"]) + "\n", encoding="utf-8")
    return features


def fill(folder: Path, num_motions: int, seed: int, splits, captions_per_motion: int = CAPTIONS_PER_MOTION) -> None:
    """Write the whole dataset into `folder` (an empty directory)."""
    for name in ("new_joint_vecs", "new_joints", "texts"):
        (folder / name).mkdir()
    split_of = {i: name for name, ids in split_ids(num_motions, seed, splits).items() for i in ids}
    statistics = FeatureStatistics()
    progress = Progress(num_motions, "writing procedural motions", unit="motions")
    with progress, open(folder / "specs.jsonl", "w", encoding="utf-8") as specs:
        for index in range(num_motions):
            name = motion_id(index)
            motion = generate_motion(seed, index, captions_per_motion)
            features = write_motion(folder, name, motion)
            if split_of[name] == "train":
                statistics.add(features)
            record = {"id": name, "split": split_of[name], **motion["spec"], "captions": motion["captions"]}
            if motion["subclip"] is not None:
                record["subclip"] = motion["subclip"]
            specs.write(json.dumps(record) + "\n")
            progress.update()
    for name in SPLIT_NAMES:
        ids = sorted(i for i, s in split_of.items() if s == name)
        (folder / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    if not statistics.count:
        raise UserError(
            f"The training split of {num_motions} motions is empty; use more motions or a larger train split."
        )
    mean, std = statistics.result()
    np.save(folder / "Mean.npy", mean)
    np.save(folder / "Std.npy", std)
    settings = manifest(num_motions, seed, splits, captions_per_motion)
    (folder / MANIFEST).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")


def estimated_size(num_motions: int, seed: int) -> int:
    """About the bytes the dataset takes on disk (as `du` counts them), from the motions' planned lengths."""
    block = 4096
    total = 0
    for index in range(num_motions):
        frames = sample_spec(np.random.default_rng([seed, index]))["length"] - 1  # features have T-1 frames
        for floats in (hml.FEATURES, hml.NUM_JOINTS * 3):  # new_joint_vecs/, new_joints/
            total += -(-(128 + frames * floats * 4) // block) * block
        total += block  # texts/<id>.txt
    return total + 2 * block + num_motions * 400  # statistics, split files; specs.jsonl


def dataset_name(num_motions: int, seed: int, captions_per_motion: int = CAPTIONS_PER_MOTION) -> str:
    """The folder name of a procedural dataset: the generator version, its size and seed (and -c<k> for k captions)."""
    captions = "" if captions_per_motion == CAPTIONS_PER_MOTION else f"-c{captions_per_motion}"
    return f"procedural_text_motion-v{GENERATOR_VERSION}-n{num_motions}-seed{seed}{captions}"


def write_procedural_dataset(
    root,
    num_motions: int = 2000,
    seed: int = 0,
    splits=(0.8, 0.05, 0.15),
    captions_per_motion: int = CAPTIONS_PER_MOTION,
) -> Path:
    """Generate the procedural text-motion dataset under `root` (HumanML3D layout) and return `root`.

    An existing complete dataset with the same settings is reused as it is; any other existing
    `root` is refused with a UserError.
    """
    root = Path(root)
    num_motions = whole_number("num_motions", num_motions, why="e.g. 2000")
    captions_per_motion = whole_number("captions_per_motion", captions_per_motion, why="e.g. 3")
    wanted = manifest(num_motions, seed, splits, captions_per_motion)
    split_ids(1, seed, splits)  # validate the fractions before any work
    if root.exists():
        check_existing(root, wanted)
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    log.info(
        "Writing the procedural dataset (%s motions, ~%s) to %s; later runs reuse it.",
        f"{num_motions:,}",
        megabytes(estimated_size(num_motions, seed)),
        root,
    )
    try:
        fill(folder, int(num_motions), int(seed), splits, captions_per_motion)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    try:
        os.rename(folder, root)
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
        if not root.exists():
            raise
        check_existing(root, wanted)  # another process finished the same dataset first
    return root
