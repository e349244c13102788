"""Reading a text-motion dataset from disk: the HumanML3D layout (the course lab layout reuses this reader).

    <root>/new_joint_vecs/<id>.npy   (T, 263) HumanML3D features, 20 fps
    <root>/new_joints/<id>.npy       (T, 22, 3) joint positions (not read here)
    <root>/texts/<id>.txt            one annotation per line: caption#tokens#start#end, seconds
    <root>/{train,val,test}.txt      the ids of each split, one per line
    <root>/Mean.npy, Std.npy         (263,) statistics of the training features

Items, as the dataset's own loaders build them (ItemRules; text-to-motion's Text2MotionDatasetV2, which
MDM's loader repeats): the lines of a motion with start and end 0 (0.0#0.0) caption the whole motion, one
item named by its id. A line with another start or end captions the sub-clip of frames
[int(start * 20), int(end * 20)), its own item named `<id>#<start>#<end>` (times written as %g), with
`#<line>` added where several lines have the same times (subclips=per_line; per_span: they share one
item, as motiondiff did before 2026-12-07). A motion of max_source_frames frames or more is left out with
all its sub-clips, and so is a sub-clip that long (200 in the loaders; None keeps them all).

What cannot be used is left out and counted, one warning per reason and split: ids without a
feature file, unreadable feature files, features with NaN or infinity, items shorter than
min_frames, empty caption lines, lines with unreadable times, and motions left with no caption.
A split from which nothing loads is a UserError. A caption's `line` numbers the non-blank lines
of its file (as per-caption feature files do), so blank lines take no number.
"""

import logging
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np

from motiondiff.core.errors import UserError, first_sentence, require_file
from motiondiff.data.representations.registry import get_representation
from motiondiff.text.encoders import CaptionItem

log = logging.getLogger(__name__)

WHOLE = (0.0, 0.0)  # the start/end of a line that captions the whole motion
SUBCLIPS = ("per_line", "per_span")
LOADERS_MAX_SOURCE_FRAMES = 200  # the loaders leave out motions and sub-clips of 200 frames or more (both datasets)


@dataclass(frozen=True)
class ItemRules:
    """Which motions and captioned sub-clips of a split become items, and how sub-clip lines make items."""

    min_frames: int  # shorter motions and sub-clips are left out
    max_source_frames: Optional[int]  # motions (with their sub-clips) and sub-clips this long or longer are left out
    subclips: str  # per_line: each sub-clip line its own item (the loaders); per_span: lines of the same times share

    def __post_init__(self):
        assert self.subclips in SUBCLIPS, self.subclips


@dataclass(frozen=True)
class Layout:
    """Where a dataset layout keeps features, captions, split files and statistics."""

    name: str
    representation: str
    features_dir: str
    captions_dir: str
    split_file: str  # a format string of {split}
    parse_line: Callable  # caption line -> (caption, word/POS tokens, start s, end s); ValueError on bad times
    statistics: Callable  # (root, layout, training clips) -> (mean, std), each (features,) float32
    required_files: tuple  # files besides the split files that must exist under the root
    hint: str  # how to get a dataset in this layout
    clip_fps: Optional[float] = None  # frames per second of caption times; None = the representation's fps

    @property
    def features(self) -> int:
        return get_representation(self.representation).features

    @property
    def fps(self) -> float:
        return get_representation(self.representation).fps

    def split_path(self, root: Path, split: str) -> Path:
        return Path(root) / self.split_file.format(split=split)


@dataclass
class MotionClip:
    """One dataset item: a motion (or sub-clip) and its usable captions."""

    name: str
    features: np.ndarray  # (T, F) float32
    captions: tuple  # CaptionItem, ... (at least one)


class SkipTally:
    """How many ids, items or lines were left out, by reason; reported as one warning per reason."""

    def __init__(self):
        self.counts, self.first = Counter(), {}

    def add(self, reason: str, example: str) -> None:
        self.counts[reason] += 1
        self.first.setdefault(reason, example)

    def report(self, where: str) -> None:
        for reason, count in self.counts.items():
            log.warning("%s: %d %s (first: %s).", where, count, reason, self.first[reason])

    def summary(self) -> str:
        return "; ".join(f"{count} {reason}" for reason, count in self.counts.items()) or "the split lists no ids"


