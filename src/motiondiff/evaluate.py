"""Evaluate a finished run: `python -m motiondiff.evaluate run_dir=outputs/<run> [evaluator=<evaluator run>] [sampler=ddim]`.

Text runs are measured with a trained motion-text evaluator (motiondiff.evaluation.text); dance
runs with the single-motion measures against their training sequence (motiondiff.evaluation.dance).
Every metric is a mean with its 95% interval over `replications`; the real-data row is computed the
same way. Results go to <run>/evaluations/<time>/metrics.{json,csv,md} and are printed as a table.
"""

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig

from motiondiff.cli import hydra_entry_point
from motiondiff.errors import UserError
from motiondiff.evaluation.report import refuse_existing_report, summarize, write_report
from motiondiff.runs import file_sha256, load_trained_run, pick_device, write_provenance

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    """Generate with the run, measure, write and print the table; return {"summary", "settings", "table"}."""
    if int(cfg.replications) != cfg.replications or cfg.replications < 1:
        raise UserError(f"replications={cfg.replications} must be a positive whole number (3 or more for an interval).")
    refuse_existing_report(Path(cfg.paths.output_dir))
    run = load_trained_run(cfg)
    torch.manual_seed(cfg.seed)
    if run.module.conditional:
        from motiondiff.evaluation.evaluator_run import check_compatible, load_evaluator
        from motiondiff.evaluation.text import evaluate_text

        evaluator = load_evaluator(cfg.evaluator, pick_device(cfg.device))
        check_compatible(evaluator, run.module.data_info, run.run_dir)
        rows, details = evaluate_text(run, evaluator, cfg)
    else:
        from motiondiff.evaluation.dance import evaluate_dance

        rows, details = evaluate_dance(run, cfg)
    weight = cfg.guidance_weight if cfg.get("guidance_weight") is not None else getattr(run.module, "guidance_weight", None)
    settings = {
        "run_dir": str(run.run_dir), "checkpoint": str(run.checkpoint),
        "checkpoint_sha256": file_sha256(run.checkpoint), "seed": cfg.seed, "replications": cfg.replications,
        "sampler": {"name": type(run.sampler).__name__, **vars(run.sampler)}, "guidance_weight": weight, **details,
    }  # fmt: skip
    write_provenance(Path(cfg.paths.output_dir), run)
    summary = summarize(rows)
    table = write_report(Path(cfg.paths.output_dir), settings, summary)
    print(table)
    log.info("Wrote %s", Path(cfg.paths.output_dir) / "metrics.md")
    return {"summary": summary, "settings": settings, "table": table}


main = hydra_entry_point("evaluate", run)

if __name__ == "__main__":
    main()
