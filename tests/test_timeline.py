"""Timelines of prompts: parsing, refused input, stitching with tiny fast_dev_run models, the edit=timeline mode."""

import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from conftest import compose_config
from motiondiff.core.errors import UserError
from motiondiff.data.kinematics.quaternion import qrot
from motiondiff.data.procedural.text_motion import dataset_name, write_procedural_dataset
from motiondiff.diffusion.samplers import DDIMSampler
from motiondiff.editing.run import run as run_edit
from motiondiff.editing.timeline import Segment, generate_timeline, parse_timeline, plan_transitions
from motiondiff.render.stick3d import StickFigureView
from motiondiff.report.folders import player_groups
from motiondiff.runs import train
from motiondiff.text.encoders import MiniLMEncoder

NUM_MOTIONS, MAX_FRAMES = 40, 60
WALK, JUMP = "a person walks forward", "a person jumps twice"


def test_ranges_and_durations_become_back_to_back_frames(tmp_path):
    text = f"0-4s: {WALK}\n4s - 5.5s:{JUMP}\n\n# a comment\n2.5s: a person waves with the right hand\n"
    assert parse_timeline(text, fps=20) == [
        Segment(0, 80, WALK),
        Segment(80, 110, JUMP),
        Segment(110, 160, "a person waves with the right hand"),
    ]
    path = tmp_path / "timeline.txt"
    path.write_text(text)
    assert parse_timeline(path, fps=12.5)[-1] == Segment(69, 100, "a person waves with the right hand")
    assert parse_timeline(text, fps=20, min_frames=30)[1].frames == 30


@pytest.mark.parametrize(
    "text, message",
    [
        ("walk forward for four seconds", "not a timeline line"),
        (f"0-4s: {WALK}\n0-4: {JUMP}", "not a timeline line"),
        (f"0-4s: {WALK}\n5-7s: {JUMP}", r"2: '5-7s: .*' starts at 5s but the previous segment ends at 4s \(a gap\)"),
        (f"0-4s: {WALK}\n3-7s: {JUMP}", r"\(an overlap\); start each segment where the previous one ends"),
        (f"1-4s: {WALK}", "a gap"),
        ("0-4s:  ", "has no prompt after ':'"),
        (f"3-2s: {WALK}", "ends at 2s, not after its start 3s"),
        (
            f"0-4s: {WALK}\n1s: {JUMP}",
            r"'a person jumps twice' lasts 20 frames \(1s at 20 fps\), below the model's minimum",
        ),
        ("# nothing but a comment:", "holds no segments"),
    ],
)
def test_malformed_timelines_are_one_sentence_errors(text, message):
    with pytest.raises(UserError, match=message):
        parse_timeline(text, fps=20, min_frames=40)


def test_missing_and_empty_files_are_refused(tmp_path):
    with pytest.raises(UserError, match="timeline file .edit.file. not found"):
        parse_timeline(tmp_path / "absent.txt", fps=20)
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(UserError, match="empty.txt holds no segments"):
        parse_timeline(tmp_path / "empty.txt", fps=20)


def test_transitions_centre_on_boundaries_and_keep_enough_frames_for_the_model():
    segments = [Segment(0, 80, WALK), Segment(80, 140, JUMP), Segment(140, 150, "a person claps")]
    first, second = plan_transitions(segments, 10, 10, min_frames=20, max_frames=120)
    assert (first.kept_start, first.start, first.end, first.kept_end) == (65, 75, 85, 95)
    assert (second.before, second.after, second.kept_end) == (JUMP, "a person claps", 150)  # the motion's end
    widened = plan_transitions(segments, 10, 10, min_frames=50, max_frames=120)[0]
    assert (widened.kept_start, widened.kept_end) == (55, 105)  # 20 + 10 + 20 frames: the model's minimum
    assert plan_transitions(segments, 0, 10, 40, 120) == []
    with pytest.raises(UserError, match="shorter than edit.transition=20"):
        plan_transitions(segments, 20, 10, 40, 120)
    with pytest.raises(UserError, match="exceeds the model's 120 frames"):
        plan_transitions(segments[:2], 60, 40, 40, 120)


