"""Command lines that Hydra and the commands run pass preflight (cli/preflight.py) as they are, or with run_dir=last
written out: the corners of Hydra's override grammar and of the launchers that an audit of preflight found refused
or mangled (2026-12-07). The mistakes it refuses are in test_first_hour.py."""

import re
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import DictConfig, OmegaConf, open_dict

from conftest import compose_config, fake_run
from motiondiff.cli.app import CONFIG_DIR, expand_shorthands
from motiondiff.cli.config_source import ConfigSource, source_of
from motiondiff.cli.preflight import parse_overrides, preflight, quote
from motiondiff.core.errors import UserError

RUN_NAME = "2026-01-01_00-00-00-000000"


@pytest.fixture
def run(tmp_path, monkeypatch):
    """A finished run under ./outputs (the default paths.output_root), in a fresh current directory."""
    monkeypatch.chdir(tmp_path)
    return fake_run(tmp_path / "outputs", RUN_NAME, checkpoint=True)


def test_a_slurm_sweep_for_gpus_is_launched_from_a_machine_without_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a login node
    argv = ["-m", "hydra/launcher=slurm", "trainer=gpu", "seed=0,1"]
    assert preflight(CONFIG_DIR, "train", argv) == argv  # the jobs get their GPUs on the nodes
    with pytest.raises(UserError, match="needs a CUDA GPU"):
        preflight(CONFIG_DIR, "train", ["trainer=gpu"])  # it would train here


def test_an_evaluator_is_a_run_or_one_of_its_checkpoints(run):
    checkpoint = run / "checkpoints" / "last.ckpt"
    for evaluator in (run, checkpoint):
        preflight(CONFIG_DIR, "evaluate", expand_shorthands([f"run_dir={run}", f"evaluator={evaluator}"]))
        preflight(CONFIG_DIR, "train", [f"callbacks.generation_metrics.evaluator={evaluator}"])
    with pytest.raises(UserError, match=re.escape(f"no such checkpoint: evaluator={run}/checkpoints/nope.ckpt")):
        preflight(
            CONFIG_DIR, "evaluate", expand_shorthands([f"run_dir={run}", f"evaluator={run}/checkpoints/nope.ckpt"])
        )
    with pytest.raises(UserError, match="evaluator=last: name the evaluator's run directory"):
        preflight(CONFIG_DIR, "evaluate", expand_shorthands([f"run_dir={run}", "evaluator=last"]))


def test_forced_interpolated_and_packaged_keys_are_settings(run):
    preflight(CONFIG_DIR, "generate", [f"run_dir={run}", "++seed=3"])  # ++ on a key the config has: an override
    with pytest.raises(UserError, match="sed is not a setting of the generate command"):
        preflight(CONFIG_DIR, "generate", [f"run_dir={run}", "++sed=3"])  # ++ on a typo: still a typo
    preflight(CONFIG_DIR, "generate", [f"+mine={run}", "run_dir=${mine}"])  # read through an interpolation
    with pytest.raises(UserError, match="output_dir is not a setting of the train command"):
        preflight(CONFIG_DIR, "train", ["+output_dir=/x"])  # ${paths.output_dir} reads paths.output_dir, not this
    node = "++callbacks.mine={_target_:lightning.pytorch.callbacks.ModelSummary}"
    preflight(CONFIG_DIR, "train", [node, "+callbacks.mine.max_depth=2"])  # a key added inside a ++ node
    preflight(CONFIG_DIR, "app", [f"run_dir={run}", "+sampler@samplers.karras=karras"])  # a group under a package
    with pytest.raises(UserError, match=re.escape("To repeat a run, sweep seed=0,1,2")):
        preflight(CONFIG_DIR, "train", ["-m", "+rep=1,2,3"])  # nothing reads rep: three identical runs
    with pytest.raises(UserError, match=r"did you mean seed\?$"):
        preflight(CONFIG_DIR, "train", ["-m", "+sede=1,2"])  # a typo: the suggestion alone


