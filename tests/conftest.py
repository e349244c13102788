"""Shared test helpers: compose the real configs (shrunk by overrides) and find ../shared."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from motiondiff.cli.app import CONFIG_DIR, register_resolvers

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# A punet small enough for CPU tests.
TINY_NETWORK = ["network.base_channels=16", "network.channel_mults=[1,2]", "network.num_res_blocks=1"]


def compose_config(name: str, output_dir: Path, overrides=()) -> DictConfig:
    """Compose configs/<name>.yaml as Hydra would for a run writing to output_dir."""
    register_resolvers()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose(name, overrides=[f"paths.output_dir={output_dir}", *overrides], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def shared_path(*parts) -> Path:
    """A file under ../shared/data, or skip the test when ../shared is not beside the project."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the real-data tests need ../shared beside the project root")
    return path
