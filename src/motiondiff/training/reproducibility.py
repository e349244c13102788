"""Random streams: one per process, kept across a resume.

Lightning's checkpoints hold the weights, optimizer, LR schedule, EMA and loop state, but not the
random number generators, so a resumed run would draw another batch order and other noise than
the uninterrupted run. `RandomStreams` (configs/callbacks/default.yaml) saves the generator states
in every checkpoint and restores them when training starts again (after Lightning's sanity-check
validation, which draws random numbers of its own). With the same config and seed, an interrupted
and resumed run on CPU ends with the same weights as an uninterrupted one.

Under DDP every process starts from the same seed (so the initial weights agree; DDP also
broadcasts rank 0's), then each process reseeds its torch generator with `seed + global_rank` so
the ranks draw different diffusion times and noise for their parts of the batch. Each rank's torch
state is gathered into the checkpoint, and each rank gets its own back on resume.
"""

import random
from typing import Optional

import lightning as L
import numpy as np
import torch


class RandomStreams(L.Callback):
    """Per-rank torch streams under DDP; generator states saved in checkpoints and restored on resume."""

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self.pending: Optional[dict] = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and trainer.world_size > 1:
            torch.manual_seed(self.seed + trainer.global_rank)

    def state_dict(self) -> dict:
        kind, keys, position, has_gauss, cached = np.random.get_state()
        return {
            "torch": self.torch_states(),  # (world_size, state bytes): every rank's stream
            "numpy": {
                "kind": kind,
                "keys": torch.from_numpy(keys.astype(np.int64)),
                "position": int(position),
                "has_gauss": int(has_gauss),
                "cached": float(cached),
            },  # plain types: loads with weights_only
            "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized() else None,
        }

    def torch_states(self) -> torch.Tensor:
        """This process's torch generator state, gathered from every rank under DDP: (world_size, N) uint8."""
        state = torch.get_rng_state()
        trainer = getattr(self, "trainer", None)
        if trainer is None or trainer.world_size == 1:
            return state[None]
        gathered = trainer.strategy.all_gather(
            state.to(trainer.strategy.root_device, torch.int32)
        )  # gloo/nccl-safe dtype
        return gathered.cpu().to(torch.uint8).reshape(trainer.world_size, -1)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.trainer = trainer

    def load_state_dict(self, state_dict: dict) -> None:
        self.pending = state_dict

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.pending is None:
            return
        state, self.pending = self.pending, None
        states = state["torch"]
        torch.set_rng_state(states[trainer.global_rank] if len(states) == trainer.world_size else states[0])
        numpy = state["numpy"]
        keys = numpy["keys"].numpy().astype(np.uint32)
        np.random.set_state((numpy["kind"], keys, numpy["position"], numpy["has_gauss"], numpy["cached"]))
        random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in state["python"]))
        if state.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state(state["cuda"])
        if len(states) != trainer.world_size and trainer.world_size > 1:  # resumed on another number of processes
            torch.manual_seed(int(torch.randint(2**31, (1,))) + trainer.global_rank)
