"""Read BVH motion capture and turn it into 2D keypoints for the dance experiment.

The pipeline is `load_bvh` (parse the HIERARCHY and MOTION blocks into local rotations and
translations), `resample` (slerp to a target fps), `BvhClip.positions` (forward kinematics),
`select_joints` (reduce to the 20-joint body set through a joint map) and
`project_orthographic` (a 2D view); `load_bvh_keypoints` runs all of it. `load_bvh_hierarchy`
reads only the skeleton as declared (names with namespaces, channels, End Sites), to write motion onto it.

Conventions: Euler channels are intrinsic rotations in degrees, composed in the order the
channels are listed (`Zrotation Yrotation Xrotation` means R = Rz @ Ry @ Rx); a position
channel replaces the OFFSET for that axis; `End Site` leaves are not joints; namespaces are
stripped from joint names (`mixamorig:Hips` -> `Hips`); positions keep the file's units.
"""

import math
import numbers
import re
import warnings
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from motiondiff.core.errors import UserError, require_file
from motiondiff.data.kinematics.skeleton import BODY20_NAMES, BODY20_PARENTS, Skeleton, forward_kinematics

_POSITION_AXES = {"Xposition": 0, "Yposition": 1, "Zposition": 2}
_ROTATION_AXES = {"Xrotation": "X", "Yrotation": "Y", "Zrotation": "Z"}
MAX_DEPTH = 256  # deepest joint nesting read (real skeletons are a few dozen deep; bounds the recursion)
# Bounds checked before any array of frames is allocated: a frame time between 0.1 ms (10,000 fps) and a minute,
# at most MAX_HOURS of motion, MAX_FRAMES frames (as declared or after resampling) and MAX_GIB of frame arrays.
MIN_FRAME_TIME, MAX_FRAME_TIME = 1e-4, 60.0  # seconds
MAX_HOURS = 6.0
MAX_FRAMES = 10_000_000
MAX_GIB = 4.0
FRAME_BYTES_PER_JOINT = 8 * (9 + 3)  # float64 local rotation (3 x 3) and translation (3) of one joint in one frame

# Joints named alike in the Mixamo and CMU skeletons (source name, namespace stripped -> BODY20 name).
_BODY_MAP = {
    "Hips": "pelvis",
    "LeftUpLeg": "left_hip",
    "RightUpLeg": "right_hip",
    "LeftLeg": "left_knee",
    "RightLeg": "right_knee",
    "LeftFoot": "left_ankle",
    "RightFoot": "right_ankle",
    "LeftToeBase": "left_foot",
    "RightToeBase": "right_foot",
    "Head": "head",
    "LeftShoulder": "left_collar",
    "RightShoulder": "right_collar",
    "LeftArm": "left_shoulder",
    "RightArm": "right_shoulder",
    "LeftForeArm": "left_elbow",
    "RightForeArm": "right_elbow",
    "LeftHand": "left_wrist",
    "RightHand": "right_wrist",
}
# Joint maps onto BODY20, each with all 20 joints; joint_map="auto" tries them in this order.
JOINT_MAPS = {
    "mixamo": {**_BODY_MAP, "Spine2": "spine3", "Neck": "neck"},  # Spine2 carries the neck and the collars
    # CMU's Spine1 carries Neck and the shoulders; Neck (like LeftShoulder/RightShoulder) has a zero
    # offset, so it would coincide with spine3: Neck1, halfway to the head, is the neck.
    "cmu": {**_BODY_MAP, "Spine1": "spine3", "Neck1": "neck"},
}


@dataclass
class BvhClip:
    """A parsed BVH clip: the skeleton and per-frame local transforms."""

    skeleton: Skeleton
    local_rotations: np.ndarray  # (T, J, 3, 3)
    local_translations: np.ndarray  # (T, J, 3): offsets with position channels applied
    fps: float

    @property
    def num_frames(self) -> int:
        """Number of frames T."""
        return len(self.local_rotations)

    def positions(self) -> np.ndarray:
        """Global joint positions (T, J, 3) by forward kinematics."""
        return forward_kinematics(self.skeleton.parents, self.local_rotations, self.local_translations)


