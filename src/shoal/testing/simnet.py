"""A seeded discrete-event UDP network that drives sans-IO datagram engines in virtual time.

Theory of operation
-------------------
`SimNet` holds one heap of ``(time, seq, ...)`` events: datagram deliveries and engine
timers. ``seq`` is a global counter, so equal times pop in insertion order and a run is
a pure function of the seed. Engines are any objects with the datagram-engine verbs
(`DatagramEngine`: ``receive_datagram``, ``datagrams_to_send``, ``get_timer``,
``handle_timer``), e.g. `shoal.dht.node.DHTNode`. After every call into an engine the
net drains its datagrams and re-reads its timer (the aioquic ``transmit()`` rule);
after calling a *command* on an engine yourself, call `SimNet.poke`.

Each datagram independently may be lost, duplicated, or held back by extra jitter
(which reorders it behind later ones). Its base one-way delay is half the link's RTT.
Link RTTs are log-normal (``median_rtt``, ``rtt_sigma``) and *derived from a hash of
the salt and the two addresses*, not drawn in event order, so the same network seed
gives every link the same RTT whatever the engines do. That makes A/B comparisons of
two policies fair: both runs see exactly the same latencies.

A `Bottleneck` models a slow link with a drop-tail FIFO (a home uplink and its modem
buffer): every datagram *from* one of its source addresses is serialised at ``rate``
bytes/s after those queued before it, and dropped when the queue already holds
``buffer`` bytes. It is how congestion control (uTP's LEDBAT against a TCP-like flow)
is tested; the queueing delay each datagram saw is recorded per source.

Addresses with no engine are unresponsive: datagrams to them vanish, which is how a
share of dead nodes (about half of the real Mainline DHT) is modelled for free.

`kademlia_contacts` builds warm routing tables directly (k random members of each
bucket's ID range, found by bisection in the sorted ID list) so that a 10,000-node
network starts in seconds rather than after hours of simulated traffic.

This module is pure (no clock, sockets or global randomness) and is itself checked by
the purity test.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Final, Protocol, TypeAlias

from ..errors import DecodeError, RemoteProtocolError

if TYPE_CHECKING:
    import random
    from collections.abc import Callable, Sequence

__all__ = [
    "Addr",
    "Bottleneck",
    "DatagramEngine",
    "NetConfig",
    "NetStats",
    "SimNet",
    "kademlia_contacts",
]

Addr: TypeAlias = tuple[str, int]

_DELIVER: Final = 0
_TIMER: Final = 1
_STD_NORMAL: Final = NormalDist()
# Clamp the log-normal draw to +-4 sigma: a 1-in-30,000 link should not take minutes.
_Z_LIMIT: Final = 4.0


class DatagramEngine(Protocol):
    """The datagram-engine contract of style.md 4.2 (what `SimNet` drives)."""

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None: ...
    def datagrams_to_send(self) -> list[tuple[bytes, Addr]]: ...
    def get_timer(self) -> float | None: ...
    def handle_timer(self, now: float) -> None: ...


@dataclass(frozen=True, slots=True)
class NetConfig:
    """Network behaviour. Probabilities apply to each datagram independently.

    Attributes:
        median_rtt: median round-trip time of a link, seconds.
        rtt_sigma: shape of the log-normal RTT distribution (0 = every link equal).
        loss: probability a datagram is dropped.
        duplicate: probability a datagram is delivered twice.
        reorder: probability a datagram gets extra delay of up to ``reorder_delay``
            times its one-way latency, so that later datagrams overtake it.
        reorder_delay: see ``reorder``.
    """

    median_rtt: float = 0.1
    rtt_sigma: float = 0.6
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_delay: float = 2.0

    def __post_init__(self) -> None:
        for p in (self.loss, self.duplicate, self.reorder):
            if not 0.0 <= p <= 1.0:
                raise ValueError("probabilities must be within [0, 1]")
        if self.median_rtt <= 0 or self.rtt_sigma < 0 or self.reorder_delay < 0:
            raise ValueError("median_rtt must be positive, sigma and reorder_delay >= 0")


@dataclass(frozen=True, slots=True)
class NetStats:
    """Counters of everything the network did."""

    sent: int
    delivered: int
    lost: int
    duplicated: int
    reordered: int
    #: Datagrams addressed to an address with no engine (dead nodes).
    unreachable: int
    #: `DecodeError` / `RemoteProtocolError` raised by an engine's receive path.
    engine_errors: int
    events: int


class Bottleneck:
    """A FIFO link of `rate` bytes/s with a drop-tail queue of `buffer` bytes (see the module).

    ``bytes_by_source`` / ``delay_by_source`` accumulate, per source address, the bytes
    that made it through and the sum of their queueing delays (``packets_by_source``
    counts them); ``drops`` counts datagrams the full queue refused. `reset_counters`
    starts a new measurement window.
    """

    def __init__(self, rate: float, buffer: int) -> None:
        if rate <= 0 or buffer <= 0:
            raise ValueError("rate and buffer must be positive")
        self.rate = rate
        self.buffer = buffer
        self.free_at = 0.0
        self.reset_counters()

    def reset_counters(self) -> None:
        self.bytes_by_source: dict[Addr, int] = {}
        self.delay_by_source: dict[Addr, float] = {}
        self.packets_by_source: dict[Addr, int] = {}
        self.drops = 0

    def enqueue(self, now: float, src: Addr, size: int) -> float | None:
        """When a datagram of `size` bytes entering now leaves the link, or None if dropped."""
        backlog = max(0.0, self.free_at - now)
        if backlog * self.rate + size > self.buffer:
            self.drops += 1
            return None
        self.free_at = now + backlog + size / self.rate
        self.bytes_by_source[src] = self.bytes_by_source.get(src, 0) + size
        self.delay_by_source[src] = self.delay_by_source.get(src, 0.0) + backlog
        self.packets_by_source[src] = self.packets_by_source.get(src, 0) + 1
        return self.free_at

    def mean_delay(self, src: Addr) -> float:
        """Mean queueing delay of `src`'s datagrams since the last reset (0 if none)."""
        n = self.packets_by_source.get(src, 0)
        return self.delay_by_source.get(src, 0.0) / n if n else 0.0


