"""Foot contacts of joint positions: which joints touch the ground, and when (low and slow), for any skeleton."""

from dataclasses import dataclass

import numpy as np

# Foot contacts, in units of the body's height H (the median over training frames of the vertical extent of the
# joints, lowest to highest) so they hold for any skeleton and file unit. Measured on the shared BVH clips at 30 fps
# (25th-percentile height above the ground, in H): human toes 0.00-0.02, ankles 0.03-0.07, knees 0.28-0.33; crab leg
# tips 0.035-0.05, the next leg joints 0.15 and up. 0.1 H lies in both gaps. Horizontal speed while low: the
# median over low frames is 0.02-0.25 H/s and the swing phase runs at 0.8-2.4 H/s; 0.2 H/s (34 cm/s for a 1.7 m
# body, 1.1 cm per frame at 30 fps) keeps the planted frames: contact shares of 37% (Gangnam-Style), 56% (a walk),
# 89% (the crab) of the foot-frames.
CONTACT_HEIGHT = 0.1  # a foot joint is low when its height above the ground is below CONTACT_HEIGHT x H
CONTACT_SPEED = 0.2  # and planted when its horizontal speed is below CONTACT_SPEED x H per second
CONTACT_PERCENTILE = 25  # a contact joint is low in at least this share (%) of the training frames
GROUND_PERCENTILE = 5  # the ground: this percentile of each frame's lowest joint height (a claw dipping below the
# floor for a few frames does not move it)


@dataclass(frozen=True)
class Contacts:
    """Which joints touch the ground and the thresholds that say when, all derived from the training positions."""

    joints: tuple  # foot joint indices
    up_index: int  # the vertical axis of the positions
    ground: float  # height of the floor, position units
    height: float  # body height H, position units
    fps: float

    def in_contact(self, positions):
        """(..., T, J, 3) positions (numpy or torch) -> (..., T - 1, feet) bool: low and slow between frames t and
        t + 1."""
        feet = positions[..., list(self.joints), :]  # (..., T, feet, 3)
        low = feet[..., 1:, :, self.up_index] - self.ground < CONTACT_HEIGHT * self.height  # (..., T - 1, feet)
        return low & (self.horizontal_speed(positions) < CONTACT_SPEED * self.height)

    def horizontal_steps(self, positions):
        """(..., T, J, 3) (numpy or torch) -> (..., T - 1, feet, 2): each foot joint's move in the ground plane."""
        planar = [axis for axis in range(positions.shape[-1]) if axis != self.up_index]
        feet = positions[..., list(self.joints), :][..., planar]  # (..., T, feet, 2)
        return feet[..., 1:, :, :] - feet[..., :-1, :, :]

    def horizontal_speed(self, positions):
        """(..., T, J, 3) (numpy or torch) -> (..., T - 1, feet): speed of each foot joint in the ground plane,
        position units per second."""
        return (self.horizontal_steps(positions) ** 2).sum(-1) ** 0.5 * self.fps


def body_height(training_positions: np.ndarray, up_index: int) -> float:
    """The median over frames of the vertical extent of the joints (T, J, 3): lowest to highest joint."""
    heights = training_positions[..., up_index]  # (T, J)
    return float(np.median(heights.max(axis=1) - heights.min(axis=1)))


def ground_level(training_positions: np.ndarray, up_index: int) -> float:
    """GROUND_PERCENTILE of the lowest joint height of each training frame (T, J, 3)."""
    return float(np.percentile(training_positions[..., up_index].min(axis=1), GROUND_PERCENTILE))


def contact_joints(training_positions: np.ndarray, parents, up_index: int) -> tuple:
    """Joints other than the root that stay within CONTACT_HEIGHT x H of the ground in CONTACT_PERCENTILE % of the
    training frames (T, J, 3): feet and toes of a human, leg tips of a crab."""
    heights = training_positions[..., up_index] - ground_level(training_positions, up_index)  # (T, J)
    low = np.percentile(heights, CONTACT_PERCENTILE, axis=0)  # (J,)
    limit = CONTACT_HEIGHT * body_height(training_positions, up_index)
    return tuple(int(j) for j in range(len(parents)) if parents[j] >= 0 and low[j] < limit)


def contacts_of(training_positions: np.ndarray, parents, up_index: int, fps: float, joints=None) -> Contacts:
    """The Contacts of training positions (T, J, 3): `joints`, or `contact_joints` when None."""
    training_positions = np.asarray(training_positions, dtype=np.float64)
    feet = contact_joints(training_positions, parents, up_index) if joints is None else tuple(joints)
    height = body_height(training_positions, up_index)
    return Contacts(feet, int(up_index), ground_level(training_positions, up_index), height, float(fps))
