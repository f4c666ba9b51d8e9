"""DHT serving throughput: a standalone node under a mixed KRPC load from another process.

    python tools/bench/dht_serve.py --seconds 10                  # shoal, mixed load
    python tools/bench/dht_serve.py --impl libtorrent --seconds 10
    python tools/bench/dht_serve.py --flood 1000000               # bounded peer store?
    python tools/bench/dht_serve.py --seconds 10 --profile node.prof
    python tools/bench/dht_serve.py --attach PORT PID             # e.g. a `shoal dht`

The node runs in a child process: shoal through `open_dht_node` with its default
`DHTConfig` (rate limit included), or a libtorrent session. This process is the load
generator: plain `socket` + `selectors`, many non-blocking sockets each bound to its
own 127.x.y.z address, so the node's per-IP rate limit (10 queries/s, burst 20) is
respected, not switched off: sends go round-robin over the sockets and the total rate
is capped at `--per-ip` x sockets. At most `--window` queries are in flight. The mix
is 50% get_peers, 25% find_node, 10% announce_peer over 1,000 info-hashes, plus the
extension queries: 4% get_peers with BEP 33 ``scrape=1``, 4% BEP 44 ``get`` and 2%
immutable ``put`` (over 100 small values), 5% BEP 51 ``sample_infohashes``
(``--mix bep5`` restores the old 60/30/10). An announce reuses the token of its
socket's last get_peers reply, a put the token of its last get reply. Replies are matched
by ``t``; a query unanswered after `--timeout` counts as dropped. `--node-cpu` and
`--gen-cpu` pin the two processes (off by default: on a shared machine a fixed core
may be the busy one).

Warm-up: the first `--warm` sockets ping the node once, so its routing table fills
with "fake" nodes; the load generator answers the node's own pings, as nodes would.

Reported: answered queries/s, p50/p99 latency (send to receive, measured here),
drop rate, the node's CPU time (from /proc) and so answers per CPU-second (the
capacity of one core, whatever else the machine runs), its RSS before and after,
and the load generator's own CPU. Everything is on loopback; the node is stopped at
the end. `--flood N` instead sends N get_peers for N distinct info-hashes, each
followed by an announce_peer with the token it returned.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import re
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

_GET_PEERS, _FIND_NODE, _ANNOUNCE, _PING = 0, 1, 2, 3
_SCRAPE, _GET, _PUT, _SAMPLE = 4, 5, 6, 7
_KIND_NAMES = (
    "get_peers",
    "find_node",
    "announce_peer",
    "ping",
    "get_peers_scrape",
    "get",
    "put",
    "sample_infohashes",
)
# (kind, cumulative probability)
_MIXES = {
    "bep5": ((_GET_PEERS, 0.6), (_FIND_NODE, 0.9), (_ANNOUNCE, 1.0)),
    "all": (
        (_GET_PEERS, 0.50),
        (_FIND_NODE, 0.75),
        (_ANNOUNCE, 0.85),
        (_SCRAPE, 0.89),
        (_GET, 0.93),
        (_PUT, 0.95),
        (_SAMPLE, 1.0),
    ),
}
_TOKEN = re.compile(rb"5:token(\d{1,2}):")
_QUERY_T = re.compile(rb"1:t(\d{1,2}):")
_LOOP_CAP = 10_000_000  # no loop in this file runs more often than this
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- node side (children)


def _serve_shoal(port: int, profile: str | None) -> None:
    import trio

    from shoal.dht_client import open_dht_node

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with open_dht_node(bind=("127.0.0.1", port)):
                print("ready", flush=True)
                async for _ in signals:
                    break

    if profile is None:
        trio.run(main)
        return
    import cProfile

    prof = cProfile.Profile(time.process_time)  # CPU time: the machine is shared
    prof.enable()
    try:
        trio.run(main)
    finally:
        prof.disable()
        prof.dump_stats(profile)


def _serve_libtorrent(port: int) -> None:
    import libtorrent as lt

    # As in tests/integration/test_dht_libtorrent.py, plus: the DHT upload cap (default
    # 8,000 bytes/s) lifted, and the per-IP limit set to shoal's 10 queries/s.
    ses = lt.session(
        {
            "listen_interfaces": f"127.0.0.1:{port}",
            "outgoing_interfaces": "127.0.0.1",
            "enable_dht": True,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "enable_ip_notifier": False,
            "dht_bootstrap_nodes": "",
            "dht_restrict_routing_ips": False,
            "dht_restrict_search_ips": False,
            "dht_upload_rate_limit": 1_000_000_000,
            "dht_block_ratelimit": 10,
            "alert_mask": 0,
        }
    )
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    time.sleep(1.0)  # the DHT starts asynchronously
    print("ready", flush=True)
    for _ in range(_LOOP_CAP):
        if stop:
            break
        time.sleep(0.1)
    ses.apply_settings({"enable_dht": False})
    ses.pause()


# ---------------------------------------------------------------- /proc readings


def _rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of `pid` in KiB."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()[0] if value.split() else "0"
    return int(fields.get("VmRSS", 0)), int(fields.get("VmHWM", 0))


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / CLK_TCK  # utime + stime


# ---------------------------------------------------------------- load generator


@dataclass
class _Source:
    sock: socket.socket
    node_id: bytes
    token: tuple[bytes, bytes] | None = None  # (info_hash, token) from the last reply
    item_token: tuple[bytes, bytes] | None = None  # (value, token) from the last get reply


@dataclass
class _Results:
    sent: list[int] = field(default_factory=lambda: [0] * len(_KIND_NAMES))
    answered: list[int] = field(default_factory=lambda: [0] * len(_KIND_NAMES))
    errors: int = 0
    dropped: int = 0
    latencies: list[float] = field(default_factory=list)
    queries_served: int = 0  # the node's own queries we answered


class LoadGen:
    """Many bound UDP sockets, round-robin sends, one window of outstanding queries."""

    def __init__(self, target: tuple[str, int], sockets: int, seed: int) -> None:
        self.target = target
        self.rng = random.Random(seed)
        self.sel = selectors.DefaultSelector()
        self.sources: list[_Source] = []
        for i in range(sockets):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
            s.bind((f"127.{1 + i // 65_000}.{(i // 250) % 250 + 1}.{i % 250 + 1}", 0))
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ, i)
            self.sources.append(_Source(s, self.rng.randbytes(20)))
        self.info_hashes = [self.rng.randbytes(20) for _ in range(1000)]
        # BEP 44 immutable values (bencoded strings) and their targets.
        self.values = [b"%d:%s" % (n, self.rng.randbytes(n)) for n in range(20, 120)]
        self.targets = {hashlib.sha1(v).digest(): v for v in self.values}
        self.pending: dict[bytes, tuple[float, int, int, bytes]] = {}  # t -> sent, kind, src, ih
        self._next_t = 0
        self._rr = 0
        self.res = _Results()

    def close(self) -> None:
        for src in self.sources:
            self.sel.unregister(src.sock)
            src.sock.close()
        self.sel.close()

    # -- building queries

    def _t(self) -> bytes:
        self._next_t = (self._next_t + 1) & 0xFFFFFFFF
        return struct.pack(">I", self._next_t)

    @staticmethod
    def _query(method: bytes, args: bytes, t: bytes) -> bytes:
        return b"d1:ad" + args + b"e1:q%d:%s1:t4:%s1:y1:qe" % (len(method), method, t)

    def _build(self, kind: int, src: _Source, t: bytes) -> tuple[bytes, bytes]:
        ident = b"2:id20:" + src.node_id
        if kind == _PING:
            return self._query(b"ping", ident, t), b""
        if kind == _FIND_NODE:
            target = self.rng.randbytes(20)
            return self._query(b"find_node", ident + b"6:target20:" + target, t), b""
        if kind == _ANNOUNCE and src.token is not None:
            ih, token = src.token
            args = b"%s9:info_hash20:%s4:porti%de5:token%d:%s" % (
                ident,
                ih,
                6881 + (self._next_t & 0x3FF),
                len(token),
                token,
            )
            return self._query(b"announce_peer", args, t), ih
        if kind == _PUT and src.item_token is not None:
            value, token = src.item_token
            args = b"%s5:token%d:%s1:v%s" % (ident, len(token), token, value)
            return self._query(b"put", args, t), b""
        if kind in (_GET, _PUT):
            target = self.rng.choice(list(self.targets))
            return self._query(b"get", ident + b"6:target20:" + target, t), target
        if kind == _SAMPLE:
            target = self.rng.randbytes(20)
            return self._query(b"sample_infohashes", ident + b"6:target20:" + target, t), b""
        ih = self.rng.choice(self.info_hashes)
        if kind == _SCRAPE:
            args = ident + b"9:info_hash20:" + ih + b"6:scrapei1e"
            return self._query(b"get_peers", args, t), ih
        return self._query(b"get_peers", ident + b"9:info_hash20:" + ih, t), ih

    def send_one(
        self, kind: int, now: float, info_hash: bytes | None = None, source: int | None = None
    ) -> bool:
        """Send one query from `source`, or from the next socket in round-robin order."""
        src_index = source
        if src_index is None:
            src_index = self._rr
            self._rr = (self._rr + 1) % len(self.sources)
        src = self.sources[src_index]
        if kind == _ANNOUNCE and src.token is None:
            kind = _GET_PEERS  # no token yet: fetch one
        if kind == _PUT and src.item_token is None:
            kind = _GET
        t = self._t()
        if info_hash is not None and kind == _GET_PEERS:
            data = self._query(
                b"get_peers", b"2:id20:" + src.node_id + b"9:info_hash20:" + info_hash, t
            )
            ih = info_hash
        else:
            data, ih = self._build(kind, src, t)
        try:
            src.sock.sendto(data, self.target)
        except (BlockingIOError, ConnectionRefusedError):
            return False
        self.pending[t] = (now, kind, src_index, ih)
        self.res.sent[kind] += 1
        return True

    # -- receiving

    def receive(self, timeout: float, now_fn: Any = time.perf_counter) -> list[int]:
        """Drain every readable socket; returns the sources that just got a token."""
        done: list[int] = []
        for key, _ in self.sel.select(timeout):
            src = self.sources[key.data]
            for _ in range(256):
                try:
                    data, addr = src.sock.recvfrom(4096)
                except (BlockingIOError, ConnectionRefusedError):
                    break
                if b"1:y1:q" in data:
                    self._answer(src, data, addr)
                    continue
                pos = data.rfind(b"1:t4:")
                if pos < 0:
                    continue
                entry = self.pending.pop(data[pos + 5 : pos + 9], None)
                if entry is None:
                    continue  # late reply to a query already counted as dropped
                sent_at, kind, _, ih = entry
                if b"1:y1:e" in data:
                    self.res.errors += 1
                    continue
                self.res.answered[kind] += 1
                self.res.latencies.append(now_fn() - sent_at)
                if kind in (_GET_PEERS, _GET):
                    m = _TOKEN.search(data)
                    if m is not None:
                        start = m.end()
                        token = data[start : start + int(m.group(1))]
                        if kind == _GET:
                            src.item_token = (self.targets[ih], token)
                        else:
                            src.token = (ih, token)
                            done.append(key.data)
        return done

    def _answer(self, src: _Source, data: bytes, addr: tuple[str, int]) -> None:
        """The node's own query (a ping of a full bucket, a refresh): reply as a node would."""
        m = _QUERY_T.search(data)
        if m is None:
            return
        t = data[m.end() : m.end() + int(m.group(1))]
        reply = b"d1:rd2:id20:%se1:t%d:%s1:y1:re" % (src.node_id, len(t), t)
        with contextlib.suppress(BlockingIOError, ConnectionRefusedError):
            src.sock.sendto(reply, addr)
        self.res.queries_served += 1

    def expire(self, now: float, timeout: float) -> None:
        cutoff = now - timeout
        # Insertion order is send order: stop at the first live entry.
        for _ in range(len(self.pending)):
            t, entry = next(iter(self.pending.items()))
            if entry[0] > cutoff:
                break
            del self.pending[t]
            self.res.dropped += 1


