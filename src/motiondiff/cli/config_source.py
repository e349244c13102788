"""Where a command composes its config from: Hydra's config flags (`-cd`, `-cn`, `-cp`) read as Hydra reads them.

`--config-dir D` (`-cd`) adds a folder of the user's own configs after ours (an experiment, an evaluator, a
network of their own); `--config-name N` (`-cn`) composes N.yaml instead of the command's own; `--config-path P`
(`-cp`) replaces our folder. A run records where it came from in `.hydra/hydra.yaml` (`runtime.config_sources`,
`job.config_name`), so `train resume=<run>` can compose from the same folders without the flags given again.
"""

import os
from contextlib import contextmanager
from dataclasses import dataclass, replace
from importlib.resources import files
from pathlib import Path

import yaml
from hydra import initialize_config_dir
from hydra._internal.hydra import Hydra
from hydra._internal.utils import create_config_search_path
from hydra.core.config_search_path import SearchPathQuery
from hydra.core.global_hydra import GlobalHydra

from motiondiff.core.errors import UserError

# Hydra's flags that take a value, by their long name (argparse also takes `--flag=value`).
VALUE_FLAGS = {
    "--config-path": "--config-path",
    "-cp": "--config-path",
    "--config-name": "--config-name",
    "-cn": "--config-name",
    "--config-dir": "--config-dir",
    "-cd": "--config-dir",
    "--package": "--package",
    "-p": "--package",
    "--experimental-rerun": "--experimental-rerun",
    "--shell-completion": "--shell-completion",
    "-sc": "--shell-completion",
    "--cfg": "--cfg",
    "-c": "--cfg",
}
# --info takes a value when one of these follows it.
INFO_FLAGS, INFO_VALUES = ("--info", "-i"), ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath")
PLAIN_FLAGS = ("-m", "--multirun", "-r", "--run", "--resolve", "-h", "--help", "--hydra-help", "--version")


@dataclass(frozen=True)
class ConfigSource:
    """The folders a command composes from, in Hydra's search order (ours, then --config-dir), and the config name."""

    primary: Path
    name: str
    added: tuple = ()  # (Path, ...): the --config-dir folder

    def folders(self) -> list:
        """Every folder Hydra searches, in its order (the first that holds a file wins)."""
        return [self.primary, *self.added]

    def is_group(self, group: str) -> bool:
        """Whether `group` is a config group of these folders."""
        return any((folder / group).is_dir() for folder in self.folders())

    def options(self, group: str) -> list:
        """The options of a config group in every folder (Hydra's own groups live in Hydra's package)."""
        folders = self.folders() + ([Path(str(files("hydra.conf")))] if group.startswith("hydra/") else [])
        return sorted({path.stem for folder in folders for path in (folder / group).glob("*.yaml")})


@contextmanager
def searching(source: ConfigSource, job_name: str):
    """Hydra's compose API set up to search the folders of `source` as a command's flags set Hydra's search path up
    (hydra/_internal/utils.py, `run_hydra`: the --config-dir folder goes just before the structured configs)."""
    with initialize_config_dir(version_base="1.3", config_dir=str(source.primary), job_name=job_name):
        if source.added:
            search_path = create_config_search_path(str(source.primary))
            for folder in source.added:
                search_path.prepend("command-line", f"file://{folder}", anchor=SearchPathQuery(provider="schema"))
            GlobalHydra.instance().clear()
            Hydra.create_main_hydra2(task_name=job_name, config_search_path=search_path)
        yield


def split_command_line(argv: list) -> "tuple[list, list] | None":
    """(Hydra's flags with their values, the overrides); None when an argument is a flag this does not know."""
    flags, overrides, index = [], [], 0
    while index < len(argv):
        arg, following = argv[index], argv[index + 1 : index + 2]
        if arg in VALUE_FLAGS or (arg in INFO_FLAGS and following and following[0] in INFO_VALUES):
            if not following:
                return None  # argparse says the value is missing
            flags += [arg, following[0]]
            index += 2
            continue
        name = arg.partition("=")[0]
        if arg.startswith("-") and not (arg in PLAIN_FLAGS or arg in INFO_FLAGS or name in VALUE_FLAGS):
            return None
        (flags if arg.startswith("-") else overrides).append(arg)
        index += 1
    return flags, overrides


