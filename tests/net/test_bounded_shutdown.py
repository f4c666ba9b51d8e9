"""Leaving `open_client` mid-download is bounded and leaks nothing (issue 6).

The leecher is stopped while everything is busy at once: a peer connection streaming
blocks, pieces being hashed and written, and DHT queries outstanding to a bootstrap
node that never answers (a bound UDP socket nobody reads). The exit must take under
2 s (`SHUTDOWN_BUDGET` is 1.5 s), save the DHT state and the resume data, and leave
no file descriptor and no Trio task behind.
"""

from __future__ import annotations

import os
import random
import socket
from typing import TYPE_CHECKING

import pytest
import trio
import trio.lowlevel
import trio.testing

import shoal
from shoal import torrent_events as tev
from shoal.create import create_torrent
from shoal.metainfo import Metainfo, parse_metainfo

if TYPE_CHECKING:
    from pathlib import Path

SIZE = 24 * 1024 * 1024  # large enough that 1 s of loopback transfer is not the end
PIECE = 64 * 1024

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")


def _payload(root: Path) -> Metainfo:
    data = root / "payload"
    data.mkdir(parents=True)
    (data / "big.bin").write_bytes(random.Random(11).randbytes(SIZE))
    return parse_metainfo(create_torrent(data, piece_length=PIECE))


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _task_count() -> int:
    """Every task in this Trio run, found by walking the nursery tree from the root."""
    root = trio.lowlevel.current_root_task()
    assert root is not None
    count, stack = 0, [root]
    while stack:
        task = stack.pop()
        count += 1
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return count


def _config(**kw: object) -> shoal.ClientConfig:
    base: dict[str, object] = {"bind_host": "127.0.0.1", "port": 0, "dht": False}
    base.update(kw)
    return shoal.ClientConfig(**base)  # type: ignore[arg-type]


async def _leave_mid_download(tmp_path: Path) -> tuple[float, dict[str, str], bool]:
    """Run the scenario; (seconds to leave the leecher's client, leaked fds, task leak)."""
    metainfo = _payload(tmp_path / "seed")
    state = tmp_path / "state"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        silent = blackhole.getsockname()
        fds, tasks = _open_fds(), _task_count()
        async with shoal.open_client(_config()) as seeder:
            seed = await seeder.add(metainfo, save_to=tmp_path / "seed")
            with trio.fail_after(30):
                await seed.wait_complete()
            leech_config = _config(dht=True, bootstrap=(silent,), state_dir=state)
            async with shoal.open_client(leech_config) as leecher:
                t = await leecher.add(
                    metainfo, save_to=tmp_path / "leech", peers=[seeder.listen_address]
                )
                verified = 0
                with trio.fail_after(30):
                    async for event in t.events():
                        verified += isinstance(event, tev.PieceVerified)
                        if verified >= 8:
                            break
                stats = t.statistics()
                assert stats.peers == 1, "the connection is open while we leave"
                assert stats.pieces_done < stats.pieces_total, "still downloading"
                assert leecher.dht is not None
                dht = leecher.dht.statistics()
                assert dht.service.queries_out > 0, "DHT queries are outstanding"
                assert dht.service.datagrams_in == 0, "...and none was answered"
                start = trio.current_time()
            elapsed = trio.current_time() - start
        await trio.testing.wait_all_tasks_blocked()
        leaked = {fd: os.readlink(f"/proc/self/fd/{fd}") for fd in _open_fds() - fds}
    assert (state / "dht.json").is_file()
    assert len(list((state / "resume").iterdir())) == 1, "resume data was saved"
    return elapsed, leaked, _task_count() != tasks


async def test_leaving_open_client_mid_download_is_bounded(tmp_path: Path) -> None:
    elapsed, leaked, task_leak = await _leave_mid_download(tmp_path)
    assert elapsed < 2.0, f"leaving open_client took {elapsed:.2f} s"
    assert not task_leak, "a task outlived its client"
    sockets = {fd: path for fd, path in leaked.items() if path.startswith("socket:")}
    assert not sockets, f"sockets outlived their client: {sockets}"


async def test_leaving_open_client_closes_every_file(tmp_path: Path) -> None:
    _, leaked, _ = await _leave_mid_download(tmp_path)
    assert not leaked, f"outlived its client: {leaked}"
