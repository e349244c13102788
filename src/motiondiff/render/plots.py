"""The run's charts as PNG files: training curves (logs/curves.png) and an evaluation's metrics (metrics.png).

Both take plain data (arrays, small dataclasses) and draw with matplotlib's Agg canvas, never a display.
Curves: the loss per step on top (the raw values faint, smoothed over them; validation losses as points;
a log scale when the values span a decade or more), then every other logged quantity (validation metrics,
learning rate, other loss terms) on its own axes. Metrics: one panel per measure, each row's mean with its
interval and its replications, the reference row in grey, the direction (which way is better) in the title.
"""

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from matplotlib.figure import Figure  # a bare Figure saves with the Agg canvas: no pyplot, no display
from matplotlib.ticker import FuncFormatter, MaxNLocator

CURVE_WIDTH = 12.0  # inches (100 dpi: 1200 pixels)
SMALL_PANELS_PER_ROW = 3
RAW_ALPHA = 0.25  # the unsmoothed values behind the smoothed line
POINTS_PER_SMOOTHING_SPAN = 25  # a curve of n points is smoothed over about n / 25 of them
LOG_SCALE_RATIO = 10.0  # a loss panel whose largest / smallest positive value reaches this is drawn on a log scale
REFERENCE_COLOUR = "0.55"
ROW_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink")


# ---- training curves ------------------------------------------------------------------------------


def is_loss(name: str) -> bool:
    """A column of the loss panel: the training loss and the validation losses (val/loss, val/loss_ema)."""
    return name == "train/loss" or name.startswith("val/loss")


def smoothed(values: np.ndarray) -> np.ndarray:
    """A centred moving average over about len/25 points, narrowed symmetrically at the ends (geometric where every
    value is positive, as a log-scale loss is read), so the line neither lags nor leads the raw values; short curves
    as they are."""
    half = int(len(values) / POINTS_PER_SMOOTHING_SPAN) // 2  # 0: no smoothing
    if half == 0:
        return np.asarray(values, dtype=float)
    positive = bool((values > 0).all())
    series = np.log(values) if positive else np.asarray(values, dtype=float)
    sums = np.concatenate([[0.0], np.cumsum(series)])
    index = np.arange(len(series))
    reach = np.minimum(half, np.minimum(index, len(series) - 1 - index))  # as many points on each side
    means = (sums[index + reach + 1] - sums[index - reach]) / (2 * reach + 1)
    return np.exp(means) if positive else means


def spans_a_decade(series: list) -> bool:
    """Whether the positive values of these arrays reach LOG_SCALE_RATIO from smallest to largest."""
    values = np.concatenate([s[np.isfinite(s) & (s > 0)] for s in series]) if series else np.empty(0)
    return bool(len(values) > 1 and values.max() / values.min() >= LOG_SCALE_RATIO)


def present(steps: np.ndarray, values: np.ndarray) -> tuple:
    """(steps, values) where the value was logged (finite)."""
    keep = np.isfinite(values)
    return steps[keep], values[keep]


def draw_train_series(axis, steps: np.ndarray, values: np.ndarray, name: str, colour: str) -> None:
    """A training series: raw values faint, smoothed on top (too few points to smooth: the values, marked)."""
    if len(values) < 2 * POINTS_PER_SMOOTHING_SPAN:
        axis.plot(steps, values, "o-" if len(values) <= 50 else "-", color=colour, markersize=3, label=name)
        return
    axis.plot(steps, values, color=colour, alpha=RAW_ALPHA, linewidth=1.0, label=f"{name} (raw)")
    axis.plot(steps, smoothed(values), color=colour, linewidth=1.8, label=f"{name} (smoothed)")


