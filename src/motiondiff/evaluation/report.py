"""Evaluation tables that say what they mean: each measure with the way it is better, the reference row named,
a two-line reading, and an interval only where there are replications to make one.

The terminal gets the key columns that fit in PRINT_WIDTH characters; metrics.md (and metrics.json, metrics.csv)
get every column, what each measures, the settings and, for the published protocol, the papers' layout.
"""

import csv
import json
import math
import textwrap
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Callable, Optional

from motiondiff.core.errors import refuse_existing_outputs
from motiondiff.core.tables import markdown_table as table_of
from motiondiff.metrics.intervals import format_interval, mean_and_interval
from motiondiff.metrics.reference_protocol import normal_interval
from motiondiff.render.plots import Estimate, MetricPanel, write_metrics_chart

PRINT_WIDTH = 100  # characters of the table printed on the terminal


class Better(Enum):
    """Which way a measure is better: its arrow in the headers and its words in the legend."""

    LOWER = ("↓", "lower is better")
    HIGHER = ("↑", "higher is better")
    REFERENCE = ("→", "closer to the reference row is better")
    ONE = ("→1", "closer to 1 is better")
    CONTEXT = ("(context)", "not a score: a yardstick")
    UNSTATED = ("?", "no direction recorded for this measure")

    @property
    def arrow(self) -> str:
        """The mark after the column's name."""
        return self.value[0]

    @property
    def words(self) -> str:
        """What the mark means."""
        return self.value[1]


@dataclass(frozen=True)
class Metric:
    """One measure as the tables show it: its name in the results, which way is better, and what it measures."""

    name: str
    better: Better
    meaning: str

    @property
    def header(self) -> str:
        """The column header: the name and its arrow."""
        return f"{self.name} {self.better.arrow}"


@dataclass(frozen=True)
class Layout:
    """How one protocol's table reads: its measures, its reference row, the printed columns and the reading."""

    protocol: str  # settings["protocol"] of the evaluations it reads
    metrics: tuple  # every Metric the protocol reports, in the table's order
    reference: str  # the reference row's key in the results ("real", "validation")
    reference_label: str  # the reference row's label in the tables
    printed: tuple  # names of the measures for the terminal, most important first
    good: str  # the reading's first line: what a good generator shows
    reference_means: str  # its second line: what the reference row is

    def metric(self, name: str) -> Metric:
        """The description of `name` (another protocol's when this one has none; UNSTATED when none has)."""
        for metric in (*self.metrics, *(m for layout in LAYOUTS.values() for m in layout.metrics)):
            if metric.name == name:
                return metric
        return Metric(name, Better.UNSTATED, "not described")

    def row_label(self, row: str) -> str:
        """The label of a row of the results: the reference row named as such, the others as they are."""
        return self.reference_label if row == self.reference else row


_R_AT = [
    Metric(f"R@{k}", Better.HIGHER, f"share of captions ranking their own motion in the top {k} of its batch")
    for k in (1, 2, 3)
]
_PRDC = [
    Metric("precision", Better.HIGHER, "share of generated motions inside the real motions' k-NN balls"),
    Metric("recall", Better.HIGHER, "share of real motions inside the generated motions' k-NN balls"),
    Metric("density", Better.REFERENCE, "k-NN balls of real motions holding each generated one / k (≈1 for real)"),
    Metric("coverage", Better.HIGHER, "share of real motions with a generated one inside their k-NN ball"),
]
_MM_DIST = Metric("MM-Dist", Better.LOWER, "mean distance of each caption to its motion (evaluator embeddings)")
_TEXT_DIVERSITY = "mean distance between random pairs of the row's motions"
_MULTIMODALITY = "mean distance between generations for one caption (the papers' ↑; real data has none)"

