"""MotionTransformer variants: shapes, padding, zero/identity init, condition and null, gradients, batching, configs,
and the options that change only the cost (dropout placement, GELU, fused qkv, masks only when padded)."""

import contextlib
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from motiondiff.core.errors import UserError
from motiondiff.networks.conditioning import (
    AdaLNCrossAttentionBlock,
    AdaLNTransformer,
    CrossAttentionTransformer,
    InContextTransformer,
)
from motiondiff.networks.transformer import KeepScaled, NullCondition, PackedDropout, kept_rows

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "network"
FEATURES, TEXT_DIM, MAX_FRAMES = 6, 8, 16
TINY = dict(latent_dim=32, num_layers=2, num_heads=4, max_frames=MAX_FRAMES)
# name -> (class, variant options); the two extra entries are the config options of incontext and cross_attention.
VARIANTS = {
    "incontext": (InContextTransformer, {}),
    "incontext_tokens": (InContextTransformer, dict(text_tokens=True)),
    "adaln": (AdaLNTransformer, {}),
    "cross_attention": (CrossAttentionTransformer, {}),
    "cross_attention_adaln": (CrossAttentionTransformer, dict(time_conditioning="adaln")),
}
# The cheaper settings of the cost options; the class defaults are the old behaviour. The configs leave fused_qkv
# off (no faster on CPU, and an optimizer state saved with separate q/kv would not load into it).
CHEAP = dict(
    dropout_placement="mlp",
    gelu="exact",
    fused_qkv=True,
    attention_mask="when_padded",
    dropout_masks="packed",
    fused_adaln=True,
    mlp_chunk_tokens=2048,
    skip_padded=True,
    sample_chunk_tokens=2048,
)
CONFIGURED = {**CHEAP, "fused_qkv": False}
# The reference size (8 layers x 512 wide x 16 heads) for features=263, text_dim=384.
REFERENCE_PARAMS = {"incontext": 26_344_711, "adaln": 39_460_103, "cross_attention": 34_495_239}


def make(name: str, **kwargs):
    """A tiny network of variant `name`."""
    cls, options = VARIANTS[name]
    return cls(features=FEATURES, text_dim=TEXT_DIM, **{**TINY, "dropout": 0.0, **options, **kwargs})


def perturb(net: nn.Module, seed: int = 0) -> nn.Module:
    """Replace every (zero-initialised or not) parameter with N(0, 0.15) so that every path is live."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in net.parameters():
            param.copy_(0.15 * torch.randn(param.shape, generator=generator))
    return net


def make_cond(batch: int, tokens: int = 5, seed: int = 1, lengths=None) -> dict:
    """Random text condition; caption b has lengths[b] real tokens (default: all)."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([tokens] * batch if lengths is None else lengths)
    return {
        "text_pooled": torch.randn(batch, TEXT_DIM, generator=generator),
        "text_tokens": torch.randn(batch, tokens, TEXT_DIM, generator=generator),
        "text_mask": torch.arange(tokens)[None] < lengths[:, None],  # (B, L)
    }


