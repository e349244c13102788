"""A procedural (synthetic) dance on the 20-joint body: the embedded default data, no download needed.

The motion is NOT motion capture. It is generated: per-frame local joint angles for a
sequence of rhythmic phrases on a beat grid (side steps, arm waves, hip sways, full turns,
arm pumps, claps), crossfaded at phrase boundaries, then posed with the shared forward
kinematics so every bone keeps its length exactly. The root is placed afterwards: its height
keeps the lower foot on the floor (y = 0) and its horizontal motion follows the standing
foot, so the feet neither float nor slide much.

Conventions: metres, y up, the character faces +z at yaw 0 and its left is +x. Angles in this
module are degrees, per joint (about y, about x, about z), composed as intrinsic "YXZ"
(yaw, then pitch, then roll). With the arms along +-x in the rest pose (a T-pose), the sign
conventions below are written for the left side; the right side is their mirror image.
"""

import numpy as np
from scipy.signal import lfilter

from motiondiff.core.checks import whole_number
from motiondiff.core.errors import UserError
from motiondiff.data.kinematics.skeleton import BODY20_NAMES, BODY20_PARENTS, Skeleton
from motiondiff.data.procedural.posing import PITCH, ROLL, SIDE_SIGN, YAW, Body, smoothstep

NUM_JOINTS = len(BODY20_NAMES)
J = {name: i for i, name in enumerate(BODY20_NAMES)}

# Rest offsets of each joint from its parent (T-pose, metres), BODY20 order; the pelvis entry is its rest position.
BODY20_REST_OFFSETS = np.array(
    [
        [0.00, 0.95, 0.00],  # pelvis
        [0.08, -0.08, 0.00],  # left_hip
        [-0.08, -0.08, 0.00],  # right_hip
        [0.00, -0.40, 0.00],  # left_knee
        [0.00, -0.40, 0.00],  # right_knee
        [0.00, -0.40, -0.02],  # left_ankle
        [0.00, -0.40, -0.02],  # right_ankle
        [0.00, 0.29, -0.01],  # spine3 (chest)
        [0.00, -0.05, 0.13],  # left_foot (ball of the foot)
        [0.00, -0.05, 0.13],  # right_foot
        [0.00, 0.21, -0.01],  # neck
        [0.07, 0.12, -0.01],  # left_collar
        [-0.07, 0.12, -0.01],  # right_collar
        [0.00, 0.10, 0.04],  # head
        [0.12, 0.02, 0.00],  # left_shoulder
        [-0.12, 0.02, 0.00],  # right_shoulder
        [0.26, 0.00, 0.00],  # left_elbow
        [-0.26, 0.00, 0.00],  # right_elbow
        [0.25, 0.00, 0.00],  # left_wrist
        [-0.25, 0.00, 0.00],  # right_wrist
    ]
)

LEG_LENGTH = 0.80  # hip to ankle
ANKLE_REST_HEIGHT = 0.07  # ankle above the floor in the rest pose
TOE_REST_HEIGHT = 0.02  # ball of the foot above the floor in the rest pose
BEATS_PER_PHRASE = 8
BLEND_BEATS = 0.5  # crossfade length between phrases
ROOT_RECENTER_SECONDS = 4.0  # time constant of the slow pull of the root back to x = z = 0


BODY = Body(BODY20_NAMES, BODY20_PARENTS, BODY20_REST_OFFSETS)
leg, arm, flatten_feet, pose = BODY.leg, BODY.arm, BODY.flatten_feet, BODY.pose  # the posing kit on this body


def dance_skeleton() -> Skeleton:
    """The 20-joint body with the procedural dance's rest offsets."""
    return Skeleton(BODY20_NAMES, BODY20_PARENTS, BODY20_REST_OFFSETS.copy())


# ---------------------------------------------------------------- small curve helpers


def on_beat(b, sharpness: float = 1.0):
    """1 on every beat, 0 half-way between; higher sharpness makes a shorter accent."""
    return (0.5 + 0.5 * np.cos(2.0 * np.pi * b)) ** sharpness


def periodic_keys(b, keys, period: float):
    """Smooth periodic interpolation through (beat, value) keys; the first key must be at beat 0."""
    times = np.array([k[0] for k in keys] + [period], dtype=float)
    values = np.array([k[1] for k in keys] + [keys[0][1]], dtype=float)
    t = np.mod(b, period)
    i = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(keys) - 1)
    u = (t - times[i]) / (times[i + 1] - times[i])
    return values[i] + (values[i + 1] - values[i]) * smoothstep(u)


# ---------------------------------------------------------------- pose helpers (degrees, left-side conventions)


def lift(angles, side, amount):
    """Lift a foot straight up (hip and knee flex together; amount 1 is about 8 cm)."""
    leg(angles, side, flex=25.0 * amount, knee=50.0 * amount)


