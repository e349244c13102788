"""Classifier-free guidance in the denoiser and condition dropout in the LightningModule."""

import pytest
import torch
from torch import Tensor, nn

from motiondiff.core.errors import UserError
from motiondiff.diffusion.denoiser import Denoiser, with_unconditional_copy
from motiondiff.diffusion.samplers import DDIMSampler, DDPMSampler, DPMSolverSampler, KarrasSampler
from motiondiff.diffusion.schedule import LinearSchedule
from test_diffusion import GAUSSIAN_MEAN, GAUSSIAN_STD, SCHEDULES, GaussianOracle


class ToyConditional(nn.Module):
    """Output = x * scale + (text vector, or a fixed null vector where drop is True); counts forward passes."""

    def __init__(self, features: int = 3):
        super().__init__()
        self.null = nn.Parameter(torch.full((features,), -1.0))
        self.calls = 0

    def forward(self, x, t, cond=None, mask=None):
        self.calls += 1
        batch = x.shape[0]
        if cond is None:
            vector = self.null.expand(batch, -1)
        else:
            drop = cond.get("drop", torch.zeros(batch, dtype=torch.bool))
            vector = torch.where(drop[:, None], self.null, cond["text_pooled"])  # (B, F)
        return 0.5 * x + vector[:, None, :]  # (B, N, F)


def _cond(batch=2, features=3):
    pooled = torch.arange(batch * features, dtype=torch.float32).reshape(batch, features)
    return {"text_pooled": pooled, "text_tokens": pooled[:, None], "text_mask": torch.ones(batch, 1, dtype=torch.bool)}


def test_guidance_weight_one_is_the_conditional_output_in_one_pass():
    network, schedule = ToyConditional(), LinearSchedule(num_steps=100)
    x, t, cond = torch.randn(2, 5, 3), torch.tensor([10, 50]), _cond()
    guided = Denoiser(network, schedule, "x0", cond=cond, guidance_weight=1.0)(x, t)[0]
    assert network.calls == 1
    assert torch.equal(guided, network(x, t, cond=cond))


@pytest.mark.parametrize("weight", [0.0, 2.5, 7.0])
def test_guided_output_is_uncond_plus_weight_times_difference_from_one_batched_pass(weight):
    network, schedule = ToyConditional(), LinearSchedule(num_steps=100)
    x, t, cond = torch.randn(2, 5, 3), torch.tensor([10, 50]), _cond()
    guided = Denoiser(network, schedule, "x0", cond=cond, guidance_weight=weight)(x, t)[0]
    assert network.calls == 1  # conditional and unconditional halves in one forward pass
    conditional = network(x, t, cond=cond)
    unconditional = network(x, t, cond=None)
    torch.testing.assert_close(guided, unconditional + weight * (conditional - unconditional))


def test_guidance_on_epsilon_guides_x0_the_same_way():
    network, schedule = ToyConditional(), LinearSchedule(num_steps=100)
    x, t, cond = torch.randn(2, 5, 3), torch.tensor([10, 50]), _cond()
    x0_guided, eps_guided = Denoiser(network, schedule, "epsilon", cond=cond, guidance_weight=3.0)(x, t)
    x0_c, _ = Denoiser(network, schedule, "epsilon", cond=cond)(x, t)
    x0_u, _ = Denoiser(network, schedule, "epsilon")(x, t)
    torch.testing.assert_close(x0_guided, x0_u + 3.0 * (x0_c - x0_u))
    torch.testing.assert_close(eps_guided, schedule.eps_from_x0(x, t, x0_guided))


def test_unconditional_copy_keeps_given_drops_and_drops_the_second_half():
    cond = {**_cond(), "drop": torch.tensor([True, False])}
    doubled = with_unconditional_copy(cond)
    assert doubled["text_pooled"].shape == (4, 3)
    assert doubled["drop"].tolist() == [True, False, True, True]


@pytest.mark.parametrize("sampler", [DDPMSampler(progress=False), DDIMSampler(num_steps=10, progress=False)])
@pytest.mark.parametrize("prediction", ["epsilon", "x0"])
def test_guided_sampling_runs_with_both_samplers_and_parameterisations(sampler, prediction):
    network, schedule = ToyConditional(), LinearSchedule(num_steps=50)
    denoiser = Denoiser(network, schedule, prediction, cond=_cond(), guidance_weight=2.0)
    noise = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(0))
    out = sampler.sample(denoiser, schedule, noise, generator=torch.Generator().manual_seed(1))
    assert out.shape == (2, 4, 3) and torch.isfinite(out).all()


