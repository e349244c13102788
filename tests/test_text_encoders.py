"""Text encoders (MiniLM, a tiny CLIP, precomputed files), their Hydra configs and the embedding cache."""

import json
import logging
import string
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from motiondiff.core.errors import UserError, find_user_error
from motiondiff.text import (
    CaptionItem,
    ClipEncoder,
    EmbeddingTable,
    MiniLMEncoder,
    PrecomputedEncoder,
    TextEmbedding,
    TextEncoder,
    cache_file,
    cached_table,
    lookup_items,
)
from motiondiff.text.pos_tags import tag_caption

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "text_encoder"


def cosine(a, b) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


# ---------------------------------------------------------------- MiniLM


@pytest.fixture(scope="module")
def minilm():
    return MiniLMEncoder(batch_size=4)


def test_minilm_shapes_mask_and_normalised_pooled(minilm):
    captions = ["a person walks forward", "someone strolls ahead", "a person jumps", "hi"]
    embedding = minilm.encode(captions)
    counts = [len(ids) for ids in minilm.model.tokenizer(captions)["input_ids"]]
    assert minilm.dim == 384 and minilm.max_tokens == 256
    assert embedding.pooled.shape == (4, 384) and embedding.pooled.dtype == torch.float32
    assert embedding.tokens.shape == (4, max(counts), 384)
    assert embedding.token_mask.sum(1).tolist() == counts
    assert embedding.tokens[~embedding.token_mask].abs().max() == 0
    assert torch.allclose(embedding.pooled.norm(dim=1), torch.ones(4), atol=1e-5)
    # pooled is the model's own sentence embedding: normalised mean of the token vectors
    mean = embedding.tokens[0, : counts[0]].mean(0)
    assert cosine(mean, embedding.pooled[0]) > 0.999


def test_minilm_similar_sentences_are_closer(minilm):
    walk, stroll, jump = minilm.encode(["a person walks forward", "someone strolls ahead", "a person jumps"]).pooled
    assert cosine(walk, stroll) > cosine(walk, jump) + 0.05
    assert cosine(walk, stroll) > cosine(stroll, jump) + 0.05


def test_minilm_rejects_empty_and_overlong_prompts_but_truncates_dataset_captions(minilm, caplog):
    with pytest.raises(UserError, match="empty"):
        minilm.encode(["a person walks", "  "])
    long = "walk " * 300
    with pytest.raises(UserError, match=r"302 tokens .* at most 256"):
        minilm.encode([long])
    with caplog.at_level(logging.WARNING):
        embedding = minilm.encode_items(
            [CaptionItem("m", 0, long), CaptionItem("m", 1, long), CaptionItem("m", 2, "a jump")]
        )
    warnings = [record.message for record in caplog.records if "truncated" in record.message]
    assert len(warnings) == 1 and warnings[0].startswith("2 of 3")
    assert embedding.token_mask.sum(1).tolist() == [256, 256, 4]


def test_minilm_model_loads_once_per_process(minilm):
    assert MiniLMEncoder().model is minilm.model


# ---------------------------------------------------------------- TextEmbedding


def test_text_embedding_select_trims_padding_and_cat_pads():
    embedding = TextEmbedding.from_sequences(torch.ones(3, 2), [np.ones((1, 2)), np.ones((4, 2)), np.ones((2, 2))])
    picked = embedding[torch.tensor([2, 0])]
    assert picked.tokens.shape == (2, 2, 2) and picked.token_mask.tolist() == [[True, True], [True, False]]
    both = TextEmbedding.cat([picked, embedding[[1]]])
    assert both.tokens.shape == (3, 4, 2) and both.token_mask.sum(1).tolist() == [2, 1, 4]
    assert set(both.as_cond()) == {"text_pooled", "text_tokens", "text_mask"}
    assert embedding[torch.tensor([False, True, False])].tokens.shape == (1, 4, 2) and embedding[:1].tokens.shape == (
        1,
        1,
        2,
    )


# ---------------------------------------------------------------- CLIP