def base_pose(n: int) -> np.ndarray:
    """Relaxed standing pose (n, 20, 3): soft knees, arms down, elbows slightly bent."""
    angles = BODY.zeros(n)
    for side in SIDE_SIGN:
        leg(angles, side, flex=6.0, knee=12.0)
        arm(angles, side, raise_=-75.0, forward=5.0, elbow=15.0)
    return angles


def bounce(angles, b, depth=1.0):
    """Knees dip on every beat (the pelvis drops once the feet are put on the floor), chest and head nod."""
    dip = depth * on_beat(b)
    for side in SIDE_SIGN:
        leg(angles, side, flex=9.0 * dip, knee=18.0 * dip)
    angles[:, J["spine3"], PITCH] += 3.0 * dip
    angles[:, J["neck"], PITCH] += 6.0 * dip


def sway(angles, s, degrees):
    """Shift the hips to +x (s > 0) or -x (s < 0) over planted feet: legs tilt, pelvis rolls, chest counter-leans."""
    a = degrees * np.asarray(s)
    leg(angles, "left", abduct=-a)
    leg(angles, "right", abduct=a)
    roll = 0.7 * a  # the hip on the weighted side rises
    angles[:, J["pelvis"], ROLL] += roll
    angles[:, J["left_hip"], ROLL] -= roll  # keep the legs' tilt as set above
    angles[:, J["right_hip"], ROLL] -= roll
    angles[:, J["spine3"], ROLL] -= 1.4 * roll


def opposite(name: str) -> str:
    """The joint on the other side: left_knee <-> right_knee; centre joints map to themselves."""
    if name.startswith("left_"):
        return "right_" + name[len("left_") :]
    return "left_" + name[len("right_") :] if name.startswith("right_") else name


def mirror(angles: np.ndarray) -> np.ndarray:
    """The same motion reflected left/right (swap sides, negate yaw and roll)."""
    out = angles[:, [J[opposite(n)] for n in BODY20_NAMES]].copy()
    out[..., YAW] *= -1.0
    out[..., ROLL] *= -1.0
    return out


# ---------------------------------------------------------------- phrases: local beat b (n,) -> angles (n, 20, 3)


def side_steps(b, amp):
    """Step-touch to the right then to the left (4-beat cycle), arms swinging, torso leaning into the step."""
    width = 0.25 * amp  # metres the stepping foot travels outward
    # lateral offsets of each foot from under its hip (left positive = outward to +x, right negative = outward to -x)
    # a swinging foot lifts first, travels while in the air and comes down last, so the standing foot stays put
    # beats 0-1 right foot out, 1-1.4 weight onto it, 1.4-2 left foot closes; beats 2-4 the same to the left
    d_right = periodic_keys(
        b,
        [
            (0, 0),
            (0.15, 0),
            (0.85, -width),
            (1.0, -width),
            (1.4, 0),
            (3.0, 0),
            (3.4, -width),
            (3.55, -width),
            (3.85, 0),
        ],
        4,
    )
    d_left = periodic_keys(
        b,
        [(0, 0), (1.0, 0), (1.4, width), (1.55, width), (1.85, 0), (2.15, 0), (2.85, width), (3.0, width), (3.4, 0)],
        4,
    )
    lift_right = periodic_keys(b, [(0, 0), (0.5, 1), (1.0, 0), (3.4, 0), (3.7, 1)], 4)
    lift_left = periodic_keys(b, [(0, 0), (1.4, 0), (1.7, 1), (2.0, 0), (2.5, 1), (3.0, 0)], 4)
    angles = base_pose(len(b))
    leg(angles, "left", abduct=np.degrees(np.arcsin(d_left / LEG_LENGTH)))
    leg(angles, "right", abduct=np.degrees(np.arcsin(-d_right / LEG_LENGTH)))
    lift(angles, "left", 0.8 * amp * lift_left)
    lift(angles, "right", 0.8 * amp * lift_right)
    bounce(angles, b, 0.7)
    swing = 30.0 * amp * np.sin(np.pi * b)
    arm(angles, "left", forward=swing, elbow=35.0, raise_=10.0)
    arm(angles, "right", forward=-swing, elbow=35.0, raise_=10.0)
    lean = 6.0 * amp * np.sin(np.pi * b / 2.0)
    angles[:, J["spine3"], ROLL] += -lean
    angles[:, J["head"], ROLL] += 0.5 * lean
    return angles


