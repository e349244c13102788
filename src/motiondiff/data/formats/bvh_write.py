"""Write BVH motion capture: a skeleton, local rotations and the root's path -> a .bvh file.

The inverse of `bvh.load_bvh`: each joint's rotation channels are intrinsic Euler angles in degrees,
composed in channel order (`Zrotation Xrotation Yrotation` means R = Rz @ Rx @ Ry), scipy's uppercase
`Rotation.from_euler` convention. Euler angles are unwrapped over time: each frame takes, of the
triples that give its rotation (either solution of the decomposition, any angle +-360), the one
closest to the previous frame's, so no channel jumps by 360 degrees or flips between solutions
(animation tools interpolate the channels). At gimbal lock the split between the first and last
angle is the one closest to the previous frame. Joints are written depth first, as BVH nests them.
"""

import io
import warnings
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from motiondiff.core.checks import frame_rate
from motiondiff.core.errors import UserError
from motiondiff.core.files import write_new_file
from motiondiff.data.kinematics.skeleton import Skeleton

ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")
POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")
END_SITE_FRACTION = 0.5  # a leaf's default End Site continues its bone by this fraction of the bone's length
LOCK_COS = 1e-6  # |cos(middle angle)| below this is gimbal lock: only the sum or difference of the others is defined
IDENTITY_TOLERANCE = 1e-6  # a joint without rotation channels must not rotate by more than this (matrix entries)


def check_order(order: str, where: str = "") -> str:
    """`order` if it is one of the six orders of X, Y, Z, else a UserError (`where`: e.g. " for joint 3")."""
    if not isinstance(order, str) or order not in ORDERS:
        raise UserError(f"Unknown Euler order {order!r}{where}; use one of {', '.join(ORDERS)}.")
    return order


def _lock_signs(order: str) -> tuple:
    """(s at +90, s at -90): at gimbal lock R depends on first + s * last only (s = +-1)."""
    signs = []
    for middle in (np.pi / 2, -np.pi / 2):
        a = Rotation.from_euler(order, [0.3, middle, 0.0]).as_matrix()
        b = Rotation.from_euler(order, [0.0, middle, 0.3]).as_matrix()
        signs.append(1.0 if np.allclose(a, b, atol=1e-9) else -1.0)
    return tuple(signs)


