"""Soak test: a churning loopback swarm around one ``shoal seed``, sampling its RSS and fds.

Usage:
    python tools/soak.py [--seconds 180] [--leechers 4] [--size-mib 4] [--interval 5]

A ``shoal seed`` process (on 127.0.0.8, bootstrapping from an in-process DHT node on
127.0.0.1) serves one torrent for `--seconds`. Meanwhile waves of in-process leechers
(`open_client`, 127.0.0.1) join, download the whole torrent, verify it and leave, and
each wave also sends a little hostility (a handshake-then-close burst, a malformed
stream, a few idle connections from 127.0.0.66). Every `--interval` seconds the
seeder's RSS and open fds are sampled from /proc. At the end a table and a summary
are printed; memory and fds should be flat (bounded), not growing with the number of
leechers served. Exit status 1 if the seeder died or a download failed.

Not part of the test suite (it runs for minutes); loopback only, every process and
task it starts is stopped on the way out.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import trio

import shoal
from shoal.create import create_torrent
from shoal.dht_client import open_dht_node
from shoal.metainfo import Metainfo, parse_metainfo
from shoal.testing.hostile import (
    AttackStats,
    bad_frames,
    connect_storm,
    handshake_then_close,
    send_then_wait_close,
)

SEED_IP = "127.0.0.8"
ATTACKER = "127.0.0.66"


def _proc_stats(pid: int) -> tuple[int, int]:
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    return rss, len(list(Path(f"/proc/{pid}/fd").iterdir()))


async def _wait_seeding(proc: trio.Process) -> tuple[str, int]:
    assert proc.stdout is not None
    buf, addr = b"", None
    with trio.fail_after(120):
        while True:
            chunk = await proc.stdout.receive_some(65536)
            if not chunk:
                raise RuntimeError("shoal seed exited before seeding")
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                rec: dict[str, Any] = json.loads(line) if line.startswith(b"{") else {}
                if rec.get("event") == "listening":
                    addr = (rec["host"], rec["port"])
                elif rec.get("event") == "progress" and rec.get("state") == "seeding":
                    assert addr is not None
                    return addr


async def _discard(stream: trio.abc.ReceiveStream) -> None:
    while await stream.receive_some(65536):
        pass


async def _leecher(meta: Metainfo, addr: tuple[str, int], where: Path, done: list[int]) -> None:
    cfg = shoal.ClientConfig(bind_host="127.0.0.1", port=0, dht=False)
    async with shoal.open_client(cfg) as client:
        t = await client.add(meta, save_to=where, peers=[addr])
        with trio.fail_after(120):
            await t.wait_complete()
    done[0] += 1


async def _hostility(meta: Metainfo, addr: tuple[str, int]) -> None:
    stats = AttackStats(source_host=ATTACKER)
    await handshake_then_close(addr, meta.info_hash, 20, stats)
    frames = bad_frames(meta.info.num_pieces)
    with trio.move_on_after(5):
        await send_then_wait_close(addr, meta.info_hash, frames["oversized frame"], stats)
    with trio.move_on_after(3):
        await connect_storm(addr, 10, stats)


async def soak(args: argparse.Namespace, root: Path) -> int:
    data = root / "data"
    data.mkdir()
    (data / "soak.bin").write_bytes(random.Random(1).randbytes(args.size_mib << 20))
    raw = create_torrent(data / "soak.bin", piece_length=256 * 1024)
    torrent = root / "soak.torrent"
    torrent.write_bytes(raw)
    meta = parse_metainfo(raw)
    samples: list[tuple[float, int, int, int]] = []
    done = [0]
    failures = 0
    async with open_dht_node(("127.0.0.1", 0)) as router:
        cmd = [sys.executable, "-m", "shoal", "seed", str(torrent), "--data", str(data)]
        cmd += ["--bind", SEED_IP, "--port", "0", "--json"]
        cmd += ["--bootstrap", f"{router.address[0]}:{router.address[1]}"]
        proc = await trio.lowlevel.open_process(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=root
        )
        try:
            addr = await _wait_seeding(proc)
            start = trio.current_time()
            async with trio.open_nursery() as nursery:
                assert proc.stdout is not None
                nursery.start_soon(_discard, proc.stdout)

                async def sampler() -> None:
                    while True:
                        rss, fds = _proc_stats(proc.pid)
                        samples.append((trio.current_time() - start, rss, fds, done[0]))
                        await trio.sleep(args.interval)

                nursery.start_soon(sampler)
                wave = 0
                while trio.current_time() - start < args.seconds and proc.returncode is None:
                    wave += 1
                    try:
                        async with trio.open_nursery() as wave_nursery:
                            for i in range(args.leechers):
                                where = root / f"leech-{wave}-{i}"
                                wave_nursery.start_soon(_leecher, meta, addr, where, done)
                            wave_nursery.start_soon(_hostility, meta, addr)
                    except* (trio.TooSlowError, OSError) as group:
                        failures += len(group.exceptions)
                    await trio.to_thread.run_sync(_cleanup, root, wave)
                nursery.cancel_scope.cancel()
            rss, fds = _proc_stats(proc.pid)
            samples.append((trio.current_time() - start, rss, fds, done[0]))
        finally:
            with trio.CancelScope(shield=True):
                alive = proc.returncode is None
                if alive:
                    proc.kill()
                await proc.wait()
    _report(samples, done[0], failures, alive)
    return 0 if alive and failures == 0 else 1


def _cleanup(root: Path, wave: int) -> None:
    """Delete a finished wave's downloads (the soak must not fill the disk)."""
    for old in root.glob(f"leech-{wave}-*"):
        shutil.rmtree(old, ignore_errors=True)


def _report(
    samples: list[tuple[float, int, int, int]], done: int, failures: int, alive: bool
) -> None:
    print(f"{'t (s)':>7} {'RSS (MiB)':>10} {'fds':>5} {'downloads':>10}")
    for t, rss, fds, n in samples:
        print(f"{t:7.0f} {rss / 2**20:10.1f} {fds:5d} {n:10d}")
    rss_all = [s[1] for s in samples]
    fds_all = [s[2] for s in samples]
    half = samples[len(samples) // 2 :]
    print(
        f"seeder alive: {alive}; downloads completed: {done}; failed: {failures}\n"
        f"RSS MiB first/max/last: {rss_all[0] / 2**20:.1f} / {max(rss_all) / 2**20:.1f} / "
        f"{rss_all[-1] / 2**20:.1f} (second half max {max(s[1] for s in half) / 2**20:.1f}); "
        f"fds first/max/last: {fds_all[0]} / {max(fds_all)} / {fds_all[-1]}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--leechers", type=int, default=4, help="leechers per wave")
    parser.add_argument("--size-mib", type=int, default=4)
    parser.add_argument("--interval", type=float, default=5.0, help="sampling period")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shoal-soak-") as tmp:
        return trio.run(soak, args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
