"""Where a generation's or an evaluation's outputs came from: the run, its checkpoint (with its hash), its config."""

import hashlib
import json
from pathlib import Path

from omegaconf import OmegaConf

from motiondiff.runs.loading import TrainedRun

PROVENANCE_FILE = "source.json"


def write_provenance(out_dir: Path, run: TrainedRun) -> dict:
    """Record in out_dir the run, its checkpoint with the file's SHA-256 and the run's config; return the record."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "run_config.yaml").write_text(OmegaConf.to_yaml(run.config))
    record = {
        "run_dir": str(run.run_dir),
        "checkpoint": str(run.checkpoint),
        "checkpoint_sha256": file_sha256(run.checkpoint),
        "run_config": "run_config.yaml",
        "this_command_config": ".hydra/config.yaml",
    }
    (out_dir / PROVENANCE_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return record


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
