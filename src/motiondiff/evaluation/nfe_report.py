"""The tables, targets and plot of `nfe_curve` (motiondiff.evaluation.nfe_curve): nfe_curve.{json,md,csv,png}.

A point reaches a reference when its mean lies within the reference's 95% interval or beyond it on the better side
(FD below, coverage above; targets are set on such measures only); with one replication the interval is 0.
"""

import csv
import json
import math
from pathlib import Path
from typing import Optional

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from motiondiff.core.tables import markdown_table
from motiondiff.evaluation.report import Better, Layout
from motiondiff.metrics.intervals import format_interval

OUTPUT_FILES = ("nfe_curve.json", "nfe_curve.md", "nfe_curve.csv", "nfe_curve.png")
QUALITY = {"single_dance": ("coverage", "jitter_ratio"), "guo": ("FID", "R@3")}  # others: FD and R@3
FEW_NFE, DDIM_NFE = 10, 15  # the targets: DDPM quality at 10 NFE, DDIM-50 quality at 15 NFE at most


def quality_metrics(layout: Layout) -> list:
    """The two measures plotted against NFE: FD and R@3 (text), coverage and jitter_ratio (dance)."""
    return list(QUALITY.get(layout.protocol, ("FD", "R@3")))


def reaches(mean: float, reference: dict, better: Better) -> bool:
    """Whether `mean` is within the reference's 95% interval, or beyond it on the better side (lower- or
    higher-is-better measures)."""
    half_width = reference["interval"] or 0.0
    if better is Better.LOWER:
        return mean <= reference["mean"] + half_width
    assert better is Better.HIGHER, better
    return mean >= reference["mean"] - half_width


def targets(points: list, layout: Layout, metric: str, ddpm_label: str, ddim_label: str) -> list:
    """The issue's two targets as rows: the best <= 10-NFE point against DDPM, the fewest NFE reaching DDIM-50."""
    better = layout.metric(metric).better
    # "Reaches" and "best" read a direction: a measure best near 1 or near the data's value needs that value instead
    assert better in (Better.LOWER, Better.HIGHER), f"targets are set on lower- or higher-is-better measures: {metric}"
    curve = [point for point in points if point["kind"] == "curve"]
    ddpm = next((point for point in points if point["label"] == ddpm_label), None)
    ddim = next((point for point in points if point["label"] == ddim_label), None)
    few = [point for point in curve if point["nfe"] <= FEW_NFE]
    best = min(few, key=lambda point: order_key(point, metric, better), default=None)
    first = {"target": f"best sampler with <= {FEW_NFE} NFE reaches {ddpm_label} on {metric}", "reference": ddpm_label}
    if ddpm is None:
        first.update(point=None, met=None, note="not measured (skip_ddpm=true)")
    else:
        met = best is not None and reaches(best["metrics"][metric]["mean"], ddpm["metrics"][metric], better)
        first.update(point=best, met=met, note="" if best else f"no point with <= {FEW_NFE} NFE")
    reaching = [point for point in curve if reaches(point["metrics"][metric]["mean"], ddim["metrics"][metric], better)]
    fewest = min(reaching, key=lambda point: (point["nfe"], order_key(point, metric, better)), default=None)
    second = {
        "target": f"fewest NFE reaching {ddim_label} on {metric} (target <= {DDIM_NFE})",
        "reference": ddim_label,
        "point": fewest,
        "met": fewest is not None and fewest["nfe"] <= DDIM_NFE,
        "note": "" if fewest else "no measured point reaches it",
    }
    return [target_row(row, metric, {ddpm_label: ddpm, ddim_label: ddim}) for row in (first, second)]


def order_key(point: dict, metric: str, better: Better) -> float:
    """Sorts the best point first: the lowest for lower-is-better, the highest for higher-is-better."""
    mean = point["metrics"][metric]["mean"]
    return -mean if better is Better.HIGHER else mean


