"""TMR (Petrovich et al. 2023) as an evaluator, loaded from its released files, and the course framework's TMR variant.

`evaluator=tmr evaluator.root=<TMR model folder> evaluator.mean=... evaluator.std=... evaluator.text_features=<dir>`:
    <root>/last_weights/motion_encoder.pt, text_encoder.pt   ACTOR-style encoders (networks.actor_encoder)
    mean.pt, std.pt (TMR's stats/humanml3d/guoh3dfeats/)       TMR's own feature statistics, (263,) tensors
    <text_features>/<motion_id>.npy                          distilbert token features (captions, tokens, 768),
                                                              one row per caption line (text_encoder=precomputed)
Motions are normalised (x - mean) / (std + 1e-12) and embedded with their frame mask; embeddings are the
encoders' means (the mu token). The text-motion score is TMR's cosine mapped to [0, 1]: cos / 2 + 1 / 2.

`evaluator=lab_tmr` is the course framework's variant: 205 smplrifke features normalised by its tmr-rifke
tensors ((x - mean) / std; the constant feature has std 1), CLIP token features (512-d) for the text, the
weights in <root>/tmr-motion_encoder.pt and tmr-text_encoder.pt, and its TMR-score max(mean cosine, 0).
"""

from pathlib import Path
from typing import Callable, Optional

import torch

from motiondiff.core.errors import UserError, require_file
from motiondiff.core.tensor_files import read_vector
from motiondiff.core.types import Embeddings, Lengths, Motion
from motiondiff.evaluation.evaluators.base import Requirements
from motiondiff.networks.actor_encoder import ActorStyleEncoder
from motiondiff.text.encoders import PrecomputedEncoder
from motiondiff.training.checkpoint_io import load_checkpoint

MOTION_WIDTHS = {263: "humanml3d", 251: "kit", 205: "smplrifke"}  # motion encoder input -> representation


class TMREvaluator:
    """TMR's motion and text encoders with their statistics and precomputed text features."""

    unit_length = 1

    def __init__(
        self,
        motion_encoder,
        text_encoder,
        mean,
        std,
        eps: float,
        text_features,
        files: dict,
        variant: str,
        score: Callable[[float], float],
        max_frames: int = 200,
        device: str = "cpu",
    ):
        self.motion_encoder, self.text_encoder = motion_encoder.eval().to(device), text_encoder.eval().to(device)
        self.mean, self.std = mean.to(device), std.to(device) + eps  # (F,)
        self.text_features, self.files, self.variant, self.device = text_features, files, variant, device
        self.score_from_cosine, self.max_frames = score, max_frames
        features = len(mean)
        self.requirements = Requirements(variant, MOTION_WIDTHS[features], features, hint=f"{variant} reads these")

    def describe(self) -> dict:
        """What evaluation reports record about this evaluator."""
        directory = getattr(self.text_features, "directory", None)  # precomputed caption features: their folder
        text = self.text_features.name + (f" from {directory}" if directory is not None else "")
        return {"name": self.variant, "checkpoint": str(self.files["motion_encoder"]), "text": text}

    @torch.no_grad()
    def embed_motions(self, raw: Motion, lengths: Lengths) -> Embeddings:
        lengths = torch.clamp(lengths.to(self.device), max=self.max_frames)
        motions = ((raw.to(self.device, torch.float32) - self.mean) / self.std)[:, : int(lengths.max())]  # (B, N, F)
        mask = torch.arange(motions.shape[1], device=self.device)[None] < lengths[:, None]  # (B, N)
        return self.motion_encoder(motions * mask[..., None], mask)[:, 0]  # (B, D): mu

    @torch.no_grad()
    def embed_captions(self, items: list, cache_dir: Optional[Path] = None) -> Embeddings:
        embedding = self.text_features.encode_items(items)  # tokens (B, L, Dt), token_mask (B, L)
        tokens, mask = embedding.tokens.to(self.device), embedding.token_mask.to(self.device)
        return self.text_encoder(tokens * mask[..., None], mask)[:, 0]  # (B, D): mu


def load_tmr(root, mean=None, std=None, text_features=None, num_heads: int = 4, device: str = "cpu") -> TMREvaluator:
    """`evaluator=tmr`: TMR's released weights, statistics and distilbert token features."""
    root = require_root(root, "tmr", "the TMR model folder holding last_weights/")
    files = {key: root / "last_weights" / f"{key}.pt" for key in ("motion_encoder", "text_encoder")}
    statistics = read_tensor(mean, "evaluator.mean", "TMR's stats/humanml3d/guoh3dfeats/mean.pt")
    deviation = read_tensor(std, "evaluator.std", "TMR's stats/humanml3d/guoh3dfeats/std.pt")
    return build("tmr", files, statistics, deviation, 1e-12, text_features, num_heads, lambda c: c / 2 + 0.5, device)


