"""On-disk caption embeddings: one file per encoder, filled incrementally.

`<cache_dir>/text-<encoder.cache_name>.npz` (no pickle; the name, plus for CLIP and precomputed features a hash of
where they come from) holds:
  name     ()          unicode, the encoder's name
  keys     (N,)        unicode, one per caption (`encoder.item_key`)
  pooled   (N, D)      float32
  tokens   (T, D)      float16, every caption's real tokens one after another (no padding)
  lengths  (N,)        int64, token count of each caption (offsets are their cumulative sum)
Only keys missing from the file are encoded, so a run whose captions are all cached never
loads the text model. Writes go to a temporary file then os.replace; an unreadable file is
reported and rebuilt. Encoding is announced in one line (how many captions, the file, its estimated
size) and shows progress with the time left (text.progress); the last line gives the file's real size.
A long encoding (a first run on HumanML3D: ~87k captions) saves what it has every SAVE_EVERY_S
seconds, so an interrupted run goes on from there. `load` maps pooled and tokens from the file
(np.savez stores them uncompressed) instead of reading them: a start does not copy the whole table.
Encoding runs on one torch thread fewer than the cores (`encoding_threads`).
"""

import contextlib
import logging
import os
import re
import tempfile
import time
import zipfile
from pathlib import Path
from typing import BinaryIO, Optional

import numpy as np
import torch

from motiondiff.core.units import duration, megabytes
from motiondiff.text.encoders import CaptionItem, TextEmbedding, TextEncoder
from motiondiff.text.progress import Progress

log = logging.getLogger(__name__)

ENCODE_CHUNK = 2048  # captions encoded at once (bounds the padded token memory)
SAVE_EVERY_S = 300.0  # a long encoding saves what it has this often (at most 5 min lost when stopped)
MAPPED = ("pooled", "tokens")  # the large members, mapped from the file by `load`


