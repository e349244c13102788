"""Text-to-motion evaluation of a finished run with a motion-text evaluator: this project's protocol (`protocol=ours`).

Protocol (per replication r, seed = seed + r):
1. the test items (first `max_frames` frames, first caption; the real length) are split at random
   into two halves: the *reference* half and the *evaluated* half;
2. the run generates one motion per caption of the evaluated half, at the real length;
3. the evaluator embeds the reference half's real motions, the generated motions, the evaluated
   half's real motions and its captions, and each row is measured against the reference half:
   - FD: Fréchet distance between the Gaussians of the reference and the row's motion embeddings;
   - precision / recall / density / coverage (k nearest neighbours, Naeem et al. 2020);
   - R@1/2/3 (text -> motion in consecutive batches of 32 of the shuffled evaluated half, the
     standard protocol of Guo et al. 2022) and MM-Dist, on unit-normalised embeddings;
   - TM-score: mean cosine similarity of each motion with its caption, as the evaluator maps it (TMR: to [0, 1]);
   - diversity: mean distance of 300 random pairs of the row's motion embeddings.
   The *real* row measures the evaluated half's real motions the same way, so it is the floor a
   perfect generator reaches (FD > 0: two different sets of real motions), not a 0 by construction.
Optionally (multimodality.captions > 0) the first captions each get several generations.
"""

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig

from motiondiff.core.checks import whole_number
from motiondiff.evaluation.evaluators.base import MotionTextEvaluator
from motiondiff.metrics.retrieval import multimodality
from motiondiff.metrics.text_motion import (
    Diversity,
    FrechetDistance,
    PrecisionRecallDensityCoverage,
    RetrievalPrecision,
    TextMotionScore,
)
from motiondiff.text.cache import lookup_items
from motiondiff.text.encoders import TextEmbedding

log = logging.getLogger(__name__)


@dataclass
class TestSet:
    """The test items as evaluation reads them, embedded once."""

    names: list
    captions: list
    lengths: list  # frames per item
    cond: TextEmbedding  # the run's own text embeddings (for generation)
    text_latent: torch.Tensor  # (N, L) evaluator embeddings of the captions
    real_latent: torch.Tensor  # (N, L) evaluator embeddings of the real motions


def padded(motions: list, features: int) -> tuple:
    """Zero-padded (B, N, F) batch and its lengths (B,) from a list of (n_i, F) tensors."""
    lengths = torch.tensor([len(m) for m in motions])  # (B,)
    batch = torch.zeros(len(motions), int(lengths.max()), features)  # (B, N, F)
    for row, motion in enumerate(motions):
        batch[row, : len(motion)] = motion
    return batch, lengths


def load_test_set(run, evaluator: MotionTextEvaluator, num_test, batch_size: int) -> TestSet:
    """The run's test split, its captions embedded for the run and for the evaluator, its motions embedded."""
    datamodule = instantiate(run.config.dataset)
    datamodule.setup("test")
    clips = datamodule.test_set.clips
    items = [datamodule.test_set[i] for i in range(len(clips))]
    if num_test is not None:
        num_test = whole_number("num_test", num_test, minimum=4, why="or null for the whole test split")
        clips, items = clips[:num_test], items[:num_test]
    captions = [clip.captions[0] for clip in clips]  # test items read their first caption
    cond = lookup_items(datamodule.table, datamodule.text_encoder, captions)
    text_latent = evaluator.embed_captions(captions, datamodule.embedding_dir()).cpu()  # (N, L)
    features, real_latent = run.module.data.features, []
    for start in range(0, len(items), batch_size):
        motions = [
            run.module.normalizer.denormalize(item["motion"].to(run.module.device)).cpu()
            for item in items[start : start + batch_size]
        ]
        raw, lengths = padded(motions, features)
        real_latent.append(evaluator.embed_motions(raw, lengths).cpu())
    return TestSet(
        [item["name"] for item in items],
        [item["caption"] for item in items],
        [item["length"] for item in items],
        cond,
        text_latent,
        torch.cat(real_latent),
    )


