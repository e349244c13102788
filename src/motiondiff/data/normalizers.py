"""Normalisers: how a dataset's raw motions become the network's features and back.

Both are nn.Modules whose statistics are buffers, so they travel with a checkpoint's weights.
"""

import numpy as np
import torch
from torch import nn

STD_FLOOR = 1e-5  # features whose std is below this (e.g. constant ones) are divided by it instead


class KeypointNormalizer(nn.Module):
    """Centre keypoints on a fixed position, divide by one scale, flatten joints into features."""

    def __init__(self, dims: int = 2):
        super().__init__()
        self.register_buffer("center", torch.zeros(dims))
        self.register_buffer("scale", torch.ones(()))

    def fit(self, keypoints: np.ndarray, root_joint: int) -> "KeypointNormalizer":
        """Centre = mean root position over the frames given; scale = std of the centred coordinates."""
        center = keypoints[:, root_joint].mean(axis=0)  # (dims,)
        scale = (keypoints - center).std()
        assert scale > 0, "a sequence whose keypoints never move cannot be normalised"
        self.center.copy_(torch.from_numpy(center.astype(np.float32)))
        self.scale.fill_(float(scale))
        return self

    def normalize(self, keypoints: torch.Tensor) -> torch.Tensor:
        """(..., joints, dims) -> (..., joints * dims)."""
        return ((keypoints - self.center) / self.scale).flatten(-2)

    def denormalize(self, features: torch.Tensor) -> torch.Tensor:
        """(..., joints * dims) -> (..., joints, dims) in the original coordinates."""
        dims = self.center.shape[0]
        return features.unflatten(-1, (-1, dims)) * self.scale + self.center


class FeatureNormalizer(nn.Module):
    """Per-feature standardisation (x - mean) / std, std floored at STD_FLOOR; buffers mean and std (F,)."""

    def __init__(self, features: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("std", torch.ones(features))

    def set_statistics(self, mean, std) -> "FeatureNormalizer":
        """Use these statistics (F,) from now on."""
        mean = torch.as_tensor(np.asarray(mean), dtype=torch.float32)  # (F,)
        std = torch.as_tensor(np.asarray(std), dtype=torch.float32)  # (F,)
        assert mean.shape == std.shape == self.mean.shape, (mean.shape, std.shape, self.mean.shape)
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(STD_FLOOR))
        return self

    def normalize(self, features: torch.Tensor) -> torch.Tensor:
        """(..., F) raw -> (..., F) standardised."""
        return (features - self.mean) / self.std

    def denormalize(self, features: torch.Tensor) -> torch.Tensor:
        """(..., F) standardised -> (..., F) raw."""
        return features * self.std + self.mean