def write_tiny_clip(directory: Path, seed: int = 0) -> Path:
    """A random 1-layer CLIP text model with a letter-level BPE tokenizer (vocab.json + merges.txt)."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    letters = list(string.ascii_lowercase)
    vocab = {
        token: i
        for i, token in enumerate(["<|startoftext|>", "<|endoftext|>", *letters, *[c + "</w>" for c in letters]])
    }
    directory.mkdir()
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    config = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=24,
        projection_dim=16,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    torch.manual_seed(seed)
    CLIPTextModelWithProjection(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return write_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


def test_clip_encodes_with_projection_and_mask(tiny_clip):
    encoder = ClipEncoder(str(tiny_clip))
    assert encoder.dim == 16 and encoder.max_tokens == 24 and str(tiny_clip) in encoder.name
    embedding = encoder.encode(["a person walks", "hi", "hi"])
    # one token per letter plus start and end: "a person walks" -> 1 + 12 + 1
    assert embedding.token_mask.sum(1).tolist() == [14, 4, 4]
    assert embedding.pooled.shape == (3, 16) and embedding.tokens.shape == (3, 14, 16)
    assert embedding.tokens[~embedding.token_mask].abs().max() == 0
    assert torch.allclose(embedding.pooled[1], embedding.pooled[2]) and not torch.allclose(
        embedding.pooled[0], embedding.pooled[1]
    )
    # pooled = projection of the hidden state at the end token
    hidden = encoder._model.text_model(input_ids=torch.tensor([[0, 9, 36, 1]])).last_hidden_state[0, -1]  # "hi"
    assert torch.allclose(encoder._model.text_projection(hidden), embedding.pooled[1], atol=1e-5)
    with pytest.raises(UserError, match=r"\d+ tokens .* at most 24"):
        encoder.encode(["a person walks forward and turns"])
    assert encoder.encode_items([CaptionItem("m", 0, "a person walks forward and turns")]).token_mask.sum() == 24


def test_two_clip_checkpoints_typed_alike_keep_their_own_cached_vectors(tmp_path, monkeypatch):
    """The same relative text_encoder.model from two folders names two checkpoints: two caches, each its own."""
    items = [CaptionItem("m", 0, "a person walks")]
    for project, seed in (("a", 0), ("b", 1)):
        (tmp_path / project).mkdir()
        write_tiny_clip(tmp_path / project / "clip", seed)
    names = []
    for project in ("a", "b"):
        monkeypatch.chdir(tmp_path / project)
        encoder = ClipEncoder("clip")
        table = cached_table(encoder, items, tmp_path / "cache")
        assert torch.equal(lookup_items(table, encoder, items).pooled, encoder.encode(["a person walks"]).pooled)
        names.append(cache_file(encoder, tmp_path / "cache").name)
    assert names[0] != names[1], names


def test_clip_missing_model_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=r"text_encoder.model='.*absent'.*text_encoder=minilm"):
        ClipEncoder(str(tmp_path / "absent"))
    with pytest.raises(UserError, match="text_encoder.model is not set"):
        ClipEncoder(None)


# ---------------------------------------------------------------- precomputed


def test_precomputed_pooled_and_token_files(tmp_path):
    pooled_dir, token_dir = tmp_path / "pooled", tmp_path / "tok"
    pooled_dir.mkdir(), token_dir.mkdir()
    vectors = np.arange(3 * 5, dtype=np.float32).reshape(3, 5)
    np.save(pooled_dir / "m1.npy", vectors)
    sequences = np.zeros((2, 4, 5), np.float32)
    sequences[0, :2] = [[1, 1, 1, 1, 1], [3, 3, 3, 3, 3]]
    sequences[1, :3] = 2
    np.save(token_dir / "m1.npy", sequences)

    encoder = PrecomputedEncoder(str(pooled_dir))
    assert encoder.name == "precomputed-pooled-5" and encoder.dim == 5
    items = [CaptionItem("m1", 2, "x"), CaptionItem("m1", 0, "y")]
    assert encoder.item_key(items[0]) == "m1#2"
    embedding = encoder.encode_items(items)
    assert np.array_equal(embedding.pooled.numpy(), vectors[[2, 0]]) and embedding.token_mask.tolist() == [
        [True],
        [True],
    ]

    embedding = PrecomputedEncoder(str(token_dir), tokens=True).encode_items(
        [CaptionItem("m1", 0, "x"), CaptionItem("m1", 1, "y")]
    )
    assert embedding.token_mask.sum(1).tolist() == [2, 3] and embedding.tokens.shape == (2, 3, 5)
    assert embedding.pooled[:, 0].tolist() == [2.0, 2.0]


def test_two_feature_folders_of_the_same_name_keep_their_own_cache(tmp_path):
    """The course's caption_clip/seq and another dataset's .../seq, the same ids, one cache folder (paths.data_dir):
    each reads its own vectors, though both encoders are named precomputed-seq-5 (the name runs record)."""
    folders = [tmp_path / name / "seq" for name in ("lab", "other")]
    for value, folder in enumerate(folders):
        folder.mkdir(parents=True)
        np.save(folder / "m1.npy", np.full((2, 5), float(value), np.float32))
    items = [CaptionItem("m1", 0, "x"), CaptionItem("m1", 1, "y")]
    encoders = [PrecomputedEncoder(str(folder)) for folder in folders]
    assert encoders[0].name == encoders[1].name == "precomputed-seq-5"
    for value, encoder in enumerate(encoders):
        table = cached_table(encoder, items, tmp_path / "cache")
        assert table.lookup(["m1#0", "m1#1"]).pooled.unique().tolist() == [float(value)]
    assert len(list((tmp_path / "cache").glob("text-precomputed-seq-5-*.npz"))) == 2


def test_precomputed_errors(tmp_path):
    np.save(tmp_path / "m1.npy", np.zeros((2, 5), np.float32))
    np.save(tmp_path / "m2.npy", np.zeros((2, 6), np.float32))
    np.save(tmp_path / "m3.npy", np.zeros((2,), np.float32))
    encoder = PrecomputedEncoder(str(tmp_path))
    with pytest.raises(UserError, match="cannot encode a new prompt"):
        encoder.encode(["a person walks"])
    with pytest.raises(UserError, match=r"m9\.npy' not found"):
        encoder.encode_items([CaptionItem("m9", 0, "x")])
    with pytest.raises(UserError, match=r"m2\.npy' have dim 6"):
        encoder.encode_items([CaptionItem("m2", 0, "x")])
    with pytest.raises(UserError, match=r"m3\.npy' have shape \(2,\)"):
        encoder.encode_items([CaptionItem("m3", 0, "x")])
    with pytest.raises(UserError, match="2 rows but caption line 5"):
        encoder.encode_items([CaptionItem("m1", 5, "x")])
    with pytest.raises(UserError, match=r"shape \(2, 5\); expected \(captions, tokens, dim\)"):
        PrecomputedEncoder(str(tmp_path), tokens=True)


# ---------------------------------------------------------------- cache


class CountingEncoder(TextEncoder):
    """A fake encoder: token i of a caption is its i-th word's length and position, counts what it encodes."""

    name = "fake/encoder v1"
    dim = 3
    max_tokens = 50

    def __init__(self):
        self.encoded = []

    def count_tokens(self, captions):
        return [len(caption.split()) for caption in captions]

    def _embed(self, captions):
        self.encoded.extend(captions)
        sequences = [np.array([[len(w), i, 0.1234567] for i, w in enumerate(c.split())], np.float32) for c in captions]
        pooled = np.stack([s.mean(0) for s in sequences])
        return TextEmbedding.from_sequences(pooled, sequences)


