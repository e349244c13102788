"""Long dances sampled at once: the network's windows over the whole length, blended at every step
(diffusion.chaining.WindowedNetwork, `chain_sampling=joint`)."""

import inspect
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from conftest import compose_config
from motiondiff.core.errors import UserError
from motiondiff.diffusion.chaining import WindowedNetwork, chained_length, window_starts
from motiondiff.diffusion.denoiser import Denoiser
from motiondiff.diffusion.samplers import DDIMSampler
from motiondiff.diffusion.schedule import LinearSchedule
from motiondiff.networks.punet import PUNet
from motiondiff.training.build import module_options
from motiondiff.training.chained_sampling import check_chain_sampling, sample_chain
from motiondiff.training.diffusion_module import MotionDiffusion
from motiondiff.training.distill_module import ConsistencyDistillation
from test_context import WALKER, context_net


class Spy(nn.Module):
    """A network that records each call's batch, frame count and condition, and returns `respond(x, t)`."""

    def __init__(self, respond):
        super().__init__()
        self.respond, self.calls = respond, []

    def forward(self, x, t, cond=None, mask=None):
        self.calls.append((x.shape[0], x.shape[1], cond))
        return self.respond(x, t)


@pytest.mark.parametrize("length", [176, 150, 48])  # windows on the stride; the last window moved back; one window
def test_a_frame_by_frame_network_over_windows_is_the_network_over_the_sequence(length):
    spy = Spy(lambda x, t: 2 * x + t.view(-1, 1, 1))
    x, t = torch.randn(3, length, 5, dtype=torch.float64), torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    out = WindowedNetwork(spy, window=48, overlap=16)(x, t)
    torch.testing.assert_close(out, 2 * x + t.view(-1, 1, 1))  # the blend weights of every frame sum to one
    windows = len(window_starts(length, 48, 16))
    assert spy.calls == [(3 * windows, 48, None)]  # every window in one call


def test_neighbouring_windows_hand_over_gradually():
    """Each window answers with its own number: the blend holds window 0's answer where only it lies, then moves to
    the next one's across their shared frames, never back, starting and ending with steps near 0 (no kink)."""
    spy = Spy(lambda x, t: torch.arange(x.shape[0], dtype=x.dtype).view(-1, 1, 1).expand_as(x).clone())
    out = WindowedNetwork(spy, window=48, overlap=16)(torch.zeros(1, 176, 1), torch.zeros(1))[0, :, 0]  # (L,)
    assert out[:32].eq(0).all() and out[-32:].eq(4).all()  # frames of one window only
    steps = out.diff()
    assert bool((steps > -1e-6).all()) and float(steps.max()) <= 2 / 16  # spread over the 16 shared frames
    assert float(out[32:48].min()) > 0 and float(out[32:48].max()) < 1  # the shared frames mix windows 0 and 1
    assert float(steps[31]) < 0.01 and float(steps[47]) < 0.01  # the first and last steps of the handover


def test_one_step_for_all_sequences_and_windows_in_several_calls_give_the_same_output():
    x = torch.randn(2, 176, 3, dtype=torch.float64)
    pointwise = Spy(lambda x, t: x * t.view(-1, 1, 1))
    torch.testing.assert_close(WindowedNetwork(pointwise, 48, 16)(x, torch.tensor(3.0)), 3 * x)  # a 0-d step
    mixing = PUNet(features=3, base_channels=8, channel_mults=(1, 2), num_res_blocks=1).double()  # frames interact
    t = torch.tensor([10, 700])
    whole = WindowedNetwork(mixing, 48, 16)(x, t)
    spy = Spy(lambda x, t: mixing(x, t))
    torch.testing.assert_close(WindowedNetwork(spy, 48, 16, windows_per_call=2)(x, t), whole)
    assert [batch for batch, _, _ in spy.calls] == [4, 4, 2]  # 5 windows of 2 sequences, 2 windows a call


def test_bf16_sampling_runs_the_windows_under_autocast_and_returns_float32():
    network = PUNet(features=3, base_channels=8, channel_mults=(1, 2), num_res_blocks=1)
    with torch.no_grad():
        for param in network.final[-1].parameters():  # an output that depends on the input
            param.normal_(0, 0.1, generator=torch.Generator().manual_seed(0))
    schedule, x, t = LinearSchedule(), torch.randn(2, 112, 3), torch.tensor([300, 300])
    exact = Denoiser(WindowedNetwork(network, 48, 16), schedule, "x0").predict_x0(x, t)
    bf16 = Denoiser(WindowedNetwork(network, 48, 16), schedule, "x0", autocast=torch.bfloat16).predict_x0(x, t)
    assert bf16.dtype == torch.float32 and not torch.equal(bf16, exact)
    torch.testing.assert_close(bf16, exact, atol=0.05, rtol=0.05)


