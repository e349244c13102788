"""A split's motions packed into one memory-mapped array, built once from the dataset's files and reused.

Reading tens of thousands of small .npy and .txt files at every start does not scale (HumanML3D has
~29k motions with mirrors), so the first run reads each split once, item by item as
humanml3d_layout.read_split does (the same items, the same skips), and writes under
`<cache_dir>/packed/<layout>-<split>-<hash of the root's path>/`:

    features.npy   (S, F) float32   every item's raw features, one item after another
    offsets.npy    (N+1,) int64     item i is features[offsets[i]:offsets[i+1]]
    range.npy      (2, F) float32   per-feature minimum and maximum over the split
    items.json     item names [N], captions [N][k] as [motion_id, line, text, tokens], the skips
    pack.json      format version, fingerprint, shapes; written last, it marks a complete cache

Later runs memory-map features.npy (pages are read on demand and shared by loader workers). The
fingerprint covers the layout, the item rules (min_frames, max_source_frames, subclips), the split file
and the size and mtime of every motion and caption file the split lists: when it differs the split is
packed again. A cache that does not match its own description (truncated, wrong shape or dtype,
unreadable) is refused with a UserError naming the folder to delete. Nothing here unpickles (np.load
with allow_pickle=False, JSON).
Processes that pack the same split at once (the jobs of a sweep on a new dataset) each write a temporary
folder; the first to finish installs it and the others find it there and keep it (`install`).
Bump VERSION whenever what read_split makes of the files under the same rules changes.
"""

import errno
import hashlib
import json
import logging
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from motiondiff.core.errors import UserError, first_sentence, require_file
from motiondiff.data.formats.humanml3d_layout import (
    LOADERS_MAX_SOURCE_FRAMES,
    ItemRules,
    Layout,
    MotionClip,
    SkipTally,
    read_split_ids,
    split_clips,
)
from motiondiff.text.encoders import CaptionItem
from motiondiff.text.progress import Progress

log = logging.getLogger(__name__)

VERSION = 1
HEADER_BYTES = 128  # features.npy's header, reserved before the data is streamed in (a multiple of 64)
INSTALL_TRIES = 3  # installs and reads tried while other processes replace the same outdated pack
FILES = ("features.npy", "offsets.npy", "range.npy", "items.json", "pack.json")


@dataclass
class PackedSplit:
    """The items of one split: raw features (S, F) of all items, their offsets (N+1,), names and captions."""

    features: np.ndarray  # (S, F) float32, memory-mapped when read from the cache
    offsets: np.ndarray  # (N+1,) int64
    names: list  # [N] str
    captions: list  # [N] tuple of CaptionItem, at least one each
    low: np.ndarray  # (F,) float32, per-feature minimum
    high: np.ndarray  # (F,) float32, per-feature maximum
    path: Optional[Path] = None  # features.npy when memory-mapped (re-mapped, not copied, when pickled to a worker)

    def __len__(self) -> int:
        return len(self.names)

    def item(self, index: int) -> np.ndarray:
        """Item `index`'s raw features (T, F), a view (read-only when memory-mapped)."""
        return self.features[self.offsets[index] : self.offsets[index + 1]]

    def lengths(self) -> np.ndarray:
        """Every item's frames (N,)."""
        return np.diff(self.offsets)

    def clips(self) -> list:
        """The items as MotionClips whose features are views into the packed array."""
        return [
            MotionClip(name, self.item(i), captions)
            for i, (name, captions) in enumerate(zip(self.names, self.captions))
        ]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self.path is not None:
            state["features"] = None  # the worker maps the file again instead of receiving a copy
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.features is None:
            self.features = np.load(self.path, mmap_mode="r", allow_pickle=False)


def pack_clips(clips: list, features: int) -> PackedSplit:
    """An in-memory PackedSplit of read_split's clips; each clip's features become a view into its array."""
    lengths = [len(clip.features) for clip in clips]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)  # (N+1,)
    array = np.empty((int(offsets[-1]), features), np.float32)  # (S, F)
    for clip, start, end in zip(clips, offsets[:-1], offsets[1:]):
        array[start:end] = clip.features
        clip.features = array[start:end]
    low, high = (array.min(0), array.max(0)) if len(array) else (np.zeros(features, np.float32),) * 2
    return PackedSplit(
        array, offsets, [clip.name for clip in clips], [tuple(clip.captions) for clip in clips], low, high
    )


