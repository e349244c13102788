"""Procedural human actions on the 22-joint SMPL body: the motions of the embedded text-motion dataset.

A motion is a short plan (a "spec"): one or two actions (walk, run, jump, wave, kick, turn, ...)
with their parameters (direction, side, repetitions, speed) and frame ranges, between standing
still. Each action writes per-frame local joint angles, which foot carries the weight and any
flight, then the shared forward kinematics poses the body, so every bone keeps its length
exactly. The root is placed afterwards: the weighted feet stay on the floor (y = 0) and do not
slide, so walking, side steps and turns move the body through the world the way the legs do; in
the air the body keeps its take-off velocity on a ballistic arc.

Conventions: metres, y up, 20 fps, the body faces +z at the start and its left is +x (as SMPL).
Angles are degrees per joint (about y, about x, about z), composed as intrinsic "YXZ". The rest
pose is a T-pose; the sign conventions of the pose helpers are written for the left side and
mirrored for the right. A positive pelvis yaw turns the body to its left.
"""

from dataclasses import dataclass

import numpy as np

from motiondiff.data.kinematics.skeleton import SMPL22_NAMES, SMPL22_PARENTS
from motiondiff.data.procedural.posing import PITCH, ROLL, SIDE_SIGN, SIDES, YAW, Body, smoothstep
from motiondiff.data.representations.humanml3d_features import REFERENCE_BONE_LENGTHS

FPS = 20
# Joint frames; the 263 features have one frame less, so every motion gives 40..196 feature frames,
# the range HumanML3D loaders keep (min_frames=40, max_frames=196).
MIN_FRAMES, MAX_FRAMES = 41, 197
NUM_JOINTS = len(SMPL22_NAMES)
J = {name: i for i, name in enumerate(SMPL22_NAMES)}
GRAVITY = 9.81

# Rest directions of each bone (T-pose, facing +z, left at +x), scaled below to the bone lengths
# of the HumanML3D reference skeleton, so the motions need no retargeting.
_REST_DIRECTIONS = np.array(
    [
        [0.0, 0.0, 0.0],  # pelvis (its rest position is set below)
        [0.70, -0.70, 0.0],  # left_hip
        [-0.70, -0.70, 0.0],  # right_hip
        [0.0, 1.0, -0.12],  # spine1
        [0.02, -1.0, 0.0],  # left_knee
        [-0.02, -1.0, 0.0],  # right_knee
        [0.0, 1.0, 0.06],  # spine2
        [0.0, -1.0, -0.04],  # left_ankle
        [0.0, -1.0, -0.04],  # right_ankle
        [0.0, 1.0, 0.0],  # spine3
        [0.0, -0.36, 1.0],  # left_foot (ball of the foot)
        [0.0, -0.36, 1.0],  # right_foot
        [0.0, 1.0, -0.08],  # neck
        [0.55, 0.85, -0.05],  # left_collar
        [-0.55, 0.85, -0.05],  # right_collar
        [0.0, 0.85, 0.5],  # head
        [1.0, 0.15, -0.05],  # left_shoulder
        [-1.0, 0.15, -0.05],  # right_shoulder
        [1.0, 0.0, 0.0],  # left_elbow
        [-1.0, 0.0, 0.0],  # right_elbow
        [1.0, 0.0, 0.0],  # left_wrist
        [-1.0, 0.0, 0.0],  # right_wrist
    ]
)
SMPL22_REST_OFFSETS = _REST_DIRECTIONS / np.maximum(np.linalg.norm(_REST_DIRECTIONS, axis=-1, keepdims=True), 1e-12)
SMPL22_REST_OFFSETS[1:] *= REFERENCE_BONE_LENGTHS[:, None]
ANKLE_REST_HEIGHT = 0.075  # ankle above the floor in the rest pose
TOE_REST_HEIGHT = ANKLE_REST_HEIGHT + SMPL22_REST_OFFSETS[J["left_foot"], 1]  # ball of the foot above the floor
_LEG_DROP = -SMPL22_REST_OFFSETS[[J["left_hip"], J["left_knee"], J["left_ankle"]], 1].sum()
SMPL22_REST_OFFSETS[0] = [0.0, ANKLE_REST_HEIGHT + _LEG_DROP, 0.0]  # pelvis ~0.96 m above the floor
BODY = Body(SMPL22_NAMES, SMPL22_PARENTS, SMPL22_REST_OFFSETS)
leg, arm, flatten_feet, pose = BODY.leg, BODY.arm, BODY.flatten_feet, BODY.pose  # the posing kit on this body
SPEED_FACTOR = {"slow": 1.45, "normal": 1.0, "fast": 0.72}  # duration multipliers


