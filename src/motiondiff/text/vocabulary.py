"""The words of a model's training captions, and a warning for prompts made mostly of other words.

A text-to-motion model only knows what its captions described; a prompt like 'a person flies to the
moon on a dragon' is encoded without complaint but gives a generic motion. `prompt_warning` says so
when more than half of a prompt's content words (function words such as 'a', 'to', 'the' left out)
never occur in the training captions, in any simple inflection ('waving' matches 'waves').
"""

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Optional

from motiondiff.text.pos_tags import tag_word

# Words that say nothing about the motion (articles, pronouns, subjects, prepositions, auxiliaries): never
# counted as unknown, never listed as known actions.
FUNCTION_WORDS = frozenset(
    """a an the this that these those his her their its my your our some any each every all both no
    he she they it him them someone somebody person man woman human people one i you we me us
    to of in on at by for from with into onto over under up down out off about above below around through across
    behind after before between toward towards while as than so then also just very too
    and or but if when is are was were be been being am has have had do does did will would can could
    should may might must there here not""".split()
)
AUXILIARY_VERBS = frozenset("be have do get start continue begin keep seem use make take".split())
KNOWN_ACTIONS_SHOWN = 15  # how many known actions a warning lists


@dataclass(frozen=True)
class Vocabulary:
    """Every form of every word of the training captions, and the actions to name, most common first."""

    words: frozenset
    actions: tuple


def caption_words(text: str) -> list:
    """The lower-case alphabetic words of a text."""
    return re.findall(r"[a-z]+", text.lower())


def word_forms(word: str) -> set:
    """`word` and its likely stems: its lemma, and the word without -s, -es, -ed or -ing (doubled consonant undone)."""
    forms = {word, tag_word(word)[0]}
    for suffix in ("ing", "ed", "es", "s"):
        stem = word[: -len(suffix)]
        if word.endswith(suffix) and len(stem) >= 3:
            forms |= {stem, stem + "e"}
            if stem[-1] == stem[-2]:
                forms.add(stem[:-1])
    return forms


def token_lemma(token: str) -> tuple:
    """A caption token `lemma/POS` -> (lemma, POS); POS is '' when the token has none."""
    lemma, _, pos = token.rpartition("/")
    return (lemma.lower(), pos.upper()) if lemma else (token.lower(), "")


def build_vocabulary(captions: Iterable, actions: Optional[Iterable] = None) -> Vocabulary:
    """The vocabulary of (text, word/POS tokens) captions; `actions` None: their most frequent verbs (or words)."""
    word_counts, token_counts = Counter(), Counter()
    for text, tokens in captions:
        word_counts.update(caption_words(text))
        token_counts.update(tokens)
    guessed = {word: tag_word(word) for word in word_counts}  # (lemma, POS) out of context
    tagged = [(token_lemma(token), count) for token, count in token_counts.items()]
    words = set(guessed) | {lemma for lemma, _ in guessed.values()} | {lemma for (lemma, _), _ in tagged}
    if actions is None:
        actions = common_verbs(tagged) or common_verbs((guessed[w], n) for w, n in word_counts.items())
        actions = actions or common_verbs(((guessed[w][0], "VERB"), n) for w, n in word_counts.items())
    return Vocabulary(frozenset(words), tuple(actions))


def common_verbs(tagged: Iterable) -> list:
    """The most frequent verb lemmas (auxiliaries and function words left out) of ((lemma, POS), count) pairs."""
    verbs = Counter()
    for (lemma, pos), count in tagged:
        if pos == "VERB" and lemma.isalpha() and lemma not in AUXILIARY_VERBS and lemma not in FUNCTION_WORDS:
            verbs[lemma] += count
    return [verb for verb, _ in verbs.most_common(KNOWN_ACTIONS_SHOWN)]


def unknown_words(prompt: str, vocabulary: Vocabulary) -> tuple:
    """(content words of `prompt`, those of them no training caption uses in any form)."""
    content = [word for word in caption_words(prompt) if word not in FUNCTION_WORDS]
    return content, [word for word in content if not word_forms(word) & vocabulary.words]


def prompt_warning(prompt: str, vocabulary: Vocabulary) -> Optional[str]:
    """A warning when most content words of `prompt` never occur in the training captions, else None."""
    content, unknown = unknown_words(prompt, vocabulary)
    if not unknown or 2 * len(unknown) <= len(content):
        return None
    known = ", ".join(vocabulary.actions[:KNOWN_ACTIONS_SHOWN])
    more = ", ..." if len(vocabulary.actions) > KNOWN_ACTIONS_SHOWN else ""
    return (
        f"most words of '{prompt}' never occur in the training captions ({', '.join(dict.fromkeys(unknown))}); "
        f"the model knows: {known}{more} — expect a generic motion."
    )


__all__ = ["Vocabulary", "build_vocabulary", "caption_words", "prompt_warning", "unknown_words", "word_forms"]
