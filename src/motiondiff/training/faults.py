"""Training faults: a step whose loss or gradients are not finite is skipped and counted.

`SkipNonFiniteSteps` (configs/callbacks/default.yaml) looks at the gradients after backward and
before the optimizer step (under DDP they are already all-reduced, so every rank decides alike).
If any is NaN or infinite (a NaN loss gives NaN gradients) it removes them all, so the optimizer
leaves every weight and its moments untouched (torch optimizers skip parameters without a
gradient), and counts the step: `train/skipped_steps` is logged. After `max_in_a_row` such steps
in a row the run stops with one sentence naming the likely causes and the last good checkpoint,
which is intact because no bad step ever changed the weights. With `16-mixed` precision the
GradScaler already skips overflowing steps, so the callback stands aside there.
"""

import lightning as L
import torch

from motiondiff.core.checks import whole_number
from motiondiff.core.errors import UserError


class SkipNonFiniteSteps(L.Callback):
    """Skip optimizer steps with non-finite gradients; stop after max_in_a_row of them in a row."""

    def __init__(self, max_in_a_row: int = 5):
        self.max_in_a_row = whole_number("callbacks.nonfinite.max_in_a_row", max_in_a_row, why="5 is usual")
        self.skipped = 0  # skipped steps in this run (kept in checkpoints)
        self.in_a_row = 0

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        if str(trainer.precision) == "16-mixed":
            return
        gradients = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        finite = not gradients or bool(
            torch.stack([torch.isfinite(g).all() for g in gradients]).all()
        )  # one device sync
        if finite:
            self.in_a_row = 0
        else:
            self.skipped += 1
            self.in_a_row += 1
            optimizer.zero_grad(set_to_none=True)  # the optimizer skips parameters without gradients
        pl_module.log("train/skipped_steps", float(self.skipped), on_step=True, on_epoch=False)
        if self.in_a_row >= self.max_in_a_row:
            raise UserError(self.stop_message(trainer))

    def stop_message(self, trainer: L.Trainer) -> str:
        """One sentence: what happened, the likely causes, the last good checkpoint."""
        last = trainer.checkpoint_callback.last_model_path if trainer.checkpoint_callback else ""
        kept = f"the last good checkpoint is '{last}'" if last else "no checkpoint had been saved yet"
        return (
            f"training stopped at step {trainer.global_step}: the loss or its gradients were NaN/infinite for "
            f"{self.in_a_row} steps in a row ({self.skipped} skipped in all, none changed the weights); lower "
            f"optimizer.lr or look for NaN/inf or extreme values in the data; {kept}."
        )

    def state_dict(self) -> dict:
        return {"skipped": self.skipped}

    def load_state_dict(self, state_dict: dict) -> None:
        self.skipped = int(state_dict.get("skipped", 0))
