"""Consistency distillation: the boundary scalings, the sampler, per-sample guidance, the guidance input, the loss,
and `experiment=distill teacher=<run>` end to end on a tiny text run (config from the teacher, loss going down,
the teacher kept out of the checkpoint, generation with sampler=consistency)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from conftest import compose_config
from motiondiff.cli.app import CONFIG_DIR
from motiondiff.cli.preflight import preflight
from motiondiff.core.errors import UserError
from motiondiff.diffusion.consistency import (
    ConsistencyDistillationLoss,
    ConsistencySampler,
    boundary_scalings,
    consistency_output,
    phase_grid,
    phase_output,
    skipping_steps,
)
from motiondiff.diffusion.denoiser import Denoiser
from motiondiff.diffusion.samplers import DDIMSampler, evenly_spaced
from motiondiff.diffusion.schedule import CosineSchedule, LinearSchedule
from motiondiff.generation import run as generate
from motiondiff.networks.conditioning import AdaLNTransformer
from motiondiff.runs import train
from motiondiff.runs.directories import load_run_config, save_resumed_config, save_run_config
from motiondiff.runs.distill import with_teacher
from motiondiff.runs.legacy import added_option_overrides
from motiondiff.training.checkpoint_io import load_checkpoint
from motiondiff.training.diffusion_module import MotionDiffusion
from motiondiff.training.distill_module import ConsistencyDistillation
from test_text2motion_end_to_end import data_dir, train_text_run  # noqa: F401 (data_dir: a fixture)

FEATURES, TEXT_DIM = 6, 5


def tiny_network(**options) -> AdaLNTransformer:
    torch.manual_seed(0)
    return AdaLNTransformer(features=FEATURES, text_dim=TEXT_DIM, latent_dim=16, num_layers=1, num_heads=2, **options)


def text_cond(batch: int) -> dict:
    generator = torch.Generator().manual_seed(1)
    return {
        "text_pooled": torch.randn(batch, TEXT_DIM, generator=generator),
        "text_tokens": torch.randn(batch, 3, TEXT_DIM, generator=generator),
        "text_mask": torch.ones(batch, 3, dtype=torch.bool),
    }


def test_boundary_scalings_make_f_the_identity_at_step_zero():
    c_skip, c_out = boundary_scalings(torch.tensor([0, 1, 20, 999]))
    assert c_skip[0] == 1 and c_out[0] == 0
    assert c_skip[2] < 2e-3 and c_skip[3] < 1e-6 and c_out[3] > 0.999
    assert bool((c_skip[1:] < c_skip[:-1]).all())


def test_skipping_steps_as_lcm_and_refusals():
    schedule = LinearSchedule(1000)
    assert skipping_steps(schedule, 4) == [999, 749, 499, 249]
    assert skipping_steps(schedule, 1) == [999]
    with pytest.raises(UserError, match="exceeds"):
        skipping_steps(LinearSchedule(10), 11)
    with pytest.raises(UserError):
        ConsistencySampler(num_steps=0)


def test_one_step_sample_is_the_boundary_scaled_clean_estimate():
    schedule = CosineSchedule(100)
    network = tiny_network()
    torch.nn.init.normal_(network.output.weight, std=0.1)  # a non-zero output
    cond = text_cond(3)
    denoiser = Denoiser(network, schedule, "x0", cond=cond)
    noise = torch.randn(3, 7, FEATURES, generator=torch.Generator().manual_seed(2))
    sample = ConsistencySampler(num_steps=1, progress=False).sample(denoiser, schedule, noise)
    t = torch.full((3,), 99)
    c_skip, c_out = boundary_scalings(t)
    expected = c_skip.view(-1, 1, 1) * noise + c_out.view(-1, 1, 1) * network(noise, t, cond=cond)
    assert torch.allclose(sample, expected, atol=1e-6)


def sampling_setup(prediction: str, batch: int, frames: int, seed: int) -> tuple:
    """A 100-step cosine schedule, a denoiser over a tiny network with a non-zero output, and seeded noise."""
    schedule, network = CosineSchedule(100), tiny_network()
    torch.nn.init.normal_(network.output.weight, std=0.1)
    denoiser = Denoiser(network, schedule, prediction, cond=text_cond(batch))
    return schedule, denoiser, torch.randn(batch, frames, FEATURES, generator=torch.Generator().manual_seed(seed))


def test_multistep_sampler_is_seeded_and_keeps_known_frames():
    schedule, denoiser, noise = sampling_setup("epsilon", batch=2, frames=8, seed=3)
    known, known_mask = torch.randn(2, 8, FEATURES), torch.zeros(2, 8, dtype=torch.bool)
    known_mask[:, :3] = True
    sampler = ConsistencySampler(num_steps=4, progress=False)

    def run(seed):
        generator = torch.Generator().manual_seed(seed)
        return sampler.sample(denoiser, schedule, noise, generator, known=known, known_mask=known_mask)

    first, again, other = run(0), run(0), run(1)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert torch.allclose(first[:, :3], known[:, :3])


def test_gamma_walks_deterministically_then_noises_from_the_intermediate_step():
    schedule, denoiser, noise = sampling_setup("x0", batch=2, frames=6, seed=4)
    abar = schedule.alphas_cumprod.double()

    def by_hand(gamma, generator):  # 2 steps, 99 -> 49 -> clean, written out in float64 coefficients
        x = noise
        f = consistency_output(denoiser, x, torch.full((2,), 99))
        eps = (x - abar[99].sqrt().float() * f) / (1 - abar[99]).sqrt().float()
        mid = round((1 - gamma) * 50) - 1
        a_mid = abar[mid] if mid >= 0 else torch.tensor(1.0, dtype=torch.float64)
        x = a_mid.sqrt().float() * f + (1 - a_mid).sqrt().float() * eps
        ratio = abar[49] / a_mid
        if ratio < 1:
            x = ratio.sqrt().float() * x + (1 - ratio).sqrt().float() * torch.randn(x.shape, generator=generator)
        return consistency_output(denoiser, x, torch.full((2,), 49))

    for gamma in (0.0, 0.4, 1.0):
        sampler = ConsistencySampler(num_steps=2, gamma=gamma, progress=False)
        assert sampler.timesteps(schedule) == [99, 49]
        got = sampler.sample(denoiser, schedule, noise, torch.Generator().manual_seed(5))
        assert torch.allclose(got, by_hand(gamma, torch.Generator().manual_seed(5)), atol=1e-5), gamma
    deterministic = ConsistencySampler(num_steps=2, gamma=0.0, progress=False)
    first = deterministic.sample(denoiser, schedule, noise, torch.Generator().manual_seed(0))
    assert torch.equal(first, deterministic.sample(denoiser, schedule, noise, torch.Generator().manual_seed(1)))
    with pytest.raises(UserError, match="gamma"):
        ConsistencySampler(gamma=1.5)


def test_per_sample_guidance_weights_match_scalar_weights():
    schedule, network, cond = CosineSchedule(50), tiny_network(), text_cond(3)
    torch.nn.init.normal_(network.output.weight, std=0.1)
    x, t = torch.randn(3, 5, FEATURES), torch.tensor([10, 20, 30])
    weights = torch.tensor([0.0, 1.0, 3.5])
    batched = Denoiser(network, schedule, "x0", cond=cond, guidance_weight=weights)(x, t)[0]
    for i, weight in enumerate(weights.tolist()):
        one = {key: value[i : i + 1] for key, value in cond.items()}
        alone = Denoiser(network, schedule, "x0", cond=one, guidance_weight=weight)(x[i : i + 1], t[i : i + 1])[0]
        assert torch.allclose(batched[i : i + 1], alone, atol=1e-5)


def test_guidance_input_starts_at_zero_and_is_required():
    teacher, student = tiny_network(), tiny_network(guidance_embedding=True)
    torch.nn.init.normal_(teacher.output.weight, std=0.1)
    result = student.load_state_dict(teacher.state_dict(), strict=False)
    assert all(key.startswith("guidance_embedder.") for key in result.missing_keys) and not result.unexpected_keys
    x, t, cond = torch.randn(2, 4, FEATURES), torch.tensor([5, 40]), text_cond(2)
    assert torch.equal(student(x, t, cond={**cond, "guidance": torch.tensor([1.0, 4.0])}), teacher(x, t, cond=cond))
    with pytest.raises(ValueError, match="guidance"):
        student(x, t, cond=cond)
    with pytest.raises(UserError, match="guidance_embedding"):
        tiny_network(guidance_embedding="yes")


def test_loss_trains_only_the_student():
    schedule = CosineSchedule(100)
    teacher, student, target = (
        tiny_network(),
        tiny_network(guidance_embedding=True),
        tiny_network(guidance_embedding=True),
    )
    for network in (teacher, student, target):
        torch.nn.init.normal_(network.output.weight, std=0.1)
    loss_fn = ConsistencyDistillationLoss(solver_steps=10)
    x0, mask = torch.randn(4, 6, FEATURES), torch.ones(4, 6, dtype=torch.bool)
    mask[0, 4:] = False
    loss = loss_fn(student, target, teacher, schedule, "x0", x0, mask, cond=text_cond(4))
    assert loss.ndim == 0 and torch.isfinite(loss) and loss > 0
    loss.backward()
    assert student.output.weight.grad is not None
    assert all(p.grad is None for p in (*teacher.parameters(), *target.parameters()))


@pytest.mark.parametrize("phases", [1, 4])
def test_an_extra_term_sees_the_students_clean_sample_and_the_data(phases):
    """`extra(clean, x0)` is added to the loss: clean is f_student(x_t, t) (the data end, also where the phases stop
    short of it), x0 the batch; its gradient reaches the student."""
    schedule, cond = CosineSchedule(100), text_cond(4)
    teacher, student, target = (
        tiny_network(),
        tiny_network(guidance_embedding=True),
        tiny_network(guidance_embedding=True),
    )
    torch.nn.init.normal_(student.output.weight, std=0.1)
    loss_fn = ConsistencyDistillationLoss(solver_steps=10, phases=phases)
    x0, seen = torch.randn(4, 6, FEATURES), []

    def extra(clean, data):
        seen.append((clean, data))
        return (clean - data).pow(2).mean()

    def loss(term):
        generator = torch.Generator().manual_seed(3)
        return loss_fn(student, target, teacher, schedule, "x0", x0, cond=cond, generator=generator, extra=term)

    plain, with_term = loss(None), loss(extra)
    ((clean, data),) = seen
    assert data is x0 and clean.shape == x0.shape and clean.requires_grad
    torch.testing.assert_close(with_term - plain, (clean - x0).pow(2).mean())
    # clean is the student's f at the drawn (x_t, t): recompute it from the same draws
    generator = torch.Generator().manual_seed(3)
    grid, _ = phase_grid(schedule, 10, phases)
    t = torch.tensor(grid)[torch.randint(0, len(grid) - 1, (4,), generator=generator)]
    x_t = schedule.q_sample(x0, t, torch.randn(x0.shape, generator=generator))
    weights = 1.0 + 3.0 * torch.rand(4, generator=generator)
    own = consistency_output(Denoiser(student, schedule, "x0", {**cond, "guidance": weights}), x_t, t)
    torch.testing.assert_close(clean, own)
    (with_term - plain).backward()
    assert student.output.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "options, message",
    [
        ({"solver_steps": 1}, "solver_steps"),
        ({"guidance_min": 3.0, "guidance_max": 2.0}, "guidance_min"),
        ({"distance": "l1"}, "distance"),
        ({"huber_c": 0.0}, "huber_c"),
        ({"weighting": "snr"}, "weighting"),
        ({"phases": 0}, "phases"),
        ({"solver_steps": 4, "phases": 4}, "phases"),
    ],
)
def test_loss_refuses_bad_options(options, message):
    with pytest.raises(UserError, match=message):
        ConsistencyDistillationLoss(**options)


@pytest.mark.parametrize("phases", [1, 4])
def test_distillation_loss_goes_down_for_a_teacher_with_inconsistent_predictions(phases):
    """A random (untrained, so far from consistent) teacher; the student learns to agree with itself along the
    teacher's ODE: 80 Adam steps on one batch, the target an EMA (0.9) of the student."""
    schedule, cond = CosineSchedule(100), text_cond(8)
    teacher = tiny_network()
    torch.nn.init.normal_(teacher.output.weight, std=0.3)
    student = tiny_network(guidance_embedding=True)
    student.load_state_dict(teacher.state_dict(), strict=False)
    target = tiny_network(guidance_embedding=True)
    target.load_state_dict(student.state_dict())
    loss_fn = ConsistencyDistillationLoss(solver_steps=10, distance="l2", phases=phases)
    optimizer = torch.optim.Adam(student.parameters(), lr=3e-3)
    x0 = torch.randn(8, 6, FEATURES, generator=torch.Generator().manual_seed(4))
    generator, losses = torch.Generator().manual_seed(5), []
    for _ in range(80):
        loss = loss_fn(student, target, teacher, schedule, "x0", x0, cond=cond, clip_x0=3.0, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for online, slow in zip(student.parameters(), target.parameters()):
                slow.lerp_(online, 0.1)
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10]), losses


