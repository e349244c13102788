"""TMR as an evaluator: the ACTOR-style encoders with the release's parameter names, files in TMR's layout with random
weights, its statistics, embeddings as the encoders' means, and its [0, 1] score."""

import math

import numpy as np
import pytest
import torch

from conftest import shared_path
from motiondiff.core.errors import UserError
from motiondiff.evaluation.evaluators.tmr import load_lab_tmr, load_tmr
from motiondiff.networks.actor_encoder import ActorStyleEncoder
from motiondiff.text.encoders import CaptionItem


def write_tmr(root, motion_features: int = 263, text_dim: int = 768, seed: int = 0) -> dict:
    """last_weights/{motion,text}_encoder.pt, mean.pt / std.pt and a token-feature folder, TMR's layout."""
    torch.manual_seed(seed)
    (root / "last_weights").mkdir(parents=True)
    torch.save(ActorStyleEncoder(motion_features).state_dict(), root / "last_weights" / "motion_encoder.pt")
    torch.save(ActorStyleEncoder(text_dim).state_dict(), root / "last_weights" / "text_encoder.pt")
    torch.save(torch.randn(motion_features), root / "mean.pt")
    torch.save(torch.rand(motion_features) + 0.5, root / "std.pt")
    features = root / "text_features"
    features.mkdir()
    rng = np.random.default_rng(seed)
    for motion in ("m0", "m1"):
        tokens = rng.normal(size=(2, 9, text_dim)).astype(np.float32)
        tokens[1, 6:] = 0.0  # caption 1 has 6 tokens, zero-padded
        np.save(features / f"{motion}.npy", tokens)
    return {
        "root": str(root),
        "mean": str(root / "mean.pt"),
        "std": str(root / "std.pt"),
        "text_features": str(features),
    }


def test_the_encoder_has_the_release_parameter_names_and_sizes():
    motion = ActorStyleEncoder(263)
    names = list(motion.state_dict())
    assert len(names) == 75 and "sequence_pos_encoding.pe" not in names  # the position table is not saved
    assert {"projection.weight", "projection.bias", "tokens", "seqTransEncoder.layers.5.norm2.bias"} <= set(names)
    assert tuple(motion.state_dict()["seqTransEncoder.layers.0.self_attn.in_proj_weight"].shape) == (768, 256)
    counts = [sum(p.numel() for p in ActorStyleEncoder(n).parameters()) for n in (263, 768, 205, 512)]
    assert counts == [4_806_656, 4_935_936, 4_791_808, 4_870_400]  # TMR's two encoders, then the course's
    table = motion.sequence_pos_encoding.pe
    assert table[3, 0] == pytest.approx(math.sin(3.0)) and table[3, 1] == pytest.approx(math.cos(3.0))
    assert table[5, 6] == pytest.approx(math.sin(5 * math.exp(-6 * math.log(10000) / 256)))


def test_files_in_tmr_layout_load_embed_means_and_ignore_padding(tmp_path):
    evaluator = load_tmr(**write_tmr(tmp_path / "tmr"))
    assert evaluator.requirements.representation == "humanml3d" and evaluator.requirements.features == 263
    raw, lengths = torch.randn(3, 50, 263), torch.tensor([50, 20, 35])
    embedded = evaluator.embed_motions(raw, lengths)
    assert embedded.shape == (3, 256)
    changed = raw.clone()
    changed[1, 20:] = 7.0
    torch.testing.assert_close(evaluator.embed_motions(changed, lengths), embedded, atol=1e-5, rtol=1e-5)
    order = torch.tensor([2, 0, 1])
    torch.testing.assert_close(
        evaluator.embed_motions(raw[order], lengths[order]), embedded[order], atol=1e-5, rtol=1e-5
    )
    normalised = (raw[:1, :50] - evaluator.mean) / evaluator.std
    mu = evaluator.motion_encoder(normalised, torch.ones(1, 50, dtype=torch.bool))[:, 0]  # the mean token
    torch.testing.assert_close(embedded[:1], mu, atol=1e-5, rtol=1e-5)
    texts = evaluator.embed_captions([CaptionItem("m0", 0, "a"), CaptionItem("m1", 1, "b")])
    assert texts.shape == (2, 256) and torch.isfinite(texts).all()
    assert evaluator.score_from_cosine(1.0) == 1.0 and evaluator.score_from_cosine(-1.0) == 0.0


