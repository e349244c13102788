"""A network seen as a denoiser: (x_t, t) -> (predicted x_0, predicted noise).

Samplers only ever call a denoiser, so they are independent of the network and of
its parameterisation (noise or clean-sample prediction).
"""

from typing import Optional

from torch import nn

from motiondiff.diffusion.loss import check_prediction
from motiondiff.diffusion.schedule import NoiseSchedule
from motiondiff.types import FrameMask, Motion, Timesteps


class Denoiser:
    """Read a network's output as both x_0 and epsilon, optionally clipping x_0."""

    def __init__(
        self,
        network: nn.Module,
        schedule: NoiseSchedule,
        prediction: str,
        cond=None,
        mask: Optional[FrameMask] = None,
        clip_x0: Optional[float] = None,
    ):
        self.network = network
        self.schedule = schedule
        self.prediction = check_prediction(prediction)
        self.cond = cond
        self.mask = mask
        self.clip_x0 = clip_x0

    def __call__(self, x_t: Motion, t: Timesteps) -> tuple:
        output = self.network(x_t, t, cond=self.cond, mask=self.mask)  # (B, N, F)
        if self.prediction == "epsilon":
            eps, x0 = output, self.schedule.x0_from_eps(x_t, t, output)
        else:
            x0, eps = output, self.schedule.eps_from_x0(x_t, t, output)
        if self.clip_x0 is not None:
            x0 = x0.clamp(-self.clip_x0, self.clip_x0)
            eps = self.schedule.eps_from_x0(x_t, t, x0)
        return x0, eps