def caption_items(*texts):
    return [CaptionItem(f"m{i}", 0, text) for i, text in enumerate(texts)]


def test_cache_computes_only_missing_keys(tmp_path):
    items = caption_items("a person walks", "a person jumps high now", "a person walks")
    encoder = CountingEncoder()
    table = cached_table(encoder, items, tmp_path)
    assert encoder.encoded == ["a person walks", "a person jumps high now"] and len(table) == 2
    assert cache_file(encoder, tmp_path).name == "text-fake_encoder_v1.npz" and cache_file(encoder, tmp_path).exists()

    fresh = CountingEncoder()
    table = cached_table(fresh, items, tmp_path)
    assert fresh.encoded == []
    embedding = lookup_items(table, fresh, items)
    direct = CountingEncoder().encode_items(items)
    assert embedding.token_mask.tolist() == direct.token_mask.tolist()
    assert torch.allclose(embedding.tokens, direct.tokens, atol=1e-3) and torch.equal(embedding.pooled, direct.pooled)
    assert (
        embedding.tokens[0, 2, 2] != 0.1234567 and abs(float(embedding.tokens[0, 2, 2]) - 0.1234567) < 1e-4
    )  # float16

    more = caption_items("a person walks", "someone sits", "a person jumps high now")
    table = cached_table(fresh, more, tmp_path)
    assert fresh.encoded == ["someone sits"] and len(table) == 3
    assert lookup_items(table, fresh, more[1:2]).tokens.shape == (1, 2, 3)
    assert not list(tmp_path.glob("*.tmp"))