@dataclass
class Style:
    """Per-motion variation: rest pose and how big and fast movements are."""

    arm_hang: float  # shoulder roll of the hanging arms (degrees, about -75)
    elbow: float  # resting elbow bend
    knee: float  # resting knee bend
    stance: float  # legs' outward tilt
    toe_out: float  # feet turned outward
    lean: float  # torso pitch
    head: float  # head pitch
    amp: float  # amplitude of arm and body moves
    step: float  # step length
    tempo: float  # cadence multiplier


def sample_style(rng: np.random.Generator) -> Style:
    """A random but natural standing pose and movement style."""
    u = lambda low, high: float(rng.uniform(low, high))  # noqa: E731
    return Style(
        arm_hang=u(-80, -70),
        elbow=u(8, 25),
        knee=u(3, 12),
        stance=u(0, 4),
        toe_out=u(0, 10),
        lean=u(-2, 5),
        head=u(-6, 6),
        amp=u(0.85, 1.15),
        step=u(0.88, 1.12),
        tempo=u(0.92, 1.08),
    )


@dataclass
class Part:
    """What an action writes over its frames."""

    angles: np.ndarray  # (n, 22, 3) degrees, the whole pose
    contact: np.ndarray  # (n, 2) 1 where the left / right foot carries weight
    travel: np.ndarray  # (n, 2) extra root motion in the air, metres per frame, (left, forward) of the heading


# ---------------------------------------------------------------- curves


def keys(u, points):
    """Eased interpolation through (u, value) points, held constant outside them."""
    times = np.array([p[0] for p in points], dtype=float)
    values = np.array([p[1] for p in points], dtype=float)
    assert (np.diff(times) > 0).all(), times
    i = np.clip(np.searchsorted(times, u, side="right") - 1, 0, len(times) - 2)
    return values[i] + (values[i + 1] - values[i]) * smoothstep((u - times[i]) / (times[i + 1] - times[i]))


def envelope(n: int, ramp: float) -> np.ndarray:
    """(n,) rising from 0 to 1 over `ramp` frames, falling back to 0 over the last `ramp` frames."""
    t = np.arange(n, dtype=float)
    return smoothstep(t / ramp) * smoothstep((n - 1 - t) / ramp)


def rep_phase(n: int, reps: int, margin: int):
    """Phase u in [0, 1) of each frame within its repetition, (n,); 0 in the margins before and after."""
    period = (n - 2 * margin) / reps
    u = (np.arange(n) - margin) / period  # (n,)
    return np.where((u >= 0) & (u < reps), u - np.floor(u), 0.0), period


# ---------------------------------------------------------------- pose helpers (degrees, left-side conventions)


def torso(a, lean=0.0, tilt=0.0, twist=0.0):
    """Bend the spine forward (lean), toward the body's right (tilt) and turn the chest left (twist)."""
    for joint, share in (("spine1", 0.4), ("spine2", 0.3), ("spine3", 0.3)):
        a[:, J[joint], PITCH] += share * np.asarray(lean)
        a[:, J[joint], ROLL] += share * np.asarray(tilt)
        a[:, J[joint], YAW] += share * np.asarray(twist)


def lift_foot(a, side, amount):
    """Lift a foot straight up (hip and knee flex together; amount 1 is about 10 cm)."""
    leg(a, side, flex=28.0 * np.asarray(amount), knee=56.0 * np.asarray(amount))


def base_pose(n: int, style: Style) -> np.ndarray:
    """Relaxed standing pose (n, 22, 3): soft knees, arms hanging, elbows slightly bent."""
    a = BODY.zeros(n)
    for side in SIDES:
        leg(a, side, flex=0.5 * style.knee, abduct=style.stance, knee=style.knee, twist=style.toe_out)
        arm(a, side, raise_=style.arm_hang, forward=4.0, elbow=style.elbow)
    torso(a, lean=style.lean)
    a[:, J["head"], PITCH] += style.head
    return a


def standing(n: int, style: Style) -> Part:
    """Standing still, both feet on the floor."""
    return Part(base_pose(n, style), np.ones((n, 2)), np.zeros((n, 2)))


# ---------------------------------------------------------------- locomotion


