"""MotionTransformer: the DiT-style backbone over motion frames shared by the text-conditioning variants.

The backbone embeds frames (input projection + fixed sinusoidal positions) and the diffusion
step (TimestepEmbedder), hands both to its variant's `encode` (conditioning.py: in-context
tokens, adaLN-Zero or cross-attention), and projects the result back to the features with a
zero-initialised linear layer, so every variant outputs exactly 0 before training. Like PUNet it
knows nothing about diffusion: t is only an integer step.

The condition `cond` is a dict (each variant reads only the keys it needs):
  text_pooled (B, Dt) float, text_tokens (B, L, Dt) float, text_mask (B, L) bool (True = real token),
  drop (B,) bool, optional: True = the null condition for that sample (classifier-free guidance).
  guidance (B,) float: the guidance weight, read only by a network built with guidance_embedding=true (a
  distilled student, training.distill_module), whose time embedding adds it; zero-initialised, so the
  student starts as its teacher.
cond=None is the null condition for every sample, the same as drop all True.
null_condition: "learned" = a learned vector in the network's width replaces the embedded
caption of a dropped sample; "zero" = the zero vector does (no parameter).
Padding: frames with mask False are zeroed on input, masked out as attention keys everywhere and
zeroed on output, so they never influence valid frames.

Options that change the cost, not the parameters (the class defaults are the behaviour of runs saved before
they existed, which rebuild exactly; configs/network/*.yaml choose the cheaper one where it measured cheaper):
  dropout_placement  residual = dropout inside the MLP and on every residual branch; mlp = inside the MLP only.
  gelu               tanh = tanh-approximated GELU; exact = the erf GELU (cheaper on CPU).
  fused_qkv          true = one Linear(D, 3D) for the self-attention's q, k, v; checkpoints of either layout load.
  attention_mask     always = key masks built for every batch; when_padded = only when a frame or token is padded.
  dropout_masks      torch = nn.Dropout's Bernoulli masks; packed = on the CPU, masks from 16-bit slices of 64-bit
                     random draws (PackedDropout: 2-4x cheaper; the rate rounded to a multiple of 1/65536).
  fused_adaln        true = each adaLN modulation x * (1 + scale) + shift and gated residual h + gate * y is one
                     torch.addcmul pass (equal up to rounding: one rounding fewer); false = a product and a sum.
                     Only the adaLN blocks read it (adaln; cross_attention with time_conditioning=adaln).
  mlp_chunk_tokens   N > 0: sampling on the CPU (eval, no autograd), each MLP runs over chunks of at most N tokens, so
                     its hidden layer is never one block over glibc's 32 MB mmap threshold (each such block is mapped
                     afresh and page-faulted in; 2048 tokens x 2048 hidden x 4 bytes = 16 MB: halve N for a network
                     twice as wide); 0 = all tokens at once. Equal up to rounding; training is unchanged.
  sample_chunk_tokens  N > 0: sampling on the CPU (as mlp_chunk_tokens), the network runs over sub-batches of whole
                     samples, as many as ceil(batch x frames / N), of near-equal size, and joins their outputs: every
                     tensor of a block is then a few MB, reused from the heap rather than mapped afresh (at the
                     reference size a guided batch of 64 is 12,544 tokens; 2048 is 7 sub-batches). Equal up to
                     rounding; training is unchanged; 0 = the whole batch at once.
  skip_padded        true = on the CPU, when tokens are padded, each block's MLP runs over the attendable tokens only
                     (kept_rows, on_rows: the padded share of its two matmuls saved, for two copies), and from a quarter
                     padded its attention's projections of them too (the self-attention's q, k, v and output, the
                     cross-attention's queries and output); padded tokens never reach a valid one, so without dropout
                     valid outputs are equal up to rounding (in training the MLP's dropout draws masks for the kept
                     rows only: other masks for a seed, the same distribution). And where a quarter of the samples or
                     more attend to one caption token (dropped or empty captions: half a guided batch), a
                     cross-attention takes that token's value, projected once a sample, and the others attend as a
                     smaller batch (Attention.split_one_key). false = over all (and on a GPU, where counting the rows
                     would make the host wait for the device).

Also here: the pieces the variants share (attention with key padding, MLP, adaLN modulation,
the text embedders with their null condition).
"""

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from motiondiff.core.checks import whole_number
from motiondiff.core.errors import UserError
from motiondiff.core.types import FrameMask, Motion, TextPooled, TextTokens, Timesteps, TokenMask
from motiondiff.networks.embeddings import GuidanceEmbedder, TimestepEmbedder

NULL_CONDITIONS = ("learned", "zero")
DROPOUT_PLACEMENTS = ("residual", "mlp")
GELUS = {"tanh": "tanh", "exact": "none"}  # network.gelu -> nn.GELU(approximate=...)
ATTENTION_MASKS = ("always", "when_padded")
DROPOUT_MASKS = ("torch", "packed")
ATTENTION_SKIP_SHARE = 0.25  # skip_padded: the attention's projections skip padded tokens from this share on, and a
# cross-attention takes one-key samples' values (BlockOptions.one_key) from this share of the batch on


