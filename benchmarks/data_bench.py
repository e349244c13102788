"""The text-motion data pipeline at the scale of the real datasets (issue 19): start-up, memory and loader speed.

    .venv/bin/python benchmarks/data_bench.py                 # 29,000 motions (HumanML3D with mirrors), ~87k captions
    .venv/bin/python benchmarks/data_bench.py --motions 3000  # a tenth of it
    .venv/bin/python benchmarks/data_bench.py --quick         # 40 motions and a tiny network: a smoke test

On a procedural set of that size (generated into a temporary folder, or --data-dir to keep and reuse it):
  1. `python -m motiondiff.train experiment=text2motion ... trainer.max_steps=1` on a cold cache (no packed
     motions, no caption embeddings) and again on the warm one: seconds from the start to the run's opening
     lines (data loaded, captions embedded, network built) and to the end of the 1-step run (which holds
     Lightning's sanity validation, the step and the checkpoint), and the peak RSS of the process tree.
  2. A probe process: the datamodule's setup, then one epoch of the train loader with 0 workers and with
     min(4, cores - 1) workers: samples/s, and the memory the data takes (the peak RSS above the process's
     own before setup, with its anonymous and file-backed parts: memory-mapped motions are file pages).
  3. In the same probe, training steps of the reference-size network (adaln, 512 wide, 8 layers, 16 heads,
     batch 8, crops of at most 196 frames of the same data): samples/s, against which the loader is measured.
Targets: warm start <= 60 s, cold start <= 15 min, loader >= 5x the reference training rate, data memory <= 4 GB.
`section_data(args, report)` fills report["data"], `data_markdown(report)` renders it (bench.py can run both);
run alone it writes <out>/data_bench.json and <out>/data_bench.md.
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from motiondiff.core.tables import markdown_table

ROOT = Path(__file__).resolve().parents[1]
TARGET_WARM_S = 60.0
TARGET_COLD_S = 15 * 60.0
TARGET_LOADER_RATIO = 5.0
TARGET_DATA_MB = 4 * 1024.0
QUICK_NETWORK = {"latent_dim": 32, "num_layers": 1, "num_heads": 4}
REFERENCE_NETWORK = {"latent_dim": 512, "num_layers": 8, "num_heads": 16}


def cpu_model() -> str:
    """The 'model name' of /proc/cpuinfo ('unknown' elsewhere)."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def train_overrides(data_dir: Path, args) -> list:
    """The overrides that point experiment=text2motion at the procedural set of args.motions motions in data_dir."""
    overrides = [
        "experiment=text2motion",
        f"paths.data_dir={data_dir}",
        f"dataset.procedural.num_motions={args.motions}",
        "dataset.procedural.seed=0",
        f"dataset.procedural.captions_per_motion={args.captions_per_motion}",
    ]
    if args.quick:
        overrides += [f"network.{key}={value}" for key, value in QUICK_NETWORK.items()] + ["dataset.batch_size=8"]
    return overrides


def tree_rss(process) -> int:
    """Bytes of RSS of a psutil process and its children (0 once it has gone)."""
    import psutil

    total = 0
    try:
        for member in [process, *process.children(recursive=True)]:
            total += member.memory_info().rss
    except psutil.Error:
        pass
    return total


MARKS = {"pack": "Packing the train", "encode": "Caching caption embeddings", "encoded": "Encoded ", "ready": "Data: "}


def timed_run(command: list, cwd: Path, log_path: Path) -> dict:
    """Run `command`, stamping its log lines (MARKS): seconds to the opening lines and to exit, CPU s, peak RSS."""
    import psutil

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}  # each log line as it is written, for its time stamp
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment
    )
    watched, peak, stamps = psutil.Process(process.pid), [0], {}

    def poll():
        while process.poll() is None:
            peak[0] = max(peak[0], tree_rss(watched))
            time.sleep(0.1)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    with open(log_path, "w") as log:
        for line in process.stdout:
            log.write(line)
            for name, mark in MARKS.items():
                if mark in line and name not in stamps:
                    stamps[name] = time.perf_counter() - started
    process.wait()
    poller.join()
    if process.returncode != 0:
        tail = log_path.read_text()[-3000:]
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{tail}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    ready = stamps.get("ready")
    encoding = stamps["encoded"] - stamps["encode"] if "encoded" in stamps and "encode" in stamps else None
    packing = stamps.get("encode", ready) - stamps["pack"] if "pack" in stamps and ready else None
    return {
        "ready_s": ready,
        "total_s": time.perf_counter() - started,
        "cpu_s": cpu,
        "pack_s": packing,
        "encode_s": encoding,
        "peak_rss_mb": peak[0] / 2**20,
        "command": " ".join(command[1:]),
    }