def leg_cycle(p, stance: float):
    """Hip swing in [-1, 1] (forward +), knee bend in [0, 1] and contact of one leg at gait phase p in [0, 1)."""
    in_stance = p < stance
    v = np.clip((p - stance) / (1.0 - stance), 0.0, 1.0)  # progress through the swing
    swing = np.where(in_stance, 1.0 - 2.0 * p / stance, -1.0 + 2.0 * smoothstep(v))
    bend = np.where(in_stance, 0.0, np.sin(np.pi * v) ** 0.7)
    return swing, bend, in_stance.astype(float)


def gait(n, style, rng, cadence, hip_amp, knee_swing, knee_stance, stance, backward, arm_amp, elbow, lean):
    """Walking or running in place along the body's z axis; the feet's contacts make the root travel."""
    strides = np.arange(n) / FPS * cadence * style.tempo / 2.0  # (n,)
    env = envelope(n, 0.6 * FPS / cadence)
    a = base_pose(n, style)
    contact = np.zeros((n, 2))
    start = float(rng.uniform(0.0, 1.0))
    swings = {}
    for k, side in enumerate(SIDES):
        p = np.mod((-strides if backward else strides) + start + 0.5 * k, 1.0)
        swing, bend, contact[:, k] = leg_cycle(p, stance)
        bend_stance = knee_stance * np.sin(np.pi * np.clip(p / stance, 0, 1))  # loading response
        leg(a, side, flex=hip_amp * style.step * env * swing, knee=env * (knee_swing * bend + bend_stance))
        swings[side] = swing * env
    for side, other in (("left", "right"), ("right", "left")):  # each arm swings with the opposite leg
        arm(a, side, forward=arm_amp * style.amp * swings[other], elbow=elbow * env)
    torso(a, lean=lean * env, twist=4.0 * (swings["left"] - swings["right"]))
    a[:, J["pelvis"], YAW] += -3.0 * (swings["left"] - swings["right"])
    contact = np.where(env[:, None] < 0.15, 1.0, contact)  # standing at the start and the end
    return Part(a, contact, np.zeros((n, 2)))


def walk(n, spec, style, rng):
    """Walking forward or backward: heel-to-toe gait, knees bending in the swing, arms in counter-phase."""
    cadence = {"slow": 1.45, "normal": 1.8, "fast": 2.2}[spec["speed"]]  # steps per second
    hip_amp = {"slow": 17.0, "normal": 21.0, "fast": 25.0}[spec["speed"]]
    backward = spec["direction"] == "backward"
    return gait(
        n, style, rng, cadence, hip_amp * (0.8 if backward else 1.0), 58.0, 10.0, 0.6, backward, 22.0, 12.0, 2.0
    )


def run(n, spec, style, rng):
    """Running forward: short stance, both feet in the air between steps, elbows bent, leaning forward."""
    cadence = {"slow": 2.4, "normal": 2.8, "fast": 3.1}[spec["speed"]]
    hip_amp = {"slow": 24.0, "normal": 29.0, "fast": 33.0}[spec["speed"]]
    return gait(n, style, rng, cadence, hip_amp, 95.0, 22.0, 0.4, False, 35.0, 80.0, 10.0)


def sidestep(n, spec, style, rng):
    """Side steps toward `direction`: the leading foot steps out, then the trailing foot closes in."""
    lead = spec["direction"]
    trail = "right" if lead == "left" else "left"
    a = base_pose(n, style)
    u, _ = rep_phase(n, spec["reps"], int(0.2 * FPS))
    width = np.degrees(np.arcsin(float(rng.uniform(0.24, 0.34)) * style.step / 0.82))  # abduction for the step
    out = keys(u, [(0, 0), (0.08, 0), (0.38, 1), (0.55, 1), (0.9, 0)])
    lead_lift = keys(u, [(0, 0), (0.22, 1), (0.42, 0)])
    trail_lift = keys(u, [(0, 0), (0.52, 0), (0.72, 1), (0.92, 0)])
    leg(a, lead, abduct=width * out)
    lift_foot(a, lead, 0.6 * lead_lift)
    lift_foot(a, trail, 0.6 * trail_lift)
    arm(a, "left", raise_=8.0 * style.amp * out, elbow=10.0)
    arm(a, "right", raise_=8.0 * style.amp * out, elbow=10.0)
    torso(a, tilt=-SIDE_SIGN[lead] * 4.0 * out)
    contact = np.ones((n, 2))
    contact[:, SIDES.index(lead)] = lead_lift < 0.05
    contact[:, SIDES.index(trail)] = trail_lift < 0.05
    return Part(a, contact, np.zeros((n, 2)))


