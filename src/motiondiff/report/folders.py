"""What a folder written by motiondiff holds for its report: its kind, its motions for the player, its facts.

Folders are told apart by their files: generation.json (generate, edit, edit=timeline; its `mode` says which edit),
metrics.md (evaluate), comparison.md (compare), evaluations.md (evaluate sweep_dir=...), sweep_demo.md (make sweep).
Motions come from generation.json's samples and skeleton: `joints` (T, J, 3) or `keypoints` (T, J, 2) files per
sample (text generation, edits, timelines), samples.npy (K, N, J, 2) and long_dance.npy (dance generation), and
source_motion.npy (an edit's source, shown beside its edits as the real motion).
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from motiondiff.core.errors import UserError
from motiondiff.report.player import PlayerMotion

GENERATION_FILE = "generation.json"  # written by generate, edit and edit=timeline (generation.prompts.SUMMARY_FILE)
SOURCE_FILE = "source_motion.npy"
DANCE_SAMPLES, LONG_DANCE = "samples.npy", "long_dance.npy"
MAX_PANELS = 24  # samples in one player; a page of more would be slow to open and draw
KINDS = (  # (file that marks the kind, title); the first present names the folder
    ("comparison.md", "Comparison"),
    ("evaluations.md", "Sweep evaluations"),
    ("metrics.md", "Evaluation"),
    ("sweep_demo.md", "Sweep demo"),
)


@dataclass(frozen=True)
class PlayerGroup:
    """Motions played together in one player, with the element id it mounts on and a heading."""

    element_id: str
    title: str
    motions: tuple
    note: str = ""  # what a reader should know (samples left out, ...)


def read_generation(folder: Path) -> Optional[dict]:
    """generation.json of the folder, or None when it has none; UserError when it is not JSON."""
    path = folder / GENERATION_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"'{path}' is not valid JSON ({error.msg}, line {error.lineno}); was it cut short?") from None


def folder_title(folder: Path, generation: Optional[dict]) -> str:
    """What the folder is: 'Generation', 'Edit: in_between', 'Timeline', 'Evaluation', 'Comparison', ..."""
    if generation is not None:
        mode = generation.get("mode")
        if mode == "timeline":
            return "Timeline"
        return f"Edit: {mode}" if mode else "Generation"
    for marker, title in KINDS:
        if (folder / marker).is_file():
            return title
    return "Report"


def load_motion(path: Path, dims: Optional[int] = None) -> np.ndarray:
    """A motion file as a float array; UserError naming the file when it is missing or of another shape."""
    if not path.is_file():
        raise UserError(f"'{path}' is listed in generation.json but missing; the folder is incomplete.")
    array = np.load(path, allow_pickle=False)
    if array.ndim < 3 or array.shape[-1] not in (2, 3) or (dims is not None and array.shape[-1] != dims):
        raise UserError(f"'{path}' has shape {array.shape}; expected motions of (frames, joints, 2 or 3).")
    return array


def frame_prompts(generation: dict, frames: int) -> Optional[tuple]:
    """A timeline's active prompt for each of `frames` frames (the last segment's past its end); None otherwise."""
    segments = (generation.get("timeline") or {}).get("segments")
    if not segments:
        return None
    prompts = []
    for segment in segments:
        prompts += [segment["prompt"]] * (int(segment["end_frame"]) - int(segment["start_frame"]))
    prompts = prompts[:frames] + [segments[-1]["prompt"]] * max(0, frames - len(prompts))
    return tuple(prompts)


def edit_phases(generation: dict, frames: int, prompt: str) -> Optional[tuple]:
    """An edit over frames (in_between, prefix, suffix): each frame's 'kept from the source' or 'generated'; None for
    edits of joints (body_part, path), which keep part of every frame, and for folders that are not edits."""
    edit = generation.get("edit") or {}
    if not edit.get("kept_frames") or edit.get("kept_joints"):
        return None
    generated = f"generated · {prompt}" if prompt else "generated"
    phases = [generated] * frames
    for start, end in edit["kept_frames"]:
        for frame in range(max(0, int(start)), min(frames, int(end))):
            phases[frame] = "kept from the source"
    return tuple(phases)


def edit_caption(generation: dict, prompt: str) -> str:
    """An edit's caption: its mode and the source frames it kept, then its prompt."""
    edit = generation.get("edit") or {}
    kept = ", ".join(f"{start}-{end - 1}" for start, end in edit.get("kept_frames", []))
    words = f"{generation['mode']}: kept frames {kept}" if kept else str(generation["mode"])
    return f"{words} · {prompt}" if prompt else words


