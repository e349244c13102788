"""Consistency distillation (latent consistency models, Luo et al. 2023; MotionLCM for motion) as data and loops.

A consistency function f(x_t, t) maps any point of a probability-flow trajectory to its clean end. It is read off
a denoiser with the boundary scalings f = c_skip(t) x_t + c_out(t) x0_hat(x_t, t), which make f(x, 0) = x exactly.
Distillation trains a student f_theta so that f_theta(x_t, t) equals the target network's f at the point x_s one
guided teacher ODE step (DDIM, eta = 0) closer to the data, with t and s neighbours on a coarse solver grid (skipping
steps). The guidance weight w is drawn per sample and given to the student as a condition (cond['guidance']), so the
student samples guided motions with one network call per step, without the doubled unconditional batch. Sampling:
f at the noisiest step, then on to the next step and f again: with fresh noise (Song et al. 2023, Algorithm 1) or,
by `gamma`, partly or wholly deterministically (TCD, Zheng et al. 2024). With `phases` K > 1 (multistep consistency
models, Heek et al. 2024; phased consistency models, Wang et al. 2024) the trajectory is cut at the K sampling steps
and f maps each point only to the start of the next phase (DDIM on its clean estimate), so K deterministic steps
(gamma = 0) follow the teacher's ODE instead of jumping to the data K times.
"""

from typing import Callable, Optional

import torch
from torch import Tensor, nn

from motiondiff.core.checks import whole_number
from motiondiff.core.errors import UserError
from motiondiff.core.types import FrameMask, Loss, Motion, Timesteps
from motiondiff.diffusion.denoiser import Denoiser, check_guidance_weight
from motiondiff.diffusion.loss import check_prediction, masked_mean
from motiondiff.diffusion.samplers import Sampler, _randn_like, evenly_spaced, log_alpha_bars, x0_at
from motiondiff.diffusion.schedule import NoiseSchedule

DISTANCES = ("huber", "l2")
WEIGHTINGS = ("uniform", "ict")


def boundary_scalings(t: Timesteps, sigma_data: float = 0.5, timestep_scaling: float = 10.0) -> tuple:
    """(c_skip, c_out) (B,) of LCM: c_skip(0) = 1 and c_out(0) = 0, so f(x, 0) = x; c_skip ~ 0 beyond a few steps."""
    scaled = t.double() * timestep_scaling
    c_skip = sigma_data**2 / (scaled**2 + sigma_data**2)
    c_out = scaled / (scaled**2 + sigma_data**2).sqrt()
    return c_skip.float(), c_out.float()


def consistency_output(denoiser: Callable, x_t: Motion, t: Timesteps) -> Motion:
    """f(x_t, t) = c_skip x_t + c_out x0_hat: the denoiser's clean sample with the boundary condition f(x, 0) = x."""
    c_skip, c_out = (c.to(x_t.dtype).view(-1, 1, 1) for c in boundary_scalings(t))  # (B, 1, 1) each
    return c_skip * x_t + c_out * x0_at(denoiser, x_t, t)  # (B, N, F)


def phase_output(denoiser: Callable, schedule: NoiseSchedule, x_t: Motion, t: Timesteps, edge: Timesteps) -> Motion:
    """f_k(x_t, t): f carried by a DDIM step to the lower edge (B,) of t's phase (-1: the data, where this is f),
    x_t itself where t is the edge (the phase's boundary condition)."""
    return to_phase_edge(schedule, x_t, t, edge, consistency_output(denoiser, x_t, t))


def to_phase_edge(schedule: NoiseSchedule, x_t: Motion, t: Timesteps, edge: Timesteps, x0: Motion) -> Motion:
    """`phase_output` from f's clean sample x0 = f(x_t, t) (B, N, F)."""
    clean = edge < 0  # (B,)
    if bool(clean.all()):
        return x0
    moved = schedule.q_sample(x0, edge.clamp(min=0), schedule.eps_from_x0(x_t, t, x0))  # (B, N, F)
    moved = torch.where(clean.view(-1, 1, 1), x0, moved)
    return torch.where((edge == t).view(-1, 1, 1), x_t, moved)


def phase_grid(schedule: NoiseSchedule, solver_steps: int, phases: int) -> tuple:
    """(grid, edges): the teacher's DDIM grid with the K phase starts added (noisiest first), and per grid step the
    lower edge of its phase (the next phase's start; -1 in the last phase). Neighbours never cross an edge."""
    starts = skipping_steps(schedule, phases)
    grid = sorted(set(evenly_spaced(schedule, solver_steps)) | set(starts), reverse=True)
    lower = starts[1:] + [-1]  # each phase's lower edge
    return grid, [max(edge for edge in lower if edge < t) for t in grid]


def skipping_steps(schedule: NoiseSchedule, num_steps: int) -> list:
    """`num_steps` steps from the noisiest down with a stride of T // num_steps (LCM's: 4 of 1000 = 999, 749, 499,
    249), so that the last one is not the nearly clean step 0."""
    whole_number("sampler.num_steps", num_steps)
    evenly_spaced(schedule, num_steps)  # refuses more steps than the schedule has
    stride = schedule.num_steps // num_steps
    return [schedule.num_steps - 1 - i * stride for i in range(num_steps)]