def modulate(x: Tensor, shift: Tensor, scale: Tensor, fused: bool = False) -> Tensor:
    """adaLN: x * (1 + scale) + shift, shift and scale (B, 1, D) broadcast over the tokens; fused = one addcmul pass."""
    if fused:
        return torch.addcmul(shift, x, 1 + scale)  # (B, N, D)
    return x * (1 + scale) + shift  # (B, N, D)


def gated(h: Tensor, gate: Tensor, branch: Tensor, fused: bool = False) -> Tensor:
    """adaLN-Zero's gated residual h + gate * branch, gate (B, 1, D) broadcast over the tokens; fused = one addcmul."""
    if fused:
        return torch.addcmul(h, gate, branch)  # (B, N, D)
    return h + gate * branch  # (B, N, D)


def nothing_padded(mask: Tensor) -> bool:
    """Whether every entry of a bool mask is True; False while torch.compile traces (no data-dependent branch)."""
    return not torch.compiler.is_compiling() and bool(mask.all())


def kept_rows(key_mask: Optional[Tensor]) -> Optional[Tensor]:
    """The flat indices (T,) of the attendable tokens of a key mask (B, M), for on_rows; None when every token is
    attendable, and while torch.compile traces (a data-dependent size)."""
    if key_mask is None or torch.compiler.is_compiling() or bool(key_mask.all()):
        return None
    return key_mask.flatten().nonzero().squeeze(1)  # (T,)


def on_rows(fn, x: Tensor, rows: Optional[Tensor]) -> Tensor:
    """fn (a token-wise layer) over the tokens `rows` of x (B, M, D) flattened to (B*M, D), zeros at the others;
    fn(x) when rows is None."""
    if rows is None:
        return fn(x)  # (B, M, D')
    flat = x.reshape(-1, x.shape[-1])  # (B*M, D)
    y = fn(flat.index_select(0, rows))  # (T, D')
    return y.new_zeros(flat.shape[0], y.shape[-1]).index_copy_(0, rows, y).view(*x.shape[:-1], -1)  # (B, M, D')


def sampling_on_cpu(module: nn.Module, x: Tensor) -> bool:
    """Whether `module` samples on the CPU: eval mode, no autograd, x on the CPU, not while compiling (one graph for
    every length). The chunk options run only then: chunks avoid glibc's fresh mappings, which CUDA's allocator does
    not make, and training (dropout draws, autograd) sees the whole batch."""
    return x.device.type == "cpu" and not (module.training or torch.is_grad_enabled() or torch.compiler.is_compiling())


def maybe_dropout(p: float, masks: str = "torch") -> nn.Module:
    """nn.Dropout(p) (masks `torch`) or PackedDropout(p) (`packed`), or nn.Identity when p is 0 (no mask drawn)."""
    if p == 0:
        return nn.Identity()
    return PackedDropout(p) if masks == "packed" else nn.Dropout(p)


