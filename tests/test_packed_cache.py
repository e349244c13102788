"""The data pipeline at scale: the packed motion cache (data.packed) built once, reused, rebuilt when the data
change, refused when corrupt, its items equal to the items read from the files; loader workers sized for the
machine; the caption-embedding cache mapped from its file and saved as it goes."""

import json
import os
import pickle

import numpy as np
import pytest
import torch

from motiondiff.core.errors import UserError
from motiondiff.data import packed
from motiondiff.data.formats.humanml3d_layout import HUMANML3D_LAYOUT, ItemRules
from motiondiff.data.text_motion import TextMotionDataModule, loader_workers
from motiondiff.text import cache
from motiondiff.text.cache import EmbeddingTable, cache_file, cached_table
from motiondiff.text.encoders import CaptionItem
from test_text_motion_data import FakeEncoder, line, motion, write_humanml3d

SPLITS = {"train": ["000001", "000002", "000003", "000004"], "val": ["000010", "000011"], "test": ["000020"]}


@pytest.fixture
def root(tmp_path):
    short = motion(30, seed=3)  # under min_frames: skipped, counted
    motions = {
        "000001": (
            motion(100, seed=1),
            [line("a person walks"), line("someone strolls"), line("a person waves", 1.15, 4)],
        ),
        "000002": (motion(60, seed=2), [line("a person jumps")]),
        "000003": (short, [line("too short")]),
        "000004": (motion(230, seed=4) * 3, [line("a long run"), line("running far")]),
        "000010": (motion(250, seed=10), [line("a long walk")]),
        "000011": (motion(50, seed=11), [line("a person claps")]),
        "000020": (motion(80, seed=20), [line("a person kicks"), line("kicking")]),
    }
    return write_humanml3d(tmp_path / "hml", motions, SPLITS)


# Every length and one item per span (the datamodule's own defaults): the 230-frame motion stays in the pack.
EVERY_LENGTH = ItemRules(40, None, "per_span")


def pack(root, tmp_path, min_frames: int = 40, rules: ItemRules = EVERY_LENGTH) -> packed.PackedSplit:
    rules = ItemRules(min_frames, rules.max_source_frames, rules.subclips)
    return packed.packed_split(root, HUMANML3D_LAYOUT, "train", rules, tmp_path / "cache")


def folder(root, tmp_path, split: str = "train", rules: ItemRules = EVERY_LENGTH):
    return packed.pack_folder(tmp_path / "cache", root, HUMANML3D_LAYOUT, split, rules)


def touch_later(path) -> None:
    """Move a file's mtime a second on, so a rewrite is seen even where mtimes are coarse."""
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))


def test_the_pack_is_built_once_and_reused(root, tmp_path, monkeypatch):
    first = pack(root, tmp_path)
    assert first.names == ["000001", "000001#1.15#4", "000002", "000004"]
    assert isinstance(first.features, np.memmap) and first.features.shape == (100 + 57 + 60 + 230, 263)
    assert first.lengths().tolist() == [100, 57, 60, 230]
    assert [c.text for c in first.captions[0]] == ["a person walks", "someone strolls"]
    np.testing.assert_array_equal(first.item(3), motion(230, seed=4) * 3)
    written = {name: (folder(root, tmp_path) / name).stat().st_mtime_ns for name in packed.FILES}

    def no_rebuild(*args):
        raise AssertionError("the pack was rebuilt although nothing changed")

    monkeypatch.setattr(packed, "write_pack", no_rebuild)
    again = pack(root, tmp_path)
    assert again.names == first.names and np.array_equal(again.features, first.features)
    assert {name: (folder(root, tmp_path) / name).stat().st_mtime_ns for name in packed.FILES} == written
    shipped = pickle.dumps(again)  # to a loader worker: the path, not the motions
    assert len(shipped) < again.features.nbytes / 4
    np.testing.assert_array_equal(pickle.loads(shipped).item(1), again.item(1))


def test_a_pack_another_process_installed_first_is_kept_and_an_outdated_one_replaced(root, tmp_path):
    """Two jobs of a sweep pack the same split at once: the second finds the first's pack in place and keeps it."""
    first = pack(root, tmp_path)
    there = folder(root, tmp_path)
    stamp = packed.fingerprint(root, HUMANML3D_LAYOUT, "train", EVERY_LENGTH)
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / "pack.json").write_text(json.dumps({"version": packed.VERSION, "fingerprint": stamp}))
    packed.install(ours, there, stamp)
    assert not ours.exists() and (there / "features.npy").is_file()  # theirs kept, ours dropped
    np.testing.assert_array_equal(pack(root, tmp_path).item(2), first.item(2))
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "pack.json").write_text(json.dumps({"version": packed.VERSION, "fingerprint": "other data"}))
    packed.install(newer, there, "other data")  # the one there is outdated for this stamp: replaced
    assert not newer.exists() and not (there / "features.npy").exists()
    assert packed.packed_stamp(there) == (packed.VERSION, "other data")
    assert [path.name for path in there.parent.iterdir()] == [there.name]  # no stale or partial folder left


