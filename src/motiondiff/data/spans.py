"""Whether a window fits in both the training and the validation span of a clip: light, so that a command line is
checked (training.config_checks) before Lightning is imported."""

import math

from motiondiff.core.errors import UserError


def check_window_fits(frames: int, window: int, val_fraction: float, source: str) -> int:
    """The training span's frames; UserError unless a window fits in both the training and the validation span."""
    train_frames = frames - int(round(frames * val_fraction))
    if min(train_frames, frames - train_frames) < window:
        needed = int(math.ceil(window / min(val_fraction, 1 - val_fraction)))
        raise UserError(
            f"the sequence from '{source}' has {frames} frames, too short for windows of {window} frames in both "
            f"the training and the validation span (val_fraction={val_fraction}); it needs at least {needed} frames: "
            "lower dataset.window or use a longer clip."
        )
    return train_frames