def run_probe(settings: dict) -> dict:
    """The probe (`--probe`) in its own process; its report."""
    command = [sys.executable, str(Path(__file__).resolve()), "--probe", json.dumps(settings)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"the data probe failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def section_data(args, report: dict) -> None:
    """Fill report["data"]: the procedural set of args.motions motions, cold and warm starts, the probe, targets."""
    from motiondiff.data.procedural.text_motion import dataset_name, write_procedural_dataset

    defaults = {"motions": 29000, "captions_per_motion": 3, "data_dir": None, "threads": None, "quick": False}
    args = argparse.Namespace(**{**defaults, **vars(args)})  # bench.py's arguments lack this script's own
    motions = args.motions = 40 if args.quick else args.motions
    load_start = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="data_bench-"))
    data_dir = Path(args.data_dir).resolve() if args.data_dir else work / "data"
    try:
        started = time.perf_counter()
        root = data_dir / dataset_name(motions, 0, args.captions_per_motion)
        fresh = not root.exists()
        write_procedural_dataset(root, num_motions=motions, seed=0, captions_per_motion=args.captions_per_motion)
        generate_s = time.perf_counter() - started if fresh else None
        overrides = train_overrides(data_dir, args)
        run = [sys.executable, "-m", "motiondiff.train", *overrides, f"paths.output_root={work / 'runs'}"]
        run += ["trainer.max_steps=1", "generate_after_training.num_samples=0", "logger=[csv]"]
        for cache in data_dir.glob("text-*.npz"):
            cache.unlink()
        shutil.rmtree(data_dir / "packed", ignore_errors=True)
        print(f"[data] cold start of {motions:,} motions ...", flush=True)
        cold = timed_run(run, ROOT, work / "cold.log")
        print(f"[data] cold: {cold['total_s']:.0f} s; warm start ...", flush=True)
        warm = timed_run(run, ROOT, work / "warm.log")
        print(f"[data] warm: {warm['total_s']:.0f} s; loader and reference training ...", flush=True)
        network = QUICK_NETWORK if args.quick else REFERENCE_NETWORK
        settings = {
            "overrides": overrides + [f"paths.output_dir={work / 'probe'}"],
            "network": network,
            "threads": args.threads or cores(),
            "loader_seconds": 5.0 if args.quick else 60.0,
            "train_batch": 2 if args.quick else 8,
            "train_steps": 1 if args.quick else 3,
        }
        probe = run_probe(settings)
        du = subprocess.run(["du", "-sm", str(root)], capture_output=True, text=True).stdout.split()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    best = max(row["samples_per_s"] for row in probe["loader"].values())
    ratio = probe["loader"]["0"]["samples_per_s"] / probe["training"]["samples_per_s"]
    data = {
        "machine": {"cpu": cpu_model(), "cores": cores(), "load_start": load_start, "load_end": os.getloadavg()[0]},
        "motions": motions,
        "captions_per_motion": args.captions_per_motion,
        "generate_s": generate_s,
        "dataset_mb": float(du[0]) if du else None,
        **{key: probe[key] for key in ("items", "captions", "unique_captions", "setup_s", "memory", "loader")},
        "cold": cold,
        "warm": warm,
        "training": probe["training"],
        "loader_ratio": ratio,
        "best_loader_ratio": best / probe["training"]["samples_per_s"],
    }
    data["targets"] = [
        ["warm start to the end of a 1-step run <= 60 s", f"{warm['total_s']:.0f} s", warm["total_s"] <= TARGET_WARM_S],
        [
            "cold start (caption encoding included) <= 15 min",
            f"{cold['total_s'] / 60:.1f} min",
            cold["total_s"] <= TARGET_COLD_S,
        ],
        ["loader (0 workers) >= 5x reference training samples/s", f"{ratio:.0f}x", ratio >= TARGET_LOADER_RATIO],
        [
            "host memory for the data <= 4 GB",
            f"{probe['memory']['data_mb'] / 1024:.2f} GB",
            probe["memory"]["data_mb"] <= TARGET_DATA_MB,
        ],
    ]
    report["data"] = data


# ----------------------------------------------------------------------------------------------- the probe


