"""The course framework's protocol (`protocol=lab`, with `evaluator=lab_tmr` on `dataset=lab` runs).

As the course measures its models: the first `num_items` test ids in sorted order (640; every id of the split
file, however short), each with its first caption and its whole motion (at most the model's frames: 197 for a run
trained on dataset=lab, as the course), generated once per replication (`batch_size` at a
time; batches do not change the samples' distribution). On the TMR embeddings (means, not unit-normalised):
- FD between the generated and the real motions of the same items (unbiased covariances);
- TMR-score: max(mean cosine of each generated motion with its caption, 0);
- precision / recall / density / coverage with k = 3 over 5 chunks in order (torch.chunk's), averaged (its recall
  pairs real and fake by index: metrics.reference_protocol.prdc_in_splits);
- R@1/2/3: each caption ranks the generated motions of its batch of 64 (the last one partial) by Euclidean
  distance (fractions).
Replications (seed + r) only change the generation noise; the course reports one (its values alone, no interval).
The real row is the same items' real motions against themselves: FD 0 and precision 1 by construction.
"""

import logging

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from motiondiff.core.checks import whole_number
from motiondiff.core.errors import UserError
from motiondiff.evaluation.evaluators.base import MotionTextEvaluator
from motiondiff.evaluation.text_motion import generate_embeddings, padded
from motiondiff.metrics.distribution import frechet_distance_features
from motiondiff.metrics.reference_protocol import clamped_mean_cosine, prdc_in_splits
from motiondiff.metrics.retrieval import r_precision
from motiondiff.runs.loading import TrainedRun

log = logging.getLogger(__name__)


def evaluate_lab(run: TrainedRun, evaluator: MotionTextEvaluator, cfg: DictConfig) -> tuple:
    """Rows {"real": [...], "generated": [...]} of per-replication measures, and the settings used."""
    count, batch = whole_number("num_items", cfg.num_items), whole_number("batch", cfg.batch, minimum=2)
    datamodule = instantiate(run.config.dataset, min_frames=1)  # every test id, as the course's loader
    datamodule.setup("test")
    clips = sorted(datamodule.test_set.clips, key=lambda clip: clip.name)[:count]
    if len(clips) < batch:
        raise UserError(f"protocol=lab needs at least one batch of {batch} test items, got {len(clips)}.")
    module, frames = run.module, run.module.data.max_frames
    captions = [clip.captions[0] for clip in clips]
    normalizer = module.normalizer.cpu()
    raw, lengths = padded(
        [normalizer.denormalize(torch.from_numpy(clip.features[:frames])) for clip in clips], module.data.features
    )
    module.normalizer.to(module.device)
    text = evaluator.embed_captions(captions, datamodule.embedding_dir()).cpu()  # (N, D)
    real = torch.cat(
        [evaluator.embed_motions(raw[s : s + batch], lengths[s : s + batch]).cpu() for s in range(0, len(clips), batch)]
    )
    cond = datamodule.table.lookup([datamodule.text_encoder.item_key(item) for item in captions])
    real_row = measures(real, real, text, cfg)  # no randomness: the same every replication
    rows = {"real": [], "generated": []}
    for replication in range(int(cfg.replications)):
        generator = torch.Generator(device=module.device).manual_seed(int(cfg.seed) + replication)
        generated = generate_embeddings(run, evaluator, cond, lengths, cfg, generator)  # (N, D)
        rows["real"].append(dict(real_row))
        rows["generated"].append(measures(real, generated, text, cfg))
        log.info("replication %d/%d: %s", replication + 1, cfg.replications, rows["generated"][-1])
    return rows, {"protocol": "lab", "test_items": len(clips), "batch": batch}


def measures(real: torch.Tensor, motion: torch.Tensor, text: torch.Tensor, cfg: DictConfig) -> dict:
    """The course's measures of `motion` (N, D) with its captions `text` against the same items' `real` motions."""
    retrieval = r_precision(text, motion, batch_size=int(cfg.batch), top_k=3, partial_batch=True)
    retrieval.pop("MM-Dist")  # the course computes it but does not report it
    return {
        "FD": frechet_distance_features(real, motion),
        "TMR-score": clamped_mean_cosine(text, motion),
        **prdc_in_splits(real, motion, int(cfg.prdc_k), int(cfg.prdc_splits)),
        **retrieval,
    }
