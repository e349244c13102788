"""Run directories: building the module from a composed config, saving and finding runs and checkpoints.

A training run directory holds `config.yaml` (the resolved composed config), `.hydra/`
(Hydra's own record with the command-line overrides), `checkpoints/` and `logs/`.
Checkpoints are read with `torch.load(weights_only=True)`: no pickled code is ever run.
"""

import hashlib
import inspect
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import lightning as L
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from motiondiff.config_checks import check_sampling_config
from motiondiff.errors import UserError, require_file

CONFIG_NAME = "config.yaml"


def register_resolvers() -> None:
    """Resolvers used by the configs (idempotent)."""
    if not OmegaConf.has_resolver("run_root"):
        OmegaConf.register_new_resolver("run_root", run_root)


def run_root(run_dir: Optional[str], ckpt_path: Optional[str]) -> str:
    """The training run a generation/evaluation belongs to: run_dir, or the run holding ckpt_path."""
    if run_dir:
        return str(run_dir)
    if ckpt_path:
        parent = Path(ckpt_path).parent
        return str(parent.parent if parent.name == "checkpoints" else parent)
    return "outputs/unknown-run"


DEFAULT_MODULE = "motiondiff.training.module.MotionDiffusion"  # runs saved before the module config group


def build_module(cfg: DictConfig, data_info: dict) -> L.LightningModule:
    """The LightningModule described by a composed training config (`module` group), for data described by data_info."""
    module_class = get_class(cfg.module.get("_target_", DEFAULT_MODULE))
    network_class = get_class(cfg.network._target_)
    module_class.check_network_class(network_class)
    check_network_options(cfg.network, network_class)
    network = instantiate(cfg.network, **network_sizes(cfg.network, data_info))
    return module_class.from_config(cfg, network, data_info)


def check_network_options(network_cfg: DictConfig, network_class: type) -> None:
    """UserError naming any network.<key> the network class does not take (a typo, or a key left by an experiment)."""
    options = constructor_options(network_class)
    unknown = [str(key) for key in network_cfg if not str(key).startswith("_") and key not in options]
    if unknown:
        valid = ", ".join(name for name in options if name not in ("features", "text_dim"))
        raise UserError(f"network.{unknown[0]} is not an option of {network_class.__name__}; its options are: {valid}.")


def reads_text(network_class: type) -> bool:
    """Whether a network takes a caption (its constructor has text_dim)."""
    return "text_dim" in constructor_options(network_class)


def refuse_pooled_captions(network_name: str, why: str, fix: str) -> None:
    """UserError for a cross-attention network given one pooled vector per caption instead of a token sequence."""
    if network_name == "CrossAttentionTransformer":
        raise UserError(
            f"network=cross_attention attends to the caption's token embeddings, but {why}; use network=adaln or incontext, "
            f"or {fix}."
        )


def constructor_options(cls: type) -> list:
    """Keyword names cls(...) accepts, following **kwargs up to the base classes that receive them."""
    names: list = []
    for klass in cls.__mro__:
        if klass is object:
            break
        parameters = inspect.signature(klass.__init__).parameters.values()
        names += [p.name for p in parameters if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in names]
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return names


def module_options(cfg: DictConfig) -> dict:
    """The module group's own options (its keys without Hydra's _target_/_partial_)."""
    return {key: value for key, value in cfg.module.items() if not str(key).startswith("_")}


def network_sizes(network_cfg: DictConfig, data_info: dict) -> dict:
    """The sizes a network takes from the data (features; text_dim for text); UserError on a data/network mismatch."""
    network_class = get_class(network_cfg._target_)
    takes_text = reads_text(network_class)
    has_text = "text_dim" in data_info
    name = network_class.__name__
    if has_text and not takes_text:
        raise UserError(f"network {name} cannot read text, but the dataset is text-conditioned; use network=incontext, adaln or cross_attention.")
    if takes_text and not has_text:
        raise UserError(f"network {name} needs text, but the dataset has no captions; use network=punet, or a text dataset (dataset=text_motion).")
    if data_info.get("text_tokens") == 1:
        refuse_pooled_captions(name, "the text features hold one pooled vector per caption", "extract token features")
    return {"features": data_info["features"], **({"text_dim": data_info["text_dim"]} if has_text else {})}