@pytest.mark.parametrize("middle", [29, 30, 40])
def test_a_segment_between_two_others_keeps_its_transitions_apart(middle):
    """A middle segment of transition + context frames or more: one transition's kept context ends where the next
    transition begins at the latest; shorter, the second would regenerate the first one's kept frames."""
    segments = [Segment(0, 40, WALK), Segment(40, 40 + middle, JUMP), Segment(40 + middle, 120, WALK)]
    if middle < 30:
        with pytest.raises(UserError, match=f"'{JUMP}' is {middle} frames, fewer than edit.transition=20 plus the 10"):
            plan_transitions(segments, 20, 10, min_frames=40, max_frames=120)
        return
    first, second = plan_transitions(segments, 20, 10, min_frames=40, max_frames=120)
    assert first.kept_end <= second.start and second.kept_start >= first.end


def test_each_frame_shows_its_own_caption():
    joints = np.zeros((3, 2, 3))
    joints[:, 1, 1] = 1.0  # a vertical stick
    view = StickFigureView(joints, (-1, 0), captions=["walk", "walk", "a person jumps twice"], size=(160, 160))
    tops = [view.frame(i)[: view.top].astype(int) for i in range(3)]
    assert view.top > 0 and (tops[0] == tops[1]).all() and (tops[0] != tops[2]).any()
    with pytest.raises(UserError, match="captions has 2 entries for 3 frames"):
        StickFigureView(joints, (-1, 0), captions=["walk", "jump"])


@pytest.fixture(scope="module")
def text_run(tmp_path_factory, procedural_data_dir) -> dict:
    """A fast_dev_run text model making at most MAX_FRAMES frames (its minimum: 40)."""
    data_dir = procedural_data_dir
    write_procedural_dataset(data_dir / dataset_name(NUM_MOTIONS, 0), num_motions=NUM_MOTIONS, seed=0)
    overrides = [
        "experiment=text2motion",
        f"paths.data_dir={data_dir}",
        f"dataset.procedural.num_motions={NUM_MOTIONS}",
        f"dataset.max_frames={MAX_FRAMES}",
        f"network.max_frames={MAX_FRAMES}",
        "network.latent_dim=32",
        "network.num_layers=1",
        "network.num_heads=4",
        "dataset.batch_size=8",
        "+trainer.fast_dev_run=true",
        "generate_after_training.num_samples=0",
    ]
    return train.run(compose_config("train", tmp_path_factory.mktemp("run"), overrides))


def test_segments_join_with_the_root_continuing_and_transitions_change_only_their_frames(text_run):
    module = text_run["module"].eval()
    segments = parse_timeline(f"0-2.5s: {WALK}\n6.5s: {JUMP}", module.data.fps, module.data.min_frames)  # 50 + 130
    sampler, encoder = DDIMSampler(num_steps=2, progress=False), MiniLMEncoder()

    def timeline(transition: int) -> tuple:
        generator = torch.Generator().manual_seed(0)
        return generate_timeline(module, sampler, encoder, segments, transition, 2.0, generator, context_frames=10)

    plain, prompts = timeline(0)  # the jump is longer than the model's 60 frames: windows continue it
    assert plain.shape == (180, module.data.features) and prompts == [WALK] * 50 + [JUMP] * 130
    joints = module.to_keypoints(plain[None])[0]  # (180, 22, 3)
    alone = module.to_keypoints(plain[None, 50:])[0]  # the jump decoded on its own: from the origin, facing +z
    # Stitched in features, the jump is the same motion turned and moved to where the walk ends.
    raw = module.normalizer.denormalize(plain[None].float())[0]  # (180, 263)
    half_angle = raw[:50, 0].sum()  # the yaw the walk turned by
    turn = torch.stack([half_angle.cos(), torch.zeros(()), -half_angle.sin(), torch.zeros(())]).numpy()
    placed = qrot(np.broadcast_to(turn, alone.shape[:-1] + (4,)), alone.astype(np.float64))  # (130, 22, 3)
    offset = joints[50, 0] - placed[0, 0]  # (3,): where the walk left the root, one step on
    np.testing.assert_allclose(placed + offset, joints[50:], atol=1e-3)
    joined, _ = timeline(20)
    regenerated = np.zeros(180, dtype=bool)
    regenerated[40:60] = True
    assert torch.equal(joined[~regenerated], plain[~regenerated]), "frames outside the transition are the segments'"
    assert (joined[regenerated] - plain[regenerated]).abs().amax(-1).min() > 0