def test_sweeps_reach_the_first_job_as_hydra_writes_them(tmp_path, run):
    spaced = tmp_path / "t2m release"
    spaced.mkdir()
    # A quoted value with a space: its job reads the folder, not a name with quotes around it.
    evaluate = [f"run_dir={run}", "evaluator=t2m", f"evaluator.mean={run / 'config.yaml'}"]
    evaluate += [f"evaluator.std={run / 'config.yaml'}", f"evaluator.glove={tmp_path}"]
    preflight(CONFIG_DIR, "evaluate", ["-m", *evaluate, f"evaluator.root='{spaced}',{tmp_path}"])
    preflight(CONFIG_DIR, "train", ["-m", "logger=[csv],[csv,tensorboard]"])  # lists of a multi-select group
    preflight(CONFIG_DIR, "train", ["-m", "network='adaln',incontext"])  # a quoted option
    with pytest.raises(UserError, match="logger has no option 'tensorbord'"):
        preflight(CONFIG_DIR, "train", ["-m", "logger=[csv],[csv,tensorbord]"])
    preflight(CONFIG_DIR, "train", ["-m", "network=glob(ada*)"])  # a glob over a group's options
    with pytest.raises(UserError, match="the glob matches no option"):
        preflight(CONFIG_DIR, "train", ["-m", "network=glob(nothing*)"])
    with pytest.raises(UserError, match="cannot sweep optimizer.lr=interval"):
        preflight(CONFIG_DIR, "train", ["-m", "optimizer.lr=interval(0.1,1.0)"])  # Hydra's basic sweeper cannot


def test_the_last_of_a_key_s_overrides_wins_and_inspecting_flags_pass(run):
    checkpoint = run / "checkpoints" / "last.ckpt"
    preflight(CONFIG_DIR, "generate", ["ckpt_path=null", f"ckpt_path={checkpoint}"])
    with pytest.raises(UserError, match="no such checkpoint"):
        preflight(CONFIG_DIR, "generate", [f"ckpt_path={checkpoint}", "ckpt_path=/no/such.ckpt"])
    argv = ["--experimental-rerun", "outputs/x/.hydra/config.pickle"]
    assert preflight(CONFIG_DIR, "train", argv) == argv
    preflight(CONFIG_DIR, "train", ["~trainer.accelerator"])  # Lightning's default accelerator
    with pytest.raises(UserError, match="say which run to use"):
        preflight(CONFIG_DIR, "generate", [f"run_dir={run}", "~run_dir"])  # deleted last: no run


