"""Text-to-motion data: captioned motions in padded batches with their caption embeddings.

Sources (`root`): a HumanML3D directory (`layout=humanml3d`, see humanml3d_layout.py), a course
lab directory (`layout=lab`, see lab_layout.py), or `procedural`: the embedded procedural
dataset, written once in the HumanML3D layout under `<cache_dir>/procedural_text_motion-v<version>-n<N>-seed<S>`
and then read by the same reader as real data.

Training items take a random crop of at most `max_frames` frames (lengths are not rounded to a
multiple of 4 as some loaders do; nothing here needs it) and one of their captions at random on
each access; validation and test items take their first `max_frames` frames and their first
caption, so they are the same every epoch. Features are standardised per feature by a
`FeatureNormalizer` whose statistics travel with the checkpoint. Every caption of every split is
encoded once through the on-disk embedding cache (`<cache_dir>/text-<encoder>.npz`, by default
under `<root>/.cache`), so later runs and later epochs never call the text encoder. What is written
to disk is announced in one line first, and slow steps show progress (see text.progress).

`training_vocabulary` reads back a dataset's training captions as a `text.vocabulary.Vocabulary`,
so generation can warn about a prompt made mostly of words the model never saw.

Batches: motion (B, N, F) normalised float32, zero past each length; mask (B, N) bool, True on
valid frames; cond {"text_pooled" (B, D), "text_tokens" (B, L, D), "text_mask" (B, L) bool};
caption [B str]; name [B str]; length (B,) long. N is the longest length in the batch.

Each split is read once into a packed cache (data.packed: one memory-mapped array of all its motions,
rebuilt when the files change), so a start reads a few files instead of one or two per motion, and
items are normalised when they are read. `packed=false` reads the files at every start instead.
Loader workers: `num_workers=auto` is min(4, cores - 1) where a CUDA GPU trains and 0 on the CPU (see
`loader_workers`); workers start again every epoch, so a crop drawn in a worker still follows the run's
seed and a resumed run (training.reproducibility).
"""

import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence, Union

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from motiondiff.core.checks import whole_number
from motiondiff.core.errors import UserError
from motiondiff.data.formats.humanml3d_layout import (
    HUMANML3D_LAYOUT,
    SUBCLIPS,
    ItemRules,
    check_root,
    read_split,
    read_split_ids,
    split_caption_items,
)
from motiondiff.data.formats.kit_layout import KIT_LAYOUT
from motiondiff.data.formats.lab_layout import LAB_LAYOUT
from motiondiff.data.info import TextMotionData
from motiondiff.data.normalizers import FeatureNormalizer
from motiondiff.data.packed import PackedSplit, pack_clips, packed_split
from motiondiff.data.procedural.actions import ACTIONS as PROCEDURAL_ACTIONS
from motiondiff.data.procedural.text_motion import MANIFEST as PROCEDURAL_MANIFEST
from motiondiff.data.procedural.text_motion import dataset_name, write_procedural_dataset
from motiondiff.data.representations.registry import get_representation
from motiondiff.text.cache import EmbeddingTable, cached_table
from motiondiff.text.encoders import TextEncoder
from motiondiff.text.vocabulary import Vocabulary, build_vocabulary

log = logging.getLogger(__name__)

LAYOUTS = {"humanml3d": HUMANML3D_LAYOUT, "lab": LAB_LAYOUT, "kit": KIT_LAYOUT}
PROCEDURAL_DEFAULTS = {"num_motions": 2000, "seed": 0}


def dataset_fingerprint(root: Path, layout, splits: dict) -> str:
    """A short id of a dataset: its layout and the motion ids of its train/val/test splits (not its path)."""
    digest = hashlib.sha1(layout.name.encode())
    for split in ("train", "val", "test"):
        path = layout.split_path(root, splits[split])
        ids = read_split_ids(path) if path.is_file() else []
        digest.update(f"|{split}:".encode() + "\n".join(ids).encode())
    return f"{layout.name}-{digest.hexdigest()[:12]}"


def training_vocabulary(source: str, layout: str, split: str = "train") -> Optional[Vocabulary]:
    """The words of a dataset's training captions (None when `source` is no longer readable there).

    Known actions: the procedural generator's action names for the procedural dataset, else the
    captions' most frequent verbs."""
    root, reader = Path(source).expanduser(), LAYOUTS.get(layout)
    if reader is None or not reader.split_path(root, split).is_file():
        return None
    try:
        items = split_caption_items(root, reader, split)
    except (OSError, UserError) as error:  # a vocabulary is only for a warning: never fail generation over it
        log.debug("cannot read the training captions under '%s' (%s).", root, error)
        return None
    if not items:
        return None
    actions = (
        [name.replace("_", " ") for name in PROCEDURAL_ACTIONS] if (root / PROCEDURAL_MANIFEST).is_file() else None
    )
    return build_vocabulary([(item.text, item.tokens) for item in items], actions)