def _wrap_near(angles: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """angles + 2 pi k, each the closest to `reference` (same shapes)."""
    return angles + 2 * np.pi * np.round((reference - angles) / (2 * np.pi))


def euler_unwrapped(rotations: np.ndarray, order: str) -> np.ndarray:
    """Intrinsic Euler angles (T, K, 3) in radians of rotations (T, K, 3, 3), continuous over the frames."""
    frames, joints = rotations.shape[:2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Gimbal lock detected": handled below
        first = Rotation.from_matrix(rotations.reshape(-1, 3, 3)).as_euler(order).reshape(frames, joints, 3)
    second = np.stack([first[..., 0] + np.pi, np.pi - first[..., 1], first[..., 2] + np.pi], axis=-1)
    locked = np.abs(np.cos(first[..., 1])) < LOCK_COS  # (T, K)
    plus, minus = _lock_signs(order)
    sign = np.where(first[..., 1] > 0, plus, minus)  # (T, K)
    angles = np.empty((frames, joints, 3))
    angles[0] = first[0]
    previous = first[0]
    for t in range(frames):
        candidates = _wrap_near(np.stack([first[t], second[t]], axis=1), previous[:, None])  # (K, 2, 3)
        best = np.argmin(np.sum((candidates - previous[:, None]) ** 2, axis=-1), axis=1)  # (K,)
        current = candidates[np.arange(joints), best]  # (K, 3)
        if locked[t].any():  # only first + s * last is fixed: split it as close to the previous frame as can be
            k = locked[t]
            s = sign[t, k]
            shift = 0.5 * ((previous[k, 0] - current[k, 0]) - s * (previous[k, 2] - current[k, 2]))
            current[k, 0] += shift
            current[k, 2] -= s * shift
        angles[t] = current
        previous = current
    return angles


def _depth_first(parents) -> list:
    """Joint indices in the order BVH nests them (each joint followed by its subtrees, children in index order)."""
    children = [[] for _ in parents]
    for joint, parent in enumerate(parents):
        if parent >= 0:
            children[parent].append(joint)
    order, stack = [], [0]
    while stack:
        joint = stack.pop()
        order.append(joint)
        stack.extend(reversed(children[joint]))
    return order


def _channel_layout(names, order: str, channel_orders, channels) -> list:
    """Per joint, its channel names: `channels` as given, else positions for the root and rotations in order."""
    joints = len(names)
    if channels is not None:
        if len(channels) != joints:
            raise UserError(f"channels lists {len(channels)} joints but the skeleton has {joints}; give one per joint.")
        layout = [tuple(listed) for listed in channels]
    else:
        orders = [order] * joints if channel_orders is None else list(channel_orders)
        if len(orders) != joints:
            raise UserError(
                f"channel_orders lists {len(orders)} joints but the skeleton has {joints}; give one order per joint."
            )
        layout = [tuple(f"{a}rotation" for a in check_order(o, f" for joint {n}")) for n, o in zip(names, orders)]
        layout[0] = POSITION_CHANNELS + layout[0]
    for name, listed in zip(names, layout):
        unknown = [channel for channel in listed if channel not in POSITION_CHANNELS and channel[1:] != "rotation"]
        axes = "".join(channel[0] for channel in listed if channel[1:] == "rotation")
        if unknown or (axes and axes not in ORDERS):
            raise UserError(
                f"Joint {name} has channels {' '.join(listed)}; write three rotation channels in one of "
                f"the orders {', '.join(ORDERS)} (or none) and only Xposition/Yposition/Zposition besides."
            )
    if set(POSITION_CHANNELS) - set(layout[0]):
        raise UserError("The root has no Xposition Yposition Zposition channels, so its path cannot be written.")
    return layout


def _check_inputs(skeleton: Skeleton, local_rotations, root_positions, fps, names) -> None:
    """One-sentence UserErrors for shapes, non-finite values, the frame rate and joint names."""
    joints = skeleton.num_joints
    frames = len(local_rotations)
    if local_rotations.shape != (frames, joints, 3, 3) or frames == 0:
        raise UserError(
            f"local_rotations has shape {local_rotations.shape}; expected (frames > 0, {joints}, 3, 3) for this "
            "skeleton."
        )
    if root_positions.shape != (frames, 3):
        raise UserError(f"root_positions has shape {root_positions.shape}; expected ({frames}, 3), one per frame.")
    for what, values in (("local rotations", local_rotations), ("root positions", root_positions)):
        if not np.isfinite(values).all():
            raise UserError(f"The motion's {what} contain NaN or infinite values; fix the motion before writing a BVH.")
    if not np.isfinite(skeleton.offsets).all():
        raise UserError("The skeleton's offsets contain NaN or infinite values; fix the skeleton before writing a BVH.")
    frame_rate(fps)
    if len(names) != joints or any(not isinstance(n, str) or not n or len(n.split()) != 1 for n in names):
        raise UserError(f"Joint names {list(names)[:4]}... are not {joints} non-empty names without spaces.")


def _end_site(skeleton: Skeleton, joint: int, end_sites) -> np.ndarray:
    """A leaf's End Site offset: `end_sites[joint]` when given, else its bone continued (0 for the root)."""
    if end_sites is not None and end_sites[joint] is not None:
        return np.asarray(end_sites[joint], dtype=np.float64)
    return END_SITE_FRACTION * skeleton.offsets[joint] if skeleton.parents[joint] >= 0 else np.zeros(3)


def _hierarchy_text(skeleton: Skeleton, names, layout, end_sites, order: list) -> str:
    """The HIERARCHY block, joints nested depth first (`order`)."""
    children = [[] for _ in skeleton.parents]
    for joint, parent in enumerate(skeleton.parents):
        if parent >= 0:
            children[parent].append(joint)
    lines = ["HIERARCHY"]
    depth = {}
    closing = []  # (joint, indent) of open blocks, innermost last
    for joint in order:
        parent = skeleton.parents[joint]
        while closing and closing[-1][0] != parent:  # close the blocks of finished subtrees
            lines.append("\t" * closing.pop()[1] + "}")
        depth[joint] = 0 if parent < 0 else depth[parent] + 1
        pad = "\t" * depth[joint]
        x, y, z = skeleton.offsets[joint]
        lines += [f"{pad}{'ROOT' if parent < 0 else 'JOINT'} {names[joint]}", pad + "{"]
        lines.append(f"{pad}\tOFFSET {x:.6f} {y:.6f} {z:.6f}")
        lines.append(f"{pad}\tCHANNELS {len(layout[joint])}" + "".join(f" {c}" for c in layout[joint]))
        if not children[joint]:
            ex, ey, ez = _end_site(skeleton, joint, end_sites)
            lines += [f"{pad}\tEnd Site", f"{pad}\t{{", f"{pad}\t\tOFFSET {ex:.6f} {ey:.6f} {ez:.6f}", f"{pad}\t}}"]
        closing.append((joint, depth[joint]))
    lines += ["\t" * indent + "}" for _, indent in reversed(closing)]
    return "\n".join(lines) + "\n"


def channel_values(skeleton: Skeleton, local_rotations: np.ndarray, root_positions: np.ndarray, layout, order: list):
    """The MOTION values (T, C): for each joint in `order`, its channels of `layout` (degrees, file units)."""
    frames = len(local_rotations)
    columns = []
    angles = {}
    for axes in {"".join(n[0] for n in names if n[1:] == "rotation") for names in layout} - {""}:
        joints = [j for j, names in enumerate(layout) if "".join(n[0] for n in names if n[1:] == "rotation") == axes]
        degrees = np.degrees(euler_unwrapped(local_rotations[:, joints], axes))  # (T, K, 3)
        angles.update({joint: dict(zip(axes, degrees[:, k].T)) for k, joint in enumerate(joints)})
    for joint in order:
        rotating = joint in angles
        if not rotating and np.abs(local_rotations[:, joint] - np.eye(3)).max() > IDENTITY_TOLERANCE:
            raise UserError(
                f"Joint {skeleton.names[joint]} has no rotation channels but rotates; give it rotation channels."
            )
        for name in layout[joint]:
            if name in POSITION_CHANNELS:
                axis = POSITION_CHANNELS.index(name)
                source = root_positions[:, axis] if joint == 0 else np.full(frames, skeleton.offsets[joint, axis])
                columns.append(source)
            else:
                columns.append(angles[joint][name[0]])
    return np.stack(columns, axis=1)  # (T, C)


def write_bvh(
    path,
    skeleton: Skeleton,
    local_rotations: np.ndarray,  # (T, J, 3, 3) each joint's rotation in its parent's frame
    root_positions: np.ndarray,  # (T, 3) the root joint's path, in the skeleton's units
    fps: float,
    order: str = "ZXY",
    names=None,
    channel_orders=None,
    end_sites=None,
    channels=None,
) -> Path:
    """Write a new BVH file (never over an existing one); returns its path.

    `names` (J,) are written as given (default `skeleton.names`); `channel_orders` (J,) gives each joint
    its own rotation order (default `order` for all); `channels` (J,) gives each joint's full channel
    list as a file declares it (wins over both; a non-root position channel writes the OFFSET);
    `end_sites` (J,) the End Site offsets of leaves (None: the bone continued by half its length).
    """
    path = Path(path)
    check_order(order)
    local_rotations = np.asarray(local_rotations, dtype=np.float64)
    root_positions = np.asarray(root_positions, dtype=np.float64)
    names = tuple(skeleton.names if names is None else names)
    _check_inputs(skeleton, local_rotations, root_positions, fps, names)
    layout = _channel_layout(names, order, channel_orders, channels)
    if path.exists():
        raise UserError(f"'{path}' already exists: BVH export never overwrites a file; give a new path.")
    nesting = _depth_first(skeleton.parents)
    values = channel_values(skeleton, local_rotations, root_positions, layout, nesting)  # (T, C)
    text = io.StringIO()
    text.write(_hierarchy_text(skeleton, names, layout, end_sites, nesting))
    text.write(f"MOTION\nFrames: {len(values)}\nFrame Time: {1.0 / fps:.8f}\n")
    np.savetxt(text, values, fmt="%.6f", delimiter=" ")
    return write_new_file(path, lambda temporary: temporary.write_text(text.getvalue(), encoding="utf-8"), "BVH export")