def test_phase_grid_adds_the_sampling_steps_and_never_crosses_them():
    schedule = LinearSchedule(1000)
    grid, edges = phase_grid(schedule, 50, 4)
    assert set(grid) == set(evenly_spaced(schedule, 50)) | {749, 499, 249} and grid == sorted(grid, reverse=True)
    assert len(edges) == len(grid) and all(edge < t for t, edge in zip(grid, edges))
    assert all(grid[i + 1] >= edges[i] for i in range(len(grid) - 1))  # a teacher step stays inside its phase
    lookup = dict(zip(grid, edges))
    assert [lookup[t] for t in (999, 754, 749, 734, 0)] == [749, 749, 499, 499, -1]  # 754 and 734: the DDIM grid's
    starts = skipping_steps(schedule, 4)  # the sampler's steps: each phase ends where the next call starts
    assert [lookup[t] for t in starts] == starts[1:] + [-1]
    assert phase_grid(schedule, 50, 1) == (evenly_spaced(schedule, 50), [-1] * 50)  # LCM's grid, unchanged


def test_phase_output_is_f_in_the_last_phase_and_the_identity_on_its_edge():
    schedule, denoiser, x = sampling_setup("x0", batch=3, frames=5, seed=6)
    t = torch.tensor([80, 60, 40])
    f = consistency_output(denoiser, x, t)
    assert torch.equal(phase_output(denoiser, schedule, x, t, torch.full((3,), -1)), f)
    edge = torch.tensor([50, 60, -1])  # a DDIM step to 50, the edge itself, the data
    out = phase_output(denoiser, schedule, x, t, edge)
    eps = schedule.eps_from_x0(x[:1], t[:1], f[:1])
    assert torch.allclose(out[:1], schedule.q_sample(f[:1], edge[:1], eps), atol=1e-6)
    assert torch.equal(out[1], x[1]) and torch.equal(out[2], f[2])


