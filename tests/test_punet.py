"""PUNet and the timestep embedding: shapes, zero init, gradients, conditioning on t, mask, config errors."""

import math

import pytest
import torch

from motiondiff.core.errors import UserError
from motiondiff.networks.embeddings import TimestepEmbedder, timestep_embedding
from motiondiff.networks.punet import PUNet

DEFAULT_PARAMS = 5_199_336  # PUNet(features=40) with the default config


def small(**kwargs) -> PUNet:
    """A small PUNet so the tests run fast on CPU."""
    config = dict(features=6, base_channels=16, channel_mults=(1, 2), num_res_blocks=1)
    return PUNet(**{**config, **kwargs})


def perturb_final_layer(net: PUNet, seed: int = 0) -> None:
    """Give the zero-initialised output conv random weights, so the output depends on the rest of the net."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in net.final[-1].parameters():
            param.copy_(0.1 * torch.randn(param.shape, generator=generator))


def test_timestep_embedding_is_sinusoidal_and_handles_odd_dims():
    t = torch.tensor([0, 1, 999])
    emb = timestep_embedding(t, 8)
    assert emb.shape == (3, 8)
    assert torch.allclose(emb[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    assert emb[2, 0].item() == pytest.approx(math.cos(999.0), abs=1e-4)
    assert timestep_embedding(t.float(), 7).shape == (3, 7)
    assert TimestepEmbedder(32)(t).shape == (3, 32)


@pytest.mark.parametrize("base_channels", [16, 32])
@pytest.mark.parametrize("channel_mults", [(1, 2), (1, 2, 4)])
@pytest.mark.parametrize("features", [40, 6])
def test_output_shape_equals_input_shape(base_channels, channel_mults, features):
    net = PUNet(features=features, base_channels=base_channels, channel_mults=channel_mults, num_res_blocks=1)
    perturb_final_layer(net)
    for frames in [1, 7, 48, 50, 63]:
        x = torch.randn(2, frames, features)
        out = net(x, torch.randint(0, 1000, (2,)))
        assert out.shape == x.shape
        assert torch.isfinite(out).all()


def test_channel_mults_accepts_a_list_and_default_config_size():
    net = PUNet(features=40, channel_mults=[1, 2, 4])
    n_params = sum(p.numel() for p in net.parameters())
    assert n_params == DEFAULT_PARAMS, f"default PUNet(features=40) has {n_params:,} parameters"


def test_untrained_output_is_zero():
    net = small()
    out = net(torch.randn(4, 50, 6), torch.randint(0, 1000, (4,)))
    assert torch.equal(out, torch.zeros_like(out))


def test_gradients_reach_every_parameter_after_one_step():
    # With the output conv zero-initialised, the first backward only reaches that conv (every
    # other grad is exactly 0). One SGD step makes it nonzero; the second backward must then
    # give a finite, nonzero grad to every parameter, the input conv included.
    torch.manual_seed(0)
    net = small(dropout=0.1)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    x, t, target = torch.randn(4, 20, 6), torch.randint(0, 1000, (4,)), torch.randn(4, 20, 6)
    for step in range(2):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(net(x, t), target).backward()
        if step == 0:
            assert net.input.weight.grad.abs().sum() == 0
            assert net.final[-1].weight.grad.abs().sum() > 0
            optimizer.step()
    for name, param in net.named_parameters():
        assert param.grad is not None, f"{name} has no grad"
        assert torch.isfinite(param.grad).all(), f"{name} has a non-finite grad"
        assert param.grad.abs().sum() > 0, f"{name} has a zero grad"


def test_output_depends_on_t():
    net = small()
    perturb_final_layer(net)
    x = torch.randn(1, 24, 6).expand(2, -1, -1)
    out = net(x, torch.tensor([10, 900]))
    assert not torch.allclose(out[0], out[1], atol=1e-5)
    assert torch.equal(net(x[:1], torch.tensor(10)), net(x[:1], torch.tensor([10])))  # a scalar t broadcasts


def test_masked_frames_do_not_influence_the_output():
    # Guaranteed: invalid frames (mask False) are zeroed before anything else, so their values
    # cannot change the output anywhere. Not guaranteed: valid-frame outputs being independent of
    # how many invalid frames follow (GroupNorm statistics and convolutions see them).
    net = small(channel_mults=(1, 2, 4), attention_heads=2)
    perturb_final_layer(net)
    x, t = torch.randn(3, 30, 6), torch.randint(0, 1000, (3,))
    mask = torch.arange(30)[None] < torch.tensor([30, 17, 5])[:, None]  # (B, N), True = valid
    noisy = torch.where(mask[:, :, None], x, 100 * torch.randn_like(x))
    out = net(x, t, mask=mask)
    assert out.shape == x.shape
    assert torch.equal(out, net(noisy, t, mask=mask))
    assert not torch.equal(out, net(noisy, t))


def test_cond_is_rejected():
    net = small()
    with pytest.raises(ValueError, match="unconditional"):
        net(torch.randn(1, 8, 6), torch.zeros(1, dtype=torch.long), cond=torch.zeros(1, 4))


def test_wrong_feature_count_is_rejected():
    with pytest.raises(ValueError, match="6"):
        small()(torch.randn(1, 8, 5), torch.zeros(1, dtype=torch.long))


@pytest.mark.parametrize(
    "kwargs, key",
    [
        (dict(base_channels=30), "network.base_channels=30 must be divisible by network.groups=8"),
        (dict(channel_mults=()), "network.channel_mults"),
        (dict(channel_mults=[1, 0]), "network.channel_mults"),
        (dict(num_res_blocks=0), "network.num_res_blocks"),
        (dict(attention_heads=3), "network.attention_heads=3"),
        (dict(groups=0), "network.groups"),
        (dict(dropout=1.0), "network.dropout"),
        (dict(features=0), "network.features"),
        (dict(time_dim=0), "network.time_dim"),
    ],
)
def test_bad_config_raises_user_error(kwargs, key):
    with pytest.raises(UserError, match=key.replace("[", r"\[")):
        small(**kwargs)


def test_heads_are_not_checked_without_attention():
    assert small(attention=False, attention_heads=3)(torch.randn(1, 5, 6), torch.zeros(1)).shape == (1, 5, 6)


def test_a_first_level_narrower_than_the_features_warns():
    with pytest.warns(UserWarning, match="below the 40 input features"):
        PUNet(features=40, base_channels=32)
