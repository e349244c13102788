"""`--help` of a command, written from the YAML files it composes: its own groups and options, with their comments.

Hydra's own `--help` lists every group of the config directory (the training groups for `generate`
too) and prints the composed config without its comments. This help reads the command's primary
config: the groups its defaults list names (following a parent config such as `train` for
`render_data`), each option with the first comment line of its file, then the command's own
options as the YAML file writes them, comments included.
"""

from pathlib import Path

import yaml

HYDRA_FLAGS = """Hydra flags:
  -m, --multirun          run every combination of comma-separated values (a sweep)
  --cfg job               print the composed config instead of running
  --hydra-help            Hydra's own help (its groups and flags)"""


def first_comment(path: Path, limit: int = 100) -> str:
    """The first sentence of the comment block a YAML file starts with ('' when it starts without one)."""
    block = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        if "@package" not in line:
            block.append(line.lstrip("# ").strip())
    text = " ".join(block)
    sentence = text.split(". ")[0].rstrip(".:")
    return sentence if len(sentence) <= limit else sentence[: limit - 1].rstrip() + "…"


def defaults_entries(config_dir: Path, config_name: str) -> list:
    """(group, package, default option, comment) for each group the config's defaults list names, parents followed."""
    text = (config_dir / f"{config_name}.yaml").read_text()
    defaults = (yaml.safe_load(text) or {}).get("defaults", [])
    comments = {
        line.split(":")[0].strip(" -"): line.partition("#")[2].strip() for line in text.splitlines() if "#" in line
    }
    entries = []
    for entry in defaults:
        if isinstance(entry, str):
            if entry != "_self_":
                entries += defaults_entries(config_dir, entry)
            continue
        ((key, option),) = entry.items()
        group, _, package = key.partition("@")
        if group in ("hydra", "override hydra"):
            continue
        entries.append((group, package or group, option, comments.get(key, "")))
    return entries


def own_options(config_dir: Path, config_name: str) -> str:
    """The config file's text after its defaults list, without its hydra block: its options and their comments."""
    lines, keep, skipping = (config_dir / f"{config_name}.yaml").read_text().splitlines(), [], False
    for line in lines:
        top_level = line and not line.startswith((" ", "-", "#"))
        if top_level:
            skipping = line.startswith(("defaults:", "hydra:"))
        if not skipping and not (line.startswith("#") and not keep):
            keep.append(line)
    return "\n".join(keep).strip()


def command_help(config_dir: Path, config_name: str, program: str) -> str:
    """The help text of the command composing `config_name`."""
    parts = [
        f"{program}: {first_comment(config_dir / f'{config_name}.yaml')}",
        "",
        f"Usage: {program} [group=option ...] [key=value ...]",
        "",
    ]
    entries = defaults_entries(config_dir, config_name)
    if entries:
        parts.append("Config groups (group=option; default first):")
        for group, package, default, comment in entries:
            options = sorted(path.stem for path in (config_dir / group).glob("*.yaml"))
            shown = package if package == group else f"{package} (options of {group})"
            default = "null" if default is None else default
            parts.append(f"  {shown}: {default}{f'   # {comment}' if comment else ''}")
            for option in options:
                parts.append(f"      {option:<18} {first_comment(config_dir / group / f'{option}.yaml')}".rstrip())
        parts.append("")
    parts += [
        "Options (key=value, as the config file writes them):",
        "",
        own_options(config_dir, config_name),
        "",
        HYDRA_FLAGS,
    ]
    return "\n".join(parts) + "\n"
