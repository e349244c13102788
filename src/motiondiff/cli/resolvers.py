"""The OmegaConf resolvers the configs use: `run_root`, `first_given`, `device`, `input_folder`."""

from pathlib import Path
from typing import Optional

from omegaconf import OmegaConf

from motiondiff.runs.directories import run_root
from motiondiff.training.devices import device_choice


def register_resolvers() -> None:
    """Resolvers the configs use (idempotent): `run_root`, `first_given`, `device` and `input_folder`."""
    resolvers = (
        ("run_root", run_root),
        ("first_given", first_given),
        ("device", device_choice),
        ("input_folder", input_folder),
    )
    for name, resolver in resolvers:
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


def first_given(*values):
    """The first value that is set (not null or empty): `${first_given:${sweep_dir},<fallback>}` in the configs."""
    return next((value for value in values if value not in (None, "")), None)


def input_folder(path: Optional[str]) -> str:
    """The folder an input lives in (the input itself when it is a folder): exports are written beside it."""
    if not path:
        return "outputs/unknown-input"
    return str(Path(path) if Path(path).is_dir() else Path(path).parent)
