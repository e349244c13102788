"""Compare the runs of a sweep: `python -m motiondiff.compare sweep_dir=outputs/multirun/<time>`.

Reads each run's newest evaluation (<run>/evaluations/<time>/metrics.json, written by
`python -m motiondiff.evaluate sweep_dir=...`; a newest one that failed is shown as failed) and the overrides it was
started with (<run>/.hydra/overrides.yaml), finds the settings that vary across the runs (overrides, and evaluation
settings as `eval.` columns; other protocols are refused) and writes, into a new
<sweep_dir>/comparisons/<time>/ (an earlier comparison is never replaced):
- comparison.csv and comparison.md: one row per run (the varied settings, its status, every metric
  as mean ± 95% interval, the value alone for one replication), then the reference row of the
  evaluations (real or held-out data) when they have one; failed runs and runs with no evaluation are
  listed with their status; comparison.md says which way each column is better and what it measures;
- comparison.png: a bar chart per run of FD and R@3 (text runs) or coverage and bone_length_error
  (dance runs), with the intervals as error bars and the reference as a dashed line;
- index.html: the tables and the chart in one page, with links to each run's evaluation and samples pages.
"""

import csv
import json
import logging
import math
from pathlib import Path

from omegaconf import DictConfig

from motiondiff.core.errors import UserError, refuse_existing_outputs
from motiondiff.core.files import relative
from motiondiff.core.tables import markdown_table
from motiondiff.evaluation.report import (
    Layout,
    columns_table,
    fitting_columns,
    interval_note,
    layout_of,
    metric_cells,
    metric_header,
    nan_if_none,
    reading,
    replication_counts,
)
from motiondiff.report.page import write_report as write_html_report
from motiondiff.sweeps.jobs import (
    COMPLETED,
    STATUS_FILE,
    hydra_record,
    job_record,
    natural_key,
    parse_overrides,
    require_sweep_dir,
    run_overrides,
    sweep_runs,
    varied_settings,
)

log = logging.getLogger(__name__)

OUTPUT_FILES = ("comparison.csv", "comparison.md", "comparison.png", "index.html")
PLOT_CHOICES = (("FD", "R@3"), ("coverage", "bone_length_error"))  # text runs, dance runs
EVALUATED = "evaluated"


def run(cfg: DictConfig) -> dict:
    """Collect every run's newest evaluation, write comparison.{csv,md,png}; return {"out_dir", "rows", "table"}."""
    sweep_dir = require_sweep_dir(cfg.sweep_dir)
    out_dir = Path(cfg.paths.output_dir)
    refuse_existing_outputs(out_dir, OUTPUT_FILES, "comparisons")
    runs = sweep_runs(sweep_dir)
    if not runs:
        raise UserError(f"'{sweep_dir}' holds no runs (sweep_dir); give the sweep directory of a `train -m` command.")
    rows = [run_row(run_dir, sweep_dir) for run_dir in runs]
    evaluated_differently = varied_evaluation_settings(rows)
    refuse_incomparable(rows, evaluated_differently)
    varied = varied_settings([row["overrides"] for row in rows]) + evaluated_differently
    metrics = list(dict.fromkeys(metric for row in rows for metric in row["metrics"]))
    layout = comparison_layout(rows)
    references = reference_rows(rows, layout)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(out_dir / "comparison.csv", rows, references, varied, metrics)
    table = markdown_comparison(rows, references, varied, metrics, int(cfg.digits), layout)
    note = interval_note(comparison_counts(rows, references))
    plotted = plot_metrics(cfg.plot_metrics, metrics)
    if plotted:
        plot_comparison(out_dir / "comparison.png", rows, references, varied, plotted, layout)
    markdown = comparison_markdown(
        sweep_dir, table, plotted, reading(metrics, layout, note, markdown=True), evaluated_differently, references
    )
    (out_dir / "comparison.md").write_text(f"{markdown}\n## Columns\n\n{columns_table(metrics, layout)}\n")
    printed, shown = printed_comparison(rows, references, varied, metrics, int(cfg.digits), layout)
    legend_text = f"{reading(shown, layout, note)}\n" if metrics else ""
    page = write_html_report(out_dir, links=report_links(rows))
    print(f"{printed}\n\n{legend_text}Every column, with what it measures: {out_dir / 'comparison.md'}")
    print(f"The page with the chart and links to each run's report: {page}")
    log.info("Wrote %s", out_dir / "comparison.md")
    return {"out_dir": out_dir, "rows": rows, "table": table, "printed": printed}


