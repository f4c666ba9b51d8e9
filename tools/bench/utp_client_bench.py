"""Whole clients over uTP on 127.0.0.1: ``shoal get`` / ``shoal seed`` against libtorrent.

Method
------
Every side is its own process, and both clients write to (or read from) disk:

* **(a) leech** from a uTP-only libtorrent 2.1 seeder process (TCP off both ways,
  DHT/LSD/UPnP/NAT-PMP off, bound to 127.0.0.1). Alternating per round:
  ``shoal get FILE.torrent --transport utp --peer 127.0.0.1:PORT --no-seed`` (its DHT
  bootstraps only from an unused loopback port, so it finds nothing but ``--peer``)
  and a uTP-only libtorrent leecher process (default settings otherwise).
* **(b) seed** to a uTP-only libtorrent leecher process. Alternating per round:
  ``shoal seed FILE.torrent --transport utp`` and a uTP-only libtorrent seeder.

Wall time runs from starting the leecher process to its exit (process start-up, about
0.3-0.5 s, is included on both sides). CPU is user + system time: of the leecher from
``getrusage(RUSAGE_CHILDREN)`` after it was waited for, of the seeder (already running,
data checked) from ``/proc/PID/stat`` before and after. Encryption is each client's
default (shoal: prefer; libtorrent: enabled), as a user would run them.

    python tools/bench/utp_client_bench.py --size 1G --repeat 2
    python tools/bench/utp_client_bench.py --size 256M --repeat 2 --direction seed

Linux only (``/proc``). Results and history: ``tools/bench/README.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

PIECE = 1 << 20
#: Where the shoal processes' DHT "bootstraps": a loopback port nobody listens on.
NOWHERE = "127.0.0.1:9"

LT_COMMON = r"""
import sys, time, libtorrent as lt
settings = {
    "listen_interfaces": "127.0.0.1:" + sys.argv[3], "outgoing_interfaces": "127.0.0.1",
    "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
    "enable_ip_notifier": False, "dht_bootstrap_nodes": "",
    "enable_incoming_tcp": False, "enable_outgoing_tcp": False,
    "enable_incoming_utp": True, "enable_outgoing_utp": True,
}
ses = lt.session(settings)
params = lt.load_torrent_buffer(open(sys.argv[1], "rb").read())
params.save_path = sys.argv[2]
h = ses.add_torrent(params)
"""

#: argv: torrent, save path, listen port. Prints its port once seeding, then waits
#: for stdin to close.
LT_SEED = (
    LT_COMMON
    + r"""
deadline = time.monotonic() + 600
while not h.status().is_seeding and time.monotonic() < deadline:
    time.sleep(0.05)
print(ses.listen_port(), flush=True)
sys.stdin.read()
"""
)

#: argv: torrent, save path, listen port (0), peer port. Exits once complete.
LT_LEECH = (
    LT_COMMON
    + r"""
h.connect_peer(("127.0.0.1", int(sys.argv[4])))
deadline = time.monotonic() + 900
while not h.status().is_seeding:
    if time.monotonic() > deadline:
        sys.exit("libtorrent leecher: not complete after 900 s")
    time.sleep(0.01)
"""
)


def make_torrent(root: Path, size: int) -> Path:
    """root/seed/f.bin of `size` random bytes and root/t.torrent; returns the latter."""
    rng = random.Random(1)
    (root / "seed").mkdir()
    pieces = []
    with (root / "seed" / "f.bin").open("wb") as f:
        for offset in range(0, size, PIECE):
            chunk = rng.randbytes(min(PIECE, size - offset))
            f.write(chunk)
            pieces.append(hashlib.sha1(chunk).digest())
    info = (
        b"d6:lengthi%de4:name5:f.bin12:piece lengthi%de6:pieces%d:"
        % (size, PIECE, 20 * len(pieces))
        + b"".join(pieces)
        + b"e"
    )
    (root / "t.torrent").write_bytes(b"d4:info" + info + b"e")
    return root / "t.torrent"


def free_port() -> int:
    """A port free on 127.0.0.1 for both TCP and UDP (shoal binds both)."""
    for _ in range(50):
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError("no port free for both TCP and UDP")


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def shoal_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "shoal", *args]


def shoal_env(root: Path) -> dict[str, str]:
    """No user config file, state kept under the benchmark's directory."""
    return os.environ | {"XDG_CONFIG_HOME": str(root / "xdg"), "XDG_STATE_HOME": str(root)}


