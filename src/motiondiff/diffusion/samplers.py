"""Samplers: small loops over a noise schedule that turn noise into samples.

A sampler takes a denoiser (x_t, t) -> (x0_hat, eps_hat), the schedule and the initial
noise x_T, and knows nothing else about the model. Every sampler can hold part of the
sample fixed ("known" values: frames, e.g. the overlap when chaining windows, or any frames x
features, e.g. the joints an edit keeps) by replacing it, at every step, with the known clean values
noised to that step. With `resample` > 1 each step with known values is redone that many times, the
result noised back to the step before (RePaint, Lugmayr et al. 2022), so the generated part follows
the kept part more closely. Progress bars name the sampler, its step count and, when the caller
labels the call (`sampler.labelled("8 windows")`), what is being generated.
"""

import copy
import math
from contextlib import contextmanager
from functools import partial
from typing import Callable, Optional

import torch
from torch import Tensor
from tqdm.auto import tqdm

from motiondiff.core.checks import whole_number
from motiondiff.core.errors import UserError
from motiondiff.core.types import Motion
from motiondiff.diffusion.schedule import NoiseSchedule

Denoise = Callable[[Tensor, Tensor], tuple]


class Sampler:
    """Shared parts of the samplers: noise draws, known-frame replacement, progress bar."""

    name = "sampler"
    label = ""  # what the progress bar says is being generated; set for a block with `labelled`

    def __init__(self, progress: bool = True, resample: int = 1):
        self.progress = progress
        self.resample = whole_number("resample", resample, why="1 = plain imposition of known values")

    def with_resample(self, resample: int) -> "Sampler":
        """A copy that redoes each step with known values `resample` times (RePaint; 1 = off)."""
        other = copy.copy(self)
        other.resample = whole_number("resample", resample, why="1 = plain imposition of known values")
        return other

    def describe(self) -> dict:
        """The sampler's class name and settings, as generations and evaluations record them."""
        return {"name": type(self).__name__, **{k: v for k, v in vars(self).items() if k != "label"}}

    @contextmanager
    def labelled(self, label: str):
        """Within the block, progress bars also say what is generated: 'ddim 50 steps · <label>'."""
        previous, self.label = self.label, label
        try:
            yield self
        finally:
            self.label = previous

    def progress_text(self, steps: int, label: Optional[str] = None) -> str:
        """The progress bar's description: the sampler, its step count and the label (`label` or the block's)."""
        label = self.label if label is None else label
        return " · ".join(part for part in (f"{self.name} {steps} steps", label) if part)

    def timesteps(self, schedule: NoiseSchedule) -> list:
        """The schedule indices visited, from noisiest to cleanest."""
        raise NotImplementedError

    def grid_step(self, schedule: NoiseSchedule, target: float) -> int:
        """The step of this sampler's grid nearest to `target`: where an SDEdit start (`sample(start=)`) begins, so
        that every step it runs is one of the sampler's own (a stub of a first step unsettles multistep solvers)."""
        return min(self.timesteps(schedule), key=lambda step: abs(step - target))

    def coefficient_table(self, schedule: NoiseSchedule, pairs: list) -> list:
        """Each step's scalar coefficients, for the (t, t_prev) pairs in order: Python floats computed once per run
        (DDPM's from the schedule's tables, derived in float64; DDIM's in float64 from the betas), not per step."""
        raise NotImplementedError

    def step(
        self,
        denoise: Denoise,
        schedule: NoiseSchedule,
        x: Tensor,
        t: int,
        t_prev: int,
        generator,
        coefficients: tuple,
        impose: Optional[Callable] = None,
    ) -> Tensor:
        """One update from step t to step t_prev (t_prev = -1 means the clean sample), with that step's coefficients.
        `impose(x, t)` gives x with its known values noised to step t (None without known values), for a step that
        calls the network again on a point of its own (Heun's corrector); x itself comes with them imposed."""
        raise NotImplementedError

    def renoise_table(self, schedule: NoiseSchedule, pairs: list) -> list:
        """(sqrt(abar_t / abar_t_prev), sqrt(1 - abar_t / abar_t_prev)) of each (t, t_prev) pair: q(x_t | x_t_prev),
        in float64 from the betas (1 - ratio through expm1: exact where it is one beta), read once as floats."""
        log_abar, log_abar_prev = log_alpha_bars(schedule, pairs)
        log_ratio = log_abar - log_abar_prev
        return torch.stack([(0.5 * log_ratio).exp(), (-torch.expm1(log_ratio)).sqrt()], dim=1).tolist()

    @torch.inference_mode()
    def sample(
        self,
        denoise: Denoise,
        schedule: NoiseSchedule,
        noise: Motion,
        generator: Optional[torch.Generator] = None,
        known: Optional[Motion] = None,
        known_mask: Optional[Tensor] = None,
        label: Optional[str] = None,
        source: Optional[Motion] = None,
        start: Optional[int] = None,
    ) -> Motion:
        """Run the reverse process from x_T = noise; `known_mask` (B, N) over frames or (B, N, F) over frames x
        features marks the values fixed to `known`; `label` says in the progress bar what is generated. With
        `source` (B, N, F) and `start` (a step of this sampler's grid: `grid_step`), the process begins at that step
        from the source, its known values replaced, noised with `noise` (SDEdit, Meng et al. 2022: a variation that
        keeps the source's coarse course) and runs the grid's steps from there."""
        steps = self.timesteps(schedule)
        assert (source is None) == (start is None), "give source and start together"
        if start is not None:
            assert start in steps, f"start must be a step of the sampler's grid (grid_step), got {start}"
            steps = steps[steps.index(start) :]
        pairs = list(zip(steps, steps[1:] + [-1]))
        table = self.coefficient_table(schedule, pairs)
        repeats = 1 if known is None else self.resample
        renoise = self.renoise_table(schedule, pairs) if repeats > 1 else [None] * len(pairs)
        keep = None if known is None else known_weights(known_mask, noise)  # (B, N, 1) or (B, N, F)
        impose = None if known is None else partial(self._impose_known, known=known, keep=keep, schedule=schedule)
        x = noise
        if source is not None:
            clean = source if keep is None else keep * known + (1 - keep) * source  # (B, N, F)
            x = schedule.q_sample(clean, torch.full(noise.shape[:1], steps[0], device=noise.device), noise)
        description = self.progress_text(len(pairs), label)
        for (t, t_prev), coefficients, back in tqdm(
            list(zip(pairs, table, renoise)), desc=description, disable=None if self.progress else True, leave=False
        ):
            x_t = x
            for repeat in range(repeats):
                if repeat:  # RePaint (Lugmayr et al. 2022, Alg. 1): x_t ~ q(x_t | x_t_prev), then the step again
                    x_t = x.mul(back[0]).add_(_randn_like(x, generator).mul_(back[1]))
                x = self.step(denoise, schedule, x_t, t, t_prev, generator, coefficients, impose)
                if impose is not None:
                    x = impose(x, t_prev, generator=generator)
        return x

    def _impose_known(self, x, t_prev, known, keep, schedule, generator=None) -> Tensor:
        """Replace the known values of x (keep is 1 there) by the known clean values noised to step t_prev."""
        if t_prev >= 0:
            t = torch.full((x.shape[0],), t_prev, device=x.device, dtype=torch.long)
            known = schedule.q_sample(known, t, _randn_like(x, generator))
        return keep * known + (1 - keep) * x


