"""The app's HTTP server (Python's own http.server): a fixed table of routes and the files its generations wrote.

Routes: `GET /` the page, `GET /api/info` the run and its bounds, `GET /api/status` whether a generation
runs and how many wait, `POST /api/generate` one generation (JSON in, JSON out; 400 with `{"error": ...}`
for a request out of bounds), `GET /files/<generation>/<file>` a file a generation of this session wrote.
A file is looked up by its exact name in the table the app made when it wrote it; the path of a request
is never joined to a folder, so no `..`, encoded `%2e%2e` or absolute path can reach another file. When
the server listens on a loopback address, a request must name that address in its Host header, so a web
page elsewhere cannot reach the app through a DNS name that points to 127.0.0.1.
"""

import errno
import functools
import ipaddress
import json
import logging
import socket
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from typing import Optional

from motiondiff.app.studio import Studio
from motiondiff.core.errors import UserError, find_user_error
from motiondiff.report.player import player_assets, script_json

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024  # bytes of a generate request: a prompt and a few numbers
STATIC = files("motiondiff.app") / "static"
CONTENT_TYPES = {
    ".npy": "application/octet-stream",
    ".bvh": "application/octet-stream",
    ".npz": "application/octet-stream",
    ".json": "application/json",
    ".mp4": "video/mp4",
    ".zip": "application/zip",
    ".obj": "application/octet-stream",
}
# The page's scripts and styles are inline (the player's too); everything else only from the app itself.
PAGE_POLICY = (
    "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; media-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'"
)


def render_page(studio: Studio) -> bytes:
    """The page: its own HTML, CSS and JS with the player's assets and the run's facts inlined (one request)."""
    page = (STATIC / "page.html").read_text()
    parts = {
        "<!--player-assets-->": player_assets(),
        "/*app-css*/": (STATIC / "app.css").read_text(),
        "/*app-js*/": (STATIC / "app.js").read_text(),
        "/*app-info*/": script_json(studio.info()),
    }
    for marker, text in parts.items():
        assert page.count(marker) == 1, marker
        page = page.replace(marker, text)
    return page.encode()


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is this computer's loopback (127.1 and ::ffff:127.0.0.1 too)."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (socket.gaierror, UnicodeError):
        return False
    return bool(addresses) and all(loopback_address(address) for address in addresses)


def loopback_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


class AppServer(ThreadingHTTPServer):
    """A threading server (a waiting generation does not block the page) holding the studio and the page.

    It listens as soon as it is made, so a port in use is refused before the model loads; `serve(studio)`
    then gives it what it serves."""

    daemon_threads = True

    def __init__(self, host: str, port: int):
        if ":" in host:
            self.address_family = socket.AF_INET6
        try:
            super().__init__((host, port), Handler)
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", errno.EADDRINUSE)):
                raise UserError(
                    f"port {port} is in use; choose another with port={port + 1} (port=0: any free port)."
                ) from None
            raise UserError(f"cannot listen on {host}:{port} ({error.strerror}); check host= and port=.") from None
        self.studio, self.page = None, b""
        self.port = self.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}/"
        self.loopback = is_loopback(host)
        names = {shown.lower(), "localhost", "127.0.0.1", "[::1]"} if self.loopback else set()
        self.allowed_hosts = {f"{name}:{self.port}" for name in names} | (names if self.port == 80 else set())
        self.host = host.lower()

    @functools.cached_property
    def own_names(self) -> set:
        """The names this computer answers to on the network: the one it was started with, its own (a reverse lookup,
        done at the first request, not at start-up)."""
        return {"localhost", self.host, socket.gethostname().lower(), socket.getfqdn().lower()}

    def host_allowed(self, header: str) -> bool:
        """Whether a request's Host header names this server as a browser would reach it. On the loopback: one of
        its loopback names. On the network: this port at an IP address or this computer's own name, never another
        domain name (a page whose domain is made to point here, DNS rebinding, cannot use the app)."""
        if self.loopback:
            return header.lower() in self.allowed_hosts
        name, _, port = header.rpartition(":") if not header.endswith("]") else (header, "", "")
        if not name or "]" in port:
            name, port = header, ""
        if (port or "80") != str(self.port):
            return False
        return is_ip_literal(name) or name.lower() in self.own_names

    def serve(self, studio: Studio) -> "AppServer":
        """Serve this studio's page and generations (before serve_forever)."""
        self.studio, self.page = studio, render_page(studio)
        return self


