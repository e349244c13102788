"""The three ways text and diffusion time enter the MotionTransformer, one class each (config `network=`).

  incontext        InContextTransformer: time and text tokens prepended to the frames, plain pre-LN blocks.
  adaln            AdaLNTransformer: adaLN-Zero blocks (DiT) modulated by c = time + pooled text.
  cross_attention  CrossAttentionTransformer: frames cross-attend to the caption tokens; time by
                   addition to the frame tokens or by adaLN-Zero (time_conditioning).
The shared backbone (frame embedding, output layer, weight init, masks) is in transformer.py.
Every block takes (width, MotionTransformer.block_options): a transformer.BlockOptions, which also builds the parts
the blocks share (self-attention, MLP, the residual branches' dropout).
A key mask of None means every key is attendable (attention_mask=when_padded with nothing padded).
"""

from typing import Optional

import torch
from torch import Tensor, nn

from motiondiff.core.errors import UserError
from motiondiff.networks.transformer import (
    AdaLNModulation,
    Attention,
    BlockOptions,
    MotionTransformer,
    PooledTextEmbedder,
    TokenTextEmbedder,
    gated,
    joined_key_mask,
    modulate,
)


class Block(nn.Module):
    """Pre-LN transformer block: self-attention then MLP, each a residual."""

    def __init__(self, width: int, options: BlockOptions):
        super().__init__()
        self.norm1, self.attention = nn.LayerNorm(width), options.self_attention(width)
        self.norm2, self.mlp = nn.LayerNorm(width), options.mlp(width)
        self.dropout = options.branch_dropout()
        self.options = options

    def forward(self, h: Tensor, key_mask: Optional[Tensor]) -> Tensor:
        rows, attention_rows = self.options.kept_rows(key_mask)  # (T,) or None each: the tokens linear layers run over
        a = self.norm1(h)  # (B, M, D)
        h = h + self.dropout(self.attention(a, a, key_mask, attention_rows))  # (B, M, D)
        return h + self.dropout(self.mlp(self.norm2(h), rows))  # (B, M, D)


class AdaLNBlock(nn.Module):
    """adaLN-Zero block: norms shifted/scaled and residuals gated by c; the identity at init."""

    def __init__(self, width: int, options: BlockOptions):
        super().__init__()
        self.norm1, self.attention = nn.LayerNorm(width, elementwise_affine=False), options.self_attention(width)
        self.norm2, self.mlp = nn.LayerNorm(width, elementwise_affine=False), options.mlp(width)
        self.modulation = AdaLNModulation(width, 6)
        self.dropout = options.branch_dropout()
        self.fused, self.options = options.fused_adaln, options

    def forward(self, h: Tensor, c: Tensor, key_mask: Optional[Tensor]) -> Tensor:
        rows, attention_rows = self.options.kept_rows(key_mask)  # (T,) or None each: the tokens linear layers run over
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c)  # (B, 1, D) each
        a = modulate(self.norm1(h), shift1, scale1, self.fused)  # (B, N, D)
        h = gated(h, gate1, self.dropout(self.attention(a, a, key_mask, attention_rows)), self.fused)  # (B, N, D)
        a = modulate(self.norm2(h), shift2, scale2, self.fused)  # (B, N, D)
        return gated(h, gate2, self.dropout(self.mlp(a, rows)), self.fused)  # (B, N, D)


class AdaLNFinalNorm(nn.Module):
    """The last LayerNorm, shifted and scaled by c (DiT's final layer without its linear)."""

    def __init__(self, width: int, fused_adaln: bool = False):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.modulation = AdaLNModulation(width, 2)
        self.fused = fused_adaln

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.modulation(c)  # (B, 1, D) each
        return modulate(self.norm(h), shift, scale, self.fused)  # (B, N, D)


