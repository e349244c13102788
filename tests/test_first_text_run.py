"""The first text-to-motion run: what it writes is announced with its path and size, slow steps show
progress (a bar on a terminal, plain log lines without carriage returns otherwise), and a prompt made
mostly of words the training captions never use is warned about, naming what the model knows."""

import io
import logging
from pathlib import Path

import numpy as np
import pytest

from motiondiff.core.units import duration
from motiondiff.data.procedural.text_motion import dataset_name, write_procedural_dataset
from motiondiff.data.text_motion import TextMotionDataModule, training_vocabulary
from motiondiff.generation.prompts import warn_unfamiliar_prompts
from motiondiff.text.cache import cache_file, cached_table
from motiondiff.text.encoders import CaptionItem, TextEmbedding, TextEncoder
from motiondiff.text.progress import Progress
from motiondiff.text.vocabulary import build_vocabulary, prompt_warning

NUM_MOTIONS = 24
FAR_PROMPT = "a person flies to the moon on a dragon"


class WordLengthEncoder(TextEncoder):
    """A tiny fake encoder: token i of a caption is (its i-th word's length, i)."""

    name, dim, max_tokens = "fake-word-length", 2, 64

    def count_tokens(self, captions: list) -> list:
        return [len(caption.split()) for caption in captions]

    def _embed(self, captions: list) -> TextEmbedding:
        sequences = [np.array([[len(w), i] for i, w in enumerate(c.split())], np.float32) for c in captions]
        return TextEmbedding.from_sequences(np.stack([s.mean(0) for s in sequences]), sequences)


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def procedural_root(tmp_path_factory) -> Path:
    """A small procedural dataset, written once for this module."""
    root = tmp_path_factory.mktemp("data") / dataset_name(NUM_MOTIONS, 0)
    return write_procedural_dataset(root, num_motions=NUM_MOTIONS, seed=0)


def messages(caplog, level=logging.INFO) -> list:
    return [record.getMessage() for record in caplog.records if record.levelno == level]


def disk_usage(root: Path) -> int:
    """Bytes under `root` as `du` counts them (4 KiB blocks)."""
    return sum(path.stat().st_blocks * 512 for path in root.rglob("*") if path.is_file())


# ---------------------------------------------------------------- announcements and progress


def test_caption_encoding_announces_the_cache_file_and_logs_progress_without_carriage_returns(tmp_path, caplog, capsys):
    items = [CaptionItem(f"m{i}", 0, f"a person walks {i} steps " + "forward " * (i % 7)) for i in range(700)]
    encoder = WordLengthEncoder()
    with caplog.at_level(logging.INFO):
        cached_table(encoder, items, tmp_path)
    lines = messages(caplog)
    path = cache_file(encoder, tmp_path)
    announcement = [line for line in lines if line.startswith("Caching caption embeddings")]
    assert len(announcement) == 1 and "(700 captions, ~" in announcement[0] and str(path) in announcement[0]
    progress = [line for line in lines if line.startswith("encoding captions with fake-word-length:")]
    assert len(progress) == 3  # 256, 512, 700 of 700: a line every 10 %, at most one per batch
    assert "(256 of 700 captions)" in progress[0] and "about" in progress[0] and "left" in progress[0]
    assert "100% (700 of 700 captions), done in" in progress[-1]
    assert any(line.startswith("Encoded 700 captions in") and str(path) in line for line in lines)
    captured = capsys.readouterr()
    assert "\r" not in captured.err + captured.out and "\r" not in "".join(lines)  # stderr is not a terminal here


def test_a_cached_run_announces_nothing(tmp_path, caplog):
    items = [CaptionItem("m0", 0, "a person jumps")]
    cached_table(WordLengthEncoder(), items, tmp_path)
    with caplog.at_level(logging.INFO):
        cached_table(WordLengthEncoder(), items, tmp_path)
    assert messages(caplog) == []


