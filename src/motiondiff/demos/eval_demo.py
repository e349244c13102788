"""`make eval-demo`: the README's results table from one command, on the embedded data.

Each step is an ordinary command (printed and written to results.md) run in its own process:
train the evaluator, train each text-to-motion variant, train the dance model, evaluate them all,
then collect their metrics.json into one Markdown file.
"""

import json
import logging
import platform
from pathlib import Path

import torch
from omegaconf import DictConfig

from motiondiff.core.errors import UserError
from motiondiff.demos.steps import command, run_step
from motiondiff.evaluation.report import markdown_table

log = logging.getLogger(__name__)


def execute(argv: list, record: list) -> float:
    """Run one step, stop the demo with its name if it fails; return its wall time in seconds."""
    shown, seconds, status = run_step(argv)
    if status != 0:
        raise UserError(f"the step `{shown}` failed (see its output above); results so far are in its run directory.")
    record.append((shown, seconds))
    return seconds


def plan(cfg: DictConfig, root: Path) -> list:
    """(name, train command, evaluate command) for every model of the demo."""
    evaluate = [f"replications={cfg.replications}", *cfg.evaluate_overrides]
    steps = [
        (
            v,
            command(
                "train",
                "experiment=text2motion",
                f"network={v}",
                f"trainer.max_steps={cfg.text_steps}",
                f"hydra.run.dir={root / v}",
            ),
            command(
                "evaluate",
                f"run_dir={root / v}",
                f"evaluator={root / 'evaluator'}",
                *evaluate,
                f"hydra.run.dir={root / v / 'evaluation'}",
            ),
        )
        for v in cfg.variants
    ]
    if cfg.dance:
        steps.append(
            (
                "dance (punet)",
                command("train", "experiment=dance2d", f"hydra.run.dir={root / 'dance'}"),
                command(
                    "evaluate",
                    f"run_dir={root / 'dance'}",
                    f"replications={cfg.replications}",
                    f"hydra.run.dir={root / 'dance' / 'evaluation'}",
                ),
            )
        )
    return steps


def run(cfg: DictConfig) -> Path:
    """Train and evaluate every model; write <out>/results.md; return its path."""
    root = Path(cfg.paths.output_dir)
    record: list = []
    execute(
        command(
            "train",
            "experiment=evaluator",
            f"trainer.max_steps={cfg.evaluator_steps}",
            f"hydra.run.dir={root / 'evaluator'}",
        ),
        record,
    )
    for _, train, evaluate in plan(cfg, root):
        execute(train, record)
        execute(evaluate, record)
    text_rows, dance_rows = {}, {}
    for name, _, evaluate in plan(cfg, root):
        results = json.loads((Path(evaluate[-1].split("=", 1)[1]) / "metrics.json").read_text())["results"]
        target = dance_rows if name.startswith("dance") else text_rows
        for row, values in results.items():
            label = name if row == "generated" else f"{row} data"
            target.setdefault(label, values)
    path = root / "results.md"
    path.write_text(results_markdown(cfg, text_rows, dance_rows, record))
    print(path.read_text())
    return path


def results_markdown(cfg, text_rows: dict, dance_rows: dict, record: list) -> str:
    """The results file: tables, then the machine and every command with its wall time."""
    cpu = f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
    parts = [
        f"# eval-demo results\n\nMeasured on {cpu}, {'CUDA' if torch.cuda.is_available() else 'no GPU'}; "
        f"text variants trained {cfg.text_steps} steps, evaluator {cfg.evaluator_steps} steps. "
        f"Mean ± 95% interval (Student t) over {cfg.replications} replications.\n"
    ]
    if text_rows:
        parts.append(
            "## Text-to-motion (procedural test split)\n\nThe `real data` row is the evaluator on real test "
            "pairs: its R@k is the evaluator's own retrieval quality, its FD the real-vs-real floor.\n\n"
            + markdown_table(text_rows)
            + "\n"
        )
    if dance_rows:
        parts.append("## Single dance\n\n" + markdown_table(dance_rows) + "\n")
    parts.append(
        "## Commands\n\n" + "\n".join(f"- `{shown}` ({seconds / 60:.1f} min)" for shown, seconds in record) + "\n"
    )
    return "\n".join(parts)
