"""Daemons for the tests: in process (fast, for API and abuse tests) or as the real
``shoal daemon`` command (restart, SIGTERM and kill -9 tests).

Everything listens on 127.0.0.1; the peer side binds 127.0.0.x and bootstraps only
from an in-process router (tests/integration/peers.py). HTTP goes over real loopback
sockets: `requests` (a dependency of qbittorrent-api) in a worker thread, so the
daemon's Trio loop in the same process keeps running while a call blocks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
import trio

import shoal
from shoal.daemon.auth import Authenticator, hash_password
from shoal.daemon.db import Store
from shoal.daemon.server import RunningDaemon, open_daemon
from shoal.daemon.state import DaemonConfig

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

PASSWORD = "correct horse"
#: Generous bound on any one wait (peers pace their DHT queries).
DEADLINE = 60.0


@dataclass
class Web:
    """An in-process daemon and a logged-in `requests` session to it."""

    running: RunningDaemon
    session: requests.Session
    download_dir: Path

    @property
    def url(self) -> str:
        return self.running.url.rstrip("/")

    async def call(self, method: str, path: str, **kw: Any) -> requests.Response:
        """One HTTP request in a thread; relative paths are under /api/v2/."""
        url = path if path.startswith("/") else "/api/v2/" + path
        kw.setdefault("timeout", 30)
        return await trio.to_thread.run_sync(
            lambda: self.session.request(method, self.url + url, **kw)
        )

    async def get(self, path: str, **kw: Any) -> requests.Response:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> requests.Response:
        return await self.call("POST", path, **kw)


@asynccontextmanager
async def web_daemon(
    tmp_path: Path,
    *,
    login: bool = True,
    bypass: bool = False,
    client_config: shoal.ClientConfig | None = None,
) -> AsyncIterator[Web]:
    """`open_daemon` on 127.0.0.1 (free port) over a fresh state dir, logged in."""
    state = tmp_path / "state"
    downloads = tmp_path / "downloads"
    for d in (state, downloads):
        d.mkdir(parents=True, exist_ok=True)
    config = client_config or shoal.ClientConfig(
        bind_host="127.0.0.1", port=0, dht=False, state_dir=state
    )
    # Few PBKDF2 iterations: the format and checks are the same, the test is faster.
    auth = Authenticator("admin", hash_password(PASSWORD, iterations=1000), bypass_localhost=bypass)
    store = await Store.open(state / "shoal.sqlite3")
    try:
        async with (
            shoal.open_client(config) as client,
            open_daemon(
                client, store, DaemonConfig(downloads, state), auth, web=("127.0.0.1", 0)
            ) as running,
        ):
            web = Web(running, requests.Session(), downloads)
            try:
                if login:
                    answer = await web.post(
                        "auth/login", data={"username": "admin", "password": PASSWORD}
                    )
                    assert answer.text == "Ok.", answer.text
                yield web
            finally:
                web.session.close()
    finally:
        with trio.CancelScope(shield=True):
            await store.aclose()


async def poll(what: str, check: Callable[[], Any], interval: float = 0.2) -> Any:
    """Call `check` (blocking, in a thread) until it returns something truthy."""
    with trio.fail_after(DEADLINE):
        while True:
            result = await trio.to_thread.run_sync(check)
            if result:
                return result
            await trio.sleep(interval)


# ---------------------------------------------------------------- the real command


@dataclass
class DaemonProcess:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    record: dict[str, Any]  # the "listening" JSON record


def start_daemon_process(
    workdir: Path, web_port: int, extra: list[str], settings: dict[str, str] | None = None
) -> DaemonProcess:
    """``python -m shoal daemon --json ...``; returns once it printed its URL.

    The test's ``SHOAL_*`` variables are dropped, `settings` (``SHOAL_*`` names) added."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    env |= settings or {}
    log = workdir / f"daemon-{web_port}.log"
    workdir.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shoal",
                "daemon",
                "--json",
                "--web",
                f"127.0.0.1:{web_port}",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            cwd=workdir,
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # bounded: the daemon prints it or exits (EOF)
    if not line:
        proc.wait(timeout=10)
        raise AssertionError(f"daemon exited: {log.read_text(errors='replace')}")
    import json

    record = json.loads(line)
    assert record["event"] == "listening", record
    return DaemonProcess(proc, record["url"].rstrip("/"), log, record)


async def add_magnet(daemon: DaemonProcess, magnet: str) -> str:
    """``torrents/add`` with one magnet on a daemon process (it trusts localhost);
    returns the answer's text, "Ok." when it was added."""
    answer = await trio.to_thread.run_sync(
        lambda: requests.post(
            daemon.url + "/api/v2/torrents/add", data={"urls": magnet}, timeout=30
        )
    )
    return answer.text


def stop_daemon_process(daemon: DaemonProcess, sig: int = signal.SIGTERM) -> int:
    """Signal it and wait (SIGKILL after 10 s): never leaves a process behind."""
    proc = daemon.proc
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
    return proc.returncode