@pytest.mark.parametrize("change", ["motion", "caption", "split", "min_frames"])
def test_the_pack_is_rebuilt_when_the_data_change(root, tmp_path, change):
    pack(root, tmp_path)
    min_frames = 40
    if change == "motion":
        np.save(root / "new_joint_vecs" / "000002.npy", motion(60, seed=99))
        touch_later(root / "new_joint_vecs" / "000002.npy")
    elif change == "caption":
        (root / "texts" / "000002.txt").write_text(line("a person hops") + "\n")
        touch_later(root / "texts" / "000002.txt")
    elif change == "split":
        (root / "train.txt").write_text("000001\n000002\n")
    else:
        min_frames = 25
    rebuilt = pack(root, tmp_path, min_frames)
    if change == "motion":
        np.testing.assert_array_equal(rebuilt.item(2), motion(60, seed=99))
    elif change == "caption":
        assert [c.text for c in rebuilt.captions[2]] == ["a person hops"]
    elif change == "split":
        assert rebuilt.names == ["000001", "000001#1.15#4", "000002"]
    else:
        assert "000003" in rebuilt.names
    assert not [p for p in (tmp_path / "cache" / "packed").iterdir() if p.name.startswith(".")]  # nothing left over


def truncate(path):
    with open(path, "r+b") as file:
        file.truncate(path.stat().st_size // 2)


CORRUPTIONS = {
    "truncated features": ("features.npy", truncate),
    "features as float64": ("features.npy", lambda p: np.save(p, np.load(p).astype(np.float64))),
    "features too long": ("features.npy", lambda p: p.write_bytes(p.read_bytes() + bytes(8))),
    "features of another width": ("features.npy", lambda p: np.save(p, np.load(p)[:, :100])),
    "offsets cut short": ("offsets.npy", lambda p: np.save(p, np.load(p)[:-1])),
    "offsets as float": ("offsets.npy", lambda p: np.save(p, np.load(p).astype(np.float32))),
    "empty offsets file": ("offsets.npy", lambda p: p.write_bytes(b"")),
    "pickled offsets": ("offsets.npy", lambda p: np.save(p, np.array([{"x": 1}], dtype=object), allow_pickle=True)),
    "pack.json not JSON": ("pack.json", lambda p: p.write_text("{not json")),
    "items.json cut": ("items.json", lambda p: p.write_text(p.read_text()[:50])),
}


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_a_corrupt_pack_is_refused_in_one_sentence(root, tmp_path, name):
    pack(root, tmp_path)
    file, damage = CORRUPTIONS[name]
    damage(folder(root, tmp_path) / file)
    with pytest.raises(UserError, match="is corrupt") as error:
        pack(root, tmp_path)
    message = str(error.value)
    assert str(folder(root, tmp_path)) in message and "delete that folder" in message
    assert message.count(". ") == 0 and message.endswith(".")
    with pytest.raises(UserError, match="is corrupt"):  # through the datamodule, as `train` reports it
        TextMotionDataModule(str(root), FakeEncoder(), cache_dir=str(tmp_path / "cache")).setup("fit")


def test_items_under_the_loaders_rules_are_packed_beside_the_others(root, tmp_path):
    """The configs' rules (200, per_line) and a run's other rules each keep their own pack: neither rewrites the
    other when training and the protocol's evaluation alternate."""
    loaders = ItemRules(40, 200, "per_line")
    every = pack(root, tmp_path)
    filtered = pack(root, tmp_path, rules=loaders)
    assert every.names == ["000001", "000001#1.15#4", "000002", "000004"]
    assert filtered.names == ["000001", "000001#1.15#4", "000002"]  # 000004 has 230 frames
    assert folder(root, tmp_path, rules=loaders).name == folder(root, tmp_path).name.rsplit("-", 2)[0]
    assert sorted(p.name for p in (tmp_path / "cache" / "packed").iterdir()) == sorted(
        [folder(root, tmp_path).name, folder(root, tmp_path, rules=loaders).name]
    )
    assert pack(root, tmp_path).names == every.names and pack(root, tmp_path, rules=loaders).names == filtered.names


def test_a_pack_of_other_data_is_not_refused_but_rebuilt(root, tmp_path):
    pack(root, tmp_path)
    meta = folder(root, tmp_path) / "pack.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "fingerprint": "someone else's"}))
    assert pack(root, tmp_path).names[0] == "000001"
    assert json.loads(meta.read_text())["fingerprint"] != "someone else's"


def modules(root, tmp_path, **options) -> tuple:
    """Datamodules of the same data: one from its packed cache, one reading the files."""
    made = []
    for packed_option in (True, False):
        module = TextMotionDataModule(
            str(root), FakeEncoder(), cache_dir=str(tmp_path / "cache"), packed=packed_option, **options
        )
        module.setup()
        made.append(module)
    return tuple(made)


def test_items_from_the_pack_equal_items_from_the_files(root, tmp_path):
    mapped, read = modules(root, tmp_path, max_frames=64, batch_size=3)
    assert isinstance(mapped.train_set.split.features, np.memmap)
    assert not isinstance(read.train_set.split.features, np.memmap)
    assert mapped.info.to_dict() == read.info.to_dict()
    for name in ("train_set", "val_set", "test_set"):
        a, b = getattr(mapped, name), getattr(read, name)
        assert len(a) == len(b)
        for index in range(len(a)):
            torch.manual_seed(index)
            first = a[index]
            torch.manual_seed(index)
            second = b[index]
            assert torch.equal(first.pop("motion"), second.pop("motion")) and first == second
            assert np.array_equal(a.clips[index].features, b.clips[index].features)
    assert mapped.test_items()[0]["captions"] == read.test_items()[0]["captions"] == ["a person kicks", "kicking"]
    normalised = [mapped.train_set.clips[i].features for i in range(len(mapped.train_set))]
    assert mapped.info.feature_abs_max == max(float(np.abs(f).max()) for f in normalised)
    batch_a, batch_b = next(iter(mapped.val_dataloader())), next(iter(read.val_dataloader()))
    for key in ("motion", "mask", "length"):
        assert torch.equal(batch_a[key], batch_b[key])
    assert all(torch.equal(batch_a["cond"][k], batch_b["cond"][k]) for k in batch_a["cond"])


def test_loader_workers_are_sized_for_the_machine(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert loader_workers("auto") == 4 and loader_workers(2) == 2 and loader_workers("0") == 0
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert loader_workers("auto") == 0
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert loader_workers("auto") == 1
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert loader_workers("auto") == 0  # the CPU trains: its cores are the training's
    for bad in ("many", -1, 1.5, True):
        with pytest.raises(UserError, match="dataset.num_workers"):
            loader_workers(bad)


# ---------------------------------------------------------------- the caption-embedding cache at scale


def caption_items(count: int) -> list:
    return [CaptionItem(f"{i:06d}", 0, f"a person walks {i} steps") for i in range(count)]


def test_the_caption_cache_is_mapped_from_its_file_not_read(tmp_path):
    items = caption_items(5)
    built = cached_table(FakeEncoder(), items, tmp_path)
    loaded = EmbeddingTable.load(cache_file(FakeEncoder(), tmp_path))
    for array in (loaded.tokens, loaded.pooled):
        assert not array.flags.owndata and not array.flags.writeable  # a read-only view of the mapped file
    keys = [item.text for item in items][::-1]
    a, b = built.lookup(keys), loaded.lookup(keys)
    assert (
        torch.equal(a.tokens, b.tokens) and torch.equal(a.pooled, b.pooled) and torch.equal(a.token_mask, b.token_mask)
    )


class StopsAfter(FakeEncoder):
    """Encodes `calls` batches, then stops as an interrupted run would."""

    def __init__(self, calls: int):
        super().__init__()
        self.limit = calls

    def _embed(self, captions: list):
        if self.calls == self.limit:
            raise KeyboardInterrupt("stopped")
        return super()._embed(captions)


def test_a_long_encoding_keeps_what_it_encoded_when_stopped(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "ENCODE_CHUNK", 4)
    monkeypatch.setattr(cache, "SAVE_EVERY_S", -1.0)  # save after every chunk
    items = caption_items(10)
    with pytest.raises(KeyboardInterrupt):
        cached_table(StopsAfter(2), items, tmp_path)
    assert len(EmbeddingTable.load(cache_file(FakeEncoder(), tmp_path))) == 8
    again = FakeEncoder()
    table = cached_table(again, items, tmp_path)
    assert again.encoded == [item.text for item in items[8:]] and len(table) == 10


def test_captions_are_encoded_on_one_thread_fewer_than_the_cores(monkeypatch):
    seen = []

    class Counting(FakeEncoder):
        def _embed(self, captions: list):
            seen.append(torch.get_num_threads())
            return super()._embed(captions)

    before = torch.get_num_threads()
    for cores, expected in (({0, 1}, 1), ({0}, 1), (set(range(64)), before)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, cores=cores: cores)
        cached_table(Counting(), caption_items(2), None)
        assert seen[-1] == min(expected, before) and torch.get_num_threads() == before
