"""Hand-driven pair of endpoints: the test decides which datagram arrives when."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from shoal.utp import UTPConfig, UTPConnection, UTPEndpoint
from shoal.utp.events import IncomingConnection, UTPEvent
from shoal.utp.packet import Packet, decode_packet

A = ("127.0.0.1", 6881)
B = ("127.0.0.2", 6882)


class FixedRandom(random.Random):
    """A Random whose randrange returns preset values first (to pin ids and sequence numbers)."""

    def __init__(self, *values: int) -> None:
        super().__init__(0)
        self._values = list(values)

    def randrange(self, *args: int, **kwargs: object) -> int:  # type: ignore[override]
        if self._values:
            return self._values.pop(0)
        return super().randrange(*args)


@dataclass
class Pair:
    a: UTPEndpoint
    b: UTPEndpoint
    now: float = 0.0
    events: dict[str, list[UTPEvent]] = field(default_factory=lambda: {"a": [], "b": []})

    @classmethod
    def create(
        cls,
        config: UTPConfig | None = None,
        *,
        rng_a: random.Random | None = None,
        rng_b: random.Random | None = None,
    ) -> Pair:
        return cls(
            UTPEndpoint(rng_a or random.Random(1), config),
            UTPEndpoint(rng_b or random.Random(2), config),
        )

    def out(self, side: str) -> list[Packet]:
        ep = self.a if side == "a" else self.b
        return [decode_packet(d) for d, _ in ep.datagrams_to_send()]

    def deliver(self, side: str, pkts: list[Packet]) -> None:
        """Deliver `pkts` to endpoint `side` (from the other one)."""
        ep, src = (self.a, B) if side == "a" else (self.b, A)
        for p in pkts:
            ep.receive_datagram(p.encode(), src, self.now)
        self.collect()

    def collect(self) -> None:
        for side, ep in (("a", self.a), ("b", self.b)):
            while (ev := ep.next_event()) is not None:
                self.events[side].append(ev)

    def exchange(self, rounds: int = 50) -> None:
        """Shuttle datagrams both ways until quiet (no loss)."""
        for _ in range(rounds):
            pa, pb = self.out("a"), self.out("b")
            if not pa and not pb:
                return
            self.deliver("b", pa)
            self.deliver("a", pb)

    def advance(self, dt: float) -> None:
        """Move time forward, firing due timers on both endpoints."""
        self.now += dt
        for ep in (self.a, self.b):
            timer = ep.get_timer()
            if timer is not None and timer <= self.now:
                ep.handle_timer(self.now)
        self.collect()

    def connect(self) -> tuple[UTPConnection, UTPConnection]:
        ca = self.a.connect(B, self.now)
        self.exchange()
        incoming = [e for e in self.events["b"] if isinstance(e, IncomingConnection)]
        return ca, incoming[-1].conn
