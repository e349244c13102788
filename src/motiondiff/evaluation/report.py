"""Evaluation tables: mean and 95% interval over replications, written as JSON, CSV and Markdown."""

import csv
import json
import math
from pathlib import Path
from typing import Optional

from motiondiff.core.errors import refuse_existing_outputs
from motiondiff.core.tables import markdown_table as table_of
from motiondiff.metrics.intervals import format_interval, mean_and_interval
from motiondiff.metrics.reference_protocol import normal_interval

# Which way is better, for the table headers (metrics not listed carry no arrow).
BETTER = {
    **{metric: "↓" for metric in ("FD", "FID", "MM-Dist", "bone_length_error")},
    **{metric: "↑" for metric in ("precision", "recall", "density", "coverage", "R@1", "R@2", "R@3", "TM-score")},
    "MultiModality": "↑",
    "Diversity": "→",  # closer to the real motions' is better
}


def summarize(rows: dict) -> dict:
    """{row: [per-replication {metric: value}]} -> {row: {metric: {mean, interval, normal_interval, values}}}.

    `interval` is the Student-t 95% half width; `normal_interval` the papers' 1.96 sigma / sqrt(n)."""
    summary = {}
    for row, replications in rows.items():
        metrics = list(replications[0])
        summary[row] = {}
        for metric in metrics:
            values = [float(replication[metric]) for replication in replications]
            mean, half_width = mean_and_interval(values)
            normal = normal_interval(values)
            summary[row][metric] = {
                "mean": mean,
                "interval": None if math.isnan(half_width) else half_width,
                "normal_interval": None if math.isnan(normal) else normal,
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


REPORT_FILES = ("metrics.json", "metrics.csv", "metrics.md", "paper_table.md")
# The published protocol's table, in the papers' layout: (metric, column header)
PAPER_COLUMNS = (
    ("R@1", "R-Precision Top 1 ↑"),
    ("R@2", "Top 2 ↑"),
    ("R@3", "Top 3 ↑"),
    ("FID", "FID ↓"),
    ("MM-Dist", "MM Dist ↓"),
    ("Diversity", "Diversity →"),
    ("MultiModality", "MultiModality ↑"),
)
PAPER_ROWS = {"real": "Real motion"}


def paper_cell(entry: Optional[dict]) -> str:
    """'0.511±.003' as the papers print it ('-' when absent; no interval with one replication)."""
    if entry is None:
        return "-"
    interval = entry.get("normal_interval")
    if interval is None:
        return f"{entry['mean']:.3f}"
    width = f"{interval:.3f}"
    return f"{entry['mean']:.3f}±{width[1:] if width.startswith('0.') else width}"


def paper_table(summary: dict, label: str) -> str:
    """The published protocol's rows in the papers' layout (Diversity: closer to the real motion is better)."""
    rows = [
        [PAPER_ROWS.get(row, label), *[paper_cell(values.get(m)) for m, _ in PAPER_COLUMNS]]
        for row, values in summary.items()
    ]
    return table_of(["Methods", *[header for _, header in PAPER_COLUMNS]], rows)


def refuse_existing_report(out_dir: Path) -> None:
    """UserError if out_dir already holds an evaluation (evaluations never overwrite)."""
    refuse_existing_outputs(out_dir, REPORT_FILES, "evaluations")


def write_report(out_dir: Path, settings: dict, summary: dict, paper_label=None) -> str:
    """Write metrics.json (settings + every value), metrics.csv and metrics.md into out_dir; return the table.

    With `paper_label` (the published protocol) also paper_table.md, the papers' layout with that row label."""
    refuse_existing_report(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = markdown_table(summary)
    if paper_label is not None:
        paper = paper_table(summary, paper_label)
        note = "Mean ± 1.96 sigma / sqrt(n) over replications (population sigma), as the papers report it."
        (out_dir / "paper_table.md").write_text(f"{paper}\n\n{note}\n")
        table = f"{paper}\n\n{note} Student-t 95% intervals:\n\n{table}"
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