_MIX = _MIXES["all"]


def _pick_kind(rng: random.Random) -> int:
    r = rng.random()
    for kind, upto in _MIX:
        if r < upto:
            return kind
    return _MIX[-1][0]


def warm_up(gen: LoadGen, count: int) -> int:
    """One ping from each of the first `count` sources; returns how many were answered."""
    for i in range(min(count, len(gen.sources))):
        gen.send_one(_PING, time.perf_counter(), source=i)
        if i % 64 == 63:
            gen.receive(0.0)
    deadline = time.perf_counter() + 2.0
    for _ in range(_LOOP_CAP):
        if not gen.pending or time.perf_counter() > deadline:
            break
        gen.receive(0.05)
    answered = gen.res.answered[_PING]
    gen.pending.clear()
    gen.res = _Results()
    return answered


def run_mixed(gen: LoadGen, seconds: float, window: int, max_rate: float, timeout: float) -> float:
    """Closed-loop mixed load; returns the elapsed wall time."""
    start = time.perf_counter()
    end = start + seconds
    sent_total = 0
    for _ in range(_LOOP_CAP):
        now = time.perf_counter()
        if now >= end:
            break
        allowed = int((now - start) * max_rate) - sent_total
        room = min(window - len(gen.pending), allowed)
        for _ in range(max(0, room)):
            if gen.send_one(_pick_kind(gen.rng), now):
                sent_total += 1
        gen.receive(0.0 if room > 0 else 0.001)
        gen.expire(now, timeout)
    # Let the stragglers come home, then count the rest as dropped.
    tail = time.perf_counter() + timeout
    for _ in range(_LOOP_CAP):
        if not gen.pending or time.perf_counter() > tail:
            break
        gen.receive(0.01)
    gen.res.dropped += len(gen.pending)
    gen.pending.clear()
    return time.perf_counter() - start


