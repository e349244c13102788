"""PUNet: an unconditional 1D temporal UNet over motion, (x_t, t) -> output of the same shape.

Convolutions run over frames with the features as channels. The network knows nothing
about diffusion: what its output means (noise or clean sample) is the denoiser's business.
With `context=True` it also reads frames known in advance (clean values and a 0/1 frame mask as
extra input channels, `cond={"known": ..., "known_mask": ...}`), so that a window continuing
frames made before sees them exactly from the first step (the module trains it with random
known prefixes and suffixes, `module.context_prob`).
"""

import warnings
from collections.abc import Sequence
from typing import Optional, Union

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from motiondiff.core.checks import whole_number
from motiondiff.core.errors import UserError
from motiondiff.core.types import FrameMask, Motion, ScalarTimestep, Timesteps
from motiondiff.networks.embeddings import TimestepEmbedder


class ResBlock(nn.Module):
    """Two GroupNorm -> SiLU -> Conv1d(k=3) layers, scale-shifted by the time embedding, plus a skip."""

    def __init__(self, in_channels: int, out_channels: int, time_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels)
        self.conv1 = nn.Conv1d(in_channels, out_channels, 3, padding=1)
        self.time = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, 2 * out_channels))
        self.norm2 = nn.GroupNorm(groups, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv1d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, N)
        scale, shift = self.time(emb)[:, :, None].chunk(2, dim=1)  # (B, C_out, 1) each
        h = self.norm2(h) * (1 + scale) + shift  # (B, C_out, N)
        h = self.conv2(self.dropout(F.silu(h)))  # (B, C_out, N)
        return self.skip(x) + h  # (B, C_out, N)


class SelfAttention(nn.Module):
    """Multi-head self-attention over frames, pre-GroupNorm, residual."""

    def __init__(self, channels: int, heads: int, groups: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        qkv = self.qkv(self.norm(x))  # (B, 3C, N)
        q, k, v = rearrange(qkv, "b (three h d) n -> three b h n d", three=3, h=self.heads)  # (B, H, N, C/H) each
        h = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, C/H)
        return x + self.out(rearrange(h, "b h n d -> b (h d) n"))  # (B, C, N)


class Downsample(nn.Module):
    """Halve the frame count with a strided Conv1d(k=3, s=2)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)  # (B, C, N/2) for even N


class Upsample(nn.Module):
    """Double the frame count: nearest-neighbour x2, then Conv1d(k=3)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))  # (B, C, 2N)