class SimNet:
    """A simulated network of datagram engines (see the module docstring).

    Args:
        rng: all per-datagram randomness (loss, duplication, jitter); seed it.
        config: link behaviour.
        now: the virtual start time.
    """

    def __init__(
        self, rng: random.Random, config: NetConfig | None = None, *, now: float = 0.0
    ) -> None:
        self.config = config if config is not None else NetConfig()
        self._rng = rng
        self._salt = rng.getrandbits(64).to_bytes(8, "big")
        self._now = now
        # (time, seq, kind, addr, source, datagram, timer value); seq makes the order total.
        self._heap: list[tuple[float, int, int, Addr, Addr, bytes, float]] = []
        self._seq = 0
        self._engines: dict[Addr, DatagramEngine] = {}
        self._timer_at: dict[Addr, float] = {}
        self._rtts: dict[tuple[Addr, Addr], float] = {}
        self._counts = dict.fromkeys(NetStats.__slots__, 0)
        self._bottlenecks: dict[Addr, Bottleneck] = {}

    # -- topology -------------------------------------------------------------------------

    @property
    def now(self) -> float:
        return self._now

    def add(self, addr: Addr, engine: DatagramEngine) -> None:
        """Attach `engine` at `addr` and collect whatever it already queued."""
        if addr in self._engines:
            raise ValueError(f"{addr} already has an engine")
        self._engines[addr] = engine
        self.poke(addr)

    def add_bottleneck(self, link: Bottleneck, sources: Sequence[Addr]) -> None:
        """Route every datagram sent by one of `sources` through `link` (a shared uplink)."""
        for src in sources:
            self._bottlenecks[src] = link

    def remove(self, addr: Addr) -> None:
        """Detach the engine: from now on datagrams to `addr` vanish (the node died)."""
        self._engines.pop(addr, None)
        self._timer_at.pop(addr, None)

    def engine(self, addr: Addr) -> DatagramEngine | None:
        return self._engines.get(addr)

    def rtt(self, a: Addr, b: Addr) -> float:
        """The fixed round-trip time of the link between `a` and `b` (symmetric)."""
        key = (a, b) if a <= b else (b, a)
        rtt = self._rtts.get(key)
        if rtt is None:
            digest = hashlib.blake2b(repr(key).encode(), digest_size=8, key=self._salt).digest()
            # A uniform in (0, 1) from the hash, then the normal quantile: deterministic.
            u = (int.from_bytes(digest, "big") + 0.5) / 2.0**64
            z = max(-_Z_LIMIT, min(_Z_LIMIT, _STD_NORMAL.inv_cdf(u)))
            rtt = self.config.median_rtt * math.exp(self.config.rtt_sigma * z)
            self._rtts[key] = rtt
        return rtt

    # -- driving --------------------------------------------------------------------------

    def poke(self, addr: Addr) -> None:
        """Drain `addr`'s engine and re-arm its timer; call after invoking a command on it."""
        engine = self._engines.get(addr)
        if engine is None:
            return
        for data, dst in engine.datagrams_to_send():
            self.send(addr, data, dst)
        when = engine.get_timer()
        if when is not None and self._timer_at.get(addr) != when:
            self._timer_at[addr] = when
            self._push(max(when, self._now), _TIMER, addr, addr, b"", when)

    def send(self, src: Addr, data: bytes, dst: Addr) -> None:
        """Put one datagram on the wire from `src` to `dst` (subject to loss etc.)."""
        cfg, rng, counts = self.config, self._rng, self._counts
        counts["sent"] += 1
        if cfg.loss and rng.random() < cfg.loss:
            counts["lost"] += 1
            return
        copies = 1
        if cfg.duplicate and rng.random() < cfg.duplicate:
            counts["duplicated"] += 1
            copies = 2
        one_way = self.rtt(src, dst) / 2
        link = self._bottlenecks.get(src)
        for _ in range(copies):
            delay = one_way
            if link is not None:
                leaves = link.enqueue(self._now, src, len(data))
                if leaves is None:
                    counts["lost"] += 1
                    continue
                delay += leaves - self._now
            if cfg.reorder and rng.random() < cfg.reorder:
                counts["reordered"] += 1
                delay += rng.uniform(0.0, cfg.reorder_delay * one_way)
            self._push(self._now + delay, _DELIVER, dst, src, data, 0.0)

    def step(self) -> bool:
        """Process the next event; returns False when nothing is scheduled."""
        if not self._heap:
            return False
        when, _, kind, addr, src, data, timer = heapq.heappop(self._heap)
        if kind == _TIMER and self._timer_at.get(addr) != timer:
            return True  # superseded by a later get_timer() value: not an event at all
        self._now = max(self._now, when)
        self._counts["events"] += 1
        if kind == _DELIVER:
            self._deliver(addr, src, data)
        else:
            self._fire_timer(addr)
        return True

    def run(
        self,
        *,
        until: float | None = None,
        stop: Callable[[], bool] | None = None,
        max_events: int = 10_000_000,
    ) -> bool:
        """Process events in time order.

        Stops when the heap is empty, the next event is after `until` (virtual time then
        advances to `until`), `stop()` turns true (checked after each event), or
        `max_events` were processed. Returns True if `stop()` was satisfied.
        """
        for _ in range(max_events):
            if stop is not None and stop():
                return True
            if not self._heap or (until is not None and self._heap[0][0] > until):
                break
            self.step()
        if until is not None and (not self._heap or self._heap[0][0] > until):
            self._now = max(self._now, until)
        return stop is not None and stop()

    def statistics(self) -> NetStats:
        return NetStats(**self._counts)

    # -- internals ------------------------------------------------------------------------

    def _push(
        self, when: float, kind: int, addr: Addr, src: Addr, data: bytes, timer: float
    ) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, kind, addr, src, data, timer))

    def _deliver(self, dst: Addr, src: Addr, data: bytes) -> None:
        engine = self._engines.get(dst)
        if engine is None:
            self._counts["unreachable"] += 1
            return
        self._counts["delivered"] += 1
        try:
            engine.receive_datagram(data, src, self._now)
        except (DecodeError, RemoteProtocolError):
            # What a real service would catch and drop; anything else is a bug and escapes.
            self._counts["engine_errors"] += 1
        self.poke(dst)

    def _fire_timer(self, addr: Addr) -> None:
        del self._timer_at[addr]
        engine = self._engines.get(addr)
        if engine is None:
            return
        engine.handle_timer(self._now)
        self.poke(addr)


