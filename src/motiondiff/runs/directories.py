"""Run directories: saving and reading a run's composed config, finding its checkpoints.

A training run directory holds `config.yaml` (the resolved composed config), `.hydra/` (Hydra's own
record with the command-line overrides), `checkpoints/` and `logs/`.
"""

import shutil
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig, OmegaConf

from motiondiff.core.errors import UserError, require_file
from motiondiff.runs.legacy import is_constructor_default, predated_options, upgrade_run_config

CONFIG_NAME = "config.yaml"
LAST = "last.ckpt"
# What a run resumed in place (resume=<run>) may change: how long it trains, and where it resumes from.
RESUMABLE_CHANGES = ("ckpt_path", "trainer.max_steps", "trainer.max_epochs")
# ... and what shows the run without changing how it trains: its trackers, its pictures and curves for them.
RESUMABLE_PREFIXES = ("logger.", "callbacks.tracker_samples.", "callbacks.training_curves.")
# Where runs with checkpoints lie under the output root: <name>/<time>/ and multirun/<time>/<job>/.
RUN_PATTERNS = (f"*/*/checkpoints/{LAST}", f"*/*/*/checkpoints/{LAST}")


def shown(path) -> str:
    """A path as messages show it: relative to the current directory when it lies inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


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


def save_resumed_config(cfg: DictConfig, run_dir: Path, step: int) -> Path:
    """Check a run resumed in place keeps its settings (RESUMABLE_CHANGES aside); record any change it makes.

    A changed max_steps/max_epochs is written to config.yaml; the previous one is kept as
    config.until-step<step>.yaml, so each stretch of the run stays reproducible."""
    path = run_dir / CONFIG_NAME
    loaded = OmegaConf.load(path)
    saved = {**predated_options(loaded), **flatten(loaded)}  # options added since, at the values the run trained with
    composed = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    new = {**predated_options(composed), **flatten(composed)}  # a distilled run's network is its old teacher's
    changed = [key for key in sorted(saved.keys() | new.keys()) if saved.get(key) != new.get(key)]
    # A key added since the run was saved, at its class's default: the run was built with that value.
    changed = [key for key in changed if key in saved or resumable(key) or not is_constructor_default(composed, key)]
    refused = [key for key in changed if not resumable(key)]
    if refused:
        key = refused[0]
        raise UserError(
            f"resuming '{run_dir}' with {key}={new.get(key)!r} where the run had {saved.get(key)!r}: a run continues "
            f"with its own settings (only {', '.join(RESUMABLE_CHANGES[1:])} and the trackers, logger=..., may "
            f"change); to train on from its weights with other settings, start a new run with "
            f"ckpt_path={run_dir / 'checkpoints' / LAST}."
        )
    if any(key != "ckpt_path" for key in changed):
        path.rename(run_dir / f"config.until-step{step}.yaml")
        path.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return path


def resumable(key: str) -> bool:
    """Whether a resumed run may change dotted config `key` (RESUMABLE_CHANGES, RESUMABLE_PREFIXES)."""
    return key in RESUMABLE_CHANGES or key.startswith(RESUMABLE_PREFIXES)


def flatten(cfg: DictConfig) -> dict:
    """{dotted key: value} of a config's leaves."""
    flat = {}

    def walk(node, prefix):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                flat[f"{prefix}{key}"] = value

    walk(OmegaConf.to_container(cfg, resolve=False), "")
    return flat


# What a command writes before it has made anything: Hydra's record, logs, the saved config.
STUB_FILES = (
    ".hydra/*",
    ".hydra/*/*",
    "*.log",
    CONFIG_NAME,
    "logs/metrics.csv",
    "logs/hparams.yaml",
    "logs/tensorboard/*",  # the trackers' records of the config (logger=tensorboard, wandb)
    "wandb/**/*",
)


def remove_if_stub(output_dir: Path, since: float, keep_parent: bool = False) -> bool:
    """Remove a command's output folder that holds only STUB_FILES, all written after `since`; say if it did.

    Its parent goes too when left empty (the run name's, or generations/, folder it was the first in), unless
    `keep_parent` (the user named the folder, which existed before: `hydra.run.dir=<folder>/run`) or the parent
    is the working directory or holds it."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return False
    files = [path for path in output_dir.rglob("*") if path.is_file()]
    stub = {path for pattern in STUB_FILES for path in output_dir.glob(pattern)}
    if any(path not in stub or path.stat().st_mtime < since for path in files):
        return False
    parent = output_dir.absolute().parent
    shutil.rmtree(output_dir)
    cwd = Path.cwd().resolve()
    holds_cwd = parent.resolve() == cwd or parent.resolve() in cwd.parents
    if not (keep_parent or holds_cwd or parent.is_symlink() or any(parent.iterdir())):
        parent.rmdir()
    return True


def runs_with_checkpoint(output_root) -> list:
    """Run directories under output_root that hold config.yaml and checkpoints/last.ckpt, newest first."""
    found = [path for pattern in RUN_PATTERNS for path in Path(output_root).glob(pattern)]
    runs = [path.parent.parent for path in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)]
    return [run for run in runs if (run / CONFIG_NAME).is_file()]


def no_such_run(given, key: str, output_root, why: str = "no such run") -> UserError:
    """UserError for a wrong run directory, listing the newest runs that have a checkpoint."""
    runs = runs_with_checkpoint(output_root)
    listing = (
        "newest runs with a checkpoint: " + ", ".join(shown(run) for run in runs[:3])
        if runs
        else f"no run under '{output_root}' has a checkpoint yet (train one first: make demo)"
    )
    return UserError(f"{why}: {key}={given}; {listing}.")


def check_run_dir(given, key: str, output_root, which: str = "last") -> Path:
    """The run directory `given` (or the newest with a checkpoint for 'last'); UserError unless it is a finished run."""
    if str(given) == "last":
        runs = runs_with_checkpoint(output_root)
        if not runs:
            raise no_such_run(given, key, output_root, "no finished run to use")
        return runs[0]
    run = Path(given)
    if not (run / CONFIG_NAME).is_file():
        raise no_such_run(
            given, key, output_root, "no such run" if not run.exists() else f"not a run (no {CONFIG_NAME})"
        )
    if which == "last" and not (run / "checkpoints" / LAST).is_file():
        raise no_such_run(
            given, key, output_root, f"that run has no checkpoints/{LAST} (it failed or is still starting)"
        )
    return run


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