def log_alpha_bars(schedule: NoiseSchedule, pairs: list) -> tuple:
    """(log abar_t, log abar_t_prev) (S,) float64 on the CPU for the (t, t_prev) pairs, summed from the betas
    (t_prev = -1: abar = 1)."""
    log_abar = schedule.log_alphas_cumprod()  # (T,)
    t = torch.tensor([t for t, _ in pairs])
    t_prev = torch.tensor([t_prev for _, t_prev in pairs])
    previous = torch.where(t_prev >= 0, log_abar[t_prev.clamp(min=0)], torch.zeros((), dtype=torch.float64))
    return log_abar[t], previous


def known_weights(known_mask: Tensor, x: Tensor) -> Tensor:
    """known_mask (B, N) over frames or (B, N, F) over frames x features as 0/1 weights broadcasting against x."""
    assert known_mask is not None, "known values need a known_mask"
    keep = known_mask.to(device=x.device, dtype=x.dtype)
    keep = keep.unsqueeze(-1) if keep.ndim == 2 else keep  # (B, N, 1) or (B, N, F)
    assert keep.ndim == 3 and keep.shape[:2] == x.shape[:2] and keep.shape[2] in (1, x.shape[2]), (
        f"known_mask {tuple(known_mask.shape)} fits neither (B, N) nor (B, N, F) of x {tuple(x.shape)}"
    )
    return keep