def draw_loss_panel(axis, steps: np.ndarray, columns: dict) -> None:
    """train/loss raw and smoothed, the validation losses as points joined by lines; log scale over a decade."""
    drawn = []
    for number, name in enumerate(sorted((n for n in columns if is_loss(n)), key=lambda n: (n != "train/loss", n))):
        at, values = present(steps, columns[name])
        if len(values) == 0:
            continue
        drawn.append(values)
        if name.startswith("train/"):
            draw_train_series(axis, at, values, name, "tab:blue")
        elif name.endswith("_ema"):  # hollow diamonds: the plain network's points stay visible where they coincide
            colour = ROW_COLOURS[number % len(ROW_COLOURS)]
            axis.plot(
                at, values, "D-", color=colour, markerfacecolor="none", markersize=7, label=f"{name} (EMA weights)"
            )
        else:
            axis.plot(at, values, "o-", color=ROW_COLOURS[number % len(ROW_COLOURS)], markersize=4, label=name)
    if spans_a_decade(drawn):
        axis.set_yscale("log")
        axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # 0.3, not 3 x 10^-1
        axis.yaxis.set_minor_formatter(
            FuncFormatter(lambda value, _: f"{value:g}" if f"{value:.0e}"[0] in "235" else "")
        )
    axis.set_title("loss" + (" (log scale)" if axis.get_yscale() == "log" else ""))
    axis.set_xlabel("training step")
    axis.set_ylabel("loss")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(True, which="both", alpha=0.3)
    if drawn:
        axis.legend(fontsize=8, loc="best")
    else:
        axis.text(0.5, 0.5, "no loss logged yet", ha="center", va="center", transform=axis.transAxes)


def small_panel_title(name: str) -> tuple:
    """(title, y label) of a small panel: the learning rate and validation measures said as such."""
    if name.startswith("lr-"):
        return f"learning rate ({name[3:]})", "learning rate"
    if name.startswith("val/"):
        return f"{name} (validation)", name[4:]
    return name, name.split("/")[-1]


def draw_small_panel(axis, steps: np.ndarray, values: np.ndarray, name: str) -> None:
    """One quantity on its own axes: training terms raw + smoothed, the rest as points joined by lines."""
    at, kept = present(steps, values)
    if name.startswith("train/"):
        draw_train_series(axis, at, kept, name, "tab:blue")
    else:
        axis.plot(at, kept, "o-" if len(kept) <= 50 else "-", color="tab:green", markersize=3)
    title, ylabel = small_panel_title(name)
    axis.set_title(title, fontsize=10)
    axis.set_xlabel("training step", fontsize=8)
    axis.set_ylabel(ylabel, fontsize=8)
    axis.tick_params(labelsize=8)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(True, alpha=0.3)
    if name.startswith("lr-"):
        axis.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))


def curve_panels(columns: dict) -> list:
    """The quantities that get their own axes: every logged column but the losses, the epoch, and counters that
    stayed at zero (skipped steps)."""
    names = []
    for name, values in columns.items():
        finite = values[np.isfinite(values)]
        if is_loss(name) or name == "epoch" or len(finite) == 0:
            continue
        if "skipped" in name and not finite.any():
            continue
        names.append(name)
    return sorted(names, key=lambda n: (not n.startswith("val/"), not n.startswith("lr-"), n))


def write_training_curves(path, steps: np.ndarray, columns: dict, title: str) -> Path:
    """Draw the curves of a run's logged metrics into `path` (a PNG, replaced atomically: this run's own chart).

    steps: (R,) the step of each logged row; columns: {name: (R,) float, NaN where the row lacks it}."""
    steps = np.asarray(steps, dtype=np.float64)
    columns = {name: np.asarray(values, dtype=np.float64) for name, values in columns.items()}
    assert all(values.shape == steps.shape for values in columns.values()), "one value (or NaN) per row and column"
    small = curve_panels(columns)
    rows = math.ceil(len(small) / SMALL_PANELS_PER_ROW)
    figure = Figure(figsize=(CURVE_WIDTH, 4.2 + 2.9 * rows), layout="constrained")
    grid = figure.add_gridspec(1 + rows, SMALL_PANELS_PER_ROW, height_ratios=[1.5] + [1.0] * rows)
    draw_loss_panel(figure.add_subplot(grid[0, :]), steps, columns)
    for index, name in enumerate(small):
        row, column = divmod(index, SMALL_PANELS_PER_ROW)
        draw_small_panel(figure.add_subplot(grid[1 + row, column]), steps, columns[name], name)
    figure.suptitle(title, fontsize=12)
    return save_replacing(figure, Path(path))