class ConsistencySampler(Sampler):
    """Multistep consistency sampling: f at each step, then on to the next step. gamma = 1 re-noises f's clean
    estimate with fresh noise (Song et al. 2023, LCM); gamma < 1 first walks deterministically (DDIM on f and the
    noise it implies) to the intermediate step s' = (1 - gamma)(s + 1) - 1 and adds fresh noise only from s' to s
    (TCD's strategic stochastic sampling, Zheng et al. 2024); gamma = 0 is deterministic."""

    name = "consistency"

    def __init__(self, num_steps: int = 4, gamma: float = 1.0, progress: bool = True, resample: int = 1):
        super().__init__(progress, resample)
        self.num_steps = whole_number("sampler.num_steps", num_steps, why="1 = one network call per sample")
        if not 0.0 <= gamma <= 1.0:
            raise UserError(f"sampler.gamma={gamma} must lie in [0, 1] (1: fresh noise each step, 0: deterministic).")
        self.gamma = float(gamma)

    def timesteps(self, schedule: NoiseSchedule) -> list:
        return skipping_steps(schedule, self.num_steps)

    def intermediate(self, t_prev: int) -> int:
        """s' of the step to t_prev: t_prev itself at gamma 0, -1 (clean) at gamma 1."""
        return round((1.0 - self.gamma) * (t_prev + 1)) - 1

    def coefficient_table(self, schedule, pairs):
        """Per step, float64 then floats: (sqrt(abar_t), sqrt(1 - abar_t)) to read f's noise, (sqrt(abar_s'),
        sqrt(1 - abar_s')) to walk to s', and (sqrt(abar_prev / abar_s'), sqrt(1 - abar_prev / abar_s')) to noise
        from s' to t_prev (abar of step -1 is 1)."""
        walks = [(t, self.intermediate(t_prev)) for t, t_prev in pairs]
        log_abar, log_abar_mid = log_alpha_bars(schedule, walks)
        _, log_abar_prev = log_alpha_bars(schedule, pairs)
        log_ratio = log_abar_prev - log_abar_mid
        columns = []
        for log_a in (log_abar, log_abar_mid, log_ratio):
            columns += [(0.5 * log_a).exp(), (-torch.expm1(log_a)).sqrt()]
        return [tuple(row) for row in torch.stack(columns, dim=1).tolist()]

    def step(self, denoise, schedule, x, t, t_prev, generator, coefficients, impose=None):
        t_batch = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        x0 = consistency_output(denoise, x, t_batch)  # (B, N, F)
        if t_prev < 0:
            return x0
        scale_t, std_t, scale_mid, std_mid, scale_on, std_on = coefficients
        if std_mid > 0:  # gamma < 1: x_s' = sqrt(abar_s') f + sqrt(1 - abar_s') eps_f
            eps = (x - scale_t * x0) / std_t  # (B, N, F)
            x0 = x0.mul_(scale_mid).add_(eps.mul_(std_mid))
        if std_on == 0:  # gamma = 0: no fresh noise
            return x0
        return x0.mul_(scale_on).add_(_randn_like(x, generator).mul_(std_on))


