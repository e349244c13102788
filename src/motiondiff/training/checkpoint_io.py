"""Checkpoint files that are never half-written and never unpickle code.

`AtomicCheckpointIO` is the Trainer's checkpoint plugin (configs/trainer/cpu.yaml): each checkpoint is
written to a temporary file in the same folder, flushed to disk, then renamed over the target
(`os.replace`, atomic on POSIX), so a crash, a kill or a full disk while saving leaves the previous
`last.ckpt` intact and no partial file. Every checkpoint this project reads (resume, generate,
evaluate) goes through `load_checkpoint`: `torch.load(weights_only=True)`, and a file carrying
pickled objects is refused with one sentence.
"""

import os
import pickle
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from motiondiff.core.errors import UserError


def load_checkpoint(path: Path) -> dict:
    """A checkpoint dict read without unpickling arbitrary objects."""
    checkpoint = load_weights_only(path)
    if not isinstance(checkpoint, dict):
        raise UserError(f"'{path}' holds a {type(checkpoint).__name__}, not a checkpoint (a dict of weights and data).")
    return checkpoint


def load_weights_only(path: Path):
    """What a file saved with torch.save holds (tensors, plain data), read without unpickling arbitrary objects."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise UserError(
            f"'{path}' holds objects other than tensors and plain data, so it was not loaded "
            f"(a checkpoint can carry code; only weights are accepted): {str(error).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, OSError) as error:
        raise UserError(f"'{path}' is not a readable checkpoint ({str(error).splitlines()[0]}).") from None


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO with atomic local writes and weights-only loads."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options: Optional[Any] = None) -> None:
        """Write to `.<name>.tmp-<pid>` beside `path`, fsync, then rename over `path`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with open(temporary, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)

    def load_checkpoint(self, path, map_location=None, weights_only: Optional[bool] = None) -> dict:
        """The checkpoint's plain data and tensors; UserError for anything that would need unpickling code."""
        return load_checkpoint(Path(path))