class EmbeddingTable:
    """Embeddings of unique keys, stored ragged; `lookup(keys)` pads a batch to its longest."""

    def __init__(self, name: str, keys, pooled: np.ndarray, tokens: np.ndarray, lengths: np.ndarray):
        self.name = name
        self.keys = np.asarray(keys, dtype=str)  # (N,)
        self.pooled = np.asarray(pooled, dtype=np.float32)  # (N, D)
        self.tokens = np.asarray(tokens, dtype=np.float16)  # (T, D)
        self.lengths = np.asarray(lengths, dtype=np.int64)  # (N,)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])  # (N+1,)
        self.row = {key: index for index, key in enumerate(self.keys.tolist())}
        assert len(self.row) == len(self.keys), "duplicate keys in an embedding table"
        assert len(self.pooled) == len(self.keys) == len(self.lengths) and self.offsets[-1] == len(self.tokens)
        assert self.pooled.shape[1:] == self.tokens.shape[1:] and self.pooled.ndim == 2

    @property
    def dim(self) -> int:
        return self.pooled.shape[1]

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: str) -> bool:
        return key in self.row

    def lookup(self, keys: list) -> TextEmbedding:
        """The embeddings of `keys` (each must be in the table), tokens padded to the batch's longest."""
        rows = [self.row[key] for key in keys]
        lengths = self.lengths[rows]  # (B,)
        # Padded in numpy (one thread), as a data loader calls this for every batch.
        tokens = np.zeros((len(rows), int(lengths.max(initial=0)), self.dim), np.float32)  # (B, L, D)
        for index, row in enumerate(rows):
            tokens[index, : lengths[index]] = self.tokens[self.offsets[row] : self.offsets[row + 1]]
        mask = np.arange(tokens.shape[1])[None] < lengths[:, None]  # (B, L)
        pooled = torch.from_numpy(np.array(self.pooled[rows], dtype=np.float32))  # (B, D)
        return TextEmbedding(pooled, torch.from_numpy(tokens), torch.from_numpy(mask))

    @staticmethod
    def empty(name: str, dim: int) -> "EmbeddingTable":
        """A table with no keys."""
        return EmbeddingTable(name, np.zeros(0, str), np.zeros((0, dim)), np.zeros((0, dim)), np.zeros(0))

    @staticmethod
    def from_embedding(name: str, keys: list, embedding: TextEmbedding) -> "EmbeddingTable":
        """A table of `keys` holding the rows of `embedding`."""
        lengths = embedding.token_mask.sum(1).numpy()  # (B,)
        tokens = embedding.tokens[embedding.token_mask].numpy()  # (T, D), row-major so captions stay in order
        return EmbeddingTable(name, keys, embedding.pooled.numpy(), tokens, lengths)

    @staticmethod
    def concat(tables: list) -> "EmbeddingTable":
        """The tables one after another (their keys must be distinct)."""
        assert len({(table.name, table.dim) for table in tables}) == 1
        return EmbeddingTable(
            tables[0].name,
            np.concatenate([table.keys for table in tables]),
            np.concatenate([table.pooled for table in tables]),
            np.concatenate([table.tokens for table in tables]),
            np.concatenate([table.lengths for table in tables]),
        )

    def save(self, path: Path) -> None:
        """Write atomically: a temporary file beside `path`, then os.replace."""
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as file:
                np.savez(
                    file,
                    name=np.array(self.name),
                    keys=self.keys,
                    pooled=self.pooled,
                    tokens=self.tokens,
                    lengths=self.lengths,
                )
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    @staticmethod
    def load(path: Path) -> "EmbeddingTable":
        """Read a table written by `save` (no pickle), pooled and tokens memory-mapped where the file allows. The file
        is opened once: a table another process saves meanwhile (os.replace) is not mixed into this one."""
        with open(path, "rb") as file, np.load(file, allow_pickle=False) as data:
            name, keys, lengths = str(data["name"]), data["keys"], data["lengths"]
            mapped = mapped_members(file, MAPPED)
            arrays = {member: mapped[member] if member in mapped else data[member] for member in MAPPED}
            return EmbeddingTable(name, keys, arrays["pooled"], arrays["tokens"], lengths)


def mapped_members(file: BinaryIO, names: tuple) -> dict:
    """{name: read-only memmap} of the plain numeric members of an uncompressed .npz open as `file` (the others
    left out)."""
    mapped = {}
    with zipfile.ZipFile(file) as archive:
        for name in names:
            try:
                info = archive.getinfo(f"{name}.npy")
                if info.compress_type != zipfile.ZIP_STORED:
                    continue
                file.seek(info.header_offset + 26)  # the local header's name and extra-field lengths
                skip = int.from_bytes(file.read(2), "little") + int.from_bytes(file.read(2), "little")
                file.seek(info.header_offset + 30 + skip)
                version = np.lib.format.read_magic(file)
                read_header = (
                    np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                )
                shape, fortran, dtype = read_header(file)
                if dtype.hasobject or fortran or 0 in shape:
                    continue
                mapped[name] = np.memmap(file, dtype=dtype, mode="r", offset=file.tell(), shape=shape)
            except (KeyError, OSError, ValueError):
                continue  # read by np.load instead
    return mapped


def cache_file(encoder: TextEncoder, cache_dir) -> Path:
    """`<cache_dir>/text-<encoder.cache_name with unsafe characters replaced>.npz`."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder.cache_name).strip("_.")
    return Path(cache_dir) / f"text-{safe}.npz"


def _load_or_empty(encoder: TextEncoder, path: Path) -> EmbeddingTable:
    """The cached table at `path`, or an empty one when it is absent, unreadable or another encoder's."""
    if not path.exists():
        return EmbeddingTable.empty(encoder.name, encoder.dim)
    try:
        table = EmbeddingTable.load(path)
    except Exception as error:  # a truncated or foreign file: rebuild it
        log.warning(
            "text embedding cache %s is unreadable (%s: %s); recomputing it.", path, type(error).__name__, error
        )
        return EmbeddingTable.empty(encoder.name, encoder.dim)
    if table.name != encoder.name or table.dim != encoder.dim:
        log.warning(
            "text embedding cache %s belongs to '%s' (dim %d), not '%s'; recomputing it.",
            path,
            table.name,
            table.dim,
            encoder.name,
        )
        return EmbeddingTable.empty(encoder.name, encoder.dim)
    return table


