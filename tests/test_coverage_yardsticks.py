"""benchmarks/coverage_yardsticks.py: how often a dance repeats itself, and a planned replay that covers all of it."""

import subprocess
import sys
from pathlib import Path

import numpy as np

from conftest import benchmark_script, shared_path
from motiondiff.metrics.single_motion import clip_coverage, sliding_windows

ROOT = Path(__file__).resolve().parents[1]
yardsticks = benchmark_script("coverage_yardsticks")


def random_walk(frames: int = 200) -> np.ndarray:
    """(frames, 6) with unit steps: windows at different places lie far apart."""
    return np.cumsum(np.random.default_rng(0).normal(size=(frames, 6)), axis=0)


def test_a_loop_recurs_everywhere_and_a_random_walk_nowhere():
    walk = random_walk()
    assert yardsticks.recurring_share(np.tile(walk[:20], (10, 1)), 30) == 1.0  # a 20-frame move danced ten times
    assert yardsticks.recurring_share(walk, 30) == 0.0


def test_a_planned_replay_is_the_whole_span_in_exact_shuffled_pieces():
    walk = random_walk()
    clips = yardsticks.planned_replays(walk, 432, 3)  # 9 whole pieces (a length between cuts the last one short)
    assert [len(clip) for clip in clips] == [432] * 3
    pieces = [clip[s : s + 48] for clip in clips for s in range(0, 432, 48)]
    training_pieces = sliding_windows(walk, 48)  # (153, 48, 6)
    assert all(np.abs(training_pieces - piece).max(axis=(1, 2)).min() == 0.0 for piece in pieces)
    assert not np.array_equal(clips[0], clips[1])  # each clip its own order
    assert clip_coverage(clips, walk, 30) == 1.0  # pieces 19 frames apart: every 30-frame window lies in one


def test_the_script_tabulates_every_shared_clip():
    folder = shared_path("bvh")
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "coverage_yardsticks.py"), "--bvh", str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "D |" in line]
    assert len(rows) == 6 and sum("| 3D | " in row and "0 (FK)" in row for row in rows) == 3