@dataclass
class _Joint:
    """One ROOT/JOINT as declared: name (namespace stripped), parent index, OFFSET and channel names."""

    name: str
    parent: int
    offset: tuple
    channels: tuple
    declared: str = ""  # the name as written in the file (`mixamorig:Hips`)
    end_site: tuple = None  # the OFFSET of its `End Site`, if it has one


@dataclass(frozen=True)
class BvhHierarchy:
    """A file's skeleton as declared: names with namespaces, channels and End Sites, for writing onto it."""

    declared_names: tuple  # as written in the file (`mixamorig:Hips`)
    skeleton: Skeleton  # names without namespaces, parents, OFFSETs (J, 3) in the file's units
    channels: tuple  # per joint, its channel names in file order (`("Xposition", ..., "Zrotation", ...)`)
    end_sites: tuple  # per joint, its End Site OFFSET (3,) or None

    def rotation_order(self, joint: int) -> str:
        """The joint's rotation axes in channel order ('ZXY'; '' when it has no rotation channels)."""
        return "".join(_ROTATION_AXES[name] for name in self.channels[joint] if name in _ROTATION_AXES)


def _bvh_error(path, line, problem: str) -> UserError:
    """A UserError naming the file, the line and the problem."""
    where = f" (line {line})" if line is not None else ""
    return UserError(f"BVH file '{path}'{where}: {problem}; fix or re-export the file.")


class _HierarchyParser:
    """Recursive-descent parser over the (token, line) pairs of a HIERARCHY block."""

    def __init__(self, tokens, path):
        self.tokens, self.path, self.pos = tokens, path, 0
        self.joints = []

    def take(self, expected=None) -> str:
        """The next token, checked against `expected` when given."""
        if self.pos >= len(self.tokens):
            last_line = self.tokens[-1][1] if self.tokens else None
            raise _bvh_error(self.path, last_line, "the HIERARCHY block ends early (missing '}' or MOTION)")
        word, line = self.tokens[self.pos]
        self.pos += 1
        if expected is not None and word != expected:
            raise _bvh_error(self.path, line, f"expected '{expected}' but found '{word}'")
        return word

    def line(self) -> int:
        """The line of the token just taken."""
        return self.tokens[self.pos - 1][1]

    def number(self, convert=float):
        """The next token as a finite number."""
        word = self.take()
        try:
            value = convert(word)
        except ValueError:
            raise _bvh_error(self.path, self.line(), f"expected a number but found '{word}'") from None
        if not math.isfinite(value):
            raise _bvh_error(self.path, self.line(), f"expected a finite number but found '{word}'")
        return value

    def channel(self, count: int) -> str:
        """The next token as a channel name of a `CHANNELS count ...` statement."""
        name = self.take()
        if name in ("JOINT", "End", "}"):
            raise _bvh_error(
                self.path, self.line(), f"'CHANNELS {count}' is followed by fewer than {count} channel names"
            )
        if name not in _POSITION_AXES and name not in _ROTATION_AXES:
            valid = ", ".join([*_POSITION_AXES, *_ROTATION_AXES])
            raise _bvh_error(self.path, self.line(), f"unknown channel name '{name}' (valid: {valid})")
        return name

    def channels(self, joint: str) -> tuple:
        """A `CHANNELS count name...` statement: at most three rotations, no axis twice in a row."""
        self.take("CHANNELS")
        count = self.number(int)
        if count < 0:
            raise _bvh_error(self.path, self.line(), f"'CHANNELS {count}' has a negative channel count")
        channels = tuple(self.channel(count) for _ in range(count))
        axes = "".join(_ROTATION_AXES[name] for name in channels if name in _ROTATION_AXES)
        if len(axes) > 3 or any(a == b for a, b in zip(axes, axes[1:])):
            problem = (
                f"joint '{joint}' has rotation channels {' '.join(axes)}: use at most three, no axis twice in a row"
            )
            raise _bvh_error(self.path, self.line(), problem)
        return channels

    def offset(self) -> tuple:
        """An `OFFSET x y z` statement."""
        self.take("OFFSET")
        return tuple(self.number() for _ in range(3))

    def joint(self, parent: int, depth: int = 0) -> None:
        """A ROOT/JOINT body (after its keyword), recursing into children."""
        if depth > MAX_DEPTH:
            raise _bvh_error(self.path, self.line(), f"the joints nest more than {MAX_DEPTH} levels deep")
        declared = self.take()
        name = declared.split(":")[-1]
        self.take("{")
        offset = self.offset()
        channels = self.channels(name)
        index = len(self.joints)
        self.joints.append(_Joint(name, parent, offset, channels, declared))
        while (word := self.take()) != "}":
            if word == "JOINT":
                self.joint(index, depth + 1)
            elif word == "End":
                self.take("Site")
                self.take("{")
                self.joints[index].end_site = self.offset()
                self.take("}")
            else:
                raise _bvh_error(self.path, self.line(), f"expected JOINT, End Site or '}}' but found '{word}'")

    def parse(self) -> list:
        """All joints of `HIERARCHY ROOT ...`, parents before children."""
        self.take("HIERARCHY")
        self.take("ROOT")
        self.joint(-1)
        if self.pos < len(self.tokens):
            word, line = self.tokens[self.pos]
            raise _bvh_error(self.path, line, f"expected MOTION after the skeleton but found '{word}'")
        return self.joints


