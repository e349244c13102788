"""Thin Hydra entry points around plain `run(cfg)` functions."""

from pathlib import Path
from typing import Callable

import hydra
from omegaconf import DictConfig

from motiondiff.errors import exit_on_user_error
from motiondiff.runs import register_resolvers

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "configs")


def hydra_entry_point(config_name: str, run: Callable[[DictConfig], object]) -> Callable[[], None]:
    """`main()` for `python -m motiondiff.<task>`: compose configs/<config_name>.yaml, call run(cfg),
    and print a UserError as one line (exit status 2) instead of a traceback."""
    register_resolvers()

    @hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name=config_name)
    @exit_on_user_error
    def main(cfg: DictConfig) -> None:
        run(cfg)

    return main
