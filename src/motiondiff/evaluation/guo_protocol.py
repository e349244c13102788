"""The published text-to-motion protocol (`protocol=guo`): Guo et al. 2022 as MDM and the papers after it run it.

Per replication r (numpy and torch seeded with seed + r):
1. Test items are the test split's motions (and captioned sub-clips) of min_frames to max_source_frames - 1
   frames (the reference keeps 40 <= length < 200 for HumanML3D, 24 for KIT-ML), a motion that long left out
   with its sub-clips, each sub-clip line its own item (data.formats.humanml3d_layout.ItemRules).
2. A *pass* over the items shuffles them and cuts them into batches of exactly 32 (the partial last batch is
   dropped); each item draws one of its captions, shortens its length (at most 196 frames, and no more than the
   run was trained on) to a multiple of 4 (by one extra unit
   with probability 1/3, the reference's "coin2") and a random crop of that length.
3. Real row: one pass gives text and motion embeddings -> R@1/2/3 and MM-Dist within each batch of 32
   (Euclidean, metrics.reference_protocol), diversity over `diversity_pairs` pairs; a second, independent pass
   gives the real statistics every row's FID is measured against (so the real FID is small, not 0).
4. Generated row: the first ceil(num_generated / 32) batches of another pass; the run generates each item's
   motion for its drawn caption at its drawn length; the same measures. Multimodality: `samples` generations
   for each of `captions` items of that pass, `pairs` pairs each.
Every metric is reported as mean ± 1.96 sigma / sqrt(n) over replications (the papers' interval, sigma the
population std; the value alone with one replication), next to this project's Student-t interval; the terminal
gets the papers' layout with the key columns (evaluation.report.GUO).
"""

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from motiondiff.core.checks import whole_number
from motiondiff.core.errors import UserError
from motiondiff.evaluation.evaluators.base import MotionTextEvaluator
from motiondiff.evaluation.text_motion import generate_embeddings, padded
from motiondiff.metrics.distribution import frechet_distance, gaussian_statistics
from motiondiff.metrics.reference_protocol import diversity_reference, multimodality_reference, r_precision_full_batches
from motiondiff.runs.loading import TrainedRun

log = logging.getLogger(__name__)

BATCH = 32  # the R-precision pool of the protocol
EMBED_BATCH = 256  # motions embedded per evaluator call


@dataclass
class Items:
    """The test items: raw features, their captions, and every caption's evaluator embedding (computed once)."""

    raw: list  # (T_i, F) float32 tensors, un-normalised
    captions: list  # per item, its CaptionItems
    caption_rows: list  # per item, the row of each of its captions in `text_latent`
    text_latent: torch.Tensor  # (C, D) every caption of every item, embedded once per evaluation


@dataclass
class Draw:
    """One pass over the items: who, which caption, which crop, in batches of 32."""

    item: np.ndarray  # (M,) item indices, M a multiple of 32
    caption: np.ndarray  # (M,) caption index within the item
    start: np.ndarray  # (M,) first frame of the crop
    length: np.ndarray  # (M,) frames, a multiple of the unit length


def load_items(run: TrainedRun, evaluator: MotionTextEvaluator, cfg: DictConfig) -> tuple:
    """(Items, the run's datamodule) of the test split as the reference loader makes them, whatever the run trained
    on: motions of max_source_frames frames or more left out with their sub-clips, one item per sub-clip line."""
    limit = whole_number("max_source_frames", cfg.max_source_frames)
    datamodule = instantiate(run.config.dataset, max_source_frames=limit, subclips="per_line")
    datamodule.setup("test")
    clips = datamodule.test_set.clips
    assert all(len(clip.features) < limit for clip in clips), "the datamodule applies the length filter"
    if cfg.num_test is not None:
        clips = clips[: whole_number("num_test", cfg.num_test, minimum=BATCH, why="at least one batch of 32")]
    if len(clips) < BATCH:
        raise UserError(f"the protocol needs at least {BATCH} test items of under {limit} frames, got {len(clips)}.")
    normalizer = run.module.normalizer.cpu()
    raw = [normalizer.denormalize(torch.from_numpy(clip.features)) for clip in clips]  # (T_i, F) each
    captions = [list(clip.captions) for clip in clips]
    flat = [item for item_captions in captions for item in item_captions]
    rows, offset = [], 0
    for item_captions in captions:
        rows.append(list(range(offset, offset + len(item_captions))))
        offset += len(item_captions)
    text_latent = evaluator.embed_captions(flat, datamodule.embedding_dir()).cpu()  # (C, D)
    run.module.normalizer.to(run.module.device)
    return Items(raw, captions, rows, text_latent), datamodule


