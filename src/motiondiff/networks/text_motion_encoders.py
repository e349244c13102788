"""MotionTextEncoders: TMR-style motion and text encoders into one latent space (and, with vae, a motion decoder).

Petrovich et al. 2023, "TMR: Text-to-Motion Retrieval Using Contrastive 3D Human Motion Synthesis".
Both encoders have the same shape (ACTOR's): the inputs (motion frames, or the caption's token
embeddings) are projected to the latent width, given fixed sinusoidal positions, and learned
distribution tokens are prepended (mu; and logvar when vae); a transformer encoder runs over the
sequence with the padding masked out as keys, and the distribution tokens' outputs are read.
With vae, a decoder turns a latent back into a motion: sinusoidal position queries over the N
frames cross-attend to the latent (a transformer decoder) and are projected to the features.

Padding never influences the outputs: padded frames/tokens are zeroed before the projection (so
NaN cannot leak), masked as attention keys, and the decoder's padded frames are zeroed.
"""

import torch
from torch import Tensor, nn

from motiondiff.core.errors import UserError
from motiondiff.core.types import FrameMask, Motion, TextTokens, TokenMask
from motiondiff.networks.transformer import SinusoidalPositions, check_sizes

TEXT_MAX_TOKENS = 512  # longest caption the text encoder's positions cover (MiniLM: 256, CLIP: 77)


def transformer_encoder(
    width: int, num_layers: int, num_heads: int, ff_size: int, dropout: float
) -> nn.TransformerEncoder:
    """A post-LN GELU nn.TransformerEncoder over (B, M, D) sequences (TMR's layers)."""
    layer = nn.TransformerEncoderLayer(width, num_heads, ff_size, dropout, activation="gelu", batch_first=True)
    return nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)


class DistributionEncoder(nn.Module):
    """Sequence (B, M, Din) + mask (B, M) -> the outputs of `num_tokens` learned tokens, each (B, D)."""

    def __init__(self, input_dim: int, width: int, num_tokens: int, max_length: int, **layers):
        super().__init__()
        self.input_dim = input_dim
        self.projection = nn.Linear(input_dim, width)
        self.tokens = nn.Parameter(torch.randn(num_tokens, width) * 0.02)  # (K, D): mu (, logvar)
        self.positions = SinusoidalPositions(max_length, width)
        self.encoder = transformer_encoder(width, **layers)

    def forward(self, x: Tensor, mask: Tensor) -> list:
        if x.ndim != 3 or x.shape[-1] != self.input_dim:
            raise ValueError(f"expected inputs of shape (batch, length, {self.input_dim}), got {tuple(x.shape)}.")
        batch, length, _ = x.shape
        mask = mask.bool()  # (B, M)
        assert mask.shape == (batch, length), f"mask must be ({batch}, {length}), got {tuple(mask.shape)}"
        x = x.to(self.projection.weight.dtype).masked_fill(~mask[:, :, None], 0.0)  # (B, M, Din), padding zeroed first
        h = self.projection(x) + self.positions(length)  # (B, M, D)
        tokens = self.tokens.to(h.dtype).expand(batch, -1, -1)  # (B, K, D)
        sequence = torch.cat([tokens, h], dim=1)  # (B, K+M, D)
        keep = torch.cat(
            [torch.ones(batch, tokens.shape[1], dtype=torch.bool, device=mask.device), mask], dim=1
        )  # (B, K+M)
        out = self.encoder(sequence, src_key_padding_mask=~keep)  # (B, K+M, D)
        return list(out[:, : tokens.shape[1]].unbind(dim=1))  # K x (B, D)


