"""bf16-mixed or float32 training on a CPU with bf16 units: a few training steps of the run's own network, timed.

bf16 units do not make every training step faster: on a 2-core AMX Xeon a bf16-mixed step of the text transformer
ran at 0.78-0.86x float32 (the casts around each linear cost more than the matmuls gained), on an AVX512-BF16 EPYC
at 1.5-2.2x, and a tiny network loses to the casts everywhere (docs/fast-sampling.md, "bf16 on the CPU"). So the
default trainer on such a CPU (precision `auto`) times the run's training step both ways on its first batch, before
training, and takes bf16-mixed only when it is clearly faster. The probe leaves the random state as it found it;
the choice is written to the run's config.yaml, so a resumed run, or a run repeated from that config, trains in the
precision the first one chose.
"""

import random
import statistics
import time
import warnings
from contextlib import contextmanager
from typing import Callable

import lightning as L
import numpy as np
import torch

MIN_SPEEDUP = 1.15  # bf16-mixed only when a step is at least this much faster: a near tie keeps float32's numerics


def step_speedup(step: Callable[[], None], min_seconds: float = 0.3, max_pairs: int = 40) -> float:
    """float32 seconds / bf16-autocast seconds of `step`: one warm-up call each, then float32 and bf16 calls in turn
    until both have run `min_seconds` (2 to max_pairs pairs, so a millisecond step is timed often); ratio of medians."""
    times = {False: [], True: []}
    for pair in range(max_pairs + 1):
        for bf16 in (False, True):
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                step()
            if pair:  # pair 0 warms up
                times[bf16].append(time.perf_counter() - start)
        if pair >= 2 and min(sum(times[False]), sum(times[True])) >= min_seconds:
            break
    return statistics.median(times[False]) / statistics.median(times[True])


def training_speedup(module: L.LightningModule, batch: dict) -> float:
    """step_speedup of the module's training step (forward, loss, backward) on `batch`; weights, gradients, mode and
    random state are left as they were."""
    was_training = module.training
    module.train()

    def step():
        with warnings.catch_warnings():  # self.log outside a Trainer only warns
            warnings.simplefilter("ignore")
            loss = module.training_step(batch, 0)
        loss.backward()
        module.zero_grad(set_to_none=True)

    try:
        with same_random_state():
            return step_speedup(step)
    finally:
        module.train(was_training)


def choose_precision(module: L.LightningModule, batch: dict) -> tuple:
    """('bf16-mixed' | '32-true', the measured speed-up) for training `module` on batches like `batch`."""
    speedup = training_speedup(module, batch)
    return ("bf16-mixed" if speedup >= MIN_SPEEDUP else "32-true"), speedup


def first_batch(datamodule: L.LightningDataModule) -> dict:
    """The training loader's first batch, drawn without moving the run's random state."""
    with same_random_state():
        return next(iter(datamodule.train_dataloader()))


@contextmanager
def same_random_state():
    """Restore torch's, numpy's and Python's random state on leaving the block (the run's seed still decides)."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        yield
    random.setstate(python_state)
    np.random.set_state(numpy_state)