def arm_waves(b, amp):
    """Both arms go up and wave overhead, the right a quarter cycle behind the left, body swaying with them."""
    angles = base_pose(len(b))
    up = smoothstep(b) * smoothstep(BEATS_PER_PHRASE - b)  # arms rise over the first beat, come down over the last
    for side, phase in (("left", 0.0), ("right", -0.5 * np.pi)):
        wave = np.sin(np.pi * b + phase)
        raise_, bend = up * (140.0 + 12.0 * amp * wave), up * (35.0 + 30.0 * amp * wave)
        arm(angles, side, raise_=raise_, elbow=-10.0 * up, elbow_up=bend)
    sway(angles, 0.5 * np.sin(np.pi * b), 6.0 * amp)
    angles[:, J["spine3"], ROLL] += 6.0 * amp * np.sin(np.pi * b - 0.25 * np.pi)
    bounce(angles, b, 0.6)
    return angles


def hip_sway(b, amp):
    """Hips sway side to side on the beat (double time in the second half), the free knee bending, arms relaxed."""
    c = np.where(b < 4.0, np.cos(np.pi * b), np.cos(2.0 * np.pi * b))
    s = np.sign(c) * np.abs(c) ** 0.6  # hold a little longer at each side
    angles = base_pose(len(b))
    sway(angles, s, 9.0 * amp)
    leg(angles, "right", flex=8.0 * np.maximum(s, 0), knee=16.0 * np.maximum(s, 0))  # the unweighted knee bends
    leg(angles, "left", flex=8.0 * np.maximum(-s, 0), knee=16.0 * np.maximum(-s, 0))
    for side, sign in (("left", 1.0), ("right", -1.0)):  # relaxed arms, elbows bent, swinging against the hips
        arm(angles, side, raise_=10.0 - 10.0 * amp * sign * s, forward=10.0, elbow=40.0)
    angles[:, J["head"], ROLL] += -5.0 * s
    return angles


def turn(b, amp):
    """A full turn to the left (counter-clockwise from above) over beats 0.5-7.5, stepping in place, arms out."""
    angles = base_pose(len(b))
    angles[:, J["pelvis"], YAW] += 360.0 * smoothstep((b - 0.5) / 7.0)
    steps = np.sin(np.pi * b)
    lift(angles, "left", 0.6 * amp * np.maximum(steps, 0.0) ** 2)
    lift(angles, "right", 0.6 * amp * np.maximum(-steps, 0.0) ** 2)
    for side in SIDE_SIGN:
        arm(angles, side, raise_=35.0 * amp, forward=30.0, elbow=60.0)
    bounce(angles, b, 0.4)
    return angles


def arm_pumps(b, amp):
    """Fists punch overhead on alternate beats (left on even beats, right on odd), torso leaning, strong bounce."""
    angles = base_pose(len(b))
    for side, punch in (("left", on_beat(b / 2.0, 2.0)), ("right", on_beat((b - 1.0) / 2.0, 2.0))):
        # from a fist by the shoulder (upper arm out-down, forearm up) to a straight arm overhead
        arm(angles, side, raise_=45.0 + 100.0 * amp * punch, elbow=-15.0, elbow_up=120.0 - 110.0 * punch)
    lean = on_beat(b / 2.0, 2.0) - on_beat((b - 1.0) / 2.0, 2.0)
    angles[:, J["spine3"], ROLL] += -5.0 * amp * lean
    bounce(angles, b, 1.0 * amp)
    return angles


def claps(b, amp):
    """Claps on every beat, in front of the chest for four beats then overhead; feet tap out on alternate beats."""
    angles = base_pose(len(b))
    close = on_beat(b, 3.0)  # hands meet on the beat
    high = smoothstep((b - 3.5) / 0.5)
    for side in SIDE_SIGN:
        chest = dict(raise_=0.0, forward=70.0, across=-10.0 + 44.0 * close, elbow=15.0)
        over = dict(
            raise_=160.0 + 24.0 * close, forward=-15.0, across=0.0, elbow=-15.0
        )  # past vertical: forward tips back
        arm(angles, side, **{k: (1.0 - high) * chest[k] + high * over[k] for k in chest})
    for side, at in (("left", 1.0), ("right", 3.0)):  # the foot swings out, touches the floor on the beat, swings back
        out = periodic_keys(b, [(0, 0), (at - 0.4, 0), (at - 0.15, 1), (at + 0.15, 1), (at + 0.4, 0)], 4.0)
        up = periodic_keys(b, [(0, 0), (at - 0.5, 0), (at - 0.3, 1), (at, 0), (at + 0.3, 1), (at + 0.5, 0)], 4.0)
        other = "right" if side == "left" else "left"
        leg(angles, side, abduct=14.0 * amp * out)
        lift(angles, side, 0.4 * up)
        leg(angles, other, flex=7.0 * amp * out, knee=14.0 * amp * out)  # standing knee dips: the tap reaches the floor
    bounce(angles, b, 0.8)
    return angles


