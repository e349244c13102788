"""Stopping a run without losing it: Ctrl-C (SIGINT) or SIGTERM saves `last.ckpt` at the current step.

The signal only sets a flag; the step under way finishes, then `SaveOnInterrupt` writes the
checkpoint (its state is whole between steps), says where it is and how to resume, and ends the
run with `TrainingInterrupted`. A second Ctrl-C quits at once without saving. Under DDP every rank
agrees to stop at the same step. `PeriodicCheckpoint` also refreshes `last.ckpt` every few minutes,
so a crash loses at most that much.
"""

import logging
import signal
import threading
import time
from pathlib import Path

import lightning as L

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(Exception):
    """Training stopped by a signal after saving `checkpoint` at `step`."""

    def __init__(self, signal_name: str, step: int, checkpoint: Path):
        super().__init__(f"{signal_name} at step {step}: saved {checkpoint}")
        self.signal_name, self.step, self.checkpoint = signal_name, step, checkpoint

    @property
    def exit_status(self) -> int:
        """128 + the signal number, as a shell reports a process ended by that signal."""
        return 128 + int(getattr(signal, self.signal_name))


class SaveOnInterrupt(L.Callback):
    """On SIGINT/SIGTERM during training: finish the step, save <dirpath>/last.ckpt, raise TrainingInterrupted."""

    def __init__(self, dirpath: str):
        self.dirpath = Path(dirpath)
        self.received = None  # the name of the signal received, once one is
        self.previous: dict = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.received = None
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            self.previous = {number: signal.signal(number, self.request) for number in SIGNALS}

    def request(self, number: int, frame) -> None:
        """The signal handler: the first signal asks to stop after this step; a second Ctrl-C quits now."""
        # Lightning's own SIGTERM handler is not chained: it would end the epoch loop with a SIGTERMException
        # (exit 0, no checkpoint) when the signal lands after this step's check; with several processes the
        # reduced decision in on_train_batch_end stops every rank at the same step instead.
        if self.received is not None and number == signal.SIGINT:
            self.restore()
            raise KeyboardInterrupt
        self.received = signal.Signals(number).name
        log.warning(
            "%s received: saving a checkpoint after this step (Ctrl-C again quits without saving).", self.received
        )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        stop = self.received is not None
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)  # any rank's signal stops them all
        if not stop:
            return
        path = self.dirpath / "last.ckpt"
        trainer.save_checkpoint(path, weights_only=False)
        self.restore()
        raise TrainingInterrupted(self.received or "SIGTERM", trainer.global_step, path)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.restore()  # after training (samples, the summary), Ctrl-C is an ordinary interrupt again

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.restore()

    def restore(self) -> None:
        """Put back the handlers that were there before training."""
        for number, handler in self.previous.items():
            signal.signal(number, handler)
        self.previous = {}


class LastCheckpoint(L.Callback):
    """Refresh <dirpath>/last.ckpt every `every_minutes` minutes of training (between steps) and at its end."""

    def __init__(self, dirpath: str, every_minutes: float = 5.0):
        self.dirpath, self.every_seconds = Path(dirpath), 60.0 * every_minutes
        self.last_save = time.monotonic()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.last_save = time.monotonic()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        due = time.monotonic() - self.last_save >= self.every_seconds
        if trainer.world_size > 1:
            due = trainer.strategy.broadcast(due)  # rank 0's clock decides, so every rank saves together
        if due:
            trainer.save_checkpoint(self.dirpath / "last.ckpt", weights_only=False)
            self.last_save = time.monotonic()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.save_checkpoint(self.dirpath / "last.ckpt", weights_only=False)
