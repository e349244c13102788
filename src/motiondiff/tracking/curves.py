"""logs/curves.png: the run's training and validation curves, drawn from logs/metrics.csv (callbacks.training_curves).

Written when training ends, again when a resumed run ends (metrics.csv then holds the whole history), and when
training stops on Ctrl-C, SIGTERM or an error (after the checkpoint is saved; a second Ctrl-C, which quits at
once, draws nothing). The CSV logger (logger=csv) keeps metrics.csv; without it there are no curves.
"""

import logging
import math
from pathlib import Path
from typing import Optional

import lightning as L
import numpy as np

from motiondiff.render.plots import write_training_curves
from motiondiff.tracking.trackers import run_label
from motiondiff.training.metrics_log import StepCSVLogger, read_rows

log = logging.getLogger(__name__)


class TrainingCurves(L.Callback):
    """Draw `path` (a PNG) from the CSV logger's metrics.csv at the end of training, however it ends."""

    def __init__(self, path: str):
        self.path = Path(path)
        self.written: Optional[Path] = None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.draw(trainer, "finished")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not trainer.is_global_zero or isinstance(exception, KeyboardInterrupt):
            return
        try:
            self.draw(trainer, "stopped")
        except Exception as error:  # the exception that stopped training is the one to report
            log.warning("Could not draw %s: %s", self.path, error)

    def draw(self, trainer: L.Trainer, how: str) -> Optional[Path]:
        """Flush the CSV logger and draw its rows; None (and a line saying why) without one or without rows."""
        csv_logger = next((logger for logger in trainer.loggers if isinstance(logger, StepCSVLogger)), None)
        if csv_logger is None:
            log.info("No %s: the curves are drawn from logs/metrics.csv, which logger=csv writes.", self.path.name)
            return None
        csv_logger.flush()
        rows = read_rows(csv_logger.path)
        if not rows:
            return None
        steps, columns = columns_of(rows)
        title = f"Training curves of {run_label(self.path.parent.parent)} · {how} at step {trainer.global_step}"
        self.written = write_training_curves(self.path, steps, columns, title)
        return self.written


def columns_of(rows: list) -> tuple:
    """metrics.csv rows (dicts of strings) -> (steps (R,), {column: (R,) float, NaN where empty})."""
    steps = np.array([float(row["step"]) for row in rows])
    names = [name for name in rows[0] if name != "step"]
    columns = {name: np.array([number(row.get(name)) for row in rows]) for name in names}
    return steps, columns


def number(text: Optional[str]) -> float:
    """A CSV cell as a float (NaN when empty)."""
    return float(text) if text not in (None, "") else math.nan