def test_run_dir_last_is_written_out_in_every_form(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    newest = fake_run(tmp_path / "outputs" / "josé", RUN_NAME, checkpoint=True)  # a path with a non-ASCII letter
    root = f"paths.output_root={quote(str(tmp_path / 'outputs' / 'josé'))}"
    assert quote(str(newest)) == f"'{newest}'"  # Hydra's grammar takes only ASCII unquoted
    for given in ("run_dir=last", "run_dir='last'", "++run_dir=last"):
        argv = preflight(CONFIG_DIR, "generate", [given, root])
        assert argv[0] == f"{given.partition('=')[0]}='{newest}'", argv
        assert str(parse_overrides(argv)[0].value()) == str(newest)  # it parses back to the run
    argv = preflight(CONFIG_DIR, "generate", ["-m", f"run_dir=last,{quote(str(newest))}", root])
    assert [getattr(v, "text", v) for v in parse_overrides(argv[1:2])[0].sweep_iterator()] == [str(newest)] * 2
    # shuffle(): each of Hydra's iterators shuffles on its own, so the values are read once. (An ASCII path: Hydra
    # writes a shuffled value unquoted, which its grammar cannot read back when it holds a non-ASCII letter.)
    plain = fake_run(tmp_path / "outputs" / "plain", RUN_NAME, checkpoint=True)
    root = f"paths.output_root={tmp_path / 'outputs' / 'plain'}"
    for _ in range(4):
        argv = preflight(CONFIG_DIR, "generate", ["-m", f"run_dir=shuffle(last,{plain},last)", root])
        assert argv[1] == f"run_dir={plain},{plain},{plain}"


def test_a_sweep_of_evaluator_options_is_not_a_run_directory():
    assert expand_shorthands(["-m", "evaluator=t2m,tmr"]) == ["-m", "evaluator=t2m,tmr"]
    assert expand_shorthands(["-m", "evaluator=/a,/b"]) == ["-m", "evaluator=trained", "evaluator.run=/a,/b"]
    assert expand_shorthands(["evaluator=/a"]) == ["evaluator=trained", "evaluator.run=/a"]
    for run in ("${oc.env:EVALUATOR,/runs/x}", "'/runs/a,b'"):  # a comma, but one run
        assert expand_shorthands([f"evaluator={run}"]) == ["evaluator=trained", f"evaluator.run={run}"]


# ---- the user's own config folder (-cd), another config (-cn) and another primary folder (-cp) ------------------


@pytest.fixture
def own_configs(tmp_path):
    """A folder of the user's own configs: an experiment (experiment=mine), an evaluator option, a train config."""
    (tmp_path / "mine" / "experiment").mkdir(parents=True)
    (tmp_path / "mine" / "evaluator").mkdir()
    (tmp_path / "mine" / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - dance2d\ntrainer:\n  max_steps: 4\n"
    )
    (tmp_path / "mine" / "evaluator" / "lab_tmr.yaml").write_text((CONFIG_DIR / "evaluator" / "tmr.yaml").read_text())
    (tmp_path / "mine" / "short.yaml").write_text(
        "defaults:\n  - train\n  - _self_\ntrainer:\n  max_steps: 2\nnote: plain  # a key of this config\n"
    )
    return tmp_path / "mine"


def test_options_of_the_user_s_config_folder_are_checked_with_ours(own_configs, monkeypatch):
    monkeypatch.chdir(own_configs.parent)
    for argv in (
        ["-cd", str(own_configs), "experiment=mine"],
        ["--config-dir=mine", "experiment=mine"],  # relative to the current directory, as Hydra reads it
        ["-cd", "mine", "-m", "experiment=mine,dance2d"],
        ["-cd", "mine", "-m", "experiment=glob(mi*)"],
        ["-cd", "mine", "-cn", "short", "experiment=mine"],  # the user's train config, in their folder
    ):
        assert preflight(CONFIG_DIR, "train", argv) == argv
    for argv, message in (
        (["-cd", "mine", "experiment=mien"], "did you mean experiment=mine?"),
        (["-cd", "mine", "-m", "experiment=mine,dnce2d"], "did you mean experiment=dance2d?"),
        (["-cd", "mine", "experiment=mine", "trainer.max_step=3"], "did you mean trainer.max_steps?"),
        (["-cd", "mine", "-cn", "short", "+trainer.max_step=3"], "trainer.max_step is not an option of Trainer"),
        (["-cd", "nowhere", "experiment=mine"], "no such config folder: --config-dir nowhere"),
        (["-cn", "short"], "no config named 'short'"),  # not in our folder without -cd
        (["experiment=mine"], "experiment has no option 'mine'"),
    ):
        with pytest.raises(UserError, match=re.escape(message)):
            preflight(CONFIG_DIR, "train", argv)
    # an option of the user's evaluator group is an option, not a run directory
    argv = ["-cd", "mine", "evaluator=lab_tmr", "evaluator=/runs/x"]
    source = source_of(ConfigSource(CONFIG_DIR, "evaluate"), argv[:2])
    assert expand_shorthands(argv, source)[2:] == ["evaluator=lab_tmr", "evaluator=trained", "evaluator.run=/runs/x"]
    # a --config-path Hydra reads against its own file (relative, or pkg://), and unknown flags: left to Hydra
    for argv in (["-cp", "configs", "experiment=nope"], ["-cp", "pkg://x.y", "a=b"], ["--unknown", "experiment=x"]):
        assert preflight(CONFIG_DIR, "train", argv) == argv


def test_resume_composes_from_the_folders_the_run_was_composed_from(own_configs, monkeypatch):
    """A run trained with -cd (and -cn) resumes without the flags: its .hydra/hydra.yaml says where it came from
    (runtime.config_sources, job.config_name), as Hydra wrote it for the process the end-to-end test resumes."""
    monkeypatch.chdir(own_configs.parent)
    run = fake_run(own_configs.parent / "outputs", RUN_NAME, checkpoint=True)
    (run / ".hydra").mkdir()
    (run / ".hydra" / "overrides.yaml").write_text("- experiment=mine\n")
    sources = [
        {"path": "hydra.conf", "schema": "pkg", "provider": "hydra"},
        {"path": "/elsewhere/motiondiff/configs", "schema": "file", "provider": "main"},  # another clone's: not read
        {"path": str(own_configs), "schema": "file", "provider": "command-line"},
        {"path": "", "schema": "structured", "provider": "schema"},
    ]
    hydra = {"hydra": {"runtime": {"config_sources": sources}, "job": {"config_name": "short"}}}
    (run / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    argv = preflight(CONFIG_DIR, "train", [f"resume={run}", "trainer.max_steps=8"])
    assert argv[:4] == ["--config-name", "short", "--config-dir", str(own_configs)], argv
    assert "experiment=mine" in argv and f"hydra.run.dir={run.resolve()}" in argv
    for extra in ("note=b", "experiment=mine"):  # checked against the run's own folders and config
        assert f"{extra}" in preflight(CONFIG_DIR, "train", [f"resume={run}", extra])
    assert preflight(CONFIG_DIR, "train", ["-cn", "train", "-cd", "mine", f"resume={run}"])[:4] == [
        "-cn",
        "train",
        "-cd",
        "mine",
    ]  # flags given on the command line win
    (run / ".hydra" / "resumed-2026-01-02_00-00-00").mkdir()  # the newest record says where the run went on from
    hydra["hydra"]["job"]["config_name"] = "train"
    (run / ".hydra" / "resumed-2026-01-02_00-00-00" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    assert preflight(CONFIG_DIR, "train", [f"resume={run}"])[:2] == ["--config-dir", str(own_configs)]
    hydra["hydra"]["job"]["config_name"] = "short"
    (run / ".hydra" / "resumed-2026-01-02_00-00-00" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    argv = preflight(CONFIG_DIR, "train", ["-cn", "short", f"resume={run}"])  # short is in the run's own -cd only
    assert argv[:4] == ["-cn", "short", "--config-dir", str(own_configs)], argv
    # Options of the run's folders on a resume=last: which run is meant depends on the overrides (the output root),
    # so they must compose with the command line's folders; the run's -cd is given then.
    newer = fake_run(own_configs.parent / "decoy", "2026-02-01_00-00-00-000000", checkpoint=True)
    (newer / ".hydra").mkdir()
    (newer / ".hydra" / "overrides.yaml").write_text("- experiment=mine\n")
    root = f"paths.output_root={run.parents[1]}"
    with pytest.raises(UserError, match="note is not a setting"):
        preflight(CONFIG_DIR, "train", ["resume=last", root, "note=b"])
    assert f"hydra.run.dir={run.resolve()}" in preflight(CONFIG_DIR, "train", ["-cd", "mine", "resume=last", root])
    own_configs.rename(own_configs.parent / "moved")
    with pytest.raises(UserError, match="was composed with --config-dir .*, which is gone; give the folder again"):
        preflight(CONFIG_DIR, "train", [f"resume={run}"])
    argv = preflight(CONFIG_DIR, "train", ["-cd", "moved", f"resume={run}"])  # the folder again: its -cn kept
    assert argv[:4] == ["-cd", "moved", "--config-name", "short"], argv


def saved_run(root: Path, overrides: list, saved: DictConfig) -> Path:
    """A finished run whose config.yaml is `saved` and whose .hydra records `overrides`."""
    run = fake_run(root, RUN_NAME, checkpoint=True)
    (run / "config.yaml").write_text(OmegaConf.to_yaml(saved, resolve=True))
    (run / ".hydra").mkdir()
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    return run


def test_runs_saved_before_options_existed_resume(tmp_path, monkeypatch):
    """A dataset=lab run and a distilled run of a text teacher, saved before the item rules and the lab lengths:
    resume gives the earlier values only to keys the composed config has (a distilled run's dataset and network
    are its teacher's, copied in when it is built)."""
    monkeypatch.chdir(tmp_path)
    lab_overrides = ["experiment=text2motion", "dataset=lab", f"dataset.root={tmp_path}"]
    lab = compose_config("train", tmp_path / "a", lab_overrides)
    with open_dict(lab):
        for key in ("max_source_frames", "subclips"):
            del lab.dataset[key]
        lab.dataset.max_frames, lab.dataset.min_frames, lab.network.max_frames = 196, 40, 196
    run = saved_run(tmp_path / "lab", lab_overrides, lab)
    argv = preflight(CONFIG_DIR, "train", [f"resume={run}", f"paths.output_root={tmp_path / 'lab'}"])
    assert {"dataset.max_frames=196", "dataset.min_frames=40", "network.max_frames=196"} <= set(argv), argv
    teacher = fake_run(tmp_path / "teacher", RUN_NAME, checkpoint=True)
    distill_overrides = ["experiment=distill", f"teacher={teacher}"]
    distilled = compose_config("train", tmp_path / "b", distill_overrides)
    text = compose_config("train", tmp_path / "c", ["experiment=text2motion"])
    with open_dict(distilled):
        distilled.dataset, distilled.network = text.dataset, text.network  # the teacher's groups, as saved
    run = saved_run(tmp_path / "distilled", distill_overrides, distilled)
    argv = preflight(CONFIG_DIR, "train", [f"resume={run}", f"paths.output_root={tmp_path / 'distilled'}"])
    assert not [line for line in argv if line.startswith(("dataset.", "network."))], argv
