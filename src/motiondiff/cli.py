"""Thin Hydra entry points around plain `run(cfg)` functions."""

from pathlib import Path
from typing import Callable

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from motiondiff.errors import exit_on_user_error
from motiondiff.sweeps import register_resolvers, run_sweep_job

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "configs")


def hydra_entry_point(config_name: str, run: Callable[[DictConfig], object]) -> Callable[[], None]:
    """`main()` for `python -m motiondiff.<task>`: compose configs/<config_name>.yaml and call run(cfg).

    A single run prints a UserError as one line (exit status 2) instead of a traceback. A job of a
    multirun (`-m`) never ends the sweep: its outcome goes to job_status.json in its output directory
    and the sweep summary (motiondiff.sweeps) reports the failures at the end."""
    register_resolvers()

    @hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name=config_name)
    def main(cfg: DictConfig):
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            return run_sweep_job(run, cfg)  # a small plain dict: launchers send it back to the sweep's process
        exit_on_user_error(run)(cfg)

    return main