def check_root(root: Path, layout: Layout, splits) -> None:
    """A UserError naming the first missing piece of the layout under `root`."""
    if not root.is_dir():
        raise UserError(f"dataset root '{root}' is not a directory ({layout.hint}).")
    if not (root / layout.features_dir).is_dir():
        raise UserError(
            f"'{root / layout.features_dir}' not found: '{root}' is not a {layout.name} dataset ({layout.hint})."
        )
    for split in splits:
        require_file(layout.split_path(root, split), f"{split} split file", layout.hint)
    for name in layout.required_files:
        require_file(root / name, f"{layout.name} statistics file", layout.hint)


def read_split_ids(path: Path) -> list:
    """The ids listed in a split file, in order, each once."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"split file '{path}' is not UTF-8 text; it must list one motion id per line.") from None
    return list(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))


def parse_humanml3d_line(line: str) -> tuple:
    """`caption#tokens#start#end` -> (caption, tokens, start, end); a line without times captions the whole motion."""
    fields = line.split("#")
    caption = fields[0].strip()
    tokens = tuple(fields[1].split()) if len(fields) > 1 else ()
    if len(fields) < 4:
        return caption, tokens, *WHOLE
    start, end = float(fields[2]), float(fields[3])
    if math.isinf(start) or math.isinf(end):
        raise ValueError(f"infinite time in {line!r}")
    return caption, tokens, 0.0 if math.isnan(start) else start, 0.0 if math.isnan(end) else end


def read_captions(root: Path, layout: Layout, motion_id: str, tally: SkipTally) -> list:
    """[(CaptionItem, start, end)] of the usable lines of one motion's caption file (none if it is absent)."""
    path = root / layout.captions_dir / f"{motion_id}.txt"
    if not path.is_file():
        return []
    captions = []
    lines = path.read_text(encoding="utf-8", errors="replace").rstrip().splitlines()
    numbered = [line for line in lines if line.strip()]
    for _ in range(len(lines) - len(numbered)):
        tally.add("caption lines are empty and were ignored", str(path))
    for number, line in enumerate(numbered):
        try:
            text, tokens, start, end = layout.parse_line(line)
        except ValueError:
            tally.add("caption lines have unreadable start/end times and were ignored", f"{path}:{number + 1}")
            continue
        if not text:
            tally.add("caption lines are empty and were ignored", f"{path}:{number + 1}")
            continue
        captions.append((CaptionItem(motion_id, number, text, tokens), start, end))
    return captions


def load_features(root: Path, layout: Layout, motion_id: str, tally: SkipTally):
    """One motion's features (T, F) float32, or None (counted in `tally`) when absent, unreadable or not finite."""
    path = root / layout.features_dir / f"{motion_id}.npy"
    if not path.is_file():
        tally.add(f"ids have no feature file in {layout.features_dir}/ and were skipped", motion_id)
        return None
    try:
        features = np.load(path, allow_pickle=False)
    except Exception:  # a truncated or foreign file: leave the motion out
        tally.add("feature files could not be read as .npy arrays and were skipped", str(path))
        return None
    if not isinstance(features, np.ndarray):  # an .npz archive under a .npy name
        features.close()
        tally.add("feature files could not be read as .npy arrays and were skipped", str(path))
        return None
    if features.ndim != 2 or features.shape[1] != layout.features or features.dtype.kind not in "iuf":
        raise UserError(
            f"'{path}' holds an array of shape {features.shape} and dtype {features.dtype}; the {layout.name} layout "
            f"expects (frames, {layout.features}) {layout.representation} features: is dataset.layout right?"
        )
    features = features.astype(np.float32)
    if not np.isfinite(features).all():
        tally.add("motions contain NaN or infinite values and were skipped", str(path))
        return None
    return features


def frame_index(seconds: float, fps: float) -> int:
    """The frame at `seconds`: int(seconds * fps), as the dataset's loaders compute it."""
    return int(seconds * fps)


