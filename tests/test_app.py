"""The local web app (python -m motiondiff.app): request bounds, the served files and nothing else, one generation
at a time, the JSON API end to end on tiny trained runs, and the command line."""

import http.client
import io
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from browser import errors, open_page, screenshot_pixels
from conftest import ROOT, TINY_NETWORK, compose_config
from motiondiff.app.limits import Limits, ModelFacts, read_request
from motiondiff.app.run import terminate_as_interrupt
from motiondiff.app.server import Handler, is_loopback, make_server
from motiondiff.app.studio import NO_BVH, open_studio
from motiondiff.cli.app import CONFIG_DIR
from motiondiff.cli.help import command_help
from motiondiff.cli.preflight import preflight
from motiondiff.core.errors import UserError
from motiondiff.data.formats.bvh import load_bvh
from motiondiff.generation import run as generate_command
from motiondiff.runs import train
from test_text2motion_end_to_end import NUM_MOTIONS, data_dir, train_text_run  # noqa: F401  (data_dir: a fixture)

# 20 diffusion steps, one training step, nothing generated after training: a run in a few seconds.
QUICK = ["schedule.num_steps=20", "val_sampler.num_steps=5", "generate_after_training.num_samples=0"]
LIMITS = Limits(max_samples=4, max_prompt_chars=40, min_guidance=0.0, max_guidance=8.0, max_windows=5)
TEXT = ModelFacts(
    kind="text",
    fps=20.0,
    joints=22,
    dims=3,
    min_frames=1,
    max_frames=196,
    default_frames=100,
    window=None,
    overlap=None,
    schedule_steps=20,
    samplers={"ddpm": None, "ddim": 20},
    default_sampler="ddim",
    default_steps=5,
    default_guidance=2.5,
)
DANCE = ModelFacts(
    kind="dance",
    fps=30.0,
    joints=20,
    dims=2,
    min_frames=48,
    max_frames=48 + 4 * 32,
    default_frames=48,
    window=48,
    overlap=16,
    schedule_steps=20,
    samplers={"ddpm": None, "ddim": 20},
    default_sampler="ddpm",
    default_steps=None,
    default_guidance=None,
)


# ---- bounds: every field refused outside its range, with the sentence the page shows --------------------------


