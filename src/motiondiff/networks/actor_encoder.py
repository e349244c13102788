"""The ACTOR-style transformer encoder of TMR (Petrovich et al. 2023), written to load TMR's released weights:
module and parameter names and shapes are the release's (`last_weights/{motion,text}_encoder.pt`), the code ours.

Input (B, L, nfeats) with a mask (B, L) -> a linear projection -> learned distribution tokens (mu and logvar for
a VAE) put before the sequence -> sinusoidal positions over tokens and sequence -> a post-norm transformer encoder
(GELU) that ignores the padding -> the outputs at the token positions (B, tokens, latent_dim).
"""

import math

import torch
from torch import nn

from motiondiff.core.types import FrameMask, Motion, TensorType

DistributionTokens = TensorType["batch", "distribution", "latent"]


class PositionalEncoding(nn.Module):
    """Sinusoidal positions (sin on even, cos on odd channels) added to (B, L, D); the table is not saved."""

    def __init__(self, dim: int, dropout: float = 0.1, max_len: int = 5000):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        position = torch.arange(max_len, dtype=torch.float32)[:, None]  # (max_len, 1)
        frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))  # (D / 2,)
        table = torch.zeros(max_len, dim)
        table[:, 0::2], table[:, 1::2] = torch.sin(position * frequency), torch.cos(position * frequency)
        self.register_buffer("pe", table, persistent=False)  # (max_len, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(x + self.pe[: x.shape[1]])  # (B, L, D)


class ActorStyleEncoder(nn.Module):
    """(B, L, nfeats) with mask (B, L) -> (B, 2 if vae else 1, latent_dim): mu (and logvar) tokens."""

    def __init__(
        self,
        nfeats: int,
        vae: bool = True,
        latent_dim: int = 256,
        ff_size: int = 1024,
        num_layers: int = 6,
        num_heads: int = 4,
        dropout: float = 0.1,
        activation: str = "gelu",
    ):
        super().__init__()
        self.projection = nn.Linear(nfeats, latent_dim)
        self.tokens = nn.Parameter(torch.randn(2 if vae else 1, latent_dim))
        self.sequence_pos_encoding = PositionalEncoding(latent_dim, dropout)
        layer = nn.TransformerEncoderLayer(latent_dim, num_heads, ff_size, dropout, activation, batch_first=True)
        self.seqTransEncoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)  # TMR's name

    def forward(self, x: Motion, mask: FrameMask) -> DistributionTokens:
        batch, tokens = x.shape[0], self.tokens.shape[0]
        h = torch.cat([self.tokens.expand(batch, -1, -1), self.projection(x)], dim=1)  # (B, T + L, D)
        valid = torch.cat([torch.ones(batch, tokens, dtype=torch.bool, device=x.device), mask], dim=1)  # (B, T + L)
        h = self.seqTransEncoder(self.sequence_pos_encoding(h), src_key_padding_mask=~valid)  # (B, T + L, D)
        return h[:, :tokens]  # (B, T, D)
