"""A training run from a composed config: `motiondiff-train experiment=dance2d [overrides]` calls `run(cfg)`.

What happens after training (samples and videos of the finished model) and what is measured during
it (validation FD / R@3 of text runs) are callbacks of the `callbacks` group, not part of this loop.
"""

import logging
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from motiondiff.core.errors import UserError, require_file
from motiondiff.runs.directories import latest_checkpoint, save_run_config
from motiondiff.training.build import build_module
from motiondiff.training.config_checks import check_training_config

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    """Train as configured; return the run directory, the module, the last checkpoint and the final metrics."""
    run_dir = Path(cfg.paths.output_dir)
    first_process = rank_zero_only.rank == 0  # under DDP Lightning re-runs this command once per other rank
    if first_process and (run_dir / "checkpoints").exists():
        raise UserError(f"'{run_dir}' already holds checkpoints of another run; runs never share a directory.")
    check_training_config(cfg)
    L.seed_everything(cfg.seed, workers=True)
    ckpt_path = _resume_path(cfg)
    if first_process:
        save_run_config(cfg, run_dir)

    datamodule = instantiate(cfg.dataset)
    datamodule.setup("fit")
    module = build_module(cfg, datamodule.info)
    module.normalizer.load_state_dict(datamodule.normalizer.state_dict())
    _compile_networks(module, cfg.get("compile"))
    trainer = instantiate(
        cfg.trainer,
        callbacks=[instantiate(c) for c in cfg.callbacks.values()],
        logger=[instantiate(c) for c in cfg.logger.values()],
    )
    log.info("Run directory: %s", run_dir)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    return {
        "run_dir": run_dir,
        "module": module,
        "metrics": {key: float(value) for key, value in trainer.callback_metrics.items()},
        "checkpoint": trainer.checkpoint_callback.last_model_path if trainer.checkpoint_callback else None,
    }


def _compile_networks(module: L.LightningModule, options) -> None:
    """torch.compile the network and its EMA copy in place (their state-dict keys stay the same)."""
    if not options or not options.enabled:
        return
    for network in (module.network, getattr(module, "ema_network", None)):
        if network is not None:
            network.compile(mode=options.mode, backend=options.backend)
    log.info("torch.compile: mode=%s backend=%s", options.mode, options.backend)


def _resume_path(cfg: DictConfig):
    """The checkpoint to resume from: None, an existing file, or the newest last.ckpt for ckpt_path=last."""
    if cfg.ckpt_path is None:
        return None
    if cfg.ckpt_path == "last":
        return str(latest_checkpoint(cfg.paths.output_root, cfg.run_name))
    require_file(cfg.ckpt_path, "checkpoint (ckpt_path)", "check the path, or use ckpt_path=last")
    return str(cfg.ckpt_path)
