"""Discrete noise schedules as data: betas and the quantities derived from them.

A schedule knows nothing about networks. It provides the closed-form forward process
q(x_t | x_0), conversions between the noise and the clean sample, and the posterior
q(x_{t-1} | x_t, x_0) that ancestral samplers step with. Index t runs 0..num_steps-1.
"""

import math

import torch
from torch import Tensor, nn

from motiondiff.core.checks import whole_number
from motiondiff.core.errors import UserError
from motiondiff.core.types import Motion, Timesteps


class NoiseSchedule(nn.Module):
    """A DDPM schedule given by its betas; everything else is derived (float64, stored float32). The samplers'
    coefficient tables start from the betas as given (`log_alphas_cumprod`), not from the float32 buffers."""

    def __init__(self, betas: Tensor):
        super().__init__()
        betas = betas.to(torch.float64)
        assert betas.ndim == 1 and bool((betas > 0).all()) and bool((betas < 1).all()), "betas must lie in (0, 1)"
        # (T,) float64 on the CPU, an attribute rather than a buffer, so that .to() never moves or rounds it. The
        # float32 buffers round the betas: a cosine schedule's last betas, 0.999, then lose 3e-5 of 1 - beta.
        self.exact_betas = betas.detach().cpu().clone()
        alphas = 1.0 - betas
        alphas_cumprod = torch.cumprod(alphas, dim=0)
        alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
        posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
        buffers = {
            "betas": betas,
            "alphas_cumprod": alphas_cumprod,
            "alphas_cumprod_prev": alphas_cumprod_prev,
            "sqrt_alphas_cumprod": alphas_cumprod.sqrt(),
            "sqrt_one_minus_alphas_cumprod": (1.0 - alphas_cumprod).sqrt(),
            "posterior_variance": posterior_variance,
            # The variance at t=0 is 0; its log is clipped to the value at t=1 (Ho et al.).
            "posterior_log_variance": torch.cat([posterior_variance[1:2], posterior_variance[1:]]).log(),
            "posterior_mean_coef_x0": betas * alphas_cumprod_prev.sqrt() / (1.0 - alphas_cumprod),
            "posterior_mean_coef_xt": (1.0 - alphas_cumprod_prev) * alphas.sqrt() / (1.0 - alphas_cumprod),
        }
        for name, value in buffers.items():
            self.register_buffer(name, value.to(torch.float32), persistent=False)

    @property
    def num_steps(self) -> int:
        return self.betas.shape[0]

    def log_alphas_cumprod(self) -> Tensor:
        """(T,) float64 on the CPU: log abar_t, summed from the betas as given."""
        return torch.log1p(-self.exact_betas).cumsum(0)

    def q_sample(self, x0: Motion, t: Timesteps, noise: Motion) -> Motion:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise."""
        return _at(self.sqrt_alphas_cumprod, t, x0) * x0 + _at(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise

    def x0_from_eps(self, x_t: Motion, t: Timesteps, eps: Motion) -> Motion:
        """The clean sample implied by a noise prediction."""
        return (x_t - _at(self.sqrt_one_minus_alphas_cumprod, t, x_t) * eps) / _at(self.sqrt_alphas_cumprod, t, x_t)

    def eps_from_x0(self, x_t: Motion, t: Timesteps, x0: Motion) -> Motion:
        """The noise implied by a clean-sample prediction."""
        return (x_t - _at(self.sqrt_alphas_cumprod, t, x_t) * x0) / _at(self.sqrt_one_minus_alphas_cumprod, t, x_t)

    def q_posterior(self, x0: Motion, x_t: Motion, t: Timesteps) -> tuple:
        """Mean and log-variance of q(x_{t-1} | x_t, x_0)."""
        mean = _at(self.posterior_mean_coef_x0, t, x_t) * x0 + _at(self.posterior_mean_coef_xt, t, x_t) * x_t
        return mean, _at(self.posterior_log_variance, t, x_t)


class LinearSchedule(NoiseSchedule):
    """Betas linear from beta_start to beta_end (Ho et al. 2020: 1e-4 to 0.02 over 1000 steps)."""

    def __init__(self, num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02):
        _check_steps(num_steps)
        if not 0 < beta_start <= beta_end < 1:
            raise UserError(
                f"schedule.beta_start={beta_start} and schedule.beta_end={beta_end} must satisfy "
                "0 < beta_start <= beta_end < 1."
            )
        super().__init__(torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64))


class CosineSchedule(NoiseSchedule):
    """abar_t = cos^2 of a shifted ramp (Nichol & Dhariwal 2021), betas clipped at max_beta."""

    def __init__(self, num_steps: int = 1000, offset: float = 0.008, max_beta: float = 0.999):
        _check_steps(num_steps)
        steps = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
        alpha_bar = torch.cos((steps + offset) / (1 + offset) * math.pi / 2) ** 2
        betas = (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(min=1e-8, max=max_beta)
        super().__init__(betas)


def _check_steps(num_steps: int) -> None:
    whole_number("schedule.num_steps", num_steps)


def _at(values: Tensor, t: Timesteps, like: Tensor) -> Tensor:
    """values[t] shaped to broadcast against `like` (batch first)."""
    return values[t].view(-1, *([1] * (like.ndim - 1))).to(like.dtype)
