"""make eval-demo: the plan of commands and the results file (the full run is `make eval-demo` itself)."""

from pathlib import Path

from conftest import compose_config
from motiondiff.demos.eval_demo import plan, results_markdown


def test_every_model_is_trained_and_evaluated_with_the_shared_evaluator(tmp_path):
    cfg = compose_config("eval_demo", tmp_path)
    steps = plan(cfg, tmp_path)
    assert [name for name, _, _ in steps] == ["incontext", "adaln", "cross_attention", "dance (punet)"]
    for name, train, evaluate in steps[:3]:
        assert f"network={name}" in train and f"trainer.max_steps={cfg.text_steps}" in train
        assert f"evaluator={tmp_path / 'evaluator'}" in evaluate and "replications=3" in evaluate
        assert Path(evaluate[-1].split("=", 1)[1]) == tmp_path / name / "evaluation"
    assert "experiment=dance2d" in steps[3][1] and not any(a.startswith("evaluator=") for a in steps[3][2])


def test_results_file_has_the_tables_and_the_commands(tmp_path):
    cfg = compose_config("eval_demo", tmp_path)
    entry = {"mean": 1.5, "interval": 0.25, "values": [1.25, 1.5, 1.75]}
    text = {"real data": {"FD": entry, "R@3": entry}, "adaln": {"FD": entry, "R@3": entry}}
    dance = {"validation data": {"coverage": entry}, "dance (punet)": {"coverage": entry}}
    markdown = results_markdown(cfg, text, dance, [("python -m motiondiff.train experiment=evaluator", 90.0)])
    assert "| adaln | 1.500 ± 0.250 | 1.500 ± 0.250 |" in markdown
    assert "| dance (punet) | 1.500 ± 0.250 |" in markdown
    assert "- `python -m motiondiff.train experiment=evaluator` (1.5 min)" in markdown
