"""Train + generate through Hydra on the default data, and the command-line errors users see."""

import json
import re
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest

from conftest import ROOT, TINY_NETWORK, compose_config
from motiondiff.core.errors import UserError
from motiondiff.generation import run as generate
from motiondiff.runs import train


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    cfg = compose_config(
        "train",
        run_dir,
        [
            "experiment=dance2d",
            "+trainer.fast_dev_run=true",
            "generate_after_training.num_samples=2",
            "generate_after_training.chain_windows=2",
            "sampler=ddim",
            "sampler.num_steps=4",
            *TINY_NETWORK,
        ],
    )
    return train.run(cfg)


def test_fast_dev_run_writes_config_checkpoint_samples_and_videos(trained_run):
    run_dir = trained_run["run_dir"]
    assert (run_dir / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    final = run_dir / "generations" / "final"
    samples = np.load(final / "samples.npy")
    assert samples.shape == (2, 48, 20, 2) and np.isfinite(samples).all()
    assert np.load(final / "long_dance.npy").shape == (48 + 32, 20, 2)
    frames = iio.imread(final / "sample_00.mp4")
    assert frames.shape[0] == 48
    assert iio.imread(final / "grid.mp4").shape[0] == 48


def test_generate_reuses_the_run_config(trained_run, tmp_path):
    out = tmp_path / "gen"
    cfg = compose_config(
        "generate",
        out,
        [
            f"run_dir={trained_run['run_dir']}",
            "num_samples=3",
            "sampler=ddim",
            "sampler.num_steps=5",
            "chain_windows=0",
        ],
    )
    generate.run(cfg)
    samples = np.load(out / "samples.npy")
    assert samples.shape == (3, 48, 20, 2)
    assert iio.imread(out / "sample_02.mp4").shape[0] == 48
    assert json.loads((out / "generation.json").read_text())["sampler"]["num_steps"] == 5
    with pytest.raises(UserError, match="never overwritten"):
        generate.run(cfg)


def test_ddim_generation_is_reproducible_for_a_seed(trained_run, tmp_path):
    def sample(name, seed):
        cfg = compose_config(
            "generate",
            tmp_path / name,
            [
                f"run_dir={trained_run['run_dir']}",
                "num_samples=2",
                "sampler=ddim",
                "sampler.num_steps=5",
                "chain_windows=0",
                "render=false",
                f"seed={seed}",
            ],
        )
        generate.run(cfg)
        return np.load(tmp_path / name / "samples.npy")

    assert np.array_equal(sample("a", 1), sample("b", 1))
    assert not np.array_equal(sample("a2", 1), sample("c", 2))


@pytest.mark.parametrize("mode", ["joint", "sequential"])
def test_the_long_dance_continues_the_first_sample_either_way(trained_run, tmp_path, mode):
    """chain_sampling=joint (the default) samples the long dance's windows together, sequential one after another;
    both start with the first sample (sequential: up to its crossfade), have the chained length, and record how
    they were made."""
    options = [f"run_dir={trained_run['run_dir']}", "num_samples=1", "sampler=ddim", "sampler.num_steps=4"]
    out = tmp_path / mode
    generate.run(
        compose_config("generate", out, [*options, "chain_windows=3", "render=false", f"chain_sampling={mode}"])
    )
    long, first = np.load(out / "long_dance.npy"), np.load(out / "samples.npy")[0]
    assert long.shape == (48 + 2 * 32, 20, 2) and np.isfinite(long).all()
    kept = 48 if mode == "joint" else 48 - 8  # sequential: the last chain_blend frames crossfade into window 2
    np.testing.assert_allclose(long[:kept], first[:kept], atol=1e-5)
    chain = json.loads((out / "generation.json").read_text())["chain"]
    assert chain["sampling"] == mode and chain["blend"] == (8 if mode == "sequential" else None)
    with pytest.raises(UserError, match="chain_sampling"):
        generate.run(compose_config("generate", tmp_path / "bad", [*options, "chain_sampling=parallel"]))
    with pytest.raises(UserError, match="chain_overlap=48"):  # refused before anything is sampled or written
        generate.run(compose_config("generate", tmp_path / "long", [*options, "chain_windows=3", "chain_overlap=48"]))
    assert not (tmp_path / "long" / "samples.npy").exists()


def test_a_run_directory_is_never_reused(trained_run):
    cfg = compose_config("train", trained_run["run_dir"], ["+trainer.fast_dev_run=true"])
    with pytest.raises(UserError, match="another run"):
        train.run(cfg)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_command_line_train_then_generate(tmp_path):
    run_dir = tmp_path / "cli_run"
    result = _cli(
        "motiondiff.train",
        "experiment=dance2d",
        "+trainer.fast_dev_run=true",
        "generate_after_training.num_samples=0",
        *TINY_NETWORK,
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    result = _cli(
        "motiondiff.generate",
        f"run_dir={run_dir}",
        "num_samples=2",
        "sampler=ddim",
        "sampler.num_steps=3",
        "chain_windows=0",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    generated = list((run_dir / "generations").glob("*/samples.npy"))
    assert len(generated) == 1 and np.load(generated[0]).shape == (2, 48, 20, 2)


BAD_INPUT = [
    (["motiondiff.train", "dataset.source=/no/such/file.npy"], "no such file: dataset.source=/no/such/file.npy"),
    (["motiondiff.train", "dataset.window=1000"], "too short for windows of 1000 frames"),
    (["motiondiff.generate", "run_dir=/no/such/run"], "no such run: run_dir=/no/such/run"),
    (["motiondiff.generate"], "say which run to use"),
    (["motiondiff.generate", "ckpt_path=/no/such/last.ckpt"], "no such checkpoint: ckpt_path=/no/such/last.ckpt"),
    (["motiondiff.train", "ckpt_path=/no/such/last.ckpt"], "no such checkpoint: ckpt_path=/no/such/last.ckpt"),
]
ANSWER_EACH = """
import json, sys, traceback
from motiondiff.cli import generate, train
mains = {"motiondiff.train": train.main, "motiondiff.generate": generate.main}
for command, *argv in json.loads(sys.argv[1]):
    sys.argv = [command, *argv]
    try:
        mains[command]()
        code = 0
    except SystemExit as exit:
        code = exit.code
    except Exception:
        traceback.print_exc()
        code = "raised"
    print(f"<<exit {json.dumps(code)}>>", file=sys.stderr, flush=True)
"""


@pytest.fixture(scope="module")
def bad_input_answers(tmp_path_factory) -> list:
    """(exit code, stderr) of each command line in BAD_INPUT, all answered by the commands' main functions in one
    process, all before Lightning is imported (one found in the run, test_first_hour's network.base_channels=30,
    takes 10-15 s). A case that raises instead of exiting is answered "raised" with its traceback, and the cases
    after it still run."""
    out = tmp_path_factory.mktemp("bad_input")
    cases = [[*args, f"hydra.run.dir={out / str(i)}"] for i, (args, _) in enumerate(BAD_INPUT)]
    done = subprocess.run(
        [sys.executable, "-c", ANSWER_EACH, json.dumps(cases)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    parts = re.split(r"<<exit (.*?)>>\n", done.stderr)  # stderr 0, code 0, stderr 1, code 1, ..., the rest
    assert done.returncode == 0 and len(parts) == 2 * len(cases) + 1, done.stderr[-2000:]
    return [(json.loads(parts[2 * i + 1]), parts[2 * i]) for i in range(len(cases))]


@pytest.mark.parametrize("case", range(len(BAD_INPUT)), ids=[" ".join(args) for args, _ in BAD_INPUT])
def test_bad_input_gives_one_clear_line(bad_input_answers, case):
    code, stderr = bad_input_answers[case]
    assert code == 2, stderr[-2000:]
    assert BAD_INPUT[case][1] in stderr
    assert "Traceback" not in stderr


def test_a_mistake_and_help_are_answered_before_lightning_is_imported(tmp_path, trained_run):
    """The command line is checked, and --help printed, before the command's run function is imported (cli.app):
    about 2 s instead of 7 on a 2-core machine."""
    script = """
import sys
from motiondiff.cli import generate, train
mistakes = (["network=nosuchnet"], ["--help"], ["ckpt_path=/no/such/last.ckpt"], ["dataset.source=/no/such.npy"],
            ["dataset.window=1000"])
sampling = (["run_dir=nope"], [f"run_dir={sys.argv[1]}", "guidance_weight=3"])  # the run's config says: no captions
for main, argv in [(train.main, argv) for argv in mistakes] + [(generate.main, argv) for argv in sampling]:
    sys.argv = ["motiondiff", *argv]
    try:
        main()
    except SystemExit as exit:
        assert exit.code == 2, exit.code
print([name for name in ("lightning", "torchmetrics", "motiondiff.runs.train", "motiondiff.generation.run")
       if name in sys.modules])
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(trained_run["run_dir"])], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "no such run: run_dir=nope" in done.stderr and "no such checkpoint" in done.stderr
    assert "nosuchnet" in done.stderr and "no such file: dataset.source" in done.stderr
    assert "too short for windows of 1000 frames" in done.stderr and "guidance_weight=3 needs a text" in done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_generate_from_a_checkpoint_path(trained_run, tmp_path):
    ckpt = trained_run["run_dir"] / "checkpoints" / "last.ckpt"
    cfg = compose_config(
        "generate",
        tmp_path / "g",
        [f"ckpt_path={ckpt}", "num_samples=1", "sampler=ddim", "sampler.num_steps=3", "render=false"],
    )
    generate.run(cfg)
    assert np.load(tmp_path / "g" / "samples.npy").shape == (1, 48, 20, 2)


def test_multirun_gives_each_job_its_own_directory(tmp_path):
    result = _cli(
        "motiondiff.train",
        "-m",
        "experiment=dance2d",
        "+trainer.fast_dev_run=true",
        "generate_after_training.num_samples=0",
        "network.base_channels=8,16",
        "network.channel_mults=[1,2]",
        "network.num_res_blocks=1",
        f"hydra.sweep.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    configs = sorted(tmp_path.glob("*/config.yaml"))
    assert len(configs) == 2
    widths = sorted(int(c.read_text().split("base_channels: ")[1].split()[0]) for c in configs)
    assert widths == [8, 16]


def test_render_data_writes_videos_of_the_training_data(tmp_path):
    from motiondiff.render import data_preview as render_data

    out = render_data.run(compose_config("render_data", tmp_path, ["experiment=dance2d"]))
    assert np.load(out / "sequence.npy").shape == (900, 20, 2)
    assert iio.imread(out / "grid.mp4").shape[0] == 48
    assert iio.imread(out / "sequence.mp4").shape[0] == 900


def test_a_real_bvh_clip_trains_and_generates(tmp_path):
    from conftest import shared_path

    clip = shared_path("bvh", "Gangnam-Style.bvh")
    cfg = compose_config(
        "train",
        tmp_path,
        [
            "experiment=dance2d",
            f"dataset.source={clip}",
            "+trainer.fast_dev_run=true",
            "generate_after_training.num_samples=2",
            "generate_after_training.chain_windows=0",
            "sampler=ddim",
            "sampler.num_steps=3",
            *TINY_NETWORK,
        ],
    )
    result = train.run(cfg)
    samples = np.load(result["run_dir"] / "generations" / "final" / "samples.npy")
    assert samples.shape == (2, 48, 20, 2)
    assert iio.imread(result["run_dir"] / "generations" / "final" / "sample_01.mp4").shape[0] == 48


def test_evaluate_writes_the_single_motion_measures(trained_run, tmp_path):
    from motiondiff.evaluation import run as evaluate
    from motiondiff.metrics.single_motion import REPORT_KEYS

    cfg = compose_config(
        "evaluate",
        tmp_path / "e",
        [
            f"run_dir={trained_run['run_dir']}",
            "clips=2",
            "duration_factor=0.1",
            "replications=2",
            "sampler=ddim",
            "sampler.num_steps=3",
        ],
    )
    record = evaluate.run(cfg)
    saved = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert set(saved["results"]) == {"validation", "generated"}
    undefined = {"foot_skating_ratio", "inter_diversity"}  # 2D has no foot contacts; the validation row is one clip
    for row, values in saved["results"].items():
        assert list(values) == list(REPORT_KEYS)
        for name, entry in values.items():
            defined = name != "foot_skating_ratio" and (row == "generated" or name not in undefined)
            assert len(entry["values"]) == 2 and np.isfinite(entry["mean"]) == defined, (row, name)
    assert json.dumps(saved["results"]) == json.dumps(record["summary"])  # as strings: NaN != NaN
    # Held-out windows of the dance are the copy yardstick: ratio 1, never copies.
    validation = saved["results"]["validation"]
    assert validation["copy_ratio"]["mean"] == 1 and validation["copies_training"]["mean"] == 0
    assert saved["settings"]["generated_frames"] == round(0.1 * saved["settings"]["training_frames"])
    assert saved["settings"]["sampler"]["num_steps"] == 3 and saved["settings"]["replications"] == 2
    for name in ("metrics.csv", "metrics.md"):
        assert (tmp_path / "e" / name).read_text().count("generated") >= 1
    with pytest.raises(UserError, match="replications"):
        evaluate.run(
            compose_config("evaluate", tmp_path / "f", [f"run_dir={trained_run['run_dir']}", "replications=0"])
        )


def test_generate_and_evaluate_follow_a_collage_of_the_dance(trained_run, tmp_path):
    """collage_strength shapes the long dance (generate) and every evaluation clip (evaluate); both record it."""
    from motiondiff.evaluation import run as evaluate

    run = f"run_dir={trained_run['run_dir']}"
    out = tmp_path / "gen"
    options = ["sampler=ddim", "sampler.num_steps=10", "collage_strength=0.3"]
    generate.run(compose_config("generate", out, [run, "num_samples=1", "chain_windows=3", *options]))
    record = json.loads((out / "generation.json").read_text())
    assert record["collage"] == {"strength": 0.3, "piece": 48, "start": 333}  # DDIM-10's step nearest 0.3 x 999
    long = np.load(out / "long_dance.npy")
    assert long.shape == (48 + 2 * 32, 20, 2) and np.isfinite(long).all()
    with pytest.raises(UserError, match="chain_windows"):
        generate.run(compose_config("generate", tmp_path / "g2", [run, "chain_windows=0", *options]))
    evaluate.run(compose_config("evaluate", tmp_path / "e", [run, "clips=2", "replications=1", *options]))
    saved = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert saved["settings"]["collage"] == record["collage"]
    assert np.isfinite(saved["results"]["generated"]["coverage"]["mean"])
