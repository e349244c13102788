"""Text-motion data: both on-disk layouts, crops, captions, batches, the embedding cache, bad input,
the real HumanML3D sample, the smplrifke representation and the representation registry."""

import hashlib
import json
import logging
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from conftest import compose_config, shared_path
from motiondiff.core.errors import UserError, find_user_error
from motiondiff.data.formats.lab_layout import read_standardization
from motiondiff.data.normalizers import STD_FLOOR, FeatureNormalizer
from motiondiff.data.representations import humanml3d_features as hml
from motiondiff.data.representations import smplrifke
from motiondiff.data.representations.registry import REPRESENTATIONS, get_representation
from motiondiff.data.text_motion import TextMotionDataModule, training_vocabulary
from motiondiff.runs.legacy import added_option_overrides
from motiondiff.runs.train import check_checkpoint_statistics
from motiondiff.text.encoders import TextEmbedding, TextEncoder
from motiondiff.text.vocabulary import prompt_warning

DIM = 8


class FakeEncoder(TextEncoder):
    """Hashes each word to a vector (pooled = their mean); counts how often it is asked to encode."""

    name, dim, max_tokens = "fake-hash", DIM, 32

    def __init__(self):
        self.calls, self.encoded = 0, []

    @staticmethod
    def word_vector(word: str) -> np.ndarray:
        seed = int(hashlib.md5(word.encode()).hexdigest()[:8], 16)
        return np.random.default_rng(seed).normal(size=DIM).astype(np.float32)

    def count_tokens(self, captions: list) -> list:
        return [len(caption.split()) for caption in captions]

    def _embed(self, captions: list) -> TextEmbedding:
        self.calls += 1
        self.encoded += list(captions)
        sequences = [np.stack([self.word_vector(w) for w in caption.split()]) for caption in captions]
        return TextEmbedding.from_sequences(np.stack([s.mean(0) for s in sequences]), sequences)


def motion(frames: int, features: int = 263, seed: int = 0) -> np.ndarray:
    """Random finite features (frames, features): column 0 is the frame index, column 5 the constant 0.5."""
    array = np.random.default_rng(seed).normal(size=(frames, features)).astype(np.float32)
    array[:, 0] = np.arange(frames)
    array[:, 5] = 0.5
    return array