class Handler(BaseHTTPRequestHandler):
    server_version = "motiondiff-app"
    server: AppServer
    timeout = 30  # seconds a connection may wait for the request or its body (a thread each, never forever); not
    # for the answer: send_bytes lifts it, so a large file on a slow network arrives whole

    # ---- routing -----------------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = self.route_path()
        if path is None:
            return
        if path in ("/", "/index.html"):
            self.send_bytes(self.server.page, "text/html; charset=utf-8", {"Content-Security-Policy": PAGE_POLICY})
        elif path == "/api/info":
            self.send_json(HTTPStatus.OK, self.server.studio.info())
        elif path == "/api/status":
            self.send_json(HTTPStatus.OK, self.server.studio.status())
        elif path.startswith("/files/"):
            self.send_generated(path.removeprefix("/files/"))
        else:
            self.not_found()

    def do_POST(self) -> None:
        path = self.route_path()
        if path is None:
            return
        if path != "/api/generate":
            self.not_found()
            return
        body = self.read_json()
        if body is None:
            return
        try:
            result = self.server.studio.generate(body)
        except Exception as error:
            cause = find_user_error(error)
            if cause is None:
                log.exception("generation failed")
                self.send_json(
                    HTTPStatus.INTERNAL_SERVER_ERROR,
                    {"error": f"generation failed ({type(error).__name__}: {error}); the app's log has the details."},
                )
            else:
                self.send_json(HTTPStatus.BAD_REQUEST, {"error": str(cause)})
            return
        self.send_json(HTTPStatus.OK, result)

    def route_path(self):
        """The request's path (without its query), or None once a refusal is sent (wrong Host, not a path)."""
        if not self.server.host_allowed(self.headers.get("Host", "")):
            self.send_json(HTTPStatus.FORBIDDEN, {"error": f"open the app at {self.server.url}"})
            return None
        if not self.path.startswith("/") or self.path.startswith("//"):
            self.not_found()
            return None
        return self.path.split("?", 1)[0].split("#", 1)[0]

    # ---- answers -----------------------------------------------------------------------------------------------

    def send_generated(self, rest: str) -> None:
        """A file of this session's generations, by the exact names the app recorded (never a path joined)."""
        name, _, file = rest.partition("/")
        generation = self.server.studio.generations.get(name)
        path = generation.files.get(file) if generation is not None else None
        if path is None:
            self.not_found()
            return
        suffix = Path(file).suffix
        headers = {}
        if suffix not in (".mp4", ".json"):
            headers["Content-Disposition"] = f'attachment; filename="{name}_{Path(file).name}"'
        try:
            body = path.read_bytes()
        except FileNotFoundError:  # deleted since it was generated
            self.not_found()
            return
        self.send_bytes(body, CONTENT_TYPES.get(suffix, "application/octet-stream"), headers)

    def read_json(self):
        """The request's JSON body, or None once a refusal is sent (not JSON, too large)."""
        if self.headers.get_content_type() != "application/json":
            self.send_json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": "send the request as application/json."})
            return None
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.send_json(HTTPStatus.LENGTH_REQUIRED, {"error": "the request needs a Content-Length."})
            return None
        if not 0 <= length <= MAX_BODY:
            self.send_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"the request is over {MAX_BODY} bytes."})
            return None
        try:
            body = self.rfile.read(length)
        except TimeoutError:  # a Content-Length longer than what came
            self.send_json(HTTPStatus.REQUEST_TIMEOUT, {"error": "the request's body did not come; send it again."})
            return None
        try:
            return json.loads(body or b"null")
        except (ValueError, RecursionError):  # not UTF-8, not JSON, a 5,000-digit number, 5,000 nested lists
            self.send_json(HTTPStatus.BAD_REQUEST, {"error": "the request is not valid JSON."})
            return None

    def not_found(self) -> None:
        self.send_json(HTTPStatus.NOT_FOUND, {"error": "no such page or file"})

    def send_json(self, status: HTTPStatus, data) -> None:
        self.send_bytes(json.dumps(data).encode(), "application/json", status=status)

    def send_bytes(self, body: bytes, content_type: str, headers=None, status: HTTPStatus = HTTPStatus.OK) -> None:
        self.connection.settimeout(None)  # Handler.timeout bounds the wait for the request, not a slow download
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            log.info("the browser left before the answer to %s", self.path)

    def log_message(self, format: str, *args) -> None:  # noqa: A002  (the signature http.server calls)
        log.debug("%s %s", self.address_string(), format % args)


def make_server(studio: Optional[Studio], host, port) -> AppServer:
    """The app's server listening on host:port (port 0: a free one), serving `studio` when given; UserError when it
    cannot listen. host and port come from the config as typed (host=127 is an int): checked here."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise UserError(f"port={port!r} must be a whole number from 0 to 65535 (0 = any free port).")
    if not isinstance(host, str):
        raise UserError(f"host={host!r} is not an address; quote it, e.g. host=127.0.0.1 or host=localhost.")
    try:
        socket.getaddrinfo(host, port)
    except (socket.gaierror, UnicodeError):
        raise UserError(f"host={host!r} is not an address of this computer; use host=127.0.0.1.") from None
    server = AppServer(host, port)
    return server if studio is None else server.serve(studio)
