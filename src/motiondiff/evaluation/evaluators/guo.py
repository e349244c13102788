"""The standard text-to-motion evaluator of Guo et al. 2022 (`text_mot_match`), loaded from its released files.

Files, as users have them (`evaluator=t2m evaluator.root=<dir>`, the release's t2m/ or kit/ folder):
    <root>/text_mot_match/model/finest.tar   keys movement_encoder, text_encoder, motion_encoder (state dicts)
    mean.npy, std.npy    the evaluator's own feature statistics (evaluator.mean / .std): text-to-motion keeps them
                         in <root>/Comp_v6_KLD01/meta/ (KIT-ML: Comp_v6_KLD005), MDM in ../dataset/t2m_mean.npy
    glove/our_vab_data.npy, our_vab_words.pkl, our_vab_idx.pkl   the word vectors (evaluator.glove): the
                         repository's glove/ (../../glove for text-to-motion's checkpoints/t2m, ../glove for MDM)
The checkpoint is read weights-only; the vocabulary pickles as plain data. The movement encoder's input
width says the dataset: 259 = HumanML3D (263 features), 247 = KIT-ML (251 features).

Motions: raw features -> the evaluator's normalisation -> the first length frames (length cut to a multiple
of 4), zeros after, 196 frames -> movement encoder (without the 4 foot contacts) -> motion encoder over
length / 4 tokens. Captions: their word/POS tokens -> GloVe vectors + POS one-hots -> text encoder.
"""

import os
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from motiondiff.core.errors import UserError, first_sentence, require_file
from motiondiff.core.types import Embeddings, Lengths, Motion
from motiondiff.evaluation.evaluators.base import Requirements, padded_to, unit_lengths
from motiondiff.networks.t2m_evaluator import (
    CONTACTS,
    UNIT_LENGTH,
    MotionEncoderBiGRUCo,
    MovementConvEncoder,
    TextEncoderBiGRUCo,
)
from motiondiff.text.glove import POS_TAGS, WORD_DIM, GloveVocabulary
from motiondiff.training.checkpoint_io import load_checkpoint

CHECKPOINT = Path("text_mot_match") / "model" / "finest.tar"
KEYS = ("movement_encoder", "text_encoder", "motion_encoder")
MAX_FRAMES = 196  # max_motion_length of the released protocol
DATASETS = {263: "humanml3d", 251: "kit"}  # features -> representation
# Where the releases keep the evaluator's statistics and the GloVe files, relative to evaluator.root (the folder
# holding text_mot_match/): text-to-motion's checkpoints/<t2m|kit>/ (its Comp_v6_KLD01 or, for KIT-ML, Comp_v6_KLD005
# meta/, and glove/ at the repository's root: train_tex_mot_match.py), MDM's ./t2m (./dataset/t2m_mean.npy and
# ./glove beside it: its motion loader's meta_dir), or all in one folder. The first place that has the file wins.
STATISTICS_PLACES = (
    "meta/{stat}.npy",
    "Comp_v6_KLD01/meta/{stat}.npy",
    "Comp_v6_KLD005/meta/{stat}.npy",
    "../dataset/{name}_{stat}.npy",
)
GLOVE_PLACES = ("glove", "../glove", "../../glove")
HINT = "use evaluator=t2m with the release's t2m/ files for HumanML3D runs and its kit/ files for KIT-ML runs"


