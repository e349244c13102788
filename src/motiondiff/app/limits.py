"""What the page may ask for: the model's facts, the app's limits, and one request read from JSON and bounded.

Every refusal is a UserError with one sentence the page shows as it is (HTTP 400), checked before the
request waits for the model, so a wrong value is answered at once even while another generation runs.
"""

import math
import numbers
from dataclasses import asdict, dataclass
from typing import Optional

from motiondiff.core.errors import UserError

UNITS = ("frames", "seconds")
FIELDS = ("prompt", "length", "unit", "sampler", "steps", "num_samples", "guidance_weight", "seed")
MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class Limits:
    """The app's bounds on a request (configs/app.yaml `limits`); the model's own bounds come from ModelFacts."""

    max_samples: int  # motions per Generate
    max_prompt_chars: int
    min_guidance: float
    max_guidance: float
    max_windows: int  # dance runs: windows chained into the longest dance

    def __post_init__(self):
        assert self.max_samples >= 1 and self.max_prompt_chars >= 1 and self.max_windows >= 1, self
        assert self.min_guidance <= self.max_guidance, self


@dataclass(frozen=True)
class ModelFacts:
    """What the page needs to know about the loaded run to offer and bound its controls."""

    kind: str  # "text" (prompts, 3D joints) or "dance" (unconditional 2D keypoint windows)
    fps: float
    joints: int
    dims: int  # 3 for joint positions, 2 for keypoints
    min_frames: int  # the shortest motion a request may ask for
    max_frames: int  # the longest (text: the model's limit; dance: max_windows chained windows)
    default_frames: int
    window: Optional[int]  # dance: frames per window
    overlap: Optional[int]  # dance: frames two chained windows share
    schedule_steps: int  # diffusion steps the model was trained with
    samplers: dict  # option name -> its default num_steps, or None for a sampler that takes every step (ddpm)
    default_sampler: str
    default_steps: Optional[int]
    default_guidance: Optional[float]  # text runs: the run's module.guidance_weight

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GenerationRequest:
    """One bounded request: what generation is called with."""

    prompt: Optional[str]  # text runs only
    frames: int  # text: frames per motion; dance: frames of the chained dance (a whole number of windows)
    sampler: str
    steps: Optional[int]  # None for samplers that take every step of the schedule
    num_samples: int
    guidance_weight: Optional[float]  # text runs only; None = the run's own
    seed: Optional[int]  # None: the app gives the next of its seeds when the generation starts

    def to_dict(self) -> dict:
        return asdict(self)


def dance_windows(frames: int, window: int, overlap: int) -> int:
    """How many windows of `window` frames, each sharing `overlap` with the one before, cover `frames` frames."""
    return 1 + max(0, math.ceil((frames - window) / (window - overlap)))


def chained_frames(windows: int, window: int, overlap: int) -> int:
    """Frames of `windows` chained windows (diffusion.chaining.chain_windows)."""
    return window + (windows - 1) * (window - overlap)


def is_whole(value) -> bool:
    """Whether a JSON value is a whole number: an int of any size, or a finite float without a fraction (JSON's NaN,
    Infinity and 1e400 are floats that int() refuses; a 400-digit int is too large for float())."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return isinstance(value, numbers.Integral) or (math.isfinite(value) and value == int(value))


def shown(value) -> str:
    """A number as a refusal quotes it: a 400-digit int from JSON (of either sign) as 'a huge number'."""
    if abs(value) >= 10**9:
        return "a huge number"
    return str(value) if isinstance(value, numbers.Integral) else f"{value:g}"


def whole(value, name: str, low: int, high: int) -> int:
    """`value` as an int in [low, high], else a UserError naming the field and its bounds."""
    if not is_whole(value) or not low <= value <= high:
        raise UserError(f"{name} must be a whole number from {low} to {high} (got {value!r}).")
    return int(value)


def real(value, name: str, low: float, high: float) -> float:
    """`value` as a finite float in [low, high], else a UserError naming the field and its bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UserError(f"{name} must be a number from {low:g} to {high:g} (got {value!r}).")
    if not isinstance(value, numbers.Integral) and not math.isfinite(value):
        raise UserError(f"{name} must be a number from {low:g} to {high:g} (got {value!r}).")
    if not low <= value <= high:  # an int of any size compares without float()
        raise UserError(f"{name} must lie from {low:g} to {high:g} (got {shown(value)}).")
    return float(value)


