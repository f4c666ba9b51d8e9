"""``shoal daemon`` with 100 torrents: memory, idle CPU, and ``torrents/info`` requests/s.

Method: start the real ``shoal daemon`` (``--web 127.0.0.1:<free>``, peers on 127.0.0.1
with DHT bootstrapped from a dead loopback address, so nothing leaves the machine), add
N torrents through the API: ``--seeds`` of them .torrent files whose data is already in
the download directory (they check, then seed idle), the rest magnets nobody serves
(idle in metadata search). Once every seed is checked, sample the daemon's RSS
(/proc/PID/status VmRSS) and its CPU time (/proc/PID/stat utime+stime) over
``--idle`` seconds; then time ``--requests`` sequential ``torrents/info`` calls on one
keep-alive connection (``requests.Session``), and the same number spread over
``--clients`` threads; ``app/version`` gives the HTTP stack's own floor for comparison.
The daemon is stopped with SIGTERM and its exit time reported.

    python tools/bench/daemon_bench.py                      # 100 torrents (95 seeds)
    python tools/bench/daemon_bench.py --torrents 20 --idle 5

Loopback only; runs well under 2 minutes.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from shoal.create import create_torrent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rate(session: requests.Session, url: str, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        r = session.get(url, timeout=30)
        r.raise_for_status()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--torrents", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=95, help="how many have their data")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of CPU sampling")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    seeds = min(args.seeds, args.torrents)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        downloads = root / "downloads"
        torrents = []
        rng = random.Random(1)
        for i in range(seeds):
            data = downloads / f"item{i:03}"
            data.mkdir(parents=True)
            (data / "payload.bin").write_bytes(rng.randbytes(256 * 1024))
            torrents.append(create_torrent(data, piece_length=64 * 1024))
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [
            sys.executable, "-m", "shoal", "daemon", "--json", "--web", f"127.0.0.1:{port}",
            "--state-dir", str(root / "state"), "--download-dir", str(downloads),
            "--bind", "127.0.0.1", "--port", "0", "--bootstrap", "127.0.0.1:9",
            "--localhost-bypass",
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            assert proc.stdout is not None
            proc.stdout.readline()
            base_rss = _rss_kib(proc.pid)
            s = requests.Session()
            for i, t in enumerate(torrents):
                files = {"torrents": (f"{i}.torrent", t, "application/x-bittorrent")}
                s.post(url + "/api/v2/torrents/add", files=files, timeout=30).raise_for_status()
            for i in range(args.torrents - seeds):
                magnet = f"magnet:?xt=urn:btih:{random.Random(i).randbytes(20).hex()}"
                s.post(url + "/api/v2/torrents/add", data={"urls": magnet}, timeout=30)
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                info = s.get(url + "/api/v2/torrents/info", timeout=30).json()
                if sum(1 for t in info if t["progress"] == 1.0) >= seeds:
                    break
                time.sleep(0.5)
            print(f"torrents: {len(info)} ({seeds} seeding, {args.torrents - seeds} magnets idle)")
            cpu0, t0 = _cpu_seconds(proc.pid), time.monotonic()
            time.sleep(args.idle)
            cpu1, t1 = _cpu_seconds(proc.pid), time.monotonic()
            rss = _rss_kib(proc.pid)
            print(f"RSS: {rss / 1024:.1f} MiB (empty daemon: {base_rss / 1024:.1f} MiB)")
            print(
                f"idle CPU: {100 * (cpu1 - cpu0) / (t1 - t0):.1f} % of one core"
                f" over {args.idle:.0f} s"
            )
            info_url = url + "/api/v2/torrents/info"
            floor = _rate(s, url + "/api/v2/app/version", args.requests)
            print(f"app/version (the HTTP stack alone), 1 client: {floor:.0f} req/s")
            print(f"torrents/info, 1 client: {_rate(s, info_url, args.requests):.0f} req/s")
            rates: list[float] = []
            per = args.requests // args.clients

            def worker() -> None:
                with requests.Session() as session:
                    rates.append(_rate(session, info_url, per))

            start = time.perf_counter()
            threads = [threading.Thread(target=worker) for _ in range(args.clients)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            total = per * args.clients / (time.perf_counter() - start)
            print(f"torrents/info, {args.clients} clients: {total:.0f} req/s")
            print(f"RSS after the requests: {_rss_kib(proc.pid) / 1024:.1f} MiB")
        finally:
            start = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            print(f"SIGTERM to exit: {time.monotonic() - start:.2f} s (status {proc.returncode})")


if __name__ == "__main__":
    main()
