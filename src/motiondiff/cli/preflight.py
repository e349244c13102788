"""A command line checked before Hydra runs it, so a mistake writes nothing and says what to type instead.

`preflight(config_name, argv)` composes the config once, as the command would, and refuses with one
sentence (a UserError): an unknown key or group option, with the closest valid names; a key a
class does not take (`+trainer.max_step`); a run, checkpoint, evaluator, sweep or training data file
that does not exist, listing the newest runs with a checkpoint; a GPU trainer without a GPU; impossible
training settings; a tracker (logger=wandb, mlflow) whose package is not installed; a sampler, guidance
weight or step count the run cannot take, or a text run to measure without an evaluator (read from the
run's config.yaml); a command's own options (COMMAND_CHECKS: nfe_curve's samplers and step counts). All
of it before the command's code, and Lightning, is imported. It returns the command line to run, with
`run_dir=last` replaced by the newest finished run and, for `train`, `resume=<run>` / `ckpt_path=last`
written out as "continue in that run's directory with its own overrides".
"""

import difflib
import inspect
import re
from datetime import datetime
from pathlib import Path

import yaml
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import OverrideType, QuotedString, ValueType
from hydra.errors import HydraException
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from motiondiff.cli.config_source import ConfigSource, resumed_source, searching, source_of, split_command_line
from motiondiff.cli.resolvers import register_resolvers
from motiondiff.core.errors import UserError
from motiondiff.evaluation import nfe_plan
from motiondiff.evaluation.evaluators.base import NO_EVALUATOR
from motiondiff.runs.directories import (
    CONFIG_NAME,
    LAST,
    check_run_dir,
    latest_checkpoint,
    load_run_config,
    no_such_run,
    run_root,
)
from motiondiff.runs.legacy import added_option_overrides
from motiondiff.tracking.packages import check_tracker_packages
from motiondiff.training.config_checks import check_sampling_config, check_training_config, is_text_network
from motiondiff.training.devices import check_accelerator
from motiondiff.training.network_options import keyword_options

# Hydra flags that print or inspect instead of running: the command line goes to Hydra untouched.
INSPECTING_FLAGS = (
    *("--cfg", "-c", "--info", "-i", "--hydra-help", "--version", "--shell-completion", "-sc"),
    "--experimental-rerun",  # reruns a saved job from its pickle: no overrides to check
)
HYDRA_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")
# Keys naming files or folders that must exist, per command (a run directory is checked as a run).
RUN_KEYS = {
    "generate": ("run_dir",),
    "evaluate": ("run_dir",),
    "edit": ("run_dir",),
    "app": ("run_dir",),
    "nfe_curve": ("run_dir",),
}
OPTIONAL_RUN_KEYS = {"train": ("teacher",)}  # a finished run when given (experiment=distill teacher=<run>)
FILE_KEYS = {
    "generate": ("ckpt_path", "prompts_file", "export.skeleton"),
    "evaluate": ("ckpt_path",),
    "nfe_curve": ("ckpt_path",),
    "train": ("ckpt_path",),
    "export": ("export.skeleton",),
    "edit": ("ckpt_path", "edit.file"),
    "app": ("ckpt_path", "export.skeleton"),
}
# A file or a folder that must be there: (key, what it may be, whether the command needs it given).
INPUT_KEYS = {
    "export": ("input", "a generation folder or a joints .npy", True),
    "edit": ("source", "a .bvh, a .npy motion or a generation folder", True),  # not for edit=timeline (edit.file)
}
SWEEP_KEYS = {"evaluate": ("sweep_dir",), "compare": ("sweep_dir",)}
# The data a training reads, when it is not the embedded procedural data: (key, a file or a folder).
# (The dance loaders read `source` as given; the text data module expands ~ in `root`.)
DATA_PATHS = (("dataset.source", "file"), ("dataset.root", "directory"))
DATA_KEYS = {"train": DATA_PATHS, "render_data": DATA_PATHS}
EVALUATOR_PATHS = ("run", "root", "mean", "std", "glove", "text_features")
# A command's own options, checked as its run function would check them (without importing it).
COMMAND_CHECKS = {"nfe_curve": nfe_plan.check_options}


