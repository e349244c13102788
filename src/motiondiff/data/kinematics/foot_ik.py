"""Planted feet pinned by inverse kinematics: each foot held where its contact began, by turning the leg above it.

The animators' clean-up for foot sliding (GANimator and SinMDM post-process their dances the same way), for any
skeleton: a foot joint in contact (low and slow, `Contacts`) is pinned to its position on the contact's first frame
for the whole contact; over BLEND_FRAMES frames on either side the goal slides linearly from the foot's own position
to the pin, so a foot does not jump when it lands or lifts. Cyclic coordinate descent (CCD) then turns up to CHAIN
joints above each foot (a human's knee and hip, a crab leg's three upper joints), nearest first, each time by the
rotation that swings the foot onto the line to its goal. Only those joints' local rotations change: the root, every
other joint and every bone length stay as they were.

Arrays are numpy float64 in one coordinate system: local rotations (T, J, 3, 3) acting on column vectors,
translations (T, J, 3) (the offsets, the root's position for the root), positions (T, J, 3).
"""

import numpy as np

from motiondiff.data.kinematics.inverse import unit

CHAIN = 3  # joints turned above each foot
ITERATIONS = 15  # CCD sweeps over every foot and chain joint
BLEND_FRAMES = 4  # frames over which a pin fades in before a contact and out after it


def ancestry(parents, joint: int) -> list:
    """The joints from the root down to `joint`, both included."""
    path = [joint]
    while parents[path[0]] >= 0:
        path.insert(0, parents[path[0]])
    return path


def path_transforms(parents, local: np.ndarray, translations: np.ndarray, path: list) -> tuple:
    """({joint: global rotation (T, 3, 3)}, {joint: position (T, 3)}) along `path` (ancestry), by forward
    kinematics of those joints only: all a joint's own position and rotation depend on."""
    rotations, positions = {}, {}
    for joint in path:
        parent = parents[joint]
        if parent < 0:
            rotations[joint], positions[joint] = local[:, joint], translations[:, joint]
        else:
            rotations[joint] = rotations[parent] @ local[:, joint]
            offset = np.einsum("tab,tb->ta", rotations[parent], translations[:, joint])
            positions[joint] = positions[parent] + offset
    return rotations, positions


def contact_pins(feet_positions: np.ndarray, planted: np.ndarray, blend: int = BLEND_FRAMES) -> tuple:
    """(goals (T, F, 3), weights (T, F) in [0, 1]) of feet positions (T, F, 3) and pairwise contacts (T - 1, F):
    frames t and t + 1 of a planted pair share one contact, pinned to the foot's position on its first frame with
    weight 1; the weight falls linearly with the distance from the contact, to 0 `blend` + 1 frames away; the goal
    is the foot's own position moved that share of the way to the pin (weight 0: the foot where it is)."""
    frames, feet = feet_positions.shape[:2]
    assert planted.shape == (frames - 1, feet), (planted.shape, feet_positions.shape)
    pinned = np.zeros((frames, feet), dtype=bool)
    pinned[:-1] |= planted
    pinned[1:] |= planted
    pins, weights = feet_positions.copy(), np.zeros((frames, feet))
    for foot in range(feet):
        starts = np.flatnonzero(pinned[:, foot] & ~np.concatenate([[False], pinned[:-1, foot]]))
        ends = np.flatnonzero(pinned[:, foot] & ~np.concatenate([pinned[1:, foot], [False]])) + 1  # exclusive
        for start, end in zip(starts, ends):
            lo, hi = max(0, start - blend), min(frames, end + blend)
            span = np.arange(lo, hi)
            distance = np.maximum(start - span, span - (end - 1)).clip(min=0)  # frames outside the contact
            ramp = 1.0 - distance / (blend + 1)
            take = ramp > weights[lo:hi, foot]  # where two contacts' fades meet, the nearer contact holds the foot
            weights[lo:hi, foot] = np.where(take, ramp, weights[lo:hi, foot])
            pins[lo:hi, foot] = np.where(take[:, None], feet_positions[start, foot], pins[lo:hi, foot])
    return feet_positions + weights[..., None] * (pins - feet_positions), weights


def upper_feet(parents, feet) -> list:
    """The foot joints with no foot joint above them: one pin per leg (a human's ankle, not also its toes, whose
    pins would pull the same leg towards contacts that begin on other frames)."""
    below = set(feet)
    return [foot for foot in feet if not any(joint in below for joint in ancestry(parents, foot)[:-1])]


def leg_chains(parents, feet, turnable, length: int = CHAIN) -> list:
    """Per foot joint, the `length` nearest joints above it that may turn (`turnable`: a set of joints; the root is
    never one), nearest first."""
    chains = []
    for foot in feet:
        chain, joint = [], parents[foot]
        while joint > 0 and len(chain) < length:
            if joint in turnable:
                chain.append(joint)
            joint = parents[joint]
        chains.append(chain)
    return chains


def axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotations (..., 3, 3) by `angle` (...) about unit `axis` (..., 3) (Rodrigues)."""
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    skew = np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], -2)
    sin, cos = np.sin(angle)[..., None, None], np.cos(angle)[..., None, None]
    return np.eye(3) + sin * skew + (1 - cos) * (skew @ skew)


def pin_feet(
    parents,
    local: np.ndarray,  # (T, J, 3, 3)
    translations: np.ndarray,  # (T, J, 3)
    feet: list,  # foot joint per pin
    chains: list,  # per foot, the joints that turn (leg_chains)
    goals: np.ndarray,  # (T, F, 3)
    weights: np.ndarray,  # (T, F): 0 where a foot is left alone
    iterations: int = ITERATIONS,
) -> np.ndarray:
    """Local rotations (T, J, 3, 3) with each chain turned (CCD) so that its foot reaches its goal, where its
    weight is above 0; other frames and feet keep their rotations exactly."""
    local = local.copy()
    for _ in range(iterations):
        for pin, (foot, chain) in enumerate(zip(feet, chains)):
            active = weights[:, pin] > 0  # (T,)
            if not active.any():
                continue
            path, moving, fixed = ancestry(parents, foot), local[active], translations[active]
            for joint in chain:
                rotations, positions = path_transforms(parents, moving, fixed, path)
                pivot = positions[joint]  # (A, 3)
                reach, goal = positions[foot] - pivot, goals[active, pin] - pivot  # (A, 3) each
                axis = np.cross(reach, goal)
                sine = np.linalg.norm(axis, axis=-1)
                angle = np.arctan2(sine, np.sum(reach * goal, axis=-1))  # (A,)
                turn = axis_angle(unit(axis), np.where(sine > 1e-12, angle, 0.0))  # (A, 3, 3) a world-frame turn
                parent = rotations[parents[joint]]  # (A, 3, 3)
                moving[:, joint] = np.swapaxes(parent, -1, -2) @ turn @ rotations[joint]
            local[active] = moving
    return local
