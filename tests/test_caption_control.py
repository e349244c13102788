"""The caption-control measures agree with the procedural motions' own parameters."""

import numpy as np

from motiondiff.data.procedural.text_motion import generate_motion
from motiondiff.metrics.caption_control import ground_travel, raised_side, travel_gap

MOTIONS = [generate_motion(seed=0, index=i) for i in range(120)]


def _single(motion: dict, actions: tuple) -> bool:
    return len(motion["spec"]["actions"]) == 1 and motion["spec"]["actions"][0]["action"] in actions


def test_walking_and_running_travel_and_clapping_does_not():
    travelling = [m for m in MOTIONS if _single(m, ("walk", "run"))]
    in_place = [m for m in MOTIONS if _single(m, ("clap", "squat", "bow", "wave"))]
    assert travelling and in_place
    assert min(ground_travel(m["joints"]) for m in travelling) > 0.5
    assert max(ground_travel(m["joints"]) for m in in_place) < 0.3
    gap = travel_gap(
        [m["joints"] for m in travelling + in_place], np.array([True] * len(travelling) + [False] * len(in_place))
    )
    assert gap > 1.0


def test_raised_side_names_the_hand_the_spec_raises():
    one_hand = [
        m
        for m in MOTIONS
        if _single(m, ("wave", "raise_arms")) and m["spec"]["actions"][0]["side"] in ("left", "right")
    ]
    assert len(one_hand) >= 3
    assert all(raised_side(m["joints"]) == m["spec"]["actions"][0]["side"] for m in one_hand)
