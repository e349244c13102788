"""Generate from a finished run, reusing its saved config:
`python -m motiondiff.generate run_dir=outputs/<run> num_samples=8 sampler=ddim sampler.num_steps=50`."""

import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from motiondiff.cli import hydra_entry_point
from motiondiff.generation import generate_and_save
from motiondiff.runs import load_module, load_run_config, pick_device, resolve_checkpoint

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    """Load the run's module (EMA weights) and write samples and videos to this generation's directory."""
    run_dir, ckpt_path = resolve_checkpoint(cfg.run_dir, cfg.ckpt_path, cfg.checkpoint)
    train_cfg = load_run_config(run_dir)
    module = load_module(train_cfg, ckpt_path, pick_device(cfg.device))
    sampler = instantiate(cfg.sampler if cfg.get("sampler") else train_cfg.sampler)
    out_dir = Path(cfg.paths.output_dir)
    written = generate_and_save(
        module, sampler, out_dir, cfg.num_samples, cfg.seed, cfg.chain_windows, cfg.chain_overlap, cfg.render
    )
    (out_dir / "source.txt").write_text(f"run_dir: {run_dir}\ncheckpoint: {ckpt_path}\n")
    log.info("Wrote %d samples to %s", cfg.num_samples, out_dir)
    return written


main = hydra_entry_point("generate", run)

if __name__ == "__main__":
    main()
