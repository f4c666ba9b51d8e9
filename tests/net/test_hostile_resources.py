"""Resource exhaustion by one remote party, against a real ``shoal seed`` process.

Each test reproduces an attack from issue 10 that used to work and checks the bound
that now stops it: connections that never send a byte (a storm from one IP under
``RLIMIT_NOFILE`` 160, and EMFILE in ``accept`` from 24 IPs under 90;
`net/listener.py`), a peer that requests and never reads (`MAX_SEND_BACKLOG` in
`session/send_budget.py`), many of them against one client (its send budget,
`session/send_budget.py`), and keep-alive-only idlers filling every slot (peer turnover
in `torrent.py`). Each also checks that an honest peer still downloads.
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio

import shoal
from shoal.create import create_torrent
from shoal.metainfo import Metainfo, parse_metainfo
from shoal.swarm.turnover import TurnoverPolicy
from shoal.testing.hostile import (
    AttackStats,
    connect_storm,
    keepalive_idlers,
    request_and_never_read,
    send_then_wait_close,
)
from tests.integration.peers import dht_router, hostport

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.integration

SEED_IP = "127.0.0.7"
ATTACKER = "127.0.0.66"


def make(root: Path, size: int, piece_length: int) -> tuple[Path, Metainfo]:
    data = root / "data"
    data.mkdir(parents=True)
    (data / "x.bin").write_bytes(random.Random(3).randbytes(size))
    raw = create_torrent(data / "x.bin", piece_length=piece_length)
    torrent = root / "x.torrent"
    torrent.write_bytes(raw)
    return torrent, parse_metainfo(raw)


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@asynccontextmanager
async def seed_process(
    torrent: Path, data: Path, workdir: Path, *, nofile: int | None = None
) -> AsyncIterator[tuple[trio.Process, tuple[str, int]]]:
    """``shoal seed`` on SEED_IP (optionally under a low fd limit); yields (process, addr)."""

    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    async with dht_router() as router:
        args = [sys.executable, "-m", "shoal", "seed", str(torrent), "--data", str(data)]
        args += ["--bind", SEED_IP, "--port", "0", "--bootstrap", hostport(router), "--json"]
        proc = await trio.lowlevel.open_process(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=workdir,
            preexec_fn=limit,
        )
        try:
            addr = await _listening(proc)
            yield proc, addr
        finally:
            with trio.CancelScope(shield=True):
                if proc.returncode is None:
                    proc.kill()
                await proc.wait()
                if proc.stdout is not None:
                    await proc.stdout.aclose()


async def _listening(proc: trio.Process) -> tuple[str, int]:
    """The listen address, once the seeder has checked its data and is seeding."""
    assert proc.stdout is not None
    buf = b""
    addr: tuple[str, int] | None = None
    with trio.fail_after(60):
        while True:
            chunk = await proc.stdout.receive_some(65536)
            assert chunk, "shoal seed exited early"
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                record: dict[str, Any] = json.loads(line) if line.startswith(b"{") else {}
                if record.get("event") == "listening":
                    addr = (record["host"], record["port"])
                if record.get("event") == "progress" and record.get("state") == "seeding":
                    assert addr is not None
                    return addr


async def honest_download(
    metainfo: Metainfo, addr: tuple[str, int], where: Path, *, deadline: float = 30
) -> None:
    cfg = shoal.ClientConfig(bind_host="127.0.0.1", port=0, dht=False)
    async with shoal.open_client(cfg) as leecher:
        t = await leecher.add(metainfo, save_to=where, peers=[addr])
        with trio.fail_after(deadline):
            await t.wait_complete()


async def test_a_connect_storm_cannot_exhaust_the_seeders_fds(tmp_path: Path) -> None:
    torrent, metainfo = make(tmp_path, 300_000, 16384)
    async with seed_process(torrent, tmp_path / "data", tmp_path, nofile=160) as (proc, addr):
        stats = AttackStats(source_host=ATTACKER)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(connect_storm, addr, 300, stats)
            with trio.fail_after(30):
                while stats.connected + stats.refused < 300:  # noqa: ASYNC110
                    await trio.sleep(0.05)
            await trio.sleep(1.0)
            # Was: "Too many open files" escaped the accept loop and the seeder exited.
            assert proc.returncode is None, "the seeder died (Too many open files)"
            assert _fds(proc.pid) < 60, "at most MAX_HANDSHAKING_PER_IP held per attacker IP"
            await honest_download(metainfo, addr, tmp_path / "leech")
            nursery.cancel_scope.cancel()


async def test_running_out_of_fds_in_accept_backs_off_instead_of_exiting(
    tmp_path: Path,
) -> None:
    # 24 attacker IPs x 8 silent connections: under the per-IP cap, but past the 90
    # descriptors the seeder may hold, so accept() itself fails with EMFILE.
    torrent, metainfo = make(tmp_path, 300_000, 16384)
    async with seed_process(torrent, tmp_path / "data", tmp_path, nofile=90) as (proc, addr):
        storms = [AttackStats(source_host=f"127.0.1.{i + 1}") for i in range(24)]
        async with trio.open_nursery() as nursery:
            for stats in storms:
                nursery.start_soon(connect_storm, addr, 8, stats)
            with trio.fail_after(30):
                while sum(s.connected + s.refused for s in storms) < 24 * 8:  # noqa: ASYNC110
                    await trio.sleep(0.05)
            await trio.sleep(1.0)
            assert proc.returncode is None, "the seeder died (Too many open files)"
            nursery.cancel_scope.cancel()
        # The storm is gone; the seeder serves an honest peer again.
        await honest_download(metainfo, addr, tmp_path / "leech")


async def test_a_peer_that_never_reads_cannot_grow_the_seeders_memory(tmp_path: Path) -> None:
    torrent, metainfo = make(tmp_path, 64 * 1024 * 1024, 1024 * 1024)
    async with seed_process(torrent, tmp_path / "data", tmp_path) as (proc, addr):
        base = _rss(proc.pid)
        stats = AttackStats(source_host=ATTACKER)
        grown = 0
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: request_and_never_read(
                    addr, metainfo.info_hash, stats, pieces=64, piece_length=1 << 20, rounds=200
                )
            )
            for _ in range(40):  # 20 s; stop early rather than eat the machine's memory
                await trio.sleep(0.5)
                grown = max(grown, _rss(proc.pid) - base)
                if grown > 96 * 1024 * 1024:
                    break
            nursery.cancel_scope.cancel()
        # Was: > 96 MiB within seconds. Now reading stops past MAX_SEND_BACKLOG.
        assert "unchoked" in stats.notes
        assert grown < 24 * 1024 * 1024, f"seeder RSS grew by {grown >> 20} MiB"
        await honest_download(metainfo, addr, tmp_path / "leech")


async def test_many_peers_that_never_read_stay_within_the_client_send_budget(
    tmp_path: Path,
) -> None:
    # Twelve attackers (one IP each, all unchoked: 16 upload slots), each asking for
    # every block and reading nothing. Each alone stays under its 1 MiB cap, but
    # together they held about 1-2 MiB apiece; the client-wide budget bounds the sum
    # (`shoal.session.send_budget`) while an honest leecher still completes.
    budget = 2 * 1024 * 1024
    _, metainfo = make(tmp_path, 16 * 1024 * 1024, 256 * 1024)
    cfg = shoal.ClientConfig(
        bind_host=SEED_IP, port=0, dht=False, upload_slots=16, max_send_queued=budget
    )
    async with shoal.open_client(cfg) as seeder:
        seeding = await seeder.add(metainfo, save_to=tmp_path / "data")
        with trio.fail_after(30):
            await seeding.wait_complete()
        addr = seeder.listen_address
        attackers = [AttackStats(source_host=f"127.0.0.{70 + i}") for i in range(12)]
        async with trio.open_nursery() as nursery:
            for n, stats in enumerate(attackers):
                nursery.start_soon(
                    lambda n=n, stats=stats: request_and_never_read(
                        addr, metainfo.info_hash, stats, pieces=64, piece_length=256 * 1024, peer=n
                    )
                )
            with trio.fail_after(10):
                while sum("unchoked" in s.notes for s in attackers) < len(attackers):  # noqa: ASYNC110
                    await trio.sleep(0.05)
            await trio.sleep(2.0)  # let every attacker fill what it can
            await honest_download(metainfo, addr, tmp_path / "leech", deadline=10)
            peak = seeder.statistics().send_queued_peak
            nursery.cancel_scope.cancel()
    # Was: about 25 MiB queued (12 x (1 MiB in the engine + 1 MiB being written)).
    # Now about 3.3 MiB: the budget, plus one peer's cap overshooting it, plus a
    # squeezed window (64 KiB, twice: queued and being written) per connection.
    assert peak < budget + 4 * 1024 * 1024, f"{peak >> 10} KiB queued at the peak"


async def test_keepalive_idlers_cannot_lock_out_an_honest_leecher(tmp_path: Path) -> None:
    data = tmp_path / "seed"
    data.mkdir()
    (data / "x.bin").write_bytes(random.Random(4).randbytes(100_000))
    metainfo = parse_metainfo(create_torrent(data / "x.bin", piece_length=16384))
    cfg = shoal.ClientConfig(bind_host="127.0.0.1", port=0, dht=False, max_peers_per_torrent=4)
    async with shoal.open_client(cfg) as seeder:
        t = await seeder.add(metainfo, save_to=data)
        await t.wait_complete()
        t.engine.turnover = TurnoverPolicy(idle_after=2.0)  # default 120 s: too long here
        stats = AttackStats(source_host=ATTACKER)
        async with trio.open_nursery() as nursery:
            addr = seeder.listen_address
            nursery.start_soon(keepalive_idlers, addr, metainfo.info_hash, 8, stats)
            with trio.fail_after(10):
                while stats.connected < 8:  # noqa: ASYNC110 (polling the attacker)
                    await trio.sleep(0.05)
            await trio.sleep(1.0)
            assert len(t.sessions) == 4, "the idlers hold every slot"
            # A peer refused for lack of a slot makes the seeder turn an idler over
            # (was: the idlers kept every slot for as long as they liked).
            probe = AttackStats()
            with trio.move_on_after(5):
                await send_then_wait_close(addr, metainfo.info_hash, b"", probe)
            with trio.fail_after(10):
                while len(t.sessions) >= 4:  # noqa: ASYNC110 (polling the victim)
                    await trio.sleep(0.1)
            await honest_download(metainfo, addr, tmp_path / "leech")
            assert stats.closed_by_victim >= 1
            nursery.cancel_scope.cancel()