def test_a_phased_student_samples_its_phases_with_the_deterministic_sampler():
    """K deterministic consistency steps are the K phase maps one after the other (what training fits)."""
    schedule, denoiser, noise = sampling_setup("epsilon", batch=2, frames=6, seed=7)
    grid, edges = phase_grid(schedule, 20, 4)
    lookup, x = dict(zip(grid, edges)), noise
    for start in skipping_steps(schedule, 4):
        x = phase_output(denoiser, schedule, x, torch.full((2,), start), torch.full((2,), lookup[start]))
    sampled = ConsistencySampler(num_steps=4, gamma=0.0, progress=False).sample(denoiser, schedule, noise)
    assert torch.allclose(sampled, x, atol=1e-5)


MODES, MODE_STD = torch.tensor([-1.0, 1.0]), 0.1


class MixtureOracle(torch.nn.Module):
    """The exact E[x0 | x_t] for data whose every value is drawn from 1/2 N(-1, 0.1^2) + 1/2 N(1, 0.1^2)."""

    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule

    def forward(self, x_t, t, cond=None, mask=None):
        alpha_bar = self.schedule.alphas_cumprod[t].view(-1, 1, 1, 1)
        x, scale = x_t.unsqueeze(-1), alpha_bar.sqrt()  # (B, N, F, 1); a mode per last index
        var = alpha_bar * MODE_STD**2 + 1 - alpha_bar  # each mode's variance at t
        responsibility = (-0.5 * (x - scale * MODES) ** 2 / var).softmax(-1)
        posterior = MODES + scale * MODE_STD**2 / var * (x - scale * MODES)  # E[x0 | x_t, mode]
        return (responsibility * posterior).sum(-1)  # (B, N, F)