def report_links(rows: list) -> list:
    """(label, index.html) of each run's newest evaluation and of the samples it generated after training."""
    links = []
    for row in rows:
        if row["evaluation"] is not None:
            links.append((f"run {row['run']}: evaluation", Path(row["evaluation"]) / "index.html"))
        samples = Path(row["run_dir"]) / "generations" / "final" / "index.html"
        if samples.is_file():
            links.append((f"run {row['run']}: samples after training", samples))
        if row["evaluation"] is None and not samples.is_file():
            links.append((f"run {row['run']}: {short_status(row['status'])}", samples))
    return links


def run_row(run_dir: Path, sweep_dir: Path) -> dict:
    """One run: its name, overrides, status and its newest evaluation's generated metrics and reference rows."""
    row = {
        "run": relative(run_dir, sweep_dir),
        "run_dir": str(run_dir),
        "overrides": run_overrides(run_dir),
        "evaluation": None,
        "metrics": {},
        "references": {},
    }
    training = training_status(run_dir)
    evaluation = newest_evaluation(run_dir)
    if training["status"] != COMPLETED:
        row["status"] = f"training {training['status']}: {training['error']}"
    elif evaluation is not None and (evaluation / "metrics.json").is_file():
        saved = json.loads((evaluation / "metrics.json").read_text())
        results = saved["results"]
        row.update(
            status=EVALUATED,
            evaluation=str(evaluation),
            layout=layout_of(saved.get("settings", {}), results),
            metrics=results.get("generated", {}),
            references={name: values for name, values in results.items() if name != "generated"},
            evaluation_settings=evaluation_settings(saved.get("settings", {})),
        )
    elif evaluation is not None:  # the newest evaluation ended without metrics: say so, not an older one's numbers
        record = json.loads((evaluation / STATUS_FILE).read_text())
        row["status"] = f"evaluation {record['status']}: {record.get('error')}"
    else:
        row["status"] = "not evaluated"
    return row


# Evaluation settings that differ from run to run by nature, not by choice: the run's own files, timings, whether a
# progress bar was drawn.
PER_RUN_SETTINGS = ("eval.run_dir", "eval.checkpoint", "eval.checkpoint_sha256", "eval.sampler.progress")
PER_RUN_GROUPS = ("eval.seconds.",)
# Settings under which numbers are not comparable at all: another protocol measures other things. (Evaluators are
# recorded by the path they were given, which differs for one evaluator given two ways: they are a column.)
INCOMPARABLE_SETTINGS = ("eval.protocol",)


