"""Physical sanity of generated keypoints against the training data."""

import numpy as np

from motiondiff.data.kinematics.contacts import Contacts
from motiondiff.data.kinematics.skeleton import bone_lengths, mean_acceleration  # noqa: F401 (measured here)


def bone_length_error(keypoints: np.ndarray, reference_lengths, parents) -> float:
    """Mean relative difference between the mean bone lengths of `keypoints` (..., frames, joints, dims)
    and the reference (training) mean bone lengths, one per bone."""
    lengths = bone_lengths(keypoints, parents)  # (..., frames, bones)
    mean_lengths = lengths.reshape(-1, lengths.shape[-1]).mean(axis=0)  # (bones,)
    reference = np.asarray(reference_lengths, dtype=np.float64)
    assert mean_lengths.shape == reference.shape, (mean_lengths.shape, reference.shape)
    return float(np.mean(np.abs(mean_lengths - reference) / np.maximum(reference, 1e-8)))


def nearest_window_distance(queries: np.ndarray, references: np.ndarray, exclude_self: bool = False) -> np.ndarray:
    """For each query window (Q, frames, feats), the RMS distance to its nearest reference window (R, frames, feats)."""
    q = queries.reshape(len(queries), -1).astype(np.float64)
    r = references.reshape(len(references), -1).astype(np.float64)
    squared = (q**2).sum(1)[:, None] + (r**2).sum(1)[None, :] - 2 * q @ r.T  # (Q, R)
    if exclude_self:
        np.fill_diagonal(squared, np.inf)
    return np.sqrt(np.maximum(squared.min(axis=1), 0) / q.shape[1])


def foot_skating(positions: np.ndarray, contacts: Contacts) -> float:
    """Mean horizontal speed of the foot joints over their contact frames (position units per second) of a (T, J, 3)
    clip; nan when no foot joint is ever in contact."""
    contact = contacts.in_contact(np.asarray(positions, dtype=np.float64))  # (T - 1, feet)
    if not contacts.joints or not contact.any():
        return float("nan")
    return float(contacts.horizontal_speed(positions)[contact].mean())
