"""The measures of the published text-to-motion protocol, with the reference evaluation code's conventions
(Guo et al. 2022, as MDM and later papers run it), and those of the course framework (lab7) that differ.
Where they differ from this project's own measures (metrics.retrieval, metrics.distribution), the
difference is named in each docstring.
"""

import math

import numpy as np
from scipy.spatial.distance import cdist

from motiondiff.core.errors import UserError
from motiondiff.metrics.distribution import as_feature_rows, as_float64, prdc


def r_precision_full_batches(text_embeddings, motion_embeddings, batch_size: int = 32, top_k: int = 3) -> dict:
    """{"R@1".."R@k", "MM-Dist"} over consecutive batches of exactly batch_size matched rows.

    As the reference: a partial last batch is dropped and MM-Dist (the mean distance of each text to its own
    motion) covers the full batches only; each text ranks its batch's motions by Euclidean distance with
    numpy's argsort, so an exact tie falls wherever argsort puts it (this project's r_precision counts a tie
    against the own motion instead)."""
    texts = as_feature_rows(text_embeddings, "text embeddings")  # (N, D)
    motions = as_feature_rows(motion_embeddings, "motion embeddings")  # (N, D)
    assert texts.shape == motions.shape, (texts.shape, motions.shape)
    batches = len(texts) // batch_size
    if batches == 0:
        raise UserError(f"R-precision needs at least one full batch of {batch_size} items, got {len(texts)} items.")
    hits, distance_sum = np.zeros(top_k), 0.0
    for start in range(0, batches * batch_size, batch_size):
        distances = cdist(texts[start : start + batch_size], motions[start : start + batch_size])  # (B, B)
        distance_sum += np.trace(distances)
        order = np.argsort(distances, axis=1)[:, :top_k]  # (B, k) nearest motions of each text
        own = order == np.arange(batch_size)[:, None]  # (B, k)
        hits += np.cumsum(own, axis=1).astype(bool).sum(axis=0)  # texts whose own motion is within the first k
    count = batches * batch_size
    return {**{f"R@{k + 1}": float(hits[k] / count) for k in range(top_k)}, "MM-Dist": float(distance_sum / count)}


def independent_pairs(count: int, pairs: int, rng: np.random.Generator) -> tuple:
    """Two index sets of `pairs` items each drawn without replacement, independently (so a pair may be one item
    twice), as the reference draws them; needs count >= pairs."""
    if count < pairs:
        raise UserError(f"{pairs} pairs drawn without replacement need at least {pairs} items, got {count}.")
    return rng.choice(count, pairs, replace=False), rng.choice(count, pairs, replace=False)


def diversity_reference(features, pairs: int, rng: np.random.Generator) -> float:
    """Mean distance of `pairs` random pairs of rows of (N, D) features, drawn as the reference draws them."""
    rows = as_feature_rows(features)  # (N, D)
    first, second = independent_pairs(len(rows), pairs, rng)  # (P,), (P,)
    return float(np.linalg.norm(rows[first] - rows[second], axis=1).mean())


def multimodality_reference(features, pairs: int, rng: np.random.Generator) -> float:
    """For (C, S, D) features (S generations per caption): the mean distance of `pairs` pairs of generations,
    the same index pairs for every caption, drawn as the reference draws them."""
    generations = as_float64(features)  # (C, S, D)
    if generations.ndim != 3:
        raise UserError(f"multimodality needs (captions, generations, D) features, got shape {generations.shape}.")
    first, second = independent_pairs(generations.shape[1], pairs, rng)  # (P,), (P,)
    return float(np.linalg.norm(generations[:, first] - generations[:, second], axis=-1).mean())


def normal_interval(values) -> float:
    """The papers' 95% interval half width: 1.96 * std (population, ddof 0) / sqrt(n); nan for n == 1."""
    values = np.asarray(values, dtype=np.float64).ravel()  # (n,)
    return math.nan if len(values) < 2 else float(1.96 * values.std() / math.sqrt(len(values)))


def prdc_in_splits(real, fake, k: int = 3, splits: int = 5) -> dict:
    """The course's PRDC: real and fake (N, D) each cut in order into chunks as torch.chunk cuts them (ceil(N /
    splits) rows each, the last shorter; fewer chunks where N is small), PRDC with k neighbours per pair of chunks
    (its recall pairs real and fake by index), averaged over the chunks."""
    real, fake = as_feature_rows(real, "real features"), as_feature_rows(fake, "fake features")  # (N, D), (N, D)
    size = math.ceil(len(real) / splits)
    starts = range(0, len(real), size)
    results = [prdc(real[s : s + size], fake[s : s + size], k, course_recall=True) for s in starts]
    return {key: float(np.mean([result[key] for result in results])) for key in results[0]}


def clamped_mean_cosine(text_embeddings, motion_embeddings) -> float:
    """The course's TMR-score: max(mean cosine of each motion with its own caption, 0)."""
    texts, motions = as_feature_rows(text_embeddings), as_feature_rows(motion_embeddings)  # (N, D), (N, D)
    cosines = (texts * motions).sum(1) / np.maximum(
        np.linalg.norm(texts, axis=1) * np.linalg.norm(motions, axis=1), 1e-12
    )
    return max(float(cosines.mean()), 0.0)
