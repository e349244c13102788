"""Evaluation tables say what they mean: every column with its direction, the reference row named, a reading
under the table, no interval claimed from one replication, a printed table that fits a terminal, and the
full table (with what each column measures) in the files. Synthetic results: no model is trained here."""

import json
import re

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from motiondiff.core.tables import markdown_table
from motiondiff.evaluation import guo_protocol, lab_protocol, text_motion
from motiondiff.evaluation.compare import markdown_comparison, printed_comparison
from motiondiff.evaluation.report import (
    LAYOUTS,
    PRINT_WIDTH,
    Better,
    layout_of,
    summarize,
    write_report,
)
from motiondiff.metrics.distribution import gaussian_statistics
from motiondiff.metrics.single_motion import REPORT_KEYS

EXTRA = {"ours": ["multimodality"], "guo": ["MultiModality"]}  # generated-only measures
ARROWS = tuple(better.arrow for better in Better if better is not Better.UNSTATED)


def reported_metrics(protocol: str) -> list:
    """The measures each protocol's own code reports, computed on small random embeddings."""
    gen = torch.Generator().manual_seed(0)
    real, motion, text = (torch.randn(64, 8, generator=gen) for _ in range(3))
    if protocol == "ours":
        cfg = OmegaConf.create({"prdc_k": 3, "r_precision_batch": 32, "diversity_pairs": 20, "seed": 0})
        return list(text_motion.measure(real, motion, text, cfg, lambda cosine: cosine)) + EXTRA["ours"]
    if protocol == "lab":
        cfg = OmegaConf.create({"batch": 32, "prdc_k": 3, "prdc_splits": 2})
        return list(lab_protocol.measures(real, motion, text, cfg))
    if protocol == "guo":
        cfg = OmegaConf.create({"diversity_pairs": 20})
        values = guo_protocol.measures(text, motion, gaussian_statistics(real), cfg, np.random.default_rng(0))
        return list(values) + EXTRA["guo"]
    return list(REPORT_KEYS)


def results(protocol: str, replications: int, scale: float = 1.0) -> dict:
    """Per-replication rows of that protocol's measures, the reference row first (FD-like values wide)."""
    rng, layout = np.random.default_rng(1), LAYOUTS[protocol]
    metrics = reported_metrics(protocol)
    rows = {}
    for row in (layout.reference, "generated"):
        names = [m for m in metrics if row == "generated" or m not in EXTRA.get(protocol, [])]
        wide = {"FD": 100.0, "FID": 10.0}
        rows[row] = [
            {m: float(rng.uniform(0, 1) * wide.get(m, 1.0) * scale) for m in names} for _ in range(replications)
        ]
    return rows


def evaluate(tmp_path, protocol: str, replications: int, scale: float = 1.0) -> str:
    """The printed text of write_report for synthetic results (the published protocol with its paper table)."""
    label = "text_motion-adaln/2026-01-01_00-00-00-000000" if protocol == "guo" else None
    summary = summarize(results(protocol, replications, scale))
    return write_report(tmp_path, {"protocol": protocol}, summary, label)


def table_lines(text: str) -> list:
    """The table's lines of a printed text (those starting with '|')."""
    return [line for line in text.splitlines() if line.startswith("|")]


def headers(text: str) -> list:
    """The column headers of the first table in a text, without the row-label column."""
    return [cell.strip() for cell in table_lines(text)[0].strip("|").split("|")][1:]


@pytest.mark.parametrize("protocol", sorted(LAYOUTS))
def test_every_measure_a_protocol_reports_is_described_with_its_direction(protocol):
    layout = LAYOUTS[protocol]
    described = {metric.name: metric for metric in layout.metrics}
    for name in reported_metrics(protocol):
        assert name in described, f"{protocol} reports {name} without a description"
        assert described[name].better is not Better.UNSTATED and described[name].meaning
        assert described[name].header == f"{name} {described[name].better.arrow}"
    assert set(layout.printed) <= set(described) and layout_of({"protocol": protocol}, {}) is layout


@pytest.mark.parametrize("protocol", sorted(LAYOUTS))
@pytest.mark.parametrize("replications", [1, 3])
def test_the_printed_table_carries_its_legend_and_names_the_reference_row(tmp_path, protocol, replications):
    text = evaluate(tmp_path, protocol, replications)
    layout = LAYOUTS[protocol]
    shown = headers(text)
    assert shown and all(header.endswith(ARROWS) for header in shown), shown
    for arrow in {header.rsplit(" ", 1)[1] for header in shown}:
        better = next(b for b in Better if b.arrow == arrow)
        assert f"{arrow} {better.words}" in text
    reference = "Real motion (reference)" if protocol == "guo" else layout.reference_label
    assert "reference" in reference and table_lines(text)[2].startswith(f"| {reference} ")
    assert layout.good in text and layout.reference_means in text  # the two-line reading
    assert str(tmp_path / "metrics.md") in text.splitlines()[-1]


