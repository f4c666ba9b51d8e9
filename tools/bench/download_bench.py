"""Download throughput on loopback: libtorrent leecher vs ``shoal get``, same libtorrent seed.

Usage: ``python tools/bench/download_bench.py [--size-mib 512] [--piece-kib 1024]
[--dir /tmp] [--no-encrypted]``

One libtorrent 2.1.1 session on 127.0.0.2 seeds a v1 torrent of ``--size-mib`` MiB of
pseudo-random data. Each leecher is a separate process given the .torrent file and the
seed's address (no DHT lookup, no metadata phase: this measures the transfer itself):

* *libtorrent*: a libtorrent session on 127.0.0.3 (this script in ``--leech`` mode);
* *shoal*: ``python -m shoal get FILE --no-seed --peer SEED --quiet`` on 127.0.0.4;
* the same two again with RC4 forced on both ends (libtorrent ``pe_forced`` +
  ``pe_rc4``, ``shoal get --encryption require``) unless ``--no-encrypted``.

Prints wall-clock MB/s (10^6 bytes/s) and the leecher's CPU seconds (user + system of
the child process, from ``getrusage(RUSAGE_CHILDREN)``), and shoal/libtorrent ratios.
Every download is checked byte for byte against the seed's file. Loopback only.

Measured 2026-11-26 on the shared 2-core build machine (other jobs running, so runs
vary by 2x or more), 512 MiB, 1 MiB pieces, default arguments; three runs, the last
on a quieter machine:

    leecher          MB/s (runs 1, 2, 3)    leecher CPU s
    libtorrent       80.8, 85.4, 174.2      2.2, 2.4, 2.5
    shoal            25.0, 58.2,  75.4      6.1, 5.1, 5.8
    libtorrent rc4   38.1, 78.3, 135.2      3.2, 2.6, 2.7
    shoal rc4        35.8, 27.0,  55.0      6.7, 8.5, 7.6

On the quiet run shoal reaches 0.43x libtorrent's throughput (0.41x with RC4 on both
ends) at 2.3x (2.8x) its CPU time.

After the download-path work of 2026-11-27 (bc102c8..eba9434: blocks copied into
storage without checkpoints, no per-block SHA-1, 256 KiB reads, a BlockReceived fast
path, no startup recheck buffers for a fresh download, reused piece buffers), two runs
of ``python tools/bench/download_bench.py --seeding`` (load average 1.4-1.7):

    leecher              MB/s (runs 1, 2)    CPU s (runs 1, 2)
    libtorrent           176.7, 165.0        2.10, 2.29
    shoal                146.8, 143.2        2.99, 3.53
    shoal seed -> lt     129.0, 103.9        2.95, 3.67   (upload; the seed's CPU)
    libtorrent rc4       138.9, 127.6        2.38, 2.95
    shoal rc4             93.1, 127.2        4.23, 4.12
    shoal seed rc4 -> lt  62.6,  71.9        4.28, 3.88

shoal/libtorrent: 0.83-0.87x throughput at 1.4-1.5x the CPU (plaintext), 0.67-1.00x
at 1.4-1.8x with RC4. ``--seeding`` adds the upload direction: a libtorrent leecher
fetching from ``shoal seed`` (its CPU counted from the first connection attempt on).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
SEED_IP = "127.0.0.2"
LT_LEECH_IP = "127.0.0.3"
SHOAL_IP = "127.0.0.4"
SHOAL_SEED_IP = "127.0.0.5"
TIMEOUT = 900.0  # seconds per download; a stuck transfer fails the benchmark


def lt_settings(ip: str, *, encrypted: bool) -> dict[str, Any]:
    import libtorrent as lt

    settings: dict[str, Any] = {
        "listen_interfaces": f"{ip}:0",
        "outgoing_interfaces": ip,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "dht_bootstrap_nodes": "",
    }
    if encrypted:
        settings |= {
            "out_enc_policy": int(lt.enc_policy.pe_forced),
            "in_enc_policy": int(lt.enc_policy.pe_forced),
            "allowed_enc_level": int(lt.enc_level.pe_rc4),
        }
    else:
        settings |= {
            "out_enc_policy": int(lt.enc_policy.pe_disabled),
            "in_enc_policy": int(lt.enc_policy.pe_enabled),
        }
    return settings


def make_payload(path: Path, size: int) -> None:
    seed = hashlib.shake_256(b"download-bench").digest(MIB)
    with path.open("wb") as f:
        for i in range(size // MIB):
            f.write(i.to_bytes(8, "big") + seed[8:])  # every MiB differs


def make_torrent(payload: Path, piece_size: int) -> bytes:
    import libtorrent as lt

    ct = lt.create_torrent(lt.list_files(str(payload)), piece_size, flags=lt.create_torrent.v1_only)
    lt.set_piece_hashes(ct, str(payload.parent))
    return bytes(lt.bencode(ct.generate()))


def leech(torrent: Path, save: Path, peer: str, encrypted: bool) -> None:
    """``--leech`` mode: a libtorrent leecher that exits once the torrent is complete."""
    import libtorrent as lt

    ses = lt.session(lt_settings(LT_LEECH_IP, encrypted=encrypted))  # type: ignore[call-overload]
    params = lt.load_torrent_file(str(torrent))
    params.save_path = str(save)
    handle = ses.add_torrent(params)
    host, port = peer.rsplit(":", 1)
    handle.connect_peer((host, int(port)))
    deadline = time.monotonic() + TIMEOUT
    while not handle.status().is_seeding:
        if time.monotonic() > deadline:
            raise SystemExit("libtorrent leecher timed out")
        time.sleep(0.05)
    ses.pause()


@dataclass
class Result:
    label: str
    seconds: float
    cpu: float
    size: int

    @property
    def mb_per_s(self) -> float:
        return self.size / self.seconds / 1e6


def run_child(label: str, argv: list[str], size: int) -> Result:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    subprocess.run(argv, check=True, timeout=TIMEOUT)
    seconds = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Result(label, seconds, cpu, size)


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def _wait_listening(addr: tuple[str, int], proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"shoal seed exited with {proc.returncode}")
        with socket.socket() as s, contextlib.suppress(OSError):
            s.connect(addr)
            return
        time.sleep(0.1)
    raise SystemExit("shoal seed never listened")


def bench_seeding(root: Path, torrent: Path, payload: Path, size: int, encrypted: bool) -> Result:
    """libtorrent leeches from ``shoal seed``; CPU is the seed's during the transfer."""
    port = _free_port(SHOAL_SEED_IP)
    argv = [sys.executable, "-m", "shoal", "seed", str(torrent), "--data", str(payload.parent)]
    argv += ["--quiet", "--bind", SHOAL_SEED_IP, "--port", str(port), "--bootstrap", "127.0.0.1:9"]
    argv += ["--encryption", "require" if encrypted else "disable"]
    tag = " rc4" if encrypted else ""
    out = root / f"seeding{tag.strip()}"
    out.mkdir()
    seed = subprocess.Popen(argv)
    try:
        _wait_listening((SHOAL_SEED_IP, port), seed)
        time.sleep(0.5)  # let the startup check settle before the CPU baseline
        cpu0 = _proc_cpu(seed.pid)
        start = time.monotonic()
        leech_argv = [sys.executable, __file__, "--leech", str(torrent), str(out)]
        leech_argv += [f"{SHOAL_SEED_IP}:{port}"] + (["--encrypted"] if encrypted else [])
        subprocess.run(leech_argv, check=True, timeout=TIMEOUT)
        seconds = time.monotonic() - start
        cpu = _proc_cpu(seed.pid) - cpu0
    finally:
        seed.terminate()
        seed.wait(timeout=30)
    check_same(payload, out / "payload.bin")
    shutil.rmtree(out)
    return Result("shoal seed" + tag, seconds, cpu, size)