class ConsistencyDistillationLoss(nn.Module):
    """The consistency distillation objective for one batch of clean motions (LCM, Algorithm 1)."""

    def __init__(
        self,
        solver_steps: int = 50,
        guidance_min: float = 1.0,
        guidance_max: float = 4.0,
        distance: str = "huber",
        huber_c: float = 0.001,
        weighting: str = "uniform",
        phases: int = 1,
    ):
        super().__init__()
        self.solver_steps = whole_number("distillation.solver_steps", solver_steps, why="the teacher's ODE grid")
        if self.solver_steps < 2:
            raise UserError(f"distillation.solver_steps={solver_steps} must be >= 2 (50 is LCM's).")
        self.phases = whole_number("distillation.phases", phases, why="1 = LCM; K = a K-step student")
        if self.phases >= self.solver_steps:
            raise UserError(
                f"distillation.phases={phases} must be fewer than distillation.solver_steps={solver_steps} (the "
                "teacher's steps that each phase is cut into)."
            )
        if not 0 <= guidance_min <= guidance_max:
            raise UserError(
                f"distillation.guidance_min={guidance_min} and guidance_max={guidance_max} must satisfy "
                "0 <= guidance_min <= guidance_max (the range of guidance weights the student learns)."
            )
        if distance not in DISTANCES:
            raise UserError(f"distillation.distance='{distance}' is unknown; use one of {', '.join(DISTANCES)}.")
        if not huber_c > 0:
            raise UserError(f"distillation.huber_c={huber_c} must be > 0 (LCM's is 0.001).")
        if weighting not in WEIGHTINGS:
            raise UserError(f"distillation.weighting='{weighting}' is unknown; use one of {', '.join(WEIGHTINGS)}.")
        self.weighting = weighting
        self.guidance_min, self.guidance_max = float(guidance_min), float(guidance_max)
        self.distance, self.huber_c = distance, float(huber_c)

    def forward(
        self,
        student: nn.Module,
        target: nn.Module,
        teacher: nn.Module,
        schedule: NoiseSchedule,
        prediction: str,
        x0: Motion,
        mask: Optional[FrameMask] = None,
        cond: Optional[dict] = None,
        clip_x0: Optional[float] = None,
        generator: Optional[torch.Generator] = None,
        extra: Optional[Callable[[Motion, Motion], Tensor]] = None,
    ) -> Loss:
        """d(f_student(x_t, t, w), f_target(x_s, s, w)), x_s one guided teacher DDIM step from x_t, both f taken to
        the lower edge of t's phase (`phase_output`); t, s, w, noise drawn per sample (from `generator` when given).
        Every clean estimate is clipped to clip_x0 as in sampling (an epsilon network's x0 = (x_t - sqrt(1 - abar)
        eps) / sqrt(abar) explodes where abar ~ 0). `extra(f_student(x_t, t, w), x0)`, when given, is added: a term
        on the student's clean sample against the data (module.foot_contact_weight's term)."""
        check_prediction(prediction)
        batch, device = x0.shape[0], x0.device
        steps, edge_steps = phase_grid(schedule, self.solver_steps, self.phases)
        grid, edges = torch.tensor(steps, device=device), torch.tensor(edge_steps, device=device)
        index = torch.randint(0, len(grid) - 1, (batch,), generator=generator, device=device)  # grid is (S,)
        t, s, edge = grid[index], grid[index + 1], edges[index]  # (B,) each, t > s >= edge
        noise = torch.randn(x0.shape, generator=generator, device=device, dtype=x0.dtype)
        x_t = schedule.q_sample(x0, t, noise)  # (B, N, F)
        weight, student_cond = None, cond
        if cond is not None:
            draws = torch.rand(batch, generator=generator, device=device)
            weight = self.guidance_min + (self.guidance_max - self.guidance_min) * draws  # (B,)
            student_cond = {**cond, "guidance": weight}
        with torch.no_grad():
            guided = Denoiser(teacher, schedule, prediction, cond, mask, clip_x0, 1.0 if weight is None else weight)
            x0_teacher, eps_teacher = guided(x_t, t)  # (B, N, F) each
            x_s = ddim_step(schedule, x0_teacher, eps_teacher, s)  # (B, N, F)
            target_denoiser = Denoiser(target, schedule, prediction, student_cond, mask, clip_x0)
            goal = phase_output(target_denoiser, schedule, x_s, s, edge)  # (B, N, F)
        online_denoiser = Denoiser(student, schedule, prediction, student_cond, mask, clip_x0)
        clean = consistency_output(online_denoiser, x_t, t)  # (B, N, F): the student's clean sample
        online = to_phase_edge(schedule, x_t, t, edge, clean)  # (B, N, F)
        weights = self.interval_weights(schedule, steps, device)[index].to(x0.dtype).view(-1, 1, 1)  # (B, 1, 1)
        loss = masked_mean(self.pointwise(online, goal) * weights, mask)
        return loss if extra is None else loss + extra(clean, x0)

    def interval_weights(self, schedule: NoiseSchedule, grid: list, device=None) -> Tensor:
        """A weight per interval of the grid's steps (S-1,) on `device`: 1 (uniform), or iCT's 1 / (sigma_t - sigma_s)
        with sigma = sqrt((1 - abar) / abar) (Song & Dhariwal 2023), divided by its mean, which weighs the low-noise
        intervals up; computed in float64 on the CPU from the schedule's betas."""
        if self.weighting == "uniform":
            return torch.ones(len(grid) - 1, device=device)
        abar = schedule.log_alphas_cumprod().exp()[grid]  # (S,) float64
        sigma = ((1 - abar) / abar).sqrt()
        weights = 1.0 / (sigma[:-1] - sigma[1:])  # (S-1,), grid noisiest first
        return (weights / weights.mean()).float().to(device)

    def pointwise(self, output: Motion, goal: Motion) -> Motion:
        """The distance per value: pseudo-Huber sqrt(d^2 + c^2) - c (LCM), or the squared difference."""
        if self.distance == "l2":
            return (output - goal).pow(2)
        return ((output - goal).pow(2) + self.huber_c**2).sqrt() - self.huber_c


def ddim_step(schedule: NoiseSchedule, x0: Motion, eps: Motion, s: Timesteps) -> Motion:
    """The deterministic DDIM point at steps s (B,): sqrt(abar_s) x0 + sqrt(1 - abar_s) eps."""
    return schedule.q_sample(x0, s, eps)


def guidance_condition(cond: dict, weight: float) -> dict:
    """`cond` with every sample's guidance weight `weight` (a student's condition, sized by the text batch)."""
    weight, batch = check_guidance_weight(weight), cond["text_pooled"].shape[0]
    return {**cond, "guidance": torch.full((batch,), weight, device=cond["text_pooled"].device)}
