"""How fast the standard evaluator embeds: `.venv/bin/python benchmarks/evaluator_speed.py [--threads 2]`.

Builds Guo et al.'s three encoders at the release's sizes (random weights: speed does not depend on the values) and
times embedding HumanML3D-sized motions (40 to 196 frames, padded to 196) and captions (5 to 19 words) in batches.
How an evaluation's time splits between generating and evaluating is in each `protocol=guo` evaluation's
metrics.json (settings.seconds).
"""

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from motiondiff.evaluation.evaluators.guo import GuoEvaluator, build_networks
from motiondiff.text.glove import GloveVocabulary


def evaluator_throughput(items: int, batch: int) -> dict:
    """Motions and captions embedded per second by the t2m evaluator (HumanML3D sizes)."""
    rng = np.random.default_rng(0)
    words = ["sos", "eos", "unk", *[f"w{i}" for i in range(4196)]]
    vocabulary = GloveVocabulary(rng.normal(size=(len(words), 300)), words, {w: i for i, w in enumerate(words)})
    evaluator = GuoEvaluator(build_networks(263), np.zeros(263), np.ones(263), vocabulary, Path("random"))
    lengths = torch.from_numpy(rng.integers(40, 197, size=items))
    raw = torch.randn(items, 196, 263)
    captions = [[f"w{i}/NOUN" for i in rng.integers(3, 4199, size=rng.integers(5, 20))] for _ in range(items)]
    evaluator.embed_motions(raw[:batch], lengths[:batch])  # warm-up
    start = time.perf_counter()
    for s in range(0, items, batch):
        evaluator.embed_motions(raw[s : s + batch], lengths[s : s + batch])
    motions = items / (time.perf_counter() - start)
    start = time.perf_counter()
    for s in range(0, items, batch):
        batch_tokens = vocabulary.batch(captions[s : s + batch])
        evaluator.text_encoder(batch_tokens.word_embeddings, batch_tokens.pos_one_hots, batch_tokens.lengths)
    texts = items / (time.perf_counter() - start)
    return {"motions_per_s": motions, "captions_per_s": texts, "items": items, "batch": batch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}
    result.update(evaluator_throughput(args.items, args.batch))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
