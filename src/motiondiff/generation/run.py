"""Generate from a finished run, reusing its saved config:
`python -m motiondiff.generate run_dir=outputs/<run> num_samples=8 sampler=ddim sampler.num_steps=50`
`python -m motiondiff.generate run_dir=outputs/<text run> prompt="a person jumps twice" length=120 guidance_weight=3`"""

import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from motiondiff.core.errors import UserError
from motiondiff.data.collage import collage_plan, refuse_for_text
from motiondiff.export.run import check_export, export_motions, read_generation, write_summary
from motiondiff.generation.prompts import generate_text_and_save, read_prompts
from motiondiff.generation.windows import generate_and_save
from motiondiff.report.page import write_report
from motiondiff.runs.loading import load_trained_run
from motiondiff.runs.provenance import write_provenance

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    """Load the run's module (EMA weights) and write samples, videos and index.html (the samples in a motion player)
    to this generation's directory."""
    run = load_trained_run(cfg)
    out_dir = Path(cfg.paths.output_dir)
    if cfg.render not in (True, False, "mesh"):
        raise UserError(f"render={cfg.render} is not an option; use render=true, false or mesh (a shaded SMPL video).")
    export_cfg, mesh = cfg.get("export"), cfg.render == "mesh"
    if (export_cfg is not None or mesh) and not run.module.conditional:
        raise UserError(
            f"'{run.run_dir}' makes 2D dance keypoints; export= and render=mesh need 3D motions (a text-to-motion run)."
        )
    check_export(export_cfg, mesh, cfg.smpl, run.module.data.joint_names)  # before generating anything
    refuse_for_text(cfg.collage_strength, run.module.conditional, run.run_dir)
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
            bool(cfg.render),
        )
        if export_cfg is not None or mesh:
            records = export_motions(read_generation(out_dir, None), out_dir, export_cfg, mesh, cfg.smpl)
            written["export"] = write_summary(out_dir, str(out_dir), export_cfg, records)
    else:
        if cfg.prompt is not None or cfg.prompts_file is not None:
            raise UserError(
                f"'{run.run_dir}' is an unconditional model (trained without text); drop prompt/prompts_file."
            )
        collage = dance_collage(run, cfg.collage_strength, cfg.collage_piece, cfg.chain_windows)
        written = generate_and_save(
            run.module,
            run.sampler,
            out_dir,
            cfg.num_samples,
            cfg.seed,
            cfg.chain_windows,
            cfg.chain_overlap,
            bool(cfg.render),
            cfg.chain_blend,
            cfg.foot_lock,
            cfg.foot_ik,
            collage,
            cfg.chain_sampling,
        )
    write_provenance(out_dir, run)
    written["report"] = write_report(out_dir)  # last: it lists every file written above
    log.info("Wrote samples to %s; open %s in a browser", out_dir, written["report"])
    return written


def dance_collage(run, strength, piece, chain_windows: int):
    """(training features (T, F), CollagePlan) for the long dance, or None (collage_strength null or no long dance)."""
    if strength is None:
        return None
    if chain_windows <= 1:
        raise UserError(
            f"collage_strength={strength} shapes the long dance, which chain_windows={chain_windows} turns off; "
            "use chain_windows >= 2 (default 9)."
        )
    datamodule = instantiate(run.config.dataset)
    datamodule.setup("fit")
    training = datamodule.train_set.features  # (T, F), normalised as the run's samples
    plan = collage_plan(strength, piece, run.module.data.window, len(training))
    return training, plan
