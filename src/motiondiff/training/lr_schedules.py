"""Learning-rate schedules built per optimizer (configured with `_partial_: true`)."""

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from motiondiff.core.errors import UserError


class WarmupCosineLR(LambdaLR):
    """Linear warm-up from 0 to the base LR, then cosine decay to `min_lr_ratio` x base LR."""

    def __init__(self, optimizer: Optimizer, total_steps: int, warmup_steps: int = 500, min_lr_ratio: float = 0.1):
        if warmup_steps < 0 or not 0 <= min_lr_ratio <= 1:
            raise UserError(
                f"lr_scheduler.warmup_steps={warmup_steps} must be >= 0 and "
                f"lr_scheduler.min_lr_ratio={min_lr_ratio} within [0, 1]."
            )
        total_steps = max(int(total_steps), 1)
        warmup_steps = min(int(warmup_steps), total_steps)

        def factor(step: int) -> float:
            if step < warmup_steps:
                return (step + 1) / warmup_steps
            progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
            return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

        super().__init__(optimizer, factor)
