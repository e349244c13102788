"""Sweeps (`python -m motiondiff.<task> -m ...`): each job records its own outcome, a Hydra callback sums them up.

A job of a multirun never ends the sweep: its failure is logged and written, with its overrides, run
directory and wall time, to `job_status.json` in the job's own output directory. The job writes it
itself, so this works with launchers that run jobs in other processes or on other machines (joblib,
SLURM). At the end, `SweepSummary` (hydra.callbacks in configs/hydra/*.yaml) collects these files
into `sweep_summary.json` and `sweep_summary.md` in the sweep directory and makes the command exit
non-zero when any job failed. Also here: finding the jobs and finished runs of a sweep directory
(for `evaluate sweep_dir=...` and `compare sweep_dir=...`).
"""

import json
import logging
import os
import re
import socket
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from motiondiff.core.errors import UserError, find_user_error
from motiondiff.core.files import relative
from motiondiff.core.tables import markdown_table
from motiondiff.runs.directories import CONFIG_NAME

log = logging.getLogger(__name__)

STATUS_FILE = "job_status.json"
SUMMARY_JSON, SUMMARY_MD = "sweep_summary.json", "sweep_summary.md"
COMPLETED, FAILED, NO_STATUS = "completed", "failed", "no status"
TIME_FORMAT = "%Y-%m-%d_%H-%M-%S-%f"  # the configs' ${now:...} folder names


# ---- one job ----------------------------------------------------------------------------------


def run_sweep_job(run: Callable[[DictConfig], object], cfg: DictConfig) -> dict:
    """The task of a multirun job: run(cfg) with its outcome recorded in the job's output directory."""
    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    return run_recording_status(
        run, cfg, output_dir, list(hydra_cfg.overrides.task), hydra_cfg.job.num, cfg.get("run_dir") or output_dir
    )


def run_recording_status(run: Callable, cfg: DictConfig, output_dir: Path, overrides: list, job: int, run_dir) -> dict:
    """run(cfg) without raising: log a failure, write job_status.json into output_dir, return the record."""
    start = time.perf_counter()
    record = {
        "job": job,
        "status": COMPLETED,
        "overrides": [str(o) for o in overrides],
        "error": None,
        "run_dir": str(run_dir),
        "output_dir": str(output_dir),
    }
    try:
        run(cfg)
    except Exception as error:
        record.update(status=FAILED, error=describe_failure(error))
        log_failure(job, error)
    record.update(
        wall_time_s=round(time.perf_counter() - start, 3),
        finished=datetime.now().isoformat(timespec="seconds"),
        host=socket.gethostname(),
        pid=os.getpid(),
    )
    write_new_json(Path(output_dir) / STATUS_FILE, record)
    return record