def inputs(batch: int = 3, frames: int = 12, seed: int = 2):
    """Random motion and timesteps."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, frames, FEATURES, generator=generator), torch.randint(
        0, 1000, (batch,), generator=generator
    )


def select(cond: dict, index) -> dict:
    """The samples `index` of a condition dict."""
    return {key: value[index] for key, value in cond.items()}


@pytest.mark.parametrize("name", VARIANTS)
def test_output_shape_and_max_frames(name):
    net = perturb(make(name)).eval()
    for frames in [1, 7, MAX_FRAMES]:
        x, t = inputs(frames=frames)
        out = net(x, t, make_cond(3))
        assert out.shape == x.shape
        assert torch.isfinite(out).all()
    with pytest.raises(UserError, match=f"17 frames.*network.max_frames={MAX_FRAMES}"):
        net(*inputs(frames=MAX_FRAMES + 1), make_cond(3))


@pytest.mark.parametrize("options", [{}, CHEAP], ids=["class_defaults", "cheap"])
@pytest.mark.parametrize("name", VARIANTS)
def test_padded_frames_and_padded_tokens_change_nothing(name, options):
    net = perturb(make(name, dropout=0.1, **options)).eval()
    x, t = inputs()
    mask = torch.arange(12)[None] < torch.tensor([12, 7, 1])[:, None]  # (B, N)
    cond = make_cond(3, lengths=[5, 2, 0])  # the last caption is empty: only the null token is attendable
    out = net(x, t, cond, mask)
    assert torch.isfinite(out).all()
    assert torch.equal(out[~mask], torch.zeros_like(out[~mask]))  # padded outputs are zeroed
    # Other values, even NaN, on padded frames and padded text tokens.
    x2 = torch.where(mask[:, :, None], x, 100 * torch.randn_like(x))
    x2[1, -1] = float("nan")
    cond2 = {
        **cond,
        "text_tokens": torch.where(
            cond["text_mask"][:, :, None], cond["text_tokens"], 50 * torch.randn_like(cond["text_tokens"])
        ),
    }
    cond2["text_tokens"][2, 0] = float("nan")
    out2 = net(x2, t, cond2, mask)
    torch.testing.assert_close(out2, out, atol=1e-5, rtol=0)
    # A sample's valid frames do not depend on how many padded frames follow them.
    alone = net(x[1:2, :7], t[1:2], select(cond, slice(1, 2)))
    torch.testing.assert_close(alone, out[1:2, :7], atol=1e-5, rtol=1e-4)  # other lengths, other summation order
    assert not torch.allclose(out, net(x2.nan_to_num(), t, cond2), atol=1e-3)  # the mask is what protects them


@pytest.mark.parametrize("name", VARIANTS)
def test_untrained_output_is_exactly_zero(name):
    net = make(name, dropout=0.1)
    x, t = inputs()
    for cond in (make_cond(3), None):
        out = net(x, t, cond)
        assert torch.equal(out, torch.zeros_like(out))


@pytest.mark.parametrize("name", ["adaln", "cross_attention_adaln"])
def test_adaln_blocks_are_the_identity_at_init(name):
    net = make(name).eval()
    h, c = torch.randn(3, 12, 32), torch.randn(3, 32)
    key_mask = torch.ones(3, 12, dtype=torch.bool)
    context, context_mask = torch.randn(3, 4, 32), torch.ones(3, 4, dtype=torch.bool)
    for block in net.blocks:
        extra = (context, context_mask) if isinstance(block, AdaLNCrossAttentionBlock) else ()
        assert torch.equal(block(h, c, key_mask, *extra), h)
    assert torch.equal(net.final_norm(h, c), nn.functional.layer_norm(h, (32,)))  # final modulation is zero too


@pytest.mark.parametrize("name", VARIANTS)
def test_the_condition_matters_and_drop_equals_no_condition(name):
    net = perturb(make(name)).eval()
    x, t = inputs()
    cond, other = make_cond(3, seed=1), make_cond(3, seed=7)
    out = net(x, t, cond)
    assert (out - net(x, t, other)).abs().amax(dim=(1, 2)).min() > 1e-3  # every sample sees its text
    assert (out - net(x, t)).abs().amax(dim=(1, 2)).min() > 1e-3
    all_dropped = net(x, t, {**cond, "drop": torch.ones(3, dtype=torch.bool)})
    torch.testing.assert_close(all_dropped, net(x, t, None), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        all_dropped, net(x, t, {**other, "drop": torch.ones(3, dtype=torch.bool)}), atol=1e-6, rtol=0
    )
    some = net(x, t, {**cond, "drop": torch.tensor([False, True, False])})
    torch.testing.assert_close(some[1], all_dropped[1], atol=1e-6, rtol=0)
    torch.testing.assert_close(some[[0, 2]], out[[0, 2]], atol=1e-6, rtol=0)
    assert not torch.allclose(net(x, torch.flip(t, [0]), cond), out, atol=1e-3)  # and t matters


@pytest.mark.parametrize("name", VARIANTS)
def test_learned_null_condition_is_a_parameter_used_only_when_dropped(name):
    net = perturb(make(name, null_condition="learned")).eval()
    x, t = inputs()
    cond = {**make_cond(3), "drop": torch.tensor([False, True, False])}
    nulls = [module.embedding for module in net.modules() if isinstance(module, NullCondition)]
    assert nulls and all(isinstance(null, nn.Parameter) for null in nulls)
    out = net(x, t, cond)
    with torch.no_grad():
        for null in nulls:  # a random change: LayerNorm would cancel a constant shift exactly
            null.add_(torch.randn(null.shape, generator=torch.Generator().manual_seed(3)))
    changed = net(x, t, cond)
    torch.testing.assert_close(changed[[0, 2]], out[[0, 2]], atol=1e-6, rtol=0)
    assert (changed[1] - out[1]).abs().max() > 1e-3


@pytest.mark.parametrize("name", VARIANTS)
def test_zero_null_condition_is_an_embedded_text_of_exactly_zero(name):
    net = perturb(make(name, null_condition="zero")).eval()
    assert not any("null" in key for key, _ in net.named_parameters())
    assert all(torch.equal(m.embedding, torch.zeros(32)) for m in net.modules() if isinstance(m, NullCondition))
    x, t = inputs()
    dropped = net(x, t, None)
    # Make every text embedder output exactly zero: the undropped output is then the dropped one.
    with torch.no_grad():
        last_layers = {"pooled_text": lambda embedder: embedder.mlp[-1], "token_text": lambda embedder: embedder.proj}
        for attribute, last_layer in last_layers.items():
            if getattr(net, attribute, None) is not None:
                nn.init.zeros_(last_layer(getattr(net, attribute)).weight)
                nn.init.zeros_(last_layer(getattr(net, attribute)).bias)
    # One text token: in-context attention weighs L identical zero tokens L times as much as one null token.
    torch.testing.assert_close(net(x, t, make_cond(3, tokens=1)), dropped, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", VARIANTS)
def test_gradients_reach_every_parameter_and_the_null_only_when_dropped(name):
    torch.manual_seed(0)
    x, t = inputs()
    mask = torch.arange(12)[None] < torch.tensor([12, 9, 5])[:, None]
    for drop in ([False, True, False], [False, False, False]):
        net = perturb(make(name, dropout=0.1)).train()
        cond = {**make_cond(3, lengths=[5, 3, 1]), "drop": torch.tensor(drop)}
        (net(x, t, cond, mask) ** 2).mean().backward()
        for key, param in net.named_parameters():
            null = key.endswith("null.embedding")
            should = not null or any(drop)
            assert param.grad is not None, f"{key} has no grad"
            assert torch.isfinite(param.grad).all(), f"{key} has a non-finite grad"
            assert (param.grad.abs().sum() > 0) == should, f"{key}: grad {param.grad.abs().sum():.3g} with drop={drop}"


@pytest.mark.parametrize("name", VARIANTS)
def test_a_sample_does_not_depend_on_the_rest_of_the_batch(name):
    net = perturb(make(name, dropout=0.1)).eval()
    x, t = inputs()
    mask = torch.arange(12)[None] < torch.tensor([12, 6, 9])[:, None]
    cond = {**make_cond(3, lengths=[5, 1, 3]), "drop": torch.tensor([False, True, False])}
    out = net(x, t, cond, mask)
    for b in range(3):
        alone = net(x[b : b + 1], t[b : b + 1], select(cond, slice(b, b + 1)), mask[b : b + 1])
        torch.testing.assert_close(alone, out[b : b + 1], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("variant", ["incontext", "adaln", "cross_attention"])
def test_hydra_config_instantiates(variant):
    cfg = OmegaConf.load(CONFIGS / f"{variant}.yaml")
    assert "features" not in cfg and "text_dim" not in cfg
    net = instantiate(cfg, features=263, text_dim=384, latent_dim=32, num_layers=2, num_heads=4)
    x = torch.randn(2, 40, 263)
    cond = {
        "text_pooled": torch.randn(2, 384),
        "text_tokens": torch.randn(2, 3, 384),
        "text_mask": torch.ones(2, 3, dtype=torch.bool),
    }
    assert net(x, torch.tensor([3, 500]), cond, torch.ones(2, 40, dtype=torch.bool)).shape == x.shape
    reference = instantiate(cfg, features=263, text_dim=384)
    n_params = sum(p.numel() for p in reference.parameters())
    assert n_params == REFERENCE_PARAMS[variant], f"{variant} at 8x512x16 has {n_params:,} parameters"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_heads=3), "network.num_heads=3 must divide network.latent_dim=32"),
        (dict(null_condition="none"), "network.null_condition='none'"),
        (dict(dropout=1.0), "network.dropout=1.0"),
        (dict(num_layers=0), "network.num_layers=0"),
        (dict(max_frames=0), "network.max_frames=0"),
        (dict(mlp_ratio=0.0), "network.mlp_ratio=0.0"),
        (dict(dropout_placement="both"), "network.dropout_placement='both' must be one of"),
        (dict(gelu="fast"), "network.gelu='fast' must be one of"),
        (dict(fused_qkv="yes"), "network.fused_qkv='yes' must be true or false"),
        (dict(attention_mask="never"), "network.attention_mask='never' must be one of"),
        (dict(dropout_masks="fast"), "network.dropout_masks='fast' must be one of"),
        (dict(fused_adaln=1), "network.fused_adaln=1 must be true or false"),
        (dict(skip_padded="yes"), "network.skip_padded='yes' must be true or false"),
        (dict(mlp_chunk_tokens=-1), "network.mlp_chunk_tokens=-1 must be an integer >= 0"),
        (dict(mlp_chunk_tokens=2.5), "network.mlp_chunk_tokens=2.5 must be an integer >= 0"),
        (dict(sample_chunk_tokens=-8), "network.sample_chunk_tokens=-8 must be an integer >= 0"),
    ],
)
def test_bad_config_raises_user_error(kwargs, message):
    with pytest.raises(UserError, match=message):
        make("adaln", **kwargs)


def test_bad_time_conditioning_raises_user_error():
    with pytest.raises(UserError, match="network.time_conditioning='film'"):
        make("cross_attention", time_conditioning="film")


def test_missing_condition_key_is_named():
    with pytest.raises(ValueError, match="text_tokens"):
        make("cross_attention")(*inputs(), {"text_pooled": torch.randn(3, TEXT_DIM)})


@pytest.mark.parametrize("variant", ["incontext", "adaln", "cross_attention"])
def test_configs_choose_the_cheap_options(variant):
    cfg = OmegaConf.load(CONFIGS / f"{variant}.yaml")
    assert {key: cfg[key] for key in CONFIGURED} == CONFIGURED
    net = instantiate(cfg, features=FEATURES, text_dim=TEXT_DIM, latent_dim=32, num_layers=1, num_heads=4)
    assert net.when_padded and isinstance(net.blocks[0].dropout, nn.Identity)
    assert net.blocks[0].mlp.net[1].approximate == "none" and not net.blocks[0].attention.fused_qkv
    assert isinstance(net.blocks[0].mlp.net[2], PackedDropout) and net.blocks[0].mlp.net[2].p == cfg.dropout
    assert getattr(net.blocks[0], "fused", True) and getattr(net.final_norm, "fused", True)  # the adaLN products
    assert net.blocks[0].options.skip_padded


def same_weights(name: str, source: nn.Module, **options) -> nn.Module:
    """A network of variant `name` with `options`, holding the weights of `source` (either qkv layout)."""
    net = make(name, dropout=0.1, **options)
    net.load_state_dict(source.state_dict())
    return net.eval()


def recorded_masks(monkeypatch) -> list:
    """The attn_mask of every scaled_dot_product_attention call from now on."""
    masks, sdpa = [], torch.nn.functional.scaled_dot_product_attention

    def recording(q, k, v, attn_mask=None, **kwargs):
        masks.append(attn_mask)
        return sdpa(q, k, v, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", recording)
    return masks


@pytest.mark.parametrize("name", VARIANTS)
def test_unpadded_inputs_skip_the_masks_and_give_the_masked_result(name, monkeypatch):
    masked = perturb(make(name, dropout=0.1)).eval()  # attention_mask=always: masks built for every batch
    unmasked = same_weights(name, masked, attention_mask="when_padded")
    x, t = inputs()
    cond, full = make_cond(3), torch.ones(3, 12, dtype=torch.bool)
    expected = masked(x, t, cond, full)
    masks = recorded_masks(monkeypatch)
    for mask in (None, full):
        masks.clear()
        torch.testing.assert_close(unmasked(x, t, cond, mask), expected, atol=1e-6, rtol=0)
        assert masks and all(m is None for m in masks), "a key mask was built though nothing is padded"
    # A dropped sample or a padded caption needs the context mask, a padded frame every mask: the masked path.
    padded = torch.arange(12)[None] < torch.tensor([12, 9, 5])[:, None]
    for some_cond, mask in (({**cond, "drop": torch.tensor([False, True, False])}, None), (cond, padded)):
        masks.clear()
        torch.testing.assert_close(unmasked(x, t, some_cond, mask), masked(x, t, some_cond, mask), atol=1e-6, rtol=0)
        assert any(m is not None for m in masks)


@pytest.mark.parametrize("name", VARIANTS)
def test_unpadded_training_still_reaches_every_parameter(name):
    net = perturb(make(name, dropout=0.1, **CHEAP)).train()
    x, t = inputs()
    (net(x, t, make_cond(3)) ** 2).mean().backward()  # nothing padded or dropped: no masks, no null token
    for key, param in net.named_parameters():
        assert param.grad is not None, f"{key} has no grad (DDP needs one for every parameter)"
        assert (param.grad.abs().sum() > 0) != key.endswith("null.embedding"), key


@pytest.mark.parametrize("name", VARIANTS)
def test_old_separate_qkv_state_dict_loads_into_the_fused_network(name):
    separate = perturb(make(name)).eval()
    old_layout = separate.state_dict()
    assert any(key.endswith("attention.to_kv.weight") for key in old_layout)
    fused = same_weights(name, separate, fused_qkv=True)  # strict load through the pre-hook
    fused_keys = [key for key in fused.state_dict() if "to_qkv" in key]
    assert len(fused_keys) == 2 * len(fused.blocks)  # the self-attention of every block; cross-attention stays
    x, t = inputs()
    mask = torch.arange(12)[None] < torch.tensor([12, 7, 4])[:, None]
    cond = make_cond(3, lengths=[5, 2, 0])
    expected = separate(x, t, cond, mask)
    torch.testing.assert_close(fused(x, t, cond, mask), expected, atol=1e-6, rtol=0)
    back = same_weights(name, fused)  # and a fused checkpoint loads into the separate layout
    assert torch.equal(back(x, t, cond, mask), expected)
    assert set(back.state_dict()) == set(old_layout)


@pytest.mark.parametrize("name", VARIANTS)
def test_dropout_placement_changes_nothing_in_eval(name):
    residual = perturb(make(name, dropout=0.3)).eval()
    mlp = same_weights(name, residual, dropout_placement="mlp")
    x, t = inputs()
    mask = torch.arange(12)[None] < torch.tensor([12, 7, 4])[:, None]
    cond = {**make_cond(3, lengths=[5, 2, 0]), "drop": torch.tensor([False, False, True])}
    assert torch.equal(mlp(x, t, cond, mask), residual(x, t, cond, mask))
    assert not torch.equal(mlp.train()(x, t, cond, mask), mlp.train()(x, t, cond, mask))  # dropout is on in training


@pytest.mark.parametrize("name", VARIANTS)
def test_dropout_masks_change_nothing_in_eval(name):
    torch_masks = perturb(make(name, dropout=0.3)).eval()
    packed = same_weights(name, torch_masks, dropout_masks="packed")
    assert isinstance(packed.blocks[0].mlp.net[2], PackedDropout) and isinstance(
        packed.blocks[0].dropout, PackedDropout
    )
    x, t = inputs()
    cond = make_cond(3)
    assert torch.equal(packed(x, t, cond), torch_masks(x, t, cond))
    torch.manual_seed(0)
    first = packed.train()(x, t, cond)
    torch.manual_seed(0)
    assert torch.equal(packed(x, t, cond), first)  # the default generator's seed reproduces the masks
    assert not torch.equal(packed(x, t, cond), first) and not torch.equal(first, torch_masks(x, t, cond))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.03])
def test_packed_dropout_drops_at_its_rate_in_every_slice_of_a_draw(p):
    torch.manual_seed(0)
    dropout = PackedDropout(p).train()
    x = torch.ones(1001, 999)  # not a multiple of 4 elements, nor per row: slices cross rows
    y = dropout(x)
    rate = dropout.dropped / 65536
    assert abs(rate - p) < 1e-5
    kept = y != 0
    assert torch.equal(y[kept], torch.full_like(y[kept], 1 / (1 - rate)))  # kept values scaled: expectation exact
    n = x.numel()
    sigma = (rate * (1 - rate) / (n / 4)) ** 0.5
    for slot in range(4):  # each 16-bit slice of a 64-bit draw, sign bits included, drops at the rate
        dropped = (~kept).flatten()[slot : n - n % 4 : 4].double().mean().item()
        assert abs(dropped - rate) < 5 * sigma, (slot, dropped)
    assert abs(y.mean().item() - 1.0) < 5 * sigma * 1.2
    dropped = (~kept).flatten()
    both = (dropped[:-1] & dropped[1:]).double().mean().item()  # neighbours, within a draw and across: independent
    assert abs(both - rate**2) < 5 * (rate**2 / (n - 1)) ** 0.5 + 1e-4, both


@pytest.mark.parametrize("p, rate", [(1e-6, 0.0), (1 - 1e-6, 65535 / 65536)])
def test_packed_dropout_rates_at_the_ends_of_its_grid(p, rate):
    dropout = PackedDropout(p).train()
    assert dropout.dropped / 65536 == rate
    y = dropout(torch.ones(64, 64))
    assert torch.isfinite(y).all() and (y.mean().item() == pytest.approx(1.0, abs=0.2) or rate > 0.9)


def test_packed_dropout_gradient_is_its_mask_and_keeps_the_dtype():
    torch.manual_seed(1)
    dropout = PackedDropout(0.25).train()
    x = torch.randn(7, 33, requires_grad=True)
    y = dropout(x)
    y.sum().backward()
    scale = 1 / (1 - dropout.dropped / 65536)
    assert torch.equal(x.grad, (y != 0).float() * scale)
    low = (1 + torch.rand(2000, 2000)).to(torch.bfloat16)  # values spread over [1, 2): roundings average out
    out = dropout(low)
    assert out.dtype == torch.bfloat16
    ratio = out.double().sum().item() / low.double().sum().item()
    assert abs(ratio - 1.0) < 8e-4  # unbiased; the scale rounded to bf16 once (1.336 for 4/3 here) gives 1.002
    assert torch.equal(dropout.eval()(x), x)


def test_packed_dropout_keeps_its_mask_for_backward_and_rounds_as_a_float_mask_would():
    dropout = PackedDropout(0.1).train()
    for dtype in (torch.float64, torch.float32, torch.bfloat16, torch.float16):
        x = torch.randn(5, 40, 9).to(dtype).requires_grad_()
        torch.manual_seed(3)
        y = dropout(x)
        torch.manual_seed(3)
        draws = torch.empty((x.numel() + 3) // 4, dtype=torch.int64).random_(-(2**63), 2**63 - 1)
        keep = draws.view(torch.int16)[: x.numel()].view(x.shape) >= dropout.dropped - 32768  # the same draws
        grad = torch.randn_like(y)
        (x_grad,) = torch.autograd.grad(y, x, grad, retain_graph=True)
        mask = keep.to(dtype)
        if dtype in (torch.float32, torch.float64):  # a float mask, scaled once; x * mask keeps it
            saved = y.grad_fn._saved_other
            assert saved.dtype == dtype and torch.equal(saved, mask * dropout.scale)
            assert torch.equal(y, x * (mask * dropout.scale)) and torch.equal(x_grad, grad * (mask * dropout.scale))
            # bit for bit what the bool mask gave (the product, then the scale), forward and backward
            assert torch.equal(y, (x * mask).mul(dropout.scale)) and torch.equal(
                x_grad, (grad * mask).mul(dropout.scale)
            )
        else:  # 16 bits: the 0/1 mask kept in x's dtype (2 bytes an element); the product, then the scale in float32
            (saved,) = y.grad_fn.saved_tensors
            assert saved.dtype == dtype and torch.equal(saved, mask)
            assert torch.equal(y, (x * mask).mul(dropout.scale)) and torch.equal(x_grad, (grad * dropout.scale) * mask)
            # bit for bit what the bool mask converted on use gave, forward and backward
            assert torch.equal(y, KeepScaled.apply(x, keep, dropout.scale))
            assert torch.equal(x_grad, torch.mul(grad, keep.to(dtype)).mul_(dropout.scale))


def test_packed_dropout_mask_runs_under_torch_func():
    keep = torch.rand(4, 10, generator=torch.Generator().manual_seed(0)) > 0.3
    x, tangent = torch.randn(4, 10), torch.randn(4, 10)
    scaled = keep.float() * 1.5

    def masked(value):
        return KeepScaled.apply(value, keep, 1.5)

    assert torch.equal(torch.func.jvp(masked, (x,), (tangent,))[1], tangent * scaled)
    assert torch.equal(torch.func.grad(lambda value: masked(value).sum())(x), scaled)
    assert torch.equal(torch.func.vmap(lambda row: KeepScaled.apply(row, keep[0], 1.5))(x), x * scaled[0])
    assert torch.autograd.gradgradcheck(masked, (x.double().requires_grad_(),))


def test_kept_rows_are_the_attendable_tokens_and_none_when_all_are():
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert kept_rows(mask).tolist() == [0, 1, 3]
    assert kept_rows(None) is None and kept_rows(torch.ones(2, 3, dtype=torch.bool)) is None


@contextlib.contextmanager
def linear_inputs(net: nn.Module, fused_qkv: bool):
    """Shapes of the inputs of the first block's linear layers, recorded inside the block: {"mlp": [...], ...}."""
    block = net.blocks[0]
    linears = {"mlp": block.mlp.net[0], "attention": block.attention.to_qkv if fused_qkv else block.attention.to_q}
    linears["attention output"] = block.attention.out
    if hasattr(block, "cross_attention"):  # its queries come from the frames, its keys and values from the caption
        cross = block.cross_attention
        linears.update({"cross queries": cross.to_q, "cross context": cross.to_kv, "cross output": cross.out})
    shapes = {name: [] for name in linears}
    hooks = [
        linear.register_forward_hook(lambda module, args, out, name=name: shapes[name].append(tuple(args[0].shape)))
        for name, linear in linears.items()
    ]
    try:
        yield shapes
    finally:
        for hook in hooks:
            hook.remove()


