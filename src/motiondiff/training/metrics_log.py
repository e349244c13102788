"""`logs/metrics.csv` with one row per logged step, continued (not replaced) when a run resumes in place.

Lightning's CSVLogger writes one row per logging call (loss and learning rate in separate rows
with empty cells) and deletes an existing metrics.csv, which splits the curves of a resumed run.
StepCSVLogger merges everything logged at one step into one row and appends to the file a
resumed run left, after dropping the rows logged past its checkpoint's step.
"""

import csv
from pathlib import Path
from typing import Optional

from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities import rank_zero_only

METRICS_FILE = "metrics.csv"


def read_rows(path: Path) -> list:
    """The rows of a metrics.csv (dicts of strings; empty when the file does not exist)."""
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_rows(path: Path, rows: list, columns: list) -> None:
    """Write rows under `columns` (step first), replacing the file atomically."""
    temporary = path.with_suffix(".csv.tmp")
    with open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    temporary.replace(path)


def truncate_from(path: Path, global_step: int) -> int:
    """Drop the rows of steps a run resumed at `global_step` does again; return how many were dropped.

    Lightning logs a step's metrics under the number of steps done before it, so the rows of the
    first `global_step` steps are those below it."""
    rows = read_rows(path)
    kept = [row for row in rows if int(float(row["step"])) < global_step]
    if len(kept) < len(rows):
        write_rows(path, kept, list(rows[0].keys()))
    return len(rows) - len(kept)


class StepCSVLogger(Logger):
    """Metrics as CSV under <save_dir>/<name>/metrics.csv: one row per step, columns added as they appear."""

    def __init__(self, save_dir: str, name: str = "logs", flush_every_n_rows: int = 20):
        super().__init__()
        self._log_dir = Path(save_dir) / name
        self.flush_every_n_rows = flush_every_n_rows
        self.pending: list = []  # rows not yet written; the last may still receive metrics of its step
        self.columns: list = []

    @property
    def name(self) -> str:
        return self._log_dir.name

    @property
    def version(self) -> str:
        return ""

    @property
    def log_dir(self) -> str:
        return str(self._log_dir)

    @property
    def path(self) -> Path:
        return self._log_dir / METRICS_FILE

    @rank_zero_only
    def log_hyperparams(self, params, *args, **kwargs) -> None:
        """Nothing: the run's config.yaml holds every setting."""

    @rank_zero_only
    def log_metrics(self, metrics: dict, step: Optional[int] = None) -> None:
        step = int(step if step is not None else len(self.pending))
        values = {key: float(value) for key, value in metrics.items()}
        if self.pending and self.pending[-1]["step"] == step:
            self.pending[-1].update(values)
        else:
            self.pending.append({"step": step, **values})
        if len(self.pending) > self.flush_every_n_rows:
            self.write(self.pending[:-1])
            self.pending = self.pending[-1:]

    @rank_zero_only
    def save(self) -> None:
        """Write all but the newest row (more may still be logged at its step)."""
        if len(self.pending) > 1:
            self.write(self.pending[:-1])
            self.pending = self.pending[-1:]

    @rank_zero_only
    def flush(self) -> None:
        """Write every row now, the newest too: for readers when training has ended (the curves), before
        Lightning finalizes its loggers."""
        self.write(self.pending)
        self.pending = []

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.flush()

    def write(self, rows: list) -> None:
        """Append rows; rewrite the file when they bring new columns."""
        if not rows:
            return
        self._log_dir.mkdir(parents=True, exist_ok=True)
        if not self.columns and self.path.is_file():
            with open(self.path, newline="") as handle:
                self.columns = next(csv.reader(handle), [])
        new = sorted({key for row in rows for key in row} - set(self.columns) - {"step"})
        if new or not self.path.is_file():
            old = read_rows(self.path)
            self.columns = ["step", *sorted(set(self.columns + new) - {"step"})]
            write_rows(self.path, old + rows, self.columns)
            return
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=self.columns, restval="").writerows(rows)