def describe_failure(error: BaseException) -> str:
    """A UserError's message, else the exception's type and first line (its traceback goes to the job's log)."""
    user_error = find_user_error(error)
    if user_error is not None:
        return str(user_error)
    first_line = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first_line} (traceback in the job's log)"


def log_failure(job, error: BaseException) -> None:
    """One line for a UserError, the traceback for anything else."""
    user_error = find_user_error(error)
    if user_error is not None:
        log.error("job %s failed: %s", job, user_error)
    else:
        log.error("job %s failed:", job, exc_info=error)


def write_new_json(path: Path, record) -> Path:
    """Write record as JSON into a file that must not exist yet (nothing is overwritten)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "x") as handle:
        handle.write(json.dumps(record, indent=2) + "\n")
    return path


# ---- the sweep --------------------------------------------------------------------------------


class SweepSummary(Callback):
    """Hydra callback: refuse a used sweep directory at the start; write the sweep summary at the end."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        """Stop (exit status 2) before any job when hydra.sweep.dir already holds a sweep."""
        sweep_dir = Path(config.hydra.sweep.dir)
        if (sweep_dir / "multirun.yaml").exists() or (sweep_dir / SUMMARY_JSON).exists():
            print(
                f"error: hydra.sweep.dir='{sweep_dir}' already holds a sweep; sweeps never share a directory: "
                "give another hydra.sweep.dir.",
                file=sys.stderr,
            )
            raise SystemExit(2)  # Hydra turns a callback's Exception into a warning, but lets SystemExit through

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        """Write sweep_summary.{json,md}; print how many jobs failed and exit with status 1 when any did."""
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = [job_record(job_dir) for job_dir in sweep_jobs(sweep_dir)]
        path = write_job_tables(sweep_dir / SUMMARY_JSON, sweep_dir / SUMMARY_MD, f"Sweep {sweep_dir}", rows, sweep_dir)
        failed = [row for row in rows if row["status"] != COMPLETED]
        if failed:
            print(f"{len(failed)} of {len(rows)} jobs failed, see {path}", file=sys.stderr)
            # Hydra 1.3's run_and_report catches Exception only: a SystemExit ends the command with this status.
            raise SystemExit(1)
        print(f"all {len(rows)} jobs completed, see {path}")


def sweep_jobs(sweep_dir: Path) -> list:
    """Job directories of a sweep (Hydra started them in multirun mode, or they hold a job status), by job number."""
    found = {path.parent for path in sweep_dir.rglob(STATUS_FILE)}
    found |= {
        path.parent.parent
        for path in sweep_dir.rglob(".hydra/hydra.yaml")
        if hydra_record(path.parent.parent).get("mode") == "MULTIRUN"
    }
    numbers = {job_dir: job_record(job_dir)["job"] for job_dir in outermost(found)}
    return sorted(numbers, key=lambda job_dir: (numbers[job_dir] is None, numbers[job_dir] or 0, natural_key(job_dir)))


def finished_runs(sweep_dir: Path) -> list:
    """Finished training runs under a directory (folders with config.yaml, checkpoints/last.ckpt), in natural order."""
    found = {
        path.parent for path in sweep_dir.rglob(CONFIG_NAME) if (path.parent / "checkpoints" / "last.ckpt").is_file()
    }
    return sorted(outermost(found), key=natural_key)


def sweep_runs(sweep_dir: Path) -> list:
    """Every job and finished run of a sweep directory, once each, jobs first in job order."""
    jobs = sweep_jobs(sweep_dir)
    return jobs + [
        run for run in finished_runs(sweep_dir) if run not in jobs and not any(job in run.parents for job in jobs)
    ]


def outermost(directories: Iterable[Path]) -> list:
    """The directories not inside another one of them (a run's own evaluations are not jobs)."""
    directories = set(directories)
    return [d for d in directories if not any(parent in directories for parent in d.parents)]


def natural_key(path: Path) -> list:
    """Sort key that puts 2 before 10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def job_record(job_dir: Path) -> dict:
    """A job's job_status.json, or a 'no status' record from Hydra's own files (the job was killed or is running)."""
    path = job_dir / STATUS_FILE
    if path.is_file():
        return json.loads(path.read_text())
    hydra = hydra_record(job_dir)
    return {
        "job": hydra.get("job", {}).get("num"),
        "status": NO_STATUS,
        "overrides": run_overrides(job_dir),
        "error": (
            "the job wrote no job_status.json: it was killed (time or memory limit?) or is still running; see its log"
        ),
        "run_dir": str(job_dir),
        "output_dir": str(job_dir),
        "wall_time_s": None,
    }


def hydra_record(job_dir: Path) -> dict:
    """The `hydra` node Hydra saved in <job>/.hydra/hydra.yaml ({} when absent)."""
    path = job_dir / ".hydra" / "hydra.yaml"
    return (yaml.safe_load(path.read_text()) or {}).get("hydra", {}) if path.is_file() else {}


def run_overrides(run_dir: Path) -> list:
    """The command-line overrides a run was started with (<run>/.hydra/overrides.yaml; [] when absent)."""
    path = Path(run_dir) / ".hydra" / "overrides.yaml"
    return [str(o) for o in yaml.safe_load(path.read_text()) or []] if path.is_file() else []


# ---- tables -----------------------------------------------------------------------------------


def parse_overrides(overrides: list) -> dict:
    """{key: value} of `key=value` overrides (+key, ++key and ~key count as key)."""
    settings = {}
    for override in overrides:
        key, _, value = override.partition("=")
        settings[key.lstrip("+~")] = value if not key.startswith("~") else "(deleted)"
    return settings


def varied_settings(override_lists: list) -> list:
    """The override keys whose values differ between the lists (a key missing from some counts as differing)."""
    parsed = [parse_overrides(overrides) for overrides in override_lists]
    keys = list(dict.fromkeys(key for settings in parsed for key in settings))
    return [key for key in keys if len({settings.get(key) for settings in parsed}) > 1]


def write_job_tables(json_path: Path, md_path: Path, title: str, rows: list, base: Path, noun: str = "jobs") -> Path:
    """Write rows (job records) as JSON and as a Markdown table (varied overrides only); return the Markdown path."""
    failed = sum(row["status"] != COMPLETED for row in rows)
    write_new_json(json_path, {"directory": str(base), "jobs": len(rows), "failed": failed, "rows": rows})
    varied = varied_settings([row["overrides"] for row in rows])
    common = [o for o in (rows[0]["overrides"] if rows else []) if o.partition("=")[0].lstrip("+~") not in varied]
    lines = []
    for row in rows:
        settings = parse_overrides(row["overrides"])
        shown = " ".join(f"{key}={settings[key]}" for key in varied if key in settings)
        seconds = "" if row.get("wall_time_s") is None else f"{row['wall_time_s']:.1f} s"
        lines.append(
            [
                row["job"],
                f"`{shown}`" if shown else "",
                row["status"],
                relative(row["run_dir"], base),
                seconds,
                row["error"] or "",
            ]
        )
    table = markdown_table(["job", "overrides", "status", "run dir", "wall time", "error"], lines)
    with open(md_path, "x") as handle:
        handle.write(
            f"# {title}\n\n{len(rows)} {noun}, {failed} failed. "
            f"Common overrides: `{' '.join(common) or '(none)'}`\n\n{table}\n"
        )
    return md_path


def new_timestamped_dir(parent: Path) -> Path:
    """A new folder parent/<time> (microseconds; never one that exists)."""
    while True:
        path = Path(parent) / datetime.now().strftime(TIME_FORMAT)
        if not path.exists():
            path.mkdir(parents=True)
            return path


def require_sweep_dir(sweep_dir) -> Path:
    """sweep_dir as a Path; UserError when it is not given or not a directory."""
    if not sweep_dir:
        raise UserError(
            "say which sweep: sweep_dir=<the sweep directory of a `train -m` run, e.g. outputs/multirun/<time>>."
        )
    if not Path(sweep_dir).is_dir():
        raise UserError(
            f"sweep directory not found: '{sweep_dir}' (sweep_dir); list your sweeps with: ls outputs/multirun/"
        )
    return Path(sweep_dir)
