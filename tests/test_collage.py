"""Chains that follow a collage of the dance: SDEdit starts in the samplers, the collage, and the chain's guide."""

import pytest
import torch

from motiondiff.core.errors import UserError
from motiondiff.data.collage import CollagePlan, collage, collage_plan, refuse_for_text
from motiondiff.diffusion.chaining import chain_windows, chained_length
from motiondiff.diffusion.denoiser import Denoiser
from motiondiff.diffusion.samplers import DDIMSampler, DDPMSampler, DPMSolverSampler, KarrasSampler
from motiondiff.diffusion.schedule import CosineSchedule, LinearSchedule
from test_diffusion import GAUSSIAN_MEAN, GAUSSIAN_STD, GaussianOracle

FINE = [  # grids fine enough for the closed-form data's narrow feature (std 0.1) from any start
    DDPMSampler(progress=False),
    DDIMSampler(num_steps=250, progress=False),
    DPMSolverSampler(50, progress=False),
    KarrasSampler(50, progress=False),
]
SAMPLERS = [
    DDPMSampler(progress=False),
    DDIMSampler(num_steps=50, progress=False),
    DPMSolverSampler(10, progress=False),
    KarrasSampler(10, method="euler", progress=False),
]


@pytest.mark.parametrize("sampler", FINE, ids=lambda s: s.name)
@pytest.mark.parametrize("make", [LinearSchedule, CosineSchedule])
def test_sampling_from_a_noised_data_sample_keeps_the_data_and_the_sample_s_course(sampler, make):
    """SDEdit with the exact denoiser: a data sample noised to step s and sampled from there is again distributed as
    the data (so the start step means what the noise level is), and it keeps more of the sample the lower s is."""
    schedule = make()
    denoiser = Denoiser(GaussianOracle(schedule, GAUSSIAN_MEAN, GAUSSIAN_STD), schedule, "epsilon")
    generator = torch.Generator().manual_seed(0)
    source = GAUSSIAN_MEAN + GAUSSIAN_STD * torch.randn(4000, 1, 4, generator=generator)  # (B, 1, F) data samples
    correlations = []
    for start in (200, 700):
        t = torch.full((len(source),), start, dtype=torch.long)
        noised = schedule.q_sample(source, t, torch.randn(source.shape, generator=generator))
        out = sampler.sample(denoiser, schedule, noised, generator=generator, start=start)  # (B, 1, F)
        torch.testing.assert_close(out.mean((0, 1)), GAUSSIAN_MEAN, atol=0.08 * GAUSSIAN_STD.max().item(), rtol=0)
        torch.testing.assert_close(out.std((0, 1)), GAUSSIAN_STD, rtol=0.12, atol=0.01)
        standard = ((out - GAUSSIAN_MEAN) / GAUSSIAN_STD, (source - GAUSSIAN_MEAN) / GAUSSIAN_STD)
        correlations.append((standard[0] * standard[1]).mean().item())
    assert correlations[0] > correlations[1] + 0.1 and correlations[0] > 0.3, correlations


@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda s: s.name)
def test_a_sampler_started_at_a_step_calls_the_network_there_and_below_only(sampler):
    schedule = LinearSchedule()
    steps = []

    def denoise(x, t):
        steps.append(int(t[0]))
        return torch.zeros_like(x), torch.zeros_like(x)

    sampler.sample(denoise, schedule, torch.randn(2, 3, 1), start=333)
    below = [step for step in sampler.timesteps(schedule) if step < 333]
    assert steps == [333, *below]


def test_an_exact_reconstruction_from_a_start_returns_the_source():
    """DDIM (eta 0) with a denoiser that always predicts the source lands on the source from any start."""
    schedule, source = CosineSchedule(), torch.randn(2, 6, 3)

    def denoise(x, t):
        return source, schedule.eps_from_x0(x, t, source)

    noised = schedule.q_sample(source, torch.full((2,), 450), torch.randn_like(source))
    out = DDIMSampler(20, progress=False).sample(denoise, schedule, noised, start=450)
    torch.testing.assert_close(out, source, atol=1e-4, rtol=1e-4)


def test_a_collage_is_evenly_spaced_training_pieces_in_random_order():
    training = torch.arange(100.0)[:, None]  # (T, 1): each frame holds its index
    pieces = collage(training, frames=200, piece=20, generator=torch.Generator().manual_seed(0))
    assert pieces.shape == (200, 1)
    firsts = pieces[::20, 0].long().tolist()
    for first, part in zip(firsts, pieces.split(20)):  # each piece: 20 consecutive training frames
        assert part[:, 0].long().tolist() == list(range(first, first + 20))
    assert sorted(firsts) == [0, 9, 18, 27, 36, 44, 53, 62, 71, 80]  # linspace(0, 80, 10) rounded
    assert firsts != sorted(firsts)  # shuffled
    assert set(pieces[:, 0].long().tolist()) == set(range(100))  # the whole span
    again = collage(training, 200, 20, torch.Generator().manual_seed(0))
    other = collage(training, 200, 20, torch.Generator().manual_seed(1))
    assert torch.equal(pieces, again) and not torch.equal(pieces, other)
    assert collage(training, 45, 20, torch.Generator().manual_seed(0)).shape == (45, 1)  # the last piece cut


def test_the_collage_plan_reads_its_two_settings():
    assert collage_plan(0.3, None, window=48, steps=1000, frames=300) == CollagePlan(0.3, 300, 48)
    assert collage_plan(1, 64, window=48, steps=1000, frames=300) == CollagePlan(1.0, 999, 64)
    for strength, piece, key in [(0, None, "collage_strength"), (1.5, None, "collage_strength"),
                                 (0.3, 301, "collage_piece"), (0.3, 0, "collage_piece")]:  # fmt: skip
        with pytest.raises(UserError, match=key):
            collage_plan(strength, piece, window=48, steps=1000, frames=300)
    refuse_for_text(None, True, "run")
    refuse_for_text(0.3, False, "run")
    with pytest.raises(UserError, match="text run"):
        refuse_for_text(0.3, True, "run")


def test_each_chained_window_gets_its_part_of_the_guide():
    guide = torch.arange(200.0).view(1, 200, 1).expand(2, 200, 1)  # (B, L, F): frame indices
    seen = []

    def sample(known, known_mask, source):
        seen.append(int(source[0, 0, 0]))
        assert source.shape == (2, 48, 1)
        return source  # follow the guide exactly

    first = guide[:, :48].clone()
    out = chain_windows(sample, first, 5, overlap=16, blend=8, guide=guide)
    assert seen == [32, 64, 96, 128] and out.shape[1] == chained_length(48, 5, 16) == 176
    torch.testing.assert_close(out, guide[:, :176])  # windows that follow one sequence rebuild it, seams and all
    with pytest.raises(AssertionError, match="too short"):
        chain_windows(sample, first, 6, overlap=16, guide=guide[:, :200])
