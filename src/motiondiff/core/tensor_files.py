"""Vectors saved with torch.save (feature statistics), read weights-only: one sentence naming the file otherwise."""

from pathlib import Path
from typing import Optional

import numpy as np
import torch

from motiondiff.core.errors import UserError, first_sentence, require_file


def read_vector(path, what: str, hint: str, features: Optional[int] = None) -> np.ndarray:
    """A 1-D float tensor of finite numbers (of `features` numbers when given) as float32 numpy; `hint` says the fix."""
    path = Path(path)
    require_file(path, what, hint)
    try:
        tensor = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # empty, truncated, not a torch file, or holding more than tensors
        raise UserError(f"'{path}' cannot be read as a torch tensor file ({first_sentence(error)}); {hint}.") from None
    size = f"{features} numbers" if features else "numbers"
    is_vector = isinstance(tensor, torch.Tensor) and tensor.ndim == 1 and tensor.is_floating_point()
    if not is_vector or (features is not None and tensor.shape[0] != features):
        found = f"shape {tuple(tensor.shape)} and dtype {tensor.dtype}" if isinstance(tensor, torch.Tensor) else None
        raise UserError(f"'{path}' must hold a tensor of {size}, got {found or f'a {type(tensor).__name__}'}; {hint}.")
    if not torch.isfinite(tensor).all():
        raise UserError(
            f"'{path}' must hold {f'{features} ' if features else ''}finite numbers, got NaN or infinity; {hint}."
        )
    return tensor.detach().to(torch.float32).numpy().copy()
