"""Captions as the standard text-to-motion evaluator reads them (Guo et al. 2022): GloVe vectors and POS one-hots.

Each caption is the `word/POS` token list that HumanML3D and KIT-ML caption files carry (spaCy tags,
lemmatised nouns and verbs). The evaluator's vocabulary is three files as released:
`our_vab_data.npy` (V, 300) word vectors, `our_vab_words.pkl` (list of V words) and `our_vab_idx.pkl`
(word -> row); the pickles are read as plain data only (core.safe_pickle).

A token gives its word vector (`unk`'s when the word is not in the vocabulary) and a one-hot over
POS_TAGS: the word's category when it is one of the VIP words (and in the vocabulary), else its spaCy
tag when it is one of POS_TAGS, else OTHER. A sentence is `sos`, at most MAX_WORDS tokens, `eos`,
padded with `unk/OTHER` to SLOTS; its length counts sos and eos.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from motiondiff.core.errors import UserError, first_sentence, require_file
from motiondiff.core.safe_pickle import load_plain_pickle

POS_TAGS = tuple("VERB NOUN DET ADP NUM AUX PRON ADJ ADV Loc_VIP Body_VIP Obj_VIP Act_VIP Desc_VIP OTHER".split())
VIP_WORDS = {  # a word's category overrides its POS tag; the first list that holds it wins
    "Loc_VIP": "left right clockwise counterclockwise anticlockwise forward back backward up down straight curve",
    "Body_VIP": "arm chin foot feet face hand mouth leg waist eye knee shoulder thigh",
    "Obj_VIP": "stair dumbbell chair window floor car ball handrail baseball basketball",
    "Act_VIP": "walk run swing pick bring kick put squat throw hop dance jump turn stumble stop sit lift lower raise "
    "wash stand kneel stroll rub bend balance flap jog shuffle lean rotate spin spread climb",
    "Desc_VIP": "slowly carefully fast careful slow quickly happy angry sad happily angrily sadly",
}
VIP_OF = {word: tag for tag, words in reversed(VIP_WORDS.items()) for word in words.split()}
MAX_WORDS, SLOTS = 20, 22  # tokens kept per caption; with sos and eos
WORD_DIM = 300
FILES = ("our_vab_data.npy", "our_vab_words.pkl", "our_vab_idx.pkl")


@dataclass
class TokenBatch:
    """Captions ready for the evaluator's text encoder."""

    word_embeddings: torch.Tensor  # (B, SLOTS, 300) float32
    pos_one_hots: torch.Tensor  # (B, SLOTS, len(POS_TAGS)) float32
    lengths: torch.Tensor  # (B,) long: sos + words + eos


class GloveVocabulary:
    """The evaluator's word vectors, looked up by word."""

    def __init__(self, vectors: np.ndarray, words: list, index: dict):
        assert vectors.ndim == 2 and len(words) == len(index) <= len(vectors), (vectors.shape, len(words), len(index))
        self.vectors, self.index = vectors.astype(np.float32), index
        for special in ("sos", "eos", "unk"):
            if special not in index:
                raise UserError(f"the GloVe vocabulary has no '{special}' word; it is not the evaluator's vocabulary.")

    @classmethod
    def load(cls, directory) -> "GloveVocabulary":
        """The three released files of `directory`; UserError naming the file that is missing or malformed."""
        directory = Path(directory)
        for name in FILES:
            require_file(directory / name, "GloVe file", f"the evaluator's glove/ folder holds {', '.join(FILES)}")
        try:
            vectors = np.load(directory / FILES[0], allow_pickle=False)
        except (ValueError, EOFError, OSError) as error:
            raise UserError(f"'{directory / FILES[0]}' is not a plain .npy array ({first_sentence(error)}).") from None
        words = load_plain_pickle(directory / FILES[1], "GloVe word list")
        index = load_plain_pickle(directory / FILES[2], "GloVe word index")
        if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
            raise UserError(f"'{directory / FILES[1]}' must hold a list of words (str).")
        if not isinstance(index, dict) or not all(isinstance(k, str) and isinstance(v, int) for k, v in index.items()):
            raise UserError(f"'{directory / FILES[2]}' must hold a dict word (str) -> row (int).")
        if not isinstance(vectors, np.ndarray) or vectors.ndim != 2 or vectors.shape[1] != WORD_DIM:
            raise UserError(f"'{directory / FILES[0]}' must hold ({len(words)}, {WORD_DIM}) word vectors.")
        if len(vectors) != len(words) or set(index) != set(words) or max(index.values()) >= len(vectors):
            raise UserError(
                f"the GloVe files in '{directory}' disagree: {len(vectors)} vectors, {len(words)} words, "
                f"{len(index)} indexed words; they must come from the same release."
            )
        return cls(vectors, words, index)

    def token(self, token: str) -> tuple:
        """(word vector (300,), POS index) of one `word/POS` token."""
        word, slash, pos = token.rpartition("/")
        if not slash or not word:
            raise UserError(f"caption token '{token}' is not word/POS; the caption files' second field must be tagged.")
        if word not in self.index:
            return self.vectors[self.index["unk"]], POS_TAGS.index("OTHER")
        tag = VIP_OF.get(word, pos if pos in POS_TAGS else "OTHER")
        return self.vectors[self.index[word]], POS_TAGS.index(tag)

    def sentence(self, tokens) -> tuple:
        """(word vectors (SLOTS, 300), POS indices (SLOTS,), length) of a caption's tokens."""
        tokens = ["sos/OTHER", *list(tokens)[:MAX_WORDS], "eos/OTHER"]
        length = len(tokens)
        tokens += ["unk/OTHER"] * (SLOTS - length)
        looked_up = [self.token(token) for token in tokens]
        return np.stack([vector for vector, _ in looked_up]), np.array([pos for _, pos in looked_up]), length

    def batch(self, captions: list) -> TokenBatch:
        """The token lists of B captions as one batch."""
        sentences = [self.sentence(tokens) for tokens in captions]
        vectors = torch.from_numpy(np.stack([vectors for vectors, _, _ in sentences]))  # (B, SLOTS, 300)
        pos = torch.from_numpy(np.stack([indices for _, indices, _ in sentences]))  # (B, SLOTS)
        one_hots = torch.nn.functional.one_hot(pos, len(POS_TAGS)).float()  # (B, SLOTS, 15)
        lengths = torch.tensor([length for _, _, length in sentences], dtype=torch.long)  # (B,)
        return TokenBatch(vectors, one_hots, lengths)
