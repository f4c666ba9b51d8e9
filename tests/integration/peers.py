"""Real peers on loopback for the interop tests: libtorrent sessions, aria2c, shoal itself.

Everything binds to 127.0.0.0/8 and nothing knows a public router: libtorrent's
bootstrap list is empty and LSD/UPnP/NAT-PMP/IP notifier are off, aria2c gets one
``--dht-entry-point`` and no LPD, and shoal is always given ``--bootstrap``. Peers meet
through one in-process shoal DHT node (`dht_router`). Each party gets its own 127.0.0.x
address because DHT nodes keep one routing entry per IP.

Every helper is a context manager that stops what it started in ``finally``; every
wait is bounded by a ``trio.fail_after`` at the call site or a deadline argument.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
import trio

from shoal.dht_client import DHT, open_dht_node
from shoal.metainfo import parse_metainfo
from tests.lt_helpers import loopback_settings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from pathlib import Path
    from types import ModuleType

#: Under CI a missing peer implementation is a failure, never a skip.
IN_CI = os.environ.get("CI") == "true"
#: Generous bound on any one wait: libtorrent and aria2 pace their DHT queries.
DEADLINE = 60.0

ROUTER_IP = "127.0.0.1"
SHOAL_IP = "127.0.0.4"  # shoal get
SHOAL_SEED_IP = "127.0.0.6"  # shoal seed
LT_SEED_IP = "127.0.0.2"
LT_LEECH_IP = "127.0.0.3"
ARIA2_IP = "127.0.0.5"


def require_libtorrent() -> ModuleType:
    """The libtorrent module; skips locally, fails under ``CI=true``, when it is missing."""
    try:
        import libtorrent
    except ImportError:
        if IN_CI:
            raise
        pytest.skip(
            "libtorrent is not installed (pip install libtorrent==2.1.1)", allow_module_level=True
        )
    return libtorrent


def require_aria2c() -> str:
    """Path of aria2c; skips locally, fails under ``CI=true``, when it is missing."""
    path = shutil.which("aria2c")
    if path is None:
        if IN_CI:
            pytest.fail("aria2c is not installed; apt-get install aria2")
        pytest.skip("aria2c is not installed; apt-get install aria2", allow_module_level=True)
    return path


def free_port(ip: str) -> int:
    """A port free for both TCP and UDP on `ip` (aria2c and libtorrent need one up front)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((ip, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((ip, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free TCP+UDP port")  # pragma: no cover


# ---------------------------------------------------------------- content


@dataclass(frozen=True)
class Content:
    """A torrent made by libtorrent and the files it describes (under `root`)."""

    torrent: bytes
    root: Path  # the directory holding `name`
    name: str
    files: dict[str, bytes]  # path relative to `root` → content

    @property
    def info_hash(self) -> str:
        return str(parse_metainfo(self.torrent).info_hash)

    @property
    def magnet(self) -> str:
        """Trackerless: only the DHT can find peers for it."""
        return f"magnet:?xt=urn:btih:{self.info_hash}&dn={self.name}"

    def write_torrent(self, path: Path) -> Path:
        path.write_bytes(self.torrent)
        return path

    def assert_identical(self, root: Path) -> None:
        for rel, data in self.files.items():
            got = (root / rel).read_bytes()
            assert got == data, f"{rel}: {len(got)} bytes differ from the {len(data)} expected"


def make_content(
    root: Path,
    name: str,
    sizes: list[int],
    *,
    v1_only: bool = False,
    piece_size: int = 32 * 1024,
    seed: int = 0,
) -> Content:
    """Random files of `sizes` in ``root/name/`` hashed by libtorrent.

    A hybrid (v1+v2, libtorrent's default) torrent aligns every file to a piece, so a
    multi-file one carries BEP 47 pad files; ``v1_only`` makes a plain v1 torrent.
    """
    lt = require_libtorrent()
    rng = random.Random(seed)
    files: dict[str, bytes] = {}
    for i, size in enumerate(sizes):
        rel = f"{name}/file{i}.bin" if len(sizes) > 1 else name
        data = rng.randbytes(size)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        files[rel] = data
    entries = lt.list_files(str(root / name))
    flags = lt.create_torrent.v1_only if v1_only else 0
    ct = lt.create_torrent(entries, piece_size, flags=flags)
    lt.set_piece_hashes(ct, str(root))
    return Content(lt.bencode(ct.generate()), root, name, files)


# ---------------------------------------------------------------- DHT


@asynccontextmanager
async def dht_router() -> AsyncIterator[DHT]:
    """A shoal DHT node on 127.0.0.1 that every peer bootstraps from."""
    async with open_dht_node((ROUTER_IP, 0), rng=random.Random(7)) as node:
        yield node


def hostport(router: DHT) -> str:
    return f"{router.address[0]}:{router.address[1]}"


async def wait_announced(router: DHT, count: int = 1) -> None:
    """Wait until the router stores peers for `count` info-hashes.

    With a one-node DHT every announce lands on the router, so this tells us a seed is
    findable; waiting for it avoids racing a leecher's single lookup against the
    seed's first announce (libtorrent repeats lookups only every 15 minutes).
    """
    with trio.fail_after(DEADLINE):
        while True:
            if router.statistics().node.info_hashes_stored >= count:
                return
            await trio.sleep(0.05)


# ---------------------------------------------------------------- libtorrent


@contextmanager
def lt_session(
    ip: str,
    router: DHT,
    *,
    forced_encryption: bool = False,
    dht: bool = True,
    utp_only: bool = False,
) -> Iterator[Any]:
    """A libtorrent session on `ip` that knows only `router` (added as a DHT node).

    ``utp_only`` turns TCP off both ways: every peer byte then goes over uTP (BEP 29).
    """
    lt = require_libtorrent()
    settings = loopback_settings(ip, port=free_port(ip), dht=dht) | {
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": lt.alert_category.error | lt.alert_category.status,
    }
    if utp_only:
        settings |= {"enable_incoming_tcp": False, "enable_outgoing_tcp": False}
    if forced_encryption:
        settings |= {
            "out_enc_policy": int(lt.enc_policy.pe_forced),
            "in_enc_policy": int(lt.enc_policy.pe_forced),
            "allowed_enc_level": int(lt.enc_level.pe_rc4),
        }
    ses = lt.session(settings)
    try:
        if dht:
            ses.add_dht_node(router.address)
        yield ses
    finally:
        ses.apply_settings({"enable_dht": False})
        ses.pause()
        for handle in ses.get_torrents():
            ses.remove_torrent(handle)
        del ses  # the destructor joins libtorrent's threads


def lt_seed(ses: Any, content: Content) -> Any:
    """Add `content` as a torrent whose data is already on disk (checked, then seeded)."""
    lt = require_libtorrent()
    params = lt.load_torrent_buffer(content.torrent)
    params.save_path = str(content.root)
    return ses.add_torrent(params)


def lt_leech(ses: Any, magnet: str, save_path: Path) -> Any:
    lt = require_libtorrent()
    params = lt.parse_magnet_uri(magnet)
    params.save_path = str(save_path)
    return ses.add_torrent(params)


async def wait_lt(handle: Any, what: str, done: Callable[[Any], bool]) -> Any:
    """Poll the handle's status until `done(status)`; fails after `DEADLINE` seconds."""
    with trio.fail_after(DEADLINE):
        while True:
            status = handle.status()
            if done(status):
                return status
            if status.errc.value():
                raise AssertionError(f"libtorrent {what}: {status.errc.message()}")
            await trio.sleep(0.1)


async def wait_lt_seeding(handle: Any) -> Any:
    return await wait_lt(handle, "seeding", lambda s: s.is_seeding)


# ---------------------------------------------------------------- aria2c


@contextmanager
def aria2c(
    args: list[str], cwd: Path, router: DHT, *, forced_encryption: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    """An aria2c process on 127.0.0.5 with IPv4 DHT only, joined through `router`."""
    binary = require_aria2c()
    port = free_port(ARIA2_IP)
    cmd = [
        binary,
        "--no-conf",
        f"--interface={ARIA2_IP}",
        "--disable-ipv6=true",
        "--enable-dht=true",
        "--enable-dht6=false",
        f"--dht-listen-port={port}",
        f"--listen-port={port}",
        f"--dht-entry-point={hostport(router)}",
        f"--dht-file-path={cwd / 'dht.dat'}",
        "--bt-enable-lpd=false",
        "--enable-peer-exchange=false",
        "--file-allocation=none",
        "--console-log-level=warn",
        "--summary-interval=0",
        "--check-certificate=false",
        f"--dir={cwd}",
    ]
    if forced_encryption:
        cmd += ["--bt-require-crypto=true", "--bt-min-crypto-level=arc4"]
    log = (cwd / "aria2c.log").open("wb")
    proc = subprocess.Popen([*cmd, *args], cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        stop_process(proc)
        log.close()


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> None:
    """Signal, wait up to 10 s, then SIGKILL: never leaves a process behind."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def wait_exit(proc: subprocess.Popen[Any], seconds: float = DEADLINE) -> int:
    with trio.fail_after(seconds):
        return await trio.to_thread.run_sync(proc.wait, abandon_on_cancel=True)


# ---------------------------------------------------------------- shoal


@dataclass
class Shoal:
    """A ``python -m shoal … --json`` subprocess and the JSON records it printed so far."""

    proc: trio.Process
    stderr_path: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    _buffer: bytes = b""

    async def wait_record(
        self, event: str, where: Callable[[dict[str, Any]], bool] = bool
    ) -> dict[str, Any]:
        """The first record of type `event` (seen or to come) matching `where`."""
        with trio.fail_after(DEADLINE):
            index = 0
            while True:
                while index < len(self.records):
                    record = self.records[index]
                    index += 1
                    if record.get("event") == event and where(record):
                        return record
                if not await self._read_more():
                    raise AssertionError(f"shoal exited before a {event!r} record: {self.stderr}")

    async def _read_more(self) -> bool:
        assert self.proc.stdout is not None
        chunk = await self.proc.stdout.receive_some(65536)
        if not chunk:
            return False
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        self.records.extend(json.loads(line) for line in lines if line.strip())
        return True

    async def drain(self) -> None:
        """Read stdout to EOF (after the process ended)."""
        with trio.fail_after(DEADLINE):
            while await self._read_more():
                pass

    async def wait(self, seconds: float = DEADLINE) -> int:
        with trio.fail_after(seconds):
            await self.drain()
            return await self.proc.wait()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def events(self, event: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("event") == event]


@asynccontextmanager
async def shoal_process(args: list[str], workdir: Path) -> AsyncIterator[Shoal]:
    """Run ``python -m shoal ARGS --json``; on exit SIGINT it (then SIGKILL after 10 s)."""
    env = {k: v for k, v in os.environ.items() if k not in {"FORCE_COLOR", "TTY_COMPATIBLE"}}
    await trio.Path(workdir).mkdir(parents=True, exist_ok=True)
    stderr_path = workdir / "shoal.stderr"
    with stderr_path.open("wb") as stderr:
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "shoal", *args, "--json"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            cwd=workdir,
        )
    shoal = Shoal(proc, stderr_path)
    try:
        yield shoal
    finally:
        with trio.CancelScope(shield=True):
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)
                with trio.move_on_after(10):
                    await proc.wait()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            if proc.stdout is not None:
                await proc.stdout.aclose()