def preflight(config_dir: Path, config_name: str, argv: list) -> list:
    """The command line to run (argv after its flags' checks and rewrites); UserError on any mistake.

    `config_name` names the command (and its config, unless --config-name names another)."""
    if any(arg.split("=")[0] in INSPECTING_FLAGS for arg in argv):
        return argv
    split = split_command_line(argv)
    if split is None:  # a flag this does not read: the command line goes to Hydra as it is
        return argv
    flags, overrides = split
    resuming = config_name == "train" and any(o.startswith(("resume=", "ckpt_path=last")) for o in overrides)
    source = source_of(ConfigSource(config_dir, config_name), flags, find_name=not resuming)
    if source is None:  # a --config-path Hydra reads against the entry point's own file
        return argv
    register_resolvers()
    multirun = any(flag in ("-m", "--multirun") for flag in flags)
    parsed = parse_overrides(overrides)
    check_group_options(source, parsed)
    if config_name == "train":
        overrides, parsed, source, flags = resume_in_place(source, overrides, parsed, multirun, flags)
    cfg = compose_checked(source, first_job(parsed, source))
    tree = OmegaConf.to_container(cfg, resolve=False)
    tree.pop("hydra", None)
    check_added_keys(source, config_name, cfg, parsed)
    overrides = check_paths(config_name, cfg, parsed, overrides)
    if config_name in COMMAND_CHECKS:
        COMMAND_CHECKS[config_name](cfg)
    if config_name == "train":
        if not runs_elsewhere(cfg):  # a SLURM sweep is launched from a login node without the GPU its jobs get
            check_accelerator(OmegaConf.select(cfg, "trainer.accelerator", default="auto"))  # ~key: Lightning's
        check_training_config(cfg, teacher_pending=bool(cfg.get("teacher")))
        check_tracker_packages(cfg.get("logger"))
    check_targets(tree)  # last of these: it imports the classes the config names (Lightning's Trainer for train)
    return flags + overrides


# ---- parsing and composing ----------------------------------------------------------------------


def parse_overrides(overrides: list) -> list:
    """Hydra's parse of the overrides; UserError on a syntax error."""
    try:
        return OverridesParser.create().parse_overrides(overrides)
    except HydraException as error:
        raise UserError(f"cannot read the command line: {str(error).splitlines()[0]}") from None


def first_job(parsed: list, source: ConfigSource) -> list:
    """The overrides of the first job of a sweep (every override as it is when nothing sweeps), each value written
    as Hydra's sweeper writes a job's (quoted and escaped already)."""
    return [
        f"{o.get_key_element()}={sweep_values(o, source)[0]}" if o.is_sweep_override() else o.input_line for o in parsed
    ]


def sweep_values(override, source: ConfigSource) -> list:
    """The values of a sweep override as the jobs' overrides write them; a glob() over a group's options."""
    if override.value_type is ValueType.GLOB_CHOICE_SWEEP:
        group = override.key_or_group
        names = override.value().filter(source.options(group))  # ours, the user's, or Hydra's (hydra/launcher)
        if not names:
            raise UserError(f"{override.input_line}: the glob matches no option of a config group.")
        return names
    try:
        return list(override.sweep_string_iterator())
    except HydraException as error:  # interval(): Hydra's basic sweeper cannot list it either
        raise UserError(f"cannot sweep {override.input_line}: {str(error).splitlines()[0]}") from None


def plain(value):
    """A value of a parsed override as the job gets it: a quoted string as its text (QuotedString), else as is."""
    return value.text if isinstance(value, QuotedString) else value


def quote(value: str) -> str:
    """A value as an override writes it (quoted unless it is plain)."""
    return value if re.fullmatch(r"[A-Za-z0-9_./:@+-]*", value) else "'" + value.replace("'", "\\'") + "'"