PHRASES = (side_steps, arm_waves, hip_sway, turn, arm_pumps, claps)


# ---------------------------------------------------------------- sequencing, blending, posing


def phrase_plan(num_phrases: int, rng: np.random.Generator) -> list:
    """(phrase, amplitude, mirrored) per slot: shuffled decks holding every phrase once, no phrase twice in a row."""
    plan = []
    while len(plan) < num_phrases:
        deck = [int(i) for i in rng.permutation(len(PHRASES))]
        if plan and PHRASES[deck[0]] is plan[-1][0]:
            deck.append(deck.pop(0))
        plan += [(PHRASES[i], float(rng.uniform(0.85, 1.15)), bool(rng.integers(2))) for i in deck]
    return plan[:num_phrases]


def phrase_angles(phrase, b, amp: float, mirrored: bool) -> np.ndarray:
    """One phrase's angles (n, 20, 3) at local beats b, mirrored left/right if asked."""
    angles = phrase(np.asarray(b, dtype=float), amp)
    return mirror(angles) if mirrored else angles


def sequence_angles(beats: np.ndarray, plan: list) -> np.ndarray:
    """Angles (T, 20, 3) in degrees: phrase k plays on beats [8k, 8k+8), neighbours crossfaded with a smooth step."""
    total = np.zeros((len(beats), NUM_JOINTS, 3))
    weight_sum = np.zeros(len(beats))
    yaw_offset, half = 0.0, 0.5 * BLEND_BEATS
    for k, (phrase, amp, mirrored) in enumerate(plan):
        start, end = k * BEATS_PER_PHRASE, (k + 1) * BEATS_PER_PHRASE
        weight = smoothstep((beats - start + half) / BLEND_BEATS) * smoothstep((end + half - beats) / BLEND_BEATS)
        active = weight > 0
        if active.any():
            angles = phrase_angles(phrase, beats[active] - start, amp, mirrored)
            angles[:, J["pelvis"], YAW] += yaw_offset  # turns accumulate, so later phrases never unwind them
            total[active] += weight[active, None, None] * angles
            weight_sum[active] += weight[active]
        ends = phrase_angles(phrase, [0.0, BEATS_PER_PHRASE], amp, mirrored)[:, J["pelvis"], YAW]
        yaw_offset += ends[1] - ends[0]
    return total / weight_sum[:, None, None]


def place_on_floor(positions: np.ndarray, fps: float) -> np.ndarray:
    """Move the whole body so the lower foot is on y = 0 and the standing foot barely slides (slowly re-centred)."""
    sides = ("left", "right")
    ankles = positions[:, [J[f"{s}_ankle"] for s in sides]]  # (T, 2, 3)
    toes = positions[:, [J[f"{s}_foot"] for s in sides]]  # (T, 2, 3)
    soles = np.minimum(ankles[..., 1] - ANKLE_REST_HEIGHT, toes[..., 1] - TOE_REST_HEIGHT)  # (T, 2)
    stance = np.exp(-(soles - soles.min(1, keepdims=True)) / 0.005)
    stance /= stance.sum(1, keepdims=True)  # (T, 2): weight of each foot as the standing one
    feet_xz = 0.5 * (ankles + toes)[..., [0, 2]]  # (T, 2, 2)
    step = np.diff(feet_xz, axis=0, prepend=feet_xz[:1])  # (T, 2, 2)
    push = -(stance[..., None] * step).sum(1)  # (T, 2): the root moves against the standing foot's motion
    keep = np.exp(-1.0 / (fps * ROOT_RECENTER_SECONDS))
    root_xz = lfilter([keep], [1.0, -keep], push, axis=0)  # root[t] = keep * (root[t-1] + push[t])
    shift = np.stack([root_xz[:, 0], -soles.min(1), root_xz[:, 1]], axis=-1)  # (T, 3)
    return positions + shift[:, None, :]


def make_procedural_dance(
    num_frames: int = 900, fps: float = 30.0, seed: int = 0, bpm: float = 120.0
) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic dance: (positions3d (T, 20, 3) metres, y up, facing +z; keypoints2d (T, 20, 2) front view), float32."""
    num_frames = whole_number("num_frames", num_frames, why="e.g. 900")
    if not (fps > 0 and bpm > 0):
        raise UserError(f"fps and bpm must be positive, got fps={fps!r}, bpm={bpm!r}; pass e.g. fps=30, bpm=120.")
    beats = np.arange(int(num_frames)) / fps * bpm / 60.0  # (T,)
    plan = phrase_plan(int(beats[-1] // BEATS_PER_PHRASE) + 1, np.random.default_rng(seed))
    positions = place_on_floor(pose(flatten_feet(sequence_angles(beats, plan))), fps).astype(np.float32)
    return positions, np.ascontiguousarray(positions[..., :2])