def pack_folder(cache_dir, root: Path, layout: Layout, split: str, rules: ItemRules) -> Path:
    """`<cache_dir>/packed/<layout>-<split>-<hash of the resolved root>`: one folder per dataset and split, and one
    more (`-<max_source_frames>-<subclips>` added) for items made under other rules than the loaders' (a run trained
    on every length, evaluated under the protocol's filter, keeps both packs instead of rewriting one each time)."""
    where = hashlib.sha1(str(Path(root).expanduser().resolve()).encode()).hexdigest()[:10]
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in split)
    loaders = (rules.max_source_frames, rules.subclips) == (LOADERS_MAX_SOURCE_FRAMES, "per_line")
    other = "" if loaders else f"-{rules.max_source_frames or 'all'}-{rules.subclips}"
    return Path(cache_dir) / "packed" / f"{layout.name}-{safe}-{where}{other}"


def fingerprint(root: Path, layout: Layout, split: str, rules: ItemRules) -> str:
    """A hash of what the split's items are made from: layout, item rules, split file, each file's size and mtime."""
    path = layout.split_path(root, split)
    digest = hashlib.sha1(
        f"v{VERSION}|{layout.name}|{layout.representation}|{layout.features}|{layout.clip_fps}|"
        f"{layout.features_dir}|{layout.captions_dir}|{rules.min_frames}|{rules.max_source_frames}|{rules.subclips}|".encode()
    )
    digest.update(path.read_bytes())
    folders = [(os.path.join(root, layout.features_dir), ".npy"), (os.path.join(root, layout.captions_dir), ".txt")]
    for motion_id in read_split_ids(path):
        for folder, suffix in folders:
            try:
                stat = os.stat(os.path.join(folder, motion_id + suffix))
                digest.update(f"{stat.st_size}:{stat.st_mtime_ns};".encode())
            except OSError:
                digest.update(b"-;")
    return digest.hexdigest()


def npy_header(shape: tuple, dtype: str = "<f4") -> bytes:
    """A .npy version 1.0 header of exactly HEADER_BYTES bytes for a C-ordered array."""
    text = repr({"descr": dtype, "fortran_order": False, "shape": tuple(int(n) for n in shape)})
    body = HEADER_BYTES - 10
    assert len(text) < body, text
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", body) + (text.ljust(body - 1) + "\n").encode("latin1")


def write_pack(root: Path, layout: Layout, split: str, rules: ItemRules, folder: Path, stamp: str) -> None:
    """Read the split's files one motion at a time (as read_split) and write the pack into the empty `folder`."""
    path = layout.split_path(root, split)
    require_file(path, f"{split} split file", layout.hint)
    tally, names, captions, lengths = SkipTally(), [], [], []
    low = np.full(layout.features, np.inf, np.float32)  # (F,)
    high = np.full(layout.features, -np.inf, np.float32)  # (F,)
    progress = Progress(len(read_split_ids(path)), f"packing the {split} split", unit="motions")
    with progress, open(folder / "features.npy", "wb") as out:
        out.write(bytes(HEADER_BYTES))
        for clip in split_clips(root, layout, split, rules, tally, progress.update):
            out.write(np.ascontiguousarray(clip.features, dtype=np.float32).data)
            np.minimum(low, clip.features.min(0), out=low)
            np.maximum(high, clip.features.max(0), out=high)
            names.append(clip.name)
            captions.append([[c.motion_id, c.line, c.text, list(c.tokens)] for c in clip.captions])
            lengths.append(len(clip.features))
        out.seek(0)
        out.write(npy_header((sum(lengths), layout.features)))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)  # (N+1,)
    np.save(folder / "offsets.npy", offsets)
    np.save(folder / "range.npy", np.stack([low, high]))
    skips = {"where": str(path), "counts": dict(tally.counts), "first": tally.first}
    (folder / "items.json").write_text(json.dumps({"names": names, "captions": captions, "skips": skips}))
    meta = {"version": VERSION, "fingerprint": stamp, "items": len(names), "frames": int(offsets[-1])}
    (folder / "pack.json").write_text(json.dumps({**meta, "features": layout.features, "dtype": "float32"}))


class CorruptPack(Exception):
    """A pack that does not match its own description (the reason is the message)."""