class DDPMSampler(Sampler):
    """Ancestral sampling through every step with the posterior variance (Ho et al. 2020)."""

    name = "ddpm"

    def timesteps(self, schedule: NoiseSchedule) -> list:
        return list(range(schedule.num_steps - 1, -1, -1))

    def coefficient_table(self, schedule, pairs):
        """(posterior mean coefficient of x0, of x_t, posterior standard deviation) of each step."""
        index = torch.tensor([t for t, _ in pairs], device=schedule.betas.device)
        values = torch.stack(
            [
                schedule.posterior_mean_coef_x0[index],
                schedule.posterior_mean_coef_xt[index],
                (0.5 * schedule.posterior_log_variance[index]).exp(),
            ],
            dim=1,
        ).tolist()
        return [tuple(row) for row in values]

    def step(self, denoise, schedule, x, t, t_prev, generator, coefficients, impose=None):
        x0 = predict_x0(denoise, x, t)  # (B, N, F)
        coef_x0, coef_xt, std = coefficients
        mean = coef_x0 * x0 + coef_xt * x  # the posterior mean of q(x_{t-1} | x_t, x0)
        if t == 0:
            return mean
        return mean.add_(_randn_like(x, generator).mul_(std))


class DDIMSampler(Sampler):
    """DDIM (Song et al. 2021) on `num_steps` evenly spaced steps; eta=0 is deterministic."""

    name = "ddim"

    def __init__(self, num_steps: int = 50, eta: float = 0.0, progress: bool = True, resample: int = 1):
        super().__init__(progress, resample)
        num_steps = whole_number("sampler.num_steps", num_steps)
        if not 0 <= eta <= 1:  # above 1 the noise would exceed the step's whole variance (1 - abar_prev)
            raise UserError(f"sampler.eta={eta} must be from 0 to 1 (0 = deterministic DDIM, 1 = DDPM-like noise).")
        self.num_steps = int(num_steps)
        self.eta = float(eta)

    def timesteps(self, schedule: NoiseSchedule) -> list:
        return evenly_spaced(schedule, self.num_steps)

    def coefficient_table(self, schedule, pairs):
        """(coefficient of x0, of eps, sigma) of each DDIM update from t to t_prev, in float64 from the betas (each
        1 - ratio through expm1, without the cancellation of float32 alpha bars), read once as floats."""
        log_abar, log_abar_prev = log_alpha_bars(schedule, pairs)
        one_minus_prev = -torch.expm1(log_abar_prev)  # 1 - abar_prev
        variance = one_minus_prev / -torch.expm1(log_abar) * -torch.expm1(log_abar - log_abar_prev)
        sigma = self.eta * variance.sqrt()
        direction = (one_minus_prev - sigma**2).clamp(min=0).sqrt()  # >= 0 up to rounding: eta <= 1
        rows = torch.stack([(0.5 * log_abar_prev).exp(), direction, sigma], dim=1).tolist()
        return [tuple(row) for row in rows]

    def step(self, denoise, schedule, x, t, t_prev, generator, coefficients, impose=None):
        t_batch = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        x0, eps = denoise(x, t_batch)  # (B, N, F)
        coef_x0, coef_eps, sigma = coefficients
        x_prev = coef_x0 * x0 + coef_eps * eps
        if self.eta > 0 and t_prev >= 0:
            x_prev = x_prev.add_(_randn_like(x, generator).mul_(sigma))
        return x_prev


