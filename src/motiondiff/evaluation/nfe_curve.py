"""Quality against network calls:
`python -m motiondiff.nfe_curve run_dir=<run> samplers=[ddim,dpmsolver,karras_heun] steps=[5,10,15,20]`.

Each sampler at each step count measures the trained run as `evaluate` does (evaluation.run's protocols for text
runs, evaluation.single_dance for dance runs), and so do the references DDPM-1000 (every schedule step; skip_ddpm=true
leaves it out) and DDIM-50 (ddim_reference_steps). NFE is counted, not computed: every sampling call gets a denoiser
whose network is wrapped by a counter, and a point's NFE is the network calls of one sampling call (a guided call runs
the network once on a doubled batch: one NFE). Results go to <run>/nfe_curves/<time>/: nfe_curve.{json,md,csv,png}
(motiondiff.evaluation.nfe_report), points.jsonl as each point finishes, and the run's provenance.

`samplers` entries: a sampler config name (configs/sampler: ddim, dpmsolver, karras), a variant (karras_euler,
karras_heun, dpmsolver_sde), or a mapping with `name`, the config's options and an optional `label`
(`samplers=[ddim,{name:ddim,eta:1.0,label:ddim_eta1}]`); the step count always comes from `steps`.
"""

import copy
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from motiondiff.core.errors import UserError, find_user_error, refuse_existing_outputs
from motiondiff.diffusion.samplers import DDPMSampler, KarrasSampler, Sampler
from motiondiff.evaluation.nfe_plan import SAMPLER_CONFIGS, SamplerSpec, check_options, parse_steps
from motiondiff.evaluation.nfe_report import OUTPUT_FILES, quality_metrics, targets, write_outputs
from motiondiff.evaluation.report import LAYOUTS, summarize
from motiondiff.evaluation.run import PROTOCOLS, load_evaluator
from motiondiff.evaluation.single_dance import evaluate_dance
from motiondiff.runs.directories import load_run_config, resolve_checkpoint
from motiondiff.runs.loading import load_trained_run, pick_device
from motiondiff.runs.provenance import write_provenance
from motiondiff.training.devices import dtype_name, processor_name

log = logging.getLogger(__name__)

POINTS_FILE = "points.jsonl"


class CountingSampler(Sampler):
    """A sampler run through another, whose denoiser's network counts its calls: one (calls, rows sent, rows
    sampled) record per sampling call. A joint dance (`chain_sampling=joint`) is one row of its whole length: each
    call runs all its windows (`WindowedNetwork`), so NFE counts the calls in sequence, as for one window."""

    def __init__(self, sampler: Sampler):
        super().__init__(sampler.progress, sampler.resample)
        self.inner, self.name, self.records, self.seconds = sampler, sampler.name, [], 0.0

    def describe(self) -> dict:
        return self.inner.describe()

    def labelled(self, label: str):
        return self.inner.labelled(label)

    def timesteps(self, schedule):
        return self.inner.timesteps(schedule)

    def sample(
        self, denoise, schedule, noise, generator=None, known=None, known_mask=None, label=None, source=None, start=None
    ):
        """The inner sampler's sample, with the network of `denoise` wrapped by a counter."""
        network, record = denoise.network, [0, 0]

        def counted_network(x_t, t, **kwargs):
            record[0], record[1] = record[0] + 1, record[1] + x_t.shape[0]
            return network(x_t, t, **kwargs)

        counted = copy.copy(denoise)
        counted.network = counted_network
        started = time.perf_counter()
        x = self.inner.sample(counted, schedule, noise, generator, known, known_mask, label, source, start)
        self.seconds += time.perf_counter() - started
        self.records.append((record[0], record[1], noise.shape[0]))
        return x

    def tally(self) -> dict:
        """NFE (network calls per sampling call), every call's count, the network batch per sampled row, the time."""
        calls = [record[0] for record in self.records]
        sent = sum(record[1] for record in self.records)
        expected = sum(record[0] * record[2] for record in self.records)
        return {
            "nfe": max(calls) if calls else 0,
            "nfe_per_call": sorted(set(calls)),
            "network_calls": sum(calls),
            "sampling_calls": len(calls),
            "batch_factor": sent / expected if expected else None,  # 2.0: guided (a doubled batch per call)
            "sampling_seconds": self.seconds,
        }