class CrossAttentionBlock(nn.Module):
    """Pre-LN block: self-attention over frames, cross-attention to the text context, MLP; each a residual."""

    def __init__(self, width: int, options: BlockOptions):
        super().__init__()
        self.norm1, self.attention = nn.LayerNorm(width), options.self_attention(width)
        self.norm2, self.cross_attention = nn.LayerNorm(width), Attention(width, options.heads)
        self.norm3, self.mlp = nn.LayerNorm(width), options.mlp(width)
        self.dropout = options.branch_dropout()
        self.options = options

    def forward(self, h: Tensor, c: Tensor, key_mask, context: Tensor, context_mask) -> Tensor:
        # c is unused: time was added to the frame tokens (same signature as AdaLNCrossAttentionBlock).
        rows, attention_rows = self.options.kept_rows(key_mask)  # (T,) or None each: the frames linear layers run over
        a = self.norm1(h)  # (B, N, D)
        h = h + self.dropout(self.attention(a, a, key_mask, attention_rows))  # (B, N, D)
        one_key = self.options.one_key(context_mask)  # (B,) or None: samples attending to one caption token
        h = h + self.dropout(self.cross_attention(self.norm2(h), context, context_mask, attention_rows, one_key))
        return h + self.dropout(self.mlp(self.norm3(h), rows))  # (B, N, D)


class AdaLNCrossAttentionBlock(nn.Module):
    """CrossAttentionBlock with adaLN-Zero: all three sublayers shifted/scaled/gated by c; the identity at init."""

    def __init__(self, width: int, options: BlockOptions):
        super().__init__()
        self.norm1, self.attention = nn.LayerNorm(width, elementwise_affine=False), options.self_attention(width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False)
        self.cross_attention = Attention(width, options.heads)
        self.norm3, self.mlp = nn.LayerNorm(width, elementwise_affine=False), options.mlp(width)
        self.modulation = AdaLNModulation(width, 9)
        self.dropout = options.branch_dropout()
        self.fused, self.options = options.fused_adaln, options

    def forward(self, h: Tensor, c: Tensor, key_mask, context: Tensor, context_mask) -> Tensor:
        rows, attention_rows = self.options.kept_rows(key_mask)  # (T,) or None each: the frames linear layers run over
        shift1, scale1, gate1, shift2, scale2, gate2, shift3, scale3, gate3 = self.modulation(c)  # (B, 1, D) each
        a = modulate(self.norm1(h), shift1, scale1, self.fused)  # (B, N, D)
        h = gated(h, gate1, self.dropout(self.attention(a, a, key_mask, attention_rows)), self.fused)  # (B, N, D)
        a = modulate(self.norm2(h), shift2, scale2, self.fused)  # (B, N, D)
        one_key = self.options.one_key(context_mask)  # (B,) or None: samples attending to one caption token
        h = gated(
            h, gate2, self.dropout(self.cross_attention(a, context, context_mask, attention_rows, one_key)), self.fused
        )  # (B, N, D)
        a = modulate(self.norm3(h), shift3, scale3, self.fused)  # (B, N, D)
        return gated(h, gate3, self.dropout(self.mlp(a, rows)), self.fused)  # (B, N, D)


class LayerNormIgnoringC(nn.LayerNorm):
    """An affine LayerNorm with the (h, c) signature of AdaLNFinalNorm; c (and fused_adaln) unused."""

    def __init__(self, width: int, fused_adaln: bool = False):
        super().__init__(width)

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        return super().forward(h)  # (B, N, D)


class InContextTransformer(MotionTransformer):
    """Time and text as extra tokens before the frames; plain pre-LN blocks; outputs read at the frames.

    Prefix: [time, pooled caption (or null)], and with text_tokens=True also the caption's
    token embeddings after it (TokenTextEmbedder: null token + tokens, key padding from text_mask).
    """

    def __init__(self, features: int, text_dim: int, text_tokens: bool = False, **backbone):
        super().__init__(features, text_dim, **backbone)
        self.pooled_text = PooledTextEmbedder(text_dim, self.width, self.null_condition)
        self.token_text = (
            TokenTextEmbedder(text_dim, self.width, self.null_condition, self.when_padded) if text_tokens else None
        )
        self.blocks = nn.ModuleList(Block(self.width, self.block_options) for _ in range(self.num_layers))
        self.final_norm = nn.LayerNorm(self.width)
        self.initialize_weights()

    def prefix(self, t_emb: Tensor, cond: dict) -> tuple:
        """The condition tokens (B, P, D) and their key mask parts for joined_key_mask (the time and pooled
        tokens are always attendable; the caption tokens' mask is None when none is padded)."""
        tokens = torch.stack([t_emb, self.pooled_text(cond)], dim=1)  # (B, 2, D)
        parts = [(None, *tokens.shape[:2])]
        if self.token_text is not None:
            context, context_mask = self.token_text(cond)  # (B, 1+L, D), (B, 1+L) or (B, L, D), None
            tokens = torch.cat([tokens, context], dim=1)  # (B, P, D)
            parts.append((context_mask, *context.shape[:2]))
        return tokens, parts

    def encode(self, h: Tensor, t_emb: Tensor, cond: dict, key_mask: Optional[Tensor]) -> Tensor:
        prefix, parts = self.prefix(t_emb, cond)  # (B, P, D), key mask parts
        tokens = torch.cat([prefix, h], dim=1)  # (B, P+N, D)
        keys = joined_key_mask([*parts, (key_mask, *h.shape[:2])], h.device)  # (B, P+N) or None: all attendable
        for block in self.blocks:
            tokens = block(tokens, keys)  # (B, P+N, D)
        return self.final_norm(tokens[:, prefix.shape[1] :])  # (B, N, D)


