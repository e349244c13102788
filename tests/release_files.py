"""Files in the released layouts of the standard evaluators, with random weights, written by the tests.

Nothing here is downloaded: the state dicts have the release's key names and shapes (the networks are ours,
built with the release's sizes) and random values; the statistics and the vocabulary are the real files from
../shared when it is there, else small stand-ins of the same form.
"""

import pickle
import shutil
from pathlib import Path

import numpy as np
import torch

from conftest import SHARED_DATA
from motiondiff.core.safe_pickle import load_plain_pickle
from motiondiff.evaluation.evaluators.guo import build_networks
from motiondiff.text.pos_tags import LEXICON

SPECIALS = ["sos", "eos", "unk"]


def write_glove(directory: Path, seed: int = 0) -> Path:
    """glove/ with our_vab_words.pkl and our_vab_idx.pkl (the real ones when ../shared has them) and random vectors."""
    directory.mkdir(parents=True, exist_ok=True)
    real = SHARED_DATA / "t2m_evaluator" / "glove"
    if (real / "our_vab_words.pkl").is_file():
        for name in ("our_vab_words.pkl", "our_vab_idx.pkl"):
            shutil.copy(real / name, directory / name)
        words = load_plain_pickle(directory / "our_vab_words.pkl")
    else:
        words = SPECIALS + sorted({lemma for lemma, _ in LEXICON.values()} - set(SPECIALS))
        (directory / "our_vab_words.pkl").write_bytes(pickle.dumps(words))
        (directory / "our_vab_idx.pkl").write_bytes(pickle.dumps({word: i for i, word in enumerate(words)}))
    vectors = np.random.default_rng(seed).normal(size=(len(words), 300)).astype(np.float32)
    np.save(directory / "our_vab_data.npy", vectors)
    return directory


def write_t2m_evaluator(repo: Path, features: int = 263, seed: int = 0, layout: str = "text-to-motion") -> Path:
    """The evaluator's files under `repo` as a release lays them out; returns the folder for evaluator.root:
    text-to-motion: checkpoints/<t2m|kit>/{text_mot_match/model/finest.tar, Comp_v6_KLD01|Comp_v6_KLD005/meta/},
    glove/ at the repository's root; mdm: <t2m|kit>/text_mot_match/..., dataset/<t2m|kit>_{mean,std}.npy, glove/;
    flat: text_mot_match/, meta/ and glove/ all in `repo`."""
    name = {263: "t2m", 251: "kit"}[features]
    root = {"text-to-motion": repo / "checkpoints" / name, "mdm": repo / name, "flat": repo}[layout]
    torch.manual_seed(seed)
    networks = build_networks(features)
    checkpoint = {key: network.state_dict() for key, network in networks.items()}
    checkpoint.update(opt_text_encoder={}, opt_motion_encoder={}, epoch=12, iter=3400)
    (root / "text_mot_match" / "model").mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, root / "text_mot_match" / "model" / "finest.tar")
    real = SHARED_DATA / "t2m_evaluator"
    if (real / f"{name}_mean.npy").is_file():
        mean, std = np.load(real / f"{name}_mean.npy"), np.load(real / f"{name}_std.npy")
    else:
        rng = np.random.default_rng(seed)
        mean, std = rng.normal(size=features), rng.uniform(0.5, 2.0, size=features)
    if layout == "mdm":
        (repo / "dataset").mkdir(exist_ok=True)
        np.save(repo / "dataset" / f"{name}_mean.npy", mean)
        np.save(repo / "dataset" / f"{name}_std.npy", std)
    else:
        meta = (
            root / "meta"
            if layout == "flat"
            else root / ("Comp_v6_KLD01" if name == "t2m" else "Comp_v6_KLD005") / "meta"
        )
        meta.mkdir(parents=True)
        np.save(meta / "mean.npy", mean)
        np.save(meta / "std.npy", std)
    write_glove(repo / "glove", seed)
    return root