class PackedClip:
    """One item as evaluation reads it: name, captions and normalised features (T, F) computed on access."""

    def __init__(self, dataset: "TextMotionDataset", index: int):
        self.dataset, self.index = dataset, index
        self.name, self.captions = dataset.split.names[index], dataset.split.captions[index]

    @property
    def features(self) -> np.ndarray:
        return self.dataset.normalized(self.index).numpy()  # (T, F)


class TextMotionDataset(Dataset):
    """Items of normalised motions (T, F) with captions: random crop and caption in training, fixed otherwise."""

    def __init__(self, split: PackedSplit, keys: list, max_frames: int, train: bool, normalizer: FeatureNormalizer):
        assert len(split) == len(keys) and all(len(c) == len(k) for c, k in zip(split.captions, keys))
        self.split, self.keys, self.max_frames, self.train = split, keys, max_frames, train
        self.mean = normalizer.mean.detach().cpu().numpy().copy()  # (F,) float32
        self.std = normalizer.std.detach().cpu().numpy().copy()  # (F,) float32

    def __len__(self) -> int:
        return len(self.split)

    @property
    def clips(self) -> list:
        """Every item as a PackedClip (name, captions, normalised features)."""
        return [PackedClip(self, index) for index in range(len(self))]

    def lengths(self) -> list:
        """Every item's length after cropping."""
        return np.minimum(self.split.lengths(), self.max_frames).tolist()

    def normalized(self, index: int, start: int = 0, length: Optional[int] = None) -> torch.Tensor:
        """Frames [start, start + length) of item `index`, normalised: (length, F) float32."""
        raw = self.split.item(index)[start : None if length is None else start + length]  # (length, F)
        # numpy, not torch: the same float32 arithmetic without waking torch's thread pool for every item
        return torch.from_numpy((raw - self.mean) / self.std)

    def __getitem__(self, index: int) -> dict:
        frames = int(self.split.offsets[index + 1] - self.split.offsets[index])
        length = min(frames, self.max_frames)
        captions = self.split.captions[index]
        if self.train:
            start = int(torch.randint(frames - length + 1, ()))
            choice = int(torch.randint(len(captions), ()))
        else:
            start, choice = 0, 0
        return {
            "motion": self.normalized(index, start, length),  # (n, F)
            "length": length,
            "caption": captions[choice].text,
            "key": self.keys[index][choice],
            "name": self.split.names[index],
        }


def loader_workers(value) -> int:
    """dataset.num_workers: a count, or `auto`: min(4, cores - 1) where a CUDA GPU trains (0 on one core), else 0."""
    # On the CPU a training step needs every core and takes ~1000x longer than loading its batch (data_bench.py).
    if str(value).strip().lower() == "auto":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(0, min(4, cores - 1)) if torch.cuda.is_available() else 0
    if isinstance(value, bool) or not str(value).strip().isdigit():
        raise UserError(
            f"dataset.num_workers={value!r} is not a whole number >= 0 or auto; e.g. dataset.num_workers=auto."
        )
    return int(value)


@dataclass
class TextMotionCollate:
    """Pad items to the batch's longest motion and look their captions up in the embedding table."""

    table: EmbeddingTable

    def __call__(self, items: list) -> dict:
        lengths = torch.tensor([item["length"] for item in items], dtype=torch.long)  # (B,)
        features = items[0]["motion"].shape[-1]
        padded = np.zeros((len(items), int(lengths.max()), features), np.float32)  # (B, N, F)
        for row, item in enumerate(items):
            padded[row, : item["length"]] = item["motion"].numpy()
        motion = torch.from_numpy(padded)  # (B, N, F)
        mask = torch.arange(motion.shape[1])[None] < lengths[:, None]  # (B, N)
        cond = self.table.lookup([item["key"] for item in items]).as_cond()
        return {
            "motion": motion,
            "mask": mask,
            "cond": cond,
            "caption": [item["caption"] for item in items],
            "name": [item["name"] for item in items],
            "length": lengths,
        }