def cached_table(encoder: TextEncoder, items: list, cache_dir: Optional[Path]) -> EmbeddingTable:
    """A table holding every item's key: loaded from the cache, missing keys encoded and saved.

    With cache_dir None nothing is read or written.
    """
    path = cache_file(encoder, cache_dir) if cache_dir is not None else None
    table = _load_or_empty(encoder, path) if path is not None else EmbeddingTable.empty(encoder.name, encoder.dim)
    missing = {}
    for item in items:
        key = encoder.item_key(item)
        if key not in table and key not in missing:
            missing[key] = item
    if not missing:
        return table
    announce(encoder, list(missing.values()), len(table), path)
    keys, todo = list(missing), list(missing.values())
    tables, saved = [table], time.monotonic()
    with encoding_threads(), Progress(len(todo), f"encoding captions with {encoder.name}", unit="captions") as progress:
        for start in range(0, len(todo), ENCODE_CHUNK):
            chunk = encoder.encode_items(todo[start : start + ENCODE_CHUNK], progress=progress.update)
            tables.append(EmbeddingTable.from_embedding(encoder.name, keys[start : start + ENCODE_CHUNK], chunk))
            if path is not None and time.monotonic() - saved > SAVE_EVERY_S and start + ENCODE_CHUNK < len(todo):
                tables = [EmbeddingTable.concat(tables)]
                tables[0].save(path)  # an interrupted run goes on from here
                saved = time.monotonic()
    table = EmbeddingTable.concat(tables)
    if path is not None:
        table.save(path)
        log.info(
            "Encoded %s captions in %s; %s holds %s (%s).",
            f"{len(todo):,}",
            duration(progress.elapsed()),
            path,
            f"{len(table):,}",
            megabytes(path.stat().st_size),
        )
    return table


@contextlib.contextmanager
def encoding_threads():
    """Within the block torch uses one thread fewer than the cores (at least one); restored after."""
    # On the 2-core Xeon with other work beside it, MiniLM encoded 260-290 captions/s on one thread and 60-70 on two,
    # which spin-wait for each other (benchmarks/data_bench.py); idle, two threads did 476/s and one 271/s.
    before = torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, min(before, cores - 1)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def estimated_size(encoder: TextEncoder, items: list) -> float:
    """About how many bytes the cache grows by for `items`: pooled float32 and ~1.3 float16 tokens a word, plus 2."""
    tokens = sum(1.3 * len(item.text.split()) + 2 for item in items)
    return len(items) * encoder.dim * 4 + tokens * encoder.dim * 2


def announce(encoder: TextEncoder, items: list, cached: int, path: Optional[Path]) -> None:
    """One line saying what is about to be encoded and written where (or that nothing is written)."""
    count = f"{len(items):,} captions" + (f"; {cached:,} already cached" if cached else "")
    if path is None:
        log.info("Encoding %s with %s (not cached on disk).", count, encoder.name)
        return
    log.info(
        "Caching caption embeddings (%s, ~%s) to %s with %s; later runs reuse it.",
        count,
        megabytes(estimated_size(encoder, items)),
        path,
        encoder.name,
    )


def lookup_items(table: EmbeddingTable, encoder: TextEncoder, items: list) -> TextEmbedding:
    """The embeddings of dataset caption items, in order."""
    return table.lookup([encoder.item_key(item) for item in items])


__all__ = ["CaptionItem", "EmbeddingTable", "cache_file", "cached_table", "lookup_items"]
