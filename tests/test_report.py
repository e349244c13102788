"""index.html reports: the player's data, the Markdown tables, the folders of each command, and the pages opened in
headless Chromium from the file system (no console errors, the joints drawn, the slider, a picture that is not blank).
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from browser import errors, file_url, open_page, screenshot_pixels
from conftest import TINY_NETWORK, compose_config
from motiondiff.core.errors import UserError
from motiondiff.data.procedural.text_motion import dataset_name, write_procedural_dataset
from motiondiff.evaluation import compare
from motiondiff.evaluation import run as evaluate
from motiondiff.generation import run as generate
from motiondiff.report.markdown import markdown_html
from motiondiff.report.page import write_report
from motiondiff.report.player import PlayerMotion, motions_payload, player_assets, player_html
from motiondiff.runs import train
from test_text2motion_end_to_end import NUM_MOTIONS, train_text_run

CHAIN = [-1, 0, 1, 1]  # a 4-joint tree: the root, its child, and two grandchildren
SCREENSHOTS = Path(__file__).resolve().parents[1] / "outputs" / "test_screenshots"  # kept for a person to look at


def walker(frames: int = 20, joints: int = 4) -> np.ndarray:
    """(frames, joints, 3): a stick 1.6 m tall moving 1 cm a frame along z."""
    motion = np.zeros((frames, joints, 3))
    motion[:, :, 1] = np.linspace(0.0, 1.6, joints)
    motion[:, :, 2] = np.arange(frames)[:, None] * 0.01
    return motion


# ---- the player's data ------------------------------------------------------------------------------------------


def test_the_payload_rounds_to_a_millimetre_and_keeps_the_shape():
    motion = walker() + 1e-5 * np.random.default_rng(0).standard_normal((20, 4, 3))
    payload = motions_payload([PlayerMotion(motion, (-1, 0, 1, 2), 20.0, "sample 0", "a person walks")])
    [panel] = payload["panels"]
    assert (panel["frames"], panel["joints"], panel["dims"], panel["fps"]) == (20, 4, 3, 20.0)
    assert panel["parents"] == [-1, 0, 1, 2] and panel["caption"] == "a person walks" and panel["prompts"] is None
    positions = np.cumsum(np.array(panel["steps"]).reshape(20, 4, 3), axis=0) * 10.0 ** -panel["decimals"]
    assert panel["decimals"] == 3 and np.abs(positions - motion).max() <= 0.0005 + 1e-12  # 1 mm of a 1.6 m motion
    assert (
        len(json.dumps(panel["steps"], separators=(",", ":"))) < 3 * motion.size
    )  # small whole numbers: the changes between frames


def test_timeline_prompts_travel_as_runs_of_frames():
    prompts = ("walk",) * 5 + ("jump",) * 3 + ("walk",) * 2
    motion = PlayerMotion(walker(10), (-1, 0, 1, 2), 20.0, "sample 0", prompts=prompts)
    assert motions_payload([motion])["panels"][0]["prompts"] == [[0, 5, "walk"], [5, 8, "jump"], [8, 10, "walk"]]


def test_keypoints_in_pixels_keep_four_digits():
    keypoints = np.random.default_rng(1).uniform(0, 480, (6, 3, 2))
    panel = motions_payload([PlayerMotion(keypoints, (-1, 0, 1), 30.0, "dance")])["panels"][0]
    positions = np.cumsum(np.array(panel["steps"]).reshape(6, 3, 2), axis=0) * 10.0 ** -panel["decimals"]
    assert panel["dims"] == 2 and panel["decimals"] == 1 and np.abs(positions - keypoints).max() <= 0.05


@pytest.mark.parametrize(
    "joints, parents, prompts, message",
    [
        (np.zeros((5, 4)), (-1, 0, 1, 2), None, "has shape"),
        (np.full((5, 4, 3), np.nan), (-1, 0, 1, 2), None, "NaN"),
        (np.zeros((5, 4, 3)), (-1, 0, 1), None, "parents"),
        (np.zeros((5, 4, 3)), (-1, 0, 5, 2), None, "parents"),
        (np.zeros((5, 4, 3)), (-1, 0, 1, 2), ("walk",) * 4, "one prompt per frame"),
    ],
)
def test_the_player_refuses_motions_it_cannot_draw(joints, parents, prompts, message):
    with pytest.raises(UserError, match=message):
        motions_payload([PlayerMotion(joints, parents, 20.0, "sample 0", prompts=prompts)])


def test_player_html_keeps_captions_from_closing_the_script():
    motion = PlayerMotion(walker(), (-1, 0, 1, 2), 20.0, "</script><b>x", "a </script> & <!-- caption")
    text = player_html([motion], "p1")
    assert text.count("</script>") == 2 and "<b>" not in text  # only the two script elements' own end tags
    data = re.search(r'<script type="application/json" id="p1-data">(.*?)</script>', text).group(1)
    assert json.loads(data)["panels"][0]["caption"] == "a </script> & <!-- caption"
    assert "window.MotionPlayer" in player_assets() and ".mp-panels" in player_assets()
    with pytest.raises(UserError, match="element_id"):
        player_html([motion], 'x" onload="alert(1)')


# ---- Markdown and folders -----------------------------------------------------------------------------------------


def test_markdown_tables_headings_lists_and_images(tmp_path):
    from PIL import Image

    Image.new("RGB", (4, 4), (200, 10, 10)).save(tmp_path / "chart.png")
    text = (
        "# Comparison\n\nEach run's **newest** evaluation, `code | here`.\n\n"
        "| run | FD ↓ | note |\n|---|---|---|\n| 0 | 1.0 ± 0.1 | a \\| b <script>alert(1)</script> |\n\n"
        "- seed: 3\n- sampler: ddim\n\n![FD](chart.png)\n![gone](missing.png)\n[run 0](../0/index.html)\n"
        "[bad](javascript:alert(1))\n"
    )
    out = markdown_html(text, lambda name: "data:image/png;base64,AAAA" if name == "chart.png" else None)
    assert "<h2>Comparison</h2>" in out and "<strong>newest</strong>" in out and "<code>code | here</code>" in out
    assert "<th>FD ↓</th>" in out and "<td>a | b &lt;script&gt;alert(1)&lt;/script&gt;</td>" in out
    assert "<ul><li>seed: 3</li><li>sampler: ddim</li></ul>" in out
    assert '<img class="md-image" src="data:image/png;base64,AAAA" alt="FD">' in out
    assert "missing.png is not in this folder" in out and '<a href="../0/index.html">run 0</a>' in out
    assert "<script>" not in out and 'href="javascript' not in out


def write_edit_folder(folder: Path, timeline: bool) -> None:
    """A folder as the edit command writes it (generation.json with mode and skeleton, samples, source): a text run's
    in-betweening (3D joints), or a dance run's timeline (2D keypoints)."""
    folder.mkdir()
    skeleton = {"joint_names": ["pelvis", "left_hip", "right_hip", "head"], "parents": CHAIN, "fps": 20.0}
    summary = {"seed": 0, "skeleton": skeleton, "units": "metres, y up", "samples": []}
    key = "keypoints" if timeline else "joints"
    for index in range(2):
        np.save(folder / f"sample_{index:02d}.npy", walker(30)[..., :2] if timeline else walker(30))
        summary["samples"].append({"prompt": "a person waves", "length": 30, key: f"sample_{index:02d}.npy"})
    if timeline:
        segments = [
            {"start_frame": 0, "end_frame": 20, "prompt": "walk", "start_s": 0.0, "end_s": 1.0},
            {"start_frame": 20, "end_frame": 30, "prompt": "jump", "start_s": 1.0, "end_s": 1.5},
        ]
        summary.update(mode="timeline", timeline={"fps": 20.0, "segments": segments})
    else:
        np.save(folder / "source_motion.npy", walker(30))
        summary.update(mode="in_between", edit={"mode": "in_between", "kept_frames": [[0, 10], [20, 30]]})
        summary["source"] = {"path": "/data/clip.bvh", "form": "bvh", "frames": 30}
    (folder / "generation.json").write_text(json.dumps(summary))