@pytest.mark.parametrize("protocol", sorted(LAYOUTS))
def test_one_replication_claims_no_interval_and_says_why(tmp_path, protocol):
    text = evaluate(tmp_path / "one", protocol, 1)
    for written in (text, (tmp_path / "one" / "metrics.md").read_text()):
        assert "±" not in "".join(table_lines(written)) and "95%" not in written and "1.96" not in written
        assert "One replication: no interval; use replications>=2" in written
    assert all(entry["interval"] is None for row in summarize(results(protocol, 1)).values() for entry in row.values())
    text = evaluate(tmp_path / "three", protocol, 3)
    assert "±" in "".join(table_lines(text)) and "over 3 replications" in text and "One replication" not in text


@pytest.mark.parametrize("protocol", sorted(LAYOUTS))
@pytest.mark.parametrize("scale", [1.0, 100.0])
def test_the_printed_table_fits_the_terminal_and_keeps_the_key_columns(tmp_path, protocol, scale):
    text = evaluate(tmp_path, protocol, 3, scale)
    assert all(len(line) <= PRINT_WIDTH for line in text.splitlines()[:-1])  # the last line names the file
    assert len({len(line) for line in table_lines(text)}) == 1  # columns aligned
    first = LAYOUTS[protocol].printed[0]
    assert any(header.startswith(f"{first} ") for header in headers(text))
    every = reported_metrics(protocol)
    assert len(headers(text)) < len(every) and f"{len(every) - len(headers(text))} more column" in text


@pytest.mark.parametrize("protocol", sorted(LAYOUTS))
def test_the_files_hold_the_full_table_with_every_column_explained(tmp_path, protocol):
    evaluate(tmp_path, protocol, 2)
    layout, every = LAYOUTS[protocol], reported_metrics(protocol)
    written = (tmp_path / "metrics.md").read_text()
    full = written.split("\n\n")[0] if protocol != "guo" else written.split("reports them.")[1]
    assert headers(full) == [layout.metric(m).header for m in every]
    assert f"| {layout.reference_label} |" in written and "## Columns" in written
    for metric in map(layout.metric, every):
        assert f"| {metric.header} | {metric.better.words} | {metric.meaning} |" in written
    legend = json.loads((tmp_path / "metrics.json").read_text())["legend"]
    assert list(legend["columns"]) == every and legend["reference_row"] == layout.reference
    assert legend["rows"][layout.reference] == layout.reference_label
    if protocol == "guo":
        paper = (tmp_path / "paper_table.md").read_text()
        assert "| Real motion (reference) |" in paper and "| text_motion-adaln/" in paper
        assert "1.96 sigma / sqrt(n)" in paper and "over 2 replications" in paper


def test_the_comparison_printed_for_the_terminal_is_narrow_and_labelled():
    layout = LAYOUTS["single_dance"]
    summary = summarize(results("single_dance", 2))
    rows = [
        {"run": str(n), "overrides": [f"network.base_channels={8 * (n + 1)}"], "status": "evaluated"}
        | {"metrics": summary["generated"]}
        for n in range(3)
    ]
    rows.append({"run": "3", "overrides": ["network.base_channels=30"], "status": "training failed: " + "x" * 80})
    rows[-1]["metrics"] = {}
    references = {layout.reference_label: summary["validation"]}
    every = list(REPORT_KEYS)
    full = markdown_comparison(rows, references, ["network.base_channels"], every, 3, layout)
    printed, shown = printed_comparison(rows, references, ["network.base_channels"], every, 3, layout)
    assert headers(full)[2:] == [layout.metric(m).header for m in every] and "x" * 80 in full
    assert max(len(line) for line in printed.splitlines()) <= PRINT_WIDTH < max(len(line) for line in full.splitlines())
    assert shown[0] == "coverage" and headers(printed)[:2] == ["base_channels", "status"]
    assert f"| {layout.reference_label} " in printed and "| training failed " in printed


def test_aligned_markdown_pads_columns_and_the_default_is_unchanged():
    assert markdown_table(["a", "bb"], [["xyz", 1]]) == "| a | bb |\n|---|---|\n| xyz | 1 |"
    aligned = markdown_table(["a", "bb"], [["xyz", 1]], align=True)
    assert aligned == "| a   | bb |\n|-----|----|\n| xyz | 1  |"
    assert re.fullmatch(r"(\|[^\n]*\|\n?)+", aligned)


@pytest.mark.parametrize("replications", [1, 3])
def test_a_dance_evaluation_prints_its_copy_verdict_and_smoothness(tmp_path, replications):
    """The terminal keeps what decides a dance run (coverage, the copy check, jitter); yardsticks go to metrics.md."""
    shown = [header.rsplit(" ", 1)[0] for header in headers(evaluate(tmp_path, "single_dance", replications))]
    assert {"coverage", "copy_ratio", "copies_training", "jitter_ratio"} <= set(shown), shown