def check_same(a: Path, b: Path) -> None:
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            x, y = fa.read(MIB), fb.read(MIB)
            if x != y:
                raise SystemExit(f"{b} differs from {a}")
            if not x:
                return


def bench(args: argparse.Namespace) -> list[Result]:
    import libtorrent as lt

    size = args.size_mib * MIB
    results: list[Result] = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        (root / "seed").mkdir()
        payload = root / "seed" / "payload.bin"
        print(f"writing {args.size_mib} MiB and hashing it ...", flush=True)
        make_payload(payload, size)
        torrent = root / "bench.torrent"
        torrent.write_bytes(make_torrent(payload, args.piece_kib * 1024))
        # The binding takes a settings dict; its stubs only list settings_pack.
        ses = lt.session(lt_settings(SEED_IP, encrypted=False))  # type: ignore[call-overload]
        params = lt.load_torrent_file(str(torrent))
        params.save_path = str(root / "seed")
        ses.add_torrent(params)
        while not ses.get_torrents()[0].status().is_seeding:
            time.sleep(0.05)
        peer = f"{SEED_IP}:{ses.listen_port()}"
        modes = [False] if args.no_encrypted else [False, True]
        try:
            for encrypted in modes:
                ses.apply_settings(lt_settings(SEED_IP, encrypted=encrypted))
                tag = " rc4" if encrypted else ""
                for name in ("libtorrent", "shoal"):
                    out = root / f"{name}{tag.strip()}"
                    out.mkdir()
                    if name == "libtorrent":
                        argv = [sys.executable, __file__, "--leech", str(torrent), str(out), peer]
                        argv += ["--encrypted"] if encrypted else []
                    else:
                        argv = [sys.executable, "-m", "shoal", "get", str(torrent), "-o", str(out)]
                        argv += ["--no-seed", "--quiet", "--peer", peer, "--bind", SHOAL_IP]
                        argv += ["--port", "0", "--bootstrap", "127.0.0.1:9"]
                        argv += ["--encryption", "require" if encrypted else "disable"]
                    result = run_child(name + tag, argv, size)
                    check_same(payload, out / "payload.bin")
                    shutil.rmtree(out)
                    results.append(result)
                    _show(result)
                if args.seeding:
                    result = bench_seeding(root, torrent, payload, size, encrypted)
                    results.append(result)
                    _show(result)
        finally:
            ses.pause()
            del ses
    return results


