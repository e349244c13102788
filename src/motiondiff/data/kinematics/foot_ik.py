"""Planted feet pinned by inverse kinematics: each foot held where its contact began, by turning the leg above it.

The animators' clean-up for foot sliding (GANimator and SinMDM post-process their dances the same way), for any
skeleton: a foot joint in contact (low and slow, `Contacts`) is given a target, its position on the contact's first
frame, held for the whole contact; the pin fades in and out over BLEND_FRAMES frames at the contact's ends, so a
foot does not jump when it lands or lifts. Cyclic coordinate descent (CCD) then turns the CHAIN joints above each
foot (a human's knee and hip, a crab leg's two upper joints), nearest first, each time by the rotation that swings
the foot towards its target, scaled by the pin's weight. Only those joints' local rotations change: the root, every
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
    """(targets (T, F, 3), weights (T, F) in [0, 1]) of feet positions (T, F, 3) and pairwise contacts (T - 1, F):
    frames t and t + 1 of a planted pair share one contact; its target is the foot's position on the contact's
    first frame, weight 1 during it and falling linearly to 0 over `blend` frames on either side."""
    frames, feet = feet_positions.shape[:2]
    assert planted.shape == (frames - 1, feet), (planted.shape, feet_positions.shape)
    pinned = np.zeros((frames, feet), dtype=bool)
    pinned[:-1] |= planted
    pinned[1:] |= planted
    targets, weights = feet_positions.copy(), np.zeros((frames, feet))
    for foot in range(feet):
        starts = np.flatnonzero(pinned[:, foot] & ~np.concatenate([[False], pinned[:-1, foot]]))
        ends = np.flatnonzero(pinned[:, foot] & ~np.concatenate([pinned[1:, foot], [False]])) + 1  # exclusive
        for start, end in zip(starts, ends):
            lo, hi = max(0, start - blend), min(frames, end + blend)
            ramp = np.ones(hi - lo)
            ramp[: start - lo] = np.arange(1, start - lo + 1) / (blend + 1)
            ramp[end - lo :] = np.arange(hi - end, 0, -1) / (blend + 1)
            take = ramp > weights[lo:hi, foot]  # where two contacts' fades meet, the nearer contact holds the foot
            weights[lo:hi, foot] = np.where(take, ramp, weights[lo:hi, foot])
            targets[lo:hi, foot] = np.where(take[:, None], feet_positions[start, foot], targets[lo:hi, foot])
    return targets, weights


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
    targets: np.ndarray,  # (T, F, 3)
    weights: np.ndarray,  # (T, F)
    iterations: int = ITERATIONS,
) -> np.ndarray:
    """Local rotations (T, J, 3, 3) with each chain turned (CCD) so that its foot moves towards its target by the
    pin's weight; frames and feet of weight 0 keep their rotations exactly."""
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
                reach, goal = positions[foot] - pivot, targets[active, pin] - pivot  # (A, 3) each
                axis = np.cross(reach, goal)
                sine = np.linalg.norm(axis, axis=-1)
                angle = np.arctan2(sine, np.sum(reach * goal, axis=-1)) * weights[active, pin]  # (A,)
                turn = axis_angle(unit(axis), np.where(sine > 1e-12, angle, 0.0))  # (A, 3, 3) a world-frame turn
                parent = rotations[parents[joint]]  # (A, 3, 3)
                moving[:, joint] = np.swapaxes(parent, -1, -2) @ turn @ rotations[joint]
            local[active] = moving
    return local
