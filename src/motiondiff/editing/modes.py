"""Edit modes: what of a source motion an edit keeps, as known values over the result's frames x features.

Every mode returns an `EditPlan`: the result's frames N, `known` (N, F) normalised features (zero where
nothing is kept) and `keep` (N, F) bool, True where the sampler holds `known` at every step.

- `in_between`: keep the source's first and last `ends` frames (at both ends of `length` frames, default the
  source's), or the source frame ranges `keep` ([start, end), kept where they are); generate the frames between.
- `prefix`: the source (its last `context` frames) is the start; generate on to `length` frames.
- `suffix`: the source (its first `context` frames) is the end; generate the `length - context` frames before it.
- `body_part`: regenerate the columns of the joints given (a group of `masks.GROUPS` or joint names), keep the rest.
- `path`: keep the root trajectory (`masks.FeatureLayout.root_columns`), generate everything else.
Whole frames kept (the first three) hold every column, root and foot contacts included.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from omegaconf import DictConfig

from motiondiff.core.checks import whole_number
from motiondiff.core.errors import UserError
from motiondiff.data.info import KeypointData, MotionData
from motiondiff.editing.masks import FeatureLayout, feature_layout, select_joints


@dataclass(frozen=True)
class EditPlan:
    """What an edit keeps: known values over the result's frames and where they hold."""

    mode: str
    known: torch.Tensor  # (N, F) float32 normalised features, zero where nothing is kept
    keep: torch.Tensor  # (N, F) bool: True where `known` is held
    kept_joints: tuple = ()  # body_part and path: the names of the joints whose columns are kept

    def __post_init__(self):
        assert self.known.ndim == 2 and self.keep.shape == self.known.shape and self.keep.dtype == torch.bool
        if bool(self.keep.all()):
            raise UserError(
                f"edit={self.mode} keeps every value of all {self.frames} frames, so nothing is left to generate; "
                "keep fewer frames or joints, or raise length."
            )
        if not bool(self.keep.any()):
            raise UserError(f"edit={self.mode} keeps nothing of the source; keep some frames or joints.")

    @property
    def frames(self) -> int:
        return self.known.shape[0]

    def kept_frames(self) -> list:
        """[start, end) ranges of the frames where something is kept."""
        kept = self.keep.any(dim=1).tolist()
        edges = np.flatnonzero(np.diff([0, *kept, 0]))
        return [[int(start), int(end)] for start, end in zip(edges[::2], edges[1::2])]

    def summary(self) -> dict:
        """What generation.json records of the edit."""
        return {
            "mode": self.mode,
            "frames": self.frames,
            "kept_frames": self.kept_frames(),
            "kept_joints": list(self.kept_joints),
            "kept_fraction": round(float(self.keep.float().mean()), 4),
        }


def frames_plan(mode: str, source: torch.Tensor, placed: list, frames: int) -> EditPlan:
    """Whole source frames placed in a result of `frames` frames: `placed` holds (source slice, result start)."""
    known = source.new_zeros(frames, source.shape[1])  # (N, F)
    keep = torch.zeros(frames, source.shape[1], dtype=torch.bool)
    for part, start in placed:
        piece = source[part]  # (n, F)
        known[start : start + len(piece)] = piece
        keep[start : start + len(piece)] = True
    return EditPlan(mode, known, keep)


def in_between(
    source: torch.Tensor, keep: Optional[Sequence] = None, ends: int = 20, length: Optional[int] = None
) -> EditPlan:
    """Keep the source's (T, F) first and last `ends` frames at both ends of `length` frames (default T), or its
    frame ranges `keep` ([[start, end], ...], end excluded) where they are; the frames between are generated."""
    total = source.shape[0]
    frames = total if length is None else whole_number("length", length)
    if keep is None:
        ends = whole_number("edit.ends", ends)
        if ends > min(total, frames):
            raise UserError(
                f"edit.ends={ends} exceeds the {min(total, frames)} frames of the "
                f"{'source' if total <= frames else 'result'}; keep fewer frames at each end."
            )
        return frames_plan(
            "in_between", source, [(slice(0, ends), 0), (slice(total - ends, total), frames - ends)], frames
        )
    ranges = frame_ranges(keep, min(total, frames), "the source" if total <= frames else f"length={frames}")
    return frames_plan("in_between", source, [(slice(start, end), start) for start, end in ranges], frames)