def run_leecher(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run a leecher process to its exit: (wall seconds, CPU seconds)."""
    c0, t0 = children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=False)
    wall, cpu = time.perf_counter() - t0, children_cpu() - c0
    if proc.returncode != 0:
        raise SystemExit(f"leecher failed ({proc.returncode}): {' '.join(cmd)}")
    return wall, cpu


def check(path: Path, expected: Path) -> None:
    if path.stat().st_size != expected.stat().st_size:
        raise SystemExit(f"{path}: wrong size")
    with path.open("rb") as a, expected.open("rb") as b:
        while chunk := a.read(1 << 24):
            if chunk != b.read(len(chunk)):
                raise SystemExit(f"{path}: data differs")


def report(name: str, size: int, wall: float, leech_cpu: float, seed_cpu: float) -> None:
    gib = size / (1 << 30)
    print(
        f"{name:22s} {size / wall / 1e6:7.1f} MB/s  wall {wall:7.2f} s  "
        f"leecher CPU {leech_cpu / gib:5.1f} s/GiB  seeder CPU {seed_cpu / gib:5.1f} s/GiB",
        flush=True,
    )


class Seeder:
    """A seeder process that has checked its data and is waiting for peers."""

    def __init__(self, cmd: list[str], env: dict[str, str] | None, ready: str) -> None:
        self.proc = subprocess.Popen(
            cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.stdout: IO[str] = self.proc.stdout
        deadline = time.monotonic() + 600
        while ready not in (line := self.stdout.readline()):
            if not line or time.monotonic() > deadline:
                self.close()
                raise SystemExit(f"seeder did not become ready: {' '.join(cmd)}")
        self.first_line = line

    def cpu(self) -> float:
        return proc_cpu(self.proc.pid)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def shoal_get(root: Path, torrent: Path, port: int, out: Path) -> list[str]:
    return shoal_cmd(
        "get", str(torrent), "-o", str(out), "--transport", "utp", "--no-seed", "--quiet",
        "--bind", "127.0.0.1", "--port", "0", "--bootstrap", NOWHERE,
        "--peer", f"127.0.0.1:{port}", "--state-dir", str(root / "state"),
    )  # fmt: skip


def lt_leech(torrent: Path, port: int, out: Path) -> list[str]:
    return [sys.executable, "-c", LT_LEECH, str(torrent), str(out), "0", str(port)]


def measure(
    name: str, size: int, seeder: Seeder, cmd: list[str], env: dict[str, str] | None
) -> None:
    s0 = seeder.cpu()
    wall, cpu = run_leecher(cmd, env)
    report(name, size, wall, cpu, seeder.cpu() - s0)


def leech_rounds(root: Path, torrent: Path, size: int, repeat: int) -> None:
    """(a): one uTP-only libtorrent seeder; shoal get and libtorrent leech in turn."""
    port = free_port()
    lt_cmd = [sys.executable, "-c", LT_SEED, str(torrent), str(root / "seed"), str(port)]
    seeder = Seeder(lt_cmd, None, "")
    try:
        for rnd in range(1, repeat + 1):
            for who in ("shoal", "libtorrent"):
                out = root / f"out-{who}"
                cmd = shoal_get(root, torrent, port, out) if who == "shoal" else None
                cmd = cmd or lt_leech(torrent, port, out)
                env = shoal_env(root) if who == "shoal" else None
                measure(f"(a) {who} get #{rnd}", size, seeder, cmd, env)
                check(out / "f.bin", root / "seed" / "f.bin")
                shutil.rmtree(out)
                shutil.rmtree(root / "state", ignore_errors=True)  # no resume data
    finally:
        seeder.close()


def seed_rounds(root: Path, torrent: Path, size: int, repeat: int) -> None:
    """(b): shoal seed and a libtorrent seeder in turn, each to a uTP-only lt leecher."""
    for rnd in range(1, repeat + 1):
        for who in ("shoal", "libtorrent"):
            port = free_port()
            if who == "shoal":
                cmd = shoal_cmd(
                    "seed", str(torrent), "--data", str(root / "seed"), "--json",
                    "--transport", "utp", "--bind", "127.0.0.1", "--port", str(port),
                    "--bootstrap", NOWHERE,
                )  # fmt: skip
                seeder = Seeder(cmd, shoal_env(root), '"seeding"')
            else:
                cmd = [sys.executable, "-c", LT_SEED, str(torrent), str(root / "seed"), str(port)]
                seeder = Seeder(cmd, None, "")
            try:
                out = root / "out-lt"
                measure(f"(b) {who} seed #{rnd}", size, seeder, lt_leech(torrent, port, out), None)
                check(out / "f.bin", root / "seed" / "f.bin")
                shutil.rmtree(out)
            finally:
                seeder.close()


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].upper() in units else int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=256 << 20, help="e.g. 256M, 1G")
    parser.add_argument("--repeat", type=int, default=2, help="alternating rounds")
    parser.add_argument("--direction", choices=["leech", "seed", "both"], default="both")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="utp-client-bench-") as tmp:
        root = Path(tmp)
        torrent = make_torrent(root, args.size)
        if args.direction in ("leech", "both"):
            leech_rounds(root, torrent, args.size, args.repeat)
        if args.direction in ("seed", "both"):
            seed_rounds(root, torrent, args.size, args.repeat)


if __name__ == "__main__":
    main()