def save_replacing(figure, path: Path) -> Path:
    """Save a figure as PNG through a temporary file renamed over `path` (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    try:
        figure.savefig(temporary, format="png", dpi=100)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


# ---- evaluation metrics ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """One row's value of a measure: mean, interval half width (None with one replication), the replications."""

    row: str
    mean: float
    half_width: Optional[float]
    values: tuple
    reference: bool = False


@dataclass(frozen=True)
class MetricPanel:
    """One measure: its name, its direction mark and words ('↓', 'lower is better'), each row's estimate."""

    name: str
    arrow: str
    direction: str
    estimates: tuple


def significant_digits(means: list) -> int:
    """Digits that tell the rows' means apart: 3, more when they differ only further down (at most 6)."""
    finite = [abs(m) for m in means if math.isfinite(m)]
    spread = max(means) - min(means) if len(finite) == len(means) and means else 0.0
    if spread <= 0 or not finite or max(finite) == 0:
        return 3
    return int(min(6, max(3, math.ceil(math.log10(max(finite) / spread)) + 2)))


def draw_metric_panel(axis, panel: MetricPanel) -> None:
    """Each row as a point with its interval (horizontal), its replications as ticks; the reference grey."""
    digits = significant_digits([estimate.mean for estimate in panel.estimates])
    labels = []
    for position, estimate in enumerate(panel.estimates):
        colour = REFERENCE_COLOUR if estimate.reference else ROW_COLOURS[position % len(ROW_COLOURS)]
        y = len(panel.estimates) - 1 - position  # the first row on top
        if len(estimate.values) > 1:
            axis.plot(estimate.values, [y] * len(estimate.values), "|", color=colour, alpha=0.6, markersize=10)
        error = None if estimate.half_width is None else [[estimate.half_width], [estimate.half_width]]
        axis.errorbar([estimate.mean], [y], xerr=error, fmt="o", color=colour, capsize=5, markersize=7)
        shown = f"{estimate.mean:.{digits}g}" + ("" if estimate.half_width is None else f" ± {estimate.half_width:.2g}")
        axis.annotate(shown, (estimate.mean, y), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8)
        labels.append(estimate.row)
    axis.set_yticks(range(len(labels)), list(reversed(labels)), fontsize=8)
    axis.set_ylim(-0.7, len(labels) - 0.3)
    axis.set_title(f"{panel.name} {panel.arrow}\n{panel.direction}", fontsize=10)
    axis.tick_params(axis="x", labelsize=8)
    axis.xaxis.set_major_locator(MaxNLocator(nbins=5))
    axis.ticklabel_format(axis="x", useOffset=False)  # 1.3825, not 0.0005 + 1.382
    axis.grid(True, axis="x", alpha=0.3)
    axis.margins(x=0.2)


def write_metrics_chart(path, panels: Sequence[MetricPanel], title: str, note: str, columns: int = 3) -> Path:
    """One panel per measure into a new PNG at `path` (never over an existing file: FileExistsError)."""
    assert panels, "a chart needs at least one measure"
    rows_per_panel = max(len(panel.estimates) for panel in panels)
    columns = min(columns, len(panels))
    rows = math.ceil(len(panels) / columns)
    height = 1.0 + rows * (1.3 + 0.45 * rows_per_panel)
    figure = Figure(figsize=(4.6 * columns, height), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for axis, panel in zip(axes.flat, panels):
        draw_metric_panel(axis, panel)
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    figure.suptitle(f"{title}\n{note}", fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as handle:
        figure.savefig(handle, format="png", dpi=100)
    return path