class MemoryWatch:
    """Peak VmRSS, RssAnon and RssFile of this process (from /proc/self/status, every 10 ms) since `reset`."""

    FIELDS = ("VmRSS", "RssAnon", "RssFile")

    def __init__(self):
        self.peak, self.running = self.now(), True
        self.thread = threading.Thread(target=self.poll, daemon=True)
        self.thread.start()

    @classmethod
    def now(cls) -> dict:
        values = {}
        for line in open("/proc/self/status"):
            key, _, rest = line.partition(":")
            if key in cls.FIELDS:
                values[key] = int(rest.split()[0]) / 1024  # MB
        return values

    def poll(self):
        while self.running:
            self.peak = {key: max(value, self.now()[key]) for key, value in self.peak.items()}
            time.sleep(0.01)

    def reset(self) -> None:
        self.peak = self.now()

    def stop(self) -> dict:
        self.running = False
        self.thread.join()
        return {key: max(value, self.now()[key]) for key, value in self.peak.items()}


def compose_train(overrides: list):
    """configs/train.yaml composed with `overrides`, as the train command composes it."""
    from motiondiff.cli.app import compose_command_config

    return compose_command_config("train", overrides)


def loader_rate(loader, seconds: float) -> dict:
    """Samples/s of iterating `loader` (its first batch, which starts the workers, not counted) for <= seconds."""
    started, samples, batches, first = time.perf_counter(), 0, 0, None
    for batch in loader:
        if first is None:
            first = time.perf_counter()
            continue
        samples, batches = samples + len(batch["length"]), batches + 1
        if time.perf_counter() - first >= seconds:
            break
    elapsed = time.perf_counter() - (first or started)
    return {"samples_per_s": samples / max(elapsed, 1e-9), "batches": batches, "seconds": elapsed}


def training_rate(cfg, datamodule, batch: int, steps: int) -> dict:
    """Samples/s of the run's training step (loss, backward, AdamW, EMA) on batches of the data."""
    import torch
    from torch.utils.data import DataLoader

    from motiondiff.data.text_motion import TextMotionCollate
    from motiondiff.training.build import build_module

    module = build_module(cfg, datamodule.info).train()
    optimizer = torch.optim.AdamW(module.network.parameters(), lr=1e-4)
    loader = DataLoader(
        datamodule.train_set, batch_size=batch, shuffle=True, collate_fn=TextMotionCollate(datamodule.table)
    )
    batches, times = iter(loader), []
    for index in range(steps + 1):
        data = next(batches)
        started = time.perf_counter()
        cond = module.drop_conditions(data["cond"])
        loss = module.loss(module.network, module.schedule, data["motion"], data["mask"], cond=cond)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        module.ema.update()
        if index:  # the first step warms up
            times.append(time.perf_counter() - started)
    step = statistics.median(times)
    params = sum(p.numel() for p in module.network.parameters())
    return {"samples_per_s": batch / step, "step_s": step, "batch": batch, "params": params, **dict(cfg.network)}


def probe(settings: dict) -> dict:
    """Setup, loader epochs and reference training in this process (see the module docstring)."""
    import torch
    from hydra.utils import instantiate

    torch.set_num_threads(int(settings["threads"]))
    cfg = compose_train(settings["overrides"])
    watch = MemoryWatch()
    base = watch.now()
    started = time.perf_counter()
    datamodule = instantiate(cfg.dataset)
    datamodule.setup("fit")
    setup_s = time.perf_counter() - started
    datamodule.num_workers = 0
    loader = {"0": loader_rate(datamodule.train_dataloader(), settings["loader_seconds"])}
    peak = watch.stop()
    workers = min(4, cores() - 1)
    if workers > 0:
        datamodule.num_workers = workers
        loader[str(workers)] = loader_rate(datamodule.train_dataloader(), settings["loader_seconds"])
    for key, row in loader.items():
        row.update(workers=int(key), batch_size=datamodule.batch_size)
    network = {f"network.{key}={value}" for key, value in settings["network"].items()}
    reference = compose_train([o for o in settings["overrides"] if not o.startswith("network.")] + sorted(network))
    training = training_rate(reference, datamodule, settings["train_batch"], settings["train_steps"])
    return {
        "items": len(datamodule.train_set),
        "captions": len(datamodule.caption_items),
        "unique_captions": len(datamodule.table),
        "setup_s": setup_s,
        "memory": {
            "before_setup_mb": base["VmRSS"],
            "data_mb": peak["VmRSS"] - base["VmRSS"],
            "data_anon_mb": peak["RssAnon"] - base["RssAnon"],
            "data_file_mb": peak["RssFile"] - base["RssFile"],
        },
        "loader": loader,
        "training": training,
    }