def compose_config(source: ConfigSource, overrides: list) -> DictConfig:
    """The config the command would compose (with Hydra's own section, whose run choices the configs read)."""
    with searching(source, job_name=source.name):
        cfg = compose(source.name, overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


def compose_checked(source: ConfigSource, overrides: list) -> DictConfig:
    """compose_config, with Hydra's composition errors turned into one sentence with suggestions."""
    try:
        return compose_config(source, overrides)
    except HydraException as error:
        raise composition_error(source, overrides, error) from None
    except OmegaConfBaseException as error:
        raise UserError(f"cannot compose the {source.name} config: {str(error).splitlines()[0]}") from None


def composition_error(source: ConfigSource, overrides: list, error: HydraException) -> UserError:
    """The UserError for a Hydra composition error: the wrong key or option, and the closest valid ones."""
    message = str(error)
    missing = re.search(r"Could not find '(.+)/([^/']+)'", message)
    if missing:
        group, name = missing.groups()
        return UserError(f"{group}={name}: {option_suggestion(name, source.options(group), group)}")
    unknown = re.search(r"Could not override '([^']+)'", message)
    if unknown:
        key = unknown.group(1)
        others = [line for line in overrides if not re.match(rf"^\+*{re.escape(key)}=", line)]
        try:
            known = leaf_keys(OmegaConf.to_container(compose_config(source, others), resolve=False))
        except HydraException:
            known = []
        return UserError(f"{key} is not a setting of the {source.name} command; {key_suggestion(key, known)}")
    present = re.search(r"An item is already at '([^']+)'", message)
    if present:
        return UserError(f"{present.group(1)} is already a setting: drop the '+' (write {present.group(1)}=<value>).")
    return UserError(f"cannot compose the {source.name} config: {message.splitlines()[0]}")


def option_suggestion(name: str, options: list, group: str) -> str:
    """'did you mean gpu? (options: auto, cpu, ddp, gpu)'."""
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    mean = f"did you mean {group.split('/')[-1]}={close[0]}? " if close else ""
    return f"{group} has no option '{name}'; {mean}(options: {', '.join(options)})."


def key_suggestion(key: str, known: list) -> str:
    """'did you mean trainer.max_steps?', else the keys beside it."""
    settings = [k for k in known if not k.rpartition(".")[2].startswith("_")]
    close = difflib.get_close_matches(key, settings, n=1, cutoff=0.75)
    if close:
        return f"did you mean {' or '.join(close)}?"
    parent = key.rpartition(".")[0]
    siblings = [k for k in known if k.rpartition(".")[0] == parent and not k.rpartition(".")[2].startswith("_")]
    where = f"under {parent}" if parent else "at the top"
    return f"the settings {where} are: {', '.join(siblings[:20])}." if siblings else "see the command's --help."


def leaf_keys(tree: dict, prefix: str = "") -> list:
    """Every dotted key of a config tree (leaves and branches), Hydra's own section left out."""
    keys = []
    for key, value in tree.items():
        if prefix == "" and key == "hydra":
            continue
        keys.append(f"{prefix}{key}")
        if isinstance(value, dict):
            keys += leaf_keys(value, f"{prefix}{key}.")
    return keys


# ---- keys the classes do not take ---------------------------------------------------------------


def check_group_options(source: ConfigSource, parsed: list) -> None:
    """Every option a sweep lists for a group exists (the first job alone would check only the first)."""
    for override in parsed:
        group = override.key_or_group
        if override.is_sweep_override() and source.is_group(group):
            if override.value_type is ValueType.GLOB_CHOICE_SWEEP:
                continue  # it picks from the options
            options = source.options(group)
            for value in override.sweep_iterator():  # an option, or a list of them (logger=[csv],[csv,tensorboard])
                for name in (str(plain(v)) for v in (value if isinstance(value, list) else [value])):
                    if name not in options:
                        raise UserError(f"{group}={name}: {option_suggestion(name, options, group)}")


def check_added_keys(source: ConfigSource, config_name: str, cfg: DictConfig, parsed: list) -> None:
    """A key added with '+' goes into an object that takes it (checked by check_targets), is a new object, a config
    group (under a package: `+sampler@samplers.karras=karras`), or is read through ${...}; `++` on a key the config
    has is an override."""
    added = [o for o in parsed if o.type in (OverrideType.ADD, OverrideType.FORCE_ADD)]
    base = None  # the config without the ++ overrides (None where it does not compose: the ++ keys go unchecked)
    if any(o.type is OverrideType.FORCE_ADD for o in added):
        try:
            others = first_job([o for o in parsed if o.type is not OverrideType.FORCE_ADD], source)
            base = OmegaConf.to_container(compose_checked(source, others), resolve=False)
        except UserError:  # another override adds a key inside a ++ node
            pass
        HydraConfig.instance().set_config(cfg)  # the command's own again, for the resolvers
    tree = OmegaConf.to_container(cfg, resolve=False)
    tree.pop("hydra", None)
    text = " ".join([o.input_line for o in parsed] + [str(tree)])  # where an interpolation could read a key
    for override in added:
        key = override.key_or_group
        if key.startswith("hydra") or override.package is not None or source.is_group(key):
            continue
        parent_key, _, name = key.rpartition(".")
        if override.type is OverrideType.FORCE_ADD and (base is None or name in (node_at(base, parent_key) or {})):
            continue
        if re.search(r"\$\{(?:[^}]*[:,\s])?\.*" + re.escape(key) + r"(?![\w.])", text):  # ${key}, ${oc.select:key,...}
            continue
        parent = node_at(tree, parent_key)
        value = parent.get(name) if isinstance(parent, dict) else None
        if name in HYDRA_KEYS or "_target_" in (parent or {}) or (isinstance(value, dict) and "_target_" in value):
            continue
        known = [k for k in leaf_keys(tree) if k != key]
        suggestion = key_suggestion(key, known)
        if override.is_sweep_override() and "seed" in known and not suggestion.startswith("did you mean"):
            suggestion += " To repeat a run, sweep seed=0,1,2 (the same seed trains the same weights)."
        raise UserError(f"{key} is not a setting of the {config_name} command (nothing reads it); {suggestion}")


def node_at(tree: dict, dotted: str):
    """The node at a dotted key ('' = the root), or None."""
    node = tree
    for part in filter(None, dotted.split(".")):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def check_targets(tree: dict, prefix: str = "") -> None:
    """Every node with a _target_ gives only keys its class or function takes (a typo names the closest)."""
    if isinstance(tree.get("_target_"), str):
        check_target_keys(tree, prefix)
    for key, value in tree.items():
        if isinstance(value, dict):
            check_targets(value, f"{prefix}{key}.")


def check_target_keys(node: dict, prefix: str) -> None:
    """UserError naming a key of `node` that its _target_ does not take."""
    try:
        target = get_object(node["_target_"])
    except Exception:  # an unimportable target fails when the command builds it, with Hydra's own message
        return
    accepts = target_options(target)
    if accepts is None:
        return
    for key in node:
        if key not in HYDRA_KEYS and key not in accepts:
            name = getattr(target, "__name__", node["_target_"])
            close = difflib.get_close_matches(key, accepts, n=1, cutoff=0.6)
            hint = f"did you mean {prefix}{close[0]}?" if close else f"its options are: {', '.join(accepts)}."
            raise UserError(f"{prefix}{key} is not an option of {name}; {hint}")


def target_options(target) -> "list | None":
    """The keyword names a class or function takes; None when it takes any (**kwargs all the way)."""
    if not inspect.isclass(target):
        try:
            parameters = list(inspect.signature(target).parameters.values())
        except (TypeError, ValueError):
            return None
        if any(p.kind is p.VAR_KEYWORD for p in parameters):
            return None
        return [p.name for p in parameters if p.kind is not p.VAR_POSITIONAL]
    names, takes_any = keyword_options(target)
    return None if takes_any else names


# ---- runs, checkpoints, evaluators and sweeps that must exist ------------------------------------


def values_of(parsed: list, key: str, cfg: DictConfig) -> list:
    """The values a key takes in this command (every value of a sweep, as the jobs get it), else the config's own."""
    for override in reversed(parsed):  # the last of the overrides of a key wins, as in Hydra
        if override.key_or_group == key and override.type is OverrideType.DEL:
            return [None]  # ~key: unset
        if override.key_or_group == key:
            if not override.is_sweep_override():
                return [override.value()]
            return [plain(v) for v in override.sweep_iterator()]  # unescaped
    return [OmegaConf.select(cfg, key)]


def check_paths(config_name: str, cfg: DictConfig, parsed: list, overrides: list) -> list:
    """UserError for a run, checkpoint, file, sweep or evaluator that is not there; run_dir=last written out."""
    root = cfg.paths.output_root
    for key in FILE_KEYS.get(config_name, ()):
        for value in resolved_values(parsed, key, cfg):
            if value != "last" and not Path(value).is_file():
                if key == "ckpt_path":
                    raise no_such_run(value, key, root, "no such checkpoint")
                raise UserError(f"no such file: {key}={value}; check the path.")
    if config_name in INPUT_KEYS and OmegaConf.select(cfg, "edit.mode") != "timeline":  # a timeline has no source
        key, what, required = INPUT_KEYS[config_name]
        values = resolved_values(parsed, key, cfg)
        if not values and required:
            raise UserError(f"say what to {config_name}: {key}=<{what}>.")
        missing = [value for value in values if not Path(value).exists()]
        if missing:
            raise UserError(f"no such file or folder: {key}={missing[0]}; check the path.")
    check_data_paths(config_name, cfg, parsed)
    for key in SWEEP_KEYS.get(config_name, ()):
        for value in resolved_values(parsed, key, cfg):
            if not Path(value).is_dir():
                raise UserError(f"no such sweep directory: {key}={value}; list your sweeps with: ls {root}/multirun/")
    if config_name in RUN_KEYS:
        overrides = check_run_dirs(config_name, cfg, parsed, overrides, root)
    for key in OPTIONAL_RUN_KEYS.get(config_name, ()):
        for value in resolved_values(parsed, key, cfg):
            check_run_dir(value, key, root)
    check_evaluator_paths(cfg, root)
    return overrides


def runs_elsewhere(cfg: DictConfig) -> bool:
    """Whether the jobs run on other machines (a SLURM launcher): their data and devices are not this one's."""
    return "submitit" in str(OmegaConf.select(cfg, "hydra.launcher._target_", default=""))


def check_data_paths(config_name: str, cfg: DictConfig, parsed: list) -> None:
    """UserError for training data that is not there: `dataset.source` (a file) and `dataset.root` (a folder), unless
    procedural. Not checked where the jobs run elsewhere (a SLURM launcher) or each in its own folder (chdir)."""
    if runs_elsewhere(cfg):
        return
    chdir = bool(OmegaConf.select(cfg, "hydra.job.chdir", default=False))
    for key, kind in DATA_KEYS.get(config_name, ()):
        for value in resolved_values(parsed, key, cfg):
            path = Path(value).expanduser() if kind == "directory" else Path(value)
            if value == "procedural" or (chdir and not path.is_absolute()):
                continue
            if not (path.is_file() if kind == "file" else path.is_dir()):
                raise UserError(f"no such {kind}: {key}={value}; check the path.")


def resolved_values(parsed: list, key: str, cfg: DictConfig) -> list:
    """given_values with interpolations resolved: the composed value when the key does not sweep, else each value of
    the sweep that holds no interpolation."""
    sweeps = any(o.key_or_group == key and o.is_sweep_override() for o in parsed)
    if not sweeps:
        try:
            value = OmegaConf.select(cfg, key)
        except OmegaConfBaseException as error:  # ${oc.env:UNSET}, say
            raise UserError(f"cannot resolve {key}: {str(error).splitlines()[0]}") from None
        return [] if value in (None, "") else [str(value)]
    return [value for value in given_values(parsed, key, cfg) if "${" not in value]


def resolved_in(cfg: DictConfig, key: str, value: str) -> str:
    """`value`, given for `key` on the command line but not a key of the config (resume), resolved in `cfg`."""
    if "${" not in value:
        return value
    probe = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))  # a copy the probe key can be added to
    with open_dict(probe):
        probe[key] = value
    try:
        return str(probe[key])
    except OmegaConfBaseException as error:
        raise UserError(f"cannot resolve {key}: {str(error).splitlines()[0]}") from None