def run_flood(gen: LoadGen, count: int, window: int, max_rate: float, timeout: float) -> float:
    """`count` distinct info-hashes, each get_peers (for a token) then announce_peer."""
    start = time.perf_counter()
    issued = announced = sent_total = 0
    for _ in range(_LOOP_CAP):
        now = time.perf_counter()
        if issued >= count and not gen.pending:
            break  # every get_peers answered or dropped, every announce too
        if now - start > 10 * 60:
            break  # hard bound on the whole flood
        allowed = int((now - start) * max_rate) - sent_total
        room = min(window - len(gen.pending), allowed)
        for _ in range(max(0, room)):
            if issued >= count:
                break
            ih = issued.to_bytes(20, "big")
            if gen.send_one(_GET_PEERS, now, info_hash=ih):
                issued += 1
                sent_total += 1
        # Each source that just got a token announces that info-hash with it (the
        # window may overshoot by one batch; it bounds memory, not correctness).
        for src_index in gen.receive(0.0 if room > 0 else 0.001):
            src = gen.sources[src_index]
            if src.token is not None and announced < count:
                if gen.send_one(_ANNOUNCE, now, source=src_index):
                    announced += 1
                    sent_total += 1
                src.token = None
        gen.expire(now, timeout)
    gen.res.dropped += len(gen.pending)
    gen.pending.clear()
    return time.perf_counter() - start


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---------------------------------------------------------------- orchestration


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_node(args: argparse.Namespace, port: int) -> subprocess.Popen[str]:
    cmd = [sys.executable, __file__, "_node", args.impl, "--port", str(port)]
    if args.profile:
        cmd += ["--profile", args.profile]
    cpu = args.node_cpu

    def pin() -> None:
        if cpu >= 0:
            os.sched_setaffinity(0, {cpu})

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, preexec_fn=pin)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise SystemExit(f"node did not start: {line!r}")
    return proc


