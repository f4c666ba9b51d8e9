"""shoal vs libtorrent 2.1.1, side by side: magnet download, RC4, upload, and an 8-leecher swarm.

Usage::

    python tools/bench/magnet_bench.py [--size 256M] [--repeat 3] [--swarm-size 64M]
        [--only download,rc4,upload,swarm] [--dir DIR] [--ref OTHER_CHECKOUT/src]

Everything is on loopback (127.0.0.0/8) and every process this script starts is stopped
by it. The coordinator (this process) hosts, with libtorrent at default settings except
for the networking (`loopback` below):

* a DHT of 8 libtorrent nodes on 127.0.1.1 .. 127.0.8.1 that know each other;
* one libtorrent seeder on 127.0.0.2, which announces the torrent on that DHT.

Measured, alternating the implementations within each repetition (and rotating which
one goes first every repetition), each leecher a separate process; ``--ref SRC`` adds
a third, ``shoal-ref``: shoal imported from another checkout (before/after a change):

* **download / rc4**: one leecher process given only the magnet link and the 8 DHT
  nodes: ``shoal get MAGNET --no-seed`` or a libtorrent session (this script in
  ``--lt-leech`` mode, default settings). MB/s = size / (complete - metadata received),
  both stamped by this process when the child reports them on stdout (shoal's
  ``--json`` records; the libtorrent child prints its alerts). CPU = user + system of
  the whole leecher process, start to exit, from ``wait4``, per GiB of payload.
  ``rc4`` forces MSE/RC4 on the seed and on the leecher.
* **upload**: a libtorrent leecher given the .torrent and the seed's address (no DHT,
  no metadata phase) fetches from ``shoal seed`` or from a libtorrent seed process
  (``--lt-seed`` mode); MB/s over the leecher's whole run, and the seed's CPU during it.
* **swarm**: the coordinator's libtorrent seed and 8 leechers started together, each
  on its own 127.0.9.x address, all from the magnet link; time until the last one
  reports completion (leechers keep seeding to each other until then).

``loopback``: listen and dial on one 127.x address, DHT bootstrap list = the loopback
nodes only, LSD/UPnP/NAT-PMP/IP notifier off, DHT IP restrictions off (every node is
127.x), ``allow_multiple_connections_per_ip``. uTP is off on every libtorrent session,
since shoal speaks TCP only and the comparison is of the TCP data path. Everything else
is libtorrent's default (no rate limits, default cache and request queue), unlike
``download_bench.py``'s leecher, which polled its status from Python every 50 ms.

Every downloaded file is compared with the payload (SHA-1) after the run.
Results are in tools/bench/README.md ("magnet_bench").
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import json
import os
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
GIB = 1024 * MIB
SEED_IP = "127.0.0.2"
LEECH_IP = "127.0.0.3"
UPLOAD_SEED_IP = "127.0.0.5"
UPLOAD_LEECH_IP = "127.0.0.6"
DHT_IPS = [f"127.0.{i}.1" for i in range(1, 9)]
SWARM_IPS = [f"127.0.9.{i}" for i in range(1, 9)]
DEADLINE = 600.0  # seconds for any one run; a stuck transfer fails the benchmark
NAME = "payload.bin"


# ------------------------------------------------------------------ libtorrent setup


def lt_settings(ip: str, *, port: int = 0, rc4: bool = False, dht: bool = True) -> dict[str, Any]:
    """libtorrent defaults, networking confined to `ip` (see the module docstring)."""
    import libtorrent as lt

    assert ip.startswith("127."), ip
    settings: dict[str, Any] = {
        "listen_interfaces": f"{ip}:{port}",
        "outgoing_interfaces": ip,
        "enable_dht": dht,
        "dht_bootstrap_nodes": "",
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": int(lt.alert_category.status | lt.alert_category.error),
    }
    if rc4:
        settings |= {
            "out_enc_policy": int(lt.enc_policy.pe_forced),
            "in_enc_policy": int(lt.enc_policy.pe_forced),
            "allowed_enc_level": int(lt.enc_level.pe_rc4),
        }
    else:
        settings |= {
            "out_enc_policy": int(lt.enc_policy.pe_disabled),
            "in_enc_policy": int(lt.enc_policy.pe_enabled),
            "allowed_enc_level": int(lt.enc_level.pe_both),
        }
    return settings


def _session(settings: dict[str, Any]) -> Any:
    import libtorrent as lt

    return lt.session(settings)


def _emit(event: str, **kw: Any) -> None:
    print(json.dumps({"event": event, **kw}), flush=True)


def lt_leech_main(args: argparse.Namespace) -> None:
    """``--lt-leech``: a libtorrent leecher; prints metadata/complete, exits when done
    (or, with ``--keep-seeding``, serves until SIGTERM)."""
    import libtorrent as lt

    source, save, ip = args.lt_leech
    nodes = [n for n in args.nodes.split(",") if n]
    ses = _session(lt_settings(ip, rc4=args.rc4, dht=bool(nodes)))
    for node in nodes:
        host, port = node.rsplit(":", 1)
        ses.add_dht_node((host, int(port)))
    if source.startswith("magnet:"):
        params = lt.parse_magnet_uri(source)
    else:
        params = lt.load_torrent_file(source)
    params.save_path = save
    handle = ses.add_torrent(params)
    if args.peer:
        host, port = args.peer.rsplit(":", 1)
        handle.connect_peer((host, int(port)))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    deadline = time.monotonic() + DEADLINE
    done = False
    # libtorrent looks the torrent up once when it is added, and again only every 15
    # minutes; if its DHT had not bootstrapped yet, that first lookup finds nothing. Ask
    # again every 3 s until the metadata arrives (shoal retries by itself); not more
    # often, or the nodes' per-IP rate limit (dht_block_ratelimit) may block us.
    has_metadata = handle.status().has_metadata
    next_lookup = time.monotonic() + 1.0
    while not stop.is_set() and time.monotonic() < deadline:
        if not has_metadata and nodes and time.monotonic() >= next_lookup:
            handle.force_dht_announce()
            next_lookup = time.monotonic() + 3.0
        ses.wait_for_alert(200 if not has_metadata else 500)
        for alert in ses.pop_alerts():
            if isinstance(alert, lt.metadata_received_alert):
                has_metadata = True
                _emit("metadata")
            elif isinstance(alert, lt.torrent_finished_alert) and not done:
                done = True
                _emit("complete")
                if not args.keep_seeding:
                    stop.set()
            elif isinstance(alert, lt.torrent_error_alert):
                _emit("error", message=alert.message())
    ses.pause()
    del ses


def lt_seed_main(args: argparse.Namespace) -> None:
    """``--lt-seed``: a libtorrent seed process serving until SIGTERM."""
    import libtorrent as lt

    torrent, save, ip, port = args.lt_seed
    ses = _session(lt_settings(ip, port=int(port), rc4=args.rc4, dht=False))
    params = lt.load_torrent_file(torrent)
    params.save_path = save
    ses.add_torrent(params)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.is_set():
        ses.wait_for_alert(200)
        for alert in ses.pop_alerts():
            if isinstance(alert, lt.torrent_finished_alert | lt.torrent_checked_alert):
                _emit("seeding")
    ses.pause()
    del ses


# ------------------------------------------------------------------ children


@dataclass
class Child:
    """A child process whose stdout JSON records are stamped on arrival."""

    label: str
    proc: subprocess.Popen[bytes]
    started: float
    events: queue.Queue[tuple[str, float]] = field(default_factory=queue.Queue)
    stamps: dict[str, float] = field(default_factory=dict)
    rusage_cpu: float | None = None
    ended: float | None = None

    @classmethod
    def spawn(cls, label: str, argv: list[str], log: Path, *, src: str | None = None) -> Child:
        with log.open("wb") as err:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=child_env(src))
        child = cls(label, proc, time.monotonic())
        threading.Thread(target=child._read, daemon=True).start()
        return child

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                event = json.loads(line).get("event")
                if isinstance(event, str):
                    self.events.put((event, time.monotonic()))

    def wait_event(self, name: str, deadline: float) -> float:
        while name not in self.stamps:
            left = deadline - time.monotonic()
            if left <= 0 or (self.proc.poll() is not None and self.events.empty()):
                raise SystemExit(f"{self.label}: no {name!r} (exit {self.proc.poll()})")
            with contextlib.suppress(queue.Empty):
                event, at = self.events.get(timeout=min(left, 0.2))
                self.stamps.setdefault(event, at)
        return self.stamps[name]

    def wait_exit(self, deadline: float) -> float:
        """Reap the child; returns its user + system CPU seconds (``wait4``)."""
        while self.rusage_cpu is None:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                self.ended = time.monotonic()
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                self.rusage_cpu = usage.ru_utime + usage.ru_stime
            elif time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"{self.label} did not exit in time")
            else:
                time.sleep(0.02)
        while not self.events.empty():
            event, at = self.events.get()
            self.stamps.setdefault(event, at)
        return self.rusage_cpu

    def stop(self) -> None:
        """SIGTERM (SIGINT for shoal), then SIGKILL after 10 s: never left behind."""
        if self.proc.poll() is None and self.rusage_cpu is None:
            self.proc.send_signal(signal.SIGINT if "shoal" in self.label else signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def child_env(src: str | None = None) -> dict[str, str]:
    """The environment of every child: no colour, and bytecode caching on; `src` (the
    ``shoal-ref`` implementation) goes first on ``PYTHONPATH``.

    With ``PYTHONDONTWRITEBYTECODE`` set (as in some CI shells) every ``shoal`` process
    would compile all its modules again, about 0.5 CPU s per start, which no installed
    copy pays; `warm_up` writes the caches once before anything is timed.
    """
    drop = {"FORCE_COLOR", "TTY_COMPATIBLE", "PYTHONDONTWRITEBYTECODE"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    if src is not None:
        env["PYTHONPATH"] = src
    return env


def warm_up(ref: str | None) -> None:
    """Import the clients once, untimed, so the timed processes start from caches."""
    code = "import libtorrent, shoal.cli, shoal.client, shoal.torrent, shoal.dht_client"
    for src in (None, ref) if ref else (None,):
        subprocess.run([sys.executable, "-c", code], check=True, env=child_env(src))


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def wait_listening(addr: tuple[str, int], child: Child) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise SystemExit(f"{child.label} exited with {child.proc.returncode}")
        with socket.socket() as s, contextlib.suppress(OSError):
            s.connect(addr)
            return
        time.sleep(0.1)
    raise SystemExit(f"{child.label} never listened")


# ------------------------------------------------------------------ the bench


class NoMetadata(Exception):
    """A leecher found no metadata in time (seen now and then with libtorrent's first
    lookup on a fresh loopback DHT; the run is repeated, and the retry is printed)."""


@dataclass
class Run:
    kind: str
    impl: str
    seconds: float
    cpu: float | None
    size: int

    @property
    def mb_s(self) -> float:
        return self.size / self.seconds / 1e6


def make_payload(path: Path, size: int) -> None:
    block = hashlib.shake_256(b"magnet-bench").digest(MIB)
    with path.open("wb") as f:
        for i in range(-(-size // MIB)):
            chunk = i.to_bytes(8, "big") + block[8:]  # every MiB differs
            f.write(chunk[: min(MIB, size - i * MIB)])


def file_sha1(path: Path) -> str:
    h = hashlib.sha1()
    with path.open("rb") as f:
        while chunk := f.read(MIB):
            h.update(chunk)
    return h.hexdigest()


class Bench:
    def __init__(self, root: Path, size: int, piece: int, ref: str | None = None) -> None:
        import libtorrent as lt

        self.ref = ref  # PYTHONPATH of the "shoal-ref" implementation

        self.root, self.size = root, size
        self.seed_dir = root / "seed"
        self.seed_dir.mkdir(parents=True)
        payload = self.seed_dir / NAME
        print(f"writing {size / MIB:.0f} MiB and hashing it ...", flush=True)
        make_payload(payload, size)
        self.digest = file_sha1(payload)
        ct = lt.create_torrent(lt.list_files(str(payload)), piece, flags=lt.create_torrent.v1_only)
        lt.set_piece_hashes(ct, str(self.seed_dir))
        self.torrent = root / "bench.torrent"
        self.torrent.write_bytes(lt.bencode(ct.generate()))
        ti = lt.torrent_info(str(self.torrent))
        self.info_hash = str(ti.info_hashes().v1)
        self.magnet = f"magnet:?xt=urn:btih:{self.info_hash}&dn={NAME}"
        self.dht = [_session(lt_settings(ip)) for ip in DHT_IPS]
        self.nodes = [(ip, s.listen_port()) for ip, s in zip(DHT_IPS, self.dht, strict=True)]
        for ses in self.dht:
            for node in self.nodes:
                ses.add_dht_node(node)
        self.seed = _session(lt_settings(SEED_IP))
        for node in self.nodes:
            self.seed.add_dht_node(node)
        params = lt.load_torrent_file(str(self.torrent))
        params.save_path = str(self.seed_dir)
        self.seed_handle = self.seed.add_torrent(params)
        self._wait(lambda: self.seed_handle.status().is_seeding, "seed check")
        self._wait_announced()
        self.count = 0

    def _wait(self, cond: Any, what: str, seconds: float = 120.0) -> None:
        deadline = time.monotonic() + seconds
        while not cond():
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out: {what}")
            time.sleep(0.1)

    def _wait_announced(self) -> None:
        """Until a DHT node returns the seed for the info-hash (so no leecher races it)."""
        import libtorrent as lt

        print("waiting for the seed's DHT announce ...", flush=True)
        probe = self.dht[-1]
        mask = lt.alert_category.status | lt.alert_category.error | lt.alert_category.dht_operation
        probe.apply_settings({"alert_mask": int(mask)})
        target = lt.sha1_hash(bytes.fromhex(self.info_hash))
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            self.seed_handle.force_dht_announce()
            probe.dht_get_peers(target)
            end = time.monotonic() + 5
            while time.monotonic() < end:
                probe.wait_for_alert(500)
                for alert in probe.pop_alerts():
                    if isinstance(alert, lt.dht_get_peers_reply_alert) and alert.num_peers():
                        return
        raise SystemExit("the seed never showed up in the DHT")

    def set_rc4(self, rc4: bool) -> None:
        # Only the encryption keys: re-applying listen_interfaces makes libtorrent
        # reopen its listen socket, which can fail to rebind the same port, leaving
        # the seed announced on the DHT but not listening.
        enc = ("out_enc_policy", "in_enc_policy", "allowed_enc_level")
        settings = lt_settings(SEED_IP, rc4=rc4)
        self.seed.apply_settings({k: v for k, v in settings.items() if k in enc})

    def _out(self, label: str) -> Path:
        self.count += 1
        out = self.root / f"{self.count:03d}-{label.replace(' ', '_')}"
        out.mkdir()
        return out

    def _check(self, path: Path) -> None:
        if file_sha1(path) != self.digest:
            raise SystemExit(f"{path} differs from the payload")

    def _src(self, impl: str) -> str | None:
        return self.ref if impl == "shoal-ref" else None

    def _nodes_args(self, impl: str) -> list[str]:
        if impl.startswith("shoal"):
            return [a for ip, port in self.nodes for a in ("--bootstrap", f"{ip}:{port}")]
        return ["--nodes", ",".join(f"{ip}:{port}" for ip, port in self.nodes)]

    def leecher_argv(self, impl: str, out: Path, ip: str, rc4: bool, *, seed: bool) -> list[str]:
        if impl.startswith("shoal"):
            argv = [sys.executable, "-m", "shoal", "get", self.magnet, "-o", str(out), "--json"]
            argv += ["--bind", ip, "--port", "0", "--encryption", "require" if rc4 else "disable"]
            return argv + self._nodes_args(impl) + ([] if seed else ["--no-seed"])
        argv = [sys.executable, __file__, "--lt-leech", self.magnet, str(out), ip]
        argv += self._nodes_args(impl) + (["--rc4"] if rc4 else [])
        return argv + (["--keep-seeding"] if seed else [])

    def download(self, impl: str, rc4: bool) -> Run:
        """One leecher; retried (at most twice) if it gets no metadata within 60 s."""
        for _ in range(2):
            try:
                return self._download(impl, rc4, metadata_within=60.0)
            except NoMetadata as exc:
                print(f"  retrying: {exc}", flush=True)
        return self._download(impl, rc4, metadata_within=DEADLINE)

    def _download(self, impl: str, rc4: bool, *, metadata_within: float) -> Run:
        label = f"{impl}{' rc4' if rc4 else ''}"
        out = self._out(label)
        argv = self.leecher_argv(impl, out, LEECH_IP, rc4, seed=False)
        child = Child.spawn(label, argv, out.with_suffix(".log"), src=self._src(impl))
        deadline = time.monotonic() + DEADLINE
        try:
            try:
                meta = child.wait_event("metadata", time.monotonic() + metadata_within)
            except SystemExit as exc:
                shutil.rmtree(out)
                raise NoMetadata(str(exc)) from None
            done = child.wait_event("complete", deadline)
            cpu = child.wait_exit(deadline)
        finally:
            child.stop()
        self._check(out / NAME)
        shutil.rmtree(out)
        return Run(
            "rc4" if rc4 else "download", impl, done - meta, cpu * GIB / self.size, self.size
        )

    def upload(self, impl: str) -> Run:
        out = self._out(f"upload-{impl}")
        port = free_port(UPLOAD_SEED_IP)
        if impl.startswith("shoal"):
            argv = [
                sys.executable,
                "-m",
                "shoal",
                "seed",
                str(self.torrent),
                "--data",
                str(self.seed_dir),
                "--json",
                "--bind",
                UPLOAD_SEED_IP,
                "--port",
                str(port),
                "--encryption",
                "disable",
                "--bootstrap",
                f"{DHT_IPS[0]}:9",
            ]
        else:
            argv = [
                sys.executable,
                __file__,
                "--lt-seed",
                str(self.torrent),
                str(self.seed_dir),
                UPLOAD_SEED_IP,
                str(port),
            ]
        seed = Child.spawn(f"{impl} seed", argv, out.with_suffix(".seed.log"), src=self._src(impl))
        try:
            wait_listening((UPLOAD_SEED_IP, port), seed)
            time.sleep(1.0)  # let the seed finish checking before its CPU baseline
            cpu0 = proc_cpu(seed.proc.pid)
            argv = [
                sys.executable,
                __file__,
                "--lt-leech",
                str(self.torrent),
                str(out),
                UPLOAD_LEECH_IP,
                "--nodes",
                "",
                "--peer",
                f"{UPLOAD_SEED_IP}:{port}",
            ]
            leecher = Child.spawn("lt leecher", argv, out.with_suffix(".log"))
            deadline = time.monotonic() + DEADLINE
            try:
                done = leecher.wait_event("complete", deadline)
                leecher.wait_exit(deadline)
            finally:
                leecher.stop()
            cpu = proc_cpu(seed.proc.pid) - cpu0
        finally:
            seed.stop()
        self._check(out / NAME)
        shutil.rmtree(out)
        return Run("upload", impl, done - leecher.started, cpu * GIB / self.size, self.size)

    def swarm(self, impl: str) -> Run:
        outs = [self._out(f"swarm-{impl}-{i}") for i in range(len(SWARM_IPS))]
        children = []
        try:
            for i, (ip, out) in enumerate(zip(SWARM_IPS, outs, strict=True)):
                argv = self.leecher_argv(impl, out, ip, False, seed=True)
                log = out.with_suffix(".log")
                children.append(Child.spawn(f"{impl} {i}", argv, log, src=self._src(impl)))
            start = min(c.started for c in children)
            deadline = time.monotonic() + DEADLINE
            last = max(c.wait_event("complete", deadline) for c in children)
        finally:
            for c in children:
                c.stop()
        for out in outs:
            self._check(out / NAME)
            shutil.rmtree(out)
        return Run("swarm", impl, last - start, None, self.size)

    def close(self) -> None:
        """Drop every session (their destructors join libtorrent's threads)."""
        for ses in [self.seed, *self.dht]:
            ses.pause()
        self.dht.clear()
        del self.seed_handle, self.seed
        gc.collect()


def summarize(runs: list[Run]) -> None:
    print("\n| test | impl | MB/s median (min-max) | CPU s/GiB median (min-max) | n |")
    print("|---|---|---|---|---|")
    medians: dict[tuple[str, str], tuple[float, float | None]] = {}
    for kind in dict.fromkeys(r.kind for r in runs):
        for impl in ("libtorrent", "shoal", "shoal-ref"):
            rs = [r for r in runs if r.kind == kind and r.impl == impl]
            if not rs:
                continue
            speeds = [r.mb_s for r in rs]
            cpus = [r.cpu for r in rs if r.cpu is not None]
            mb = statistics.median(speeds)
            cpu = statistics.median(cpus) if cpus else None
            medians[kind, impl] = (mb, cpu)
            cpu_txt = f"{cpu:.2f} ({min(cpus):.2f}-{max(cpus):.2f})" if cpus else "-"
            if kind == "swarm":
                secs = [r.seconds for r in rs]
                spread = f"{min(secs):.1f}-{max(secs):.1f}"
                mb_txt = f"{statistics.median(secs):.1f} s to all complete ({spread})"
            else:
                mb_txt = f"{mb:.0f} ({min(speeds):.0f}-{max(speeds):.0f})"
            print(f"| {kind} | {impl} | {mb_txt} | {cpu_txt} | {len(rs)} |")
    print()
    for kind in dict.fromkeys(r.kind for r in runs):
        lt_m = medians.get((kind, "libtorrent"))
        for impl in ("shoal", "shoal-ref"):
            sh_m = medians.get((kind, impl))
            if lt_m and sh_m:
                line = f"{kind}: {impl}/libtorrent speed {sh_m[0] / lt_m[0]:.2f}x"
                if lt_m[1] and sh_m[1]:
                    line += f", CPU {sh_m[1] / lt_m[1]:.2f}x"
                print(line)


def parse_size(text: str) -> int:
    units = {"K": 1024, "M": MIB, "G": GIB}
    if text[-1].upper() in units:
        return int(float(text[:-1]) * units[text[-1].upper()])
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=GIB, help="payload (e.g. 256M, 1G)")
    parser.add_argument(
        "--swarm-size",
        type=parse_size,
        default=None,
        help="payload of the swarm test (default: --size / 4)",
    )
    parser.add_argument("--piece", type=parse_size, default=MIB, help="piece size")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="download,rc4,upload,swarm")
    parser.add_argument("--dir", default=None, help="scratch directory (default: system temp)")
    parser.add_argument(
        "--ref",
        default=None,
        metavar="SRC",
        help="also run 'shoal-ref': shoal imported from SRC (a checkout's src/), alternating",
    )
    parser.add_argument(
        "--lt-leech", nargs=3, metavar=("SOURCE", "DIR", "IP"), help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--lt-seed", nargs=4, metavar=("TORRENT", "DIR", "IP", "PORT"), help=argparse.SUPPRESS
    )
    parser.add_argument("--nodes", default="", help=argparse.SUPPRESS)
    parser.add_argument("--peer", default="", help=argparse.SUPPRESS)
    parser.add_argument("--rc4", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--keep-seeding", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.lt_leech:
        lt_leech_main(args)
        return
    if args.lt_seed:
        lt_seed_main(args)
        return
    tests = args.only.split(",")
    runs: list[Run] = []
    warm_up(args.ref)
    impls = ["libtorrent", "shoal"] + (["shoal-ref"] if args.ref else [])
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        bench = (
            Bench(Path(tmp) / "main", args.size, args.piece, args.ref)
            if set(tests) - {"swarm"}
            else None
        )
        try:
            for rep in range(args.repeat):
                order = impls[rep % len(impls) :] + impls[: rep % len(impls)]  # rotate
                for test in tests:
                    if bench is None or test == "swarm":
                        continue
                    if test in ("download", "rc4"):
                        bench.set_rc4(test == "rc4")
                    for impl in order:
                        if test == "upload":
                            run = bench.upload(impl)
                        else:
                            run = bench.download(impl, test == "rc4")
                        runs.append(run)
                        cpu = "" if run.cpu is None else f" {run.cpu:6.2f} CPU s/GiB"
                        print(f"rep {rep} {test:8} {impl:10} {run.mb_s:7.1f} MB/s{cpu}", flush=True)
                if bench is not None:
                    bench.set_rc4(False)
        finally:
            if bench is not None:
                bench.close()
        if "swarm" in tests:
            swarm_size = args.swarm_size or max(args.size // 4, MIB)
            sb = Bench(Path(tmp) / "swarm", swarm_size, args.piece, args.ref)
            try:
                for rep in range(args.repeat):
                    order = impls[rep % len(impls) :] + impls[: rep % len(impls)]
                    for impl in order:
                        run = sb.swarm(impl)
                        runs.append(run)
                        print(
                            f"rep {rep} swarm    {impl:10} {run.seconds:6.1f} s to all complete",
                            flush=True,
                        )
            finally:
                sb.close()
    summarize(runs)


if __name__ == "__main__":
    main()
