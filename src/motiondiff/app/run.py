"""`python -m motiondiff.app run_dir=<run>`: load the run once and serve the page until Ctrl-C."""

import logging
import signal
import threading
from contextlib import contextmanager
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from motiondiff.app.server import is_loopback, make_server
from motiondiff.app.studio import open_studio
from motiondiff.core.errors import UserError

log = logging.getLogger(__name__)


@contextmanager
def terminate_as_interrupt():
    """SIGTERM (kill, a service manager) stops the app as Ctrl-C does: the same message, exit status 0. Ctrl-C
    (SIGINT) stops it also when it was started in the background, where SIGINT arrives ignored."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


def run(cfg: DictConfig) -> dict:
    """Serve the app for the run named by cfg until interrupted; what it made."""
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        raise UserError("the app serves one run at a time; drop -m and start one app per run (each on its own port).")
    out_dir = Path(cfg.paths.output_dir)
    server = make_server(None, cfg.host, cfg.port)  # listening first: a port in use is said before the model loads
    try:
        studio = open_studio(cfg, out_dir)
    except BaseException:
        server.server_close()
        raise
    server.serve(studio)
    if not is_loopback(cfg.host):
        log.warning("listening on %s: the app has no login, so anyone who can reach this address can use it.", cfg.host)
    kind = "type a prompt" if studio.facts.kind == "text" else "press Generate"
    print(f"motiondiff app: open {server.url} and {kind}; generations go to {out_dir}/. Ctrl-C stops it.", flush=True)
    try:
        with terminate_as_interrupt():
            server.serve_forever()
    except KeyboardInterrupt:
        print(f"stopped; {len(studio.generations)} generation(s) in {out_dir}", flush=True)
    finally:
        server.server_close()
    return {"url": server.url, "out_dir": out_dir, "generations": sorted(studio.generations)}
