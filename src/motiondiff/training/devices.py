"""Which device a run trains on: the GPU when CUDA sees one (bf16-mixed), else the CPU (float32).

The default trainer (configs/trainer/auto.yaml) asks `accelerator()` and `precision()` through
the `device` resolver, so the saved config.yaml records what was chosen; `trainer=cpu` / `trainer=gpu`
force one. `check_accelerator` turns "a GPU trainer without a GPU" into one sentence.
"""

import os
from pathlib import Path

import torch

from motiondiff.core.errors import UserError

CUDA_INSTALL = "install a CUDA build of torch (README, 'Using a GPU')"


def accelerator() -> str:
    """'gpu' when CUDA sees a device, else 'cpu'."""
    return "gpu" if torch.cuda.is_available() else "cpu"


def precision() -> str:
    """bf16-mixed on a GPU that has bf16, 16-mixed on an older GPU, 32-true on the CPU."""
    if not torch.cuda.is_available():
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


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
        line += "; no CUDA GPU visible (README, 'Using a GPU')"
    return line