def assert_same_up_to_rounding(actual, expected, rel: float = 1e-5):
    """actual equals expected (same shape) up to float32 rounding: the largest difference within rel x the largest
    |entry| of expected. Rounding scales with the terms summed, not with each entry (another GEMM blocking, as on
    AVX2 against AVX-512, moves a small entry of a large gradient by more than its own 1e-5)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    limit = rel * expected.abs().max().item()
    difference = (actual - expected).abs().max().item()
    assert difference <= limit, f"largest difference {difference:.3g} over {limit:.3g} ({rel} x the largest |entry|)"


@pytest.mark.parametrize("fused_qkv", [False, True], ids=["separate_qkv", "fused_qkv"])
@pytest.mark.parametrize("name", VARIANTS)
def test_skipping_padded_tokens_changes_only_the_rounding(name, fused_qkv):
    full = perturb(make(name, fused_qkv=fused_qkv))  # dropout 0: train mode draws nothing, so both compute the same
    skipping = make(name, fused_qkv=fused_qkv, skip_padded=True, attention_mask="when_padded")
    skipping.load_state_dict(full.state_dict())
    x, t = inputs()
    cond = {**make_cond(3, lengths=[5, 2, 0]), "drop": torch.tensor([False, True, False])}
    prefix = {"incontext": 2, "incontext_tokens": 2 + 5 + 1}.get(name, 0)  # time, pooled caption, null + caption
    attendable_prefix = {"incontext": 3 * 2, "incontext_tokens": 3 * 2 + (5 + 1 + 1)}.get(name, 0)
    width = TINY["latent_dim"]
    # Heavy padding (frames 12, 7, 4 of 12: a third and more padded): every frame-wise linear layer skips; light
    # padding (12, 12, 10: under a quarter): the MLP skips, the attention's projections run over every token.
    for lengths, attention_skips in (([12, 7, 4], True), ([12, 12, 10], False)):
        mask = torch.arange(12)[None] < torch.tensor(lengths)[:, None]
        results = []
        with linear_inputs(skipping, fused_qkv) as shapes:
            for net in (full, skipping):
                x_grad = x.clone().requires_grad_()
                out = net.train()(x_grad, t, cond, mask)
                (out**2).sum().backward()
                results.append((out, x_grad.grad, [p.grad.clone() for p in net.parameters()]))
                net.zero_grad()
        (out_a, grad_a, params_a), (out_b, grad_b, params_b) = results
        assert_same_up_to_rounding(out_b, out_a)
        assert_same_up_to_rounding(grad_b, grad_a)
        for p_a, p_b in zip(params_a, params_b):
            assert_same_up_to_rounding(p_b, p_a)
        kept = (sum(lengths) + attendable_prefix, width)
        tokens = kept if attention_skips else (3, 12 + prefix, width)
        assert shapes.pop("mlp") == [kept]
        if "cross context" in shapes:
            # Samples 1 (dropped) and 2 (no token) attend to the null token alone: their cross-attention is its value
            # projected once each; sample 0 attends as a batch of one, to its context (null token + 5 tokens).
            frames = (12, width) if attention_skips else (1, 12, width)
            assert shapes.pop("cross context") == [(2, width), (1, 6, width)]
            assert shapes.pop("cross queries") == [frames]
            assert shapes.pop("cross output") == [(2, width), frames]
        assert shapes == {key: [tokens] for key in shapes}, lengths
    with linear_inputs(skipping, fused_qkv) as shapes, torch.no_grad():
        skipping(x, t, make_cond(3))  # nothing padded: every layer over every token, unflattened
    tokens = (3, 12 + {"incontext": 2, "incontext_tokens": 2 + 5}.get(name, 0), width)
    assert shapes.pop("cross context", [(3, 5, width)]) == [(3, 5, width)]
    assert shapes == {key: [tokens] for key in shapes}


@pytest.mark.parametrize("name", ["cross_attention", "cross_attention_adaln"])
def test_a_cross_attention_to_one_key_is_that_keys_value_projected_once(name):
    full = perturb(make(name))
    skipping = make(name, skip_padded=True, attention_mask="when_padded")
    skipping.load_state_dict(full.state_dict())
    width, frames = TINY["latent_dim"], 12
    # A guided batch: 4 captions (one of them a single token), then the same 4 dropped (Denoiser's second half).
    cond = make_cond(4, lengths=[5, 1, 3, 5])
    cond = {key: torch.cat([value, value]) for key, value in cond.items()}
    cond["drop"] = torch.arange(8) >= 4
    x, t = torch.randn(8, frames, FEATURES), torch.randint(0, 1000, (8,))
    for net in (full, skipping):
        net.eval()
    with linear_inputs(skipping, False) as shapes, torch.inference_mode():
        torch.testing.assert_close(skipping(x, t, cond), full(x, t, cond), atol=1e-5, rtol=1e-5)
    # 5 of 8 samples (the dropped 4 and the one-token caption) attend to one key: the 3 others attend as a batch.
    assert shapes["cross queries"] == [(3, frames, width)]
    assert shapes["cross output"] == [(5, width), (3, frames, width)]
    # Padded frames too (a third of them): the 3 attend over their kept frames; gradients as without the shortcut.
    mask = torch.arange(frames)[None] < torch.tensor([12, 4, 7, 12, 12, 4, 7, 3])[:, None]
    grads = []
    with linear_inputs(skipping, False) as shapes:
        for net in (full, skipping):
            x_grad = x.clone().requires_grad_()
            out = net.train()(x_grad, t, cond, mask)
            (out[mask] ** 2).sum().backward()
            grads.append((out[mask], x_grad.grad, [p.grad.clone() for p in net.parameters()]))
            net.zero_grad()
    for a, b in zip(grads[0][:2] + tuple(grads[0][2]), grads[1][:2] + tuple(grads[1][2])):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    kept = 12 + 7 + 12  # samples 0, 2 and 3
    assert shapes["cross queries"] == [(kept, width)] and shapes["cross output"] == [(5, width), (kept, width)]
    # One sample in 8 with one key (12.5%, under ATTENTION_SKIP_SHARE): all 8 attend.
    few = {**make_cond(8, lengths=[5, 1, 5, 5, 5, 5, 5, 5]), "drop": torch.zeros(8, dtype=torch.bool)}
    with linear_inputs(skipping, False) as shapes, torch.inference_mode():
        torch.testing.assert_close(skipping.eval()(x, t, few), full.eval()(x, t, few), atol=1e-5, rtol=1e-5)
    assert shapes["cross queries"] == [(8, frames, width)] and shapes["cross output"] == [(8, frames, width)]
    # Under bf16 autocast (bf16-mixed training and bf16 sampling on the CPU) the pieces meet in bf16.
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.inference_mode():
        torch.testing.assert_close(skipping(x, t, cond), full(x, t, cond), atol=0.05, rtol=0.05)
    # Every sample with one key (an unconditional batch): nothing attends; each value is projected once.
    alone = {**make_cond(8), "drop": torch.ones(8, dtype=torch.bool)}
    with linear_inputs(skipping, False) as shapes, torch.inference_mode():
        torch.testing.assert_close(skipping(x, t, alone), full(x, t, alone), atol=1e-5, rtol=1e-5)
    assert shapes["cross queries"] == [] and shapes["cross output"] == [(8, width)]
    # ... but not in training: every parameter keeps a gradient (0 for the queries), as DDP needs.
    with linear_inputs(skipping, False) as shapes:
        skipping.train()(x, t, alone).square().sum().backward()
    assert shapes["cross queries"] == [(8, frames, width)]
    assert all(param.grad is not None for param in skipping.parameters())


@pytest.mark.parametrize("name", ["adaln", "cross_attention_adaln", "incontext", "cross_attention"])
def test_fused_adaln_products_change_only_the_rounding(name, monkeypatch):
    separate = perturb(make(name, dropout=0.0))
    fused = same_weights(name, separate, fused_adaln=True)  # (dropout 0.1, but the nets run in eval)
    x, t = inputs()
    mask = torch.arange(12)[None] < torch.tensor([12, 7, 4])[:, None]
    cond = {**make_cond(3, lengths=[5, 2, 0]), "drop": torch.tensor([False, True, False])}
    calls, addcmul = [], torch.addcmul
    monkeypatch.setattr(torch, "addcmul", lambda *a, **k: calls.append(1) or addcmul(*a, **k))
    outputs = []
    for net in (separate.eval(), fused.eval()):  # eval: no dropout draws; the gradients are the same either way
        calls.clear()
        x_grad = x.clone().requires_grad_()
        out = net(x_grad, t, cond, mask)
        (out**2).sum().backward()
        outputs.append((out, x_grad.grad, calls.copy()))
    (out_a, grad_a, calls_a), (out_b, grad_b, calls_b) = outputs
    assert_same_up_to_rounding(out_b, out_a)
    assert_same_up_to_rounding(grad_b, grad_a)
    for p_a, p_b in zip(separate.parameters(), fused.parameters()):
        assert_same_up_to_rounding(p_b.grad, p_a.grad)
    per_block = {"adaln": 4, "cross_attention_adaln": 6}  # a modulation and a gate per sublayer; the final norm: 1
    expected = per_block[name] * TINY["num_layers"] + 1 if name in per_block else 0
    assert calls_a == [] and len(calls_b) == expected


def run_outside_sampling(net: nn.Module, args: tuple, monkeypatch) -> None:
    """net (in eval mode) on args with autograd (training), in train mode without autograd (a distillation target),
    and while torch.compile traces (one graph for every shape): the calls the chunk options leave whole."""
    (net(*args) ** 2).sum().backward()
    with torch.no_grad():
        net.train()(*args)
        net.eval()
        monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
        net(*args)


@pytest.mark.parametrize("name", ["adaln", "incontext_tokens", "cross_attention_adaln"])
def test_mlp_token_chunks_change_only_the_rounding_and_only_when_sampling(name, monkeypatch):
    whole = perturb(make(name)).eval()
    chunked = same_weights(name, whole, mlp_chunk_tokens=5)
    x, t = inputs()  # 3 motions x 12 frames (and the prefix tokens of incontext)
    mask = torch.arange(12)[None] < torch.tensor([12, 7, 4])[:, None]
    cond = {**make_cond(3, lengths=[5, 2, 0]), "drop": torch.tensor([False, True, False])}
    fc1, rows = chunked.blocks[0].mlp.net[0], []
    fc1.register_forward_hook(lambda module, args, out: rows.append(args[0].shape[:-1]))
    with torch.no_grad():
        expected = whole(x, t, cond, mask)
        torch.testing.assert_close(chunked(x, t, cond, mask), expected, atol=1e-6, rtol=1e-6)
    tokens = 3 * (12 + {"adaln": 0, "incontext_tokens": 2 + 1 + 5, "cross_attention_adaln": 0}[name])
    assert rows == [(5,)] * (tokens // 5) + [(tokens % 5,)] * (tokens % 5 > 0)  # chunks of 5 rows, in order
    rows.clear()
    run_outside_sampling(chunked, (x, t, cond, mask), monkeypatch)
    assert rows == [(3, tokens // 3)] * 3  # all tokens at once


@pytest.mark.parametrize("name", ["incontext_tokens", "adaln", "cross_attention", "cross_attention_adaln"])
def test_sample_chunks_split_the_batch_only_when_sampling(name, monkeypatch):
    whole = perturb(make(name, skip_padded=True)).eval()
    chunked = same_weights(name, whole, skip_padded=True, sample_chunk_tokens=20)  # 5 x 12 frames: 3 sub-batches
    x, t = inputs(batch=5)
    mask = torch.arange(12)[None] < torch.tensor([12, 7, 4, 12, 1])[:, None]
    cond = {**make_cond(5, lengths=[5, 2, 0, 1, 3]), "drop": torch.tensor([False, True, False, False, True])}
    batches = []
    chunked.input.register_forward_hook(lambda module, args, out: batches.append(args[0].shape[0]))
    with torch.no_grad():
        expected = whole(x, t, cond, mask)
        assert_same_up_to_rounding(chunked(x, t, cond, mask), expected)
        assert batches == [1, 2, 2]  # near-equal sub-batches of whole samples, in order
        batches.clear()
        unconditional = whole(x, t, None, None)  # no condition, nothing padded
        assert_same_up_to_rounding(chunked(x, t, None, None), unconditional)
        assert batches == [1, 2, 2]
        batches.clear()
        chunked(x[:1], t[:1], select(cond, slice(0, 1)), mask[:1])  # 12 tokens: no split
        assert batches == [1]
        batches.clear()
        four = {key: value[:4] for key, value in cond.items() if key.startswith("text_")}  # not one per sample
        with pytest.raises(ValueError, match="cond\\['text_"):  # the whole batch meets the checks
            chunked(x, t, {**cond, **four}, mask)
        assert batches == [5]
        batches.clear()
    run_outside_sampling(chunked, (x, t, cond, mask), monkeypatch)
    assert batches == [5, 5, 5]  # the whole batch


def test_sample_chunks_split_the_guidance_weights_of_a_student():
    whole = perturb(make("adaln", guidance_embedding=True)).eval()
    chunked = same_weights("adaln", whole, guidance_embedding=True, sample_chunk_tokens=24)
    x, t = inputs(batch=4)
    cond = {**make_cond(4), "guidance": torch.tensor([1.0, 2.5, 4.0, 7.5])}
    guidance = []
    chunked.guidance_embedder.register_forward_hook(lambda module, args, out: guidance.append(args[0].tolist()))
    with torch.no_grad():
        assert_same_up_to_rounding(chunked(x, t, cond), whole(x, t, cond))
    assert guidance == [[1.0, 2.5], [4.0, 7.5]]  # 48 tokens in two sub-batches, each with its samples' weights


def test_exact_gelu_is_the_erf_gelu():
    tanh, exact = make("adaln"), make("adaln", gelu="exact")
    assert tanh.blocks[0].mlp.net[1].approximate == "tanh" and exact.blocks[0].mlp.net[1].approximate == "none"


def test_masks_are_built_while_torch_compile_traces(monkeypatch):
    net = perturb(make("adaln", attention_mask="when_padded")).eval()
    masks = recorded_masks(monkeypatch)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)  # no data-dependent branch in a traced graph
    net(*inputs(), make_cond(3), torch.ones(3, 12, dtype=torch.bool))  # (mask=None needs no branch: no masks)
    assert masks and all(m is not None for m in masks)
