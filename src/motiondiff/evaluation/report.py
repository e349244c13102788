"""Evaluation tables: mean and 95% interval over replications, written as JSON, CSV and Markdown."""

import csv
import json
import math
from pathlib import Path

from motiondiff.core.errors import refuse_existing_outputs
from motiondiff.core.tables import markdown_table as table_of
from motiondiff.metrics.intervals import format_interval, mean_and_interval

# Which way is better, for the table headers (metrics not listed carry no arrow).
BETTER = {
    **{metric: "↓" for metric in ("FD", "MM-Dist", "bone_length_error")},
    **{metric: "↑" for metric in ("precision", "recall", "density", "coverage", "R@1", "R@2", "R@3", "TM-score")},
}


def summarize(rows: dict) -> dict:
    """{row: [per-replication {metric: value}]} -> {row: {metric: {mean, interval, values}}}."""
    summary = {}
    for row, replications in rows.items():
        metrics = list(replications[0])
        summary[row] = {}
        for metric in metrics:
            values = [float(replication[metric]) for replication in replications]
            mean, half_width = mean_and_interval(values)
            summary[row][metric] = {
                "mean": mean,
                "interval": None if math.isnan(half_width) else half_width,
                "values": values,
            }
    return summary


def markdown_table(summary: dict, digits: int = 3) -> str:
    """A Markdown table: one line per row, one column per metric, `mean ± half width`."""
    metrics = list(dict.fromkeys(metric for values in summary.values() for metric in values))  # every row's, in order
    return table_of(
        ["", *metric_header(metrics)],
        [[row, *metric_cells(values, metrics, digits)] for row, values in summary.items()],
    )


def metric_header(metrics: list) -> list:
    """Each metric's name with the arrow saying which way is better."""
    return [f"{metric} {BETTER.get(metric, '')}".strip() for metric in metrics]


def metric_cells(values: dict, metrics: list, digits: int = 3) -> list:
    """'mean ± interval' of each metric in `values` ({metric: {mean, interval}}), '' where absent."""
    return [
        format_interval(values[m]["mean"], nan_if_none(values[m]["interval"]), digits) if m in values else ""
        for m in metrics
    ]


def nan_if_none(value) -> float:
    """An interval of None (one replication) as NaN, which format_interval leaves out."""
    return float("nan") if value is None else float(value)


REPORT_FILES = ("metrics.json", "metrics.csv", "metrics.md")


def refuse_existing_report(out_dir: Path) -> None:
    """UserError if out_dir already holds an evaluation (evaluations never overwrite)."""
    refuse_existing_outputs(out_dir, REPORT_FILES, "evaluations")


def write_report(out_dir: Path, settings: dict, summary: dict) -> str:
    """Write metrics.json (settings + every value), metrics.csv and metrics.md into out_dir; return the table."""
    refuse_existing_report(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = markdown_table(summary)
    (out_dir / "metrics.json").write_text(json.dumps({"settings": settings, "results": summary}, indent=2))
    with open(out_dir / "metrics.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "metric", "mean", "ci95_half_width", "values"])
        for row, values in summary.items():
            for metric, entry in values.items():
                writer.writerow(
                    [row, metric, entry["mean"], entry["interval"], " ".join(f"{v:.6g}" for v in entry["values"])]
                )
    settings_lines = "\n".join(f"- {key}: {value}" for key, value in settings.items())
    (out_dir / "metrics.md").write_text(
        f"{table}\n\nMean ± 95% interval (Student t) over replications.\n\n{settings_lines}\n"
    )
    return table
