"""The plan of an NFE curve from its config, checked before anything loads (cli.preflight runs `check_options`):
the `samplers` entries as SamplerSpecs and the step counts. Imports no torch, so a mistake is answered at once."""

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig, ListConfig, OmegaConf

from motiondiff.core.checks import whole_number
from motiondiff.core.errors import UserError

SAMPLER_CONFIGS = Path(str(files("motiondiff.configs"))) / "sampler"
VARIANTS = {  # name -> (config, options)
    "karras_euler": ("karras", {"method": "euler"}),
    "karras_heun": ("karras", {"method": "heun"}),
    "dpmsolver_sde": ("dpmsolver", {"sde": True}),
}


@dataclass(frozen=True)
class SamplerSpec:
    """One `samplers` entry: its label in the tables, its config in configs/sampler/ and the options it sets."""

    label: str
    config: str
    options: dict


def parse_samplers(entries) -> list:
    """The `samplers` entries as SamplerSpecs; UserError for an unknown name, a ddpm entry or a repeated label."""
    known = sorted(path.stem for path in SAMPLER_CONFIGS.glob("*.yaml") if path.stem != "ddpm")
    names = ", ".join(known + sorted(VARIANTS))
    if not isinstance(entries, (list, ListConfig)) or not entries:
        raise UserError(f"samplers={entries!r} must be a list of sampler names, e.g. samplers=[{names}].")
    specs = []
    for entry in entries:
        if isinstance(entry, (dict, DictConfig)):
            options = dict(OmegaConf.to_container(entry) if isinstance(entry, DictConfig) else entry)
            name, label = options.pop("name", None), options.pop("label", None)
            label = label or f"{name}({','.join(f'{k}={v}' for k, v in options.items())})"
            name, variant = VARIANTS.get(str(name), (name, {}))
            options = {**variant, **options}
        else:
            name, options = VARIANTS.get(str(entry), (str(entry), {}))
            label = str(entry)
        if name == "ddpm":
            raise UserError(
                "samplers: ddpm takes every step of the schedule, so it has no step counts; it is measured as "
                "the DDPM reference (drop it from samplers and leave skip_ddpm=false)."
            )
        if name not in known:
            raise UserError(f"samplers: '{entry}' is not a sampler; use one of {names} (or {{name:ddim,eta:1.0}}).")
        config = OmegaConf.load(SAMPLER_CONFIGS / f"{name}.yaml")
        unknown = [key for key in options if key not in config or key in ("_target_", "num_steps")]
        if unknown:
            takes = ", ".join(key for key in config if key not in ("_target_", "num_steps"))
            raise UserError(f"samplers: '{label}' sets {unknown[0]}, which {name} does not take here; use {takes}.")
        specs.append(SamplerSpec(label, name, options))
    labels = [spec.label for spec in specs]
    if len(set(labels)) < len(labels):
        raise UserError(f"samplers lists {labels} with a repeated entry; give each sampler once (or a label).")
    return specs


def parse_steps(steps, schedule_steps: Optional[int] = None) -> list:
    """`steps` as sorted distinct positive integers (up to the schedule's steps, when given); else a UserError."""
    if not isinstance(steps, (list, ListConfig)) or not steps:
        raise UserError(f"steps={steps!r} must be a list of positive integers, e.g. steps=[5,10,15,20].")
    counts = sorted({whole_number("steps", value, why="e.g. steps=[5,10,15,20]") for value in steps})
    if schedule_steps is not None and counts[-1] > schedule_steps:
        raise UserError(
            f"steps={counts[-1]} exceeds the {schedule_steps} diffusion steps the run was trained with; "
            f"use at most {schedule_steps}."
        )
    return counts


def check_options(cfg: DictConfig) -> list:
    """The nfe_curve config's samplers as SamplerSpecs, with its step counts and numbers checked; else a UserError.
    (The step counts are checked against the run's schedule once the run is read.)"""
    specs = parse_samplers(cfg.samplers)
    parse_steps(cfg.steps)
    whole_number("replications", cfg.replications, why="2 or more for an interval")
    whole_number("ddim_reference_steps", cfg.ddim_reference_steps, why="50: DDIM-50")
    return specs
