"""The course framework's ("lab") layout: HumanML3D motions as 205 smplrifke features.

    <root>/smpl_rifke/<id>.npy                   (T, 205) smplrifke features, 20 fps, the course's
                                                 convention (see smplrifke.py)
    <root>/caption_raw/<id>.txt                  one plain caption per line (no '#' fields, no sub-clips)
    <root>/humanml3d_{train,val,test}_split.txt  the ids of each split
    <root>/tmr-rifke-mean.pt, tmr-rifke-std.pt   (205,) float32 standardisation tensors (torch.save)

The statistics are the course's shipped standardisation tensors, not recomputed on the split:
copy them from the course repository's `configs/dataset/standardization/` into the data folder.
The course's diffusion data reads the tmr-rifke pair (its configs/dataset/humanml3d.yaml); the layout's
own pair, `rifke-{mean,std}.pt`, is what runs saved before `dataset.statistics_files` read (dataset=lab
sets the tmr-rifke pair). They are read weights-only by `read_standardization` and applied as the
course does, (x - mean) / std with no eps: its std stores 1.0 for the one constant
feature (index 7, the root 6D component that removing the heading zeroes), and every other std is
above the normaliser's 1e-5 floor, which therefore changes nothing. Everything else (skips, counts,
warnings) is the HumanML3D reader's.
"""

from pathlib import Path

import numpy as np

from motiondiff.core.errors import UserError
from motiondiff.core.tensor_files import read_vector
from motiondiff.data.formats.humanml3d_layout import WHOLE, Layout
from motiondiff.data.representations.smplrifke import FEATURES

STANDARDIZATION_FILES = ("rifke-mean.pt", "rifke-std.pt")  # mean, std under the data folder
STANDARDIZATION_HINT = "copy it from the course repository's configs/dataset/standardization/"


def parse_plain_line(line: str) -> tuple:
    """A plain caption line captions the whole motion; it carries no word/POS tokens."""
    return line.strip(), (), *WHOLE


def read_standardization(path, features: int = FEATURES) -> np.ndarray:
    """One course standardisation tensor (features,) float32 from a torch.save file, read weights-only."""
    return read_vector(path, "lab statistics file", STANDARDIZATION_HINT, features)


def course_statistics(root: Path, layout: Layout, clips: list) -> tuple:
    """Mean and std (F,) float32 from the layout's standardisation tensors (the clips are not used)."""
    mean_path, std_path = (Path(root) / name for name in layout.required_files)
    mean, std = read_standardization(mean_path, layout.features), read_standardization(std_path, layout.features)
    if (std <= 0).any():
        index = int(np.flatnonzero(std <= 0)[0])
        raise UserError(
            f"'{std_path}' must hold positive standard deviations, got {std[index]:g} at feature {index}; "
            f"{STANDARDIZATION_HINT}."
        )
    return mean, std


LAB_LAYOUT = Layout(
    name="lab",
    representation="smplrifke",
    features_dir="smpl_rifke",
    captions_dir="caption_raw",
    split_file="humanml3d_{split}_split.txt",
    parse_line=parse_plain_line,
    statistics=course_statistics,
    required_files=STANDARDIZATION_FILES,
    hint="export the course data with smpl_rifke/, caption_raw/ and humanml3d_<split>_split.txt, and copy "
    "the standardisation tensors from the course repository's configs/dataset/standardization/ beside them, "
    "or use dataset=text_motion for the embedded procedural data",
)
