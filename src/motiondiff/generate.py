"""Generate from a finished run, reusing its saved config:
`python -m motiondiff.generate run_dir=outputs/<run> num_samples=8 sampler=ddim sampler.num_steps=50`."""

import logging
from pathlib import Path

from omegaconf import DictConfig

from motiondiff.cli import hydra_entry_point
from motiondiff.generation import generate_and_save
from motiondiff.runs import load_trained_run

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    """Load the run's module (EMA weights) and write samples and videos to this generation's directory."""
    run = load_trained_run(cfg)
    out_dir = Path(cfg.paths.output_dir)
    written = generate_and_save(
        run.module, run.sampler, out_dir, cfg.num_samples, cfg.seed, cfg.chain_windows, cfg.chain_overlap, cfg.render
    )
    (out_dir / "source.txt").write_text(f"run_dir: {run.run_dir}\ncheckpoint: {run.checkpoint}\n")
    log.info("Wrote %d samples to %s", cfg.num_samples, out_dir)
    return written


main = hydra_entry_point("generate", run)

if __name__ == "__main__":
    main()
