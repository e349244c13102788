"""The package as a user installs it: `pip install .` (not editable), then the commands from another directory."""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, TINY_NETWORK


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """motiondiff built from a copy of what the package is made of (sources, configs, pyproject) and installed into
    a fresh --target folder; its dependencies come from this venv. The copy keeps the build's files out of the repo."""
    source, target = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("site")
    for name in ("src", "configs"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip, "--target", str(target), str(source)], check=True, capture_output=True, text=True)
    env = {**os.environ, "PYTHONPATH": str(target), "MPLBACKEND": "Agg"}
    return target, env


def run_in(directory, argv, env, timeout=600):
    return subprocess.run(argv, cwd=directory, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_installed_package_holds_its_configs_and_commands(installed, tmp_path):
    target, env = installed
    found = run_in(
        tmp_path,
        [sys.executable, "-c", "import motiondiff.cli.app as app; print(app.__file__); print(app.CONFIG_DIR)"],
        env,
    )
    module_file, config_dir = found.stdout.split()
    assert module_file.startswith(str(target)) and config_dir.startswith(str(target)), found.stdout
    assert (target / "motiondiff" / "configs" / "train.yaml").is_file()
    assert (target / "motiondiff" / "configs" / "experiment" / "dance2d.yaml").is_file()
    for asset in ("player.js", "player.css", "page.css"):  # the report's player, inlined into every index.html
        assert (target / "motiondiff" / "report" / "assets" / asset).is_file()
    assert (target / "motiondiff" / "app" / "static" / "page.html").is_file()  # the app's page (package data)
    for script in (
        "motiondiff-train",
        "motiondiff-generate",
        "motiondiff-evaluate",
        "motiondiff-compare",
        "motiondiff-app",
    ):
        assert (target / "bin" / script).is_file()


def test_train_help_lists_its_groups_with_their_comments(installed, tmp_path):
    target, env = installed
    result = run_in(tmp_path, [str(target / "bin" / "motiondiff-train"), "--help"], env)
    assert result.returncode == 0, result.stderr
    assert "motiondiff-train" in result.stdout and "network: punet" in result.stdout
    assert "adaln" in result.stdout and "adaLN-Zero" in result.stdout  # an option with its file's first comment
    assert "generate_after_training:" in result.stdout


def test_generate_help_lists_only_its_own_groups(installed, tmp_path):
    target, env = installed
    result = run_in(tmp_path, [str(target / "bin" / "motiondiff-generate"), "--help"], env)
    assert result.returncode == 0, result.stderr
    assert (
        "sampler: null" in result.stdout
        and "run_dir: null" in result.stdout
        and "# a training run directory" in result.stdout
    )
    for training_group in ("network:", "dataset:", "optimizer:", "trainer:"):
        assert training_group not in result.stdout


def test_a_two_step_dance_training_runs_from_another_directory(installed, tmp_path):
    target, env = installed
    elsewhere = tmp_path / "my_experiments"
    elsewhere.mkdir()
    overrides = ["experiment=dance2d", "trainer.max_steps=2", "generate_after_training.num_samples=0", *TINY_NETWORK]
    result = run_in(elsewhere, [str(target / "bin" / "motiondiff-train"), *overrides], env)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((elsewhere / "outputs" / "dance2d-punet").glob("*/checkpoints/last.ckpt"))
    assert len(runs) == 1, result.stderr[-3000:]
    assert not (ROOT / "outputs" / "dance2d-punet" / runs[0].parent.parent.name).exists()
