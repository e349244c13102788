"""Run directories: saving and reading a run's composed config, finding its checkpoints.

A training run directory holds `config.yaml` (the resolved composed config), `.hydra/` (Hydra's own
record with the command-line overrides), `checkpoints/` and `logs/`.
"""

from pathlib import Path
from typing import Optional

from omegaconf import DictConfig, OmegaConf

from motiondiff.core.errors import UserError, require_file
from motiondiff.runs.legacy import upgrade_run_config

CONFIG_NAME = "config.yaml"


def run_root(run_dir: Optional[str], ckpt_path: Optional[str]) -> str:
    """The training run a generation/evaluation belongs to: run_dir, or the run holding ckpt_path."""
    if run_dir:
        return str(run_dir)
    if ckpt_path:
        parent = Path(ckpt_path).parent
        return str(parent.parent if parent.name == "checkpoints" else parent)
    return "outputs/unknown-run"


def save_run_config(cfg: DictConfig, run_dir: Path) -> Path:
    """Write the resolved composed config; refuse to replace one (a run directory is never reused)."""
    path = run_dir / CONFIG_NAME
    if path.exists():
        raise UserError(f"'{path}' already exists: this run directory belongs to another run; start a new one.")
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return path


def load_run_config(run_dir: Path) -> DictConfig:
    """The composed config a training run saved, in the current layout (runs.legacy)."""
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        raise UserError(f"'{run_dir}' has no {CONFIG_NAME}: give run_dir=<a training run directory under outputs/>.")
    return upgrade_run_config(OmegaConf.load(path))


def resolve_checkpoint(run_dir: Optional[str], ckpt_path: Optional[str], which: str = "last") -> tuple:
    """(run directory, checkpoint file) from run_dir (+ last/best) or from ckpt_path."""
    if ckpt_path:
        require_file(ckpt_path, "checkpoint (ckpt_path)")
        return Path(run_root(run_dir, ckpt_path)), Path(ckpt_path)
    if not run_dir:
        raise UserError("say which run to use: run_dir=outputs/<run> or ckpt_path=<file.ckpt>.")
    run = Path(run_dir)
    if not run.is_dir():
        raise UserError(f"run directory not found: '{run}' (run_dir); list your runs with: ls outputs/")
    checkpoints = run / "checkpoints"
    if which == "last":
        candidates = [checkpoints / "last.ckpt"]
    elif which == "best":
        candidates = sorted(checkpoints.glob("best-*.ckpt"), key=lambda p: p.stat().st_mtime)[-1:]
    else:
        raise UserError(f"checkpoint={which} is unknown; use last or best.")
    if not candidates or not candidates[0].is_file():
        raise UserError(
            f"'{run}' has no {which} checkpoint in checkpoints/ (was training interrupted before one was saved?)."
        )
    return run, candidates[0]


def latest_checkpoint(output_root: str, run_name: str) -> Path:
    """The newest last.ckpt of runs named run_name (for ckpt_path=last)."""
    found = sorted(Path(output_root, run_name).glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise UserError(
            f"ckpt_path=last found no checkpoint under '{Path(output_root, run_name)}'; give a path instead."
        )
    return found[-1]