def read_pack(folder: Path, stamp: str, features: int) -> Optional[PackedSplit]:
    """The pack in `folder`; None when absent or made from other data (`stamp` differs); CorruptPack when broken."""
    try:
        meta = json.loads((folder / "pack.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise CorruptPack(f"pack.json is unreadable: {first_sentence(error)}") from None
    if not isinstance(meta, dict):
        raise CorruptPack("pack.json is not a JSON object")
    if meta.get("version") != VERSION or meta.get("fingerprint") != stamp:
        return None
    try:
        items, frames = int(meta["items"]), int(meta["frames"])
        array = np.load(folder / "features.npy", mmap_mode="r", allow_pickle=False)  # (S, F)
        offsets = np.load(folder / "offsets.npy", allow_pickle=False)  # (N+1,)
        bounds = np.load(folder / "range.npy", allow_pickle=False)  # (2, F)
        listing = json.loads((folder / "items.json").read_text(encoding="utf-8"))
        names, rows, skips = listing["names"], listing["captions"], listing["skips"]
    except (OSError, ValueError, EOFError, KeyError, TypeError) as error:
        raise CorruptPack(f"{type(error).__name__}: {first_sentence(error)}") from None
    if array.dtype != np.float32 or array.shape != (frames, features):
        raise CorruptPack(f"features.npy holds {array.dtype} {array.shape}, not float32 ({frames}, {features})")
    if (folder / "features.npy").stat().st_size != array.offset + array.nbytes:
        raise CorruptPack("features.npy is longer than its header says")
    if offsets.dtype != np.int64 or offsets.shape != (items + 1,) or offsets[0] != 0 or offsets[-1] != frames:
        raise CorruptPack(f"offsets.npy holds {offsets.dtype} {offsets.shape}, not int64 offsets of {items} items")
    if (np.diff(offsets) <= 0).any():
        raise CorruptPack("offsets.npy is not increasing")
    if bounds.dtype != np.float32 or bounds.shape != (2, features):
        raise CorruptPack(f"range.npy holds {bounds.dtype} {bounds.shape}, not float32 (2, {features})")
    if len(names) != items or len(rows) != items or not all(rows):
        raise CorruptPack(f"items.json does not list {items} items with captions")
    try:
        captions = [tuple(CaptionItem(str(m), int(n), str(t), tuple(k)) for m, n, t, k in row) for row in rows]
    except (TypeError, ValueError) as error:
        raise CorruptPack(f"items.json has a malformed caption: {first_sentence(error)}") from None
    tally = SkipTally()
    tally.counts.update(skips.get("counts", {}))
    tally.first.update(skips.get("first", {}))
    tally.report(str(skips.get("where", folder)))
    return PackedSplit(array, offsets, [str(n) for n in names], captions, bounds[0], bounds[1], folder / "features.npy")


def install(temporary: Path, folder: Path, stamp: str) -> None:
    """Move the finished `temporary` pack to `folder`, replacing an outdated one there. A pack of the same data
    there (another process, e.g. the other job of a sweep, packed the split first) is kept and ours dropped."""
    stale = Path(tempfile.mkdtemp(prefix=f".{folder.name}.stale-", dir=folder.parent))
    try:
        for attempt in range(INSTALL_TRIES):
            try:
                os.rename(temporary, folder)  # atomic; refused while folder holds a pack
                return
            except OSError as error:
                if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
            if packed_stamp(folder) == (VERSION, stamp):
                return  # theirs kept
            try:
                os.replace(folder, stale / str(attempt))  # the outdated pack out of the way, then try again
            except FileNotFoundError:
                pass  # another process moved it first
        raise UserError(f"the packed motion cache '{folder}' kept changing while it was installed; run it again.")
    finally:
        shutil.rmtree(temporary, ignore_errors=True)  # gone already where it was installed
        shutil.rmtree(stale, ignore_errors=True)


def packed_stamp(folder: Path) -> Optional[tuple]:
    """(version, fingerprint) from the pack's pack.json, or None where there is none to read."""
    try:
        meta = json.loads((folder / "pack.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (meta.get("version"), meta.get("fingerprint")) if isinstance(meta, dict) else None


def packed_split(root: Path, layout: Layout, split: str, rules: ItemRules, cache_dir) -> PackedSplit:
    """The split from its pack under cache_dir, packing it first when absent or outdated (see the module docstring)."""
    folder = pack_folder(cache_dir, root, layout, split, rules)
    stamp = fingerprint(root, layout, split, rules)
    try:
        found = read_pack(folder, stamp, layout.features)
        if found is not None:
            return found
        if (folder / "pack.json").exists():
            log.info("The %s split of '%s' changed since it was packed; packing it again.", split, root)
        ids = len(read_split_ids(layout.split_path(root, split)))
        log.info(
            "Packing the %s split of '%s' (%s motions) into %s; later runs map it instead of reading the files.",
            split,
            root,
            f"{ids:,}",
            folder,
        )
        folder.parent.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
        os.chmod(temporary, 0o755)  # readable like the dataset's other caches (mkdtemp makes it private)
        try:
            write_pack(root, layout, split, rules, temporary, stamp)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        install(temporary, folder, stamp)
        found = read_pack(folder, stamp, layout.features)
        for _ in range(INSTALL_TRIES):  # an outdated pack being replaced by another process too: its rename follows
            if found is not None:
                break
            time.sleep(0.1)
            found = read_pack(folder, stamp, layout.features)
    except CorruptPack as error:
        raise UserError(
            f"the packed motion cache '{folder}' is corrupt ({error}); delete that folder and the next run "
            f"packs the {split} split of '{root}' again."
        ) from None
    if found is None:
        raise UserError(f"the {split} split of '{root}' changed while it was being packed; run the command again.")
    return found