def sample_motions(folder: Path, generation: dict, skeleton: dict) -> list:
    """One PlayerMotion per sample listed in generation.json (joints or keypoints file, prompt)."""
    parents, fps = tuple(skeleton["parents"]), float(skeleton["fps"])
    names = tuple(skeleton["joint_names"]) if skeleton.get("joint_names") else None
    motions = []
    for index, sample in enumerate(generation.get("samples", [])):
        name = sample.get("joints") or sample.get("keypoints")
        if name is None:
            continue
        joints = load_motion(folder / Path(name).name)
        prompt = str(sample.get("prompt") or "")
        prompts = frame_prompts(generation, len(joints))
        if prompts is not None:
            caption = f"timeline of {len(generation['timeline']['segments'])} prompts"
        elif generation.get("mode"):
            caption = edit_caption(generation, prompt)
            prompts = edit_phases(generation, len(joints), prompt)
        else:
            caption = prompt
        motions.append(PlayerMotion(joints, parents, fps, f"sample {index}", caption, prompts, names))
    return motions


def dance_motions(folder: Path, skeleton: dict) -> tuple:
    """(windows, long dance or None) of a dance generation folder (samples.npy, long_dance.npy)."""
    parents, fps = tuple(skeleton["parents"]), float(skeleton["fps"])
    names = tuple(skeleton["joint_names"]) if skeleton.get("joint_names") else None
    samples = load_motion(folder / DANCE_SAMPLES)
    if samples.ndim != 4:
        raise UserError(f"'{folder / DANCE_SAMPLES}' has shape {samples.shape}; expected (samples, frames, joints, D).")
    windows = [PlayerMotion(window, parents, fps, f"sample {i}", "", None, names) for i, window in enumerate(samples)]
    long = None
    if (folder / LONG_DANCE).is_file():
        chained = load_motion(folder / LONG_DANCE)
        long = PlayerMotion(chained, parents, fps, "chained windows", f"{len(chained)} frames", None, names)
    return windows, long


def source_motion(folder: Path, generation: dict, skeleton: dict) -> Optional[PlayerMotion]:
    """An edit's source motion (source_motion.npy) as the real motion beside the edits, or None."""
    if not (folder / SOURCE_FILE).is_file():
        return None
    source = generation.get("source") or {}
    where = Path(str(source.get("path", ""))).name
    caption = f"the source motion{f' ({where})' if where else ''}, as the run sees it"
    names = tuple(skeleton["joint_names"]) if skeleton.get("joint_names") else None
    joints = load_motion(folder / SOURCE_FILE)
    return PlayerMotion(
        joints, tuple(skeleton["parents"]), float(skeleton["fps"]), "source (real)", caption, None, names
    )


def capped(motions: list, real: list) -> tuple:
    """(the real motions and at most MAX_PANELS samples, a note when some were left out)."""
    if len(motions) <= MAX_PANELS:
        return tuple(real + motions), ""
    note = f"The player shows the first {MAX_PANELS} of {len(motions)} samples; all are files in this folder."
    return tuple(real + motions[:MAX_PANELS]), note


def player_groups(folder: Path, generation: Optional[dict]) -> tuple:
    """(the PlayerGroups of the folder's motions, a note when it has motions the player cannot show)."""
    if generation is None:
        return [], ""
    skeleton = generation.get("skeleton")
    if not skeleton:
        return [], (
            "This folder's generation.json records no skeleton (it was written by an older motiondiff), "
            "so its motions are not in the player; the videos and .npy files are."
        )
    if (folder / DANCE_SAMPLES).is_file():
        windows, long = dance_motions(folder, skeleton)
        motions, note = capped(windows, [])
        groups = [PlayerGroup("player", "Samples", motions, note)]
        if long is not None:
            groups.append(PlayerGroup("player-long", "A longer dance: windows chained", (long,)))
        return groups, ""
    samples = sample_motions(folder, generation, skeleton)
    if not samples:
        return [], ""
    source = source_motion(folder, generation, skeleton)
    motions, note = capped(samples, [] if source is None else [source])
    title = "Source and edits" if source is not None else "Samples"
    return [PlayerGroup("player", title, motions, note)], ""