def player_data(page_path: Path, element_id: str = "player") -> dict:
    text = page_path.read_text()
    return json.loads(re.search(rf'id="{element_id}-data">(.*?)</script>', text).group(1))


def test_an_edit_folder_shows_the_source_beside_the_edits(tmp_path):
    write_edit_folder(tmp_path / "edit", timeline=False)
    page = write_report(tmp_path / "edit")
    panels = player_data(page)["panels"]
    assert [p["label"] for p in panels] == ["source (real)", "sample 0", "sample 1"]
    assert panels[1]["caption"] == "in_between: kept frames 0-9, 20-29 · a person waves"
    kept, made = "kept from the source", "generated · a person waves"
    assert panels[1]["prompts"] == [[0, 10, kept], [10, 20, made], [20, 30, kept]] and panels[0]["prompts"] is None
    assert "clip.bvh" in panels[0]["caption"] and "<h1>Edit: in_between</h1>" in page.read_text()
    with pytest.raises(UserError, match="never overwrites"):
        write_report(tmp_path / "edit")


def test_a_timeline_folder_gives_each_frame_its_prompt(tmp_path):
    write_edit_folder(tmp_path / "timeline", timeline=True)
    panels = player_data(write_report(tmp_path / "timeline"))["panels"]
    assert [(p["label"], p["dims"]) for p in panels] == [("sample 0", 2), ("sample 1", 2)]
    assert panels[0]["prompts"] == [[0, 20, "walk"], [20, 30, "jump"]]