class AdaLNTransformer(MotionTransformer):
    """adaLN-Zero (DiT): c = time embedding + embedded pooled caption modulates every block and the final norm."""

    def __init__(self, features: int, text_dim: int, **backbone):
        super().__init__(features, text_dim, **backbone)
        self.pooled_text = PooledTextEmbedder(text_dim, self.width, self.null_condition)
        self.blocks = nn.ModuleList(AdaLNBlock(self.width, self.block_options) for _ in range(self.num_layers))
        self.final_norm = AdaLNFinalNorm(self.width, self.block_options.fused_adaln)
        self.initialize_weights()

    def encode(self, h: Tensor, t_emb: Tensor, cond: dict, key_mask: Optional[Tensor]) -> Tensor:
        c = t_emb + self.pooled_text(cond)  # (B, D)
        for block in self.blocks:
            h = block(h, c, key_mask)  # (B, N, D)
        return self.final_norm(h, c)  # (B, N, D)


class AddTime(nn.Module):
    """time_conditioning=add: the time embedding is added to every frame token; blocks get no c."""

    def forward(self, h: Tensor, t_emb: Tensor) -> tuple:
        return h + t_emb[:, None], t_emb  # (B, N, D), (B, D) unused by the blocks


class AdaLNTime(nn.Module):
    """time_conditioning=adaln: the frame tokens stay as they are; the blocks are modulated by c = time embedding."""

    def forward(self, h: Tensor, t_emb: Tensor) -> tuple:
        return h, t_emb  # (B, N, D), (B, D)


# time_conditioning -> (how time enters, block class, final norm class)
TIME_CONDITIONING = {
    "add": (AddTime, CrossAttentionBlock, LayerNormIgnoringC),
    "adaln": (AdaLNTime, AdaLNCrossAttentionBlock, AdaLNFinalNorm),
}


class CrossAttentionTransformer(MotionTransformer):
    """Frames self-attend, then cross-attend to caption tokens (null token where none); time by addition or adaLN."""

    def __init__(self, features: int, text_dim: int, time_conditioning: str = "add", **backbone):
        super().__init__(features, text_dim, **backbone)
        if time_conditioning not in TIME_CONDITIONING:
            raise UserError(
                f"network.time_conditioning={time_conditioning!r} must be one of {list(TIME_CONDITIONING)}."
            )
        time_entry, block, final_norm = TIME_CONDITIONING[time_conditioning]
        self.time_entry = time_entry()
        self.token_text = TokenTextEmbedder(text_dim, self.width, self.null_condition, self.when_padded)
        self.blocks = nn.ModuleList(block(self.width, self.block_options) for _ in range(self.num_layers))
        self.final_norm = final_norm(self.width, self.block_options.fused_adaln)
        self.initialize_weights()

    def encode(self, h: Tensor, t_emb: Tensor, cond: dict, key_mask: Optional[Tensor]) -> Tensor:
        context, context_mask = self.token_text(cond)  # (B, 1+L, D), (B, 1+L); or (B, L, D), None
        h, c = self.time_entry(h, t_emb)  # (B, N, D), (B, D)
        for block in self.blocks:
            h = block(h, c, key_mask, context, context_mask)  # (B, N, D)
        return self.final_norm(h, c)  # (B, N, D)