def test_a_request_in_bounds_reads_as_asked():
    request = read_request(
        {"prompt": "  a person\n waves ", "length": 2.5, "unit": "seconds", "sampler": "ddim", "steps": 7},
        TEXT,
        LIMITS,
    )
    assert (request.prompt, request.frames, request.sampler, request.steps) == ("a person waves", 50, "ddim", 7)
    assert (request.num_samples, request.guidance_weight, request.seed) == (1, 2.5, None)
    request = read_request({"prompt": "a", "length": 196, "sampler": "ddpm", "seed": 3}, TEXT, LIMITS)
    assert (request.steps, request.seed) == (None, 3)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"prompt": ""}, "write a prompt first"),
        ({"prompt": "   "}, "write a prompt first"),
        ({"prompt": 42}, "write a prompt first"),
        ({"prompt": "x" * 41}, "the prompt has 41 characters; keep it to 40"),
        ({"length": 0}, "length must be from 1 to 196 frames"),
        ({"length": 197}, "length must be from 1 to 196 frames (the model's limit)"),
        ({"length": 12.5}, "whole number of frames"),
        ({"length": True}, "whole number of frames"),
        ({"length": "60"}, "whole number of frames"),
        ({"length": 9.9, "unit": "seconds"}, "length must lie from 0.05 to 9.8"),
        ({"length": float("nan"), "unit": "seconds"}, "length must be a number"),
        ({"unit": "minutes"}, "unit must be 'frames' or 'seconds'"),
        ({"num_samples": 0}, "samples must be a whole number from 1 to 4"),
        ({"num_samples": 5}, "samples must be a whole number from 1 to 4"),
        ({"num_samples": 1.5}, "samples must be a whole number"),
        ({"steps": 0}, "steps must be a whole number from 1 to 20"),
        ({"steps": 21}, "steps must be a whole number from 1 to 20"),
        ({"sampler": "ddpm", "steps": 5}, "ddpm always takes all 20 steps"),
        ({"sampler": "euler"}, "sampler must be one of ddpm, ddim"),
        ({"guidance_weight": -0.5}, "guidance weight must lie from 0 to 8"),
        ({"guidance_weight": 8.5}, "guidance weight must lie from 0 to 8"),
        ({"guidance_weight": "high"}, "guidance weight must be a number"),
        ({"seed": -1}, "seed must be a whole number from 0"),
        ({"seed": 2**31}, "seed must be a whole number from 0"),
        ({"temperature": 1}, "unknown field 'temperature'"),
        ({"num_samples": float("nan")}, "samples must be a whole number"),  # JSON's NaN, Infinity, 1e400
        ({"steps": float("inf")}, "steps must be a whole number"),
        ({"length": float("inf")}, "whole number of frames"),
        ({"sampler": []}, "sampler must be one of"),
        ({"prompt": "\ud800 walks"}, "a lone UTF-16 surrogate"),
        ({"seed": 10**400}, "seed must be a whole number from 0"),  # JSON takes ints too large for float()
        ({"length": 10**400}, "length must be from 1 to 196 frames (the model's limit) (got a huge number)"),
        ({"guidance_weight": 10**400}, "guidance weight must lie from 0 to 8 (got a huge number)"),
    ],
)
def test_a_text_request_out_of_bounds_is_one_sentence(changes, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_request({"prompt": "a person waves", "length": 60, **changes}, TEXT, LIMITS)


@pytest.mark.parametrize(
    "body, message",
    [
        ({"prompt": "a person dances"}, "makes dances without text; leave the prompt empty"),
        ({"guidance_weight": 2}, "guidance weight needs a text run"),
        ({"length": 47}, "length must be from 48 to 176 frames (48-frame windows chained)"),
        ({"length": 177}, "length must be from 48 to 176 frames"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_a_dance_request_out_of_bounds_is_one_sentence(body, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_request(body, DANCE, LIMITS)


@pytest.mark.parametrize("asked, made", [(None, 48), (48, 48), (49, 80), (80, 80), (100, 112), (176, 176)])
def test_a_dance_length_rounds_up_to_whole_chained_windows(asked, made):
    assert read_request({"length": asked}, DANCE, LIMITS).frames == made


# ---- the app on tiny trained runs, through HTTP -------------------------------------------------------------------


@pytest.fixture(scope="module")
def text_run(tmp_path_factory, data_dir) -> Path:  # noqa: F811  (the fixture imported above)
    return train_text_run(tmp_path_factory.mktemp("text"), data_dir, *QUICK, "sampler.num_steps=4")["run_dir"]


@pytest.fixture(scope="module")
def dance_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("dance")
    overrides = ["experiment=dance2d", "+trainer.fast_dev_run=true", *QUICK, "sampler=ddim", "sampler.num_steps=3"]
    return train.run(compose_config("train", run_dir, [*overrides, *TINY_NETWORK]))["run_dir"]


def app_config(run_dir: Path, out_dir: Path, *overrides):
    return compose_config(
        "app", out_dir, [f"run_dir={run_dir}", "device=cpu", "samplers.ddim.progress=false", *overrides]
    )


@contextmanager
def serving(studio):
    """The app's server on a free localhost port, in a thread, for the duration of the block."""
    server = make_server(studio, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def call(server, method: str, path: str, body=None, headers=None) -> tuple:
    """(status, headers, bytes) of one request, sent with the path exactly as given (no normalisation)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    sent = {"Content-Type": "application/json"} if data is not None else {}
    connection.request(method, path, body=data, headers={**sent, **(headers or {})})
    response = connection.getresponse()
    answer = (response.status, dict(response.getheaders()), response.read())
    connection.close()
    return answer


def generate(server, body) -> tuple:
    status, _, data = call(server, "POST", "/api/generate", body)
    return status, json.loads(data)


@pytest.fixture(scope="module")
def text_app(text_run):
    out_dir = text_run / "app" / "session"  # where the command puts a session: inside the run
    studio = open_studio(app_config(text_run, out_dir), out_dir)
    with serving(studio) as server:
        yield server


def test_the_page_and_info_describe_the_run(text_app, text_run):
    status, headers, page = call(text_app, "GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"MotionPlayer" in page and b'id="app-info"' in page and b"/*app-js*/" not in page
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    info = json.loads(call(text_app, "GET", "/api/info")[2])
    assert info["run_dir"] == str(text_run) and info["export"] == "bvh"
    assert info["model"]["kind"] == "text" and info["model"]["max_frames"] > 0 and info["model"]["joints"] == 22
    assert info["model"]["samplers"] == {"ddpm": None, "ddim": 20, "dpmsolver": 10}  # ddim's 50 steps cut to the 20
    assert (info["model"]["default_sampler"], info["model"]["default_steps"]) == ("ddim", 4)  # the run's own


def test_a_generation_round_trips_through_the_json_api(text_app, tmp_path):
    status, result = generate(
        text_app, {"prompt": "a person jumps", "length": 1.5, "unit": "seconds", "num_samples": 2, "seed": 5}
    )
    assert status == 200, result
    assert result["frames"] == 30 and result["request"]["seed"] == 5 and result["request"]["steps"] == 4
    panels = result["player"]["panels"]
    assert [(p["label"], p["frames"], p["joints"], p["dims"], p["caption"]) for p in panels] == [
        (f"sample {k}", 30, 22, 3, "a person jumps") for k in range(2)
    ]
    folder = Path(result["folder"])
    assert folder.parent.name == "session" and (folder / "generation.json").is_file()
    links = {item["name"]: item for item in result["downloads"]}
    assert {"sample_00.npy", "sample_01.npy", "sample_00.bvh", "sample_01.bvh", "motions.zip"} <= set(links)
    status, headers, data = call(text_app, "GET", links["sample_01.npy"]["url"])
    assert (
        status == 200
        and "attachment" in headers["Content-Disposition"]
        and len(data) == links["sample_01.npy"]["bytes"]
    )
    joints = np.load(io.BytesIO(data), allow_pickle=False)
    assert joints.shape == (30, 22, 3)
    status, _, bvh = call(text_app, "GET", links["sample_01.bvh"]["url"])
    (tmp_path / "downloaded.bvh").write_bytes(bvh)
    clip = load_bvh(tmp_path / "downloaded.bvh")
    names = json.loads((folder / "generation.json").read_text())["skeleton"]["joint_names"]
    order = [clip.skeleton.names.index(name) for name in names]
    assert clip.num_frames == 30 and clip.fps == pytest.approx(20.0)
    assert np.abs(clip.positions()[:, order] - joints).max() < 0.01  # metres: the BVH moves as the joints do
    status, _, bundle = call(text_app, "GET", links["motions.zip"]["url"])
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        assert f"{folder.name}/sample_00.bvh" in archive.namelist()


def test_the_app_makes_what_generate_makes_with_the_same_settings(text_app, text_run, tmp_path):
    settings = {"prompt": "a person jumps twice", "length": 24, "num_samples": 2, "seed": 11, "guidance_weight": 3}
    status, result = generate(text_app, {**settings, "sampler": "ddim", "steps": 3})
    assert status == 200, result
    overrides = [f"{key}={value}" for key, value in settings.items()]
    cfg = compose_config(
        "generate",
        tmp_path,
        [f"run_dir={text_run}", *overrides, "sampler=ddim", "sampler.num_steps=3", "render=false", "device=cpu"],
    )
    generate_command.run(cfg)
    for name in ("sample_00.npy", "sample_01.npy"):
        assert np.array_equal(np.load(Path(result["folder"]) / name), np.load(tmp_path / name))


def test_seeds_left_empty_follow_the_order_generations_run_in(text_app):
    first = generate(text_app, {"prompt": "a person sits down", "length": 10})[1]["request"]["seed"]
    assert generate(text_app, {"prompt": "a person sits down", "length": 0})[0] == 400  # takes no seed
    second = generate(text_app, {"prompt": "a person sits down", "length": 10})[1]["request"]["seed"]
    assert second == first + 1


def test_a_prompt_far_from_the_training_captions_comes_back_with_its_warning(text_app):
    status, result = generate(text_app, {"prompt": "zorblax quuxes the flibbertigibbet", "length": 10})
    assert status == 200 and any("never occur in the training captions" in line for line in result["warnings"])
    assert generate(text_app, {"prompt": "a person walks", "length": 10})[1]["warnings"] == []


def test_a_request_out_of_bounds_is_refused_with_a_message_and_nothing_written(text_app):
    before = json.loads(call(text_app, "GET", "/api/status")[2])["generations"]
    for body, message in [
        ({"prompt": "a person waves", "length": 10_000}, "length must be from 1 to"),
        ({"prompt": "a person waves", "num_samples": 9}, "samples must be a whole number from 1 to 8"),
        ({"prompt": "a person waves", "steps": 500}, "steps must be a whole number from 1 to 20"),
        ({"prompt": "a person waves", "guidance_weight": 11}, "guidance weight must lie from 0 to 10"),
        ({"prompt": "waves " * 40}, "keep it to 200"),
        ({"prompt": ""}, "write a prompt first"),
    ]:
        status, answer = generate(text_app, body)
        assert status == 400 and message in answer["error"], (body, answer)
    assert json.loads(call(text_app, "GET", "/api/status")[2])["generations"] == before
    assert call(text_app, "POST", "/api/generate", b"{not json")[0] == 400
    assert call(text_app, "POST", "/api/generate", b"{}", {"Content-Type": "text/plain"})[0] == 415
    assert call(text_app, "POST", "/api/generate", b" " * 20_000)[0] == 413


def test_only_the_files_the_app_wrote_are_served(text_app, text_run):
    status, result = generate(text_app, {"prompt": "a person turns left", "length": 20})
    assert status == 200
    name = result["name"]
    assert call(text_app, "GET", f"/files/{name}/generation.json")[0] == 200  # the way in works
    secret = (text_run / "config.yaml").read_bytes()[:200]
    for path in [
        f"/files/{name}/../../../config.yaml",  # the session lies in <run>/app/: three levels up is the run
        f"/files/{name}/..%2f..%2f..%2fconfig.yaml",
        f"/files/{name}/%2e%2e/%2e%2e/%2e%2e/config.yaml",
        f"/files/{name}/%2E%2E%2F%2E%2E%2F%2E%2E%2Fconfig.yaml",
        f"/files/%2e%2e/{name}/generation.json",
        f"/files/{name}/{text_run}/config.yaml",
        f"/files/{name}//etc/passwd",
        f"/files/{name}/.hydra/config.yaml",
        "/files/../config.yaml",
        "/etc/passwd",
        "//etc/passwd",
        str(text_run / "config.yaml"),
        "/static/app.js",
        "/files/999/generation.json",
        f"/files/{name}",
    ]:
        status, _, data = call(text_app, "GET", path)
        assert status == 404 and secret not in data and b"root:" not in data, path
    status, _, data = call(text_app, "GET", "/", headers={"Host": "attacker.example:80"})
    assert status == 403 and b"MotionPlayer" not in data  # a DNS name pointing here is not the app's page
    generation = text_app.studio.generations[name]
    generation.files["generation.json"].rename(generation.files["generation.json"].with_suffix(".moved"))
    assert call(text_app, "GET", f"/files/{name}/generation.json")[0] == 404  # deleted since: no traceback


def test_a_one_frame_motion_and_malformed_bodies_are_answered(text_app):
    """The shortest length the app offers (1 frame) generates; a body Python's JSON cannot hold gets a 400."""
    status, result = generate(text_app, {"prompt": "a person waves", "length": 1, "seed": 2})
    assert status == 200 and result["request"]["frames"] == 1, result
    for body in (b'{"seed": ' + b"9" * 5000 + b"}", b"[" * 5000):
        assert call(text_app, "POST", "/api/generate", body)[0] == 400


def test_a_body_shorter_than_its_length_is_answered_408_and_a_silent_connection_is_closed(text_app, monkeypatch):
    """A client that stops sending gets a 408 (a short body) or its connection closed (nothing) after the wait."""
    monkeypatch.setattr(Handler, "timeout", 0.5)
    with socket.create_connection(("127.0.0.1", text_app.port), timeout=30) as connection:
        head = f"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1:{text_app.port}\r\n"
        connection.sendall(f"{head}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{}}".encode())
        started = time.monotonic()
        answer = connection.makefile("rb").readline()
        assert answer.split()[1] == b"408" and time.monotonic() - started < 20, answer
    with socket.create_connection(("127.0.0.1", text_app.port), timeout=30) as connection:
        assert connection.recv(1) == b""  # the server closed it; nothing hangs on a thread forever
    status, result = generate(text_app, {"prompt": "a person waves", "length": 1, "seed": 2})
    assert status == 200, result  # the server still answers


def test_hosts_a_page_may_reach_the_app_by():
    """On the loopback: its loopback names only (127.1 is one), no port for port 80. On the network: an IP address or
    this computer's own name at the app's port, never another domain name (DNS rebinding)."""
    assert is_loopback("127.1") and is_loopback("::ffff:127.0.0.1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::")
    network = make_server(None, "0.0.0.0", 0)
    try:
        port = network.port
        network.host = "box.corp.example"  # the name it was started with (host=box.corp.example): the URL it prints
        for host in (
            f"192.168.1.20:{port}",
            f"[fe80::1]:{port}",
            f"localhost:{port}",
            f"{socket.gethostname()}:{port}",
            f"Box.corp.example:{port}",
        ):
            assert network.host_allowed(host), host
        for host in (f"rebind.attacker.example:{port}", "192.168.1.20:1", "192.168.1.20", ""):
            assert not network.host_allowed(host), host
    finally:
        network.server_close()
    loopback = make_server(None, "127.0.0.1", 0)
    try:
        assert loopback.host_allowed(f"127.0.0.1:{loopback.port}") and not loopback.host_allowed("127.0.0.1")
        assert not loopback.host_allowed(f"rebind.attacker.example:{loopback.port}")
        assert loopback.host_allowed(f"LOCALHOST:{loopback.port}")  # curl keeps the case a user typed
    finally:
        loopback.server_close()
    with pytest.raises(UserError, match="host=127 is not an address; quote it"):
        make_server(None, 127, 0)


def test_two_requests_at_once_run_one_after_the_other(text_app):
    studio = text_app.studio
    start = threading.Barrier(2)
    answers = []

    def ask(seed):
        start.wait()
        answers.append(generate(text_app, {"prompt": "a person walks", "length": 40, "num_samples": 2, "seed": seed}))

    threads = [threading.Thread(target=ask, args=(seed,)) for seed in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert [status for status, _ in answers] == [200, 200], answers
    names = {result["name"] for _, result in answers}
    runs = sorted((started, finished) for name, started, finished in studio.history if name in names)
    assert len(runs) == 2 and runs[0][1] <= runs[1][0], runs  # the second started after the first finished
    assert max(result["waited_s"] for _, result in answers) > 0.5 * min(result["took_s"] for _, result in answers)
    assert len({result["folder"] for _, result in answers}) == 2


def test_a_dance_run_generates_without_a_prompt_and_offers_npy_only(dance_run, tmp_path):
    studio = open_studio(app_config(dance_run, tmp_path / "session"), tmp_path / "session")
    with serving(studio) as server:
        status, result = generate(server, {"num_samples": 2, "sampler": "ddim", "steps": 3})
        assert status == 200, result
        assert [(p["frames"], p["dims"]) for p in result["player"]["panels"]] == [(48, 2), (48, 2)]
        assert not any(item["name"].endswith(".bvh") for item in result["downloads"]) and NO_BVH in result["notes"]
        status, result = generate(server, {"length": 60, "num_samples": 1, "sampler": "ddim", "steps": 3})
        assert status == 200 and result["frames"] == 80  # two windows of 48 sharing 16
        assert [p["frames"] for p in result["player"]["panels"]] == [80, 48]
        status, _, data = call(server, "GET", f"/files/{result['name']}/long_dance.npy")
        assert np.load(io.BytesIO(data)).shape == (80, 20, 2)
        status, answer = generate(server, {"prompt": "dance"})
        assert status == 400 and "without text" in answer["error"]


# ---- the command ---------------------------------------------------------------------------------------------


def test_the_command_line_is_checked_before_the_app_starts(tmp_path):
    with pytest.raises(UserError, match="say which run to use"):
        preflight(CONFIG_DIR, "app", [])
    with pytest.raises(UserError, match="no such run"):
        preflight(CONFIG_DIR, "app", [f"run_dir={tmp_path / 'missing'}"])
    text = command_help(CONFIG_DIR, "app", "motiondiff-app")
    assert "samplers.ddim (options of sampler)" in text and "host: 127.0.0.1" in text and "max_samples" in text


def test_a_port_in_use_is_one_sentence(text_app):
    with pytest.raises(UserError, match=f"port {text_app.port} is in use; choose another"):
        make_server(text_app.studio, "127.0.0.1", text_app.port)


def test_python_m_motiondiff_app_serves_until_ctrl_c(text_run):
    process = subprocess.Popen(
        [sys.executable, "-m", "motiondiff.app", f"run_dir={text_run}", "port=0", "device=cpu"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one pipe: nothing blocks on a full stderr while stdout is read
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    seen = []
    try:
        while not seen or not seen[-1].startswith("motiondiff app: open"):
            seen.append(lines.get(timeout=120))  # its log lines, then where to open it
        url, session = seen[-1].split()[3], Path(seen[-1].split("generations go to ")[1].split("/. ")[0])
        connection = http.client.HTTPConnection("127.0.0.1", int(url.split(":")[2].strip("/")), timeout=30)
        connection.request("GET", "/api/info")
        assert json.loads(connection.getresponse().read())["run_dir"] == str(text_run)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    while not seen[-1].startswith("stopped"):  # what it says on its way out (queue.Empty if it says nothing)
        seen.append(lines.get(timeout=10))
    assert process.returncode == 0 and seen[-1].startswith("stopped; 0 generation(s)"), seen
    assert session.parent == text_run / "app" and (session / ".hydra" / "config.yaml").is_file()


# ---- in a real browser ------------------------------------------------------------------------------------------


def test_the_page_generates_and_plays_in_headless_chromium(browser, text_app, tmp_path):
    with open_page(browser, text_app.url, width=1280, height=900) as (page, messages):
        page.fill("#prompt", "a person kicks with the left leg")
        page.select_option("#unit", "frames")
        page.fill("#length", "36")
        page.fill("#num_samples", "2")
        page.click("#generate")
        page.wait_for_function("() => window.motiondiffPlayers && window.motiondiffPlayers.player", timeout=60_000)
        state = page.evaluate("() => window.motiondiffPlayers.player.state()")
        assert state["frames"] == 36 and len(state["panels"]) == 2
        assert [panel["joints_drawn"] for panel in state["panels"]] == [22, 22]
        assert page.locator("#downloads a[href$='/sample_00.bvh']").count() == 1
        assert page.locator("#error").is_hidden()
        with page.expect_download() as download:
            page.click("#downloads a[href$='/sample_01.npy']")
        saved = tmp_path / download.value.suggested_filename
        download.value.save_as(saved)
        assert saved.name.endswith("_sample_01.npy") and np.load(saved).shape == (36, 22, 3)
        page.evaluate("() => window.motiondiffPlayers.player.pause()")
        page.evaluate("() => window.motiondiffPlayers.player.setFrame(18)")
        assert screenshot_pixels(page, tmp_path / "app.png").std() > 10  # a drawn page, not a blank one
        page.fill("#length", "5000")
        page.click("#generate")
        page.wait_for_selector("#error:not([hidden])", timeout=30_000)
        assert "Length must be from 1 to 196 frames" in page.inner_text("#error")
        assert page.evaluate("() => window.motiondiffPlayers.player.state().frames") == 36  # the last result stays
    refused = [text for _, text in errors(messages) if "status of 400" in text]  # the browser logs the refusal
    assert len(refused) == 1 and [error for error in errors(messages) if "status of 400" not in error[1]] == []


def test_sigterm_stops_the_app_as_ctrl_c_does():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with terminate_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # interrupted at once by the handler
    assert signal.getsignal(signal.SIGTERM) == before  # the previous handler is back
