"""Embeddings shared by the networks: diffusion timesteps, and guidance weights, as vectors.

Weights are initialised by the network that owns the embedder (one `_init_weights`
per network), not here.
"""

import math

import torch
from torch import Tensor, nn


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000) -> Tensor:
    """Sinusoidal embedding (B,) -> (B, dim): [cos(t w_i), sin(t w_i)], w_i from 1 to 1/max_period."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )  # (half,)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, 2*half)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)  # (B, dim)
    return embedding


class TimestepEmbedder(nn.Module):
    """Map timesteps (B,) to vectors (B, dim): sinusoidal -> Linear -> SiLU -> Linear."""

    def __init__(self, dim: int, frequency_dim: int = 256, max_period: float = 10000):
        super().__init__()
        self.frequency_dim = frequency_dim
        self.max_period = max_period
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        t_freq = timestep_embedding(t, self.frequency_dim, self.max_period)  # (B, frequency_dim)
        return self.mlp(t_freq.to(self.mlp[0].weight.dtype))  # (B, dim)


class GuidanceEmbedder(nn.Module):
    """Map guidance weights w (B,) to vectors (B, dim) as timesteps are mapped, from (w - 1) x 1000 (LCM's scaling)."""

    def __init__(self, dim: int):
        super().__init__()
        self.embedder = TimestepEmbedder(dim)

    def forward(self, weight: Tensor) -> Tensor:
        return self.embedder((weight - 1.0) * 1000.0)  # (B, dim)