def kademlia_contacts(
    ids: Sequence[bytes], k: int, rng: random.Random, *, owners: Sequence[bytes] | None = None
) -> list[list[int]]:
    """Warm routing tables: for each node, up to k random nodes from each of its buckets.

    Bucket ``b`` of node ``n`` holds the IDs sharing exactly ``b`` leading bits with
    ``n`` (BEP 5's bucket split, fully grown). IDs must be distinct 20-byte values.
    Returns, per owner (by default every node of ``ids``), indices into ``ids``; an
    owner never gets its own ID.
    """
    order = sorted(range(len(ids)), key=lambda i: ids[i])
    keys = [int.from_bytes(ids[i], "big") for i in order]

    def span(prefix: int, shift: int) -> tuple[int, int]:
        lo = prefix << shift
        return bisect.bisect_left(keys, lo), bisect.bisect_left(keys, lo + (1 << shift))

    tables: list[list[int]] = []
    for node in ids if owners is None else owners:
        value = int.from_bytes(node, "big")
        contacts: list[int] = []
        for b in range(160):
            shift = 159 - b
            # IDs that agree with `node` on the first b bits and differ at bit b.
            start, stop = span((value >> shift) ^ 1, shift)
            if stop - start > k:
                contacts.extend(order[j] for j in rng.sample(range(start, stop), k))
            else:
                contacts.extend(order[j] for j in range(start, stop))
            same_start, same_stop = span(value >> shift, shift)
            if same_stop - same_start == 0 or (
                same_stop - same_start == 1 and keys[same_start] == value
            ):
                break  # nobody else shares b+1 bits with us: deeper buckets are empty
        tables.append(contacts)
    return tables
