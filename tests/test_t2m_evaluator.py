"""The standard evaluator of Guo et al. 2022: its vocabulary files (read as plain data), its networks (the release's
parameter names and shapes), packed GRUs, unit lengths, and loading files in the release layout."""

import pickle

import numpy as np
import pytest
import torch
from torch import nn

from conftest import shared_path
from motiondiff.core.errors import UserError
from motiondiff.core.safe_pickle import load_plain_pickle
from motiondiff.evaluation.evaluators.base import unit_lengths
from motiondiff.evaluation.evaluators.guo import build_networks, load_guo_evaluator
from motiondiff.text.encoders import CaptionItem
from motiondiff.text.glove import POS_TAGS, SLOTS, VIP_OF, GloveVocabulary
from release_files import write_glove, write_t2m_evaluator

# ------------------------------------------------------------ pickles and the vocabulary


class RunsCode:
    """A pickle payload that would create a file when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_malicious_pickle_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(RunsCode(marker)))
    with pytest.raises(UserError, match="evil.pkl. is not plain data .it asks for io.open"):
        load_plain_pickle(tmp_path / "evil.pkl", "GloVe word list")
    assert not marker.exists()


def test_plain_pickles_load_and_garbage_is_one_sentence(tmp_path):
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps({"walk": 3, "words": ["a", "b"], "x": (1.5, None)}))
    assert load_plain_pickle(tmp_path / "ok.pkl") == {"walk": 3, "words": ["a", "b"], "x": (1.5, None)}
    (tmp_path / "bad.pkl").write_bytes(b"not a pickle at all")
    with pytest.raises(UserError, match="not a readable pickle"):
        load_plain_pickle(tmp_path / "bad.pkl")


def test_the_real_vocabulary_files_load_through_the_safe_reader(tmp_path):
    words = load_plain_pickle(shared_path("t2m_evaluator", "glove", "our_vab_words.pkl"))
    index = load_plain_pickle(shared_path("t2m_evaluator", "glove", "our_vab_idx.pkl"))
    assert len(words) == len(index) == 4199 and [index[w] for w in ("sos", "eos", "unk")] == [0, 1, 2]
    assert all(index[word] == row for row, word in enumerate(words))
    assert sorted(word for word in VIP_OF if word not in index) == ["feet"]  # captions are lemmatised
    vocabulary = GloveVocabulary.load(write_glove(tmp_path / "glove"))
    assert vocabulary.vectors.shape == (4199, 300)


def test_tokens_give_vectors_and_pos_one_hots_as_the_release_reads_them(tmp_path):
    vocabulary = GloveVocabulary.load(write_glove(tmp_path / "glove"))
    vector, pos = vocabulary.token("walk/VERB")
    assert pos == POS_TAGS.index("Act_VIP") and np.array_equal(vector, vocabulary.vectors[vocabulary.index["walk"]])
    assert vocabulary.token("left/ADJ")[1] == POS_TAGS.index("Loc_VIP")
    assert vocabulary.token("person/NOUN")[1] == POS_TAGS.index("NOUN")
    assert vocabulary.token("person/PROPN")[1] == POS_TAGS.index("OTHER")  # a tag outside the 15
    vector, pos = vocabulary.token("qwxzv/NOUN")  # not in the vocabulary: unk's vector, OTHER
    assert pos == POS_TAGS.index("OTHER") and np.array_equal(vector, vocabulary.vectors[vocabulary.index["unk"]])
    with pytest.raises(UserError, match="not word/POS"):
        vocabulary.token("walk")
    batch = vocabulary.batch([["a/DET", "person/NOUN", "walk/VERB"], ["walk/VERB"] * 25])
    assert batch.word_embeddings.shape == (2, SLOTS, 300) and batch.pos_one_hots.shape == (2, SLOTS, 15)
    assert batch.lengths.tolist() == [5, 22]  # sos + words + eos, at most 20 words
    assert torch.equal(batch.pos_one_hots[0, 5:].argmax(-1), torch.full((17,), POS_TAGS.index("OTHER")))  # unk/OTHER


# ------------------------------------------------------------ networks

RELEASE_SHAPES = {  # the parameter names and shapes of text_mot_match/model/finest.tar (HumanML3D)
    "movement_encoder": {
        "main.0.weight": (512, 259, 4),
        "main.0.bias": (512,),
        "main.3.weight": (512, 512, 4),
        "main.3.bias": (512,),
        "out_net.weight": (512, 512),
        "out_net.bias": (512,),
    },
    "text_encoder": {
        "hidden": (2, 1, 512),
        "pos_emb.weight": (300, 15),
        "pos_emb.bias": (300,),
        "input_emb.weight": (512, 300),
        "input_emb.bias": (512,),
        "gru.weight_ih_l0": (1536, 512),
        "gru.weight_hh_l0": (1536, 512),
        "gru.bias_ih_l0": (1536,),
        "gru.bias_hh_l0": (1536,),
        "gru.weight_ih_l0_reverse": (1536, 512),
        "gru.weight_hh_l0_reverse": (1536, 512),
        "gru.bias_ih_l0_reverse": (1536,),
        "gru.bias_hh_l0_reverse": (1536,),
        "output_net.0.weight": (512, 1024),
        "output_net.0.bias": (512,),
        "output_net.1.weight": (512,),
        "output_net.1.bias": (512,),
        "output_net.3.weight": (512, 512),
        "output_net.3.bias": (512,),
    },
}


def test_the_networks_have_the_release_parameter_names_and_shapes():
    networks = build_networks(263)
    for key, shapes in RELEASE_SHAPES.items():
        assert {name: tuple(t.shape) for name, t in networks[key].state_dict().items()} == shapes
    motion = {name: tuple(t.shape) for name, t in networks["motion_encoder"].state_dict().items()}
    assert motion["hidden"] == (2, 1, 1024) and motion["gru.weight_ih_l0_reverse"] == (3072, 1024)
    assert motion["output_net.0.weight"] == (1024, 2048) and motion["output_net.3.weight"] == (512, 1024)
    counts = {key: sum(p.numel() for p in network.parameters()) for key, network in networks.items()}
    assert counts == {"movement_encoder": 1_842_688, "text_encoder": 4_100_288, "motion_encoder": 15_747_584}
    assert sum(p.numel() for p in build_networks(251)["movement_encoder"].parameters()) == 1_818_112


def test_packed_gru_equals_running_each_item_alone_and_order_does_not_matter():
    torch.manual_seed(0)
    encoder = build_networks(263)["motion_encoder"].eval()
    tokens, lengths = torch.randn(5, 12, 512), torch.tensor([12, 3, 7, 12, 1])
    with torch.no_grad():
        batched = encoder(tokens, lengths)  # (5, 512)
        alone = torch.cat([encoder(tokens[i : i + 1, :n], lengths[i : i + 1]) for i, n in enumerate(lengths)])
        order = torch.tensor([3, 0, 4, 2, 1])
        permuted = encoder(tokens[order], lengths[order])
        by_hand = unpacked_by_hand(encoder, tokens[1:2, :3])  # the GRU over exactly the item's 3 tokens
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(permuted, batched[order], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched[1:2], by_hand, atol=1e-5, rtol=1e-5)


def unpacked_by_hand(encoder, tokens):
    """Both GRU directions run step by step with nn.GRUCell weights, no packing: the reference for one item."""
    h = encoder.input_emb(tokens)[0]  # (L, H)
    finals = []
    for direction, suffix in ((h, ""), (h.flip(0), "_reverse")):
        cell = nn.GRUCell(h.shape[1], h.shape[1])
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).data.copy_(getattr(encoder.gru, f"{name}_l0{suffix}"))
        state = encoder.hidden[0 if not suffix else 1]  # (1, H)
        for step in direction:
            state = cell(step[None], state)
        finals.append(state)
    return encoder.output_net(torch.cat(finals, dim=-1))


def test_lengths_are_cut_to_the_unit_length_of_four():
    assert unit_lengths(torch.tensor([40, 41, 43, 44, 196, 199, 250]), 4, 196).tolist() == [
        40,
        40,
        40,
        44,
        196,
        196,
        196,
    ]
    with pytest.raises(UserError, match="shorter than 4 frames"):
        unit_lengths(torch.tensor([3]), 4, 196)


# ------------------------------------------------------------ the release layout


def test_files_in_the_release_layout_load_and_embed(tmp_path):
    evaluator = load_guo_evaluator(str(write_t2m_evaluator(tmp_path / "t2m")))
    assert evaluator.requirements.representation == "humanml3d" and evaluator.requirements.features == 263
    raw = torch.randn(3, 60, 263)
    embedded = evaluator.embed_motions(raw, torch.tensor([60, 41, 44]))
    assert embedded.shape == (3, 512) and torch.isfinite(embedded).all()
    changed = raw.clone()
    changed[1, 40:] = 99.0  # frames past the (cut) length of item 1 change nothing
    torch.testing.assert_close(evaluator.embed_motions(changed, torch.tensor([60, 41, 44])), embedded)
    items = [
        CaptionItem("m", 0, "a person walks", ("a/DET", "person/NOUN", "walk/VERB")),
        CaptionItem("m", 1, "x", ("x/X",)),
    ]
    assert evaluator.embed_captions(items).shape == (2, 512)
    with pytest.raises(UserError, match="no word/POS tokens"):
        evaluator.embed_captions([CaptionItem("m", 0, "a person walks")])


def test_a_kit_evaluator_is_recognised_by_its_width(tmp_path):
    evaluator = load_guo_evaluator(str(write_t2m_evaluator(tmp_path / "kit", features=251)))
    assert evaluator.requirements.representation == "kit" and evaluator.requirements.features == 251


@pytest.mark.parametrize("features", [263, 251])
def test_each_release_layout_finds_its_statistics_and_vocabulary(tmp_path, features):
    """text-to-motion's checkpoints/t2m (Comp_v6_KLD01/meta, KIT-ML's Comp_v6_KLD005, the repository's glove/),
    MDM's ./t2m (./dataset/t2m_mean.npy, ./glove) and one flat folder, each from evaluator.root alone."""
    raw, lengths = torch.randn(2, 60, features), torch.tensor([60, 44])
    embedded = []
    for layout in ("text-to-motion", "mdm", "flat"):
        root = write_t2m_evaluator(tmp_path / layout, features=features, layout=layout)
        embedded.append(load_guo_evaluator(str(root)).embed_motions(raw, lengths))
    torch.testing.assert_close(embedded[0], embedded[1])
    torch.testing.assert_close(embedded[0], embedded[2])
    root = tmp_path / "mdm" / {263: "t2m", 251: "kit"}[features]
    (tmp_path / "mdm" / "dataset" / f"{root.name}_std.npy").unlink()
    with pytest.raises(UserError, match=r"evaluator's std is in none of .*_std.npy; give evaluator.std=<its path>"):
        load_guo_evaluator(str(root))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda c: c.pop("text_encoder"), "has no 'text_encoder' state dict"),
        (
            lambda c: c["motion_encoder"].pop("gru.weight_hh_l0"),
            r"\[motion_encoder\] lacks the parameter 'gru.weight_hh_l0'",
        ),
        (
            lambda c: c["movement_encoder"].update({"main.0.weight": torch.zeros(512, 100, 4)}),
            "'main.0.weight' has shape",
        ),
        (lambda c: c["text_encoder"].update({"extra": torch.zeros(1)}), "unexpected parameter 'extra'"),
    ],
)
def test_a_damaged_checkpoint_is_one_sentence_naming_the_file_and_key(tmp_path, damage, message):
    root = write_t2m_evaluator(tmp_path / "t2m")
    path = root / "text_mot_match" / "model" / "finest.tar"
    checkpoint = torch.load(path, weights_only=True)
    damage(checkpoint)
    torch.save(checkpoint, path)
    with pytest.raises(UserError, match=f"finest.tar' {message}" if "has no" in message else message):
        load_guo_evaluator(str(root))


