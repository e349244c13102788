"""Evaluate a finished run:
`python -m motiondiff.evaluate run_dir=outputs/<run> [evaluator=<evaluator run>] [sampler=ddim]`.

Text runs are measured with a trained motion-text evaluator (motiondiff.evaluation.text_motion); dance
runs with the single-motion measures against their training sequence (motiondiff.evaluation.single_dance).
Every metric is a mean with its 95% interval over `replications` (the value alone with one); the reference
row (real or held-out data) is computed the same way. Results go to <run>/evaluations/<time>/metrics.{json,csv,md}
with every column, its direction and meaning, and index.html (the tables and plots in one page, motiondiff.report);
the terminal gets the key columns with the same legend (motiondiff.evaluation.report).

A whole sweep: `python -m motiondiff.evaluate sweep_dir=outputs/multirun/<time> [evaluator=...] [options]`
evaluates every finished training run under sweep_dir (a folder with config.yaml and
checkpoints/last.ckpt) with the same options, each into its own <run>/evaluations/<time>/ exactly as
above (plus job_status.json). A run whose evaluation fails is recorded and the others go on; the
command's own folder, <sweep_dir>/evaluations/<time>/, gets evaluations.{json,md} (one row per run:
status, evaluation folder, error) and the command exits non-zero when any evaluation failed. Then
`python -m motiondiff.compare sweep_dir=...` puts the runs side by side.
"""

import copy
import logging
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from motiondiff.core.checks import whole_number
from motiondiff.core.errors import UserError, find_user_error
from motiondiff.core.files import relative
from motiondiff.data.collage import refuse_for_text
from motiondiff.evaluation.guo_protocol import evaluate_guo
from motiondiff.evaluation.lab_protocol import evaluate_lab
from motiondiff.evaluation.report import refuse_existing_report, summarize, write_report
from motiondiff.evaluation.single_dance import evaluate_dance
from motiondiff.evaluation.text_motion import evaluate_text
from motiondiff.report.page import write_report as write_html_report
from motiondiff.runs.loading import load_trained_run, pick_device
from motiondiff.runs.provenance import write_provenance
from motiondiff.sweeps.jobs import (
    COMPLETED,
    finished_runs,
    new_timestamped_dir,
    require_sweep_dir,
    run_recording_status,
    write_job_tables,
)
from motiondiff.training.devices import dtype_name

log = logging.getLogger(__name__)

# protocol_name (configs/protocol) -> the text protocol it runs
PROTOCOLS = {"ours": evaluate_text, "guo": evaluate_guo, "lab": evaluate_lab}


def run(cfg: DictConfig) -> dict:
    """Generate, measure, write and print the table -> {"summary", "settings", "table"} (sweep_dir: evaluate_sweep)."""
    if cfg.get("sweep_dir"):
        return evaluate_sweep(cfg)
    whole_number("replications", cfg.replications, why="3 or more for an interval")
    refuse_existing_report(Path(cfg.paths.output_dir))
    run = load_trained_run(cfg)
    torch.manual_seed(cfg.seed)
    refuse_for_text(cfg.get("collage_strength"), run.module.conditional, run.run_dir)
    if run.module.conditional:
        if cfg.protocol_name not in PROTOCOLS:
            raise UserError(f"protocol_name={cfg.protocol_name} is unknown; use protocol={' | '.join(PROTOCOLS)}.")
        evaluator = load_evaluator(cfg.evaluator, pick_device(cfg.device))
        evaluator.requirements.check(run.module.data, run.run_dir)
        rows, details = PROTOCOLS[cfg.protocol_name](run, evaluator, cfg)
        described = evaluator.describe()
        details.update(evaluator=described.pop("checkpoint"), **{f"evaluator_{k}": v for k, v in described.items()})
    else:
        rows, details = evaluate_dance(run, cfg)
    weight = cfg.guidance_weight if cfg.get("guidance_weight") is not None else run.module.guidance_weight
    provenance = write_provenance(Path(cfg.paths.output_dir), run)
    settings = {
        "run_dir": str(run.run_dir),
        "checkpoint": str(run.checkpoint),
        "checkpoint_sha256": provenance["checkpoint_sha256"],
        "seed": cfg.seed,
        "replications": cfg.replications,
        "sampler": run.sampler.describe(),
        "precision": dtype_name(run.module.sampling_dtype),
        "guidance_weight": weight,
        **details,
    }
    summary = summarize(rows)
    label = f"{run.run_dir.parent.name}/{run.run_dir.name}"
    table = write_report(
        Path(cfg.paths.output_dir), settings, summary, label if details.get("protocol") == "guo" else None
    )
    print(table)
    page = write_html_report(Path(cfg.paths.output_dir))  # last: it shows every table and plot written above
    log.info("Wrote %s; open %s in a browser", Path(cfg.paths.output_dir) / "metrics.md", page)
    return {"summary": summary, "settings": settings, "table": table}


