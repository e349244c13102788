"""`make sweep`: a small sweep end to end, each step an ordinary command run in its own process.

Train a small evaluator, train the text-to-motion variants x seeds as one multirun (`train -m`),
evaluate the whole sweep (`evaluate sweep_dir=...`), compare the runs (`compare sweep_dir=...`), and
print where the comparison is (<out>/index.html links its page and the evaluations'). A failed job or
evaluation does not stop the demo: it is listed in the sweep summary and the comparison, and the demo
exits non-zero at the end.
"""

import logging
from pathlib import Path

from omegaconf import DictConfig

from motiondiff.core.errors import UserError
from motiondiff.demos.steps import command, run_step
from motiondiff.report.page import write_report
from motiondiff.sweeps.jobs import natural_key

log = logging.getLogger(__name__)


def execute(argv: list, record: list) -> int:
    """Run one step, note its command, wall time and exit status in record; return the exit status."""
    record.append(run_step(argv))
    return record[-1][2]


def sweep_command(cfg: DictConfig, sweep_dir: Path) -> list:
    """The training multirun: every variant x seed, shrunk to the demo's budget."""
    launcher = [] if cfg.launcher == "basic" else [f"hydra/launcher={cfg.launcher}"]
    return command(
        "train",
        "-m",
        *launcher,
        "experiment=text2motion",
        f"network={','.join(cfg.variants)}",
        f"seed={','.join(str(s) for s in cfg.seeds)}",
        *cfg.train_overrides,
        f"hydra.sweep.dir={sweep_dir}",
    )


def demo_links(sweep_dir: Path, comparison: Path) -> list:
    """(label, index.html) of the comparison and of the sweep's newest evaluations."""
    evaluations = sorted(sweep_dir.glob("evaluations/*/index.html"), key=natural_key)
    links = [("comparison of the runs, with each run's pages", comparison / "index.html")]
    return links + [("evaluations of the sweep", evaluations[-1])] if evaluations else links


def run(cfg: DictConfig) -> Path:
    """Train, sweep, evaluate, compare; write <out>/sweep_demo.md; return the comparison's path."""
    root = Path(cfg.paths.output_dir)
    evaluator, sweep_dir = root / "evaluator", root / "sweep"
    record: list = []
    if (
        execute(
            command("train", "experiment=evaluator", *cfg.evaluator_overrides, f"hydra.run.dir={evaluator}"), record
        )
        != 0
    ):
        raise UserError(f"training the evaluator failed (see its output above and '{evaluator}').")
    execute(sweep_command(cfg, sweep_dir), record)  # failed jobs are in sweep_summary.md; the others go on
    execute(command("evaluate", f"sweep_dir={sweep_dir}", f"evaluator={evaluator}", *cfg.evaluate_overrides), record)
    execute(command("compare", f"sweep_dir={sweep_dir}"), record)
    comparisons = sorted(sweep_dir.glob("comparisons/*/comparison.md"), key=natural_key)
    if not comparisons:
        raise UserError(f"the comparison was not written (see the output above); the sweep is in '{sweep_dir}'.")
    steps = "\n".join(f"- `{shown}`: {seconds / 60:.1f} min, exit status {status}" for shown, seconds, status in record)
    (root / "sweep_demo.md").write_text(f"# make sweep\n\nComparison: {comparisons[-1]}\n\n## Commands\n\n{steps}\n")
    page = write_report(root, links=demo_links(sweep_dir, comparisons[-1].parent))
    print(f"\n{steps}\n\nSweep summary: {sweep_dir / 'sweep_summary.md'}\nComparison: {comparisons[-1]}\nPage: {page}")
    failed = [shown for shown, _, status in record if status != 0]
    if failed:
        raise UserError(
            f"{len(failed)} step(s) reported failures (listed in the sweep summary and the comparison): {failed[0]}"
        )
    return comparisons[-1]