class DPMSolverSampler(Sampler):
    """DPM-Solver++(2M) (Lu et al. 2022) on `num_steps` steps evenly spaced in log-SNR: a second-order multistep
    solver of the probability-flow ODE in x0 (data prediction), one network call a step; `sde=True` is its SDE variant
    (fresh noise each step). The first step is first order, the last (to the clean sample) returns the data
    prediction."""

    name = "dpm++2m"

    def __init__(self, num_steps: int = 10, sde: bool = False, progress: bool = True, resample: int = 1):
        super().__init__(progress, resample)
        self.num_steps = int(whole_number("sampler.num_steps", num_steps))
        self.sde = bool(sde)

    def timesteps(self, schedule: NoiseSchedule) -> list:
        """Steps evenly spaced in log-SNR (lambda), as Lu et al. recommend: on the closed-form Gaussian data of the
        tests, 10 such steps matched the data's spread within 6-7% where 10 steps evenly spaced in t were 28-37% off."""
        lam = -log_sigmas(schedule)  # (T,): log(alpha / sigma), decreasing in t
        return nearest_steps(schedule, lam, torch.linspace(float(lam[-1]), float(lam[0]), self.num_steps))

    def sample(self, *args, **kwargs) -> Motion:
        self._history = []  # [(t, x0 estimate)] of the steps taken in this call: the multistep memory
        try:
            return super().sample(*args, **kwargs)
        finally:
            del self._history

    def coefficient_table(self, schedule, pairs):
        """(sigma_prev / sigma_t, alpha_prev, sigma_prev, h, r) of each step, in float64 from the betas: alpha, sigma
        = sqrt(abar), sqrt(1 - abar); h = lambda_prev - lambda_t with lambda = log(alpha / sigma); r = the previous
        step's h over this one's (0 on the first step: first order). The last step (to the clean sample) is None."""
        log_abar, log_abar_prev = log_alpha_bars(schedule, pairs)
        log_sigma = 0.5 * torch.log(-torch.expm1(log_abar))  # (S,)
        log_sigma_prev = 0.5 * torch.log(-torch.expm1(log_abar_prev))  # (S,): -inf on the last step
        h = (0.5 * log_abar_prev - log_sigma_prev) - (0.5 * log_abar - log_sigma)  # (S,)
        rows = []
        for i, (_, t_prev) in enumerate(pairs):
            if t_prev < 0:
                rows.append(None)
                continue
            r = float(h[i - 1] / h[i]) if i > 0 and pairs[i - 1][1] >= 0 else 0.0
            alpha_prev, sigma_prev = (0.5 * log_abar_prev[i]).exp(), log_sigma_prev[i].exp()
            rows.append(
                (float((log_sigma_prev[i] - log_sigma[i]).exp()), float(alpha_prev), float(sigma_prev), float(h[i]), r)
            )
        return rows

    def step(self, denoise, schedule, x, t, t_prev, generator, coefficients, impose=None):
        x0 = predict_x0(denoise, x, t)  # (B, N, F)
        if self._history and self._history[-1][0] == t:  # the same step again (RePaint): replace its estimate
            self._history.pop()
        earlier = self._history[-1][1] if self._history else None
        self._history.append((t, x0))
        if coefficients is None:  # to the clean sample
            return x0
        ratio, alpha_prev, sigma_prev, h, r = coefficients
        d = x0 if r == 0 or earlier is None else x0 + (x0 - earlier) / (2 * r)  # (B, N, F): 2M's extrapolated x0
        if not self.sde:
            return ratio * x - (alpha_prev * math.expm1(-h)) * d
        noise = _randn_like(x, generator).mul_(sigma_prev * math.sqrt(-math.expm1(-2 * h)))
        return (ratio * math.exp(-h)) * x - (alpha_prev * math.expm1(-2 * h)) * d + noise


class KarrasSampler(Sampler):
    """Euler or Heun (Karras et al. 2022) on the probability-flow ODE in sigma = sqrt((1 - abar) / abar), at
    `num_steps` steps spaced as Karras's rho schedule (rho=7) from the schedule's smallest sigma to its largest or
    `sigma_max` (80, Karras et al.'s; a cosine schedule of 1000 steps reaches 2e4, where steps would be wasted): the
    steps stay at or below the one nearest `sigma_max` unless there are more steps than it has below it.
    Euler is DDIM (eta=0) on those steps; Heun corrects each step with a second network call (2 * num_steps - 1
    calls). The last step goes to the clean sample."""

    name = "karras"

    def __init__(
        self,
        num_steps: int = 10,
        method: str = "heun",
        rho: float = 7.0,
        sigma_max: float = 80.0,
        progress: bool = True,
        resample: int = 1,
    ):
        super().__init__(progress, resample)
        if sigma_max <= 0:
            raise UserError(f"sampler.sigma_max={sigma_max} must be > 0 (Karras et al. use 80).")
        self.sigma_max = float(sigma_max)
        if method not in ("euler", "heun"):
            raise UserError(f"sampler.method={method} is not a method; use euler or heun.")
        if rho <= 0:
            raise UserError(f"sampler.rho={rho} must be > 0 (Karras et al. use 7).")
        self.num_steps = int(whole_number("sampler.num_steps", num_steps))
        self.method, self.rho = method, float(rho)

    def timesteps(self, schedule: NoiseSchedule) -> list:
        log_sigma = log_sigmas(schedule)  # (T,): increasing in t
        high = min(float(log_sigma[-1].exp()), self.sigma_max) ** (1 / self.rho)
        low = float(log_sigma[0].exp()) ** (1 / self.rho)
        ramp = torch.linspace(1, 0, self.num_steps, dtype=torch.float64)
        targets = (low + ramp * (high - low)) ** self.rho  # (S,): sigma_max ... sigma_min
        return nearest_steps(schedule, log_sigma, targets.log())

    def coefficient_table(self, schedule, pairs):
        """(sigma_t, sigma_prev, sqrt(abar_t), sqrt(abar_prev)) of each step, float64 from the betas; None for the
        last step."""
        log_abar, log_abar_prev = log_alpha_bars(schedule, pairs)
        sigma = torch.expm1(-log_abar).sqrt()  # sqrt((1 - abar) / abar) = sqrt(1 / abar - 1)
        sigma_prev = torch.expm1(-log_abar_prev).sqrt()
        rows = torch.stack([sigma, sigma_prev, (0.5 * log_abar).exp(), (0.5 * log_abar_prev).exp()], dim=1).tolist()
        return [None if t_prev < 0 else tuple(row) for row, (_, t_prev) in zip(rows, pairs)]

    def step(self, denoise, schedule, x, t, t_prev, generator, coefficients, impose=None):
        x0 = predict_x0(denoise, x, t)  # (B, N, F)
        if coefficients is None:  # to the clean sample
            return x0
        sigma, sigma_prev, scale, scale_prev = coefficients
        x_ve = x / scale  # (B, N, F): x0 + sigma * eps
        slope = (x_ve - x0) / sigma
        x_next = x_ve + (sigma_prev - sigma) * slope  # Euler
        if self.method == "heun":  # the corrector's call sees the known values noised to t_prev, as every call does
            corrector = x_next * scale_prev  # (B, N, F)
            if impose is not None:
                corrector = impose(corrector, t_prev, generator=generator)
                x_next = corrector / scale_prev
            x0_next = predict_x0(denoise, corrector, t_prev)  # (B, N, F)
            x_next = x_ve + (sigma_prev - sigma) * 0.5 * (slope + (x_next - x0_next) / sigma_prev)
        return x_next * scale_prev