def _stop_node(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def bench(args: argparse.Namespace) -> None:
    if args.gen_cpu >= 0:
        os.sched_setaffinity(0, {args.gen_cpu})
    proc: subprocess.Popen[str] | None = None
    if args.attach:
        port, pid = args.attach
    else:
        port = _free_port()
        proc = _start_node(args, port)
        pid = proc.pid
    try:
        gen = LoadGen(("127.0.0.1", port), args.sockets, args.seed)
        try:
            warmed = warm_up(gen, args.warm)
            time.sleep(0.5)
            rss0, _ = _rss_kib(pid)
            cpu0 = _cpu_seconds(pid)
            gen_cpu0 = sum(os.times()[:2])
            max_rate = args.per_ip * args.sockets
            if args.flood:
                elapsed = run_flood(gen, args.flood, args.window, max_rate, args.timeout)
            else:
                elapsed = run_mixed(gen, args.seconds, args.window, max_rate, args.timeout)
            cpu = _cpu_seconds(pid) - cpu0
            gen_cpu = sum(os.times()[:2]) - gen_cpu0
            rss1, hwm = _rss_kib(pid)
        finally:
            gen.close()
    finally:
        if proc is not None:
            _stop_node(proc)
    r = gen.res
    answered = sum(r.answered)
    sent = sum(r.sent)
    mode = f"flood={args.flood}" if args.flood else f"seconds={args.seconds}"
    print(
        f"impl={args.impl} {mode} sockets={args.sockets} window={args.window} "
        f"warm_pings_answered={warmed}/{min(args.warm, args.sockets)}"
    )
    print(
        f"sent={sent} answered={answered} errors={r.errors} dropped={r.dropped} "
        f"drop_rate={r.dropped / max(sent, 1):.2%} elapsed={elapsed:.1f}s"
    )
    print(
        "by kind: "
        + " ".join(
            f"{name}={r.answered[k]}/{r.sent[k]}" for k, name in enumerate(_KIND_NAMES) if r.sent[k]
        )
    )
    print(
        f"answered_per_s={answered / elapsed:,.0f} "
        f"p50_ms={1000 * _percentile(r.latencies, 0.5):.2f} "
        f"p99_ms={1000 * _percentile(r.latencies, 0.99):.2f}"
    )
    print(
        f"node_cpu_s={cpu:.1f} node_cpu_util={cpu / elapsed:.0%} "
        f"answered_per_cpu_s={answered / max(cpu, 1e-9):,.0f}"
    )
    print(f"load generator cpu_s={gen_cpu:.1f} ({gen_cpu / elapsed:.0%} of its core)")
    print(f"node_rss_kib before={rss0} after={rss1} peak={hwm}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_node":
        p = argparse.ArgumentParser()
        p.add_argument("_node")
        p.add_argument("impl", choices=["shoal", "libtorrent"])
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--profile")
        a = p.parse_args()
        if a.impl == "shoal":
            _serve_shoal(a.port, a.profile)
        else:
            _serve_libtorrent(a.port)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=["shoal", "libtorrent"], default="shoal")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--flood", type=int, default=0, help="distinct info-hashes to announce")
    parser.add_argument("--sockets", type=int, default=4096, help="source addresses")
    parser.add_argument("--per-ip", type=float, default=8.0, help="queries/s per source")
    parser.add_argument("--window", type=int, default=256, help="queries in flight")
    parser.add_argument("--timeout", type=float, default=1.0, help="a reply later is a drop")
    parser.add_argument("--warm", type=int, default=500, help="sources that ping first")
    parser.add_argument("--node-cpu", type=int, default=-1, help="pin the node (-1: no)")
    parser.add_argument("--gen-cpu", type=int, default=-1, help="pin this process (-1: no)")
    parser.add_argument("--profile", help="cProfile the shoal node into this file")
    parser.add_argument(
        "--attach",
        type=int,
        nargs=2,
        metavar=("PORT", "PID"),
        help="load a node already listening on 127.0.0.1:PORT (e.g. `shoal dht`) instead",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mix", choices=sorted(_MIXES), default="all", help="query mix")
    args = parser.parse_args()
    global _MIX
    _MIX = _MIXES[args.mix]
    bench(args)


if __name__ == "__main__":
    main()