def turn(n, spec, style, rng):
    """Turning in place by `angle` degrees to the left or right, stepping from foot to foot."""
    sign = SIDE_SIGN[spec["direction"]]
    a = base_pose(n, style)
    margin = int(0.15 * FPS)
    v = np.clip((np.arange(n) - margin) / (n - 2 * margin), 0.0, 1.0)  # progress of the turn
    a[:, J["pelvis"], YAW] += sign * spec["angle"] * smoothstep(v)
    steps = max(2, int(round(spec["angle"] / 60.0)))
    step_phase = v * steps  # step k lifts one foot over [k, k+1)
    lift = np.sin(np.pi * np.mod(step_phase, 1.0)) ** 0.6 * (v > 0) * (v < 1)  # (n,)
    first = spec["direction"]  # the foot on the turning side moves first
    contact = np.ones((n, 2))
    for k, side in enumerate(SIDES):
        moving = (np.floor(step_phase) % 2 == 0) == (side == first)
        lift_foot(a, side, 0.45 * lift * moving)
        contact[:, k] = ~(moving & (lift > 0.1))
    for side in SIDES:
        arm(a, side, raise_=10.0 * style.amp * np.sin(np.pi * v), elbow=20.0 * np.sin(np.pi * v))
    torso(a, twist=sign * 8.0 * np.sin(np.pi * v))
    return Part(a, contact, np.zeros((n, 2)))


# ---------------------------------------------------------------- jumps


def jump(n, spec, style, rng):
    """Jumps in place or forward: crouch, swing the arms, push off, fly, land softly; once per repetition."""
    a = base_pose(n, style)
    u, period = rep_phase(n, spec["reps"], int(0.2 * FPS))
    flight = min(0.32, float(rng.uniform(0.38, 0.46)) * FPS / period)  # fraction of a repetition in the air
    off, land = 0.4, 0.4 + flight
    crouch = keys(u, [(0, 0), (off - 0.2, 1), (off, 0), (land, 0), (land + 0.1, 0.75), (min(0.99, land + 0.4), 0)])
    tuck = keys(u, [(0, 0), (off, 0), (off + 0.5 * flight, 1), (land, 0)])
    swing = keys(u, [(0, 0), (off - 0.2, -1), (off + 0.3 * flight, 1), (land, 0.6), (min(0.99, land + 0.4), 0)])
    for side in SIDES:
        leg(a, side, flex=style.amp * (42.0 * crouch + 20.0 * tuck), knee=style.amp * (84.0 * crouch + 45.0 * tuck))
        arm(a, side, forward=np.where(swing < 0, 45.0, 110.0) * swing * style.amp, elbow=-0.5 * style.elbow * swing)
    torso(a, lean=22.0 * crouch)
    airborne = ((u >= off) & (u < land)).astype(float)
    contact = np.repeat(1.0 - airborne[:, None], 2, axis=1)
    travel = np.zeros((n, 2))
    if spec["direction"] == "forward":
        distance = float(rng.uniform(0.45, 0.8)) * style.step
        travel[:, 1] = airborne * distance / max(1.0, round(flight * period))
    return Part(a, contact, travel)


def hop(n, spec, style, rng):
    """Hops in place on one leg (`side`), the other foot held up behind."""
    stand = spec["side"]
    free = "right" if stand == "left" else "left"
    a = base_pose(n, style)
    margin = int(0.4 * FPS)
    env = envelope(n, margin)
    u, period = rep_phase(n, spec["reps"], margin)
    flight = min(0.45, round(float(rng.uniform(0.26, 0.32)) * FPS) / period)  # at least 5 frames in the air
    off, land = 0.4, 0.4 + flight
    crouch = keys(u, [(0, 0), (off - 0.22, 1), (off, 0), (land, 0), (land + 0.4 * (1 - land), 0.8), (0.999, 0)])
    leg(a, free, flex=25.0 * env, knee=80.0 * env)
    leg(a, stand, abduct=-3.0 * env, flex=25.0 * crouch, knee=50.0 * crouch)
    for side in SIDES:
        arm(a, side, raise_=25.0 * style.amp * env, elbow=30.0 * env)
    torso(a, tilt=-SIDE_SIGN[stand] * 4.0 * env, lean=8.0 * crouch)
    contact = np.zeros((n, 2))
    contact[:, SIDES.index(free)] = env < 0.3
    contact[:, SIDES.index(stand)] = ~((u >= off) & (u < land))
    return Part(a, contact, np.zeros((n, 2)))


