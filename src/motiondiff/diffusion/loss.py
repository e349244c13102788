"""The training objective: MSE between the network output and its target, over valid frames.

The network predicts either the noise (`prediction: epsilon`, the DDPM "simple" loss)
or the clean motion (`prediction: x0`). The same choice tells samplers how to read the
network's output (see `denoiser.Denoiser`). With x0 prediction, `velocity_weight` adds the
MSE of frame-to-frame differences (MDM's velocity term), which weighs smoothness and timing.
"""

from typing import Callable, Optional

import torch
from torch import Tensor, nn

from motiondiff.core.errors import UserError
from motiondiff.core.types import FrameMask, Loss, Motion
from motiondiff.diffusion.schedule import NoiseSchedule

PREDICTIONS = ("epsilon", "x0")


def check_prediction(prediction: str) -> str:
    """Return `prediction` if known, else raise a UserError listing the valid ones."""
    if prediction not in PREDICTIONS:
        raise UserError(f"loss.prediction='{prediction}' is unknown; use one of {', '.join(PREDICTIONS)}.")
    return prediction


def masked_mse(output: Motion, target: Motion, mask: Optional[FrameMask]) -> Loss:
    """Mean squared error over the valid frames (mask True) and all features."""
    return masked_mean((output - target).pow(2), mask)


def masked_mean(values: Motion, mask: Optional[FrameMask]) -> Loss:
    """The mean of per-value losses (B, N, F) over the valid frames (mask True) and all features."""
    if mask is None:
        return values.mean()
    weights = mask.to(values.dtype).unsqueeze(-1)  # (B, N, 1)
    assert weights.sum() > 0, "a batch must contain at least one valid frame"
    return (values * weights).sum() / (weights.sum() * values.shape[-1])


class DiffusionLoss(nn.Module):
    """Noise a clean batch at random steps and regress the network output on its target."""

    def __init__(self, prediction: str = "epsilon", velocity_weight: float = 0.0):
        super().__init__()
        self.prediction = check_prediction(prediction)
        if not velocity_weight >= 0:
            raise UserError(f"loss.velocity_weight={velocity_weight} must be 0 (off) or positive.")
        if velocity_weight > 0 and self.prediction != "x0":
            raise UserError(f"loss.velocity_weight={velocity_weight} needs loss.prediction=x0 (use loss=x0).")
        self.velocity_weight = float(velocity_weight)

    def forward(
        self,
        network: Callable,
        schedule: NoiseSchedule,
        x0: Motion,
        mask: Optional[FrameMask] = None,
        cond=None,
        t: Optional[Tensor] = None,
        noise: Optional[Motion] = None,
        extra: Optional[Callable[[Motion, Motion], Tensor]] = None,
    ) -> Loss:
        """Loss for one batch; `t` and `noise` are drawn uniformly / from N(0, I) unless given. `extra(x0_hat, x0)`
        (x0 prediction only) adds a term of the predicted clean batch, e.g. a geometric one the data defines."""
        if t is None:
            t = torch.randint(0, schedule.num_steps, (x0.shape[0],), device=x0.device)
        if noise is None:
            noise = torch.randn_like(x0)
        x_t = schedule.q_sample(x0, t, noise)  # (B, N, F)
        output = network(x_t, t, cond=cond, mask=mask)  # (B, N, F)
        target = noise if self.prediction == "epsilon" else x0
        loss = masked_mse(output, target, mask)
        if self.velocity_weight > 0:
            pairs = None if mask is None else mask[:, 1:] & mask[:, :-1]  # (B, N-1) both frames valid
            velocity = masked_mse(output.diff(dim=1), target.diff(dim=1), pairs)
            loss = loss + self.velocity_weight * velocity
        if extra is not None:
            assert self.prediction == "x0", "a term of the predicted clean sample needs x0 prediction"
            loss = loss + extra(output, x0)
        return loss
