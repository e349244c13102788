"""Text-motion retrieval and spread measures of the HumanML3D protocol (Guo et al. 2022).

All take embeddings as given (the caller unit-normalises them where the protocol wants it) and
compute in float64 numpy; inputs may be numpy arrays or torch tensors.
"""

import numpy as np
from scipy.spatial.distance import cdist

from motiondiff.core.errors import UserError
from motiondiff.metrics.distribution import as_feature_rows, as_float64


def matched_pairs(text_embeddings, motion_embeddings) -> tuple[np.ndarray, np.ndarray]:
    """Text and motion embeddings as float64 (N, D) matrices whose row i belongs together."""
    texts = as_feature_rows(text_embeddings, "text embeddings")  # (N, D)
    motions = as_feature_rows(motion_embeddings, "motion embeddings")  # (N, D)
    if texts.shape != motions.shape:
        raise UserError(
            f"text embeddings {texts.shape} and motion embeddings {motions.shape} must have the same shape."
        )
    if len(texts) == 0:
        raise UserError("retrieval metrics need at least one text-motion pair, got none.")
    return texts, motions


def chance_r_precision(batch_size: int, k: int) -> float:
    """R@k of a model whose embeddings carry no information: k / batch_size."""
    return k / batch_size


def r_precision(
    text_embeddings, motion_embeddings, batch_size: int = 32, top_k: int = 3, partial_batch: bool = False
) -> dict:
    """{"R@1".."R@top_k", "MM-Dist"} of matched (N, D) text and motion embeddings.

    Items are cut in the given order into consecutive batches of `batch_size` (a trailing partial batch is
    dropped, as Guo et al. drop it, unless `partial_batch`, as the course's test loader keeps it; with fewer
    than batch_size items there is one batch of all of them). In a batch each text ranks
    the batch's motions by Euclidean distance; R@k is the fraction of texts whose own motion is among the k
    nearest. A tie with the own motion counts against it (the own motion ranks after equally distant ones).
    MM-Dist is the mean distance between each text and its own motion over all N items (Guo et al. average
    it over the batched items only, which differs only when a partial batch is dropped).
    """
    assert batch_size >= 1 and top_k >= 1, (batch_size, top_k)
    texts, motions = matched_pairs(text_embeddings, motion_embeddings)  # (N, D), (N, D)
    num_batches = max(len(texts) // batch_size, 1)
    size = min(batch_size, len(texts))
    ranks = []
    for start in range(0, len(texts) if partial_batch else num_batches * size, size):
        distances = cdist(texts[start : start + size], motions[start : start + size])  # (B, B)
        own = np.diag(distances)  # (B,)
        closer_or_equal = (distances <= own[:, None]).sum(axis=1) - 1  # (B,) other motions at least as close
        ranks.append(closer_or_equal)
    ranks = np.concatenate(ranks)  # (items ranked,) 0 = own motion is the nearest
    result = {f"R@{k}": float((ranks < k).mean()) for k in range(1, top_k + 1)}
    result["MM-Dist"] = float(np.linalg.norm(texts - motions, axis=1).mean())
    return result


def text_motion_score(text_embeddings, motion_embeddings) -> float:
    """Mean cosine similarity between each text embedding and its own motion embedding (N, D)."""
    texts, motions = matched_pairs(text_embeddings, motion_embeddings)  # (N, D), (N, D)
    norms = np.linalg.norm(texts, axis=1) * np.linalg.norm(motions, axis=1)  # (N,)
    return float(((texts * motions).sum(axis=1) / np.maximum(norms, 1e-12)).mean())


def distinct_pairs(num_items: int, num_pairs: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """num_pairs uniformly random index pairs (i, j) with i != j among num_items items."""
    assert num_items >= 2, f"pairs of distinct items need at least 2 items, got {num_items}"
    first = rng.integers(0, num_items, size=num_pairs)  # (P,)
    second = rng.integers(0, num_items - 1, size=num_pairs)  # (P,)
    second = second + (second >= first)  # skip over `first`: uniform over the other items
    return first, second


def diversity(features, num_pairs: int = 300, seed: int = 0) -> float:
    """Mean Euclidean distance between num_pairs random pairs of distinct rows of (N, D) features, N >= 2.

    Guo et al. instead draw two index sets of 300 without replacement and pair them up, which needs
    N >= 300 and may pair an item with itself; here pairs are drawn independently (with replacement
    across pairs, never an item with itself) from a numpy Generator seeded by `seed`, so any N >= 2 works.
    """
    rows = as_feature_rows(features)  # (N, D)
    if len(rows) < 2:
        raise UserError(f"diversity needs at least 2 feature vectors, got {len(rows)}.")
    first, second = distinct_pairs(len(rows), num_pairs, np.random.default_rng(seed))  # (P,), (P,)
    return float(np.linalg.norm(rows[first] - rows[second], axis=1).mean())


def multimodality(features, num_pairs: int = 10, seed: int = 0) -> float:
    """Guo et al.'s multimodality: for (C, S, D) features (S generations per caption), the mean over
    captions of the mean distance between num_pairs random pairs of distinct generations of that caption."""
    generations = as_float64(features)  # (C, S, D)
    if generations.ndim != 3 or generations.shape[1] < 2:
        raise UserError(f"multimodality needs (captions, generations >= 2, D) features, got shape {generations.shape}.")
    rng = np.random.default_rng(seed)
    per_caption = []
    for caption in generations:  # (S, D)
        first, second = distinct_pairs(len(caption), num_pairs, rng)  # (P,), (P,)
        per_caption.append(np.linalg.norm(caption[first] - caption[second], axis=1).mean())
    return float(np.mean(per_caption))