def given_values(parsed: list, key: str, cfg: DictConfig) -> list:
    """values_of, less the unset ones, as strings."""
    return [str(value) for value in values_of(parsed, key, cfg) if value not in (None, "")]


def check_run_dirs(config_name: str, cfg: DictConfig, parsed: list, overrides: list, root) -> list:
    """generate / evaluate: run_dir (or run_dir=last) is a finished run that takes the sampler and guidance asked for
    (and, to be measured, has an evaluator when it is a text run); run_dir, ckpt_path or sweep_dir is given."""
    given = {key: given_values(parsed, key, cfg) for key in ("run_dir", "ckpt_path", "sweep_dir")}
    for key, other in (("run_dir", "ckpt_path"), ("ckpt_path", "run_dir")):
        if given[key] and len(given[key]) < len(values_of(parsed, key, cfg)) and not given[other]:
            raise UserError(
                f"{key} is empty in one job of the sweep; name a run for each job (run_dir=last: the newest)."
            )
    if given["ckpt_path"]:  # the checkpoint file was checked; its run is the folder above it
        for checkpoint in resolved_values(parsed, "ckpt_path", cfg):
            run = Path(run_root(None, checkpoint))
            if (run / CONFIG_NAME).is_file():
                check_against_run(config_name, cfg, run)
        return overrides
    if not given["run_dir"] and not given["sweep_dir"]:
        raise no_such_run("<a run directory>", "run_dir", root, "say which run to use (run_dir=last: the newest)")
    newest = None  # the run run_dir=last names
    for value in resolved_values(parsed, "run_dir", cfg):
        run = check_run_dir(value, "run_dir", root, cfg.get("checkpoint", "last"))
        check_against_run(config_name, cfg, run)
        newest = run if value == "last" else newest
    return overrides if newest is None else with_last_written_out(overrides, parsed, newest)


