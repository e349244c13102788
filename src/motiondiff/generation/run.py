"""Generate from a finished run, reusing its saved config:
`python -m motiondiff.generate run_dir=outputs/<run> num_samples=8 sampler=ddim sampler.num_steps=50`
`python -m motiondiff.generate run_dir=outputs/<text run> prompt="a person jumps twice" length=120 guidance_weight=3`"""

import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from motiondiff.core.errors import UserError
from motiondiff.generation.prompts import generate_text_and_save, read_prompts
from motiondiff.generation.windows import generate_and_save
from motiondiff.runs.loading import load_trained_run
from motiondiff.runs.provenance import write_provenance

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    """Load the run's module (EMA weights) and write samples and videos to this generation's directory."""
    run = load_trained_run(cfg)
    out_dir = Path(cfg.paths.output_dir)
    if run.module.conditional:
        encoder = instantiate(run.config.text_encoder)
        prompts = read_prompts(cfg.prompt, cfg.prompts_file)
        written = generate_text_and_save(
            run.module,
            run.sampler,
            encoder,
            out_dir,
            prompts,
            cfg.num_samples,
            cfg.length,
            cfg.guidance_weight,
            cfg.seed,
            cfg.render,
        )
    else:
        if cfg.prompt is not None or cfg.prompts_file is not None:
            raise UserError(
                f"'{run.run_dir}' is an unconditional model (trained without text); drop prompt/prompts_file."
            )
        written = generate_and_save(
            run.module,
            run.sampler,
            out_dir,
            cfg.num_samples,
            cfg.seed,
            cfg.chain_windows,
            cfg.chain_overlap,
            cfg.render,
        )
    write_provenance(out_dir, run)
    log.info("Wrote samples to %s", out_dir)
    return written