class TextMotionDataModule(L.LightningDataModule):
    """Train/validation/test text-motion items of one dataset, with its normaliser and description (`info`)."""

    def __init__(
        self,
        root: Optional[str],
        text_encoder: TextEncoder,
        layout: str = "humanml3d",
        max_frames: int = 196,
        min_frames: int = 40,
        batch_size: int = 64,
        num_workers: Union[int, str] = 0,
        cache_dir: Optional[str] = None,
        procedural: Optional[Mapping] = None,
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "test",
        packed: bool = True,
        max_source_frames: Optional[int] = None,
        subclips: str = "per_span",
        statistics_files: Optional[Sequence[str]] = None,
    ):
        """max_source_frames and subclips: which items a split holds (ItemRules). The configs give the dataset
        loaders' rules (200, per_line); these defaults are what runs saved before them were built with.
        statistics_files: the mean and std files under the root in place of the layout's own (dataset=lab: the
        course's tmr-rifke pair, which its diffusion data reads; None, as runs saved before: rifke-{mean,std}.pt)."""
        super().__init__()
        if root is None or not str(root).strip():
            raise UserError(
                "dataset.root is not set: give the dataset directory (e.g. dataset.root=/data/HumanML3D), "
                "or use dataset=text_motion for the embedded procedural data."
            )
        if layout not in LAYOUTS:
            raise UserError(f"dataset.layout='{layout}' is not one of: {', '.join(LAYOUTS)}.")
        if str(root) == "procedural" and layout != "humanml3d":
            raise UserError(
                f"dataset.root=procedural is written in the humanml3d layout; set dataset.layout=humanml3d, "
                f"not '{layout}'."
            )
        max_frames, min_frames = (
            whole_number("dataset.max_frames", max_frames),
            whole_number("dataset.min_frames", min_frames),
        )
        batch_size = whole_number("dataset.batch_size", batch_size)
        if subclips not in SUBCLIPS:
            raise UserError(f"dataset.subclips={subclips!r} is not one of: {', '.join(SUBCLIPS)}.")
        if max_source_frames is not None:
            why = f"longer than min_frames={min_frames}; or null to keep every length"
            max_source_frames = whole_number("dataset.max_source_frames", max_source_frames, min_frames + 1, why)
        self.rules = ItemRules(min_frames, max_source_frames, subclips)
        self.root, self.text_encoder, self.layout = str(root), text_encoder, LAYOUTS[layout]
        if statistics_files is not None:
            count = len(self.layout.required_files)
            files = () if isinstance(statistics_files, str) else tuple(statistics_files)
            if len(files) != count or not all(isinstance(name, str) and name for name in files):
                raise UserError(
                    f"dataset.statistics_files={statistics_files!r} must be a list of {count} file names under "
                    "dataset.root, the mean's then the std's (e.g. [tmr-rifke-mean.pt,tmr-rifke-std.pt]), or null."
                )
            self.layout = replace(self.layout, required_files=files)
        self.max_frames, self.min_frames, self.batch_size, self.num_workers = (
            max_frames,
            min_frames,
            batch_size,
            loader_workers(num_workers),
        )
        self.cache_dir, self.procedural, self.packed = cache_dir, dict(procedural or {}), bool(packed)
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        self.representation = get_representation(self.layout.representation)
        self.normalizer = FeatureNormalizer(self.layout.features)
        self.data_root: Optional[Path] = None
        self.table: Optional[EmbeddingTable] = None
        self.caption_items: list = []
        self.packs: dict = {}  # split name -> PackedSplit
        self.train_set = self.val_set = self.test_set = None

    # ------------------------------------------------------------ loading

    def resolve_root(self) -> Path:
        """The dataset directory: `root`, or the procedural dataset (generated on first use)."""
        if self.root != "procedural":
            return Path(self.root).expanduser()
        settings = {**PROCEDURAL_DEFAULTS, **self.procedural}
        name = dataset_name(settings["num_motions"], settings["seed"], settings.get("captions_per_motion", 3))
        return write_procedural_dataset(Path(self.cache_dir or "data") / name, **settings)

    def embedding_dir(self) -> Path:
        """Where the caption embedding cache lives: cache_dir, else <root>/.cache."""
        return Path(self.cache_dir) if self.cache_dir else self.data_root / ".cache"

    def setup(self, stage: Optional[str] = None) -> None:
        """Load train and val once (and test for stage test/predict/None); fit the normaliser; embed captions."""
        if self.train_set is None:
            self._setup_fit()
        if stage in (None, "test", "predict") and self.test_set is None:
            split = self._split("test")
            self._embed([item for captions in split.captions for item in captions])
            self.test_set = self._dataset(split, train=False)

    def _split(self, name: str) -> PackedSplit:
        """Split `name` (train, val or test) from its packed cache, or from the files with packed=false."""
        if name not in self.packs:
            split, root = self.splits[name], self.data_root
            try:
                if self.packed:
                    self.packs[name] = packed_split(root, self.layout, split, self.rules, self.embedding_dir())
            except OSError as error:  # e.g. a read-only cache folder: read the files, as packed=false does
                log.warning(
                    "cannot pack the %s split under '%s' (%s); reading its files.", split, self.embedding_dir(), error
                )
            if name not in self.packs:
                clips = read_split(root, self.layout, split, self.rules)
                self.packs[name] = pack_clips(clips, self.layout.features)
        return self.packs[name]

    def _test_captions(self) -> list:
        """The test split's captions, embedded with the rest at fit time so evaluation never loads the encoder."""
        if not self.layout.split_path(self.data_root, self.splits["test"]).is_file():
            return []
        try:
            return [item for captions in self._split("test").captions for item in captions]
        except UserError as error:  # training does not need the test split: evaluation reports it
            log.debug("the test split is not loadable (%s); reading its captions only.", error)
            return split_caption_items(self.data_root, self.layout, self.splits["test"])

    def _setup_fit(self) -> None:
        root = self.resolve_root()
        check_root(root, self.layout, [self.splits["train"], self.splits["val"]])
        self.data_root = root
        self.dataset_id = dataset_fingerprint(root, self.layout, self.splits)
        train, val = self._split("train"), self._split("val")
        self.normalizer.set_statistics(*self.layout.statistics(root, self.layout, train.clips()))
        captions = [item for split in (train, val) for captions in split.captions for item in captions]
        self._embed(captions + self._test_captions())
        self.train_set, self.val_set = self._dataset(train, train=True), self._dataset(val, train=False)
        bounds = self.normalizer.normalize(torch.from_numpy(np.stack([train.low, train.high])))  # (2, F)
        self.feature_abs_max = float(bounds.abs().max())  # normalising is monotonic per feature: the extremes bound it
        if len(self.train_set) < self.batch_size:
            log.warning(
                "only %d training items for dataset.batch_size=%d; batches will be smaller than asked.",
                len(self.train_set),
                self.batch_size,
            )

    def _embed(self, items: list) -> None:
        """Make the embedding table hold every caption seen so far (the cache encodes only what it lacks)."""
        self.caption_items += items
        if self.table is None or any(self.text_encoder.item_key(item) not in self.table for item in items):
            self.table = cached_table(self.text_encoder, self.caption_items, self.embedding_dir())

    def _dataset(self, split: PackedSplit, train: bool) -> TextMotionDataset:
        """A dataset of the split's items, normalised as they are read."""
        keys = [[self.text_encoder.item_key(item) for item in captions] for captions in split.captions]
        return TextMotionDataset(split, keys, self.max_frames, train, self.normalizer)

    # ------------------------------------------------------------ description

    @property
    def info(self) -> TextMotionData:
        """What the model, generation and evaluation need to know about the data."""
        assert self.train_set is not None, "call setup() first"
        representation = self.representation
        return TextMotionData(
            features=int(representation.features),
            num_joints=int(representation.num_joints),
            dims=3,
            fps=float(representation.fps),
            joint_names=representation.joint_names,
            parents=representation.parents,
            feature_abs_max=float(self.feature_abs_max),
            source=str(self.data_root),
            representation=representation.name,
            layout=self.layout.name,
            max_frames=int(self.max_frames),
            min_frames=int(self.min_frames),
            text_dim=int(self.text_encoder.dim),
            text_encoder=str(self.text_encoder.name),
            text_tokens=int(self.text_encoder.max_tokens),
            dataset_id=self.dataset_id,
            num_train=len(self.train_set),
            num_val=len(self.val_set),
            length_distribution=sorted(int(n) for n in self.train_set.lengths()),
        )

    # ------------------------------------------------------------ batches

    def collate(self, items: list) -> dict:
        """A batch of dataset items (see the module docstring)."""
        return TextMotionCollate(self.table)(items)

    def _loader(self, dataset: TextMotionDataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=TextMotionCollate(self.table),
            # Pinned host memory speeds the copy to a GPU (nothing to gain on CPU). Workers start again each epoch
            # with seeds drawn from the run's generator, so their crops follow the seed and survive a resume.
            pin_memory=torch.cuda.is_available(),
            persistent_workers=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        self.setup("test")
        return self._loader(self.test_set, shuffle=False)

    def test_items(self) -> list:
        """Every test item once, as evaluation reads them: first max_frames frames, first caption, plus all captions."""
        self.setup("test")
        return [
            {**self.test_set[index], "captions": [item.text for item in clip.captions]}
            for index, clip in enumerate(self.test_set.clips)
        ]