def with_last_written_out(overrides: list, parsed: list, newest: Path) -> list:
    """The overrides with run_dir=last (quoted, ++, or a value of a sweep) written as the run it means, so every job
    of a sweep and the saved command line name the same run."""
    assert len(overrides) == len(parsed), "one parsed override per line"
    lines = []
    for line, override in zip(overrides, parsed):
        if override.key_or_group != "run_dir" or override.type is OverrideType.DEL:
            lines.append(line)
            continue
        values = map(plain, override.sweep_iterator() if override.is_sweep_override() else [override.value()])
        values = [str(newest) if value == "last" else str(value) for value in values]
        lines.append(f"{override.get_key_element()}={','.join(quote(v) for v in values)}")
    return lines


def check_against_run(config_name: str, cfg: DictConfig, run: Path) -> None:
    """The sampler and guidance asked for are ones the run can take (its saved schedule and network), and a text run
    to be measured has an evaluator; a config.yaml without them is left to the command, which refuses the run."""
    train_cfg = load_run_config(run)
    if "schedule" not in train_cfg or "network" not in train_cfg:
        return
    check_sampling_config(cfg, train_cfg)
    if config_name == "nfe_curve":  # no step count beyond the run's schedule
        nfe_plan.parse_steps(cfg.steps, int(train_cfg.schedule.num_steps))
    evaluator = OmegaConf.select(cfg, "evaluator")  # evaluate and nfe_curve; evaluator=trained without its run
    if isinstance(evaluator, DictConfig) and "run" in evaluator and evaluator.run in (None, ""):
        if is_text_network(train_cfg.network):
            raise UserError(NO_EVALUATOR)