OURS = Layout(
    protocol="ours",
    metrics=(
        Metric("FD", Better.LOWER, "Fréchet distance of the row's motion embeddings to the reference half's"),
        *_PRDC,
        *_R_AT,
        _MM_DIST,
        Metric("TM-score", Better.HIGHER, "mean similarity of each motion with its caption"),
        Metric("diversity", Better.REFERENCE, _TEXT_DIVERSITY),
        Metric("multimodality", Better.HIGHER, _MULTIMODALITY),
    ),
    reference="real",
    reference_label="real (test split, reference)",
    printed=("FD", "R@3", "TM-score", "diversity", "recall", "coverage", "MM-Dist", "multimodality"),
    good="Good: FD, MM-Dist low; R@k, TM-score, precision/recall/coverage high; diversity near the reference.",
    reference_means="Reference: real test motions measured the same way; a perfect generator scores about the same.",
)
LAB = Layout(
    protocol="lab",
    metrics=(
        Metric("FD", Better.LOWER, "Fréchet distance of the row's motion embeddings to the same items' real ones"),
        Metric("TMR-score", Better.HIGHER, "max(mean cosine of each motion with its caption, 0)"),
        *_PRDC,
        *_R_AT,
    ),
    reference="real",
    reference_label="real (same items, reference)",
    printed=("FD", "R@3", "TMR-score", "coverage", "recall", "precision"),
    good="Good: FD low; R@k, TMR-score, precision, recall, coverage high; density near 1.",
    reference_means="Reference: the real motions against themselves (FD 0, precision 1); R@k: the evaluator's own.",
)
GUO = Layout(
    protocol="guo",
    metrics=(
        *_R_AT,
        Metric("FID", Better.LOWER, "Fréchet distance of the row's motion embeddings to a pass over the real ones"),
        _MM_DIST,
        Metric("Diversity", Better.REFERENCE, _TEXT_DIVERSITY),
        Metric("MultiModality", Better.HIGHER, _MULTIMODALITY),
    ),
    reference="real",
    reference_label="real (test split, reference)",
    printed=("R@3", "FID", "MM-Dist", "Diversity", "MultiModality", "R@1", "R@2"),
    good="Good: R-precision high, FID and MM-Dist low, Diversity near the real motion's, MultiModality high.",
    reference_means="Reference: real test motions under the same protocol (FID > 0: against a second real pass).",
)
SINGLE_DANCE = Layout(
    protocol="single_dance",
    metrics=(
        Metric("coverage", Better.HIGHER, "share of the dance's 1 s windows a clip reproduces, mean over clips"),
        Metric("pooled_coverage", Better.HIGHER, "share of the dance's 1 s windows any clip reproduces"),
        Metric(
            "replay_coverage",
            Better.CONTEXT,
            "coverage of the dance's own windows replayed at random, as long as the row's clips (one seed)",
        ),
        Metric("local_diversity", Better.REFERENCE, "distance of 0.5 s sample windows to the nearest dance window"),
        Metric("global_diversity", Better.REFERENCE, "cost of rebuilding a sample from >= 1 s pieces of the dance"),
        Metric("inter_diversity", Better.REFERENCE, "distance between different samples at the same frames"),
        Metric("intra_diversity", Better.REFERENCE, "distance between windows of one sample (0: frozen or looping)"),
        Metric("bone_length_error", Better.LOWER, "mean relative error of bone lengths against the dance's"),
        Metric("jitter_ratio", Better.ONE, "acceleration of the samples / of the dance (1: as smooth)"),
        Metric("frozen_share", Better.LOWER, "share of 1 s sample windows at under half the dance's slowest speed"),
        Metric("foot_skating_ratio", Better.LOWER, "foot speed in contact, samples / dance (3D; 1.5 at most)"),
        Metric("nn_distance_to_training", Better.REFERENCE, "distance of window-long pieces to the nearest dance one"),
        Metric("heldout_nn_distance", Better.CONTEXT, "the same for the held-out end of the dance: the copy yardstick"),
        Metric("copy_ratio", Better.ONE, "nn_distance_to_training / heldout_nn_distance (< 0.5: copies)"),
        Metric("copies_training", Better.LOWER, "share of replications whose samples copy the dance"),
        Metric("ganimator_coverage", Better.HIGHER, "GANimator's looser coverage: 3D rotations, 2D calibrated"),
        Metric("ganimator_local_diversity", Better.REFERENCE, "3D: local_diversity in GANimator's rotation units"),
        Metric("ganimator_global_diversity", Better.REFERENCE, "3D: global_diversity in GANimator's rotation units"),
    ),
    reference="validation",
    reference_label="validation (reference)",
    printed=(
        "coverage",
        "copy_ratio",
        "copies_training",
        "jitter_ratio",
        "frozen_share",
        "bone_length_error",
        "foot_skating_ratio",
        "replay_coverage",
        "pooled_coverage",
        "inter_diversity",
        "local_diversity",
        "ganimator_coverage",
    ),
    good="Good: coverage high, copy_ratio near 1, bone_length_error low, jitter_ratio near 1, frozen_share 0.",
    reference_means="Reference: the dance's held-out end as one clip: copy_ratio 1 by definition, coverage low.",
)
LAYOUTS = {layout.protocol: layout for layout in (OURS, LAB, GUO, SINGLE_DANCE)}