def jumping_jacks(n, spec, style, rng):
    """Jumping jacks: hop the feet apart while the arms go overhead, hop back together with the arms down."""
    a = base_pose(n, style)
    u, period = rep_phase(n, spec["reps"], int(0.2 * FPS))
    hop_len = min(0.24, round(float(rng.uniform(0.2, 0.24)) * FPS) / period)  # at least 4 frames in the air
    out_at, in_at = 0.2, 0.64
    opened = keys(u, [(0, 0), (out_at, 0), (out_at + hop_len, 1), (in_at, 1), (in_at + hop_len, 0)])
    dip = keys(
        u,
        [
            (0, 0),
            (out_at - 0.12, 1),
            (out_at, 0),
            (out_at + hop_len + 0.06, 0.6),
            (in_at - 0.08, 0.8),
            (in_at, 0),
            (in_at + hop_len + 0.06, 0.6),
            (0.999, 0),
        ],
    )
    for side in SIDES:
        leg(a, side, abduct=15.0 * style.amp * opened, flex=14.0 * dip, knee=28.0 * dip)
        arm(a, side, raise_=(160.0 - style.arm_hang) * opened, elbow=-style.elbow * opened)
    airborne = ((u >= out_at) & (u < out_at + hop_len)) | ((u >= in_at) & (u < in_at + hop_len))
    contact = np.repeat(1.0 - airborne[:, None].astype(float), 2, axis=1)
    return Part(a, contact, np.zeros((n, 2)))


# ---------------------------------------------------------------- standing actions


def wave(n, spec, style, rng):
    """Waving above the head: the upper arm up and out, the forearm upright and swinging side to side."""
    a = base_pose(n, style)
    up = envelope(n, 0.45 * FPS)
    frequency = {"slow": 1.2, "normal": 1.9, "fast": 2.6}[spec["speed"]] * style.tempo
    phase = 2.0 * np.pi * frequency * np.arange(n) / FPS + float(rng.uniform(0, 2 * np.pi))
    sides = SIDES if spec["side"] == "both" else (spec["side"],)
    for k, side in enumerate(sides):
        swing = np.sin(phase + np.pi * k)  # both hands mirror each other
        arm(
            a,
            side,
            raise_=(float(rng.uniform(35, 50)) - style.arm_hang) * up,
            elbow=-style.elbow * up,
            elbow_up=up * (55.0 + 28.0 * style.amp * swing),
        )
    torso(a, tilt=-2.0 * up * np.sin(phase) if len(sides) == 1 else 0.0)
    return Part(a, np.ones((n, 2)), np.zeros((n, 2)))


def raise_arms(n, spec, style, rng):
    """Raising one or both arms sideways to straight overhead and lowering them, `reps` times."""
    a = base_pose(n, style)
    u, _ = rep_phase(n, spec["reps"], int(0.15 * FPS))
    up = keys(u, [(0, 0), (0.38, 1), (0.62, 1), (0.999, 0)])
    sides = SIDES if spec["side"] == "both" else (spec["side"],)
    top = float(rng.uniform(155, 170))
    for side in sides:
        arm(a, side, raise_=(top - style.arm_hang) * up, elbow=-style.elbow * up)
    a[:, J["head"], PITCH] += -8.0 * up
    return Part(a, np.ones((n, 2)), np.zeros((n, 2)))


def clap(n, spec, style, rng):
    """Hands come up in front of the chest and clap `reps` times."""
    a = base_pose(n, style)
    margin = int(0.4 * FPS)
    up = envelope(n, margin)
    u, _ = rep_phase(n, spec["reps"], margin + int(0.1 * FPS))
    close = keys(u, [(0, 0), (0.45, 1), (0.55, 1), (0.999, 0)])
    for side in SIDES:
        arm(a, side, forward=58.0 * up, across=up * (-5.0 + 44.0 * close), elbow=up * (30.0 + 20.0 * close))
    return Part(a, np.ones((n, 2)), np.zeros((n, 2)))


