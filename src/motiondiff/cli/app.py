"""The Hydra entry point every command shares: config location, resolvers, `--help`, sweep jobs, one-line errors."""

import functools
import importlib
import sys
import time
from importlib.resources import files
from pathlib import Path
from typing import Callable

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from motiondiff.cli.config_source import ConfigSource, source_of, split_command_line
from motiondiff.cli.help import command_help
from motiondiff.cli.preflight import parse_overrides, plain, preflight
from motiondiff.cli.resolvers import register_resolvers
from motiondiff.core.allocator import keep_freed_memory
from motiondiff.core.errors import UserError, exit_on_user_error
from motiondiff.runs.directories import remove_if_stub
from motiondiff.sweeps.jobs import run_sweep_job

# The configs ship inside the package (motiondiff.configs, the repository's configs/ folder), so an
# installed motiondiff finds them from any directory; runs still write under the current directory.
CONFIG_DIR = Path(str(files("motiondiff.configs")))


# A group given a value that is none of its options stands for one option with that value as one key:
# `evaluator=<run directory>` is `evaluator=trained evaluator.run=<run directory>`.
SHORTHANDS = {"evaluator": ("trained", "run")}
# Groups whose default picks several options (logger: [csv, tensorboard]): Hydra takes only a list there, so
# `logger=null` and `~logger` (no trackers) are written `logger=[]`.
MULTI_SELECT_GROUPS = ("logger",)


def expand_shorthands(overrides: list, source: "ConfigSource | None" = None) -> list:
    """The overrides with every shorthand (SHORTHANDS, no trackers) written out; a group's options are read from
    `source` (a --config-dir adds the user's), else from our configs."""
    expanded = []
    for override in overrides:
        key, equals, value = override.partition("=")
        if key.lstrip("~") in MULTI_SELECT_GROUPS and (key.startswith("~") or value in ("null", "none")):
            expanded.append(f"{key.lstrip('~')}=[]")
        elif equals and key in SHORTHANDS and value != "null" and not names_an_option(key, value, source):
            option, option_key = SHORTHANDS[key]
            expanded += [f"{key}={option}", f"{key}.{option_key}={value}"]
        else:
            expanded.append(override)
    return expanded


def names_an_option(group: str, value: str, source: "ConfigSource | None" = None) -> bool:
    """Whether `value` (or any value of its sweep: `evaluator=t2m,tmr`) is an option of the config group."""
    try:
        override = parse_overrides([f"{group}={value}"])[0]
        values = list(override.sweep_iterator()) if override.is_sweep_override() else [override.value()]
    except UserError:  # a syntax error: Hydra says so
        return False
    except HydraException:  # glob(): it picks among the options
        return True
    folders = source.folders() if source else [CONFIG_DIR]
    return any((folder / group / f"{plain(name)}.yaml").is_file() for folder in folders for name in values)


def compose_command_config(config_name: str, overrides: list) -> DictConfig:
    """configs/<config_name>.yaml composed with `overrides` as the command composes it, outside a Hydra run (for
    scripts): shorthands written out, HydraConfig set for the resolvers, the `hydra` node dropped."""
    register_resolvers()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose(config_name, overrides=expand_shorthands(list(overrides)), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def hydra_entry_point(config_name: str, run_path: str) -> Callable[[], None]:
    """`main()` of a command: compose configs/<config_name>.yaml with the command line and call the function at
    `run_path` (`motiondiff.runs.train.run`) with it.

    `--help` prints the command's own groups and options (cli.help). A single run prints a UserError
    as one line (exit status 2) instead of a traceback. A job of a multirun (`-m`) never ends the
    sweep: its outcome goes to job_status.json in its output directory and the sweep summary
    (sweeps.jobs) reports the failures at the end. Before Hydra composes or writes anything, the
    command line is checked (cli.preflight); a single run that fails before saving anything removes
    the folder it created. glibc's malloc keeps freed memory for the next tensors (core.allocator).

    `run_path` is imported once the command line has passed its checks, so `--help` and a mistake are answered before
    Lightning and the models are imported: 2.2-2.5 s instead of 7-9 s on a 2-core AMD EPYC (most of it torch, which
    the device resolvers read); the checks import only what they read (the classes a config names)."""
    register_resolvers()
    started = time.time()
    keep_parent = False  # main() says, before Hydra makes the run's folders, whether the named one existed

    @hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name=config_name)
    def compose_and_run(cfg: DictConfig):
        keep_freed_memory()  # here, so that a sweep job in a worker process (joblib, submitit) does it too
        run = functools.partial(call_at, run_path)  # imported inside the sweep job's and the single run's guards
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            return run_sweep_job(run, cfg)  # a small plain dict: launchers send it back to the sweep's process
        output_dir = Path(HydraConfig.get().runtime.output_dir)
        try:
            exit_on_user_error(run)(cfg)
        except BaseException as error:
            if not (isinstance(error, SystemExit) and error.code in (0, None)) and remove_if_stub(
                output_dir, started, keep_parent=keep_parent
            ):
                print(f"removed {output_dir}: the {config_name} command failed before saving anything", file=sys.stderr)
            raise

    def check_first(argv: list) -> list:
        """The command line after preflight, shorthands written out against the folders it composes from."""
        split = split_command_line(argv)
        source = source_of(ConfigSource(CONFIG_DIR, config_name), split[0], find_name=False) if split else None
        return preflight(CONFIG_DIR, config_name, expand_shorthands(argv, source))

    def main() -> None:
        nonlocal keep_parent
        if any(flag in sys.argv[1:] for flag in ("--help", "-h")):
            print(command_help(CONFIG_DIR, config_name, program_name()), end="")
            return
        sys.argv[1:] = exit_on_user_error(check_first)(sys.argv[1:])
        keep_parent = named_run_dir_parent_exists(sys.argv[1:])
        compose_and_run()

    return main


def named_run_dir_parent_exists(overrides: list) -> bool:
    """Whether `overrides` set hydra.run.dir in a folder that exists now (the user's: a failed run leaves it), or
    through an interpolation (its folder unknown before Hydra resolves it: left too)."""
    named = [override for override in overrides if override.partition("=")[0].lstrip("+") == "hydra.run.dir"]
    parsed = parse_overrides(named)  # Hydra's reading of the value (quotes, escapes)
    values = [override.value() for override in parsed if override.key_or_group == "hydra.run.dir"]
    if not values:
        return False
    return not isinstance(values[-1], str) or "${" in values[-1] or Path(values[-1]).parent.is_dir()


def call_at(run_path: str, cfg: DictConfig) -> object:
    """run(cfg) for the function at the dotted `run_path`, imported now."""
    module, _, name = run_path.rpartition(".")
    return getattr(importlib.import_module(module), name)(cfg)


def program_name() -> str:
    """How the command was called: `motiondiff-train`, or `python -m motiondiff.train`."""
    main_module = sys.modules.get("__main__")
    spec = getattr(main_module, "__spec__", None)
    if spec is None or not spec.name:
        return Path(sys.argv[0]).name
    return f"python -m {spec.name.removesuffix('.__main__')}"  # a package run with -m (motiondiff.export)