def test_missing_files_are_named(tmp_path):
    with pytest.raises(UserError, match="evaluator.root"):
        load_guo_evaluator(None)
    with pytest.raises(UserError, match="finest.tar"):
        load_guo_evaluator(str(tmp_path))
    root = write_t2m_evaluator(tmp_path / "t2m")
    (tmp_path / "t2m" / "glove" / "our_vab_idx.pkl").unlink()
    with pytest.raises(UserError, match="our_vab_idx.pkl"):
        load_guo_evaluator(str(root))


def test_the_real_evaluator_statistics_load_and_are_not_the_datasets():
    from motiondiff.evaluation.evaluators.guo import read_statistic

    for name, features in (("t2m", 263), ("kit", 251)):
        for part in ("mean", "std"):
            array = read_statistic(shared_path("t2m_evaluator", f"{name}_{part}.npy"), f"evaluator.{part}")
            assert array.shape == (features,) and np.isfinite(array).all()
    evaluator_std = read_statistic(shared_path("t2m_evaluator", "t2m_std.npy"), "evaluator.std")
    dataset_std = np.load(shared_path("humanml3d_sample", "Std.npy"))
    # Measured on these copies: root (0:4) and foot-contact (-4:) deviations are about 1/25 of the dataset's Std.npy,
    # the others within 0.5% of it; so generated motions must be renormalised, not fed with the dataset's statistics.
    ratio = evaluator_std / dataset_std
    assert np.all(np.abs(ratio[4:-4] - 1) < 0.005)
    assert np.all(np.abs(np.concatenate([ratio[:4], ratio[-4:]]) * 25 - 1) < 0.02)
