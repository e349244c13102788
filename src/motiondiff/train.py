"""Train a motion diffusion model: `python -m motiondiff.train experiment=dance2d [overrides]`."""

import logging
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from motiondiff.cli import hydra_entry_point
from motiondiff.config_checks import check_training_config
from motiondiff.errors import UserError, require_file
from motiondiff.generation import generate_and_save
from motiondiff.runs import build_module, latest_checkpoint, save_run_config
from motiondiff.text_generation import generate_text_and_save

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    """Train as configured; return the run directory, the checkpoints and the final metrics."""
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

    result = {"run_dir": run_dir, "module": module, "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()}}
    result["checkpoint"] = trainer.checkpoint_callback.last_model_path if trainer.checkpoint_callback else None
    if cfg.generate_after_training.num_samples > 0 and hasattr(module, "sample") and trainer.is_global_zero:
        result["generated"] = _generate_after_training(cfg, module.eval(), run_dir / "generations" / "final")
        log.info("Generated samples in %s", run_dir / "generations" / "final")
    return result


def _generate_after_training(cfg: DictConfig, module, out_dir: Path) -> dict:
    """Samples from the trained module with the run's sampler: dance windows, or the configured prompts."""
    settings, sampler = cfg.generate_after_training, instantiate(cfg.sampler)
    if not module.conditional:
        return generate_and_save(module, sampler, out_dir, settings.num_samples, cfg.seed, settings.chain_windows)
    if not settings.get("prompts"):
        raise UserError("generate_after_training.prompts is empty: list prompts for a text run, or set num_samples=0.")
    prompts = [(text, None) for text in settings.prompts]
    encoder = instantiate(cfg.text_encoder)
    return generate_text_and_save(module, sampler, encoder, out_dir, prompts, settings.num_samples, seed=cfg.seed)


def _compile_networks(module, options) -> None:
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


main = hydra_entry_point("train", run)

if __name__ == "__main__":
    main()
