"""Loading a finished training run back: its module with the checkpoint's weights, and the sampler to use.

Checkpoints are read with `torch.load(weights_only=True)` (training.checkpoint_io): no pickled code
is ever run. The data description saved in the checkpoint (data.info) sizes the network.
"""

from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from motiondiff.core.errors import UserError
from motiondiff.data.info import describe_data
from motiondiff.diffusion.samplers import Sampler
from motiondiff.runs.directories import load_run_config, resolve_checkpoint
from motiondiff.training.build import build_module, module_class_of
from motiondiff.training.checkpoint_io import load_checkpoint
from motiondiff.training.config_checks import check_sampling_config
from motiondiff.training.devices import sampling_dtype
from motiondiff.training.diffusion_module import MotionDiffusion


def load_module(train_cfg: DictConfig, ckpt_path: Path, device: str = "cpu") -> L.LightningModule:
    """Rebuild a trained module from its run config and checkpoint weights, in eval mode."""
    checkpoint = load_checkpoint(ckpt_path)
    try:
        saved_data, state_dict = checkpoint["hyper_parameters"]["data_info"], checkpoint["state_dict"]
    except KeyError:
        raise UserError(f"'{ckpt_path}' is not a motiondiff training checkpoint (no data_info/state_dict).") from None
    module = build_module(train_cfg, describe_data(saved_data))
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
    """A finished diffusion training run, ready to sample from."""

    run_dir: Path
    checkpoint: Path
    config: DictConfig  # the run's saved composed training config
    module: MotionDiffusion  # in eval mode, on the chosen device
    sampler: Sampler  # the sampler asked for, else the run's own


def load_trained_run(cfg: DictConfig) -> TrainedRun:
    """The run named by a generate/evaluate config (run_dir or ckpt_path, checkpoint, device, precision, sampler)."""
    run_dir, ckpt_path = resolve_checkpoint(cfg.run_dir, cfg.ckpt_path, cfg.checkpoint)
    train_cfg = load_run_config(run_dir)
    check_sampling_config(cfg, train_cfg)
    module_class = module_class_of(train_cfg)
    if not issubclass(module_class, MotionDiffusion):  # refused before its checkpoint is read
        raise UserError(
            f"'{run_dir}' is a {module_class.__name__} run, which does not generate; give run_dir=<a diffusion run> "
            "(an evaluator run goes in evaluator=...)."
        )
    device = pick_device(cfg.device)
    choice = cfg.get("precision", "auto")
    sampling_dtype(device, choice)  # checked before the checkpoint is read
    module = load_module(train_cfg, ckpt_path, device)
    module.sampling_dtype = sampling_dtype(device, choice, conditional=module.conditional)
    sampler = instantiate(cfg.sampler if cfg.get("sampler") else train_cfg.sampler)
    return TrainedRun(run_dir, ckpt_path, train_cfg, module, sampler)
