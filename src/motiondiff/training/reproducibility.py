"""Resumed runs continue the random streams of the run they resume.

Lightning's checkpoints hold the weights, optimizer, LR schedule, EMA and loop state, but not the
random number generators, so a resumed run would draw other batches order and other noise than the
uninterrupted run. `KeepRandomState` (configs/callbacks/default.yaml) saves the torch, numpy and
Python generator states in every checkpoint and restores them when training starts again (after
Lightning's sanity-check validation, which draws random numbers of its own). With the same config
and seed, an interrupted and resumed run on CPU ends with the same weights as an uninterrupted one.
"""

import random
from typing import Optional

import lightning as L
import numpy as np
import torch


class KeepRandomState(L.Callback):
    """Save the random generators' states in checkpoints; restore them when a resumed run starts training."""

    def __init__(self):
        self.pending: Optional[dict] = None

    def state_dict(self) -> dict:
        kind, keys, position, has_gauss, cached = np.random.get_state()
        return {
            "torch": torch.get_rng_state(),
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                      "has_gauss": int(has_gauss), "cached": float(cached)},  # plain types: loads with weights_only
            "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }  # fmt: skip

    def load_state_dict(self, state_dict: dict) -> None:
        self.pending = state_dict

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.pending is None:
            return
        state, self.pending = self.pending, None
        torch.set_rng_state(state["torch"])
        numpy = state["numpy"]
        keys = numpy["keys"].numpy().astype(np.uint32)
        np.random.set_state((numpy["kind"], keys, numpy["position"], numpy["has_gauss"], numpy["cached"]))
        random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in state["python"]))
        if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