def load_lab_tmr(
    root, mean=None, std=None, text_features=None, num_heads: int = 4, device: str = "cpu"
) -> TMREvaluator:
    """`evaluator=lab_tmr`: the course framework's TMR checkpoints, its tmr-rifke tensors and CLIP token features."""
    root = require_root(root, "lab_tmr", "the course data's checkpoints/ folder (tmr-motion_encoder.pt)")
    files = {key: root / f"tmr-{key}.pt" for key in ("motion_encoder", "text_encoder")}
    statistics = read_tensor(mean or root / "tmr-rifke-mean.pt", "evaluator.mean", "the course's tmr-rifke-mean.pt")
    deviation = read_tensor(std or root / "tmr-rifke-std.pt", "evaluator.std", "the course's tmr-rifke-std.pt")
    return build("lab_tmr", files, statistics, deviation, 0.0, text_features, num_heads, lambda c: max(c, 0.0), device)


def build(variant, files, mean, std, eps, text_features, num_heads, score, device) -> TMREvaluator:
    """The two encoders sized from their weights, loaded, with the statistics and the text features."""
    if mean.shape != std.shape or len(mean) not in MOTION_WIDTHS:
        raise UserError(
            f"{variant}'s statistics have shapes {tuple(mean.shape)} and {tuple(std.shape)}; expected "
            f"one of {sorted(MOTION_WIDTHS)} features, the same for both."
        )
    encoders = {key: encoder_from(path, key, num_heads) for key, path in files.items()}
    width = encoders["motion_encoder"].projection.in_features
    if width != len(mean):
        raise UserError(f"{files['motion_encoder']} reads {width} features but the statistics have {len(mean)}.")
    if not text_features:
        raise UserError(
            f"evaluator={variant} needs evaluator.text_features=<folder of <motion_id>.npy token features>."
        )
    text = PrecomputedEncoder(str(text_features), tokens=True)
    if text.dim != encoders["text_encoder"].projection.in_features:
        raise UserError(
            f"the text features in '{text_features}' are {text.dim}-d but {files['text_encoder']} reads "
            f"{encoders['text_encoder'].projection.in_features}-d token features."
        )
    return TMREvaluator(
        encoders["motion_encoder"], encoders["text_encoder"], mean, std, eps, text, files, variant, score, device=device
    )


def encoder_from(path: Path, key: str, num_heads: int) -> ActorStyleEncoder:
    """An ActorStyleEncoder sized from the state dict in `path` and loaded with it; UserError naming a bad key."""
    require_file(path, f"{key} weights", "TMR keeps them as last_weights/motion_encoder.pt and text_encoder.pt")
    state = load_checkpoint(path)
    try:
        latent, nfeats = state["projection.weight"].shape
        layers = 1 + max(int(name.split(".")[2]) for name in state if name.startswith("seqTransEncoder.layers."))
        encoder = ActorStyleEncoder(
            nfeats,
            vae=len(state["tokens"]) == 2,
            latent_dim=latent,
            ff_size=state["seqTransEncoder.layers.0.linear1.weight"].shape[0],
            num_layers=layers,
            num_heads=num_heads,
        )
    except (KeyError, ValueError, AttributeError) as error:
        raise UserError(f"'{path}' lacks {error} of TMR's ACTOR-style encoder; it is not a TMR weights file.") from None
    missing, unexpected = sorted(set(encoder.state_dict()) - set(state)), sorted(set(state) - set(encoder.state_dict()))
    if missing or unexpected:
        first = f"lacks the parameter '{missing[0]}'" if missing else f"has an unexpected parameter '{unexpected[0]}'"
        raise UserError(f"'{path}' {first}; it is not TMR's ACTOR-style encoder.")
    encoder.load_state_dict(state)
    return encoder


def require_root(root, evaluator: str, what: str) -> Path:
    """root as a folder; UserError naming the option otherwise."""
    if not root or not Path(root).is_dir():
        raise UserError(f"evaluator={evaluator} needs evaluator.root=<{what}>, got {root!r}.")
    return Path(root)


def read_tensor(path, key: str, where: str) -> torch.Tensor:
    """A 1-D tensor of finite numbers saved with torch.save (read weights-only); UserError naming `key` otherwise."""
    if not path:
        raise UserError(f"{key} is not set: give the path of {where}.")
    return torch.from_numpy(read_vector(path, f"{key} file", f"give the path of {where}"))