def draw_pass(items: Items, rng: np.random.Generator, unit: int, max_frames: int, batches=None) -> Draw:
    """Shuffle the items, keep whole batches of 32 (the first `batches` when given), draw caption, length, crop."""
    order = rng.permutation(len(items.raw))
    order = order[: (len(order) // BATCH if batches is None else min(batches, len(order) // BATCH)) * BATCH]
    caption = np.array([rng.integers(len(items.captions[i])) for i in order])
    lengths = np.array([min(len(items.raw[i]), max_frames) for i in order])
    shorter = rng.choice(["single", "single", "double"], size=len(order)) == "double"
    length = (lengths // unit - shorter) * unit
    length = np.where(length < unit, lengths // unit * unit, length)  # never below one unit
    start = np.array([rng.integers(len(items.raw[i]) - n + 1) for i, n in zip(order, length)])
    return Draw(order, caption, start, length)


def crops(items: Items, draw: Draw, rows: range) -> tuple:
    """The drawn crops of `rows` of a pass as a zero-padded (B, N, F) batch with their lengths (B,)."""
    motions = [items.raw[draw.item[k]][draw.start[k] : draw.start[k] + draw.length[k]] for k in rows]
    return padded(motions, items.raw[0].shape[-1])


def embed_real(evaluator: MotionTextEvaluator, items: Items, draw: Draw) -> torch.Tensor:
    """Evaluator embeddings (M, D) of the real crops of a pass, in pass order."""
    latents = []
    for start in range(0, len(draw.item), EMBED_BATCH):
        raw, lengths = crops(items, draw, range(start, min(start + EMBED_BATCH, len(draw.item))))
        latents.append(evaluator.embed_motions(raw, lengths).cpu())
    return torch.cat(latents)


def captions_of(items: Items, draw: Draw) -> torch.Tensor:
    """The drawn captions' evaluator embeddings (M, D), in pass order."""
    return items.text_latent[[items.caption_rows[i][c] for i, c in zip(draw.item, draw.caption)]]


def generate(run: TrainedRun, evaluator, items: Items, datamodule, draw: Draw, cfg: DictConfig, generator):
    """Evaluator embeddings (M, D) of one generation per drawn item, for its caption at its drawn length."""
    keys = [datamodule.text_encoder.item_key(items.captions[i][c]) for i, c in zip(draw.item, draw.caption)]
    cond = datamodule.table.lookup(keys)
    return generate_embeddings(run, evaluator, cond, torch.from_numpy(draw.length), cfg, generator)


def measures(text: torch.Tensor, motion: torch.Tensor, reference: tuple, cfg: DictConfig, rng) -> dict:
    """R@1/2/3, MM-Dist, FID against the reference statistics and diversity of one row's embeddings."""
    values = r_precision_full_batches(text, motion, BATCH, top_k=3)
    values["FID"] = frechet_distance(*gaussian_statistics(motion), *reference)
    values["Diversity"] = diversity_reference(motion, int(cfg.diversity_pairs), rng)
    return values


def multimodality_of(run, evaluator, items, datamodule, draw: Draw, cfg: DictConfig, rng, generator) -> float:
    """`samples` generations for each of `captions` items of a pass (caption and length as drawn), `pairs` pairs."""
    settings = cfg.multimodality
    count, samples = min(int(settings.captions), len(draw.item)), int(settings.samples)
    chosen = rng.choice(len(draw.item), count, replace=False)
    repeated = np.repeat(chosen, samples)  # (count * samples,)
    mm_draw = Draw(draw.item[repeated], draw.caption[repeated], draw.start[repeated], draw.length[repeated])
    latents = generate(run, evaluator, items, datamodule, mm_draw, cfg, generator)  # (count * samples, D)
    return multimodality_reference(latents.reshape(count, samples, -1), int(settings.pairs), rng)


def evaluate_guo(run: TrainedRun, evaluator: MotionTextEvaluator, cfg: DictConfig) -> tuple:
    """Rows {"real": [...], "generated": [...]} of per-replication measures, and the settings used."""
    started = time.perf_counter()  # evaluation's own cost, test captions embedded once included
    items, datamodule = load_items(run, evaluator, cfg)
    unit, max_frames = evaluator.unit_length, min(evaluator.max_frames, run.module.data.max_frames)
    generated_batches = math.ceil(whole_number("num_generated", cfg.num_generated) / BATCH)
    rows, generating = {"real": [], "generated": []}, 0.0
    for replication in range(int(cfg.replications)):
        seed = int(cfg.seed) + replication
        rng, generator = np.random.default_rng(seed), torch.Generator(device=run.module.device).manual_seed(seed)
        real_draw = draw_pass(items, rng, unit, max_frames)
        real = embed_real(evaluator, items, real_draw)
        reference = gaussian_statistics(embed_real(evaluator, items, draw_pass(items, rng, unit, max_frames)))
        rows["real"].append(measures(captions_of(items, real_draw), real, reference, cfg, rng))
        draw = draw_pass(items, rng, unit, max_frames, batches=generated_batches)
        clock = time.perf_counter()
        generated = generate(run, evaluator, items, datamodule, draw, cfg, generator)
        generating += time.perf_counter() - clock
        rows["generated"].append(measures(captions_of(items, draw), generated, reference, cfg, rng))
        if int(cfg.multimodality.captions) > 0:
            clock = time.perf_counter()
            mm = multimodality_of(run, evaluator, items, datamodule, draw, cfg, rng, generator)
            generating += time.perf_counter() - clock  # generation, with its 3,000 embeddings
            rows["generated"][-1]["MultiModality"] = mm
        log.info("replication %d/%d: %s", replication + 1, cfg.replications, rows["generated"][-1])
    settings = {
        "protocol": "guo",
        "test_items": len(items.raw),
        "test_captions": len(items.text_latent),
        "real_items_per_pass": len(items.raw) // BATCH * BATCH,
        "generated_per_replication": min(generated_batches, len(items.raw) // BATCH) * BATCH,
        "r_precision_batch": BATCH,
        "seconds": {
            "generating": round(generating, 2),
            "evaluating": round(time.perf_counter() - started - generating, 2),
        },
    }
    return rows, settings