def test_an_evaluation_folder_embeds_its_plots_and_links_its_files(tmp_path):
    from PIL import Image

    folder = tmp_path / "evaluation"
    folder.mkdir()
    (folder / "metrics.md").write_text("| row | FD ↓ |\n|---|---|\n| generated | 3.0 ± 0.2 |\n")
    Image.new("RGB", (8, 8), (10, 200, 10)).save(folder / "metrics.png")
    (folder / "metrics.json").write_text("{}")
    text = write_report(folder).read_text()
    assert "<h1>Evaluation</h1>" in text and "<td>3.0 ± 0.2</td>" in text
    assert 'src="data:image/png;base64,' in text and '<a href="metrics.json">metrics.json</a>' in text
    assert "motion-player" not in text  # no motions, no player
    mode = (folder / "index.html").stat().st_mode & 0o777
    assert mode == (folder / "metrics.json").stat().st_mode & 0o777  # readable as any file the command writes


# ---- tiny real runs in the browser -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dance_sweep(tmp_path_factory):
    """A sweep folder holding one tiny trained dance run (samples after training), its evaluation and its comparison,
    and an unfinished second run."""
    sweep = tmp_path_factory.mktemp("sweep")
    overrides = ["experiment=dance2d", "+trainer.fast_dev_run=true", "generate_after_training.num_samples=2"]
    overrides += ["generate_after_training.chain_windows=2", "sampler=ddim", "sampler.num_steps=3", *TINY_NETWORK]
    run_dir = train.run(compose_config("train", sweep / "0", overrides))["run_dir"]
    evaluation = run_dir / "evaluations" / "e"
    evaluate.run(
        compose_config(
            "evaluate",
            evaluation,
            [
                f"run_dir={run_dir}",
                "clips=2",
                "duration_factor=0.1",
                "replications=2",
                "sampler=ddim",
                "sampler.num_steps=2",
            ],
        )
    )
    (sweep / "1" / "checkpoints").mkdir(parents=True)
    (sweep / "1" / "config.yaml").write_text((run_dir / "config.yaml").read_text())
    (sweep / "1" / "checkpoints" / "last.ckpt").write_bytes(b"")
    comparison = sweep / "comparisons" / "c"
    compare.run(compose_config("compare", comparison, [f"sweep_dir={sweep}"]))
    return {"run_dir": run_dir, "evaluation": evaluation, "comparison": comparison}


@pytest.fixture(scope="module")
def text_generation(tmp_path_factory, procedural_data_dir):
    """A generation folder of a tiny text-to-motion run: 3 samples of 30 frames (3D joints), no videos."""
    data_dir = procedural_data_dir
    write_procedural_dataset(data_dir / dataset_name(NUM_MOTIONS, 0), num_motions=NUM_MOTIONS, seed=0)
    run = train_text_run(
        tmp_path_factory.mktemp("text"), data_dir, "network=adaln", "generate_after_training.num_samples=0"
    )
    out = tmp_path_factory.mktemp("generation") / "g"
    overrides = [f"run_dir={run['run_dir']}", "prompt=a person jumps", "length=30", "num_samples=3"]
    generate.run(compose_config("generate", out, [*overrides, "render=false", "sampler=ddim", "sampler.num_steps=2"]))
    return out


def shot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / name


def check_player(page, element_id: str, panels: int, joints: int, bones: int) -> dict:
    """Drive the player: every panel draws all its joints and bones; the slider moves the drawn frame."""
    players = page.evaluate("Object.keys(window.motiondiffPlayers)")
    assert element_id in players, players
    state = page.evaluate(f"window.motiondiffPlayers['{element_id}'].state()")
    assert state["frame"] == 0 and not state["playing"] and len(state["panels"]) == panels
    assert all((p["joints_drawn"], p["bones_drawn"]) == (joints, bones) for p in state["panels"]), state
    slider = page.locator(f"#{element_id} .mp-slider")
    canvas = page.locator(f"#{element_id} canvas").first
    before = canvas.screenshot()
    target = state["frames"] - 1
    slider.evaluate(f"(s) => {{ s.value = {target}; s.dispatchEvent(new Event('input', {{bubbles: true}})); }}")
    moved = page.evaluate(f"window.motiondiffPlayers['{element_id}'].state()")
    assert moved["frame"] == target and all(p["joints_drawn"] == joints for p in moved["panels"])
    assert canvas.screenshot() != before, "moving the slider did not change the drawn picture"
    assert page.locator(f"#{element_id} .mp-counter").inner_text().startswith(f"frame {target + 1}/")
    return state


