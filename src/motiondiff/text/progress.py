"""Progress of the long steps of a first run (writing the procedural dataset, encoding captions).

On a terminal a tqdm bar (with its time left) is drawn on stderr; when stderr is not a terminal (a log
file, a pipe, a batch job) a plain log line is written every `every` percent instead, with no
carriage returns, saying how much is done and about how long is left.
"""

import logging
import sys
import time
from typing import Optional

from tqdm import tqdm

from motiondiff.core.units import duration

log = logging.getLogger(__name__)


def is_terminal(stream) -> bool:
    """Whether `stream` is an interactive terminal."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # a closed or detached stream
        return False


class Progress:
    """Counts `total` units of `what`: a bar on a terminal, else a log line every `every` percent with the time left."""

    def __init__(self, total: int, what: str, unit: str = "it", every: int = 10, stream=None):
        self.total, self.what, self.unit, self.every = max(int(total), 0), what, unit, every
        self.done, self.start, self.next_percent = 0, time.monotonic(), every
        self.stream = sys.stderr if stream is None else stream
        self.terminal = is_terminal(self.stream)
        self.bar: Optional[tqdm] = None  # drawn from the first update on, so a log line before it cannot break it

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, count: int = 1) -> None:
        """Count `count` more units done."""
        self.done += count
        if self.terminal:
            if self.bar is None:
                self.bar = tqdm(
                    total=self.total,
                    initial=self.done,
                    desc=self.what,
                    unit=self.unit,
                    file=self.stream,
                    dynamic_ncols=True,
                )
            else:
                self.bar.update(count)
            return
        percent = 100 * self.done // self.total if self.total else 100
        if percent >= self.next_percent or self.done >= self.total:
            self.next_percent = (percent // self.every + 1) * self.every
            log.info("%s: %d%% (%d of %d %s), %s", self.what, percent, self.done, self.total, self.unit, self.eta())

    def eta(self) -> str:
        """'3 s elapsed, about 20 s left' from the pace so far ('done in 23 s' at the end)."""
        elapsed = time.monotonic() - self.start
        if self.done >= self.total:
            return f"done in {duration(elapsed)}"
        left = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        return f"{duration(elapsed)} elapsed, about {duration(left)} left"

    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.monotonic() - self.start

    def close(self) -> None:
        """Finish the bar (a terminal) or nothing more (the log lines already said 100%)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