def load_evaluator(evaluator_cfg: DictConfig, device: str):
    """The evaluator the `evaluator` group describes; a UserError of its loader comes out as it is."""
    try:
        return instantiate(evaluator_cfg, device=device)
    except InstantiationException as error:
        cause = find_user_error(error)
        if cause is None:
            raise
        raise cause from None


def evaluate_sweep(cfg: DictConfig) -> dict:
    """Evaluate sweep_dir's finished runs into <run>/evaluations/<time>/, noting failures -> {"records", "summary"}."""
    if cfg.run_dir or cfg.ckpt_path:
        raise UserError(
            "give either sweep_dir=<sweep> (every run of a sweep) or run_dir/ckpt_path (one run), not both."
        )
    sweep_dir = require_sweep_dir(cfg.sweep_dir)
    runs = finished_runs(sweep_dir)
    if not runs:
        raise UserError(
            f"'{sweep_dir}' holds no finished training run (a folder with config.yaml and checkpoints/last.ckpt); "
            "give the sweep directory of a `train -m` command (sweep_dir)."
        )
    out_dir = Path(cfg.paths.output_dir)
    records = []
    for number, run_dir in enumerate(runs):
        log.info("Evaluating run %d of %d: %s", number + 1, len(runs), run_dir)
        run_cfg, eval_dir, overrides = _config_for_run(cfg, run_dir)
        records.append(run_recording_status(run, run_cfg, eval_dir, overrides, number, run_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = write_job_tables(
        out_dir / "evaluations.json",
        out_dir / "evaluations.md",
        f"Evaluations of {sweep_dir}",
        records,
        sweep_dir,
        "evaluations",
    )
    write_html_report(
        out_dir,
        links=[
            (f"run {relative(r['run_dir'], sweep_dir)}: evaluation {r['status']}", Path(r["output_dir"]) / "index.html")
            for r in records
        ],
    )
    failed = [record for record in records if record["status"] != COMPLETED]
    if failed:
        raise UserError(
            f"{len(failed)} of {len(records)} evaluations failed (the others are written); see '{summary}'."
        )
    log.info("Evaluated %d runs; see %s", len(records), summary)
    return {"records": records, "summary": summary}


def _config_for_run(cfg: DictConfig, run_dir: Path) -> tuple:
    """(config for one sweep run, its new evaluation folder, its overrides); the config is saved in <folder>/.hydra/."""
    eval_dir = new_timestamped_dir(run_dir / "evaluations")
    run_cfg = copy.deepcopy(cfg)
    with open_dict(run_cfg):
        run_cfg.sweep_dir, run_cfg.run_dir, run_cfg.paths.output_dir = None, str(run_dir), str(eval_dir)
    given = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    overrides = [o for o in given if not o.startswith("sweep_dir=")] + [f"run_dir={run_dir}"]
    (eval_dir / ".hydra").mkdir()
    (eval_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(run_cfg))
    (eval_dir / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(overrides))
    return run_cfg, eval_dir, overrides