def target_row(row: dict, metric: str, references: dict) -> dict:
    """A target as the tables write it: the point's label, NFE and value beside the reference's."""
    point, reference = row.pop("point"), references.get(row["reference"])
    return {
        **row,
        "metric": metric,
        "label": point["label"] if point else None,
        "nfe": point["nfe"] if point else None,
        "value": point["metrics"][metric] if point else None,
        "reference_value": reference["metrics"][metric] if reference else None,
    }


def write_outputs(out_dir: Path, settings: dict, points: list, data_row: dict, goals: list, layout: Layout) -> str:
    """Write nfe_curve.{json,csv,md,png} (never over existing files); return the Markdown table."""
    metrics = settings["metrics"]
    legend = {m: {"better": layout.metric(m).better.words, "meaning": layout.metric(m).meaning} for m in metrics}
    record = {"settings": settings, "points": points, "data_reference": data_row, "targets": goals, "legend": legend}
    with open(out_dir / "nfe_curve.json", "x") as handle:
        handle.write(json.dumps(record, indent=2, default=str) + "\n")
    write_csv(out_dir / "nfe_curve.csv", points, data_row, goals, metrics)
    table = points_table(points, data_row, metrics, layout)
    with open(out_dir / "nfe_curve.md", "x") as handle:
        handle.write(markdown_text(settings, table, targets_table(goals, layout), legend))
    title = f"{Path(settings['run_dir']).parent.name}/{Path(settings['run_dir']).name}: {layout.protocol}"
    plot_curves(out_dir / "nfe_curve.png", points, metrics, layout, f"{title}, {settings['replications']} replications")
    return table


def cell(summary: Optional[dict]) -> str:
    """'mean ± half width' of one measure ('' when absent)."""
    if not summary:
        return ""
    return format_interval(summary["mean"], math.nan if summary["interval"] is None else summary["interval"])


def points_table(points: list, data_row: dict, metrics: list, layout: Layout) -> str:
    """One line per point (the curve, then the references), then the data's own row."""
    headers = ["kind", "sampler", "steps", "NFE", *(layout.metric(m).header for m in metrics), "sampling s", "total s"]
    rows = [
        [
            p["kind"],
            p["label"],
            p["steps"],
            p["nfe"],
            *(cell(p["metrics"].get(m)) for m in metrics),
            f"{p['sampling_seconds']:.1f}",
            f"{p['seconds']:.1f}",
        ]
        for p in points
    ]
    if data_row:
        rows.append(["data", data_row["label"], "", "", *(cell(data_row["metrics"].get(m)) for m in metrics), "", ""])
    return markdown_table(headers, rows)


def targets_table(goals: list, layout: Layout) -> str:
    """One line per target: the point chosen, its value, the reference's, and whether the target is met."""
    headers = ["target", "sampler", "NFE", "value", "reference", "met"]
    rows = [
        [
            goal["target"],
            goal["label"] or goal["note"],
            goal["nfe"] if goal["nfe"] is not None else "",
            cell(goal["value"]),
            f"{goal['reference']}: {cell(goal['reference_value'])}" if goal["reference_value"] else goal["note"],
            {True: "yes", False: "no", None: "not measured"}[goal["met"]],
        ]
        for goal in goals
    ]
    return markdown_table(headers, rows)