def generate_latents(
    run, evaluator: MotionTextEvaluator, test: TestSet, indices: list, cfg: DictConfig, generator
) -> torch.Tensor:
    """Evaluator embeddings (len(indices), L) of one generated motion per test caption, at its real length."""
    module = run.module
    order = sorted(range(len(indices)), key=lambda k: test.lengths[indices[k]])  # similar lengths batch together
    latents = torch.zeros(len(indices), test.real_latent.shape[1])
    for start in range(0, len(order), cfg.batch_size):
        rows = order[start : start + cfg.batch_size]
        chosen = [indices[k] for k in rows]
        lengths = torch.tensor([test.lengths[i] for i in chosen])  # (B,)
        frames = int(lengths.max())
        mask = (torch.arange(frames)[None] < lengths[:, None]).to(module.device)  # (B, N)
        cond = test.cond[chosen].to(module.device).as_cond()
        samples = module.sample(
            len(chosen), run.sampler, generator, frames, cond=cond, mask=mask, guidance_weight=cfg.guidance_weight
        )
        raw = module.normalizer.denormalize(samples.float()).cpu()  # (B, N, F)
        latents[rows] = evaluator.embed_motions(raw, lengths).cpu()
    return latents


def measure(reference: torch.Tensor, motion: torch.Tensor, text: torch.Tensor, cfg: DictConfig, to_score) -> dict:
    """Every metric of one row: `motion` (M, L) with its captions `text` (M, L) against `reference` (R, L)."""
    fd = FrechetDistance(num_features=reference.shape[1])
    fd.update(reference, real=True)
    fd.update(motion, real=False)
    prdc = PrecisionRecallDensityCoverage(k=cfg.prdc_k)
    prdc.update(reference, real=True)
    prdc.update(motion, real=False)
    retrieval = RetrievalPrecision(batch_size=cfg.r_precision_batch, top_k=3)
    retrieval.update(F.normalize(text, dim=-1), F.normalize(motion, dim=-1))
    score = TextMotionScore()
    score.update(text, motion)
    diversity = Diversity(num_pairs=cfg.diversity_pairs, seed=cfg.seed)
    diversity.update(motion)
    values = {
        "FD": fd.compute(),
        **prdc.compute(),
        **retrieval.compute(),
        "TM-score": to_score(float(score.compute())),
        "diversity": diversity.compute(),
    }
    return {name: float(value) for name, value in values.items()}


def multimodality_of(run, evaluator, test: TestSet, cfg: DictConfig, generator) -> float:
    """Guo et al.'s multimodality: `samples` generations for each of the first `captions` test captions."""
    settings = cfg.multimodality
    captions = min(int(settings.captions), len(test.names))
    indices = [i for i in range(captions) for _ in range(int(settings.samples))]
    latents = generate_latents(run, evaluator, test, indices, cfg, generator)  # (C * S, L)
    return multimodality(
        latents.reshape(captions, int(settings.samples), -1), num_pairs=int(settings.pairs), seed=cfg.seed
    )


def evaluate_text(run, evaluator: MotionTextEvaluator, cfg: DictConfig) -> tuple:
    """Rows {"real": [...], "generated": [...]} of per-replication metrics, and the settings used."""
    test = load_test_set(run, evaluator, cfg.num_test, cfg.batch_size)
    if len(test.names) < 2 * cfg.r_precision_batch:
        log.warning(
            "only %d test items: halves smaller than one R-precision batch of %d",
            len(test.names),
            cfg.r_precision_batch,
        )
    rows = {"real": [], "generated": []}
    for replication in range(cfg.replications):
        seed = cfg.seed + replication
        split = torch.randperm(len(test.names), generator=torch.Generator().manual_seed(seed)).tolist()
        reference, evaluated = split[: len(split) // 2], split[len(split) // 2 :]
        generator = torch.Generator(device=run.module.device).manual_seed(seed)
        generated = generate_latents(run, evaluator, test, evaluated, cfg, generator)
        text = test.text_latent[evaluated]
        to_score = evaluator.score_from_cosine
        rows["real"].append(measure(test.real_latent[reference], test.real_latent[evaluated], text, cfg, to_score))
        rows["generated"].append(measure(test.real_latent[reference], generated, text, cfg, to_score))
        if cfg.multimodality.captions > 0:
            rows["generated"][-1]["multimodality"] = multimodality_of(run, evaluator, test, cfg, generator)
        log.info("replication %d/%d: %s", replication + 1, cfg.replications, rows["generated"][-1])
    settings = {
        "test_items": len(test.names),
        "reference_items": len(test.names) // 2,
        "evaluated_items": len(test.names) - len(test.names) // 2,
        "protocol": "ours",
    }
    return rows, settings