def read_frames(body: dict, facts: ModelFacts) -> int:
    """The requested length in frames (from frames or seconds), within the model's bounds."""
    unit = body.get("unit", "frames")
    if unit not in UNITS:
        raise UserError(f"unit must be 'frames' or 'seconds' (got {unit!r}).")
    length = body.get("length")
    if length is None:
        return facts.default_frames
    low, high = facts.min_frames, facts.max_frames
    if unit == "seconds":
        seconds = real(length, "length", low / facts.fps, high / facts.fps)
        frames = max(1, round(seconds * facts.fps))
        return whole(frames, f"length ({seconds:g} s = {frames} frames at {facts.fps:g} fps)", low, high)
    why = " (the model's limit)" if facts.kind == "text" else f" ({facts.window}-frame windows chained)"
    if not is_whole(length):
        raise UserError(f"length must be a whole number of frames from {low} to {high} (got {length!r}).")
    if not low <= length <= high:
        raise UserError(f"length must be from {low} to {high} frames{why} (got {shown(int(length))}).")
    return int(length)


def read_prompt(body: dict, facts: ModelFacts, limits: Limits) -> Optional[str]:
    """The prompt of a text run (non-empty, bounded); None for a dance run, which refuses one."""
    prompt = body.get("prompt")
    if facts.kind == "dance":
        if prompt not in (None, ""):
            raise UserError("this run makes dances without text; leave the prompt empty and press Generate.")
        return None
    if not isinstance(prompt, str) or not prompt.strip():
        raise UserError("write a prompt first, e.g. 'a person walks forward then waves'.")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in prompt):  # JSON's lone "\ud800": no text encoder takes it
        raise UserError("the prompt holds a broken character (a lone UTF-16 surrogate); type it again.")
    prompt = " ".join(prompt.split())  # one line: newlines and tabs would break generation.json's prompt files
    if len(prompt) > limits.max_prompt_chars:
        raise UserError(f"the prompt has {len(prompt)} characters; keep it to {limits.max_prompt_chars}.")
    return prompt


def read_sampler(body: dict, facts: ModelFacts) -> tuple:
    """(sampler option, steps or None) from the sampler group's options, steps within the schedule."""
    name = body.get("sampler", facts.default_sampler)
    if not isinstance(name, str) or name not in facts.samplers:
        raise UserError(f"sampler must be one of {', '.join(facts.samplers)} (got {name!r}).")
    steps = body.get("steps")
    if facts.samplers[name] is None:  # a sampler through every step (ddpm)
        if steps not in (None, facts.schedule_steps):
            raise UserError(
                f"{name} always takes all {facts.schedule_steps} steps of the schedule; choose another sampler "
                "to set the steps."
            )
        return name, None
    default = facts.default_steps if name == facts.default_sampler else facts.samplers[name]
    high = facts.schedule_steps
    return name, whole(default if steps is None else steps, "steps", 1, high)


def read_guidance(body: dict, facts: ModelFacts, limits: Limits) -> Optional[float]:
    """The guidance weight of a text run within the limits; a dance run refuses one."""
    weight = body.get("guidance_weight")
    if weight is None:
        return None if facts.kind == "dance" else facts.default_guidance
    if facts.kind == "dance":
        raise UserError("guidance weight needs a text run; this run makes dances without text.")
    return real(weight, "guidance weight", limits.min_guidance, limits.max_guidance)


def read_request(body, facts: ModelFacts, limits: Limits) -> GenerationRequest:
    """A GenerationRequest from the page's JSON object; UserError naming the first field out of bounds."""
    if not isinstance(body, dict):
        raise UserError("the request must be a JSON object with the fields " + ", ".join(FIELDS) + ".")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise UserError(f"unknown field {unknown[0]!r}; the fields are {', '.join(FIELDS)}.")
    prompt = read_prompt(body, facts, limits)
    frames = read_frames(body, facts)
    sampler, steps = read_sampler(body, facts)
    num_samples = whole(body.get("num_samples", 1), "samples", 1, limits.max_samples)
    guidance = read_guidance(body, facts, limits)
    seed = body.get("seed")
    seed = None if seed is None else whole(seed, "seed", 0, MAX_SEED)
    if facts.kind == "dance":  # whole windows: round up to the next length chaining makes
        frames = chained_frames(dance_windows(frames, facts.window, facts.overlap), facts.window, facts.overlap)
    return GenerationRequest(prompt, frames, sampler, steps, num_samples, guidance, seed)
