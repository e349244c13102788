"""The OmegaConf resolvers the configs use: `run_root`, `first_given`, `device`."""

from omegaconf import OmegaConf

from motiondiff.runs.directories import run_root
from motiondiff.training.devices import device_choice


def register_resolvers() -> None:
    """Resolvers the configs use (idempotent): `run_root`, `first_given` and `device`."""
    for name, resolver in (("run_root", run_root), ("first_given", first_given), ("device", device_choice)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


def first_given(*values):
    """The first value that is set (not null or empty): `${first_given:${sweep_dir},<fallback>}` in the configs."""
    return next((value for value in values if value not in (None, "")), None)