class TinyStudent(torch.nn.Module):
    """An MLP of (x_t, t) per value, predicting x0."""

    def __init__(self, width: int = 64):
        super().__init__()
        with torch.random.fork_rng():  # the same weights every time, the global stream untouched
            torch.manual_seed(0)
            self.mlp = torch.nn.Sequential(
                torch.nn.Linear(3, width),
                torch.nn.SiLU(),
                torch.nn.Linear(width, width),
                torch.nn.SiLU(),
                torch.nn.Linear(width, 1),
            )

    def forward(self, x_t, t, cond=None, mask=None):
        time = (t.float() / 1000).view(-1, 1, 1).expand_as(x_t)
        return self.mlp(torch.stack([x_t, time, torch.cos(torch.pi * time)], dim=-1)).squeeze(-1)  # (B, N, F)


def mixture_samples(shape, generator):
    return MODES[torch.randint(0, 2, shape, generator=generator)] + MODE_STD * torch.randn(shape, generator=generator)


def wasserstein_to_mixture(samples) -> float:
    """W1 between the samples' values and as many draws of the mixture (sorted values matched one to one)."""
    real = mixture_samples(samples.shape, torch.Generator().manual_seed(11))
    return (samples.flatten().sort().values - real.flatten().sort().values).abs().mean().item()


