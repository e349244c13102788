"""The steps of the demos: ordinary commands, each run in its own process and timed."""

import logging
import subprocess
import sys
import time

log = logging.getLogger(__name__)


def command(module: str, *overrides: str) -> list:
    """`python -m motiondiff.<module> overrides...` as an argument list."""
    return [sys.executable, "-m", f"motiondiff.{module}", *overrides]


def run_step(argv: list) -> tuple:
    """Run one step in its own process: (the command as shown, wall time in seconds, exit status)."""
    shown = " ".join(["python", *argv[1:]])
    log.info("running: %s", shown)
    start = time.perf_counter()
    status = subprocess.run(argv).returncode
    return shown, time.perf_counter() - start, status