def layout_of(settings: dict, results: dict) -> Layout:
    """The layout of an evaluation: its settings' protocol, else single_dance for a validation row, else ours."""
    if settings.get("protocol") in LAYOUTS:
        return LAYOUTS[settings["protocol"]]
    return SINGLE_DANCE if SINGLE_DANCE.reference in results else OURS


def summarize(rows: dict) -> dict:
    """{row: [per-replication {metric: value}]} -> {row: {metric: {mean, interval, normal_interval, values}}}.

    `interval` is the Student-t 95% half width; `normal_interval` the papers' 1.96 sigma / sqrt(n); both None
    with one replication."""
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


def metrics_of(summary: dict) -> list:
    """Every row's metrics, in order of first appearance."""
    return list(dict.fromkeys(metric for values in summary.values() for metric in values))


def markdown_table(summary: dict, digits: int = 3, layout: Optional[Layout] = None, metrics=None, align=False) -> str:
    """A Markdown table: one line per row (the reference row labelled), one column per metric, `mean ± half width`."""
    layout = layout or layout_of({}, summary)
    metrics = metrics_of(summary) if metrics is None else metrics
    return table_of(
        ["", *metric_header(metrics, layout)],
        [[layout.row_label(row), *metric_cells(values, metrics, digits)] for row, values in summary.items()],
        align=align,
    )


def metric_header(metrics: list, layout: Optional[Layout] = None) -> list:
    """Each metric's name with the arrow saying which way is better."""
    return [(layout or OURS).metric(metric).header for metric in metrics]


def metric_cells(values: dict, metrics: list, digits: int = 3) -> list:
    """'mean ± interval' of each metric in `values` ({metric: {mean, interval}}), '' where absent."""
    return [
        format_interval(values[m]["mean"], nan_if_none(values[m]["interval"]), digits) if m in values else ""
        for m in metrics
    ]


def nan_if_none(value) -> float:
    """An interval of None (one replication) as NaN, which format_interval leaves out."""
    return float("nan") if value is None else float(value)


def fitting_columns(layout: Layout, present: list, table: Callable, width: int = PRINT_WIDTH) -> list:
    """The layout's printed measures among `present`, most important first, up to the first that makes table(columns)
    wider than `width` (the first is always kept); in the table's (present) order."""
    chosen = []
    for name in [m for m in layout.printed if m in present] or present[:1]:
        if chosen and table_width(table(ordered(chosen + [name], present))) > width:
            break
        chosen.append(name)
    return ordered(chosen, present)


def ordered(names: list, order: list) -> list:
    """`names` in the order they have in `order`."""
    return [name for name in order if name in names]


def table_width(text: str) -> int:
    """The widest line of a text."""
    return max(len(line) for line in text.splitlines())


def replication_counts(summary: dict) -> set:
    """How many replications the rows' values come from (one count per row and metric)."""
    return {len(entry["values"]) for values in summary.values() for entry in values.values()}