def check_evaluator_paths(cfg: DictConfig, root) -> None:
    """The files and runs an evaluator (evaluate's `evaluator`, train's validation metrics) is read from exist."""
    evaluator = OmegaConf.select(cfg, "evaluator")
    if isinstance(evaluator, DictConfig):
        for key in EVALUATOR_PATHS:
            value = evaluator.get(key)
            if value in (None, ""):
                continue
            if key == "run":
                check_evaluator_run(str(value), "evaluator", root)
            elif not Path(str(value)).exists():
                raise UserError(f"evaluator.{key}={value} does not exist; check the path (docs/published-numbers.md).")
    validation = OmegaConf.select(cfg, "callbacks.generation_metrics.evaluator")
    if validation not in (None, ""):
        check_evaluator_run(str(validation), "callbacks.generation_metrics.evaluator", root)


def check_evaluator_run(value: str, key: str, root) -> None:
    """An evaluator given as a run directory or as one of its checkpoints (load_trained_evaluator takes both)."""
    if value == "last":
        raise UserError(f"{key}=last: name the evaluator's run directory (last is the newest run of any kind).")
    if Path(value).suffix == ".ckpt":
        if not Path(value).is_file():
            raise no_such_run(value, key, root, "no such checkpoint")
        return
    check_run_dir(value, key, root)


