"""Does the caption steer the motion? Measurable properties of generated joints compared with captions.

`ground_travel` is the horizontal distance the root covers; `travel_gap` is how much further the
motions generated for travelling captions go than those for in-place captions. A model that ignores
its caption has a gap near 0 m.
"""

import numpy as np


def ground_travel(joints: np.ndarray) -> float:
    """Horizontal distance (m) between the root's first and last position; joints (T, J, 3), y up."""
    return float(np.linalg.norm(joints[-1, 0, [0, 2]] - joints[0, 0, [0, 2]]))


def travel_gap(generated: list, travelling: np.ndarray) -> float:
    """Mean ground travel of clips whose caption travels minus that of the others; generated: K x (T_k, J, 3)."""
    travelling = np.asarray(travelling, dtype=bool)
    assert len(generated) == len(travelling) and travelling.any() and not travelling.all()
    distances = np.array([ground_travel(clip) for clip in generated])  # (K,)
    return float(distances[travelling].mean() - distances[~travelling].mean())


def raised_side(joints: np.ndarray, left_wrist: int = 20, right_wrist: int = 21) -> str:
    """'left' or 'right': the wrist that rises higher above the root over the clip; joints (T, J, 3), SMPL22 order."""
    heights = joints[:, [left_wrist, right_wrist], 1] - joints[:, :1, 1]  # (T, 2)
    return "left" if heights[:, 0].max() > heights[:, 1].max() else "right"