def interval_note(counts: set, paper: bool = False) -> str:
    """What the ± means for these replication counts; with one replication, that there is no interval and why."""
    one = "One replication: no interval; use replications>=2 (3 or more for a useful one)."
    if counts <= {1}:
        return one
    kind = "1.96 sigma / sqrt(n) (population sigma)" if paper else "95% interval (Student t)"
    over = " or ".join(str(n) for n in sorted(counts - {1}))
    note = f"Mean ± {kind} over {over} replications{', as the papers report it' if paper else ''}."
    return f"{note} Values without ±: one replication." if 1 in counts else note


def legend(metrics: list, layout: Layout) -> str:
    """The arrows of these columns, each with what it means."""
    used = dict.fromkeys(layout.metric(m).better for m in metrics)
    return " · ".join(f"{better.arrow} {better.words}" for better in Better if better in used)


def reading(metrics: list, layout: Layout, note: str, markdown: bool = False) -> str:
    """Under a table: the legend, what is good, what the reference row is, and the interval note.

    Lines of at most PRINT_WIDTH characters for the terminal; a list for a Markdown file."""
    lines = [line for line in (legend(metrics, layout), layout.good, layout.reference_means, note) if line]
    if markdown:
        return "\n".join(f"- {line}" for line in lines)
    return "\n".join(textwrap.fill(line, PRINT_WIDTH, subsequent_indent="  ") for line in lines)


def columns_table(metrics: list, layout: Layout) -> str:
    """Every column: its header, which way is better and what it measures."""
    described = [layout.metric(m) for m in metrics]
    return table_of(
        ["column", "better", "what it measures"], [[m.header, m.better.words, m.meaning] for m in described]
    )


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
PAPER_REFERENCE = "Real motion (reference)"


def paper_cell(entry: Optional[dict]) -> str:
    """'0.511±.003' as the papers print it ('-' when absent; the value alone with one replication)."""
    if entry is None:
        return "-"
    interval = entry.get("normal_interval")
    if interval is None:
        return f"{entry['mean']:.3f}"
    width = f"{interval:.3f}"
    return f"{entry['mean']:.3f}±{width[1:] if width.startswith('0.') else width}"


def paper_table(summary: dict, label: str, columns=PAPER_COLUMNS, align: bool = False) -> str:
    """The published protocol's rows in the papers' layout; the real row is the reference, the other one `label`."""
    rows = [
        [PAPER_REFERENCE if row == GUO.reference else label, *[paper_cell(values.get(m)) for m, _ in columns]]
        for row, values in summary.items()
    ]
    return table_of(["Methods", *[header for _, header in columns]], rows, align=align)


def printed_paper_table(summary: dict) -> tuple:
    """(the papers' layout with the key columns that fit the terminal, the metrics shown); the run is 'generated'."""
    present = [m for m, _ in PAPER_COLUMNS if any(m in values for values in summary.values())]

    def table(chosen: list) -> str:
        return paper_table(summary, "generated", [(m, GUO.metric(m).header) for m in chosen], align=True)

    chosen = fitting_columns(GUO, present, table)
    return table(chosen), chosen


def printed_table(summary: dict, layout: Layout) -> tuple:
    """(the key columns that fit the terminal, aligned, the metrics shown)."""
    present = metrics_of(summary)

    def table(chosen: list) -> str:
        return markdown_table(summary, layout=layout, metrics=chosen, align=True)

    chosen = fitting_columns(layout, present, table)
    return table(chosen), chosen


def more_columns_note(shown: list, every: list, path: Path) -> str:
    """Where the columns left off the terminal are, with what each measures."""
    left = len(every) - len(shown)
    more = f"{left} more column{'s' if left != 1 else ''} and what" if left else "What"
    return f"{more} every column measures: {path}"


REPORT_FILES = ("metrics.json", "metrics.csv", "metrics.md", "paper_table.md", "index.html", "metrics.png")


