"""Chains that follow a collage of the dance: SDEdit starts in the samplers, the collage, and the chain's guide."""

import pytest
import torch

from motiondiff.core.errors import UserError
from motiondiff.data.collage import CollagePlan, collage, collage_plan, refuse_for_text
from motiondiff.diffusion.chaining import chain_windows, chained_length
from motiondiff.diffusion.consistency import ConsistencySampler
from motiondiff.diffusion.denoiser import Denoiser
from motiondiff.diffusion.samplers import DDIMSampler, DDPMSampler, DPMSolverSampler, KarrasSampler
from motiondiff.diffusion.schedule import CosineSchedule, LinearSchedule
from test_diffusion import GAUSSIAN_MEAN, GAUSSIAN_STD, GaussianOracle

FINE = [  # grids fine enough for the closed-form data's narrow feature (std 0.1) from any start
    DDPMSampler(progress=False),
    DDIMSampler(num_steps=250, progress=False),
    DPMSolverSampler(50, progress=False),
    DPMSolverSampler(50, sde=True, progress=False),
    KarrasSampler(50, progress=False),
]
SAMPLERS = [
    DDPMSampler(progress=False),
    DDIMSampler(num_steps=50, progress=False),
    DPMSolverSampler(10, progress=False),
    KarrasSampler(10, method="euler", progress=False),  # one call a step (Heun adds one at t_prev)
    ConsistencySampler(4, progress=False),
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
    for strength in (0.2, 0.7):
        start = sampler.grid_step(schedule, strength * 999)
        noise = torch.randn(source.shape, generator=generator)
        out = sampler.sample(denoiser, schedule, noise, generator=generator, source=source, start=start)  # (B, 1, F)
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

    grid = sampler.timesteps(schedule)
    start = sampler.grid_step(schedule, 333)
    assert start in grid and all(abs(step - 333) >= abs(start - 333) for step in grid)
    sampler.sample(denoise, schedule, torch.randn(2, 3, 1), source=torch.zeros(2, 3, 1), start=start)
    assert steps == grid[grid.index(start) :]
    off_grid = [step for step in range(1000) if step not in grid][:1]  # none for DDPM: every step is on its grid
    for step in off_grid:
        with pytest.raises(AssertionError, match="grid"):
            sampler.sample(denoise, schedule, torch.randn(2, 3, 1), source=torch.zeros(2, 3, 1), start=step)


def test_the_start_holds_the_known_values_and_the_source_elsewhere():
    """The first network call sees the known frames where they are known and the source elsewhere, both noised to
    the start (not the source's own frames where the chain fixed them)."""
    schedule, seen = LinearSchedule(), []

    def denoise(x, t):
        seen.append(x.clone())
        return torch.zeros_like(x), torch.zeros_like(x)

    source, known = torch.full((2, 6, 3), -3.0), torch.full((2, 6, 3), 5.0)
    known_mask = torch.zeros(2, 6, dtype=torch.bool)
    known_mask[:, :2] = True
    DDPMSampler(progress=False).sample(
        denoise, schedule, torch.randn(2, 6, 3), known=known, known_mask=known_mask, source=source, start=20
    )
    scale = schedule.sqrt_alphas_cumprod[20].item()  # about 1: little noise at step 20
    first = seen[0] / scale
    assert (first[:, :2] - 5.0).abs().max() < 0.5 and (first[:, 2:] + 3.0).abs().max() < 0.5


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
    assert collage_plan(0.3, None, window=48, frames=300) == CollagePlan(0.3, 48)
    assert collage_plan(1, 64, window=48, frames=300) == CollagePlan(1.0, 64)
    for strength, piece, key in [(0, None, "collage_strength"), (1.5, None, "collage_strength"),
                                 (True, None, "collage_strength"), ("abc", None, "collage_strength"),
                                 (0.3, 301, "collage_piece"), (0.3, 0, "collage_piece")]:  # fmt: skip
        with pytest.raises(UserError, match=key):
            collage_plan(strength, piece, window=48, frames=300)
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