def evaluation_settings(settings: dict, prefix: str = "eval.") -> dict:
    """{`eval.<dotted key>`: value} of an evaluation's recorded settings: nested ones flattened, per-run ones left
    out, the protocol `ours` where an older evaluation did not say."""
    flat = {f"{prefix}protocol": "ours"} if prefix == "eval." else {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(evaluation_settings(value, f"{name}."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, list) else value
    return {
        key: value for key, value in flat.items() if key not in PER_RUN_SETTINGS and not key.startswith(PER_RUN_GROUPS)
    }


def varied_evaluation_settings(rows: list) -> list:
    """The evaluation settings whose values differ between the evaluated runs (missing from some: differing)."""
    recorded = [row["evaluation_settings"] for row in rows if row["status"] == EVALUATED]
    keys = list(dict.fromkeys(key for settings in recorded for key in settings))
    return [key for key in keys if len({same_kind(settings.get(key)) for settings in recorded}) > 1]


def same_kind(value) -> str:
    """A value as compared: whole numbers as floats (a weight 2 is 2.0), the rest by repr."""
    return repr(float(value) if isinstance(value, int) and not isinstance(value, bool) else value)


def refuse_incomparable(rows: list, varied: list) -> None:
    """UserError when the runs were evaluated under different protocols (INCOMPARABLE_SETTINGS)."""
    for key in (key for key in INCOMPARABLE_SETTINGS if key in varied):
        found = {}
        for row in rows:
            if row["status"] == EVALUATED:
                found.setdefault(str(row["evaluation_settings"].get(key)), row["run"])
        shown = ", ".join(f"{value} (run {run})" for value, run in found.items())
        raise UserError(
            f"the runs' newest evaluations differ in {key.removeprefix('eval.')}: {shown}; their numbers measure "
            "different things, so evaluate them alike (python -m motiondiff.evaluate sweep_dir=... with one "
            "protocol) and compare again."
        )


def training_status(run_dir: Path) -> dict:
    """The job's own status record; for a run without one, completed when it has its last checkpoint."""
    if (run_dir / STATUS_FILE).is_file():
        return job_record(run_dir)
    if (run_dir / "checkpoints" / "last.ckpt").is_file():
        return {"status": COMPLETED, "error": None}
    if hydra_record(run_dir).get("mode") == "MULTIRUN":
        return job_record(run_dir)  # started by a sweep, ended without a status: killed or still running
    return {"status": "unfinished", "error": "no checkpoints/last.ckpt"}


def newest_evaluation(run_dir: Path):
    """The newest <run>/evaluations/<time>/ that ended: with a metrics.json, or with a status record (a failed one,
    whose error the comparison shows rather than an older evaluation's numbers); None when none did."""
    ended = {path.parent for name in ("metrics.json", STATUS_FILE) for path in run_dir.glob(f"evaluations/*/{name}")}
    found = sorted(ended, key=natural_key)
    return found[-1] if found else None


def comparison_layout(rows: list) -> Layout:
    """The layout of the first evaluated run (its protocol's columns and reference row); ours when none is."""
    return next((row["layout"] for row in rows if "layout" in row), layout_of({}, {}))


def reference_rows(rows: list, layout: Layout) -> dict:
    """The first evaluated run's reference rows ("real", "validation"), labelled as the layout labels them."""
    for row in rows:
        if row["references"]:
            return {layout.row_label(name): values for name, values in row["references"].items()}
    return {}


def comparison_counts(rows: list, references: dict) -> set:
    """The replication counts of every evaluated run's and reference row's values."""
    summary = {row["run"]: row["metrics"] for row in rows} | references
    return replication_counts(summary) or {1}


def short_status(status: str) -> str:
    """A status for the terminal: 'training failed', 'evaluation failed' without their error (it is in the files)."""
    return status.split(":")[0]


def setting_cells(row: dict, varied: list) -> list:
    """The row's value of each varied setting, overrides and evaluation settings ('' when it has none)."""
    settings = {**parse_overrides(row["overrides"]), **row.get("evaluation_settings", {})}
    return [settings.get(key, "") for key in varied]


def write_csv(path: Path, rows: list, references: dict, varied: list, metrics: list) -> None:
    """comparison.csv: run, varied settings, status, then '<metric> mean' and '<metric> interval' per metric."""
    with open(path, "x", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run", *varied, "status", *[f"{m} {part}" for m in metrics for part in ("mean", "interval")]])
        for row in rows:
            writer.writerow(
                [row["run"], *setting_cells(row, varied), row["status"], *metric_numbers(row["metrics"], metrics)]
            )
        for name, values in references.items():
            writer.writerow([name, *[""] * len(varied), "reference", *metric_numbers(values, metrics)])


def metric_numbers(values: dict, metrics: list) -> list:
    """mean, interval for each metric ('' where absent or without an interval)."""
    cells = []
    for metric in metrics:
        entry = values.get(metric, {})
        cells += [entry.get("mean", ""), "" if entry.get("interval") is None else entry["interval"]]
    return cells


def markdown_comparison(
    rows: list, references: dict, varied: list, metrics: list, digits: int, layout: Layout, align: bool = False
) -> str:
    """The Markdown table: one line per run (then the reference rows), metrics as mean ± interval."""
    status = short_status if align else str
    lines = [
        [row["run"], *setting_cells(row, varied), status(row["status"]), *metric_cells(row["metrics"], metrics, digits)]
        for row in rows
    ]
    lines += [
        [name, *[""] * len(varied), "reference", *metric_cells(values, metrics, digits)]
        for name, values in references.items()
    ]
    settings = [key.split(".")[-1] for key in varied] if align else varied
    return markdown_table(["run", *settings, "status", *metric_header(metrics, layout)], lines, align=align)


def printed_comparison(rows: list, references: dict, varied: list, metrics: list, digits: int, layout: Layout) -> tuple:
    """(the table for the terminal, the metrics shown): the key metrics that fit, columns aligned, settings by their
    last name, statuses without their error."""

    def table(chosen: list) -> str:
        return markdown_comparison(rows, references, varied, chosen, digits, layout, align=True)

    shown = fitting_columns(layout, metrics, table)
    return table(shown), shown


def comparison_markdown(
    sweep_dir: Path, table: str, plotted: list, reading_text: str, evaluated_differently: list, references: dict
) -> str:
    """comparison.md: the table, how to read it and the plot."""
    plot = (
        f"![{', '.join(plotted)}](comparison.png)\n" if plotted else "No run has an evaluation with metrics to plot.\n"
    )
    caution = ""
    if evaluated_differently and references:
        caution = (
            "\n\nThe runs were evaluated under different settings (the `eval.` columns), so their own reference rows "
            "may differ too: the ones shown are the first evaluated run's; each run's evaluation page has its own."
        )
    return (
        f"# Comparison of {sweep_dir}\n\nEach run's newest evaluation. Columns before the status are the overrides "
        f"and evaluation settings (`eval.`) that differ between runs.{caution}\n\n{table}\n\n{reading_text}\n\n{plot}"
    )


def plot_metrics(requested, metrics: list) -> list:
    """Metrics to plot: those asked for (UserError naming unknown ones), else FD/R@3 or coverage/bone_length_error."""
    if requested:
        unknown = [m for m in requested if m not in metrics]
        if unknown:
            raise UserError(
                f"plot_metrics: '{unknown[0]}' is not among the evaluated metrics; choose from: {', '.join(metrics)}."
            )
        return list(requested)
    for choice in PLOT_CHOICES:
        present = [m for m in choice if m in metrics]
        if present:
            return present
    return metrics[:2]


def plot_comparison(path: Path, rows: list, references: dict, varied: list, metrics: list, layout: Layout) -> None:
    """Bars per evaluated run for each metric, the 95% intervals as error bars, the reference as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    evaluated = [row for row in rows if row["status"] == EVALUATED]
    labels = [
        " ".join(f"{k.split('.')[-1]}={v}" for k, v in zip(varied, setting_cells(row, varied)) if v) or row["run"]
        for row in evaluated
    ]
    colors = variant_colors(evaluated, varied)
    figure, axes = plt.subplots(
        1, len(metrics), figsize=(max(6.0, 1.0 + 0.9 * len(evaluated)) * len(metrics), 4.5), squeeze=False
    )
    for axis, metric in zip(axes[0], metrics):
        means = [row["metrics"].get(metric, {}).get("mean", math.nan) for row in evaluated]
        errors = [nan_if_none(row["metrics"].get(metric, {}).get("interval")) for row in evaluated]
        axis.bar(
            range(len(evaluated)), means, yerr=[0.0 if math.isnan(e) else e for e in errors], capsize=4, color=colors
        )
        for name, values in references.items():
            if metric in values:
                axis.axhline(values[metric]["mean"], color="tab:red", linestyle="--", label=name)
        axis.set_title(metric_header([metric], layout)[0])
        axis.set_xticks(range(len(evaluated)), labels, rotation=30, ha="right", fontsize=8)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
    figure.suptitle("mean per run; error bars: 95% interval (Student t) of runs with 2 or more replications")
    figure.tight_layout()
    with open(path, "xb") as handle:
        figure.savefig(handle, format="png", dpi=100)
    plt.close(figure)


def variant_colors(rows: list, varied: list) -> list:
    """One colour per variant: runs that differ only in their seed share it."""
    variants = [tuple(cell for key, cell in zip(varied, setting_cells(row, varied)) if key != "seed") for row in rows]
    palette = {variant: f"C{number % 10}" for number, variant in enumerate(dict.fromkeys(variants))}
    return [palette[variant] for variant in variants]