def punch(n, spec, style, rng):
    """Fists up in a guard; one arm punches straight forward `reps` times, the chest turning into it."""
    a = base_pose(n, style)
    margin = int(0.35 * FPS)
    guard = envelope(n, margin)
    u, _ = rep_phase(n, spec["reps"], margin)
    hit = keys(u, [(0, 0), (0.3, 1), (0.45, 1), (0.85, 0)])
    for side in SIDES:
        strike = hit if side == spec["side"] else 0.0
        arm(
            a,
            side,
            raise_=20.0 * guard,
            forward=guard * (40.0 + 45.0 * strike),
            across=10.0 * strike,
            elbow=guard * (110.0 - 105.0 * strike) - style.elbow * strike,
        )
    torso(a, twist=-SIDE_SIGN[spec["side"]] * 15.0 * hit * style.amp)
    return Part(a, np.ones((n, 2)), np.zeros((n, 2)))


def kick(n, spec, style, rng):
    """Front kicks with one leg: knee up, snap the shin out, pull it back, put the foot down."""
    side = spec["side"]
    a = base_pose(n, style)
    u, _ = rep_phase(n, spec["reps"], int(0.2 * FPS))
    height = float(rng.uniform(0.85, 1.1)) * style.amp
    flex = keys(u, [(0, 0), (0.28, 55), (0.45, 75 * height), (0.6, 55), (0.85, 0)])
    knee = keys(u, [(0, 0), (0.28, 90), (0.45, 4), (0.6, 90), (0.85, 0)])
    leg(a, side, flex=flex, knee=knee)
    up = np.clip(flex / 55.0, 0.0, 1.0)
    for s in SIDES:
        arm(a, s, raise_=30.0 * up, elbow=30.0 * up)
    torso(a, lean=-10.0 * up)
    contact = np.ones((n, 2))
    contact[:, SIDES.index(side)] = flex < 3.0
    return Part(a, contact, np.zeros((n, 2)))


def squat(n, spec, style, rng):
    """Squats: hips back and down, thighs near horizontal, arms reaching forward, `reps` times."""
    a = base_pose(n, style)
    u, _ = rep_phase(n, spec["reps"], int(0.2 * FPS))
    depth = keys(u, [(0, 0), (0.4, 1), (0.55, 1), (0.95, 0)]) * float(rng.uniform(0.85, 1.05)) * style.amp
    for side in SIDES:
        leg(a, side, flex=80.0 * depth, knee=110.0 * depth)
        arm(a, side, forward=80.0 * depth)
    torso(a, lean=25.0 * depth)
    return Part(a, np.ones((n, 2)), np.zeros((n, 2)))


def bow(n, spec, style, rng):
    """Bows: bend forward at the waist, hold, come back up."""
    a = base_pose(n, style)
    u, _ = rep_phase(n, spec["reps"], int(0.15 * FPS))
    depth = keys(u, [(0, 0), (0.35, 1), (0.6, 1), (0.95, 0)]) * float(rng.uniform(0.8, 1.1))
    a[:, J["pelvis"], PITCH] += 25.0 * depth
    for side in SIDES:
        leg(a, side, flex=25.0 * depth)  # keep the legs upright under the tilted pelvis
    torso(a, lean=35.0 * depth)
    a[:, J["head"], PITCH] += 10.0 * depth
    return Part(a, np.ones((n, 2)), np.zeros((n, 2)))


ACTIONS = {
    "walk": walk,
    "run": run,
    "jump": jump,
    "wave": wave,
    "raise_arms": raise_arms,
    "kick": kick,
    "squat": squat,
    "turn": turn,
    "sidestep": sidestep,
    "clap": clap,
    "punch": punch,
    "jumping_jacks": jumping_jacks,
    "hop": hop,
    "bow": bow,
}


# ---------------------------------------------------------------- specs: which actions, with which parameters, when