def test_a_text_generation_page_plays_3d_motions_in_the_browser(browser, text_generation):
    page_path = text_generation / "index.html"
    assert page_path.is_file()
    with open_page(browser, file_url(page_path)) as (page, messages):
        state = check_player(page, "player", panels=3, joints=22, bones=21)
        assert state["frames"] == 30
        captions = page.locator("#player .mp-caption").all_inner_texts()
        assert captions == ["a person jumps"] * 3
        page.locator("#player .mp-play").click()
        page.wait_for_function(
            "window.motiondiffPlayers.player.state().frame < 29 && window.motiondiffPlayers.player.state().playing"
        )
        page.locator("#player .mp-play").click()
        page.evaluate("window.motiondiffPlayers.player.setFrame(15)")
        pixels = screenshot_pixels(page, shot_path("text_generation.png"))
        canvas = page.locator("#player canvas").first
        box, before = canvas.bounding_box(), canvas.screenshot()
        page.mouse.move(box["x"] + 100, box["y"] + 100)
        page.mouse.down()
        page.mouse.move(box["x"] + 200, box["y"] + 120)
        page.mouse.up()
        rotated = canvas.screenshot()
        page.mouse.wheel(0, -300)
        assert before != rotated != canvas.screenshot()  # drag rotates, the wheel zooms
        assert errors(messages) == []
    assert pixels.std() > 10 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50


def test_a_dance_generation_page_plays_2d_keypoints(browser, dance_sweep):
    page_path = dance_sweep["run_dir"] / "generations" / "final" / "index.html"
    with open_page(browser, file_url(page_path)) as (page, messages):
        state = check_player(page, "player", panels=2, joints=20, bones=19)
        assert state["frames"] == 48
        check_player(page, "player-long", panels=1, joints=20, bones=19)
        pixels = screenshot_pixels(page, shot_path("dance_generation.png"))
        assert errors(messages) == []
        assert "sample_00.mp4" in page.locator("ul.files").first.inner_text()
    assert pixels.std() > 10


def test_evaluation_and_comparison_pages_open_without_errors(browser, dance_sweep):
    for name, page_path in [
        ("evaluation", dance_sweep["evaluation"] / "index.html"),
        ("comparison", dance_sweep["comparison"] / "index.html"),
    ]:
        with open_page(browser, file_url(page_path)) as (page, messages):
            assert page.locator("table").count() >= 1
            screenshot_pixels(page, shot_path(f"{name}.png"))
            assert errors(messages) == [], name
            if name == "comparison":
                assert page.locator("img").count() >= 1  # the chart, embedded
                assert "run 1: not evaluated (no report)" in page.locator("ul.links").inner_text()
                link = page.locator("a", has_text="run 0: evaluation")
                assert link.get_attribute("href") == "../../0/evaluations/e/index.html"
                link.click()
                page.wait_for_load_state()
                assert page.url.endswith("/0/evaluations/e/index.html")
                assert page.locator("h1").inner_text() == "Evaluation" and errors(messages) == []


def test_the_sweep_demo_page_links_the_comparison(tmp_path, monkeypatch):
    from motiondiff.demos import sweep_demo

    def step(argv):  # each step done at once; evaluate and compare write their tables and pages into the sweep
        for module, folder, name in [
            ("evaluate", "evaluations", "evaluations.md"),
            ("compare", "comparisons", "comparison.md"),
        ]:
            if argv[2] == f"motiondiff.{module}":
                sweep = next(Path(a.partition("=")[2]) for a in argv if a.startswith("sweep_dir="))
                (sweep / folder / "t").mkdir(parents=True)
                (sweep / folder / "t" / name).write_text("# Table\n\n| run | FD ↓ |\n|---|---|\n| 0 | 1.5 |\n")
                write_report(sweep / folder / "t")
        return " ".join(argv[2:]), 1.0, 0

    monkeypatch.setattr(sweep_demo, "run_step", step)
    root = tmp_path / "demo"
    root.mkdir()
    sweep_demo.run(compose_config("sweep_demo", root))
    page = (root / "index.html").read_text()
    assert '<a href="sweep/comparisons/t/index.html">comparison of the runs' in page
    assert '<a href="sweep/evaluations/t/index.html">evaluations of the sweep</a>' in page
    assert "<h1>Sweep demo</h1>" in page and "motiondiff.compare sweep_dir=" in page  # sweep_demo.md's steps