# ----------------------------------------------------------------------------------------------- report


def seconds(value) -> str:
    """'12.3 s', or '-' for None."""
    return "-" if value is None else f"{value:.1f} s"


def data_markdown(report: dict) -> str:
    """The data section of the benchmark's Markdown: what was measured, how, and the targets."""
    d = report["data"]
    m, mem, t, cold, warm = d["machine"], d["memory"], d["training"], d["cold"], d["warm"]
    generated = f"generated in {d['generate_s']:.0f} s, " if d["generate_s"] else ""
    size = f"{d['dataset_mb']:,.0f} MB on disk" if d["dataset_mb"] else "size unknown"
    rows = [
        [
            f"{name} start: to the opening lines / to the end of a 1-step run (CPU seconds of the process tree)",
            f"{run['ready_s']:.1f} / {run['total_s']:.1f} s ({run['cpu_s']:.0f} CPU s)",
        ]
        for name, run in (("cold", cold), ("warm", warm))
    ]
    rows += [
        [
            "cold start: packing the train split / encoding the captions",
            f"{seconds(cold['pack_s'])} / {seconds(cold['encode_s'])}",
        ],
        [
            "peak RSS of the train process tree, cold / warm",
            f"{cold['peak_rss_mb']:,.0f} / {warm['peak_rss_mb']:,.0f} MB",
        ],
        ["datamodule setup (warm, in the probe)", f"{d['setup_s']:.1f} s"],
        [
            "memory the data takes: peak RSS above the process's own (anonymous + file-backed)",
            f"{mem['data_mb']:,.0f} MB ({mem['data_anon_mb']:,.0f} + {mem['data_file_mb']:,.0f})",
        ],
        *[
            [
                f"train loader, batch {row['batch_size']}, {row['workers']} workers",
                f"{row['samples_per_s']:,.0f} samples/s",
            ]
            for row in d["loader"].values()
        ],
        [
            f"training {t['latent_dim']}x{t['num_layers']} layers, batch {t['batch']}, {t['params'] / 1e6:.1f}M params",
            f"{t['samples_per_s']:.1f} samples/s ({t['step_s']:.2f} s/step)",
        ],
        ["loader (0 workers) / training", f"{d['loader_ratio']:.0f}x (with workers {d['best_loader_ratio']:.0f}x)"],
    ]
    targets = [[name, value, "met" if ok else "missed"] for name, value, ok in d["targets"]]
    return (
        "\n".join(
            [
                f"### Data pipeline at scale: {d['motions']:,} procedural motions",
                "",
                f"{m['cpu']}, {m['cores']} cores (1-min load average {m['load_start']:.1f} at the start, "
                f"{m['load_end']:.1f} at the end). The set: "
                f"{d['items']:,} training items, {d['captions']:,} captions ({d['unique_captions']:,} distinct) in all "
                f"splits, {generated}{size}.",
                "",
                markdown_table(["measure", "value"], rows),
                "",
                markdown_table(["target", "measured", ""], targets),
                "",
                f"Runs: `{cold['command']}` (cold: after deleting the caption embeddings and the packed motions; warm: "
                "the same again); loader and training: the probe of `benchmarks/data_bench.py`.",
            ]
        )
        + "\n"
    )


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--motions", type=int, default=29000, help="procedural motions (default 29000: HumanML3D)")
    parser.add_argument("--captions-per-motion", type=int, default=3, help="captions per motion (default 3)")
    parser.add_argument("--out", default="benchmarks/results", help="folder for data_bench.json and data_bench.md")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="generate the set here and reuse it (its caches are deleted for the cold start)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the probe (default: all cores)")
    parser.add_argument("--quick", action="store_true", help="40 motions and a tiny network (a smoke test)")
    parser.add_argument("--probe", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe is not None:
        print(json.dumps(probe(json.loads(args.probe))), flush=True)
        return {}
    report = {"quick": args.quick}
    section_data(args, report)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = data_markdown(report)
    (out / "data_bench.json").write_text(json.dumps(report, indent=2, default=str))
    (out / "data_bench.md").write_text(text)
    print(text)
    return report


if __name__ == "__main__":
    main()