def test_progress_is_a_bar_on_a_terminal_and_log_lines_elsewhere(caplog):
    terminal = Terminal()
    with caplog.at_level(logging.INFO), Progress(40, "counting", unit="things", stream=terminal) as progress:
        for _ in range(40):
            progress.update()
    assert "\r" in terminal.getvalue() and "40/40" in terminal.getvalue() and messages(caplog) == []

    plain = io.StringIO()
    with caplog.at_level(logging.INFO), Progress(40, "counting", unit="things", stream=plain) as progress:
        for _ in range(40):
            progress.update()
    assert plain.getvalue() == ""
    lines = messages(caplog)
    assert len(lines) == 10 and lines[0].startswith("counting: 10% (4 of 40 things), 0 s elapsed, about 0 s left")
    assert duration(70) == "1 min 10 s" and duration(9.4) == "9 s" and duration(3900) == "1 h 05 min"


def test_writing_the_procedural_dataset_announces_its_path_and_size(tmp_path, caplog):
    root = tmp_path / "data" / dataset_name(12, 3)
    with caplog.at_level(logging.INFO):
        write_procedural_dataset(root, num_motions=12, seed=3)
    lines = messages(caplog)
    announcement = [line for line in lines if line.startswith("Writing the procedural dataset (12 motions, ~")]
    assert len(announcement) == 1 and str(root) in announcement[0]
    announced = float(announcement[0].split("~")[1].split(" MB")[0]) * 2**20
    assert 0.8 < announced / disk_usage(root) < 1.25
    assert lines[-1].startswith("writing procedural motions: 100% (12 of 12 motions), done in")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        write_procedural_dataset(root, num_motions=12, seed=3)  # already there: reused silently
    assert messages(caplog) == []


# ---------------------------------------------------------------- prompts outside the training captions


def test_a_far_prompt_warns_naming_the_procedural_actions(procedural_root):
    vocabulary = training_vocabulary(str(procedural_root), "humanml3d")
    warning = prompt_warning(FAR_PROMPT, vocabulary)
    assert warning is not None and f"'{FAR_PROMPT}'" in warning
    assert "(flies, moon, dragon)" in warning and "the model knows: walk, run, jump, wave, raise arms" in warning
    for familiar in ("a person walks forward", "someone is waving with the right hand", "a man jumping twice"):
        assert prompt_warning(familiar, vocabulary) is None, familiar


def test_generation_warns_once_per_far_prompt_from_the_runs_data(procedural_root, tmp_path, caplog):
    module = TextMotionDataModule(str(procedural_root), WordLengthEncoder(), cache_dir=str(tmp_path), batch_size=4)
    module.setup("fit")
    with caplog.at_level(logging.WARNING):
        warn_unfamiliar_prompts([FAR_PROMPT, FAR_PROMPT, "a person walks forward"], module.info)
    warnings = messages(caplog, logging.WARNING)
    assert len(warnings) == 1 and "most words of 'a person flies" in warnings[0] and "walk, run, jump" in warnings[0]


def test_real_captions_name_their_most_frequent_verbs():
    captions = [
        ("a man walks forward", ("a/DET", "man/NOUN", "walk/VERB", "forward/ADV")),
        ("a person walks in a circle", ("a/DET", "person/NOUN", "walk/VERB", "in/ADP", "a/DET", "circle/NOUN")),
        ("someone is sitting down", ("someone/PRON", "be/AUX", "sit/VERB", "down/ADV")),
    ]
    vocabulary = build_vocabulary(captions)
    assert vocabulary.actions == ("walk", "sit")
    assert prompt_warning("a person sits", vocabulary) is None  # 'sits' matches the lemma 'sit'
    assert "the model knows: walk, sit —" in prompt_warning("a person swims in the ocean", vocabulary)


def test_an_unreadable_data_source_skips_the_check(tmp_path):
    assert training_vocabulary(str(tmp_path / "moved"), "humanml3d") is None
    assert training_vocabulary(str(tmp_path), "no-such-layout") is None