def frame_ranges(keep, limit: int, what: str) -> list:
    """`keep` as [(start, end)] with 0 <= start < end <= limit, else a UserError."""
    try:
        ranges = [(int(start), int(end)) for start, end in keep]
    except (TypeError, ValueError):
        raise UserError(
            f"edit.keep={keep} must be a list of frame ranges, e.g. edit.keep=[[0,20],[100,120]]."
        ) from None
    for start, end in ranges:
        if not 0 <= start < end <= limit:
            raise UserError(
                f"edit.keep range [{start},{end}] lies outside the {limit} frames of {what}; "
                f"give [start,end] with 0 <= start < end <= {limit}."
            )
    return ranges


def prefix(source: torch.Tensor, length: int, context: Optional[int] = None) -> EditPlan:
    """The source's (T, F) last `context` frames (default all) start a motion of `length` frames; the rest is new."""
    total, frames = source.shape[0], whole_number("length", length)
    context = continuation_context(total, frames, context, "prefix")
    return frames_plan("prefix", source, [(slice(total - context, total), 0)], frames)


def suffix(source: torch.Tensor, length: int, context: Optional[int] = None) -> EditPlan:
    """The source's (T, F) first `context` frames (default all) end a motion of `length` frames; the rest is new."""
    total, frames = source.shape[0], whole_number("length", length)
    context = continuation_context(total, frames, context, "suffix")
    return frames_plan("suffix", source, [(slice(0, context), frames - context)], frames)


def continuation_context(total: int, frames: int, context: Optional[int], mode: str) -> int:
    """The source frames a prefix/suffix keeps: `context` (default all), fewer than the result's `frames`."""
    context = total if context is None else whole_number("edit.context", context)
    if context > total:
        raise UserError(f"edit.context={context} exceeds the source's {total} frames; use at most {total}.")
    if context >= frames:
        raise UserError(
            f"edit={mode} continues {context} source frames to length={frames} frames, leaving nothing to "
            f"generate; raise length above {context} or lower edit.context."
        )
    return context


def body_part(source: torch.Tensor, joints: tuple, layout: FeatureLayout) -> EditPlan:
    """Regenerate the columns of `joints` (indices) on every frame of the source (T, F); keep all other columns."""
    regenerated = torch.from_numpy(layout.columns(joints))  # (F,)
    keep = (~regenerated).expand(source.shape[0], -1).clone()  # (T, F)
    kept = tuple(name for joint, name in enumerate(layout.joint_names) if joint not in joints)
    return EditPlan("body_part", source.clone(), keep, kept)


def path(source: torch.Tensor, layout: FeatureLayout, root_name: str) -> EditPlan:
    """Keep the root trajectory's columns of the source (T, F) on every frame; generate everything else."""
    keep = torch.from_numpy(layout.root_mask()).expand(source.shape[0], -1).clone()  # (T, F)
    return EditPlan("path", source * keep, keep, (f"{root_name} trajectory",))


def plan_edit(edit: DictConfig, source: torch.Tensor, info: MotionData, length: Optional[int]) -> EditPlan:
    """The plan an `edit` config (configs/edit/<mode>.yaml) asks for on a source (T, F) of a run's data."""
    mode = edit.mode
    if mode not in MODES:
        raise UserError(f"edit.mode={mode} is not a mode; use one of: {', '.join(MODES)}.")
    if mode in ("body_part", "path") and length not in (None, source.shape[0]):
        raise UserError(f"edit={mode} keeps the source's {source.shape[0]} frames; drop length={length}.")
    if mode in ("prefix", "suffix") and length is None:  # the kept frames and half a window, at least one window
        window = info.window if isinstance(info, KeypointData) else info.max_frames
        length = max(window, (edit.context or source.shape[0]) + window // 2)
    return MODES[mode](edit, source, info, length)


MODES = {
    "in_between": lambda edit, source, info, length: in_between(source, edit.keep, edit.ends, length),
    "prefix": lambda edit, source, info, length: prefix(source, length, edit.context),
    "suffix": lambda edit, source, info, length: suffix(source, length, edit.context),
    "body_part": lambda edit, source, info, length: body_part(
        source, select_joints(edit.joints, info.joint_names, info.parents), feature_layout(info)
    ),
    "path": lambda edit, source, info, length: path(
        source, feature_layout(info), info.joint_names[info.parents.index(-1)]
    ),
}
