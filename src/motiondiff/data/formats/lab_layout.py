"""The course framework's ("lab") layout: HumanML3D motions as 205 smplrifke features.

    <root>/smpl_rifke/<id>.npy                   (T, 205) smplrifke features, 20 fps (see smplrifke.py)
    <root>/caption_raw/<id>.txt                  one plain caption per line (no '#' fields, no sub-clips)
    <root>/humanml3d_{train,val,test}_split.txt  the ids of each split

The layout ships no statistics: the mean and std are computed over every frame of the loaded
training items each time the data is set up (a few seconds for the whole dataset). Everything
else (skips, counts, warnings) is the HumanML3D reader's.
"""

from pathlib import Path

import numpy as np

from motiondiff.data.formats.humanml3d_layout import WHOLE, Layout


def parse_plain_line(line: str) -> tuple:
    """A plain caption line captions the whole motion."""
    return line.strip(), *WHOLE


def training_statistics(root: Path, layout: Layout, clips: list) -> tuple:
    """Mean and std (F,) float32 over every frame of the training items."""
    assert clips, "statistics need at least one training item"
    frames = np.concatenate([clip.features for clip in clips]).astype(np.float64)  # (N, F)
    return frames.mean(0).astype(np.float32), frames.std(0).astype(np.float32)


LAB_LAYOUT = Layout(
    name="lab",
    representation="smplrifke",
    features_dir="smpl_rifke",
    captions_dir="caption_raw",
    split_file="humanml3d_{split}_split.txt",
    parse_line=parse_plain_line,
    statistics=training_statistics,
    required_files=(),
    hint="export the course data with smpl_rifke/, caption_raw/ and humanml3d_<split>_split.txt, "
    "or use dataset=text_motion for the embedded procedural data",
)