# ---- resuming in place ----------------------------------------------------------------------------


def resume_in_place(source: ConfigSource, overrides: list, parsed: list, multirun: bool, flags: list) -> tuple:
    """`resume=<run>` or `ckpt_path=last`: the run's own overrides, then these, continuing in its directory, composed
    from the run's own config folders (--config-dir, --config-name) unless the command line names others.
    (overrides, parsed, source, flags) to go on with."""
    resume = [o for o in parsed if o.key_or_group == "resume"]
    last = [o for o in parsed if o.key_or_group == "ckpt_path" and o.value() == "last"]
    if not resume and not last:
        return overrides, parsed, source, flags
    if multirun:
        raise UserError("resume= and ckpt_path=last continue one run; drop -m (resume the runs of a sweep one by one).")
    if resume and any(o.key_or_group == "ckpt_path" for o in parsed):
        raise UserError("give resume=<run> or ckpt_path=<file>, not both.")
    others = [o.input_line for o in parsed if o.key_or_group not in ("resume", "ckpt_path")]
    try:
        cfg = compose_checked(source, others)
    except UserError:  # `others` or -cn may be of a named run's own folders (-cd): they are checked below
        named = str(resume[0].value()) if resume else "last"
        if named == "last" or "${" in named:
            raise  # which run is meant depends on them (paths.output_root, the run name): they must compose here
        cfg = compose_checked(ConfigSource(source.primary, "train"), [])
    root = cfg.paths.output_root
    if resume:
        run_dir = check_run_dir(resolved_in(cfg, "resume", str(resume[0].value())), "resume", root)
    else:
        run_dir = latest_checkpoint(root, cfg.run_name).parent.parent
    run_dir = run_dir.resolve()
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    saved = OmegaConf.load(run_dir / CONFIG_NAME) if (run_dir / CONFIG_NAME).is_file() else OmegaConf.create()
    source, flags = resumed_source(run_dir, source, flags)
    own = merge_overrides(saved_overrides(run_dir), others)
    today = compose_checked(source, first_job(parse_overrides(own), source))  # the keys the earlier values go to
    lines = merge_overrides(saved_overrides(run_dir) + added_option_overrides(saved, today), others) + [
        f"ckpt_path={quote(str(run_dir / 'checkpoints' / LAST))}",
        f"hydra.run.dir={quote(str(run_dir))}",
        f"hydra.output_subdir=.hydra/resumed-{stamp}",
    ]
    return lines, parse_overrides(lines), source, flags


def saved_overrides(run_dir: Path) -> list:
    """The command-line overrides a run was last started with (its newest .hydra record), less ckpt_path."""
    records = sorted(run_dir.glob(".hydra/resumed-*/overrides.yaml")) or [run_dir / ".hydra" / "overrides.yaml"]
    if not records[-1].is_file():
        raise UserError(f"'{run_dir}' has no .hydra/overrides.yaml, so it cannot be resumed with its own settings.")
    lines = yaml.safe_load(records[-1].read_text()) or []
    return [line for line in lines if line.lstrip("+~").split("=")[0] not in ("ckpt_path", "resume")]


def merge_overrides(first: list, then: list) -> list:
    """Both lists, a key given in `then` replacing the same key in `first`."""
    parsed_then = parse_overrides(then)
    replaced = {(o.key_or_group, o.package) for o in parsed_then}
    kept = [o.input_line for o in parse_overrides(first) if (o.key_or_group, o.package) not in replaced]
    return kept + then