class CaptionedGaussians(nn.Module):
    """The exact predictor for data N(mean, std^2) per feature given a caption, N(null mean, std^2) without one; keeps
    the batch size of each call."""

    def __init__(self, schedule, prediction: str, null_mean: Tensor):
        super().__init__()
        self.captioned = GaussianOracle(schedule, GAUSSIAN_MEAN, GAUSSIAN_STD, prediction)
        self.uncaptioned = GaussianOracle(schedule, null_mean, GAUSSIAN_STD, prediction)
        self.calls = []

    def forward(self, x_t, t, cond=None, mask=None):
        self.calls.append(len(x_t))
        drop = torch.ones(len(x_t), dtype=torch.bool) if cond is None else cond.get("drop")
        drop = torch.zeros(len(x_t), dtype=torch.bool) if drop is None else drop
        return torch.where(drop[:, None, None], self.uncaptioned(x_t, t), self.captioned(x_t, t))  # (B, N, F)


NULL_MEAN = torch.tensor([0.5, 0.0, -1.0, 0.0])
GUIDED_SAMPLERS = [  # (sampler, network calls of one sampling call)
    (DDPMSampler(progress=False), 1000),
    (DDIMSampler(num_steps=250, progress=False), 250),
    (DDIMSampler(num_steps=100, eta=1.0, progress=False), 100),
    (DPMSolverSampler(20, progress=False), 20),
    (DPMSolverSampler(100, sde=True, progress=False), 100),
    (KarrasSampler(20, progress=False), 39),
    (KarrasSampler(100, method="euler", progress=False), 100),
]


@pytest.mark.parametrize(
    "sampler, calls",
    GUIDED_SAMPLERS,
    ids=["ddpm", "ddim", "ddim_eta1", "dpmsolver", "dpmsolver_sde", "karras_heun", "karras_euler"],
)
@pytest.mark.parametrize("prediction", ["epsilon", "x0"])
@pytest.mark.parametrize("make", SCHEDULES, ids=["linear", "cosine"])
def test_every_diffusion_sampler_guides_to_the_closed_form_and_weight_one_is_the_conditional_sample(
    sampler, calls, prediction, make
):
    """With equal spreads guidance mixes the two predictors' means linearly: weight w is exactly the predictor of
    N(null + w (mean - null), std^2), so the guided sample follows that predictor's sample path (same noise, same
    draws) up to rounding, in one network call a step on the doubled batch. Weight 1 is the conditional sample, bit
    for bit, on the single batch."""
    schedule, rows = make(), 512
    noise = torch.randn(rows, 1, 4, generator=torch.Generator().manual_seed(0))

    def sample(network, weight, cond):
        denoiser = Denoiser(network, schedule, prediction, cond=cond, guidance_weight=weight)
        return sampler.sample(denoiser, schedule, noise.clone(), generator=torch.Generator().manual_seed(1))

    captioned = CaptionedGaussians(schedule, prediction, NULL_MEAN)
    cond = {"text_pooled": torch.zeros(rows, 1)}
    guided = sample(captioned, 2.5, cond)
    assert captioned.calls == [2 * rows] * calls
    mixed = GaussianOracle(schedule, NULL_MEAN + 2.5 * (GAUSSIAN_MEAN - NULL_MEAN), GAUSSIAN_STD, prediction)
    torch.testing.assert_close(guided, sample(mixed, 1.0, None), atol=1e-3, rtol=0)
    captioned.calls.clear()
    conditional = GaussianOracle(schedule, GAUSSIAN_MEAN, GAUSSIAN_STD, prediction)
    assert torch.equal(sample(captioned, 1.0, cond), sample(conditional, 1.0, None))
    assert captioned.calls == [rows] * calls


@pytest.mark.parametrize("bad", [-1.0, float("nan"), "3"])
def test_bad_guidance_weight_is_a_user_error(bad):
    with pytest.raises(UserError, match="guidance_weight"):
        Denoiser(ToyConditional(), LinearSchedule(num_steps=10), "x0", cond=_cond(), guidance_weight=bad)