def test_encode_items_reports_progress_per_batch_and_keeps_the_items_order():
    texts = [" ".join(["word"] * (1 + (7 * i) % 11)) + f" n{i}" for i in range(600)]  # mixed lengths
    done = []
    embedding = CountingEncoder().encode_items(caption_items(*texts), progress=done.append)
    assert done == [256, 256, 88]
    one_by_one = TextEmbedding.cat([CountingEncoder().encode_items(caption_items(text)) for text in texts])
    assert torch.equal(embedding.token_mask, one_by_one.token_mask) and torch.equal(embedding.tokens, one_by_one.tokens)
    assert torch.equal(embedding.pooled, one_by_one.pooled)


def test_fully_cached_minilm_never_loads_the_model(tmp_path):
    from motiondiff.text import encoders

    encoder = MiniLMEncoder(device="cpu:never-loaded")  # a device key no other test loads
    items = caption_items("a person walks")
    embedding = TextEmbedding.from_sequences(np.ones((1, 384)), [np.ones((2, 384))])
    EmbeddingTable.from_embedding(encoder.name, ["a person walks"], embedding).save(cache_file(encoder, tmp_path))
    assert lookup_items(cached_table(encoder, items, tmp_path), encoder, items).token_mask.sum() == 2
    assert "cpu:never-loaded" not in encoders._MINILM_MODELS


def test_cache_recovers_from_a_corrupted_file(tmp_path, caplog):
    encoder = CountingEncoder()
    cache_file(encoder, tmp_path).write_bytes(b"PK\x03\x04 not a zip")
    with caplog.at_level(logging.WARNING):
        table = cached_table(encoder, caption_items("a person walks"), tmp_path)
    assert "unreadable" in caplog.text and encoder.encoded == ["a person walks"]
    assert EmbeddingTable.load(cache_file(encoder, tmp_path)).keys.tolist() == ["a person walks"] == table.keys.tolist()


def test_cache_of_precomputed_features_uses_motion_and_line_keys(tmp_path):
    features = tmp_path / "feats"
    features.mkdir()
    np.save(features / "m0.npy", np.eye(2, 4, dtype=np.float32))
    encoder = PrecomputedEncoder(str(features))
    items = [CaptionItem("m0", 1, "same text"), CaptionItem("m0", 0, "same text")]
    table = cached_table(encoder, items, tmp_path / "cache")
    assert sorted(table.keys.tolist()) == ["m0#0", "m0#1"]
    assert lookup_items(table, encoder, items).pooled.tolist() == [[0, 1, 0, 0], [1, 0, 0, 0]]


# ---------------------------------------------------------------- configs


def instantiate_config(name: str, **overrides):
    """instantiate(configs/text_encoder/<name>.yaml) with `overrides` merged in."""
    config = OmegaConf.merge(OmegaConf.load(CONFIGS / f"{name}.yaml"), overrides)
    return instantiate(config)


def user_error_of(call) -> str:
    """The UserError message behind whatever `call` raises."""
    with pytest.raises(Exception) as raised:
        call()
    error = find_user_error(raised.value)
    assert error is not None, raised.value
    return str(error)


def test_configs_instantiate(tiny_clip, tmp_path):
    assert isinstance(instantiate_config("minilm"), MiniLMEncoder)
    assert instantiate_config("clip", model=str(tiny_clip)).dim == 16
    assert "text_encoder.model is not set" in user_error_of(lambda: instantiate_config("clip"))
    np.save(tmp_path / "m0.npy", np.zeros((1, 7), np.float32))
    assert instantiate_config("precomputed", directory=str(tmp_path)).dim == 7
    assert "text_encoder.directory is not set" in user_error_of(lambda: instantiate_config("precomputed"))


def test_caption_tags_read_a_verb_after_a_pronoun_and_a_noun_after_a_number():
    """spaCy's readings, which HumanML3D's caption files carry: "someone waves" is a verb, "two steps" a noun."""
    assert tag_caption("someone waves") == ["someone/PRON", "wave/VERB"]
    assert "step/VERB" in tag_caption("after that he steps forward")
    assert tag_caption("a person takes two steps")[-1] == "step/NOUN"
    assert tag_caption("the waves")[-1] == "wave/NOUN"