class MotionDecoder(nn.Module):
    """Latent (B, D) + frame mask (B, N) -> motion (B, N, F): position queries cross-attend to the latent."""

    def __init__(
        self, features: int, width: int, max_frames: int, num_layers: int, num_heads: int, ff_size: int, dropout: float
    ):
        super().__init__()
        self.positions = SinusoidalPositions(max_frames, width)
        layer = nn.TransformerDecoderLayer(width, num_heads, ff_size, dropout, activation="gelu", batch_first=True)
        self.decoder = nn.TransformerDecoder(layer, num_layers)
        self.output = nn.Linear(width, features)

    def forward(self, latent: Tensor, mask: Tensor) -> Tensor:
        batch, frames = mask.shape
        mask = mask.bool()  # (B, N)
        queries = self.positions(frames).to(latent.dtype).expand(batch, -1, -1)  # (B, N, D)
        memory = latent[:, None]  # (B, 1, D)
        key_mask = mask | ~mask.any(
            dim=1, keepdim=True
        )  # (B, N); a motion without valid frames attends to all (zeroed)
        h = self.decoder(queries, memory, tgt_key_padding_mask=~key_mask)  # (B, N, D)
        return self.output(h).masked_fill(~mask[:, :, None], 0.0)  # (B, N, F), padded frames zeroed


class MotionTextEncoders(nn.Module):
    """TMR's motion encoder, text encoder and (vae) motion decoder, all in a latent space of latent_dim."""

    def __init__(
        self,
        features: int,
        text_dim: int,
        latent_dim: int = 256,
        num_layers: int = 4,
        num_heads: int = 4,
        ff_size: int = 1024,
        dropout: float = 0.1,
        vae: bool = False,
        max_frames: int = 512,
    ):
        super().__init__()
        check_config(features, text_dim, latent_dim, num_layers, num_heads, ff_size, dropout, max_frames)
        self.features, self.text_dim, self.latent_dim, self.vae = features, text_dim, latent_dim, bool(vae)
        layers = dict(num_layers=num_layers, num_heads=num_heads, ff_size=ff_size, dropout=dropout)
        num_tokens = 2 if self.vae else 1
        self.motion_encoder = DistributionEncoder(features, latent_dim, num_tokens, max_frames, **layers)
        self.text_encoder = DistributionEncoder(text_dim, latent_dim, num_tokens, TEXT_MAX_TOKENS, **layers)
        self.decoder = MotionDecoder(features, latent_dim, max_frames, **layers) if self.vae else None

    def _distribution(self, outputs: list) -> tuple:
        """(mu (B, D), logvar (B, D) or None) from the distribution tokens' outputs."""
        return (outputs[0], outputs[1]) if self.vae else (outputs[0], None)

    def encode_motion(self, motion: Motion, mask: FrameMask) -> tuple:
        """Normalised motion (B, N, F) with its frame mask (B, N) -> (mu (B, D), logvar (B, D) or None)."""
        return self._distribution(self.motion_encoder(motion, mask))

    def encode_text(self, tokens: TextTokens, token_mask: TokenMask) -> tuple:
        """Caption token embeddings (B, L, Dt) with their mask (B, L) -> (mu (B, D), logvar (B, D) or None)."""
        if tokens.shape[1] > TEXT_MAX_TOKENS:
            raise UserError(
                f"a caption of {tokens.shape[1]} tokens is longer than the evaluator takes ({TEXT_MAX_TOKENS}); "
                "shorten it."
            )
        return self._distribution(self.text_encoder(tokens, token_mask))

    def decode(self, latent: Tensor, mask: FrameMask) -> Motion:
        """Latent (B, D) -> normalised motion (B, N, F) over the frames of mask (B, N), zero on padding."""
        if self.decoder is None:
            raise UserError("this evaluator has no motion decoder: decode() needs network.vae=true.")
        assert latent.shape == (mask.shape[0], self.latent_dim), (tuple(latent.shape), tuple(mask.shape))
        return self.decoder(latent, mask)


def check_config(features, text_dim, latent_dim, num_layers, num_heads, ff_size, dropout, max_frames) -> None:
    """Raise a UserError naming the config key of the first invalid MotionTextEncoders setting."""
    check_sizes(
        dropout,
        features=features,
        text_dim=text_dim,
        latent_dim=latent_dim,
        num_layers=num_layers,
        num_heads=num_heads,
        ff_size=ff_size,
        max_frames=max_frames,
    )