# Capture rates preferred where a rounded Frame Time fits several whole rates (0.017 fits 58, 59 and 60).
COMMON_RATES = (10, 12, 15, 20, 24, 25, 30, 48, 50, 60, 72, 90, 100, 120, 144, 240)


def _fps_from_frame_time(text: str) -> float:
    """Frames per second: a rate of at most one decimal whose frame time is printed exactly (0.08 -> 12.5, KIT-ML's
    rate; 0.04 -> 25); else a common capture rate whose frame time is the print to its last digit, rounded or cut
    (0.016667 and 0.016666 -> 60, 0.033 -> 30, 0.017 -> 60, 0.011 -> 90), else the nearest whole rate that is
    (0.0303 -> 33); else the exact reciprocal (0.033367 -> 29.97). Not a finite positive number: returned as it is,
    for the caller to refuse."""
    frame_time = Decimal(text)
    exact = Decimal(1) / frame_time
    fps = float(exact)
    if not math.isfinite(fps) or fps <= 0:
        return fps
    if exact < 10**6 and (exact * 10) % 1 == 0:  # 12.5, 25, 120: that rate's frame time, not a rounding
        return fps
    step = 10.0 ** frame_time.as_tuple().exponent  # the print's last digit: rounded or cut (0.016666 is 1/60 too)
    explains = [n for n in (*COMMON_RATES, round(fps)) if n > 0 and abs(1.0 / n - float(frame_time)) <= step]
    common = [n for n in explains if n in COMMON_RATES]
    return float(min(common or explains, key=lambda n: abs(n - fps))) if explains else fps