def predict_x0(denoise: Denoise, x: Tensor, t: int) -> Tensor:
    """The denoiser's x0 (B, N, F) at step t for the whole batch; only x0 where the denoiser can skip epsilon (the
    samplers that need only x0: DDPM, DPM-Solver++, Karras)."""
    return x0_at(denoise, x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long))


def x0_at(denoise: Denoise, x: Tensor, t: Tensor) -> Tensor:
    """The denoiser's x0 (B, N, F) at steps t (B,): predict_x0 where the denoiser can skip epsilon."""
    return denoise.predict_x0(x, t) if hasattr(denoise, "predict_x0") else denoise(x, t)[0]


def log_sigmas(schedule: NoiseSchedule) -> Tensor:
    """(T,) float64 log sigma_t = 0.5 log((1 - abar_t) / abar_t) from the betas, increasing in t."""
    log_abar = schedule.log_alphas_cumprod()  # (T,)
    return 0.5 * (torch.log(-torch.expm1(log_abar)) - log_abar)


def nearest_steps(schedule: NoiseSchedule, values: Tensor, targets: Tensor) -> list:
    """The schedule steps whose `values` (T,) lie nearest the `targets` (S,), noisiest first, made distinct (each at
    least one step from the next, with room for the rest) and none above the noisiest target's step while the steps
    up to it can hold them all; more targets than steps are refused."""
    evenly_spaced(schedule, len(targets))  # refuses more steps than the schedule has
    nearest = (values.unsqueeze(0) - targets.double().unsqueeze(1)).abs().argmin(1).tolist()
    nearest = sorted(nearest)  # cleanest first
    top, steps = max(nearest[-1], len(nearest) - 1), []
    for i, step in enumerate(nearest):
        steps.append(min(max(step, steps[-1] + 1 if steps else 0), top - (len(nearest) - 1 - i)))
    return steps[::-1]


def evenly_spaced(schedule: NoiseSchedule, num_steps: int) -> list:
    """`num_steps` schedule indices evenly spaced from the last step to step 0, both included (diffusers' `linspace`
    spacing; DDIM's paper strides from step 0 instead)."""
    if num_steps > schedule.num_steps:
        raise UserError(
            f"sampler.num_steps={num_steps} exceeds the {schedule.num_steps} steps the model was trained "
            f"with; use at most {schedule.num_steps}."
        )
    steps = torch.linspace(schedule.num_steps - 1, 0, num_steps).round().long().tolist()
    assert len(set(steps)) == len(steps), "the steps must be distinct"
    return steps


def _randn_like(x: Tensor, generator: Optional[torch.Generator]) -> Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