def flag_values(flags: list) -> dict:
    """{long flag name: its last value} of the flags that take one."""
    values = {}
    for index, arg in enumerate(flags):
        name, equals, value = arg.partition("=")
        if equals and name in VALUE_FLAGS:
            values[VALUE_FLAGS[name]] = value
        elif arg in VALUE_FLAGS:
            values[VALUE_FLAGS[arg]] = flags[index + 1]
    return values


def source_of(default: ConfigSource, flags: list, find_name: bool = True) -> "ConfigSource | None":
    """The ConfigSource the flags give; None for a --config-path Hydra reads against its own file (relative, pkg://).
    find_name=False: a --config-name need not be in these folders (a resume adds the run's own -cd)."""
    values = flag_values(flags)
    source = replace(default, name=values.get("--config-name", default.name))
    if "--config-path" in values:
        path = values["--config-path"]
        if "://" in path or not os.path.isabs(path):
            return None  # Hydra reads it from the folder of the entry point's file: left to Hydra
        source = replace(source, primary=Path(path))
    if "--config-dir" in values:
        folder = Path(os.path.abspath(values["--config-dir"]))  # as Hydra reads it: from the current directory
        if not folder.is_dir():
            raise UserError(f"no such config folder: --config-dir {values['--config-dir']}; check the path.")
        source = replace(source, added=(folder,))
    file_name = source.name if source.name.endswith(".yaml") else f"{source.name}.yaml"
    if find_name and not any((folder / file_name).is_file() for folder in source.folders()):
        raise UserError(f"no config named '{source.name}' in {', '.join(map(str, source.folders()))}; check -cn.")
    return source


def run_source(run_dir: Path, default: ConfigSource) -> ConfigSource:
    """The ConfigSource a run was composed from (its newest .hydra record): its --config-dir and --config-name.

    The primary folder is not read back: a run made in another clone records that clone's configs folder."""
    records = sorted(run_dir.glob(".hydra/resumed-*/hydra.yaml")) or [run_dir / ".hydra" / "hydra.yaml"]
    if not records[-1].is_file():
        return default
    hydra = (yaml.safe_load(records[-1].read_text()) or {}).get("hydra", {})
    sources = (hydra.get("runtime") or {}).get("config_sources") or []
    added = tuple(Path(s["path"]) for s in sources if s.get("provider") == "command-line" and s.get("schema") == "file")
    name = (hydra.get("job") or {}).get("config_name") or default.name
    return replace(default, name=name, added=added)


def resumed_source(run_dir: Path, given: ConfigSource, flags: list) -> tuple:
    """(ConfigSource, flags) to resume `run_dir` with: the folder (-cd) and config name (-cn) the command line gives,
    else the run's own (run_source), added to the flags so Hydra composes from them too."""
    values = flag_values(flags)
    default = ConfigSource(given.primary, "train")
    recorded = run_source(run_dir, default)
    source = replace(
        given,
        name=given.name if "--config-name" in values else recorded.name,
        added=given.added if "--config-dir" in values else recorded.added,
    )
    missing = [folder for folder in source.added if not folder.is_dir()]
    if missing:
        raise UserError(
            f"'{run_dir}' was composed with --config-dir {missing[0]}, which is gone; give the folder again with -cd."
        )
    extra = [] if "--config-name" in values or source.name == default.name else ["--config-name", source.name]
    extra += (
        [] if "--config-dir" in values else [arg for folder in source.added for arg in ("--config-dir", str(folder))]
    )
    return source, flags + extra
