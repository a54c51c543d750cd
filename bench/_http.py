"""HTTP helpers for the benchmarks: gunicorn on loopback, and a tiny cookie-keeping client.

Everything talks to 127.0.0.1 only; every wait is bounded.
"""

import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def server_env() -> dict[str, str]:
    """The environment gunicorn (and collectstatic) run with: the bench settings, the
    database `fresh_database` set up, DEBUG off."""
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["DEBUG"] = "False"
    env.setdefault("LOG_LEVEL", "ERROR")  # 4xx are counted by the clients, not logged
    return env


def collectstatic() -> None:
    """Collect static files into BENCH_STATIC_ROOT: whole pages need the manifest."""
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=server_env(),
        check=True,
        timeout=300,
    )


@dataclass(frozen=True)
class Server:
    base: str  # http://127.0.0.1:PORT
    log: str  # gunicorn's and Django's output
    pid: int  # the gunicorn master


@contextlib.contextmanager
def gunicorn(*, workers: int = 2, port: int | None = None, extra: tuple[str, ...] = ()):
    """Serve the project (bench settings) with gunicorn on 127.0.0.1; yield the base URL.

    Stops the server (SIGTERM, then SIGKILL after 15 s) on the way out, whatever happens.
    Yields (base URL, path of the log file with gunicorn's and Django's output).
    """
    with gunicorn_server(workers=workers, port=port, extra=extra) as server:
        yield server.base, server.log


@contextlib.contextmanager
def gunicorn_server(
    *,
    workers: int = 2,
    port: int | None = None,
    extra: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
):
    """`gunicorn`, yielding a `Server` (with the master's pid); `env` is laid over
    `server_env()` (another DATABASE_URL, say)."""
    port = port or free_port()
    handle, log = tempfile.mkstemp(prefix="bench-gunicorn-", suffix=".log")
    os.close(handle)
    command = [
        str(BIN / "gunicorn"),
        "config.wsgi:application",
        "--bind",
        f"{HOST}:{port}",
        "--workers",
        str(workers),
        "--timeout",
        "60",
        "--log-level",
        "warning",
        "--error-logfile",
        log,
        *extra,
    ]
    # Django logs to stderr: into the same file, so a 500's traceback is there to check.
    with open(log, "ab") as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**server_env(), **(env or {})},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{Path(log).read_text()}")
            try:
                status, _, _ = request("GET", f"http://{HOST}:{port}/bench/bare/", timeout=2)
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start:\n{Path(log).read_text()}")
            time.sleep(0.2)
        yield Server(f"http://{HOST}:{port}", log, process.pid)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


def children(pid: int) -> list[int]:
    """The child processes of `pid` (gunicorn's workers), from /proc."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return sorted(found)


def rss_kib(pid: int) -> int:
    """A process's resident memory (VmRSS), in KiB; 0 if it has gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def request(method: str, url: str, *, headers=None, body: bytes | None = None, timeout=30):
    """One request on a new connection; (status, headers as a lower-cased dict with
    Set-Cookie values listed, body)."""
    match = re.match(r"http://([^/:]+):(\d+)(/.*)?$", url)
    host, port, path = match.group(1), int(match.group(2)), match.group(3) or "/"
    assert host == HOST, "loopback only"
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        found: dict = {}
        for name, value in response.getheaders():
            name = name.lower()
            if name == "set-cookie":
                found.setdefault(name, []).append(value)
            else:
                found[name] = value
        return response.status, found, data
    finally:
        connection.close()


class Browser:
    """Keeps cookies (Secure ones too: this is loopback HTTP) and sends the CSRF token the
    way the pages do: the form field for form posts, X-CSRFToken for HTMX."""

    def __init__(self, base: str, *, timeout: float = 30):
        self.base = base
        self.cookies: dict[str, str] = {}
        self.timeout = timeout
        self.token: str | None = None  # the masked CSRF token of the last page, if read

    @property
    def csrf(self) -> str:
        return self.token or self.cookies.get("csrftoken", "")

    def _headers(self, extra=None) -> dict:
        headers = {"Host": "127.0.0.1"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        headers.update(extra or {})
        return headers

    def _keep(self, headers) -> None:
        for raw in headers.get("set-cookie", []):
            cookie = SimpleCookie()
            cookie.load(raw)
            for name, morsel in cookie.items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value

    def get(self, path: str, headers=None):
        status, found, body = request(
            "GET", self.base + path, headers=self._headers(headers), timeout=self.timeout
        )
        self._keep(found)
        return status, found, body

    def post(self, path: str, data: dict, headers=None):
        payload = dict(data)
        payload.setdefault("csrfmiddlewaretoken", self.csrf)
        extra = {"Content-Type": "application/x-www-form-urlencoded"}
        extra.update(headers or {})
        status, found, body = request(
            "POST",
            self.base + path,
            headers=self._headers(extra),
            body=urlencode(payload).encode(),
            timeout=self.timeout,
        )
        self._keep(found)
        return status, found, body
