"""`SamplingWalk`: a polite BEP 51 indexer's schedule, as a pure policy object.

Theory of operation
-------------------
An indexer learns which torrents exist by asking node after node for samples of
the info-hashes they store. BEP 51 makes it cheap (one query per node) and asks for
politeness: every reply says, in ``interval``, how long to wait before asking that
node again. The walk is the schedule, and nothing else; the driver sends the
queries (``DHTNode.sample``) and reports what came back.

* **Discovery.** Each reply lists nodes close to the query's ``target``. Every query
  uses a fresh random target (from the injected rng), so replies spread over the
  whole keyspace and the walk traverses it with one query per node.
* **Never early.** A node is queried at most once per its ``interval`` (counted from
  the reply; a node that answered without one waits `default_interval`). It is asked
  again only if its ``num`` says it stores more than one sample holds; otherwise
  once is enough. A node that did not answer is not asked again.
* **Bounded.** Queries are spaced at least ``1 / max_rate`` seconds apart (no
  bursts), at most `max_in_flight` are outstanding, and the candidate set holds at
  most `max_nodes` addresses (newcomers beyond that are ignored).
* **Each info-hash once.** `on_reply` returns only info-hashes not seen before.

`next(now)` returns `SampleNode` (send it now), `WaitUntil` (nothing may be sent
before that time, or ``None``: until a reply or failure arrives) or `WalkDone`.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, final

if TYPE_CHECKING:
    import random
    from collections.abc import Iterable

    from .compact import Addr
    from .events import SampleReceived

__all__ = ["SampleNode", "SamplingWalk", "WaitUntil", "WalkConfig", "WalkDone"]

_MAX_SEEN: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class WalkConfig:
    #: Queries per second, at most (spaced evenly).
    max_rate: float = 20.0
    max_in_flight: int = 16
    max_nodes: int = 50_000
    #: Wait before re-asking a node that gave no ``interval``.
    default_interval: float = 21600.0


@final
@dataclass(frozen=True, slots=True)
class SampleNode:
    addr: Addr
    node_id: bytes | None
    target: bytes


@final
@dataclass(frozen=True, slots=True)
class WaitUntil:
    """Nothing to send before `until` (None: not before a reply or failure)."""

    until: float | None


@final
@dataclass(frozen=True, slots=True)
class WalkDone:
    """No node is left to ask and nothing is outstanding."""


@dataclass(slots=True)
class _Node:
    node_id: bytes | None
    ready_at: float
    asked: int = 0
    dead: bool = False


class SamplingWalk:
    """The schedule of a sampling walk (see the module docstring)."""

    def __init__(self, rng: random.Random, now: float, config: WalkConfig | None = None) -> None:
        self.config = cfg = config if config is not None else WalkConfig()
        if cfg.max_rate <= 0 or cfg.max_in_flight < 1:
            raise ValueError("max_rate must be > 0 and max_in_flight >= 1")
        self._rng = rng
        self._nodes: dict[Addr, _Node] = {}
        self._ready: list[tuple[float, int, Addr]] = []  # heap of (ready_at, order, addr)
        self._order = 0
        self._in_flight: set[Addr] = set()
        self._next_send = now
        self._seen: set[bytes] = set()
        self.queries = 0
        self.replies = 0
        self.failures = 0

    @property
    def known(self) -> int:
        return len(self._nodes)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def add_nodes(self, nodes: Iterable[tuple[bytes | None, Addr]], now: float) -> None:
        """Candidates (discovered or bootstrap); known addresses are left as they are."""
        for node_id, addr in nodes:
            if addr in self._nodes or len(self._nodes) >= self.config.max_nodes:
                continue
            self._nodes[addr] = _Node(node_id, now)
            self._push(addr, now)

    def next(self, now: float) -> SampleNode | WaitUntil | WalkDone:
        """The next action (see the module docstring)."""
        while self._ready and self._stale(self._ready[0]):
            heapq.heappop(self._ready)
        if not self._ready:
            return WaitUntil(None) if self._in_flight else WalkDone()
        if len(self._in_flight) >= self.config.max_in_flight:
            return WaitUntil(None)
        ready_at = max(self._ready[0][0], self._next_send)
        if ready_at > now:
            return WaitUntil(ready_at)
        _, _, addr = heapq.heappop(self._ready)
        node = self._nodes[addr]
        node.asked += 1
        self._in_flight.add(addr)
        self._next_send = now + 1.0 / self.config.max_rate
        self.queries += 1
        return SampleNode(addr, node.node_id, self._rng.randbytes(20))

    def on_reply(
        self,
        addr: Addr,
        node_id: bytes | None,
        samples: Iterable[bytes],
        interval: float | None,
        num: int | None,
        nodes: Iterable[tuple[bytes, Addr]],
        now: float,
    ) -> list[bytes]:
        """A reply from `addr`: returns its info-hashes not seen before."""
        self._in_flight.discard(addr)
        node = self._nodes.get(addr)
        samples = list(samples)
        if node is not None:
            self.replies += 1
            node.node_id = node_id if node_id is not None else node.node_id
            wait = self.config.default_interval if interval is None else max(0.0, interval)
            node.ready_at = now + wait
            if num is not None and num > len(samples):
                self._push(addr, node.ready_at)  # it holds more than one sample shows
        self.add_nodes(nodes, now)
        fresh = [h for h in dict.fromkeys(samples) if h not in self._seen]
        if len(self._seen) < _MAX_SEEN:
            self._seen.update(fresh)
        return fresh

    def on_result(self, result: SampleReceived, now: float) -> list[bytes]:
        """Feed `DHTNode.sample`'s result: a reply (even one without ``samples``, from a
        node that does not support BEP 51 but still lists nodes) or a failure."""
        if result.node_id is None:  # no answer (timeout or error)
            self.on_failure(result.addr, now)
            return []
        nodes = [(n.node_id, n.addr) for n in result.nodes]
        samples = result.samples or ()
        return self.on_reply(
            result.addr, result.node_id, samples, result.interval, result.num, nodes, now
        )

    def on_failure(self, addr: Addr, now: float) -> None:
        """No answer (or no BEP 51 support): the node is not asked again."""
        self._in_flight.discard(addr)
        node = self._nodes.get(addr)
        if node is not None:
            node.dead = True
            self.failures += 1

    def ready_at(self, addr: Addr) -> float | None:
        """When `addr` may next be asked (None: unknown or never again)."""
        node = self._nodes.get(addr)
        return None if node is None or node.dead else node.ready_at

    def _push(self, addr: Addr, at: float) -> None:
        self._order += 1
        heapq.heappush(self._ready, (at, self._order, addr))

    def _stale(self, entry: tuple[float, int, Addr]) -> bool:
        at, _, addr = entry
        node = self._nodes[addr]
        # Dead, already being asked, or an old heap entry from before a reply moved it.
        return node.dead or addr in self._in_flight or at < node.ready_at
