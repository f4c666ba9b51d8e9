"""Real SOCKS5 servers for tests: Debian's dante-server (``danted``, which supports UDP
ASSOCIATE) and ``microsocks`` (TCP CONNECT only, with optional username/password).

Each is started on a loopback address with a generated config and stopped by the
test (its whole process group: danted forks workers). Missing programs skip locally
and fail under ``CI=true``: ``.ci/run`` installs both. Far-end helpers record the
source address of everything that reaches them, which is how the tests prove that
only the proxy's external address ever talks to the far side.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import pytest
import trio

from shoal.bencoding import decode
from shoal.dht import krpc
from tests.integration.peers import IN_CI, free_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

CLIENT_IP = "127.0.0.1"  # where shoal's sockets bind
PROXY_IP = "127.0.0.2"  # where the proxy listens
EXTERNAL_IP = "127.0.0.3"  # the proxy's outgoing address: the only one the far side may see
FAR_IP = "127.0.0.5"  # the echo server / DHT node / peer behind the proxy


def require_program(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is not installed; apt-get install {package}")
        pytest.skip(f"{name} is not installed; apt-get install {package}")
    return path


@dataclass
class Proxy:
    """A running SOCKS5 server."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    log: Path
    #: The command line, for `restart`.
    args: list[str] = field(default_factory=list)

    def url(self, user: str | None = None, password: str | None = None) -> str:
        creds = f"{user}:{password}@" if user is not None else ""
        return f"socks5://{creds}{self.host}:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    async def restart(self) -> None:
        """Start the server again on the same address and port (after `stop`)."""
        self.stop()
        self.process = _spawn(self.args, self.log)
        await _wait_listening(self)


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start a server in its own process group (so `Proxy.stop` reaches its workers)."""
    with log.open("ab") as out:
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def _wait_listening(proxy: Proxy) -> None:
    with trio.fail_after(20):
        while True:
            if proxy.process.poll() is not None:
                raise RuntimeError(f"proxy exited: {proxy.log.read_text(errors='replace')[-2000:]}")
            try:
                stream = await trio.open_tcp_stream(proxy.host, proxy.port)
            except OSError:
                await trio.sleep(0.05)
                continue
            await stream.aclose()
            return


@asynccontextmanager
async def run_dante(tmp_path: Path) -> AsyncIterator[Proxy]:
    """danted on PROXY_IP, relaying from EXTERNAL_IP, loopback clients and targets only."""
    exe = require_program("danted", "dante-server")
    port = free_port(PROXY_IP)
    log = tmp_path / "danted.log"
    conf = tmp_path / "danted.conf"
    conf.write_text(
        f"logoutput: {log}\n"
        f"internal: {PROXY_IP} port = {port}\n"
        f"external: {EXTERNAL_IP}\n"
        "clientmethod: none\n"
        "socksmethod: none\n"
        "user.privileged: root\n"
        "user.unprivileged: nobody\n"
        "client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }\n"
        "socks pass { from: 127.0.0.0/8 to: 127.0.0.0/8"
        " command: connect udpassociate udpreply }\n"
    )
    args = [exe, "-f", str(conf), "-p", str(tmp_path / "danted.pid"), "-N", "1"]
    proxy = Proxy(_spawn(args, log), PROXY_IP, port, log, args)
    try:
        await _wait_listening(proxy)
        yield proxy
    finally:
        proxy.stop()


@asynccontextmanager
async def run_microsocks(
    tmp_path: Path, user: str | None = None, password: str | None = None
) -> AsyncIterator[Proxy]:
    """microsocks on PROXY_IP, connecting out from EXTERNAL_IP."""
    exe = require_program("microsocks", "microsocks")
    port = free_port(PROXY_IP)
    log = tmp_path / "microsocks.log"
    args = [exe, "-i", PROXY_IP, "-p", str(port), "-b", EXTERNAL_IP]
    if user is not None and password is not None:
        args += ["-u", user, "-P", password]
    process = _spawn(args, log)
    proxy = Proxy(process, PROXY_IP, port, log)
    try:
        await _wait_listening(proxy)
        yield proxy
    finally:
        proxy.stop()


@dataclass
class Recorder:
    """Source addresses seen by a far-end server."""

    port: int = 0
    sources: list[str] = field(default_factory=list)


@asynccontextmanager
async def run_echo_server() -> AsyncIterator[Recorder]:
    """A TCP echo server on FAR_IP that records who connects."""
    rec = Recorder()

    async def echo(stream: trio.SocketStream) -> None:
        rec.sources.append(stream.socket.getpeername()[0])
        async with stream:
            try:
                while data := await stream.receive_some(65536):
                    await stream.send_all(data)
            except trio.BrokenResourceError:
                pass

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, echo, 0, host=FAR_IP))
        rec.port = listeners[0].socket.getsockname()[1]
        yield rec
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def run_krpc_responder() -> AsyncIterator[Recorder]:
    """A UDP DHT node on FAR_IP answering every KRPC ping, recording every source."""
    rec = Recorder()
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind((FAR_IP, 0))
    rec.port = sock.getsockname()[1]

    async def serve() -> None:
        while True:
            data, src = await sock.recvfrom(2048)
            rec.sources.append(src[0])
            msg = krpc.decode_message(data)
            if isinstance(msg, krpc.PingQuery):
                reply = krpc.Response(t=msg.t, node_id=b"R" * 20)
                await sock.sendto(krpc.encode_message(reply), src)

    with sock:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            yield rec
            nursery.cancel_scope.cancel()


def krpc_ping(tid: bytes) -> bytes:
    return krpc.encode_message(krpc.PingQuery(t=tid, node_id=b"Q" * 20))


def is_ping_reply(data: bytes, tid: bytes) -> bool:
    msg = decode(data)
    return isinstance(msg, dict) and msg.get(b"t") == tid and msg.get(b"y") == b"r"
