"""A network seen as a denoiser: (x_t, t) -> (predicted x_0, predicted noise).

Samplers only ever call a denoiser, so they are independent of the network, of its
parameterisation (noise or clean-sample prediction) and of classifier-free guidance.
"""

from typing import Callable, Optional

import torch
from torch import Tensor

from motiondiff.core.errors import UserError
from motiondiff.core.types import FrameMask, Motion, Timesteps
from motiondiff.diffusion.loss import check_prediction
from motiondiff.diffusion.schedule import NoiseSchedule


def check_guidance_weight(weight) -> float:
    """`weight` as a float; UserError unless it is a finite number >= 0."""
    if not isinstance(weight, (int, float)) or not torch.isfinite(torch.tensor(float(weight))) or weight < 0:
        raise UserError(f"guidance_weight={weight!r} must be a number >= 0 (1 = plain conditional, 0 = unconditional).")
    return float(weight)


def check_guidance_weights(weight):
    """A float (checked as above) or a (B,) tensor of per-sample weights, finite and >= 0."""
    if not isinstance(weight, Tensor):
        return check_guidance_weight(weight)
    assert weight.ndim == 1 and bool(torch.isfinite(weight).all()) and bool((weight >= 0).all()), (
        f"per-sample guidance weights must be a finite (B,) tensor >= 0, got shape {tuple(weight.shape)}"
    )
    return weight


def with_unconditional_copy(cond: dict) -> dict:
    """The condition batch twice: the first half as given, the second half all dropped (the null condition)."""
    batch = next(v for v in cond.values() if isinstance(v, Tensor)).shape[0]
    device = next(v for v in cond.values() if isinstance(v, Tensor)).device
    given = cond.get("drop", torch.zeros(batch, dtype=torch.bool, device=device))
    doubled = {key: torch.cat([value, value]) for key, value in cond.items() if key != "drop"}
    doubled["drop"] = torch.cat([given, torch.ones(batch, dtype=torch.bool, device=device)])  # (2B,)
    return doubled


class Denoiser:
    """Read a network's output as both x_0 and epsilon, with optional guidance and x_0 clipping.

    Classifier-free guidance: output = uncond + w * (cond - uncond), both predictions from one
    batched forward pass. Both parameterisations are linear in the output, so guiding the raw
    output guides x_0 and epsilon alike. w = 1 is the plain conditional prediction; a (B,) tensor
    gives each sample its own weight (consistency distillation draws one per sample).
    autocast=torch.bfloat16 runs the network under autocast in bf16 and hands its output back in x_t's
    dtype, so guidance and every sampler update stay in float32.
    """

    def __init__(
        self,
        network: Callable[..., Motion],  # (x_t, t, cond, mask) -> x-shaped output, e.g. an nn.Module
        schedule: NoiseSchedule,
        prediction: str,
        cond: Optional[dict] = None,
        mask: Optional[FrameMask] = None,
        clip_x0: Optional[float] = None,
        guidance_weight=1.0,  # a number >= 0 (checked: config values can be anything), or a (B,) tensor
        autocast: Optional[torch.dtype] = None,  # e.g. torch.bfloat16; None = the network's own dtype
    ):
        self.network = network
        self.schedule = schedule
        self.prediction = check_prediction(prediction)
        self.cond = cond
        self.mask = mask
        self.clip_x0 = clip_x0
        self.guidance_weight = check_guidance_weights(guidance_weight)
        self.autocast = autocast

    def call_network(self, x_t: Motion, t: Timesteps, cond: Optional[dict], mask: Optional[FrameMask]) -> Motion:
        """The network's output in x_t's dtype, run under autocast when one is set."""
        if self.autocast is None:
            return self.network(x_t, t, cond=cond, mask=mask)  # (B, N, F)
        with torch.autocast(x_t.device.type, dtype=self.autocast):
            return self.network(x_t, t, cond=cond, mask=mask).to(x_t.dtype)  # (B, N, F)

    def network_output(self, x_t: Motion, t: Timesteps) -> Motion:
        """The network output, guided when there is a condition and guidance_weight != 1."""
        weight = self.guidance_weight
        if self.cond is None or (not isinstance(weight, Tensor) and weight == 1.0):
            return self.call_network(x_t, t, self.cond, self.mask)  # (B, N, F)
        mask = None if self.mask is None else torch.cat([self.mask, self.mask])  # (2B, N)
        both = self.call_network(torch.cat([x_t, x_t]), torch.cat([t, t]), with_unconditional_copy(self.cond), mask)
        conditional, unconditional = both.chunk(2)  # (B, N, F) each
        if isinstance(weight, Tensor):
            weight = weight.to(x_t.dtype).view(-1, 1, 1)  # (B, 1, 1)
        return unconditional + weight * (conditional - unconditional)

    def __call__(self, x_t: Motion, t: Timesteps) -> tuple:
        return self.predict(x_t, t, need_eps=True)

    def predict_x0(self, x_t: Motion, t: Timesteps) -> Motion:
        """Only the clean-sample prediction (what ancestral DDPM steps use): no epsilon is computed."""
        return self.predict(x_t, t, need_eps=False)[0]

    def predict(self, x_t: Motion, t: Timesteps, need_eps: bool = True) -> tuple:
        """(x0, eps), eps None unless need_eps; each tensor is computed once (eps after the x_0 clipping)."""
        output = self.network_output(x_t, t)  # (B, N, F)
        if self.prediction == "epsilon":
            x0 = self.schedule.x0_from_eps(x_t, t, output)
            if self.clip_x0 is None:
                return x0, output
            x0 = x0.clamp(-self.clip_x0, self.clip_x0)
        else:
            x0 = output if self.clip_x0 is None else output.clamp(-self.clip_x0, self.clip_x0)
        return x0, (self.schedule.eps_from_x0(x_t, t, x0) if need_eps else None)
