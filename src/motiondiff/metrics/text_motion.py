"""torchmetrics wrappers of the text-to-motion metrics: accumulate over `update`, sync across processes, compute
through motiondiff.metrics.distribution and motiondiff.metrics.retrieval."""

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from motiondiff.core.errors import UserError
from motiondiff.metrics.distribution import frechet_distance, prdc
from motiondiff.metrics.retrieval import diversity, r_precision, text_motion_score


def scalar(value: float) -> torch.Tensor:
    """A float64 scalar tensor."""
    return torch.tensor(value, dtype=torch.float64)


def gathered(states: list | torch.Tensor, what: str) -> torch.Tensor:
    """The rows accumulated in a list state (a tensor once synced), or a UserError if none were given."""
    if isinstance(states, list) and not states:
        raise UserError(f"no {what} were given to the metric before compute(); call update() first.")
    return dim_zero_cat(states)


def check_pairs(text_embeddings: torch.Tensor, motion_embeddings: torch.Tensor) -> None:
    """UserError unless text and motion embeddings are matched (B, D) matrices."""
    if text_embeddings.ndim != 2 or text_embeddings.shape != motion_embeddings.shape:
        raise UserError(
            f"text embeddings {tuple(text_embeddings.shape)} and motion embeddings {tuple(motion_embeddings.shape)} "
            "must be (batch, dim) matrices of the same shape."
        )


class FrechetDistance(Metric):
    """Frechet distance between Gaussians fitted to the real and the fake features seen so far."""

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(self, num_features: int, **kwargs):
        super().__init__(**kwargs)
        self.num_features = num_features
        for side in ("real", "fake"):
            self.add_state(f"{side}_count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_sum", torch.zeros(num_features, dtype=torch.float64), dist_reduce_fx="sum")
            outer = torch.zeros(num_features, num_features, dtype=torch.float64)  # (D, D)
            self.add_state(f"{side}_outer", outer, dist_reduce_fx="sum")

    def update(self, features: torch.Tensor, real: bool) -> None:
        """Add (B, D) real or fake features."""
        if features.ndim != 2 or features.shape[1] != self.num_features:
            raise UserError(
                f"FrechetDistance expects (batch, {self.num_features}) features, got {tuple(features.shape)}."
            )
        side = "real" if real else "fake"
        rows = features.detach().to(torch.float64)  # (B, D)
        setattr(self, f"{side}_count", getattr(self, f"{side}_count") + len(rows))
        setattr(self, f"{side}_sum", getattr(self, f"{side}_sum") + rows.sum(dim=0))  # (D,)
        setattr(self, f"{side}_outer", getattr(self, f"{side}_outer") + rows.T @ rows)  # (D, D)

    def statistics(self, side: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (D,) and unbiased covariance (D, D) of the accumulated `side` features."""
        count = getattr(self, f"{side}_count")
        if count < 2:
            raise UserError(f"FrechetDistance needs at least 2 {side} feature vectors, got {int(count)}.")
        mean = getattr(self, f"{side}_sum") / count  # (D,)
        cov = (getattr(self, f"{side}_outer") - count * torch.outer(mean, mean)) / (count - 1)  # (D, D)
        return mean, cov

    def compute(self) -> torch.Tensor:
        """The Frechet distance as a scalar tensor."""
        return scalar(frechet_distance(*self.statistics("real"), *self.statistics("fake")))


class PrecisionRecallDensityCoverage(Metric):
    """Precision, recall, density and coverage (Naeem et al. 2020) of all fake against all real features."""

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, k: int = 5, **kwargs):
        super().__init__(**kwargs)
        self.k = k
        self.add_state("real_features", [], dist_reduce_fx="cat")
        self.add_state("fake_features", [], dist_reduce_fx="cat")

    def update(self, features: torch.Tensor, real: bool) -> None:
        """Add (B, D) real or fake features."""
        getattr(self, "real_features" if real else "fake_features").append(features.detach())

    def compute(self) -> dict:
        """{"precision", "recall", "density", "coverage"} as scalar tensors."""
        real = gathered(self.real_features, "real features")  # (N, D)
        fake = gathered(self.fake_features, "fake features")  # (M, D)
        return {name: scalar(value) for name, value in prdc(real, fake, k=self.k).items()}


class RetrievalPrecision(Metric):
    """R@1..R@top_k and MM-Dist of the HumanML3D protocol over all pairs seen, in the order given."""

    full_state_update = False
    higher_is_better = None  # R@k: higher is better; MM-Dist: lower is better
    is_differentiable = False

    def __init__(self, batch_size: int = 32, top_k: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.batch_size, self.top_k = batch_size, top_k
        self.add_state("text_embeddings", [], dist_reduce_fx="cat")
        self.add_state("motion_embeddings", [], dist_reduce_fx="cat")

    def update(self, text_embeddings: torch.Tensor, motion_embeddings: torch.Tensor) -> None:
        """Add matched (B, D) text and motion embeddings."""
        check_pairs(text_embeddings, motion_embeddings)
        self.text_embeddings.append(text_embeddings.detach())
        self.motion_embeddings.append(motion_embeddings.detach())

    def compute(self) -> dict:
        """{"R@1".."R@top_k", "MM-Dist"} as scalar tensors."""
        texts = gathered(self.text_embeddings, "text embeddings")  # (N, D)
        motions = gathered(self.motion_embeddings, "motion embeddings")  # (N, D)
        result = r_precision(texts, motions, batch_size=self.batch_size, top_k=self.top_k)
        return {name: scalar(value) for name, value in result.items()}


class TextMotionScore(Metric):
    """Mean cosine similarity of matched text and motion embeddings."""

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("cosine_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, text_embeddings: torch.Tensor, motion_embeddings: torch.Tensor) -> None:
        """Add matched (B, D) text and motion embeddings."""
        check_pairs(text_embeddings, motion_embeddings)
        self.cosine_sum = self.cosine_sum + text_motion_score(text_embeddings, motion_embeddings) * len(text_embeddings)
        self.count = self.count + len(text_embeddings)

    def compute(self) -> torch.Tensor:
        """The mean cosine as a scalar tensor."""
        if self.count == 0:
            raise UserError(
                "no text and motion embeddings were given to TextMotionScore before compute(); call update() first."
            )
        return (self.cosine_sum / self.count).cpu()


class Diversity(Metric):
    """Mean distance between random pairs of all features seen (see motiondiff.metrics.retrieval.diversity)."""

    full_state_update = False
    higher_is_better = None  # should match the real data's diversity rather than be large
    is_differentiable = False

    def __init__(self, num_pairs: int = 300, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.num_pairs, self.seed = num_pairs, seed
        self.add_state("features", [], dist_reduce_fx="cat")

    def update(self, features: torch.Tensor) -> None:
        """Add (B, D) features."""
        self.features.append(features.detach())

    def compute(self) -> torch.Tensor:
        """The diversity as a scalar tensor."""
        features = gathered(self.features, "features")  # (N, D)
        return scalar(diversity(features, num_pairs=self.num_pairs, seed=self.seed))
