"""The interactive motion player: motions as JSON-ready data, and the HTML that mounts the JavaScript player on them.

The player itself is plain JavaScript and a canvas per motion (assets/player.js, assets/player.css, shipped as
package data and inlined into each page, so a page opens from the file system with no server and no network).
`window.MotionPlayer.mount(element, payload)` mounts a player on `motions_payload(...)`; a page made with
`player_html` mounts itself. Test hook (read-only): `window.motiondiffPlayers[element_id].state()` returns
`{frame, frames, playing, panels: [{label, joints_drawn, bones_drawn}]}`, and `setFrame(i)` is what the slider calls.
"""

import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Optional

import numpy as np

from motiondiff.core.errors import UserError

SIGNIFICANT_DIGITS = 4  # coordinates keep this many digits of the motion's extent: 1 mm on a 1-10 m motion


@dataclass(frozen=True)
class PlayerMotion:
    """One motion for the player: a panel of its own, labelled, with its caption (and active prompt) under it."""

    joints: np.ndarray  # (T, J, 3) metres, y up; or (T, J, 2) keypoints, y up
    parents: tuple[int, ...]  # parent index per joint, -1 for the root
    fps: float
    label: str  # "sample 0", "real", ...
    caption: str = ""
    prompts: Optional[tuple[str, ...]] = None  # per-frame active prompt (timelines), len T
    joint_names: Optional[tuple[str, ...]] = None  # colours bones left/right and rings the head, as the videos do


def check_motion(motion: PlayerMotion) -> np.ndarray:
    """The motion's joints as float64 (T, J, D); UserError naming the motion on a shape, value or skeleton misfit."""
    joints = np.asarray(motion.joints, dtype=np.float64)
    name = f"motion '{motion.label}'"
    if joints.ndim != 3 or joints.shape[-1] not in (2, 3) or joints.shape[0] < 1 or joints.shape[1] < 1:
        raise UserError(
            f"{name} has shape {joints.shape}; the player takes (frames, joints, 3) or (frames, joints, 2)."
        )
    if not np.isfinite(joints).all():
        raise UserError(f"{name} holds NaN or infinite coordinates; clean or interpolate them first.")
    frames, count = joints.shape[:2]
    if len(motion.parents) != count or any(
        not -1 <= int(p) < count or int(p) == j for j, p in enumerate(motion.parents)
    ):
        raise UserError(f"{name} has {count} joints but parents {tuple(motion.parents)}; pass the motion's skeleton.")
    if motion.joint_names is not None and len(motion.joint_names) != count:
        raise UserError(f"{name} has {count} joints but {len(motion.joint_names)} joint names; pass matching names.")
    if motion.prompts is not None and len(motion.prompts) != frames:
        raise UserError(f"{name} has {frames} frames but {len(motion.prompts)} prompts; give one prompt per frame.")
    if not (isinstance(motion.fps, (int, float)) and math.isfinite(motion.fps) and motion.fps > 0):
        raise UserError(f"{name} has fps={motion.fps!r}; give the frame rate as a positive number.")
    return joints


def decimals_for(joints: np.ndarray) -> int:
    """Decimals that keep SIGNIFICANT_DIGITS digits of the motion's largest extent (3 for a 1-10 m motion)."""
    extent = float((joints.max(axis=(0, 1)) - joints.min(axis=(0, 1))).max())
    if extent <= 0:
        return 3
    return int(np.clip(SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(extent)), 0, 8))


def prompt_runs(prompts: Sequence[str]) -> list:
    """Per-frame prompts as [[start, end, prompt], ...] runs of frames [start, end)."""
    runs: list = []
    for frame, prompt in enumerate(prompts):
        if runs and runs[-1][2] == prompt:
            runs[-1][1] = frame + 1
        else:
            runs.append([frame, frame + 1, str(prompt)])
    return runs


def motions_payload(motions: Sequence[PlayerMotion]) -> dict:
    """The JSON-ready data the JavaScript player takes: one panel per motion, prompts as runs of frames.

    Coordinates travel rounded to `decimals` (decimals_for) as whole numbers: `steps` holds frame 0's coordinates
    and then each frame's change from the one before (T*J*D numbers, frame-major), so a coordinate is
    10^-decimals times the running sum of its steps. That is 1 mm on a motion of metres, and pages about half
    the size of rounded decimals."""
    if not motions:
        raise UserError("the player needs at least one motion.")
    panels = []
    for motion in motions:
        joints = check_motion(motion)  # (T, J, D)
        decimals = decimals_for(joints)
        steps = np.round(joints * 10.0**decimals).astype(np.int64)  # (T, J, D) whole units of 10^-decimals
        steps[1:] -= steps[:-1].copy()  # each frame as its change from the one before: short numbers
        panels.append(
            {
                "label": str(motion.label),
                "caption": str(motion.caption),
                "fps": float(motion.fps),
                "frames": int(joints.shape[0]),
                "joints": int(joints.shape[1]),
                "dims": int(joints.shape[2]),
                "parents": [int(p) for p in motion.parents],
                "names": None if motion.joint_names is None else [str(n) for n in motion.joint_names],
                "decimals": decimals,
                "steps": steps.reshape(-1).tolist(),
                "prompts": None if motion.prompts is None else prompt_runs(motion.prompts),
            }
        )
    return {"version": 1, "autoplay": False, "panels": panels}


@lru_cache(maxsize=None)
def asset(name: str) -> str:
    """The text of a file shipped in motiondiff/report/assets/."""
    return resources.files("motiondiff.report").joinpath("assets", name).read_text(encoding="utf-8")


def player_assets() -> str:
    """The <style> and <script> of the player, to put once in a page's <head>."""
    return f"<style>\n{asset('player.css')}</style>\n<script>\n{asset('player.js')}</script>\n"


def script_json(data) -> str:
    """JSON safe inside a <script> element: no '</' (which could close it) and no HTML comment openers."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def player_html(motions: Sequence[PlayerMotion], element_id: str = "player") -> str:
    """A <div> holding the motions' data that mounts a player on itself once the page has loaded."""
    if not element_id.replace("-", "").replace("_", "").isalnum():
        raise UserError(f"element_id '{element_id}' must be letters, digits, '-' or '_' (it names an HTML element).")
    ident = html.escape(element_id)
    return (
        f'<div class="motion-player" id="{ident}"></div>\n'
        f'<script type="application/json" id="{ident}-data">{script_json(motions_payload(motions))}</script>\n'
        f'<script>MotionPlayer.mountFromData("{ident}");</script>\n'
    )