class PackedDropout(nn.Module):
    """Dropout whose CPU masks are 16-bit slices of 64-bit random draws; torch's dropout on other devices.

    torch draws one Bernoulli number per element, one at a time: at the reference size that was 11% of a CPU
    training step. Four 16-bit slices of each 64-bit draw (the default generator, so seeds reproduce) keep an
    element when the slice reaches the threshold. The drop rate is p rounded to a multiple of 1/65536 (0.1 ->
    0.100006; at most 65535/65536), and kept values are scaled by 1 / (1 - that rate), so the expectation is exact.
    The comparison writes the mask as x's floats (0 or 1), which backward keeps: a pass fewer each way than a bool
    mask converted on use (at the reference size 4.6% off the time of an MLP's forward and backward in float32, 10%
    under bf16 autocast), for 2-4 bytes an element held instead of 1. In float32 and float64 the mask is scaled in
    place and x * mask is torch's product; 16-bit floats multiply by the 0/1 mask and then by the scale in float32
    (KeepScaled) rather than rounding the scale to 16 bits first.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.dropped = min(round(p * 65536), 65535)  # slices below -32768 + dropped are dropped; one always kept
        self.scale = 65536 / (65536 - self.dropped)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, training=True)
        draws = torch.empty((x.numel() + 3) // 4, dtype=torch.int64).random_(-(2**63), 2**63 - 1)
        slices = draws.view(torch.int16)[: x.numel()].view(x.shape)  # uniform over [-32768, 32767]
        keep = torch.ge(slices, self.dropped - 32768, out=torch.empty(x.shape, dtype=x.dtype))  # 0 or 1, as x
        if x.dtype in (torch.float32, torch.float64):  # each product rounds once, as with the scale applied after
            return x * keep.mul_(self.scale)  # (*x.shape)
        return KeepScaled.apply(x, keep, self.scale)  # (*x.shape)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class KeepScaled(torch.autograd.Function):
    """x * keep * scale for a 0/1 mask `keep` (bool, or x's dtype: no conversion), which is all backward keeps.

    Each product rounds once, as x * (keep * scale) would: x * 1 is exact, and the scale is rounded to the
    computation's float (bf16 and fp16 compute in float32). Forward-mode and vmap rules make torch.func work."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, keep: Tensor, scale: float) -> Tensor:
        return torch.mul(x, keep.to(x.dtype)).mul_(scale)  # (*x.shape); a float mask multiplies 3.6x faster than bool

    @staticmethod
    def setup_context(ctx, inputs: tuple, output: Tensor) -> None:
        _, keep, scale = inputs
        ctx.save_for_backward(keep)
        ctx.save_for_forward(keep)
        ctx.scale = scale

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple:
        (keep,) = ctx.saved_tensors
        return torch.mul(grad, keep.to(grad.dtype)).mul_(ctx.scale), None, None

    @staticmethod
    def jvp(ctx, x_tangent: Tensor, *_) -> Tensor:
        (keep,) = ctx.saved_tensors
        return torch.mul(x_tangent, keep.to(x_tangent.dtype)).mul_(ctx.scale)


class Attention(nn.Module):
    """Multi-head attention from queries x to a context; key_mask (B, M) True = attendable key, None = every key.

    fused_qkv (self-attention only: the context is x) projects q, k and v with one Linear(D, 3D). A state dict
    in the other layout (separate to_q and to_kv, or one to_qkv) is converted on load, so checkpoints of
    either layout load into either (fuse_qkv_state).
    """

    def __init__(self, width: int, heads: int, fused_qkv: bool = False):
        super().__init__()
        self.heads, self.fused_qkv = heads, fused_qkv
        if fused_qkv:
            self.to_qkv = nn.Linear(width, 3 * width)  # rows: q, k, v (the to_q rows, then the to_kv rows)
        else:
            self.to_q = nn.Linear(width, width)
            self.to_kv = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)
        self.register_load_state_dict_pre_hook(fuse_qkv_state)

    def forward(
        self,
        x: Tensor,
        context: Tensor,
        key_mask: Optional[Tensor],
        rows: Optional[Tensor] = None,
        one_key: Optional[Tensor] = None,
    ) -> Tensor:
        # Every row of key_mask must hold a True (the callers guarantee it): a query with no
        # attendable key would give NaN. rows (kept_rows of x's tokens, None = all): the projections of x, and of the
        # context when it is x, run over those tokens only; the others' queries, keys, values and outputs are 0.
        # one_key (B,) bool (a cross-attention): samples with one attendable key (split_one_key; all their tokens,
        # kept or not, get that key's projected value).
        if one_key is not None:
            return self.split_one_key(x, context, key_mask, rows, one_key)  # (B, N, D)
        if self.fused_qkv:
            qkv = on_rows(self.to_qkv, x, rows)  # (B, N, 3D)
            q, k, v = qkv.unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)  # (B, H, N, D/H) each
        else:
            q = on_rows(self.to_q, x, rows).unflatten(-1, (self.heads, -1)).transpose(1, 2)  # (B, H, N, D/H)
            kv = on_rows(self.to_kv, context, rows if context is x else None)  # (B, M, 2D)
            k, v = kv.unflatten(-1, (2, self.heads, -1)).permute(2, 0, 3, 1, 4)  # (B, H, M, D/H)
        mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, M)
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, N, D/H), views only
        return on_rows(self.out, h.transpose(1, 2).flatten(2), rows)  # (B, N, D)

    def split_one_key(self, x: Tensor, context: Tensor, key_mask: Tensor, rows: Optional[Tensor], one_key: Tensor):
        """A cross-attention (B, N, D) where one_key (B,) marks samples whose context has one attendable key: their
        output is that key's value through `out` at every token (a softmax over one key is 1), computed once a
        sample; the other samples attend as usual, as a smaller batch (over their tokens among `rows`)."""
        assert not self.fused_qkv and context is not x, "one_key is for a cross-attention"
        tokens = x.shape[1]
        key = key_mask[one_key].int().argmax(dim=1)  # (S,): the attendable key of each
        value = self.to_kv(context[one_key, key]).chunk(2, dim=-1)[1]  # (S, D): heads side by side, as out reads them
        taken = self.out(value)  # (S, D), in the dtype the layers compute in (autocast's)
        y = taken.new_empty(x.shape)
        y[one_key] = taken[:, None]  # (S, 1, D) over the tokens
        others = (~one_key).nonzero().squeeze(1)  # (B', )
        if others.numel():
            picked = [tensor.index_select(0, others) for tensor in (x, context, key_mask)]
            y.index_copy_(0, others, self(*picked, subset_rows(rows, ~one_key, tokens)))  # (B', N, D) into (B, N, D)
        return y  # (B, N, D)