# Parameter choices per action; every spec entry has all of these keys (None where not used).
PARAMETERS = {
    "walk": {"direction": ("forward", "backward")},
    "run": {"direction": ("forward",)},
    "jump": {"direction": ("in_place", "forward"), "reps": (1, 2, 3)},
    "wave": {"side": ("left", "right", "both")},
    "raise_arms": {"side": ("left", "right", "both"), "reps": (1, 2, 3)},
    "kick": {"side": ("left", "right"), "reps": (1, 2, 3)},
    "squat": {"reps": (1, 2, 3)},
    "turn": {"direction": ("left", "right"), "angle": (90, 180, 360)},
    "sidestep": {"direction": ("left", "right"), "reps": (2, 3, 4)},
    "clap": {"reps": (2, 3, 4)},
    "punch": {"side": ("left", "right"), "reps": (1, 2, 3)},
    "jumping_jacks": {"reps": (2, 3, 4)},
    "hop": {"side": ("left", "right"), "reps": (2, 3, 4)},
    "bow": {"reps": (1, 2)},
}
ACTION_WEIGHTS = {"walk": 2.5, "run": 1.0, "jump": 1.5, "turn": 1.5, "wave": 1.3, "sidestep": 1.2}  # others 1
SPEEDS, SPEED_WEIGHTS = ("slow", "normal", "fast"), (0.2, 0.6, 0.2)
PER_REP_SECONDS = {
    "jump": 1.3,
    "raise_arms": 1.6,
    "kick": 1.3,
    "squat": 2.0,
    "sidestep": 0.9,
    "clap": 0.45,
    "punch": 0.8,
    "jumping_jacks": 1.1,
    "hop": 0.65,
    "bow": 2.2,
}
MIN_REP_SECONDS = {"hop": 0.65, "jumping_jacks": 0.9, "jump": 1.0}  # room for the flights
EXTRA_SECONDS = {"hop": 0.8, "clap": 1.2, "punch": 0.5, "raise_arms": 0.3, "bow": 0.3}  # default 0.4
FREE_SECONDS = {"walk": (2.5, 5.5), "run": (2.0, 4.0), "wave": (2.0, 3.5)}  # actions without repetitions
TURN_SECONDS = {90: 1.4, 180: 2.0, 360: 3.2}


def sample_action(rng: np.random.Generator) -> dict:
    """One action with its parameters (every key present; None where it does not apply)."""
    names = list(PARAMETERS)
    weights = np.array([ACTION_WEIGHTS.get(name, 1.0) for name in names])
    name = names[rng.choice(len(names), p=weights / weights.sum())]
    action = {"action": name, "direction": None, "side": None, "reps": None, "angle": None}
    for key, choices in PARAMETERS[name].items():
        action[key] = choices[rng.integers(len(choices))]
    speeds = ("normal", "fast") if name == "run" else SPEEDS
    action["speed"] = "normal" if name == "bow" else speeds[rng.choice(len(speeds), p=_weights(speeds))]
    return {key: (int(v) if isinstance(v, np.integer) else v) for key, v in action.items()}


def _weights(speeds) -> np.ndarray:
    """Probabilities of the given speeds."""
    w = np.array([SPEED_WEIGHTS[SPEEDS.index(s)] for s in speeds])
    return w / w.sum()


def action_frames(action: dict, rng: np.random.Generator) -> int:
    """How many frames an action lasts, from its repetitions, speed and a little randomness."""
    name, factor = action["action"], SPEED_FACTOR[action["speed"]]
    if name in FREE_SECONDS:
        seconds = float(rng.uniform(*FREE_SECONDS[name])) * (1.15 if action["speed"] == "slow" else 1.0)
    elif name == "turn":
        seconds = TURN_SECONDS[action["angle"]] * factor * float(rng.uniform(0.9, 1.1))
    else:
        per_rep = max(PER_REP_SECONDS[name] * factor * float(rng.uniform(0.9, 1.1)), MIN_REP_SECONDS.get(name, 0.0))
        seconds = action["reps"] * per_rep + EXTRA_SECONDS.get(name, 0.4)
    return int(round(seconds * FPS))


def sample_spec(rng: np.random.Generator) -> dict:
    """A motion plan: one or two actions with frame ranges [start, end), inside `length` frames (40-196)."""
    while True:
        count = 1 if rng.random() < 0.5 else 2
        actions = [sample_action(rng) for _ in range(count)]
        if count == 2 and actions[0] == actions[1]:
            continue
        frames = [action_frames(action, rng) for action in actions]
        lead, tail = (int(x) for x in rng.integers(0, 10, size=2))
        total = lead + sum(frames) + tail
        if total > MAX_FRAMES:
            continue
        if total < MIN_FRAMES:  # stand still a little longer before and after
            extra = MIN_FRAMES - total
            lead += int(rng.integers(0, extra + 1))
            total = MIN_FRAMES
        start = lead
        for action, n in zip(actions, frames):
            action.update(start=start, end=start + n)
            start += n
        return {"length": total, "actions": actions}


# ---------------------------------------------------------------- posing and placing