def test_the_course_variant_reads_its_layout_and_clamps_its_score(tmp_path):
    root = tmp_path / "checkpoints"
    root.mkdir()
    torch.save(ActorStyleEncoder(205).state_dict(), root / "tmr-motion_encoder.pt")
    torch.save(ActorStyleEncoder(512).state_dict(), root / "tmr-text_encoder.pt")
    torch.save(torch.zeros(205), root / "tmr-rifke-mean.pt")
    torch.save(torch.ones(205), root / "tmr-rifke-std.pt")
    features = tmp_path / "clip"
    features.mkdir()
    np.save(features / "m0.npy", np.ones((1, 77, 512), dtype=np.float32))
    evaluator = load_lab_tmr(str(root), text_features=str(features))
    assert evaluator.requirements.representation == "smplrifke" and evaluator.score_from_cosine(-0.3) == 0.0
    assert evaluator.embed_motions(torch.randn(2, 30, 205), torch.tensor([30, 12])).shape == (2, 256)


def test_tmr_statistics_from_the_release_load(tmp_path):
    for dataset, features in (("humanml3d", 263), ("kitml", 263)):  # TMR computes 263 guoh3dfeats for KIT-ML too
        for name in ("mean", "std"):
            tensor = torch.load(shared_path("tmr_stats", dataset, f"{name}.pt"), weights_only=True)
            assert tensor.shape == (features,) and torch.isfinite(tensor).all()
    files = write_tmr(tmp_path / "tmr")
    files["mean"] = str(shared_path("tmr_stats", "humanml3d", "mean.pt"))
    files["std"] = str(shared_path("tmr_stats", "humanml3d", "std.pt"))
    assert load_tmr(**files).mean.shape == (263,)


def test_damaged_or_missing_tmr_files_are_one_sentence(tmp_path):
    files = write_tmr(tmp_path / "tmr")
    with pytest.raises(UserError, match="evaluator.text_features"):
        load_tmr(**{**files, "text_features": None})
    with pytest.raises(UserError, match="evaluator.mean is not set"):
        load_tmr(**{**files, "mean": None})
    path = tmp_path / "tmr" / "last_weights" / "text_encoder.pt"
    state = torch.load(path, weights_only=True)
    state.pop("seqTransEncoder.layers.2.linear1.bias")
    torch.save(state, path)
    with pytest.raises(UserError, match="text_encoder.pt' lacks the parameter 'seqTransEncoder.layers.2.linear1.bias'"):
        load_tmr(**files)
    with pytest.raises(UserError, match="evaluator.root"):
        load_tmr(str(tmp_path / "nowhere"))


class MakesFile:
    """A pickle payload that would create a file when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_the_course_object_array_token_files_are_read_without_running_code(tmp_path):
    from motiondiff.text.encoders import PrecomputedEncoder

    folder = tmp_path / "clip"
    folder.mkdir()
    rows = np.empty(2, dtype=object)  # the course saves one (tokens, 512) array per caption, of different lengths
    rows[0], rows[1] = np.ones((5, 512), np.float32), np.full((3, 512), 2.0, np.float32)
    np.save(folder / "m0.npy", rows, allow_pickle=True)
    encoder = PrecomputedEncoder(str(folder), tokens=True)
    embedding = encoder.encode_items([CaptionItem("m0", 0, "a"), CaptionItem("m0", 1, "b")])
    assert embedding.tokens.shape[1:] == (5, 512) and embedding.token_mask.sum(1).tolist() == [5, 3]
    marker = tmp_path / "pwned"
    evil = np.empty(1, dtype=object)
    evil[0] = MakesFile(marker)
    np.save(folder / "m1.npy", evil, allow_pickle=True)
    with pytest.raises(UserError, match="holds objects other than arrays .it asks for io.open"):
        encoder.encode_items([CaptionItem("m1", 0, "c")])
    assert not marker.exists()