def clips_of(
    motion_id: str, features: np.ndarray, captions: list, layout: Layout, rules: ItemRules, tally: SkipTally
) -> list:
    """The items of one motion under `rules`: the whole motion and its captioned sub-clips."""
    longest = rules.max_source_frames
    if longest is not None and len(features) >= longest:
        tally.add(
            f"motions are max_source_frames={longest} frames or longer and were skipped with their sub-clips", motion_id
        )
        return []
    spans = {}
    for item, start, end in captions:
        spans.setdefault((start, end), []).append(item)
    groups = []  # (name, start, end, caption items)
    for (start, end), items in spans.items():
        if (start, end) == WHOLE:
            groups.append((motion_id, start, end, items))
        elif rules.subclips == "per_span" or len(items) == 1:
            groups.append((f"{motion_id}#{start:g}#{end:g}", start, end, items))
        else:
            groups += [(f"{motion_id}#{start:g}#{end:g}#{item.line}", start, end, [item]) for item in items]
    clips = []
    for name, start, end, items in groups:
        if (start, end) == WHOLE:
            frames = features
        else:
            fps = layout.clip_fps or layout.fps
            frames = features[frame_index(start, fps) : frame_index(end, fps)]  # (t, F)
        if len(frames) < rules.min_frames:
            tally.add(
                f"motions or sub-clips are shorter than min_frames={rules.min_frames} frames and were skipped", name
            )
            continue
        if longest is not None and len(frames) >= longest:
            tally.add(f"sub-clips are max_source_frames={longest} frames or longer and were skipped", name)
            continue
        clips.append(MotionClip(name, np.ascontiguousarray(frames), tuple(items)))
    return clips


def read_split(root: Path, layout: Layout, split: str, rules: ItemRules) -> list:
    """Every usable item of a split, in split-file order (skips reported); a UserError when none is."""
    tally = SkipTally()
    clips = list(split_clips(root, layout, split, rules, tally))
    tally.report(str(layout.split_path(root, split)))
    return clips


def split_clips(
    root: Path, layout: Layout, split: str, rules: ItemRules, tally: SkipTally, each_motion: Optional[Callable] = None
) -> Iterator[MotionClip]:
    """The usable clips of a split one motion at a time, in split-file order, skips counted in `tally` (each_motion()
    is called before each motion is read); a UserError after the last motion when none was usable."""
    path = layout.split_path(root, split)
    require_file(path, f"{split} split file", layout.hint)
    ids, found = read_split_ids(path), False
    for motion_id in ids:
        if each_motion is not None:
            each_motion()
        features = load_features(root, layout, motion_id, tally)
        if features is None:
            continue
        captions = read_captions(root, layout, motion_id, tally)
        if not captions:
            tally.add("motions have no usable caption and were skipped", motion_id)
            continue
        for clip in clips_of(motion_id, features, captions, layout, rules, tally):
            found = True
            yield clip
    if not found:
        raise UserError(
            f"no motion of the {len(ids)} ids in '{path}' could be loaded from '{root}' ({tally.summary()}); "
            f"check that the split file belongs to this dataset ({layout.hint})."
        )


def split_caption_items(root: Path, layout: Layout, split: str) -> list:
    """Every usable caption of the motions a split file lists (no features read, nothing reported)."""
    path = layout.split_path(root, split)
    if not path.is_file():
        return []
    tally = SkipTally()
    return [item for motion_id in read_split_ids(path) for item, _, _ in read_captions(root, layout, motion_id, tally)]


def read_statistics(root: Path, layout: Layout, clips: list) -> tuple:
    """Mean and std (F,) float32 from the layout's Mean.npy and Std.npy."""
    arrays = []
    for name in layout.required_files:
        path = root / name
        require_file(path, f"{layout.name} statistics file", layout.hint)
        try:
            array = np.load(path, allow_pickle=False)
        except Exception as error:  # empty, truncated or not a .npy file
            reason = first_sentence(error)
            raise UserError(f"'{path}' cannot be read as a .npy array ({reason}); regenerate it.") from None
        if not isinstance(array, np.ndarray) or array.shape != (layout.features,) or array.dtype.kind not in "iuf":
            found = (
                f"shape {array.shape} and dtype {array.dtype}" if isinstance(array, np.ndarray) else "an .npz archive"
            )
            raise UserError(f"'{path}' must hold {layout.features} finite numbers, got {found}; regenerate it.")
        if not np.isfinite(array).all():
            raise UserError(f"'{path}' must hold {layout.features} finite numbers, got NaN or infinity; regenerate it.")
        arrays.append(array.astype(np.float32))
    return tuple(arrays)


HUMANML3D_LAYOUT = Layout(
    name="humanml3d",
    representation="humanml3d",
    features_dir="new_joint_vecs",
    captions_dir="texts",
    split_file="{split}.txt",
    parse_line=parse_humanml3d_line,
    statistics=read_statistics,
    required_files=("Mean.npy", "Std.npy"),
    hint="run the HumanML3D preparation to create it, or use dataset=text_motion for the embedded procedural data",
)