def run(cfg: DictConfig) -> dict:
    """Measure every point, write the table and the plot -> {"points", "targets", "table", "settings"}."""
    specs = check_options(cfg)  # as cli.preflight checked them
    reference_steps = int(cfg.ddim_reference_steps)
    out_dir = Path(cfg.paths.output_dir)
    refuse_existing_outputs(out_dir, [*OUTPUT_FILES, POINTS_FILE], "NFE curves")
    run_dir, _ = resolve_checkpoint(cfg.run_dir, cfg.ckpt_path, cfg.checkpoint)  # no checkpoint: refused here
    schedule_steps = int(load_run_config(run_dir).schedule.num_steps)
    steps = parse_steps(cfg.steps, schedule_steps)
    plan = [("curve", spec.label, spec, n) for spec in specs for n in steps]
    plan.append(("reference", f"ddim-{reference_steps}", SamplerSpec("ddim", "ddim", {}), reference_steps))
    if not cfg.skip_ddpm:
        plan.append(("reference", f"ddpm-{schedule_steps}", SamplerSpec("ddpm", "ddpm", {}), schedule_steps))
    samplers = [build_sampler(spec, None if spec.config == "ddpm" else n) for _, _, spec, n in plan]  # all checked
    trained = load_trained_run(cfg)
    evaluate, settings = evaluation_of(trained, cfg)
    layout = LAYOUTS["single_dance" if not trained.module.conditional else cfg.protocol_name]
    out_dir.mkdir(parents=True, exist_ok=True)
    points, data_row, details = measure_plan(trained, evaluate, plan, samplers, cfg, layout)
    settings = {
        "run_dir": str(trained.run_dir),
        "checkpoint": str(trained.checkpoint),
        "checkpoint_sha256": write_provenance(out_dir, trained)["checkpoint_sha256"],
        "protocol": layout.protocol,
        "metrics": quality_metrics(layout),
        "samplers": [spec.label for spec in specs],
        "steps": steps,
        "skip_ddpm": bool(cfg.skip_ddpm),
        "ddim_reference_steps": reference_steps,
        "seed": cfg.seed,
        "replications": cfg.replications,
        "precision": dtype_name(trained.module.sampling_dtype),
        "processor": processor_name(),
        "torch_threads": torch.get_num_threads(),
        **settings,
        "evaluation": details,
    }
    goals = targets(points, layout, settings["metrics"][0], f"ddpm-{schedule_steps}", f"ddim-{reference_steps}")
    table = write_outputs(out_dir, settings, points, data_row, goals, layout)
    print(table)
    log.info("Wrote %s", out_dir / "nfe_curve.md")
    return {"points": points, "targets": goals, "table": table, "settings": settings}


def measure_plan(trained, evaluate, plan: list, samplers: list, cfg: DictConfig, layout) -> tuple:
    """(points, the data's reference row, evaluate's details): each planned sampler measured once, in order; each
    point also appended to points.jsonl as it finishes."""
    points, data_row, details = [], None, {}
    for number, ((kind, label, spec, steps), sampler) in enumerate(zip(plan, samplers)):
        where = {"kind": kind, "label": label, "sampler": spec.label, "steps": steps}
        same = next((p for p in points if p["sampler_settings"] == sampler.describe()), None)
        if same is not None:  # measured already (DDIM-50 on the curve): the same samples
            points.append({**same, **where})
            continue
        log.info("point %d of %d: %s at %d steps", number + 1, len(plan), label, steps)
        point, summary, details = measure_point(trained, evaluate, sampler, cfg)
        formula = nfe_formula(sampler, trained.module.schedule.num_steps)
        point.update(where, nfe_formula=formula, metrics=summary["generated"])
        if formula != point["nfe"]:
            log.warning("%s: %d network calls counted, %d expected", label, point["nfe"], formula)
        points.append(point)
        data_row = data_row or {"label": layout.reference_label, "metrics": summary[layout.reference]}
        with open(Path(cfg.paths.output_dir) / POINTS_FILE, "a") as handle:
            handle.write(json.dumps(point) + "\n")
        log.info(
            "%s: NFE %d, %s", label, point["nfe"], {m: point["metrics"][m]["mean"] for m in quality_metrics(layout)}
        )
    return points, data_row, details


def build_sampler(spec: SamplerSpec, num_steps) -> Sampler:
    """The sampler of configs/sampler/<spec.config>.yaml with the spec's options and `num_steps` (None: ddpm)."""
    config = OmegaConf.load(SAMPLER_CONFIGS / f"{spec.config}.yaml")
    config = OmegaConf.merge(config, spec.options, {"num_steps": num_steps} if num_steps else {})
    try:
        return instantiate(config)
    except InstantiationException as error:  # a sampler's own UserError (sampler.eta=-1) comes out as it is
        cause = find_user_error(error)
        if cause is None:
            raise
        raise cause from None


def nfe_formula(sampler: Sampler, schedule_steps: int) -> int:
    """The network calls a sampling call should make: every step (DDPM), 2 n - 1 (Heun: Euler last), else n."""
    if isinstance(sampler, DDPMSampler):
        return schedule_steps
    if isinstance(sampler, KarrasSampler) and sampler.method == "heun":
        return 2 * sampler.num_steps - 1
    return sampler.num_steps


def evaluation_of(trained, cfg: DictConfig) -> tuple:
    """(evaluate(run, cfg) -> (rows, details), settings to record) for this run: a text protocol or single_dance."""
    if not trained.module.conditional:
        return evaluate_dance, {"guidance_weight": None}
    if cfg.protocol_name not in PROTOCOLS:
        raise UserError(f"protocol_name={cfg.protocol_name} is unknown; use protocol={' | '.join(PROTOCOLS)}.")
    evaluator = load_evaluator(cfg.evaluator, pick_device(cfg.device))
    evaluator.requirements.check(trained.module.data, trained.run_dir)
    described = evaluator.describe()
    weight = cfg.guidance_weight if cfg.get("guidance_weight") is not None else trained.module.guidance_weight
    extra = {"guidance_weight": weight, "evaluator": described.pop("checkpoint")}
    extra.update({f"evaluator_{k}": v for k, v in described.items()})
    return (lambda run, run_cfg: PROTOCOLS[cfg.protocol_name](run, evaluator, run_cfg)), extra


def measure_point(trained, evaluate, sampler: Sampler, cfg: DictConfig) -> tuple:
    """({nfe counts, seconds, sampler settings}, the summary of evaluate's rows, its details) for one sampler."""
    counting = CountingSampler(sampler)
    started = time.perf_counter()
    rows, details = evaluate(replace(trained, sampler=counting), cfg)
    point = {**counting.tally(), "seconds": time.perf_counter() - started, "sampler_settings": sampler.describe()}
    return point, summarize(rows), details