def write_humanml3d(root: Path, motions: dict, splits: dict, stats: bool = True) -> Path:
    """A HumanML3D-layout directory: motions {id: (features or None, caption lines or None)}."""
    for folder in ("new_joint_vecs", "texts"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for motion_id, (features, lines) in motions.items():
        if features is not None:
            np.save(root / "new_joint_vecs" / f"{motion_id}.npy", features)
        if lines is not None:
            (root / "texts" / f"{motion_id}.txt").write_text("\n".join(lines) + "\n")
    for split, ids in splits.items():
        (root / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    if stats:
        np.save(root / "Mean.npy", np.full(263, 0.5, np.float32))
        std = np.full(263, 2.0, np.float32)
        std[5] = 0.0  # a constant feature: floored, never a division by zero
        np.save(root / "Std.npy", std)
    return root


def line(caption: str, start: float = 0.0, end: float = 0.0) -> str:
    tokens = " ".join(f"{w}/OTHER" for w in caption.split())
    return f"{caption}#{tokens}#{start}#{end}"


SUBCLIP = (1.15, 4.0)  # seconds: feature frames [23, 80)


@pytest.fixture
def hml_root(tmp_path) -> Path:
    nan = motion(60, seed=4)
    nan[10, 3] = np.nan
    motions = {
        "000001": (
            motion(100, seed=1),
            [line("a person walks"), line("someone strolls"), line("a person waves", *SUBCLIP)],
        ),
        "000002": (motion(60, seed=2), [line("a person jumps")]),
        "000003": (motion(30, seed=3), [line("too short")]),
        "000004": (nan, [line("broken numbers")]),
        "000006": (motion(70, seed=6), ["#empty/OTHER#0.0#0.0", "", line("a person sits")]),
        "000007": (motion(70, seed=7), ["#nothing#0.0#0.0"]),
        "000010": (motion(250, seed=10), [line("a long walk"), line("walking for long")]),
        "000011": (motion(50, seed=11), [line("a person claps")]),
        "000020": (motion(80, seed=20), [line("a person kicks"), line("kicking")]),
    }
    splits = {
        "train": ["000001", "000002", "000003", "000004", "000005", "000006", "000007"],
        "val": ["000010", "000011"],
        "test": ["000020"],
    }
    return write_humanml3d(tmp_path / "hml", motions, splits)


def make_module(root, tmp_path, encoder=None, **kwargs) -> TextMotionDataModule:
    module = TextMotionDataModule(str(root), encoder or FakeEncoder(), cache_dir=str(tmp_path / "cache"), **kwargs)
    module.setup("fit")
    return module


def warnings_of(caplog) -> list:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# ---------------------------------------------------------------- HumanML3D layout


def test_humanml3d_items_subclips_and_skips(hml_root, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        module = make_module(hml_root, tmp_path, batch_size=2)
    train = module.train_set
    assert [c.name for c in train.clips] == ["000001", "000001#1.15#4", "000002", "000006"]
    assert [c.name for c in module.val_set.clips] == ["000010", "000011"]
    subclip = train.clips[1]
    raw = module.normalizer.denormalize(torch.from_numpy(subclip.features)).numpy()
    np.testing.assert_allclose(raw[:, 0], np.arange(23, 80), atol=1e-4)  # frames [int(1.15*20), int(4.0*20))
    assert [c.text for c in subclip.captions] == ["a person waves"]
    assert [(c.text, c.line) for c in train.clips[0].captions] == [("a person walks", 0), ("someone strolls", 1)]
    assert [(c.text, c.line) for c in train.clips[3].captions] == [("a person sits", 1)]  # blank lines not numbered
    messages = warnings_of(caplog)
    for expected in [
        "1 motions or sub-clips are shorter than min_frames=40",
        "1 ids have no feature file",
        "1 motions contain NaN",
        "3 caption lines are empty",
        "1 motions have no usable caption",
    ]:
        assert sum(expected in m for m in messages) == 1, (expected, messages)


def reference_items(root: Path, split: str, min_frames: int) -> list:
    """(frames, captions) of each item as text-to-motion's Text2MotionDatasetV2 makes them (data/dataset.py, which
    MDM's loader repeats), written out again here: a motion under min_frames or of 200 frames or more is skipped
    with every line; each sub-clip line [int(start*20), int(end*20)) of min_frames to 199 frames is its own item
    with its one caption; the whole motion is an item when a line captions it (0.0#0.0)."""
    items = []
    for name in (root / f"{split}.txt").read_text().split():
        frames = len(np.load(root / "new_joint_vecs" / f"{name}.npy"))
        if frames < min_frames or frames >= 200:
            continue
        whole = []
        for text_line in (root / "texts" / f"{name}.txt").read_text().splitlines():
            caption, _, start, end = text_line.strip().split("#")
            start, end = float(start), float(end)
            if start == 0.0 and end == 0.0:
                whole.append(caption)
            elif min_frames <= len(range(frames)[int(start * 20) : int(end * 20)]) < 200:
                items.append((len(range(frames)[int(start * 20) : int(end * 20)]), (caption,)))
        if whole:
            items.append((frames, tuple(whole)))
    return sorted(items)


def test_items_follow_the_dataset_loaders_rules(tmp_path):
    """The configs' rules (max_source_frames=200, subclips=per_line) make the reference loader's items; the class
    defaults keep the items runs saved before them were trained on (every length, one item per span)."""
    motions = {
        "000001": (motion(100, seed=1), [line("a walk"), line("waves", 1, 4), line("a wave", 1, 4), line("hop", 2, 4)]),
        "000002": (motion(210, seed=2), [line("a long walk"), line("a sub-clip of it", 1, 5)]),  # 210: all skipped
        "000003": (motion(199, seed=3), [line("just under"), line("a part", 0.5, 3)]),
        "000004": (motion(260, seed=4), [line("only a part", 0.5, 10.5)]),  # a 200-frame sub-clip of a long motion
        "000005": (motion(150, seed=5), [line("most of it", 0, 7.5), line("a bit", 1, 2)]),  # 150 frames; 20: short
    }
    root = write_humanml3d(tmp_path / "hml", motions, {"train": list(motions), "val": ["000001"], "test": ["000001"]})
    loaders = make_module(root, tmp_path, max_source_frames=200, subclips="per_line")
    items = sorted((len(c.features), tuple(x.text for x in c.captions)) for c in loaders.train_set.clips)
    assert items == reference_items(root, "train", 40)
    assert [c.name for c in loaders.train_set.clips] == [
        "000001",
        "000001#1#4#1",
        "000001#1#4#2",
        "000001#2#4",
        "000003",
        "000003#0.5#3",
        "000005#0#7.5",
    ]
    before = make_module(root, tmp_path)  # the class defaults: what earlier runs were built with
    assert [c.name for c in before.train_set.clips] == [
        "000001",
        "000001#1#4",
        "000001#2#4",
        "000002",
        "000002#1#5",
        "000003",
        "000003#0.5#3",
        "000004#0.5#10.5",
        "000005#0#7.5",
    ]
    cfg = compose_config("train", tmp_path / "run", ["dataset=humanml3d", f"dataset.root={root}"]).dataset
    assert (cfg.max_source_frames, cfg.subclips) == (200, "per_line")
    for bad, message in (
        ({"subclips": "each"}, "dataset.subclips='each' is not one of"),
        ({"max_source_frames": 40}, "dataset.max_source_frames=40 must be an integer >= 41"),
    ):
        with pytest.raises(UserError, match=re.escape(message)):
            TextMotionDataModule(str(root), FakeEncoder(), **bad)


def test_training_vocabulary_reads_only_the_training_captions(hml_root):
    vocabulary = training_vocabulary(str(hml_root), "humanml3d")
    assert {"walks", "walk", "strolls", "jumps", "sits"} <= vocabulary.words and "claps" not in vocabulary.words
    assert vocabulary.actions[:2] == ("walk", "stroll")  # no VERB tags here (word/OTHER): guessed verbs
    assert prompt_warning("a person walks", vocabulary) is None
    assert "(claps)" in prompt_warning("a person claps", vocabulary)  # a validation caption only
    assert training_vocabulary(str(hml_root), "humanml3d", split="missing") is None


def test_normalisation_uses_the_statistics_with_a_floor(hml_root, tmp_path):
    module = make_module(hml_root, tmp_path)
    assert module.normalizer.std[5] == STD_FLOOR and module.normalizer.std[0] == 2.0
    clip = module.train_set.clips[2]  # 000002, whole
    expected = (motion(60, seed=2) - 0.5) / np.maximum(np.load(hml_root / "Std.npy"), STD_FLOOR)
    np.testing.assert_allclose(clip.features, expected, rtol=1e-5)
    x = torch.randn(3, 7, 263)
    torch.testing.assert_close(module.normalizer.denormalize(module.normalizer.normalize(x)), x, atol=1e-3, rtol=1e-5)
    restored = FeatureNormalizer(263)
    restored.load_state_dict(module.normalizer.state_dict())
    assert torch.equal(restored.mean, module.normalizer.mean)


def test_training_crops_and_captions_are_random_val_and_test_fixed(hml_root, tmp_path):
    module = make_module(hml_root, tmp_path, max_frames=40)
    torch.manual_seed(0)
    draws = [module.train_set[0] for _ in range(60)]  # 000001: 100 frames, two whole-clip captions
    starts = {float(d["motion"][0, 0]) for d in draws}
    assert all(d["length"] == 40 and d["motion"].shape == (40, 263) for d in draws)
    assert len(starts) > 10
    assert {d["caption"] for d in draws} == {"a person walks", "someone strolls"}
    val = [module.val_set[0] for _ in range(5)]  # 000010: 250 frames
    assert {v["caption"] for v in val} == {"a long walk"}
    for item in val:
        raw = module.normalizer.denormalize(item["motion"])
        np.testing.assert_allclose(raw[:, 0].numpy(), np.arange(40), atol=1e-4)
    items = module.test_items()
    assert [(t["name"], t["caption"], t["length"]) for t in items] == [("000020", "a person kicks", 40)]
    assert items[0]["captions"] == ["a person kicks", "kicking"]


def test_batches_pad_mask_and_carry_the_caption_embeddings(hml_root, tmp_path):
    module = make_module(hml_root, tmp_path, batch_size=4)
    batch = next(iter(module.val_dataloader()))
    assert batch["motion"].shape == (2, 196, 263) and batch["motion"].dtype == torch.float32
    assert batch["length"].tolist() == [196, 50] and batch["length"].dtype == torch.long
    assert batch["mask"].dtype == torch.bool and batch["mask"].sum(1).tolist() == [196, 50]
    assert (batch["motion"][1, 50:] == 0).all() and (batch["motion"][1, :50] != 0).any()
    assert batch["name"] == ["000010", "000011"] and batch["caption"] == ["a long walk", "a person claps"]
    cond = batch["cond"]
    assert cond["text_pooled"].shape == (2, DIM) and cond["text_tokens"].shape == (2, 3, DIM)
    assert cond["text_mask"].tolist() == [[True, True, True], [True, True, True]]
    expected = np.mean([FakeEncoder.word_vector(w) for w in "a person claps".split()], 0)
    np.testing.assert_allclose(cond["text_pooled"][1].numpy(), expected, atol=1e-6)
    train = next(iter(module.train_dataloader()))
    assert train["motion"].shape[0] == 4 and train["motion"].shape[1] == int(train["length"].max())
    assert torch.equal(train["mask"], torch.arange(train["motion"].shape[1])[None] < train["length"][:, None])


def test_info_describes_the_data_in_plain_types(hml_root, tmp_path):
    encoder = FakeEncoder()
    info = make_module(hml_root, tmp_path, encoder=encoder, max_frames=64).info.to_dict()
    assert json.loads(json.dumps(info)) == info
    assert info["kind"] == "text_motion" and info["representation"] == "humanml3d"
    assert (info["features"], info["num_joints"], info["dims"], info["fps"]) == (263, 22, 3, 20.0)
    assert (info["text_dim"], info["text_encoder"], info["text_tokens"]) == (DIM, "fake-hash", encoder.max_tokens)
    assert (info["num_train"], info["num_val"], info["max_frames"], info["min_frames"]) == (4, 2, 64, 40)
    assert info["length_distribution"] == [57, 60, 64, 64]
    assert len(info["parents"]) == len(info["joint_names"]) == 22 and info["source"] == str(hml_root)
    assert info["feature_abs_max"] == pytest.approx((99 - 0.5) / 2.0)  # column 0 holds the frame index


def test_embeddings_are_computed_once_and_cached(hml_root, tmp_path):
    first = FakeEncoder()
    make_module(hml_root, tmp_path, encoder=first)
    assert first.calls >= 1
    assert "kicking" in first.encoded  # test captions are encoded with the others
    assert len(first.encoded) == len(set(first.encoded))
    second = FakeEncoder()
    module = make_module(hml_root, tmp_path, encoder=second)
    next(iter(module.train_dataloader()))
    module.test_items()
    assert second.calls == 0


# ---------------------------------------------------------------- bad input


def test_missing_root_split_and_statistics_are_clear_errors(hml_root, tmp_path):
    with pytest.raises(UserError, match="nowhere.*dataset=text_motion"):
        make_module(tmp_path / "nowhere", tmp_path)
    with pytest.raises(UserError, match="dataset.root is not set"):
        TextMotionDataModule(None, FakeEncoder())
    (hml_root / "val.txt").unlink()
    with pytest.raises(UserError, match="val split file.*val.txt"):
        make_module(hml_root, tmp_path)
    (hml_root / "val.txt").write_text("000010\n")
    (hml_root / "Mean.npy").unlink()
    with pytest.raises(UserError, match="Mean.npy"):
        make_module(hml_root, tmp_path)


def test_a_split_with_nothing_loadable_is_a_clear_error(hml_root, tmp_path):
    (hml_root / "train.txt").write_text("100000\n100001\n")
    with pytest.raises(UserError, match=r"2 ids in '.*train.txt'.*2 ids have no feature file"):
        make_module(hml_root, tmp_path)


def test_wrong_feature_width_is_a_clear_error(hml_root, tmp_path):
    np.save(hml_root / "new_joint_vecs" / "000002.npy", motion(60, features=251))
    with pytest.raises(UserError, match="000002.npy.*263"):
        make_module(hml_root, tmp_path)


# ---------------------------------------------------------------- real sample and procedural data


def test_real_humanml3d_sample_loads(tmp_path, caplog):
    sample = shared_path("humanml3d_sample")
    root = tmp_path / "real"
    (root / "new_joint_vecs").mkdir(parents=True)
    (root / "texts").mkdir()
    os.symlink(sample / "new_joint_vecs" / "012314.npy", root / "new_joint_vecs" / "012314.npy")
    for name in ("Mean.npy", "Std.npy", "train.txt"):
        os.symlink(sample / name, root / name)
    (root / "val.txt").write_text("012314\n")
    (root / "texts" / "012314.txt").write_text(
        line("a man kicks something with his left leg") + "\n" + line("a man kicks", 1.0, 4.0) + "\n"
    )
    with caplog.at_level(logging.WARNING):
        module = make_module(root, tmp_path)
    assert any("23383 ids have no feature file" in m for m in warnings_of(caplog))
    assert [(c.name, len(c.features)) for c in module.train_set.clips] == [("012314", 170), ("012314#1#4", 60)]
    np.testing.assert_array_equal(module.normalizer.mean.numpy(), np.load(sample / "Mean.npy"))
    raw = module.normalizer.denormalize(torch.from_numpy(module.val_set.clips[0].features))  # (170, 263)
    joints = get_representation(module.info.representation).to_joints(raw)
    expected = hml.features_to_joints(np.load(sample / "new_joint_vecs" / "012314.npy"))
    np.testing.assert_allclose(joints.numpy(), expected, atol=1e-4)
    assert module.info.length_distribution == (60, 170)


def test_procedural_root_is_generated_once_and_read_as_humanml3d(tmp_path):
    encoder = FakeEncoder()
    module = make_module(
        "procedural", tmp_path, encoder=encoder, procedural={"num_motions": 20, "seed": 0}, min_frames=20
    )
    info = module.info
    assert info.source == str(tmp_path / "cache" / "procedural_text_motion-v3-n20-seed0")
    assert (Path(info.source) / "procedural.json").is_file()
    assert info.num_train >= 8 and info.representation == "humanml3d"
    again = make_module(
        "procedural", tmp_path, encoder=FakeEncoder(), procedural={"num_motions": 20, "seed": 0}, min_frames=20
    )
    assert again.info == info


def test_hydra_configs_build_the_datamodule(hml_root, tmp_path):
    cfg = compose_config("train", tmp_path / "run", ["dataset=text_motion", f"paths.data_dir={tmp_path / 'data'}"])
    assert cfg.dataset.root == "procedural" and cfg.dataset.cache_dir == str(tmp_path / "data")
    assert cfg.dataset.procedural.num_motions == 2000 and cfg.dataset.text_encoder._target_.endswith("MiniLMEncoder")
    cfg = compose_config("train", tmp_path / "run", ["dataset=humanml3d"])
    with pytest.raises(Exception) as error:
        instantiate(cfg.dataset, text_encoder=FakeEncoder())
    assert "dataset.root is not set" in str(find_user_error(error.value))
    cfg = compose_config(
        "train",
        tmp_path / "run",
        ["dataset=humanml3d", f"dataset.root={hml_root}", f"dataset.cache_dir={tmp_path / 'cache'}"],
    )
    module = instantiate(cfg.dataset, text_encoder=FakeEncoder())
    module.setup("fit")
    assert module.info.num_train == 4
    assert compose_config("train", tmp_path / "run", ["dataset=lab"]).dataset.layout == "lab"
    lab = compose_config("train", tmp_path / "run", ["experiment=text2motion", "dataset=lab"])
    assert (lab.dataset.max_frames, lab.dataset.min_frames, lab.network.max_frames) == (197, 1, 197)  # the course's
    assert compose_config("train", tmp_path / "run", ["experiment=text2motion"]).network.max_frames == 196
    saved = OmegaConf.create({"dataset": {"max_frames": 196, "min_frames": 40}, "network": {"max_frames": 196}})
    kept = added_option_overrides(saved)  # a lab run saved before resumes with its own lengths
    assert {"dataset.max_frames=196", "dataset.min_frames=40", "network.max_frames=196"} <= set(kept)


# ---------------------------------------------------------------- lab layout


def lab_statistics() -> tuple:
    """A mean and std (205,) in the course's form: feature 7 constant, its std stored as 1.0."""
    mean = np.linspace(-1.0, 1.0, 205).astype(np.float32)
    std = np.linspace(0.5, 3.0, 205).astype(np.float32)
    mean[7], std[7] = 0.0, 1.0
    return mean, std


def write_lab(root: Path, stats: bool = True) -> Path:
    """A lab-layout directory of four motions (plain captions, 205 features) and its rifke-{mean,std}.pt."""
    for folder in ("smpl_rifke", "caption_raw"):
        (root / folder).mkdir(parents=True)
    captions = {
        "M01": ["a person walks", "walking forward"],
        "M02": ["a person jumps"],
        "M03": ["a person sits"],
        "M04": ["a person bows"],
    }
    for index, (motion_id, lines) in enumerate(captions.items()):
        np.save(root / "smpl_rifke" / f"{motion_id}.npy", motion(50 + 10 * index, features=205, seed=index))
        (root / "caption_raw" / f"{motion_id}.txt").write_text("\n".join(lines) + "\n")
    for split, ids in {"train": ["M01", "M02"], "val": ["M03"], "test": ["M04"]}.items():
        (root / f"humanml3d_{split}_split.txt").write_text("\n".join(ids) + "\n")
    if stats:
        for name, array in zip(("rifke-mean.pt", "rifke-std.pt"), lab_statistics()):
            torch.save(torch.from_numpy(array), root / name)
        for name, array in zip(("tmr-rifke-mean.pt", "tmr-rifke-std.pt"), lab_statistics()):
            torch.save(torch.from_numpy(array * 2.0), root / name)  # another pair, as the course's two differ
    return root


def test_dataset_lab_standardizes_with_the_tmr_rifke_pair_as_the_course_and_older_runs_with_rifke(tmp_path):
    """The course's diffusion data reads tmr-rifke-{mean,std}.pt (its configs/dataset/humanml3d.yaml, feat_rifke);
    runs saved before dataset.statistics_files read the layout's rifke-{mean,std}.pt and resume so."""
    root = write_lab(tmp_path / "lab")
    cfg = compose_config("train", tmp_path / "run", ["experiment=text2motion", "dataset=lab", f"dataset.root={root}"])
    assert list(cfg.dataset.statistics_files) == ["tmr-rifke-mean.pt", "tmr-rifke-std.pt"]
    module = make_module(root, tmp_path, layout="lab", statistics_files=list(cfg.dataset.statistics_files))
    mean, std = lab_statistics()
    np.testing.assert_array_equal(module.normalizer.std.numpy(), std * 2.0)
    np.testing.assert_array_equal(module.normalizer.mean.numpy(), mean * 2.0)
    dataset = {key: value for key, value in OmegaConf.to_container(cfg.dataset).items() if key != "statistics_files"}
    assert "dataset.statistics_files=null" in added_option_overrides(OmegaConf.create({"dataset": dataset}))
    for wrong in (["mean.pt"], "ab"):
        with pytest.raises(UserError, match=r"dataset.statistics_files=.* must be a list of 2 file names"):
            make_module(root, tmp_path, layout="lab", statistics_files=wrong)
    (root / "tmr-rifke-std.pt").unlink()
    with pytest.raises(UserError, match="lab statistics file not found: '.*tmr-rifke-std.pt'"):
        make_module(root, tmp_path, layout="lab", statistics_files=list(cfg.dataset.statistics_files))


def test_lab_layout_loads_smplrifke_with_the_course_statistics(tmp_path):
    root = write_lab(tmp_path / "lab")
    module = make_module(root, tmp_path, layout="lab", batch_size=2)
    mean, std = lab_statistics()
    np.testing.assert_array_equal(module.normalizer.mean.numpy(), mean)  # the files', not the split's
    np.testing.assert_array_equal(module.normalizer.std.numpy(), std)  # 1.0 at the constant feature 7, no eps
    split = np.concatenate([motion(50, 205, 0), motion(60, 205, 1)])  # the training frames
    assert np.abs(module.normalizer.mean.numpy() - split.mean(0)).max() > 1.0
    expected = (motion(50, 205, 0)[:, 7] - mean[7]) / std[7]
    np.testing.assert_allclose(module.train_set.clips[0].features[:, 7], expected, rtol=1e-6)
    info = module.info
    assert (info.representation, info.features, info.num_joints) == ("smplrifke", 205, 24)
    assert info.joint_names[-2:] == ("left_hand", "right_hand") and info.parents[-2:] == (20, 21)
    assert [(c.text, c.line) for c in module.train_set.clips[0].captions] == [
        ("a person walks", 0),
        ("walking forward", 1),
    ]
    batch = next(iter(module.val_dataloader()))
    assert batch["motion"].shape == (1, 70, 205) and batch["caption"] == ["a person sits"]
    assert module.test_items()[0]["name"] == "M04"
    with pytest.raises(UserError, match="humanml3d_train_split.txt"):
        (root / "humanml3d_train_split.txt").unlink()
        make_module(root, tmp_path, layout="lab")


class NotATensor:
    """Something a weights-only load must refuse to build."""


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("rifke-std.pt", None, "lab statistics file not found: '.*rifke-std.pt' .*configs/dataset/standardization/"),
        ("rifke-mean.pt", b"not a torch file", "rifke-mean.pt' cannot be read as a torch tensor file"),
        ("rifke-mean.pt", NotATensor(), "rifke-mean.pt' cannot be read as a torch tensor file .Weights only load"),
        ("rifke-mean.pt", {"mean": torch.zeros(205)}, "rifke-mean.pt' must hold a tensor of 205 numbers, got a dict"),
        ("rifke-std.pt", torch.ones(263), "rifke-std.pt' must hold a tensor of 205 numbers, got shape .263,."),
        ("rifke-std.pt", torch.full((205,), float("nan")), "rifke-std.pt' must hold 205 finite numbers, got NaN"),
        ("rifke-std.pt", torch.zeros(205), "rifke-std.pt' must hold positive standard deviations, got 0 at feature 0"),
    ],
)
def test_a_missing_or_malformed_standardization_file_is_one_sentence(tmp_path, name, content, message):
    root = write_lab(tmp_path / "lab")
    path = root / name
    if content is None:
        path.unlink()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(UserError, match=message) as error:
        make_module(root, tmp_path, layout="lab")
    assert str(error.value).endswith(".") and ". " not in str(error.value)  # one sentence


def test_the_course_standardization_tensors_load_as_shipped(tmp_path):
    """The real rifke and tmr-rifke tensors: (205,), feature 7 constant (mean 0, std 1.0), kept by the normaliser."""
    for prefix in ("rifke", "tmr-rifke"):
        mean = read_standardization(shared_path("lab_standardization", f"{prefix}-mean.pt"))
        std = read_standardization(shared_path("lab_standardization", f"{prefix}-std.pt"))
        assert mean.shape == std.shape == (205,) and mean.dtype == std.dtype == np.float32
        assert (mean[7], std[7]) == (0.0, 1.0) and std.min() > 3e-3
        assert std[3] == pytest.approx(0.5, abs=0.01)  # heading steps with an absolute frame 0: the course convention
    root = write_lab(tmp_path / "lab")
    for name in ("rifke-mean.pt", "rifke-std.pt"):
        (root / name).write_bytes(shared_path("lab_standardization", name).read_bytes())
    module = make_module(root, tmp_path, layout="lab", batch_size=2)
    shipped = read_standardization(root / "rifke-std.pt")
    assert shipped.min() > STD_FLOOR  # so the normaliser's floor changes nothing: (x - mean) / std as the course
    np.testing.assert_array_equal(module.normalizer.std.numpy(), shipped)
    np.testing.assert_array_equal(module.normalizer.mean.numpy(), read_standardization(root / "rifke-mean.pt"))
    assert module.normalizer.std[7] == 1.0


# ---------------------------------------------------------------- smplrifke and the registry


def yaw_matrix(angle: float) -> np.ndarray:
    """Rotation about +y (y up): +z turns to (sin, 0, cos)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def turning_walk(frames: int = 80, fps: float = 20.0) -> np.ndarray:
    """24 joints (T, 24, 3), y up: a body that starts at the origin facing +z, walks at 1.3 m/s and turns 4 rad."""
    rng = np.random.default_rng(0)
    rest = rng.normal(scale=0.25, size=(24, 3)) + [0.0, 0.9, 0.0]
    rest[0], rest[1], rest[2] = [0.0, 0.95, 0.0], [0.1, 0.9, 0.0], [-0.1, 0.9, 0.0]  # pelvis, left/right hip
    time = np.arange(frames) / fps
    yaw = 4.0 * (time / time[-1]) ** 2
    swing = 0.08 * np.sin(2 * np.pi * 1.5 * time[:, None, None] + rng.uniform(0, 6, (1, 24, 1)))  # (T, 24, 1)
    swing = swing * np.array([0.3, 1.0, 1.0])
    swing[:, :3] = 0.0  # the pelvis and hips stay rigid, so the heading is exactly the yaw
    body = rest + swing  # (T, 24, 3)
    position = np.zeros((frames, 3))
    for t in range(1, frames):
        position[t] = position[t - 1] + yaw_matrix(yaw[t - 1]) @ [0.0, 0.0, 1.3 / fps]
    position[:, 1] = 0.03 * np.sin(2 * np.pi * 2 * time)
    return np.einsum("tab,tjb->tja", np.stack([yaw_matrix(a) for a in yaw]), body) + position[:, None]


def test_smplrifke_round_trip_on_a_turning_walk():
    joints = turning_walk()
    features = smplrifke.joints_to_features(joints)
    assert features.shape == (80, 205) and features.dtype == np.float32
    part = smplrifke.feature_slices()
    turns = features[:, part["heading_velocity"]][:, 0]  # (T,): the first heading, then the steps t-1 -> t
    assert turns[0] == pytest.approx(0.0, abs=1e-6)  # it starts facing +z, AMASS heading 0
    assert (turns[1:] > 0).sum() == 78 and (turns[1:] < -np.pi).sum() == 1  # +z toward +x: a left turn, across pi
    assert turns.sum() == pytest.approx(4.0 - 2 * np.pi, abs=1e-5)  # headings wrap to (-pi, pi]
    recovered = smplrifke.features_to_joints(features)
    assert recovered.shape == (80, 24, 3)
    assert np.abs(recovered - joints).max() < 1e-4  # as given: no ground removed
    # Where the walk starts and which way it first faces are in frame 0 only; the rest is unchanged.
    moved = np.einsum("ab,tjb->tja", yaw_matrix(1.0), joints) + [3.0, 0.2, -1.0]
    shifted = smplrifke.joints_to_features(moved)
    np.testing.assert_allclose(smplrifke.features_to_joints(shifted), moved, atol=1e-5)
    for name in ("joint_positions", "rotations"):
        np.testing.assert_allclose(shifted[:, part[name]], features[:, part[name]], atol=2e-5)
    np.testing.assert_allclose(shifted[1:, part["root_velocity"]], features[1:, part["root_velocity"]], atol=2e-5)
    np.testing.assert_allclose(shifted[:, 0], features[:, 0] + 0.2, atol=1e-5)
    turned = np.angle(np.exp(1j * (shifted[:, part["heading_velocity"]][:, 0] - turns)))  # (T,) modulo 2 pi
    np.testing.assert_allclose(turned, [1.0] + [0.0] * 79, atol=1e-5)


def test_smplrifke_conventions_and_batches():
    straight = turning_walk()[:1].repeat(30, 0) + np.arange(30)[:, None, None] * [0.0, 0.0, 0.05]  # +z, 1 m/s
    features = smplrifke.joints_to_features(straight)
    part = smplrifke.feature_slices()
    # Frame 0 holds the first pelvis XY (the origin), then 5 cm steps: AMASS faces -y.
    np.testing.assert_allclose(features[:, part["root_velocity"]], [[0.0, 0.0]] + [[0.0, -0.05]] * 29, atol=1e-6)
    np.testing.assert_allclose(features[:, part["heading_velocity"]], 0.0, atol=1e-6)
    np.testing.assert_allclose(features[:, part["rotations"]][:, :6], [smplrifke.IDENTITY_6D] * 30)
    batch = (
        torch.from_numpy(np.stack([features, features * 0.5])).float()[:, None].repeat(1, 3, 1, 1)
    )  # (2, 3, 30, 205)
    joints = smplrifke.features_to_joints(batch)
    assert isinstance(joints, torch.Tensor) and joints.shape == (2, 3, 30, 24, 3)
    np.testing.assert_allclose(joints[0, 2].numpy(), straight, atol=1e-5)
    with pytest.raises(UserError, match="205"):
        smplrifke.features_to_joints(np.zeros((4, 263)))


def test_representation_registry():
    assert set(REPRESENTATIONS) == {"humanml3d", "kit", "smplrifke"}
    humanml3d, rifke = get_representation("humanml3d"), get_representation("smplrifke")
    assert (humanml3d.features, humanml3d.num_joints, humanml3d.fps) == (263, 22, 20.0)
    assert (rifke.features, rifke.num_joints, rifke.fps) == (205, 24, 20.0)
    assert humanml3d.to_joints(np.zeros((5, 263), np.float32)).shape == (5, 22, 3)
    assert rifke.to_joints(torch.zeros(2, 5, 205)).shape == (2, 5, 24, 3)
    assert rifke.parents[rifke.joint_names.index("left_hand")] == rifke.joint_names.index("left_wrist")
    with pytest.raises(UserError, match="humanml3d, kit, smplrifke"):
        get_representation("t2m")


def test_a_run_started_from_a_checkpoint_with_other_statistics_is_refused(tmp_path):
    """The checkpoint's normaliser comes back with its weights: batches standardised with the dataset's statistics
    and samples decoded with the checkpoint's would be scaled two ways (an old dataset=lab run, tmr-rifke data)."""
    mean, std = lab_statistics()
    normalizer = FeatureNormalizer(205)
    normalizer.set_statistics(mean, std)
    path = tmp_path / "last.ckpt"
    state = {"normalizer.mean": torch.from_numpy(mean), "normalizer.std": torch.from_numpy(std)}
    torch.save({"state_dict": state}, path)
    check_checkpoint_statistics(path, normalizer)  # the same statistics: accepted
    torch.save({"state_dict": {**state, "normalizer.std": torch.from_numpy(std * 2.0)}}, path)
    with pytest.raises(UserError, match=r"normaliser's std differs .* dataset.statistics_files=null"):
        check_checkpoint_statistics(path, normalizer)
    torch.save({"state_dict": {"network.weight": torch.zeros(2)}}, path)
    check_checkpoint_statistics(path, normalizer)  # no normaliser saved: nothing to compare