def test_edit_timeline_writes_joints_a_captioned_video_and_the_timeline(text_run, tmp_path):
    timeline = tmp_path / "timeline.txt"
    timeline.write_text(f"0-2s: {WALK}\n2-5s: {JUMP}\n")
    out = tmp_path / "edit"
    overrides = [f"run_dir={text_run['run_dir']}", "edit=timeline", f"edit.file={timeline}", "edit.transition=10"]
    run_edit(compose_config("edit", out, [*overrides, "num_samples=1", "sampler=ddim", "sampler.num_steps=2"]))
    joints = np.load(out / "sample_00.npy")
    assert joints.shape == (100, 22, 3) and np.isfinite(joints).all()
    frames = iio.imread(out / "sample_00.mp4")
    assert frames.shape[0] == 100
    band = frames[:, :20].astype(int)  # the caption band
    assert np.abs(band[0] - band[39]).mean() < 1 < np.abs(band[0] - band[60]).mean(), "the caption changes at 2 s"
    summary = json.loads((out / "generation.json").read_text())
    record = summary["timeline"]
    assert [(s["start_frame"], s["end_frame"], s["prompt"]) for s in record["segments"]] == [
        (0, 40, WALK),
        (40, 100, JUMP),
    ]
    assert [(t["start"], t["end"]) for t in record["transitions"]] == [(35, 45)]
    assert summary["skeleton"]["joint_names"][0] == "pelvis" and summary["samples"][0]["joints"] == "sample_00.npy"
    (group,), _ = player_groups(out, summary)  # index.html's player shows each frame's prompt
    assert group.motions[0].prompts == (WALK,) * 40 + (JUMP,) * 60
    assert JUMP in (out / "index.html").read_text()
    with pytest.raises(UserError, match="edit=timeline takes its prompts"):
        run_edit(compose_config("edit", tmp_path / "again", [*overrides, "prompt=a person waves"]))


def test_a_dance_timeline_is_one_chain_of_windows(tmp_path):
    network = ["network.base_channels=40", "network.channel_mults=[1,2]", "network.num_res_blocks=1"]
    overrides = ["experiment=dance2d", "+trainer.fast_dev_run=true", "generate_after_training.num_samples=0", *network]
    result = train.run(compose_config("train", tmp_path / "run", overrides))
    module = result["module"].eval()
    segments = parse_timeline("0-6s: dance", module.data.fps)
    sampler = DDIMSampler(num_steps=2, progress=False)
    features, prompts = generate_timeline(module, sampler, None, segments, 0, None, torch.Generator().manual_seed(0))
    frames = round(6 * module.data.fps)  # 180 at 30 fps: windows of 48 frames, 10 shared
    assert frames > module.data.window and features.shape == (frames, module.data.features)
    assert prompts == ["dance"] * frames and torch.isfinite(features).all()
    timeline = tmp_path / "dance.txt"
    timeline.write_text("0-2s: dance\n")
    out = tmp_path / "edit"
    edit = ["edit=timeline", f"edit.file={timeline}", "num_samples=1", "sampler=ddim", "sampler.num_steps=2"]
    run_edit(compose_config("edit", out, [f"run_dir={result['run_dir']}", *edit]))
    keypoints = np.load(out / "sample_00.npy")
    assert keypoints.shape == (60, module.data.num_joints, 2) and iio.imread(out / "sample_00.mp4").shape[0] == 60
    assert json.loads((out / "generation.json").read_text())["samples"][0]["keypoints"] == "sample_00.npy"