def _is_number(text: str) -> bool:
    """Whether `text` parses as a float."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_motion_size(path, frames_line, time_line, frames: int, frame_time: float, channels: int, joints: int):
    """UserError unless the frame time is plausible and the declared frames fit the bounds (before any allocation)."""
    if not MIN_FRAME_TIME <= frame_time <= MAX_FRAME_TIME:
        problem = (
            f"'Frame Time: {frame_time:g}' seconds is not a capture rate (it must lie between {MIN_FRAME_TIME:g} s, "
            f"{1 / MIN_FRAME_TIME:,.0f} fps, and {MAX_FRAME_TIME:g} s); set it to the seconds per frame, e.g. 0.033333"
        )
        raise _bvh_error(path, time_line, problem)
    hours, gib = frames * frame_time / 3600, frames * (channels + joints * FRAME_BYTES_PER_JOINT / 8) * 8 / 2**30
    if frames > MAX_FRAMES or hours > MAX_HOURS or gib > MAX_GIB:
        problem = (
            f"'Frames: {frames}' at {frame_time:g} s per frame is {hours:,.1f} hours needing {gib:,.1f} GiB (at most "
            f"{MAX_FRAMES:,} frames, {MAX_HOURS:g} hours, {MAX_GIB:g} GiB); set Frames to the count of motion lines"
        )
        raise _bvh_error(path, frames_line, problem)


def _parse_motion(lines, first_line: int, num_channels: int, path, num_joints: int = 1) -> tuple:
    """(values (T, C), fps) from the lines after MOTION; `first_line` is the 1-based number of lines[0]."""
    rows = [(first_line + i, line) for i, line in enumerate(lines) if line.strip()]
    if len(rows) < 2:
        raise _bvh_error(path, first_line, "the MOTION block has no 'Frames:' and 'Frame Time:' lines")
    (frames_line, frames_text), (time_line, time_text) = rows[:2]
    frames_match = re.fullmatch(r"\s*Frames:\s*(\d+)\s*", frames_text)
    if not frames_match:
        raise _bvh_error(path, frames_line, f"expected 'Frames: <count>' but found '{frames_text.strip()[:40]}'")
    time_match = re.fullmatch(r"\s*Frame Time:\s*(\S+)\s*", time_text)
    try:
        fps = _fps_from_frame_time(time_match.group(1)) if time_match else None
    except (InvalidOperation, ZeroDivisionError, ValueError, TypeError):  # not a number, 0, nan or inf
        fps = None
    if fps is None or not math.isfinite(fps) or fps <= 0:
        found = time_text.strip()[:40]
        raise _bvh_error(path, time_line, f"expected 'Frame Time: <seconds>' (> 0) but found '{found}'")
    num_frames = int(frames_match.group(1))
    _check_motion_size(path, frames_line, time_line, num_frames, 1.0 / fps, num_channels, num_joints)
    values = np.empty((len(rows) - 2, num_channels))  # (T, C)
    for frame, (line_number, text) in enumerate(rows[2:]):
        fields = text.split()
        if len(fields) != num_channels:
            problem = f"frame {frame} has {len(fields)} values but the skeleton has {num_channels} channels"
            raise _bvh_error(path, line_number, problem + " (truncated or garbled?)")
        try:
            values[frame] = [float(field) for field in fields]
        except ValueError:
            bad = next(field for field in fields if not _is_number(field))[:40]
            raise _bvh_error(path, line_number, f"frame {frame} has a value that is not a number: '{bad}'") from None
    if len(values) != num_frames:
        raise _bvh_error(path, None, f"the MOTION block declares {num_frames} frames but holds {len(values)}")
    if num_frames == 0:
        raise _bvh_error(path, frames_line, "the MOTION block has no frames")
    if not np.isfinite(values).all():
        frame = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
        raise _bvh_error(path, rows[2 + frame][0], f"frame {frame} has a value that is not finite (nan or inf)")
    return values, fps


def _local_transforms(joints, values: np.ndarray) -> tuple:
    """Local rotations (T, J, 3, 3) and translations (T, J, 3) from the channel values (T, C)."""
    frames = len(values)
    rotations = np.tile(np.eye(3), (frames, len(joints), 1, 1))  # (T, J, 3, 3)
    translations = np.tile(np.array([j.offset for j in joints], dtype=float), (frames, 1, 1))  # (T, J, 3)
    column = 0
    for index, joint in enumerate(joints):
        axes, angle_columns = "", []
        for channel in joint.channels:
            if channel in _POSITION_AXES:
                translations[:, index, _POSITION_AXES[channel]] = values[:, column]
            else:
                axes += _ROTATION_AXES[channel]
                angle_columns.append(column)
            column += 1
        if axes:
            rotations[:, index] = Rotation.from_euler(axes, values[:, angle_columns], degrees=True).as_matrix()
    return rotations, translations


def _read_hierarchy(path) -> tuple:
    """(lines, index of the MOTION line or None, joints) of a BVH file; joint names unique without namespaces."""
    require_file(path, "BVH file")
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    motion_at = next((i for i, line in enumerate(lines) if line.strip() == "MOTION"), None)
    tokens = [(word, i + 1) for i, line in enumerate(lines[:motion_at]) for word in line.split()]
    if not tokens or tokens[0][0] != "HIERARCHY":
        raise _bvh_error(path, None, "this is not a BVH file (it does not start with HIERARCHY)")
    joints = _HierarchyParser(tokens, path).parse()
    names = tuple(joint.name for joint in joints)
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise _bvh_error(path, None, f"joint names repeat after stripping namespaces: {', '.join(duplicates)}")
    return lines, motion_at, joints


def load_bvh_hierarchy(path) -> BvhHierarchy:
    """The skeleton a BVH file declares (names as written, channels, End Sites); its motion is not read."""
    _, _, joints = _read_hierarchy(path)
    offsets = np.array([joint.offset for joint in joints], dtype=float)  # (J, 3)
    skeleton = Skeleton(tuple(j.name for j in joints), tuple(j.parent for j in joints), offsets)
    return BvhHierarchy(
        tuple(j.declared for j in joints),
        skeleton,
        tuple(j.channels for j in joints),
        tuple(j.end_site for j in joints),
    )


def load_bvh(path) -> BvhClip:
    """Parse a BVH file into a `BvhClip` (any Euler channel order, End Sites, any frame rate)."""
    lines, motion_at, joints = _read_hierarchy(path)
    if motion_at is None:
        raise _bvh_error(path, None, "the file has no MOTION block")
    names = tuple(joint.name for joint in joints)
    num_channels = sum(len(joint.channels) for joint in joints)
    if num_channels == 0:
        raise _bvh_error(path, None, "no joint has CHANNELS, so the file holds no motion")
    values, fps = _parse_motion(lines[motion_at + 1 :], motion_at + 2, num_channels, path, len(joints))
    rotations, translations = _local_transforms(joints, values)
    offsets = np.array([joint.offset for joint in joints], dtype=float)  # (J, 3)
    skeleton = Skeleton(names, tuple(joint.parent for joint in joints), offsets)
    return BvhClip(skeleton, rotations, translations, fps)


def resample(clip: BvhClip, fps: float, source: str = "the BVH clip") -> BvhClip:
    """The clip at `fps`: slerped rotations, lerped translations, never longer than the input."""
    if not (isinstance(fps, numbers.Real) and math.isfinite(fps) and fps > 0):
        raise UserError(f"Cannot resample a BVH clip to fps={fps!r}; use a positive number of frames per second.")
    if fps == clip.fps or clip.num_frames == 1:
        return BvhClip(clip.skeleton, clip.local_rotations, clip.local_translations, float(fps))
    duration = (clip.num_frames - 1) / clip.fps  # seconds
    num_out = int(math.floor(duration * fps + 1e-9)) + 1
    gib = num_out * clip.skeleton.num_joints * FRAME_BYTES_PER_JOINT / 2**30
    if num_out > MAX_FRAMES or gib > MAX_GIB:
        raise UserError(
            f"Resampling {source} ({duration:,.0f} s) to {fps:g} fps would make {num_out:,} frames ({gib:,.1f} GiB, "
            f"at most {MAX_FRAMES:,} frames and {MAX_GIB:g} GiB); use a lower fps or a shorter clip."
        )
    times = np.arange(clip.num_frames) / clip.fps  # (T,)
    new_times = np.minimum(np.arange(num_out) / fps, times[-1])  # (T',)
    rotations = np.stack(
        [
            Slerp(times, Rotation.from_matrix(clip.local_rotations[:, j]))(new_times).as_matrix()
            for j in range(clip.skeleton.num_joints)
        ],
        axis=1,
    )  # (T', J, 3, 3)
    source = new_times * clip.fps  # fractional input frame of each output frame
    lower = np.minimum(np.floor(source).astype(int), clip.num_frames - 2)
    weight = (source - lower)[:, None, None]
    translations = (1 - weight) * clip.local_translations[lower] + weight * clip.local_translations[lower + 1]
    return BvhClip(clip.skeleton, rotations, translations, float(fps))


def _fitting_map(names) -> str | None:
    """The name of the first joint map whose source joints are all in `names`, else None."""
    return next((key for key, mapping in JOINT_MAPS.items() if set(mapping) <= set(names)), None)


def select_joints(skeleton: Skeleton, positions: np.ndarray, joint_map: str = "auto", source: str = "the BVH skeleton"):
    """(names, parents, positions (T, J', 3)) through a joint map ('auto', a JOINT_MAPS key or 'none')."""
    names = skeleton.names
    if joint_map not in (*JOINT_MAPS, "auto", "none"):
        valid = ", ".join(["auto", "none", *JOINT_MAPS])
        raise UserError(f"Unknown joint_map '{joint_map}' for {source}; use one of: {valid}.")
    if joint_map == "auto":
        joint_map = _fitting_map(names)
        if joint_map is None:
            warnings.warn(
                f"No joint map ({', '.join(JOINT_MAPS)}) fits {source}; keeping all {len(names)} joints of the file.",
                stacklevel=2,
            )
            joint_map = "none"
    if joint_map == "none":
        return tuple(names), tuple(skeleton.parents), positions
    mapping = JOINT_MAPS[joint_map]
    missing = [name for name in mapping if name not in names]
    if missing:
        raise UserError(
            f"joint_map '{joint_map}' does not fit {source}: it lacks joints {', '.join(missing)}; "
            "use joint_map='auto' or 'none'."
        )
    source_of = {body: name for name, body in mapping.items()}
    index = [names.index(source_of[body]) for body in BODY20_NAMES]
    return BODY20_NAMES, BODY20_PARENTS, positions[:, index]  # (T, 20, 3)


def project_orthographic(
    positions: np.ndarray,  # (T, J, 3)
    azimuth_deg: float = 0.0,
    elevation_deg: float = 0.0,
    up_axis: str = "y",
) -> np.ndarray:
    """Orthographic 2D view (T, J, 2): screen x to the right, screen y up.

    Azimuth 0, elevation 0 looks along -z (returns (x, y)). The camera orbits the up axis by
    `azimuth_deg` (right-handed: at 90 it sits on +x looking along -x and returns (-z, y)) and
    is raised by `elevation_deg` to look down (at 90 it looks along -y and returns (x, -z)).
    With `up_axis="z"` the data is first turned z-up -> y-up by (x, y, z) -> (x, z, -y), so the
    front view looks along +y and returns (x, z).
    """
    positions = np.asarray(positions)
    if positions.ndim != 3 or positions.shape[-1] != 3:
        raise UserError(f"project_orthographic needs positions of shape (frames, joints, 3), got {positions.shape}.")
    if up_axis not in ("y", "z"):
        raise UserError(f"up_axis must be 'y' or 'z', got {up_axis!r}; set it to the data's vertical axis.")
    if not (math.isfinite(azimuth_deg) and math.isfinite(elevation_deg) and -90 <= elevation_deg <= 90):
        raise UserError(
            f"Camera angles azimuth={azimuth_deg!r}, elevation={elevation_deg!r} are invalid; "
            "use finite degrees with elevation in [-90, 90]."
        )
    if up_axis == "z":
        positions = np.stack([positions[..., 0], positions[..., 2], -positions[..., 1]], axis=-1)
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    right = np.array([math.cos(az), 0.0, -math.sin(az)])
    up = np.array([-math.sin(az) * math.sin(el), math.cos(el), -math.cos(az) * math.sin(el)])
    return positions @ np.stack([right, up], axis=1)  # (T, J, 2)


def load_bvh_keypoints(
    path,
    fps: float = 30.0,
    joint_map: str = "auto",
    azimuth_deg: float = 0.0,
    elevation_deg: float = 0.0,
    up_axis: str = "y",
) -> tuple:
    """(keypoints (T, J, 2) float32, names, parents, fps): load, resample, FK, select joints, project."""
    clip = resample(load_bvh(path), fps, source=f"BVH file '{path}'")
    names, parents, positions = select_joints(clip.skeleton, clip.positions(), joint_map, source=f"BVH file '{path}'")
    keypoints = project_orthographic(positions, azimuth_deg, elevation_deg, up_axis)
    return keypoints.astype(np.float32), names, parents, clip.fps
