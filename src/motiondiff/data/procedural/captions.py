"""Captions for procedural motion specs: several phrasings of what the motion really does.

Every phrasing states only what the spec fixes (action, direction, side, count, speed, turn angle)
or leaves it out; none says something the motion does not do. Left and right are the person's
own. Templates use {poss} (his / her / their), {side} (left / right), {dir}, {n} (a number word)
and {times} (once / twice / three times).
"""

import numpy as np

NUMBER = {1: "one", 2: "two", 3: "three", 4: "four"}
TIMES = {1: "once", 2: "twice", 3: "three times", 4: "four times"}
SUBJECTS = (  # (subject, possessives, pronoun for a second sentence, weight)
    ("a person", ("their", "his", "her"), "the person", 4.0),
    ("someone", ("their",), "the person", 1.5),
    ("a man", ("his",), "he", 1.5),
    ("a woman", ("her",), "she", 1.0),
    ("the person", ("their",), "the person", 1.0),
    ("a human", ("their",), "the person", 0.5),
    ("the man", ("his",), "he", 0.5),
)
PREFIX_ADVERBS = {"slow": ("slowly",), "fast": ("quickly", "rapidly")}
SUFFIX_ADVERBS = {"slow": ("slowly", "at a slow pace"), "fast": ("quickly", "fast", "at a fast pace")}
# Verbs that already say the speed (used instead of an adverb now and then).
SPEED_VERBS = {
    ("walk", "forward", "slow"): ("strolls forward", "strolls slowly ahead", "ambles forward"),
    ("walk", "forward", "fast"): ("walks briskly forward", "hurries forward", "walks forward at a brisk pace"),
    ("walk", "backward", "slow"): ("slowly backs up", "carefully steps backward"),
    ("walk", "backward", "fast"): ("quickly backs up", "hurries backward"),
    ("run", "forward", "fast"): ("sprints forward", "sprints ahead", "dashes forward"),
}


def with_count(once: tuple, many: tuple, reps: int) -> tuple:
    """The phrasings for one repetition, or those for several."""
    return once if reps == 1 else many


def phrases(action: dict) -> tuple:
    """Verb-phrase templates (third person, present) that describe one action exactly."""
    name, reps = action["action"], action["reps"]
    if name == "walk" and action["direction"] == "forward":
        return (
            "walks forward",
            "walks straight ahead",
            "walks ahead",
            "moves forward",
            "walks forwards",
            "takes several steps forward",
            "goes forward at a walk",
        )
    if name == "walk":
        return (
            "walks backward",
            "walks backwards",
            "steps backward",
            "moves backwards",
            "backs up",
            "takes several steps back",
            "walks in reverse",
        )
    if name == "run":
        return ("runs forward", "runs ahead", "jogs forward", "runs straight ahead", "runs forwards")
    if name == "jump" and action["direction"] == "in_place":
        once = ("jumps", "jumps up", "jumps once", "does a jump", "jumps in place", "jumps up in the air")
        many = (
            "jumps {times}",
            "jumps up {times}",
            "does {n} jumps",
            "jumps in place {times}",
            "jumps up and down {times}",
            "jumps {n} times in place",
        )
        return with_count(once, many, reps)
    if name == "jump":
        once = ("jumps forward", "leaps forward", "jumps ahead", "does a jump forward", "jumps forward once")
        many = (
            "jumps forward {times}",
            "does {n} jumps forward",
            "leaps forward {times}",
            "jumps ahead {times}",
            "does {n} forward jumps",
        )
        return with_count(once, many, reps)
    if name == "wave" and action["side"] == "both":
        return (
            "waves with both hands",
            "waves both hands above {poss} head",
            "waves both arms in the air",
            "raises both hands and waves",
            "waves with both arms over {poss} head",
        )
    if name == "wave":
        return (
            "waves with {poss} {side} hand",
            "waves {poss} {side} hand",
            "waves {poss} {side} arm above {poss} head",
            "raises {poss} {side} hand and waves",
            "waves hello with {poss} {side} hand",
            "waves {poss} {side} hand over {poss} head",
        )
    if name == "raise_arms" and action["side"] == "both":
        once = (
            "raises both arms",
            "raises {poss} arms above {poss} head",
            "lifts both arms up",
            "puts both hands up in the air",
            "raises both hands over {poss} head",
        )
        many = (
            "raises both arms {times}",
            "raises and lowers both arms {times}",
            "lifts both arms up {times}",
            "puts both hands up in the air {times}",
            "raises {poss} arms above {poss} head {times}",
        )
        return with_count(once, many, reps)
    if name == "raise_arms":
        once = (
            "raises {poss} {side} arm",
            "lifts {poss} {side} arm up",
            "raises {poss} {side} hand above {poss} head",
            "raises {poss} {side} arm over {poss} head",
            "lifts {poss} {side} hand into the air",
        )
        many = (
            "raises {poss} {side} arm {times}",
            "raises and lowers {poss} {side} arm {times}",
            "lifts {poss} {side} arm up {times}",
            "raises {poss} {side} hand above {poss} head {times}",
        )
        return with_count(once, many, reps)
    if name == "kick":
        once = (
            "kicks with {poss} {side} leg",
            "kicks {poss} {side} leg forward",
            "kicks forward with {poss} {side} foot",
            "does a front kick with {poss} {side} leg",
            "kicks out with {poss} {side} foot",
        )
        many = (
            "kicks {times} with {poss} {side} leg",
            "kicks with {poss} {side} leg {times}",
            "does {n} kicks with {poss} {side} leg",
            "kicks {poss} {side} foot forward {times}",
        )
        return with_count(once, many, reps)
    if name == "squat":
        once = (
            "squats",
            "squats down",
            "does a squat",
            "squats down and stands back up",
            "bends {poss} knees into a squat",
        )
        many = ("squats {times}", "does {n} squats", "squats down and up {times}", "does {n} squats in a row")
        return with_count(once, many, reps)
    if name == "turn":
        return {
            90: (
                "turns {dir}",
                "turns to the {dir}",
                "turns to {poss} {dir}",
                "turns 90 degrees to the {dir}",
                "makes a quarter turn to the {dir}",
                "turns {dir} by ninety degrees",
            ),
            180: (
                "turns around to the {dir}",
                "turns 180 degrees to the {dir}",
                "makes a half turn to the {dir}",
                "turns around over {poss} {dir} shoulder",
                "turns around",
                "turns {dir} to face the other way",
            ),
            360: (
                "turns in a full circle to the {dir}",
                "spins all the way around to the {dir}",
                "does a full turn to the {dir}",
                "turns 360 degrees to the {dir}",
                "turns a full circle {dir}",
            ),
        }[action["angle"]]
    if name == "sidestep":
        return (
            "sidesteps to the {dir}",
            "steps sideways to the {dir}",
            "side steps to {poss} {dir}",
            "shuffles sideways to the {dir}",
            "takes {n} steps to the {dir}",
            "takes {n} side steps to the {dir}",
            "moves sideways to the {dir}",
        )
    if name == "clap":
        return (
            "claps {times}",
            "claps {poss} hands {times}",
            "claps",
            "claps {poss} hands",
            "claps {poss} hands together {times}",
            "applauds",
        )
    if name == "punch":
        once = (
            "punches with {poss} {side} hand",
            "throws a punch with {poss} {side} arm",
            "punches forward with {poss} {side} fist",
            "throws a {side} punch",
            "punches straight ahead with {poss} {side} hand",
        )
        many = (
            "punches {times} with {poss} {side} hand",
            "throws {n} punches with {poss} {side} arm",
            "punches forward with {poss} {side} fist {times}",
            "throws {n} {side} punches",
        )
        return with_count(once, many, reps)
    if name == "jumping_jacks":
        return (
            "does {n} jumping jacks",
            "performs {n} jumping jacks",
            "does jumping jacks",
            "does {n} star jumps",
            "does some jumping jacks",
        )
    if name == "hop":
        return (
            "hops on {poss} {side} leg",
            "hops on {poss} {side} foot {times}",
            "hops {times} on {poss} {side} leg",
            "hops in place on {poss} {side} foot",
            "stands on {poss} {side} leg and hops {times}",
            "hops {n} times on one leg, the {side} one",
        )
    if name == "bow":
        once = ("bows", "bows forward", "takes a bow", "bends forward at the waist and straightens up", "bows down")
        many = ("bows {times}", "bows forward {times}", "takes {n} bows")
        return with_count(once, many, reps)
    raise AssertionError(f"no phrasings for action {name!r}")


