"""Which device and precision a run trains and samples in.

Training: the GPU when CUDA sees one (bf16-mixed), else the CPU: float32, or on a CPU with bf16 units `auto`,
which the run settles before training by timing its own training step both ways (training.precision_probe).
The default trainer (configs/trainer/auto.yaml) asks `accelerator()` and `precision()` through the `device`
resolver, and the saved config.yaml records what was chosen; `trainer=cpu` / `trainer=gpu` force one, and
`trainer.precision=bf16-mixed` or `32-true` fixes the precision. `check_accelerator` turns "a GPU trainer
without a GPU" into one sentence.

Sampling (generate, evaluate, edit, app: `precision=auto|32|bf16`): auto samples text runs in bf16 where the
hardware has bf16 matrix units (a CUDA GPU with bf16; a CPU with Intel AMX or AVX512-BF16), float32 elsewhere;
unconditional (dance) runs always in float32 (their small networks gained no time, and bf16's rounding roughened the
slow 2D walk: jitter 1.47 against 1.10, docs/dance3d.md). Sampling and training choose differently because they
measured differently (docs/fast-sampling.md, "bf16 on the CPU"): a guided forward ran faster in bf16 on both
processors measured (1.5-2.6x on a 2-core AMX Xeon, 2.7x on an AVX512-BF16 EPYC, reference size), while a
bf16-mixed training step ran slower on a loaded Xeon (the casts around every linear cost more than the matmuls gain),
1.2-1.7x faster on an idle one and 1.5-2.2x faster on the EPYC: each run's probe decides.
"""

import os
from pathlib import Path

import torch

from motiondiff.core.errors import UserError

BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16", "bf16"})  # x86 flags; "bf16" is Arm's (BFMMLA)
SAMPLING_PRECISIONS = ("auto", "32", "bf16")
PROBED = "auto"  # the CPU trainer's precision where bf16 units exist, until the run's probe picks one
CUDA_INSTALL = "install a CUDA build of torch (docs/runs.md, 'Device')"


def accelerator() -> str:
    """'gpu' when CUDA sees a device, else 'cpu'."""
    return "gpu" if torch.cuda.is_available() else "cpu"


def precision() -> str:
    """bf16-mixed on a GPU that has bf16, 16-mixed on an older GPU; on the CPU `auto` (probed) where it has bf16
    units, else 32-true."""
    if not torch.cuda.is_available():
        return PROBED if cpu_has_bf16() else "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def cpu_flags() -> set:
    """The CPU's feature flags (from /proc/cpuinfo; empty where there is none)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return set()
    for line in cpuinfo.read_text(errors="replace").splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_has_bf16() -> bool:
    """True when the CPU has bf16 matrix instructions (Intel AMX-BF16 or AVX512-BF16; Arm's bf16)."""
    return bool(cpu_flags() & BF16_CPU_FLAGS)


def sampling_dtype(device: str, choice="auto", conditional: bool = True):
    """torch.bfloat16 or None (float32) for sampling on `device` ('cpu' | 'cuda'); choice auto | 32 | bf16; auto
    gives an unconditional (dance) run float32."""
    choice = str(choice)
    if choice not in SAMPLING_PRECISIONS:
        raise UserError(f"precision={choice} is unknown; use one of {list(SAMPLING_PRECISIONS)}.")
    if choice == "32" or (choice == "auto" and not conditional):
        return None
    if device == "cuda":
        supported = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    else:
        supported = cpu_has_bf16()
    if choice == "bf16" and not supported:
        raise UserError(
            f"precision=bf16 needs bf16 units on the {device}, which it lacks (no AMX/AVX512-BF16 flag in "
            "/proc/cpuinfo, or a GPU without bf16); use precision=auto or precision=32."
        )
    return torch.bfloat16 if supported else None


def dtype_name(dtype) -> str:
    """'bf16' or '32': how a generation/evaluation record names the sampling precision."""
    return "bf16" if dtype == torch.bfloat16 else "32"


def device_choice(what: str) -> str:
    """The `${device:accelerator}` / `${device:precision}` resolver of the configs."""
    choices = {"accelerator": accelerator, "precision": precision}
    if what not in choices:
        raise UserError(
            f"${{device:{what}}} is unknown in a config; use ${{device:accelerator}} or ${{device:precision}}."
        )
    return choices[what]()


def check_accelerator(trainer_accelerator: str) -> None:
    """Refuse a GPU trainer when CUDA sees no GPU (one sentence instead of Lightning's traceback)."""
    if str(trainer_accelerator) in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UserError(
            f"trainer.accelerator={trainer_accelerator} needs a CUDA GPU, but torch {torch.__version__} sees none; "
            f"drop trainer=gpu (the default trainer uses a GPU when there is one) or {CUDA_INSTALL}."
        )


def processor_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return os.uname().machine


def describe_device(root_device: torch.device, precision_name: str) -> str:
    """One line: the device a trainer uses, its precision, and what to do for a GPU when there is none."""
    if root_device.type == "cuda":
        return f"{root_device} ({torch.cuda.get_device_name(root_device)}), precision {precision_name}"
    line = f"CPU ({processor_name()}, {torch.get_num_threads()} threads), precision {precision_name}"
    if not torch.cuda.is_available():
        line += "; no CUDA GPU visible (docs/runs.md, 'Device')"
    return line