def refuse_existing_report(out_dir: Path) -> None:
    """UserError if out_dir already holds an evaluation (evaluations never overwrite)."""
    refuse_existing_outputs(out_dir, REPORT_FILES, "evaluations")


def write_report(out_dir: Path, settings: dict, summary: dict, paper_label=None) -> str:
    """Write metrics.json (settings, every value, the legend), metrics.csv and metrics.md; return the printed text.

    With `paper_label` (the published protocol) also paper_table.md, the papers' layout with that row label."""
    refuse_existing_report(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    layout, paper = layout_of(settings, summary), paper_label is not None
    every, counts = metrics_of(summary), replication_counts(summary)
    table = markdown_table(summary, layout=layout)
    full = f"{table}\n\n{reading(every, layout, interval_note(counts), markdown=True)}"
    if paper:
        paper_text = (
            f"{paper_table(summary, paper_label)}\n\n{reading(every, layout, interval_note(counts, True), True)}"
        )
        (out_dir / "paper_table.md").write_text(f"{paper_text}\n")
        full = f"{paper_text}\n\nThe same measures as this project reports them. {interval_note(counts)}\n\n{table}"
    printed, shown = printed_paper_table(summary) if paper else printed_table(summary, layout)
    more = more_columns_note(shown, every, out_dir / "metrics.md")
    write_json(out_dir / "metrics.json", settings, summary, layout, every)
    write_csv(out_dir / "metrics.csv", summary)
    write_chart(out_dir / "metrics.png", settings, summary, layout, interval_note(counts))
    settings_lines = "\n".join(f"- {key}: {value}" for key, value in settings.items())
    (out_dir / "metrics.md").write_text(
        f"{full}\n\n## Columns\n\n{columns_table(every, layout)}\n\n## Settings\n\n{settings_lines}\n"
    )
    return f"{printed}\n\n{reading(shown, layout, interval_note(counts, paper))}\n{more}"


def write_chart(path: Path, settings: dict, summary: dict, layout: Layout, note: str) -> Path:
    """metrics.png: a panel per measure with each row's mean, interval and replications, its direction in the title."""
    panels = [
        MetricPanel(
            name=metric.name,
            arrow=metric.better.arrow,
            direction=metric.better.words,
            estimates=tuple(
                Estimate(
                    layout.row_label(row),
                    values[metric.name]["mean"],
                    values[metric.name]["interval"],
                    tuple(values[metric.name]["values"]),
                    reference=row == layout.reference,
                )
                for row, values in summary.items()
                if metric.name in values
            ),
        )
        for metric in map(layout.metric, metrics_of(summary))
    ]
    run = Path(str(settings.get("run_dir", "")))
    title = f"Evaluation of {'/'.join(run.parts[-2:])}" if run.parts else "Evaluation"
    return write_metrics_chart(path, panels, title, f"{note} Ticks: the replications; grey: the reference row.")


def write_json(path: Path, settings: dict, summary: dict, layout: Layout, metrics: list) -> None:
    """metrics.json: the settings, every value, and the legend (each column's direction and meaning, the rows)."""
    columns = {
        m.name: {"better": m.better.name.lower(), "arrow": m.better.arrow, "meaning": m.meaning}
        for m in map(layout.metric, metrics)
    }
    legend_entry = {"reference_row": layout.reference, "rows": {row: layout.row_label(row) for row in summary}}
    legend_entry.update(columns=columns, reading=[layout.good, layout.reference_means])
    path.write_text(json.dumps({"settings": settings, "results": summary, "legend": legend_entry}, indent=2))


def write_csv(path: Path, summary: dict) -> None:
    """metrics.csv: one line per row and metric with its mean, Student-t half width and values."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "metric", "mean", "ci95_half_width", "values"])
        for row, values in summary.items():
            for metric, entry in values.items():
                writer.writerow(
                    [row, metric, entry["mean"], entry["interval"], " ".join(f"{v:.6g}" for v in entry["values"])]
                )
