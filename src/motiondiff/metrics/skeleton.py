"""Physical sanity of generated keypoints against the training data."""

import numpy as np

from motiondiff.data.skeleton import bone_lengths


def bone_length_error(keypoints: np.ndarray, reference_lengths, parents) -> float:
    """Mean relative difference between the mean bone lengths of `keypoints` (..., frames, joints, dims)
    and the reference (training) mean bone lengths, one per bone."""
    lengths = bone_lengths(keypoints, parents)  # (..., frames, bones)
    mean_lengths = lengths.reshape(-1, lengths.shape[-1]).mean(axis=0)  # (bones,)
    reference = np.asarray(reference_lengths, dtype=np.float64)
    assert mean_lengths.shape == reference.shape, (mean_lengths.shape, reference.shape)
    return float(np.mean(np.abs(mean_lengths - reference) / np.maximum(reference, 1e-8)))