@pytest.mark.parametrize("phases", [1, 4])
def test_a_distilled_student_beats_its_teacher_at_four_ddim_steps(phases):
    """The issue's 'distilled 4-step student beating the teacher at 4 DDIM steps', where the teacher is exact: a
    two-mode mixture whose E[x0 | x_t] is closed-form. DDIM-50 on it reproduces the data, DDIM-4 lands between the
    modes; a student distilled from the same teacher's 50-step ODE (800 steps, a few seconds) samples the modes in
    4 deterministic consistency steps. LCM (phases 1) and a 4-phase student both; 4 phases by at least 3x."""
    schedule = LinearSchedule(1000)
    teacher, student, target = MixtureOracle(schedule), TinyStudent(), TinyStudent()
    loss_fn = ConsistencyDistillationLoss(solver_steps=50, distance="l2", phases=phases)
    optimizer = torch.optim.Adam(student.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(1)
    for _ in range(800):
        x0 = mixture_samples((256, 1, 1), generator)
        loss = loss_fn(student, target, teacher, schedule, "x0", x0, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for online, slow in zip(student.parameters(), target.parameters()):
                slow.lerp_(online, 0.05)
    noise = torch.randn(4000, 1, 1, generator=torch.Generator().manual_seed(2))
    exact = Denoiser(teacher, schedule, "x0")
    with torch.no_grad():
        ddim_50, ddim_4 = (DDIMSampler(n, progress=False).sample(exact, schedule, noise) for n in (50, 4))
        student_4 = ConsistencySampler(4, gamma=0.0, progress=False).sample(
            Denoiser(target, schedule, "x0"), schedule, noise
        )
    teacher_error = wasserstein_to_mixture(ddim_4)
    assert wasserstein_to_mixture(ddim_50) < 0.05 < 0.3 < teacher_error  # the measure sees DDIM-4's error
    assert wasserstein_to_mixture(student_4) < teacher_error / (3 if phases > 1 else 2)


def test_a_phased_distillation_samples_in_its_phases(tmp_path):
    cfg = compose_config("train", tmp_path, ["experiment=distill", "module.distillation.phases=4"])
    assert cfg.sampler.num_steps == 4 and cfg.val_sampler.num_steps == 4
    assert compose_config("train", tmp_path / "lcm", ["experiment=distill"]).sampler.num_steps == 1


FAST = ["+trainer.fast_dev_run=true", "sampler.num_steps=3", "generate_after_training.num_samples=1"]


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory, data_dir) -> dict:  # noqa: F811 (the fixture imported above)
    """A tiny text teacher (one training step; epsilon prediction, a linear schedule of 500 steps; no videos: the
    tests read its config and weights only)."""
    run_dir = tmp_path_factory.mktemp("teacher")
    overrides = ["loss=epsilon", "schedule=linear", "schedule.num_steps=500", "generate_after_training.num_samples=0"]
    return train_text_run(run_dir, data_dir, *overrides)


def distill_overrides(teacher_dir: Path, data_dir: Path) -> list:  # noqa: F811 (data_dir: a path here)
    """experiment=distill of the teacher, 2 steps; not fast_dev_run: validation and checkpoints run as in a real run."""
    return [
        "experiment=distill",
        f"teacher={teacher_dir}",
        f"paths.data_dir={data_dir}",
        "trainer.max_steps=2",
        "trainer.check_val_every_n_epoch=1",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1",
        "sampler.num_steps=3",
        "generate_after_training.num_samples=1",
        "generate_after_training.prompts=[a person jumps]",  # one prompt: one video to draw
    ]


@pytest.fixture(scope="module")
def distilled(tmp_path_factory, data_dir, teacher_run) -> dict:  # noqa: F811
    overrides = distill_overrides(teacher_run["run_dir"], data_dir)
    return {
        **train.run(compose_config("train", tmp_path_factory.mktemp("distilled"), overrides)),
        "overrides": overrides,
    }


def test_distilled_run_takes_the_teachers_config_and_not_its_weights(distilled, teacher_run):
    saved = (distilled["run_dir"] / "config.yaml").read_text()
    assert "guidance_embedding: true" in saved and f"teacher: {teacher_run['run_dir']}" in saved
    assert "prediction: epsilon" in saved and "LinearSchedule" in saved and "num_steps: 500" in saved
    state = load_checkpoint(distilled["run_dir"] / "checkpoints" / "last.ckpt")["state_dict"]
    assert not any(key.startswith("teacher") for key in state)
    assert any("guidance_embedder" in key for key in state)
    assert list((distilled["run_dir"] / "checkpoints").glob("best-*.ckpt"))  # monitored on val/loss_ema
    final = json.loads((distilled["run_dir"] / "generations" / "final" / "generation.json").read_text())
    assert final["sampler"]["name"] == "ConsistencySampler"


def test_distilled_run_generates_with_its_consistency_sampler(distilled, tmp_path):
    out = tmp_path / "gen"
    cfg = compose_config(
        "generate",
        out,
        [f"run_dir={distilled['run_dir']}", "prompt=a person jumps", "length=40", "num_samples=2", "render=false"],
    )
    generate.run(cfg)
    summary = json.loads((out / "generation.json").read_text())
    assert summary["sampler"]["name"] == "ConsistencySampler" and summary["sampler"]["num_steps"] == 3  # the run's
    assert np.isfinite(np.load(out / "sample_01.npy")).all()


def test_teacher_is_required_and_only_for_distillation(tmp_path, teacher_run):
    with pytest.raises(UserError, match="teacher="):
        with_teacher(compose_config("train", tmp_path / "a", ["experiment=distill"]))
    with pytest.raises(UserError, match="experiment=distill"):
        with_teacher(compose_config("train", tmp_path / "b", [f"teacher={teacher_run['run_dir']}"]))


def test_the_command_line_refuses_a_teacher_that_is_not_a_run(tmp_path, teacher_run):
    with pytest.raises(UserError, match="no such run: teacher="):
        preflight(CONFIG_DIR, "train", ["experiment=distill", f"teacher={tmp_path / 'missing'}"])
    preflight(CONFIG_DIR, "train", ["experiment=distill", f"teacher={teacher_run['run_dir']}"])  # a run: accepted
    # the guidance the student samples with, checked against the teacher's network once it is copied in (train)
    preflight(
        CONFIG_DIR, "train", ["experiment=distill", f"teacher={teacher_run['run_dir']}", "module.guidance_weight=3"]
    )
    preflight(CONFIG_DIR, "train", ["experiment=dance2d"])  # no teacher, nothing to check


def test_a_finished_run_resumed_to_more_steps_keeps_its_samples(distilled):
    run_dir = distilled["run_dir"]
    before = sorted(p.name for p in (run_dir / "generations" / "final").iterdir())
    last = run_dir / "checkpoints" / "last.ckpt"
    cfg = compose_config("train", run_dir, [*distilled["overrides"], "trainer.max_steps=3", f"ckpt_path={last}"])
    train.run(cfg)
    assert sorted(p.name for p in (run_dir / "generations" / "final").iterdir()) == before
    assert (run_dir / "generations" / "final-step3" / "generation.json").is_file()


def test_resume_composes_a_distilled_run_with_its_own_foot_term_setting(distilled, tmp_path):
    """`resume=` composes today's configs with the saved run's foot term and target dropout
    (runs.legacy.added_option_overrides): the values it saved, or those of a run saved before they were options of
    distillation (no foot term, dropout in the target), as it trained."""
    saved = load_run_config(distilled["run_dir"])
    assert saved.module.foot_contact_weight == 0.0 and saved.module.target_dropout is False
    before = OmegaConf.create(OmegaConf.to_container(saved))
    before.module.pop("foot_contact_weight")
    before.module.pop("target_dropout")
    today = compose_config("train", distilled["run_dir"], distilled["overrides"])  # as preflight composes it
    for name, run in (("saved", saved), ("before", before)):
        overrides = added_option_overrides(run, today)  # the keys today's config has (not the teacher's groups)
        assert "module.foot_contact_weight=0.0" in overrides
        assert ("module.target_dropout=true" in overrides) == (name == "before")
        assert f"module.guidance_weight={saved.module.guidance_weight}" in overrides  # the teacher's, as it trained
        # a weight on the run's command line, which the teacher's replaced before: the saved one is resumed
        given = [*distilled["overrides"], "module.guidance_weight=3.5", *overrides]
        resumed = with_teacher(compose_config("train", distilled["run_dir"], given))
        save_run_config(run, tmp_path / name)
        save_resumed_config(resumed, tmp_path / name, step=2)  # the run's own settings: accepted


def test_the_target_network_runs_without_dropout_unless_asked(distilled):
    """The EMA target is in eval mode from the start of fit and after train() (LCM's network has no dropout);
    target_dropout=true (MotionLCM, runs saved before the option) leaves it to drop out as the student does."""
    module = distilled["module"]
    module.ema_network.train()  # as a freshly built module is: Lightning keeps that mode
    module.on_fit_start()
    assert not module.ema_network.training
    module.train()
    assert module.network.training and not module.ema_network.training
    module.target_dropout = True
    try:
        module.train()
        assert module.ema_network.training
    finally:
        module.target_dropout = False
        module.eval()


def test_sampling_guidance_is_the_command_lines_or_the_teachers_and_warned_outside_the_trained_range(
    distilled, teacher_run, tmp_path, caplog
):
    teacher_weight = load_run_config(teacher_run["run_dir"]).module.guidance_weight
    given = with_teacher(compose_config("train", tmp_path / "a", [*distilled["overrides"], "module.guidance_weight=3"]))
    assert given.module.guidance_weight == 3  # the command line's, where it was replaced by the teacher's before
    assert with_teacher(compose_config("train", tmp_path / "b", distilled["overrides"])).module.guidance_weight == (
        teacher_weight
    )
    module = distilled["module"]
    cond = {"text_pooled": torch.zeros(1, 8)}  # building the denoiser reads only the batch size
    with caplog.at_level("WARNING", logger="motiondiff.training.distill_module"):
        for weight in (2.5, 7.0, 7.0, 0.0, 2.0):
            module.denoiser(cond, None, weight)
    warned = [record.getMessage() for record in caplog.records]
    assert len(warned) == 2, warned  # 7 once, 0 once; 2.5 and 2 lie inside [1, 4]
    assert "guidance weight 7 is outside [1, 4]" in warned[0] and "guidance weight 0 is outside" in warned[1]


def test_ict_weights_favour_the_low_noise_intervals_and_average_one():
    schedule = CosineSchedule(100)
    grid = [99, 66, 33, 0]
    uniform = ConsistencyDistillationLoss().interval_weights(schedule, grid)
    ict = ConsistencyDistillationLoss(weighting="ict").interval_weights(schedule, grid)
    assert torch.equal(uniform, torch.ones(3))
    assert ict.shape == (3,) and torch.isclose(ict.mean(), torch.tensor(1.0)) and bool((ict[1:] > ict[:-1]).all())


@pytest.mark.parametrize(
    "student", [LinearSchedule(400), CosineSchedule(500), LinearSchedule(500, beta_end=0.0200001)], ids=str
)
def test_a_teacher_with_other_betas_is_refused(student):
    def bare(cls, schedule):  # a module with only its schedule: the first thing attach_teacher compares
        module = cls.__new__(cls)
        nn.Module.__init__(module)
        module.schedule = schedule
        return module

    teacher = bare(MotionDiffusion, LinearSchedule(500))
    with pytest.raises(UserError, match="keep the teacher's schedule group"):
        bare(ConsistencyDistillation, student).attach_teacher(teacher)