def subset_rows(rows: Optional[Tensor], kept: Tensor, tokens: int) -> Optional[Tensor]:
    """The flat token indices `rows` (over B x tokens) of the samples `kept` (B,) bool, renumbered over those samples
    alone; None stays None."""
    if rows is None:
        return None
    position = kept.cumsum(dim=0) - 1  # (B,): each kept sample's place among them
    sample, token = rows // tokens, rows % tokens  # (T,) each
    inside = kept[sample]  # (T,)
    return position[sample[inside]] * tokens + token[inside]  # (T',)


def fuse_qkv_state(module: Attention, state_dict: dict, prefix: str, *_) -> None:
    """load_state_dict pre-hook: to_q + to_kv entries concatenated into to_qkv for a fused module, split back
    for a separate one; entries already in the module's layout are left as they are."""
    for kind in ("weight", "bias"):
        fused, q, kv = (f"{prefix}{name}.{kind}" for name in ("to_qkv", "to_q", "to_kv"))
        if module.fused_qkv and q in state_dict and kv in state_dict:
            state_dict[fused] = torch.cat([state_dict.pop(q), state_dict.pop(kv)])  # (3D, ...)
        elif not module.fused_qkv and fused in state_dict:
            value = state_dict.pop(fused)  # (3D, ...)
            state_dict[q], state_dict[kv] = value.tensor_split([value.shape[0] // 3])  # (D, ...), (2D, ...)


class Mlp(nn.Module):
    """Linear -> GELU (tanh-approximated or exact) -> dropout -> Linear, hidden width mlp_ratio x width; when sampling
    on the CPU, over chunks of at most chunk_tokens tokens (0 = all at once); given rows, over those tokens only."""

    def __init__(
        self,
        width: int,
        mlp_ratio: float,
        dropout: float,
        gelu: str = "tanh",
        dropout_masks: str = "torch",
        chunk_tokens: int = 0,
    ):
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.chunk_tokens = chunk_tokens
        self.net = nn.Sequential(
            nn.Linear(width, hidden),
            nn.GELU(approximate=GELUS[gelu]),
            maybe_dropout(dropout, dropout_masks),
            nn.Linear(hidden, width),
        )

    def forward(self, x: Tensor, rows: Optional[Tensor] = None) -> Tensor:
        """x (B, N, D) -> (B, N, D); rows (kept_rows, None = all): the tokens it runs over, 0 at the others."""
        return on_rows(self.tokens, x, rows)  # (B, N, D)

    def tokens(self, x: Tensor) -> Tensor:
        """The MLP over every token of x (..., D), in chunks when sampling on the CPU (chunked)."""
        tokens = x.numel() // x.shape[-1]
        if not self.chunked(x) or tokens <= self.chunk_tokens:
            return self.net(x)  # (..., D)
        parts = x.reshape(tokens, x.shape[-1]).split(self.chunk_tokens)  # chunks of (<= chunk_tokens, D)
        return torch.cat([self.net(part) for part in parts]).view(*x.shape[:-1], -1)  # (..., D)

    def chunked(self, x: Tensor) -> bool:
        """Whether this call runs over token chunks (sampling_on_cpu)."""
        return self.chunk_tokens > 0 and sampling_on_cpu(self, x)


@dataclass(frozen=True)
class BlockOptions:
    """What every transformer block takes after its width (MotionTransformer.block_options), and its shared parts."""

    heads: int
    mlp_ratio: float
    dropout: float  # inside the MLP
    residual_dropout: float  # on each residual branch (0 with dropout_placement=mlp)
    gelu: str = "tanh"
    fused_qkv: bool = False  # self-attention only
    dropout_masks: str = "torch"
    fused_adaln: bool = False  # read by the adaLN blocks and final norm only
    mlp_chunk_tokens: int = 0
    skip_padded: bool = False  # the blocks' linear layers run over the attendable tokens only (CPU)

    def kept_rows(self, key_mask: Optional[Tensor]) -> tuple:
        """The tokens a block's MLP runs over and those its attention projections run over (kept_rows; None = all).

        skip_padded on the CPU only: on a GPU counting the rows would make the host wait for the device in every
        block. Each attention projection saves an eighth to a quarter of what the MLP saves per skipped token, for the
        same two copies, which cost about what it saves at one token in eight padded (measured, docs/fast-sampling.md):
        the projections skip from ATTENTION_SKIP_SHARE padded."""
        if not self.skip_padded or key_mask is None or key_mask.device.type != "cpu":
            return None, None
        rows = kept_rows(key_mask)  # (T,) or None
        padded_share = 0.0 if rows is None else 1 - rows.numel() / key_mask.numel()
        return rows, rows if padded_share >= ATTENTION_SKIP_SHARE else None

    def one_key(self, context_mask: Optional[Tensor]) -> Optional[Tensor]:
        """(B,) bool: the samples whose context (B, M mask, None = all attendable) has one attendable key (a dropped
        or empty caption), for a cross-attention to take that key's value without attending (split_one_key); None
        unless skip_padded on the CPU finds them in ATTENTION_SKIP_SHARE of the batch or more (half a guided batch).
        Not for a whole batch under autograd: its queries would get no gradient (None, not 0), which DDP refuses."""
        cpu = context_mask is not None and context_mask.device.type == "cpu"
        if not (self.skip_padded and cpu) or torch.compiler.is_compiling():
            return None
        one_key = context_mask.sum(dim=1) == 1  # (B,)
        if one_key.float().mean() < ATTENTION_SKIP_SHARE or (torch.is_grad_enabled() and bool(one_key.all())):
            return None
        return one_key

    def self_attention(self, width: int) -> Attention:
        return Attention(width, self.heads, self.fused_qkv)

    def mlp(self, width: int) -> Mlp:
        return Mlp(width, self.mlp_ratio, self.dropout, self.gelu, self.dropout_masks, self.mlp_chunk_tokens)

    def branch_dropout(self) -> nn.Module:
        """The dropout on each residual branch (nn.Identity when residual_dropout is 0)."""
        return maybe_dropout(self.residual_dropout, self.dropout_masks)


class AdaLNModulation(nn.Module):
    """SiLU -> Linear from the condition c (B, D) to `chunks` vectors (B, 1, D); zero-initialised (adaLN-Zero)."""

    def __init__(self, width: int, chunks: int):
        super().__init__()
        self.chunks = chunks
        self.linear = nn.Linear(width, chunks * width)

    def forward(self, c: Tensor) -> tuple:
        return self.linear(F.silu(c))[:, None].chunk(self.chunks, dim=-1)  # `chunks` x (B, 1, D)


class SinusoidalPositions(nn.Module):
    """Fixed sinusoidal frame positions (N, D) for N up to max_frames; a UserError beyond."""

    def __init__(self, max_frames: int, width: int):
        super().__init__()
        self.max_frames = max_frames
        position = torch.arange(max_frames, dtype=torch.float32)[:, None]  # (max_frames, 1)
        freqs = torch.exp(-math.log(10000.0) * torch.arange(0, width, 2, dtype=torch.float32) / width)  # (ceil(D/2),)
        table = torch.zeros(max_frames, width)  # (max_frames, D)
        table[:, 0::2] = torch.sin(position * freqs)
        table[:, 1::2] = torch.cos(position * freqs[: width // 2])
        self.register_buffer("table", table, persistent=False)

    def forward(self, frames: int) -> Tensor:
        if frames > self.max_frames:
            raise UserError(
                f"a motion of {frames} frames is longer than network.max_frames={self.max_frames}; "
                f"raise network.max_frames or use shorter clips."
            )
        return self.table[:frames]  # (N, D)


class NullCondition(nn.Module):
    """The embedding of a dropped condition: a learned vector (null_condition=learned) or zeros (zero)."""

    def __init__(self, width: int, mode: str):
        super().__init__()
        if mode not in NULL_CONDITIONS:
            raise UserError(f"network.null_condition={mode!r} must be one of {list(NULL_CONDITIONS)}.")
        if mode == "learned":
            self.embedding = nn.Parameter(torch.zeros(width))  # (D,), initialised by the network
        else:
            self.register_buffer("embedding", torch.zeros(width), persistent=False)  # (D,)

    def forward(self, embedded: Tensor, drop: Tensor) -> Tensor:
        """`embedded` (B, D) with the null embedding where drop (B,) is True."""
        return torch.where(drop[:, None], self.embedding.to(embedded.dtype), embedded)  # (B, D)


def complete_condition(cond: Optional[dict], batch: int, text_dim: int, device) -> dict:
    """The condition with a `drop` flag; cond=None becomes empty text with drop all True."""
    if cond is None:
        return {
            "text_pooled": torch.zeros(batch, text_dim, device=device),
            "text_tokens": torch.zeros(batch, 0, text_dim, device=device),
            "text_mask": torch.zeros(batch, 0, dtype=torch.bool, device=device),
            "drop": torch.ones(batch, dtype=torch.bool, device=device),
        }
    drop = cond.get("drop")
    drop = torch.zeros(batch, dtype=torch.bool, device=device) if drop is None else drop.bool().to(device)
    assert drop.shape == (batch,), f"cond['drop'] must be ({batch},), got {tuple(drop.shape)}"
    return {**cond, "drop": drop}


def condition_entry(cond: dict, key: str, shape: tuple) -> Tensor:
    """cond[key], checked against `shape` (None = any size); ValueError when missing or misshapen."""
    if key not in cond:
        raise ValueError(f"this network reads cond['{key}'], which the condition lacks (keys: {sorted(cond)}).")
    value = cond[key]
    if value.ndim != len(shape) or any(want is not None and got != want for got, want in zip(value.shape, shape)):
        raise ValueError(f"cond['{key}'] must have shape {shape} (None = any), got {tuple(value.shape)}.")
    return value


class PooledTextEmbedder(nn.Module):
    """cond["text_pooled"] (B, Dt) -> (B, D) by Linear-SiLU-Linear; the null condition where drop is True."""

    def __init__(self, text_dim: int, width: int, null_condition: str):
        super().__init__()
        self.text_dim = text_dim
        self.mlp = nn.Sequential(nn.Linear(text_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.null = NullCondition(width, null_condition)

    def forward(self, cond: dict) -> Tensor:
        drop = cond["drop"]  # (B,)
        pooled: TextPooled = condition_entry(cond, "text_pooled", (drop.shape[0], self.text_dim))
        pooled = pooled.to(self.mlp[0].weight.dtype).masked_fill(
            drop[:, None], 0.0
        )  # (B, Dt), dropped never reach the MLP
        return self.null(self.mlp(pooled), drop)  # (B, D)


class TokenTextEmbedder(nn.Module):
    """cond["text_tokens"] (B, L, Dt) -> context (B, 1+L, D) and its key mask (B, 1+L).

    The first context token is the null condition; it is attendable exactly where no text token
    is (dropped samples, empty captions), so every query always has a key, and a caption's
    output never depends on the null embedding.
    when_padded: when every sample has L >= 1 real tokens and none is dropped, the context is the L tokens
    (B, L, D) with mask None: the same attention, as the null token would have been masked out everywhere.
    """

    def __init__(self, text_dim: int, width: int, null_condition: str, when_padded: bool = False):
        super().__init__()
        self.text_dim, self.when_padded = text_dim, when_padded
        self.proj = nn.Linear(text_dim, width)
        self.null = NullCondition(width, null_condition)

    def forward(self, cond: dict) -> tuple:
        drop = cond["drop"]  # (B,)
        batch = drop.shape[0]
        tokens: TextTokens = condition_entry(cond, "text_tokens", (batch, None, self.text_dim))
        text_mask: TokenMask = condition_entry(cond, "text_mask", (batch, tokens.shape[1]))
        valid = text_mask.bool() & ~drop[:, None]  # (B, L) attendable text tokens
        null = self.null.embedding.to(self.proj.weight.dtype)  # (D,)
        if self.when_padded and valid.shape[1] > 0 and nothing_padded(valid):
            # 0 * null keeps the null in the graph with the zero gradient the masked path gives it (DDP needs it).
            return self.proj(tokens.to(null.dtype)) + 0.0 * null, None  # (B, L, D), no mask
        tokens = tokens.to(self.proj.weight.dtype).masked_fill(
            ~valid[:, :, None], 0.0
        )  # (B, L, Dt), padding never reaches the net
        null = null.expand(batch, 1, -1)  # (B, 1, D)
        context = torch.cat([null, self.proj(tokens)], dim=1)  # (B, 1+L, D)
        context_mask = torch.cat([~valid.any(dim=1, keepdim=True), valid], dim=1)  # (B, 1+L), one True per row at least
        return context, context_mask


class MotionTransformer(nn.Module):
    """Frames -> tokens (projection + positions) -> variant's conditioned blocks -> zero-initialised projection back.

    Subclasses (conditioning.py) build their blocks after calling this __init__ (with `block_options`),
    implement `encode`, and call `initialize_weights()` last.
    """

    def __init__(
        self,
        features: int,
        text_dim: int,
        latent_dim: int = 512,
        num_layers: int = 8,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        dropout: float = 0.1,
        max_frames: int = 196,
        null_condition: str = "learned",
        dropout_placement: str = "residual",
        gelu: str = "tanh",
        fused_qkv=False,  # a bool (checked: config values can be anything)
        attention_mask: str = "always",
        dropout_masks: str = "torch",
        fused_adaln=False,  # a bool
        mlp_chunk_tokens=0,  # a whole number >= 0 (checked)
        skip_padded=False,  # a bool
        sample_chunk_tokens=0,  # a whole number >= 0 (checked)
        guidance_embedding=False,  # a bool: the guidance weight enters with the time (distilled students)
    ):
        super().__init__()
        check_config(
            features, text_dim, latent_dim, num_layers, num_heads, mlp_ratio, dropout, max_frames, null_condition
        )
        check_cost_options(
            dropout_placement,
            gelu,
            fused_qkv,
            attention_mask,
            dropout_masks,
            fused_adaln,
            mlp_chunk_tokens,
            skip_padded,
            sample_chunk_tokens,
        )
        self.features, self.text_dim = features, text_dim
        self.sample_chunk_tokens = sample_chunk_tokens
        self.width, self.num_layers, self.num_heads = latent_dim, num_layers, num_heads
        self.mlp_ratio, self.dropout, self.null_condition = mlp_ratio, dropout, null_condition
        self.when_padded = attention_mask == "when_padded"  # no key masks when nothing is padded
        # The blocks' arguments after the width (conditioning.py).
        self.block_options = BlockOptions(
            heads=num_heads,
            mlp_ratio=mlp_ratio,
            dropout=dropout,
            residual_dropout=dropout if dropout_placement == "residual" else 0.0,
            gelu=gelu,
            fused_qkv=fused_qkv,
            dropout_masks=dropout_masks,
            fused_adaln=fused_adaln,
            mlp_chunk_tokens=mlp_chunk_tokens,
            skip_padded=skip_padded,
        )
        self.input = nn.Linear(features, latent_dim)
        self.positions = SinusoidalPositions(max_frames, latent_dim)
        self.time_embedder = TimestepEmbedder(latent_dim)
        if guidance_embedding not in (True, False):
            raise UserError(f"network.guidance_embedding={guidance_embedding!r} must be true or false.")
        self.guidance_embedder = GuidanceEmbedder(latent_dim) if guidance_embedding else None
        self.output = nn.Linear(latent_dim, features)

    def encode(self, h: Tensor, t_emb: Tensor, cond: dict, key_mask: Optional[Tensor]) -> Tensor:
        """The variant's conditioned blocks and final norm: frame tokens (B, N, D) -> (B, N, D); key_mask None = all."""
        raise NotImplementedError

    def initialize_weights(self) -> None:
        """Xavier linears, N(0, 0.02) timestep MLP and learned null, zero adaLN modulations and output layer."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        for layer in (self.time_embedder.mlp[0], self.time_embedder.mlp[2]):
            nn.init.normal_(layer.weight, std=0.02)
        for module in self.modules():
            if isinstance(module, NullCondition) and isinstance(module.embedding, nn.Parameter):
                nn.init.normal_(module.embedding, std=0.02)
            if isinstance(module, AdaLNModulation):  # every adaLN block starts as the identity
                nn.init.zeros_(module.linear.weight)
                nn.init.zeros_(module.linear.bias)
        if self.guidance_embedder is not None:  # adds exactly 0 until trained: a student starts as its teacher
            nn.init.normal_(self.guidance_embedder.embedder.mlp[0].weight, std=0.02)
            nn.init.zeros_(self.guidance_embedder.embedder.mlp[2].weight)
            nn.init.zeros_(self.guidance_embedder.embedder.mlp[2].bias)
        nn.init.zeros_(self.output.weight)  # the untrained network outputs exactly 0
        nn.init.zeros_(self.output.bias)

    def forward(self, x: Motion, t: Timesteps, cond: Optional[dict] = None, mask: Optional[FrameMask] = None) -> Motion:
        """Predict a tensor shaped like x (B, frames <= max_frames, features) from x, step t and the condition."""
        if x.ndim != 3 or x.shape[-1] != self.features or x.shape[1] < 1:
            raise ValueError(
                f"{type(self).__name__} expects x of shape (batch, frames>=1, {self.features}), got {tuple(x.shape)}."
            )
        pieces = self.sample_pieces(x, t, cond, mask)  # sub-batches (sample_chunk_tokens), or None: all at once
        if pieces is not None:
            return torch.cat([self.predict(*piece) for piece in pieces])  # (B, N, F)
        return self.predict(x, t, cond, mask)  # (B, N, F)

    def predict(self, x: Motion, t: Timesteps, cond: Optional[dict], mask: Optional[FrameMask]) -> Motion:
        """forward over one batch, whole."""
        batch, frames, _ = x.shape
        positions = self.positions(frames)  # (N, D); UserError beyond max_frames
        mask = self.frame_mask(mask, batch, frames, x.device)  # (B, N) or None: nothing padded
        t_emb = self.time_embedder(t.reshape(-1).expand(batch))  # (B, D)
        if self.guidance_embedder is not None:
            t_emb = t_emb + self.guidance_embedder(condition_entry(cond or {}, "guidance", (batch,)))  # (B, D)
        cond = complete_condition(cond, batch, self.text_dim, x.device)
        if mask is None:
            return self.output(self.encode(self.input(x) + positions, t_emb, cond, None))  # (B, N, F)
        key_mask = mask | ~mask.any(
            dim=1, keepdim=True
        )  # (B, N); a sample without valid frames attends to all (output discarded)
        h = self.input(x.masked_fill(~mask[:, :, None], 0.0)) + positions  # (B, N, D), padded frames zeroed first
        h = self.encode(h, t_emb, cond, key_mask)  # (B, N, D)
        return self.output(h).masked_fill(~mask[:, :, None], 0.0)  # (B, N, F), padded frames zeroed

    def sample_pieces(self, x: Tensor, t: Tensor, cond: Optional[dict], mask: Optional[Tensor]) -> Optional[list]:
        """The arguments (x, t, cond, mask) of each sub-batch when sampling on the CPU with sample_chunk_tokens and
        more tokens than that; None otherwise, and when an entry of cond is not one per sample (the whole batch then
        meets the usual checks)."""
        batch, frames, _ = x.shape
        pieces = math.ceil(batch * frames / self.sample_chunk_tokens) if self.sample_chunk_tokens else 1
        if pieces < 2 or batch < 2 or not sampling_on_cpu(self, x):
            return None
        per_sample = [t, mask, *(cond or {}).values()]
        if any(torch.is_tensor(v) and (v.ndim == 0 or v.shape[0] != batch) for v in per_sample if v is not None):
            return None
        count = min(pieces, batch)
        bounds = [batch * i // count for i in range(count + 1)]  # near-equal sub-batches of whole samples

        def part(value, a: int, b: int):
            return value[a:b] if torch.is_tensor(value) else value

        return [
            (
                x[a:b],
                t[a:b],
                None if cond is None else {key: part(value, a, b) for key, value in cond.items()},
                part(mask, a, b),
            )
            for a, b in zip(bounds, bounds[1:])
        ]

    def frame_mask(self, mask: Optional[FrameMask], batch: int, frames: int, device) -> Optional[Tensor]:
        """The frame mask (B, N) as bool; None when attention_mask=when_padded and no frame is padded."""
        if mask is None:
            return None if self.when_padded else torch.ones(batch, frames, dtype=torch.bool, device=device)
        mask = mask.bool()
        assert mask.shape == (batch, frames), f"mask must be ({batch}, {frames}), got {tuple(mask.shape)}"
        return None if self.when_padded and nothing_padded(mask) else mask


def check_config(features, text_dim, latent_dim, num_layers, num_heads, mlp_ratio, dropout, max_frames, null_condition):
    """Raise a UserError naming the config key of the first invalid MotionTransformer setting."""
    check_sizes(
        dropout,
        features=features,
        text_dim=text_dim,
        latent_dim=latent_dim,
        num_layers=num_layers,
        num_heads=num_heads,
        max_frames=max_frames,
    )
    if not isinstance(mlp_ratio, (int, float)) or int(latent_dim * mlp_ratio) < 1:
        raise UserError(f"network.mlp_ratio={mlp_ratio!r} must be a positive number (4.0 is usual).")
    if null_condition not in NULL_CONDITIONS:
        raise UserError(f"network.null_condition={null_condition!r} must be one of {list(NULL_CONDITIONS)}.")


def check_cost_options(
    dropout_placement,
    gelu,
    fused_qkv,
    attention_mask,
    dropout_masks,
    fused_adaln=False,
    mlp_chunk_tokens=0,
    skip_padded=False,
    sample_chunk_tokens=0,
) -> None:
    """Raise a UserError naming the config key of the first invalid option of those that change only the cost."""
    for key, value, allowed in (
        ("dropout_placement", dropout_placement, DROPOUT_PLACEMENTS),
        ("gelu", gelu, tuple(GELUS)),
        ("attention_mask", attention_mask, ATTENTION_MASKS),
        ("dropout_masks", dropout_masks, DROPOUT_MASKS),
    ):
        if value not in allowed:
            raise UserError(f"network.{key}={value!r} must be one of {list(allowed)}.")
    for key, value in (("fused_qkv", fused_qkv), ("fused_adaln", fused_adaln), ("skip_padded", skip_padded)):
        if not isinstance(value, bool):
            raise UserError(f"network.{key}={value!r} must be true or false.")
    whole_number("network.mlp_chunk_tokens", mlp_chunk_tokens, minimum=0, why="0 = no chunks")
    whole_number("network.sample_chunk_tokens", sample_chunk_tokens, minimum=0, why="0 = the whole batch at once")


def joined_key_mask(parts: list, device) -> Optional[Tensor]:
    """Key masks of consecutive token groups [(mask (B, M_i) or None, B, M_i), ...] joined: (B, sum M_i), None = all."""
    if all(mask is None for mask, _, _ in parts):
        return None
    return torch.cat(
        [torch.ones(b, m, dtype=torch.bool, device=device) if mask is None else mask for mask, b, m in parts], dim=1
    )


def check_sizes(dropout: float, **sizes) -> None:
    """UserError for the first network.<key> of `sizes` that is not a positive integer, heads that do not divide
    latent_dim, or a dropout outside [0, 1): the checks every transformer of this package shares."""
    for key, value in sizes.items():
        whole_number(f"network.{key}", value)
    if sizes["latent_dim"] % sizes["num_heads"]:
        raise UserError(f"network.num_heads={sizes['num_heads']} must divide network.latent_dim={sizes['latent_dim']}.")
    if not 0.0 <= dropout < 1.0:
        raise UserError(f"network.dropout={dropout} must lie in [0, 1).")