def save_run_config(cfg: DictConfig, run_dir: Path) -> Path:
    """Write the resolved composed config; refuse to replace one (a run directory is never reused)."""
    path = run_dir / CONFIG_NAME
    if path.exists():
        raise UserError(f"'{path}' already exists: this run directory belongs to another run; start a new one.")
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return path


def load_run_config(run_dir: Path) -> DictConfig:
    """The composed config a training run saved."""
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        raise UserError(f"'{run_dir}' has no {CONFIG_NAME}: give run_dir=<a training run directory under outputs/>.")
    return OmegaConf.load(path)


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
        raise UserError(f"'{run}' has no {which} checkpoint in checkpoints/ (was training interrupted before one was saved?).")
    return run, candidates[0]


def latest_checkpoint(output_root: str, run_name: str) -> Path:
    """The newest last.ckpt of runs named run_name (for ckpt_path=last)."""
    found = sorted(Path(output_root, run_name).glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise UserError(f"ckpt_path=last found no checkpoint under '{Path(output_root, run_name)}'; give a path instead.")
    return found[-1]


def load_checkpoint(path: Path) -> dict:
    """A checkpoint dict read without unpickling arbitrary objects."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise UserError(
            f"'{path}' holds objects other than tensors and plain data, so it was not loaded "
            f"(a checkpoint can carry code; only weights are accepted): {str(error).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, OSError) as error:
        raise UserError(f"'{path}' is not a readable checkpoint ({str(error).splitlines()[0]}).") from None


def load_module(train_cfg: DictConfig, ckpt_path: Path, device: str = "cpu") -> L.LightningModule:
    """Rebuild a trained module from its run config and checkpoint weights, in eval mode."""
    checkpoint = load_checkpoint(ckpt_path)
    try:
        data_info = checkpoint["hyper_parameters"]["data_info"]
        state_dict = checkpoint["state_dict"]
    except KeyError:
        raise UserError(f"'{ckpt_path}' is not a motiondiff training checkpoint (no data_info/state_dict).") from None
    module = build_module(train_cfg, data_info)
    module.load_state_dict(state_dict)
    return module.eval().to(device)


def pick_device(device: str) -> str:
    """'auto' -> cuda when available, else cpu."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise UserError(f"device={device} is unknown; use auto, cpu or cuda.")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("device=cuda but no CUDA GPU is visible; use device=cpu or device=auto.")
    return device


@dataclass
class TrainedRun:
    """A finished training run, ready to sample from."""

    run_dir: Path
    checkpoint: Path
    config: DictConfig  # the run's saved composed training config
    module: L.LightningModule  # MotionDiffusion, in eval mode, on the chosen device
    sampler: object  # the sampler asked for, else the run's own


def load_trained_run(cfg: DictConfig) -> TrainedRun:
    """The run named by a generate/evaluate config (run_dir or ckpt_path, checkpoint, device, sampler)."""
    run_dir, ckpt_path = resolve_checkpoint(cfg.run_dir, cfg.ckpt_path, cfg.checkpoint)
    train_cfg = load_run_config(run_dir)
    check_sampling_config(cfg, train_cfg)
    module_class = get_class(train_cfg.get("module", {}).get("_target_", DEFAULT_MODULE))
    if not hasattr(module_class, "sample"):  # refused before its checkpoint is read
        raise UserError(
            f"'{run_dir}' is a {module_class.__name__} run, which does not generate; give run_dir=<a diffusion run> "
            "(an evaluator run goes in evaluator=...)."
        )
    module = load_module(train_cfg, ckpt_path, pick_device(cfg.device))
    sampler = instantiate(cfg.sampler if cfg.get("sampler") else train_cfg.sampler)
    return TrainedRun(run_dir, ckpt_path, train_cfg, module, sampler)


PROVENANCE_FILE = "source.json"


def write_provenance(out_dir: Path, run: TrainedRun) -> dict:
    """Record in out_dir where its contents came from: the run, its checkpoint with the file's SHA-256, the run's config; return the record."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "run_config.yaml").write_text(OmegaConf.to_yaml(run.config))
    record = {"run_dir": str(run.run_dir), "checkpoint": str(run.checkpoint), "checkpoint_sha256": file_sha256(run.checkpoint),
              "run_config": "run_config.yaml", "this_command_config": ".hydra/config.yaml"}  # fmt: skip
    (out_dir / PROVENANCE_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return record


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