def flight_lift(contact: np.ndarray) -> np.ndarray:
    """(T,) height of a ballistic arc over every run of frames with no foot on the floor."""
    airborne = contact.sum(1) == 0  # (T,)
    lift = np.zeros(len(contact))
    edges = np.flatnonzero(np.diff(np.concatenate([[0], airborne.astype(int), [0]])))
    for start, end in zip(edges[::2], edges[1::2]):
        duration = (end - start + 1) / FPS  # take-off and landing lie between frames
        v = np.arange(1, end - start + 1) / (end - start + 1)  # (frames,) in (0, 1)
        lift[start:end] = GRAVITY * duration**2 / 2.0 * v * (1.0 - v)  # apex g t^2 / 8 at v = 1/2
    return lift


def place(local: np.ndarray, contact: np.ndarray, travel: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """Put the posed body (T, 22, 3) in the world: weighted feet on y = 0 and not sliding, ballistic in the air."""
    sides = [(J[f"{s}_ankle"], J[f"{s}_foot"]) for s in SIDES]
    ankles, toes = local[:, [a for a, _ in sides]], local[:, [t for _, t in sides]]  # (T, 2, 3) each
    soles = np.minimum(ankles[..., 1] - ANKLE_REST_HEIGHT, toes[..., 1] - TOE_REST_HEIGHT)  # (T, 2)
    weight = contact.sum(1)  # (T,)
    grounded = weight > 0
    frames = np.arange(len(local))
    supported = -(contact * soles).sum(1) / np.maximum(weight, 1e-9)  # (T,) height that puts weighted feet on y=0
    height = np.interp(frames, frames[grounded], supported[grounded]) + flight_lift(contact)
    height = np.maximum(height, -soles.min(1))  # no foot below the floor
    feet_xz = 0.5 * (ankles + toes)[..., [0, 2]]  # (T, 2, 2)
    step = np.diff(feet_xz, axis=0, prepend=feet_xz[:1])  # (T, 2, 2): motion into each frame
    planted = contact * np.concatenate([contact[:1], contact[:-1]])  # (T, 2): on the floor before and after
    anchored = planted.sum(1) > 0  # (T,)
    velocity = -(planted[..., None] * step).sum(1) / np.maximum(planted.sum(1), 1e-9)[:, None]  # (T, 2)
    last_anchored = np.maximum.accumulate(np.where(anchored, frames, 0))  # (T,)
    yaw = np.radians(heading)  # (T,)
    air = np.stack(
        [
            travel[:, 0] * np.cos(yaw) + travel[:, 1] * np.sin(yaw),
            -travel[:, 0] * np.sin(yaw) + travel[:, 1] * np.cos(yaw),
        ],
        -1,
    )  # (T, 2) world xz
    velocity = np.where(anchored[:, None], velocity, velocity[last_anchored] + air)  # keep the take-off velocity
    root_xz = np.cumsum(velocity, axis=0)  # (T, 2)
    shift = np.stack([root_xz[:, 0], height, root_xz[:, 1]], -1)  # (T, 3)
    return local + shift[:, None, :]


def assemble(spec: dict, style: Style, rng: np.random.Generator) -> Part:
    """The whole motion's angles, contacts and air travel: standing between the actions, turns accumulated."""
    length = spec["length"]
    whole = standing(length, style)
    heading = np.zeros(length)  # (T,) degrees turned by the earlier actions
    for action in spec["actions"]:
        start, end = action["start"], action["end"]
        assert 0 <= start < end <= length, (start, end, length)
        part = ACTIONS[action["action"]](end - start, action, style, rng)
        whole.angles[start:end] = part.angles
        whole.contact[start:end] = part.contact
        whole.travel[start:end] = part.travel
        turned = part.angles[-1, J["pelvis"], YAW] - part.angles[0, J["pelvis"], YAW]
        heading[end:] += turned
    whole.angles[:, J["pelvis"], YAW] += heading
    return whole


def make_motion(spec: dict, rng: np.random.Generator) -> np.ndarray:
    """Joint positions (T, 22, 3) of a spec (`sample_spec`), metres, y up, 20 fps, facing +z at the start."""
    style = sample_style(rng)
    whole = assemble(spec, style, rng)
    local = pose(flatten_feet(whole.angles))  # (T, 22, 3)
    return place(local, whole.contact, whole.travel, whole.angles[:, J["pelvis"], YAW])