def test_the_windowed_network_refuses_conditions():
    with pytest.raises(AssertionError, match="unconditional"):
        WindowedNetwork(Spy(lambda x, t: x), 48, 16)(torch.zeros(1, 96, 2), torch.zeros(1), cond={"text": 1})


@pytest.fixture
def module_around(tmp_path):
    """A dance2d module (the committed configs) around a given network, and the EMA copy that sampling calls."""

    def build(network, overrides=()):
        cfg = compose_config("train", tmp_path, ["experiment=dance2d", *overrides])
        module = MotionDiffusion.from_config(cfg, network, WALKER, module_options(cfg)).eval()
        return module, module.ema_network

    return build


def spy_network(module, ema):
    """Replace the module's EMA network by a spy around it."""
    spy = Spy(lambda x, t: ema(x, t))
    module.ema.ema_model = spy
    assert module.ema_network is spy
    return spy


def test_a_joint_chain_calls_the_network_once_a_step_and_keeps_its_first_window(module_around):
    network = PUNet(features=40, base_channels=40, channel_mults=(1, 2), num_res_blocks=1)
    module, ema = module_around(network)
    spy = spy_network(module, ema)
    sampler, generator = DDIMSampler(num_steps=5, progress=False), torch.Generator().manual_seed(0)
    first = torch.randn(2, 48, 40, generator=generator)
    long = sample_chain(module, sampler, generator, 5, 16, 8, "{number}", first=first, mode="joint")
    assert long.shape == (2, chained_length(48, 5, 16), 40) == (2, 176, 40)
    assert spy.calls == [(2 * 5, 48, None)] * 5  # 5 windows of 2 dances in each of DDIM's 5 steps
    torch.testing.assert_close(long[:, :48], first)  # the first window is kept (replacement)
    spy.calls.clear()
    free = sample_chain(module, sampler, generator, 5, 16, 8, "{number}", batch=3, mode="joint")
    assert free.shape == (3, 176, 40) and len(spy.calls) == 5
    sequential = sample_chain(module, sampler, generator, 5, 16, 8, "{number}", batch=3, mode="sequential")
    assert sequential.shape == (3, 176, 40) and len(spy.calls) == 5 + 5 * 5  # a whole sampling per window


def test_a_context_network_samples_a_joint_chain_without_context(module_around):
    """Joint windows have no finished frames to read: the context network is shown none, the first window is
    kept by replacement."""
    module, ema = module_around(context_net(40), ["network.context=true", "module.context_prob=0.5"])
    spy = spy_network(module, ema)
    sampler, generator = DDIMSampler(num_steps=3, progress=False), torch.Generator().manual_seed(0)
    first = torch.randn(1, 48, 40, generator=generator)
    long = sample_chain(module, sampler, generator, 3, 16, 8, "{number}", first=first, mode="joint")
    assert long.shape == (1, 112, 40) and all(cond is None for _, _, cond in spy.calls)
    torch.testing.assert_close(long[:, :48], first)


def test_a_joint_chain_can_follow_a_guide(module_around):
    """With a guide and a strength, the joint chain starts from the guide's first frames noised to the sampler's
    step nearest the strength, and runs the steps below it."""
    module, ema = module_around(PUNet(features=40, base_channels=40, channel_mults=(1, 2), num_res_blocks=1))
    spy = spy_network(module, ema)
    sampler, generator = DDIMSampler(num_steps=10, progress=False), torch.Generator().manual_seed(0)
    guide = torch.randn(2, 200, 40, generator=generator)
    long = sample_chain(
        module, sampler, generator, 3, 16, 8, "{number}", batch=2, guide=guide, strength=0.3, mode="joint"
    )
    assert long.shape == (2, 112, 40) and len(spy.calls) == 4  # DDIM-10 from step 333: 333, 222, 111, 0
    seen = {}

    def sample(*args, **kwargs):
        seen.update(args=args, kwargs=kwargs)
        return kwargs["source"]

    stand_in = SimpleNamespace(data=WALKER, sample=sample)
    sample_chain(stand_in, sampler, generator, 3, 16, None, "{number}", batch=2, guide=guide, strength=0.3)
    assert seen["args"][3] == 112 and seen["kwargs"]["overlap"] == 16 and seen["kwargs"]["strength"] == 0.3
    assert torch.equal(seen["kwargs"]["source"], guide[:, :112])  # the guide's frames where the dance lies


@pytest.mark.parametrize("mode", ["parallel", None, 1])
def test_an_unknown_chain_sampling_is_refused(mode):
    with pytest.raises(UserError, match="chain_sampling"):
        check_chain_sampling(mode)


def test_modules_that_build_their_own_denoiser_take_the_windows_too():
    """A distilled run samples long dances like any other: its denoiser takes what MotionDiffusion's does."""
    base = inspect.signature(MotionDiffusion.denoiser).parameters
    assert list(inspect.signature(ConsistencyDistillation.denoiser).parameters) == list(base)