class PUNet(nn.Module):
    """1D UNet over frames: ResBlocks per level, self-attention at the lowest resolution, skips concatenated."""

    def __init__(
        self,
        features: int,
        base_channels: int = 64,
        channel_mults: Sequence[int] = (1, 2, 4),
        num_res_blocks: int = 2,
        attention: bool = True,
        attention_heads: int = 4,
        groups: int = 8,
        dropout: float = 0.0,
        time_dim: Optional[int] = None,
        context: bool = False,
    ):
        super().__init__()
        channel_mults = tuple(channel_mults)  # Hydra passes a ListConfig
        time_dim = 4 * base_channels if time_dim is None else time_dim
        _check_config(
            features,
            base_channels,
            channel_mults,
            num_res_blocks,
            attention,
            attention_heads,
            groups,
            dropout,
            time_dim,
        )
        self.features = features
        self.context = bool(context)
        self.factor = 2 ** (len(channel_mults) - 1)  # frames are padded to a multiple of this
        widths = [base_channels * mult for mult in channel_mults]

        self.time_embedder = TimestepEmbedder(time_dim)
        inputs = 2 * features + 1 if self.context else features  # x_t, then known values and the known-frame mask
        self.input = nn.Conv1d(inputs, widths[0], 3, padding=1)
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        channels = widths[0]
        for level, width in enumerate(widths):
            self.down.append(
                nn.ModuleList(
                    ResBlock(channels if i == 0 else width, width, time_dim, groups, dropout)
                    for i in range(num_res_blocks)
                )
            )
            channels = width
            self.downsample.append(Downsample(width) if level < len(widths) - 1 else nn.Identity())
        self.mid1 = ResBlock(channels, channels, time_dim, groups, dropout)
        self.attention = SelfAttention(channels, attention_heads, groups) if attention else nn.Identity()
        self.mid2 = ResBlock(channels, channels, time_dim, groups, dropout)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            self.up.append(
                nn.ModuleList(
                    ResBlock(channels + width if i == 0 else width, width, time_dim, groups, dropout)
                    for i in range(num_res_blocks)
                )
            )
            channels = width
            self.upsample.append(Upsample(width) if level > 0 else nn.Identity())
        self.final = nn.Sequential(
            nn.GroupNorm(groups, channels), nn.SiLU(), nn.Conv1d(channels, features, 3, padding=1)
        )
        self._init_weights()

    def _init_weights(self):
        """Xavier for all convs and linears, N(0, 0.02) for the timestep MLP, zero for the output conv."""
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        for layer in (self.time_embedder.mlp[0], self.time_embedder.mlp[2]):
            nn.init.normal_(layer.weight, std=0.02)
        nn.init.zeros_(self.final[-1].weight)  # the untrained network outputs exactly 0
        nn.init.zeros_(self.final[-1].bias)

    def forward(
        self, x: Motion, t: Union[Timesteps, ScalarTimestep], cond=None, mask: Optional[FrameMask] = None
    ) -> Motion:
        """Predict a tensor shaped like x (B, frames, feats); any frame count >= 1 works. With `context`, `cond`
        may hold "known" (B, N, F) values and "known_mask" (B, N) marking the frames they fix (None: none known)."""
        if x.ndim != 3 or x.shape[-1] != self.features or x.shape[1] < 1:
            raise ValueError(f"PUNet expects x of shape (batch, frames>=1, {self.features}), got {tuple(x.shape)}.")
        frames = x.shape[1]
        if mask is not None:
            x = x.masked_fill(~mask.bool()[:, :, None], 0.0)  # (B, N, F), invalid frames zeroed
        if self.context:
            x = torch.cat([x, *self.context_channels(x, cond)], dim=-1)  # (B, N, 2F + 1)
        elif cond is not None:
            raise ValueError(f"PUNet is unconditional: cond must be None, got {type(cond).__name__}.")
        emb = self.time_embedder(t.expand(x.shape[0]))  # (B, T)
        h = rearrange(x, "b n f -> b f n")  # (B, C_in, N)
        h = F.pad(h, (0, -frames % self.factor))  # (B, F, N') with N' a multiple of 2**(levels-1)
        h = self.input(h)  # (B, C0, N')
        skips = []
        for blocks, downsample in zip(self.down, self.downsample):
            for block in blocks:
                h = block(h, emb)  # (B, C_l, N_l)
            skips.append(h)
            h = downsample(h)  # (B, C_l, N_l / 2), except at the lowest level
        h = self.mid2(self.attention(self.mid1(h, emb)), emb)  # (B, C_L, N_L)
        for blocks, upsample in zip(self.up, self.upsample):
            h = torch.cat([h, skips.pop()], dim=1)  # (B, C + C_l, N_l)
            for block in blocks:
                h = block(h, emb)  # (B, C_l, N_l)
            h = upsample(h)  # (B, C_l, 2 N_l), except at the top level
        h = self.final(h)[:, :, :frames]  # (B, F, N)
        return rearrange(h, "b f n -> b n f")  # (B, N, F)

    @staticmethod
    def context_channels(x: Motion, cond: Optional[dict]) -> tuple:
        """(known values zeroed elsewhere (B, N, F), frame mask (B, N, 1)) in x's dtype; zeros when cond is None."""
        if cond is None:
            return x.new_zeros(x.shape), x.new_zeros(*x.shape[:2], 1)
        assert set(cond) == {"known", "known_mask"}, f"PUNet's context is known and known_mask, got {sorted(cond)}"
        known, known_mask = cond["known"], cond["known_mask"]
        assert known.shape == x.shape and known_mask.shape == x.shape[:2], (known.shape, known_mask.shape, x.shape)
        weights = known_mask.to(x.dtype).unsqueeze(-1)  # (B, N, 1)
        return known.to(x.dtype) * weights, weights


def _check_config(features, base_channels, channel_mults, num_res_blocks, attention, heads, groups, dropout, time_dim):
    """Raise a UserError naming the config key of the first invalid PUNet setting."""
    positive = dict(
        features=features, base_channels=base_channels, num_res_blocks=num_res_blocks, groups=groups, time_dim=time_dim
    )
    if attention:
        positive["attention_heads"] = heads
    for key, value in positive.items():
        whole_number(f"network.{key}", value)
    if not channel_mults or not all(isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in channel_mults):
        raise UserError(f"network.channel_mults={list(channel_mults)} must be a non-empty list of positive integers.")
    if base_channels % groups:
        raise UserError(f"network.base_channels={base_channels} must be divisible by network.groups={groups}.")
    lowest = base_channels * channel_mults[-1]
    if attention and lowest % heads:
        raise UserError(
            f"network.attention_heads={heads} must divide the lowest-resolution width "
            f"network.base_channels*network.channel_mults[-1]={lowest}."
        )
    if not 0.0 <= dropout < 1.0:
        raise UserError(f"network.dropout={dropout} must lie in [0, 1).")
    if base_channels * channel_mults[0] < features:
        # A narrower first level is a linear bottleneck: the noise cannot pass through it, and the
        # epsilon loss stalls at (features - width) / features however long one trains.
        warnings.warn(
            f"network.base_channels*channel_mults[0]={base_channels * channel_mults[0]} is below the "
            f"{features} input features: the noise prediction cannot be learned fully; use at least {features}.",
            stacklevel=3,
        )