class GuoEvaluator:
    """Guo et al.'s three encoders with the evaluator's statistics and vocabulary."""

    unit_length = UNIT_LENGTH
    max_frames = MAX_FRAMES

    def __init__(self, networks: dict, mean, std, vocabulary: GloveVocabulary, checkpoint: Path, device: str = "cpu"):
        self.movement_encoder = networks["movement_encoder"].eval().to(device)
        self.text_encoder = networks["text_encoder"].eval().to(device)
        self.motion_encoder = networks["motion_encoder"].eval().to(device)
        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=device)  # (F,)
        self.std = torch.as_tensor(std, dtype=torch.float32, device=device)  # (F,)
        self.vocabulary, self.checkpoint, self.device = vocabulary, checkpoint, device
        features = len(mean)
        self.requirements = Requirements("t2m (Guo et al. 2022)", DATASETS[features], features, hint=HINT)

    @staticmethod
    def score_from_cosine(cosine: float) -> float:
        """The text-motion score is the mean cosine itself."""
        return cosine

    def describe(self) -> dict:
        """What evaluation reports record about this evaluator."""
        return {"name": "t2m", "checkpoint": str(self.checkpoint), "representation": self.requirements.representation}

    @torch.no_grad()
    def embed_motions(self, raw: Motion, lengths: Lengths) -> Embeddings:
        lengths = unit_lengths(lengths.to(self.device), UNIT_LENGTH, MAX_FRAMES)  # (B,)
        normalised = (raw.to(self.device, torch.float32) - self.mean) / self.std  # (B, N, F)
        motions = padded_to(normalised, lengths, MAX_FRAMES)  # (B, 196, F), zeros past each length
        movements = self.movement_encoder(motions[..., :-CONTACTS])  # (B, 49, 512)
        return self.motion_encoder(movements, lengths // UNIT_LENGTH)  # (B, 512)

    @torch.no_grad()
    def embed_captions(self, items: list, cache_dir: Optional[Path] = None) -> Embeddings:
        missing = [item for item in items if not item.tokens]
        if missing:
            raise UserError(
                f"caption '{missing[0].text}' of motion {missing[0].motion_id} has no word/POS tokens, which the t2m "
                "evaluator reads; use the dataset's caption files (caption#tokens#start#end lines)."
            )
        batch = self.vocabulary.batch([item.tokens for item in items])
        words, pos = batch.word_embeddings.to(self.device), batch.pos_one_hots.to(self.device)
        return self.text_encoder(words, pos, batch.lengths.to(self.device))  # (B, 512)


def load_guo_evaluator(
    root: Optional[str],
    mean: Optional[str] = None,
    std: Optional[str] = None,
    glove: Optional[str] = None,
    device: str = "cpu",
) -> GuoEvaluator:
    """The evaluator in `root` (the release's t2m/ or kit/ folder); mean, std and glove default to where the releases
    keep them (STATISTICS_PLACES, GLOVE_PLACES)."""
    if not root:
        raise UserError(
            "evaluator=t2m needs evaluator.root=<the evaluator folder holding text_mot_match/model/finest.tar> "
            "(the t2m/ or kit/ folder of the text-to-motion release)."
        )
    root = Path(root)
    checkpoint_path = root / CHECKPOINT
    require_file(checkpoint_path, "t2m evaluator checkpoint", f"evaluator.root must hold {CHECKPOINT}")
    checkpoint = load_checkpoint(checkpoint_path)
    mean_array = read_statistic(Path(mean) if mean else release_file(root, "mean"), "evaluator.mean")
    std_array = read_statistic(Path(std) if std else release_file(root, "std"), "evaluator.std")
    if mean_array.shape != std_array.shape or len(mean_array) not in DATASETS:
        raise UserError(
            f"the t2m evaluator's statistics have shapes {mean_array.shape} and {std_array.shape}; expected (263,) "
            "for HumanML3D or (251,) for KIT-ML, the same for both."
        )
    networks = build_networks(len(mean_array))
    for key in KEYS:
        load_state(networks[key], checkpoint, key, checkpoint_path)
    vocabulary = GloveVocabulary.load(Path(glove) if glove else release_file(root, "glove"))
    return GuoEvaluator(networks, mean_array, std_array, vocabulary, checkpoint_path, device)


def build_networks(features: int) -> dict:
    """The three encoders, randomly initialised, sized as the release for `features` (263 or 251)."""
    return {
        "movement_encoder": MovementConvEncoder(features - CONTACTS, 512, 512),
        "text_encoder": TextEncoderBiGRUCo(WORD_DIM, len(POS_TAGS), 512, 512),
        "motion_encoder": MotionEncoderBiGRUCo(512, 1024, 512),
    }


def load_state(network: torch.nn.Module, checkpoint: dict, key: str, path: Path) -> None:
    """Load checkpoint[key] into network; UserError naming the file and the first missing or mismatched key."""
    if key not in checkpoint or not isinstance(checkpoint[key], dict):
        raise UserError(f"'{path}' has no '{key}' state dict; it is not the text_mot_match evaluator checkpoint.")
    state, expected = checkpoint[key], network.state_dict()
    for name, tensor in expected.items():
        if name not in state:
            raise UserError(f"'{path}' [{key}] lacks the parameter '{name}'; it is not the text_mot_match evaluator.")
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise UserError(
                f"'{path}' [{key}] '{name}' has shape {tuple(state[name].shape)} but the evaluator expects "
                f"{tuple(tensor.shape)}; the checkpoint belongs to another dataset or model."
            )
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise UserError(f"'{path}' [{key}] has an unexpected parameter '{unexpected[0]}'; it is not this evaluator.")
    network.load_state_dict(state)


def release_file(root: Path, what: str) -> Path:
    """The first of the releases' places for `what` (mean, std or glove) that exists under `root`; a UserError naming
    the places looked at and the option that names the file otherwise."""
    places = GLOVE_PLACES if what == "glove" else [p.format(stat=what, name=root.name) for p in STATISTICS_PLACES]
    paths = [Path(os.path.normpath(root / place)) for place in places]
    for path in paths:
        if path.exists():
            return path
    raise UserError(
        f"the t2m evaluator's {what} is in none of {', '.join(map(str, paths))}; give evaluator.{what}=<its path>."
    )


def read_statistic(path: Path, key: str) -> np.ndarray:
    """A (F,) float array of finite numbers from a .npy file; UserError naming `key` and the file otherwise."""
    require_file(path, f"{key} file", f"give {key}=<the evaluator's statistics file>")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as error:
        raise UserError(f"{key} '{path}' is not a plain .npy array ({first_sentence(error)}).") from None
    if not isinstance(array, np.ndarray) or array.ndim != 1 or array.dtype.kind not in "iuf":
        raise UserError(f"{key} '{path}' must hold one number per feature, got {getattr(array, 'shape', '?')}.")
    if not np.isfinite(array).all():
        raise UserError(f"{key} '{path}' holds NaN or infinite values.")
    return array.astype(np.float64)