def markdown_text(settings: dict, table: str, targets: str, legend: dict) -> str:
    """nfe_curve.md: what was measured, the points table, the targets table and the legend."""
    lines = [
        "# Quality against network calls",
        "",
        f"Run `{settings['run_dir']}` (checkpoint `{Path(settings['checkpoint']).name}`), protocol "
        f"{settings['protocol']}, {settings['replications']} replications (seed {settings['seed']} + r), "
        f"sampling precision {settings['precision']}, {settings['processor']}, {settings['torch_threads']} threads.",
        "NFE: network calls per sampling call, counted (a guided call runs the network once on a doubled batch); "
        "each value is the mean ± its 95% interval (Student t) over the replications; sampling s: time in the "
        "sampler, total s: with the measuring.",
        "",
        table,
        "",
        "## Targets",
        "",
        "A point reaches a reference when its mean is within the reference's 95% interval or beyond it on the "
        + (
            "better side."
            if settings["replications"] > 1
            else "better side; with one replication there is no interval: it must equal or beat the reference."
        ),
        "",
        targets,
        "",
        "## Measures",
        "",
        *(f"- {name}: {item['meaning']} ({item['better']})" for name, item in legend.items()),
    ]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, points: list, data_row: dict, goals: list, metrics: list) -> None:
    """nfe_curve.csv: the points, the data row and the targets, one line each (kind says which)."""
    columns = [
        "kind",
        "label",
        "sampler",
        "steps",
        "nfe",
        "nfe_formula",
        "sampling_seconds",
        "seconds",
        "met",
        "reference",
    ]
    columns += [f"{m}_{part}" for m in metrics for part in ("mean", "interval")]
    lines = [{**p, **values_of(p["metrics"], metrics)} for p in points]
    if data_row:
        lines.append({"kind": "data", "label": data_row["label"], **values_of(data_row["metrics"], metrics)})
    for goal in goals:
        value = {goal["metric"]: goal["value"]} if goal["value"] else {}
        lines.append(
            {"kind": "target", **goal, "label": goal["target"], "sampler": goal["label"], **values_of(value, metrics)}
        )
    with open(path, "x", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(lines)


def values_of(summary: dict, metrics: list) -> dict:
    """{<metric>_mean, <metric>_interval} of the measures present in a summary row."""
    return {f"{m}_{part}": summary[m][part] for m in metrics if m in summary for part in ("mean", "interval")}


def plot_curves(path: Path, points: list, metrics: list, layout: Layout, title: str) -> None:
    """One panel per measure: each sampler's points against NFE (log scale) with their 95% intervals, and the
    references as horizontal bands (mean ± interval)."""
    figure = Figure(figsize=(5.5 * len(metrics), 4.4), layout="constrained")
    FigureCanvasAgg(figure)  # rendered by Agg: files only, no display
    curve = [point for point in points if point["kind"] == "curve"]
    references = [point for point in points if point["kind"] == "reference"]
    ticks = spaced_ticks(sorted({point["nfe"] for point in curve}))
    for axis, metric in zip(figure.subplots(1, len(metrics), squeeze=False)[0], metrics):
        names = list(dict.fromkeys(point["sampler"] for point in curve))
        for number, sampler in enumerate(names):
            mine = sorted((point for point in curve if point["sampler"] == sampler), key=lambda point: point["nfe"])
            means = [point["metrics"][metric]["mean"] for point in mine]
            errors = [point["metrics"][metric]["interval"] or 0.0 for point in mine]
            dodge = 1 + 0.015 * (number - (len(names) - 1) / 2)  # samplers side by side at the same NFE
            nfe = [point["nfe"] * dodge for point in mine]
            axis.errorbar(nfe, means, yerr=errors, fmt="o-", capsize=3, color=f"C{number}", label=sampler)
        for reference in references:
            colour = "tab:red" if reference["sampler"] == "ddpm" else "tab:gray"
            mean, half_width = reference["metrics"][metric]["mean"], reference["metrics"][metric]["interval"] or 0.0
            axis.axhline(mean, color=colour, linestyle="--", label=f"{reference['label']} ({reference['nfe']} NFE)")
            axis.axhspan(mean - half_width, mean + half_width, color=colour, alpha=0.15)
        axis.set_xscale("log")
        axis.xaxis.set_minor_locator(NullLocator())
        axis.set_xticks(ticks, [str(tick) for tick in ticks])
        axis.set_xlabel("network function evaluations (NFE) per sample")
        axis.set_title(f"{layout.metric(metric).header}: {layout.metric(metric).better.words}", fontsize=10)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    with open(path, "xb") as handle:
        figure.savefig(handle, format="png", dpi=100)


def spaced_ticks(values: list, gap: float = 0.07) -> list:
    """The sorted values less those within `gap` (in log) of the last one kept, so tick labels do not overlap."""
    kept = []
    for value in values:
        if not kept or math.log(value) - math.log(kept[-1]) > gap:
            kept.append(value)
    return kept
