"""`word/POS` tokens for captions that come without them (procedural captions, converted BVH clips).

HumanML3D and KIT-ML caption files carry spaCy tags: lower case, non-alphabetic tokens dropped, nouns
and verbs lemmatised (except "left"). The standard evaluator reads those tokens, so captions this
project writes carry them too. This is a lexicon tagger, not spaCy: it knows the words of the
procedural captions exactly and guesses the rest (-ly adverbs, -s verbs, else nouns), with one
context rule: a word with a noun reading after a determiner, number, possessive or adjective is a noun.
"""

import re

# word -> (lemma, POS) in the caption's usual reading; NOUN_READINGS holds the words that are nouns after a determiner
LEXICON = {
    **{w: (w, "DET") for w in "a an the all both some each every".split()},
    **{w: (w, "DET") for w in "his her their its".split()},  # possessives, as spaCy tags them
    **{w: (w, "PRON") for w in "he she they it someone somebody that this them him".split()},
    **{w: (w, "ADP") for w in "above after at by in into on over to with around from across behind through".split()},
    **{w: (w, "CCONJ") for w in "and or but".split()},
    **{w: (w, "NUM") for w in "one two three four five six ninety hundred".split()},
    **{w: (w, "ADJ") for w in "brisk full half other slow several right left small big high low".split()},
    **{
        w: (w, "ADV")
        for w in "ahead back backward backwards down fast first forward forwards once twice then up "
        "straight sideways together out again away".split()
    },
    **{
        w: (w, "NOUN")
        for w in "air arm bow circle face fist foot front hand head human jump kick leg man pace person "
        "place punch quarter reverse row shoulder side squat star turn waist walk way woman knee step hop".split()
    },
    "jacks": ("jack", "NOUN"),
    "degrees": ("degree", "NOUN"),
    "times": ("time", "NOUN"),
    "arms": ("arm", "NOUN"),
    "hands": ("hand", "NOUN"),
    "knees": ("knee", "NOUN"),
    "feet": ("foot", "NOUN"),
    "legs": ("leg", "NOUN"),
    "hello": ("hello", "INTJ"),
    "jumping": ("jump", "VERB"),
    "does": ("do", "VERB"),
    "goes": ("go", "VERB"),
    "hurries": ("hurry", "VERB"),
    "dashes": ("dash", "VERB"),
    "punches": ("punch", "VERB"),
    "backs": ("back", "VERB"),
    "makes": ("make", "VERB"),
    "takes": ("take", "VERB"),
    "moves": ("move", "VERB"),
    "raises": ("raise", "VERB"),
    "ambles": ("amble", "VERB"),
    "shuffles": ("shuffle", "VERB"),
}
NOUN_READINGS = {  # -s words that are plural nouns after a determiner and verbs otherwise
    word + "s": word for word in "jump punch squat step kick clap hop bow wave turn leap spin throw".split()
} | {"punches": "punch"}
BEFORE_NOUNS = {"DET", "NUM", "ADJ"}  # not PRON: "someone waves", "then he steps" are verbs, as spaCy tags them


def tag_caption(caption: str) -> list:
    """The caption's `lemma/POS` tokens, as HumanML3D's caption files write them."""
    tokens, previous = [], None
    for word in re.findall(r"[a-z]+", caption.lower()):
        lemma, pos = tag_word(word)
        if word in NOUN_READINGS and previous in BEFORE_NOUNS:
            lemma, pos = NOUN_READINGS[word], "NOUN"
        tokens.append(f"{lemma}/{pos}")
        previous = pos
    return tokens


def tag_word(word: str) -> tuple:
    """(lemma, POS) of a lower-case word out of context."""
    if word in LEXICON:
        return LEXICON[word]
    if word.endswith("ly"):
        return word, "ADV"
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y", "VERB"
    if word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2], "VERB"
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1], "VERB"
    return word, "NOUN"
