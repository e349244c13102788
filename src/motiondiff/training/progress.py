"""Training progress: tqdm bars on a terminal, a plain log line every N steps otherwise (files, pipes, SLURM).

A log written to a file then holds no carriage return or cursor code, and the same lines reach
train.log through the logging handlers (Hydra writes the run's log file).
"""

import logging
import sys
import time

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, TQDMProgressBar

from motiondiff.core.checks import whole_number
from motiondiff.core.units import duration

log = logging.getLogger(__name__)


def progress_bar(refresh_rate: int = 10, every_n_steps: int = 100, terminal=None) -> ProgressBar:
    """tqdm bars when stderr is a terminal, else LineProgress (terminal=None: ask stderr)."""
    on_terminal = sys.stderr.isatty() if terminal is None else terminal
    return TQDMProgressBar(refresh_rate=refresh_rate) if on_terminal else LineProgress(every_n_steps)


class LineProgress(ProgressBar):
    """One log line every `every_n_steps` optimizer steps: step, loss, speed, time left; one per validation."""

    def __init__(self, every_n_steps: int = 100):
        super().__init__()
        self.every_n_steps = whole_number("callbacks.progress_bar.every_n_steps", every_n_steps, why="e.g. 100")
        self.enabled = True
        self.start_time, self.start_step = 0.0, 0

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start_time, self.start_step = time.perf_counter(), trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if not self.enabled or not trainer.is_global_zero or step % self.every_n_steps:
            return
        log.info("%s", self.step_line(trainer, step))

    def step_line(self, trainer: L.Trainer, step: int) -> str:
        """'step 200/2000 (epoch 33) · train/loss 0.1234 · 0.11 s/step · 3 min 18 s left'."""
        seconds_per_step = (time.perf_counter() - self.start_time) / max(1, step - self.start_step)
        total = trainer.max_steps if trainer.max_steps > 0 else None
        parts = [f"step {step}/{total}" if total else f"step {step}", f"(epoch {trainer.current_epoch})"]
        loss = trainer.callback_metrics.get("train/loss")
        if loss is not None:
            parts.append(f"· train/loss {float(loss):.4f}")
        parts.append(f"· {seconds_per_step:.3g} s/step")
        if total:
            parts.append(f"· {duration(seconds_per_step * (total - step))} left")
        return " ".join(parts)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.enabled or not trainer.is_global_zero or trainer.sanity_checking:
            return
        values = [f"{k} {float(v):.4f}" for k, v in sorted(trainer.callback_metrics.items()) if k.startswith("val/")]
        if values:
            log.info("validation at step %d: %s", trainer.global_step, " · ".join(values))