def _show(result: Result) -> None:
    print(
        f"{result.label:16} {result.mb_per_s:8.1f} MB/s  "
        f"{result.seconds:6.2f} s wall  {result.cpu:6.2f} s CPU",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--piece-kib", type=int, default=1024)
    parser.add_argument("--dir", default=None, help="scratch directory (default: system temp)")
    parser.add_argument("--no-encrypted", action="store_true", help="skip the RC4 runs")
    parser.add_argument(
        "--seeding",
        action="store_true",
        help="also time a libtorrent leecher downloading from `shoal seed` (seed's CPU)",
    )
    parser.add_argument(
        "--leech", nargs=3, metavar=("TORRENT", "DIR", "PEER"), help=argparse.SUPPRESS
    )
    parser.add_argument("--encrypted", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.leech:
        torrent, save, peer = args.leech
        leech(Path(torrent), Path(save), peer, args.encrypted)
        return
    results = {r.label: r for r in bench(args)}
    for tag in ("", " rc4"):
        lt_result, shoal_result = results.get("libtorrent" + tag), results.get("shoal" + tag)
        if lt_result and shoal_result:
            speed = shoal_result.mb_per_s / lt_result.mb_per_s
            cpu = shoal_result.cpu / max(lt_result.cpu, 1e-9)
            print(f"shoal/libtorrent{tag}: throughput {speed:.2f}x, CPU {cpu:.2f}x")


if __name__ == "__main__":
    os.environ.pop("FORCE_COLOR", None)
    main()