def pick(rng: np.random.Generator, options):
    """One of `options`, uniformly."""
    return options[rng.integers(len(options))]


def verb_phrase(action: dict, poss: str, rng: np.random.Generator) -> str:
    """One phrasing of an action, its speed said by a verb or an adverb."""
    speed = action["speed"]
    special = SPEED_VERBS.get((action["action"], action["direction"], speed))
    if special and rng.random() < 0.4:
        template = pick(rng, special)
    else:
        template = pick(rng, phrases(action))
        if speed != "normal" and rng.random() < 0.5:
            template = pick(rng, PREFIX_ADVERBS[speed]) + " " + template
        elif speed != "normal":
            template = template + " " + pick(rng, SUFFIX_ADVERBS[speed])
    reps = action["reps"]
    return template.format(
        poss=poss,
        side=action["side"],
        dir=action["direction"],
        n=NUMBER.get(reps, ""),
        times=TIMES.get(reps, ""),
    )


def caption(spec: dict, rng: np.random.Generator) -> str:
    """One caption of a whole spec: a subject and its actions, in order."""
    weights = np.array([s[3] for s in SUBJECTS])
    subject, possessives, pronoun, _ = SUBJECTS[rng.choice(len(SUBJECTS), p=weights / weights.sum())]
    poss = pick(rng, possessives)
    parts = [verb_phrase(action, poss, rng) for action in spec["actions"]]
    if len(parts) == 1:
        text = f"{subject} {parts[0]}"
    else:
        assert len(parts) == 2, "captions join at most two actions"
        joins = (
            "{s} {a} then {b}",
            "{s} {a}, then {b}",
            "{s} {a} and then {b}",
            "{s} first {a} and then {b}",
            "{s} {a}, and then {b}",
            "{s} {a}. then {p} {b}",
            "{s} {a}, after that {p} {b}",
        )
        text = pick(rng, joins).format(s=subject, a=parts[0], b=parts[1], p=pronoun)
    if rng.random() < 0.4:
        text = text[0].upper() + text[1:]
    return text + ("." if rng.random() < 0.5 else "")


def captions_for(spec: dict, rng: np.random.Generator, n: int = 3) -> list:
    """`n` different captions of a spec (fewer only if the templates cannot give that many)."""
    captions = []
    for _ in range(20 * n):
        text = caption(spec, rng)
        if text not in captions:
            captions.append(text)
        if len(captions) == n:
            break
    return captions
