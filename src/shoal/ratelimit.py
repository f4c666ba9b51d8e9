"""Token buckets and a fair, hierarchical `RateLimiter`, with time passed in.

Why one pure module: two limits in shoal are token buckets (peer bandwidth, and the
DHT's per-IP query limit in `dht/ratelimit.py`), and both want the same arithmetic,
tested once with hypothesis in virtual time.

`RateLimiter` shares bandwidth the way libtorrent's bandwidth manager does: consumers
(peer connections) ask for a number of bytes on a *chain* of channels (for example
"global download" and "this torrent's download"); a request is granted only when every
limited channel of its chain can pay for it. When requests wait, `handle_timer` hands
out the tokens that accrued by fair queuing on bytes served (see `RateLimiter`). So
two peers on one channel get the same bytes per second whatever their request sizes
or the order they ask in, and a per-torrent limit below its fair share of the global
limit frees the rest for the other torrents.

What counts: the caller charges what crosses the socket (BitTorrent framing, MSE
handshake and padding included, as libtorrent's peer connections charge their socket
I/O). `ip_overhead` estimates the TCP/IP headers the same way libtorrent's statistics
do (one 40-byte IPv4 / 60-byte IPv6 TCP+IP header per 1,500-byte packet); libtorrent
no longer rate-limits those by default, and neither do we unless the caller adds them.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, final

from .errors import LocalProtocolError

if TYPE_CHECKING:
    from collections.abc import Hashable, Iterable

__all__ = [
    "DEFAULT_TICK",
    "MIN_INTERVAL",
    "MTU",
    "ChannelStats",
    "RateLimiter",
    "TokenBucket",
    "ip_overhead",
]

#: Ethernet MTU assumed by `ip_overhead`.
MTU: Final = 1500
#: How often waiting requests are served (seconds). Small enough for smooth rates,
#: large enough that a busy limiter costs ~20 wake-ups a second.
DEFAULT_TICK: Final = 0.05
#: The limiter never asks to be woken more often than this (seconds).
MIN_INTERVAL: Final = 0.005


def ip_overhead(nbytes: int, *, ipv6: bool = False) -> int:
    """TCP/IP header bytes for sending `nbytes` of stream data (at least one packet)."""
    header = 60 if ipv6 else 40
    packets = max(1, -(-nbytes // (MTU - header)))
    return packets * header


@final
class TokenBucket:
    """`burst` tokens at most, refilled at `rate` per second; starts full.

    Tokens never go negative: a taker asks first (`try_take`) or waits until
    `time_until` says enough have accrued.
    """

    __slots__ = ("at", "burst", "rate", "tokens")

    def __init__(self, rate: float, burst: float, now: float = 0.0) -> None:
        if not rate > 0 or not burst > 0 or math.isinf(rate):
            raise ValueError("need 0 < rate < inf and burst > 0")
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.at = now

    def refill(self, now: float) -> None:
        """Add what accrued since the last call (a clock that goes back adds nothing)."""
        if now > self.at:
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now

    def available(self, now: float) -> float:
        self.refill(now)
        return self.tokens

    def try_take(self, amount: float, now: float) -> bool:
        """Take `amount` tokens if they are all there; False (and nothing taken) if not."""
        self.refill(now)
        if self.tokens >= amount:
            self.tokens -= amount
            return True
        return False

    def take(self, amount: float) -> None:
        """Take tokens already known to be there (after `refill`)."""
        if amount > self.tokens + 1e-9:
            raise LocalProtocolError(f"taking {amount} of {self.tokens} tokens")
        self.tokens = max(0.0, self.tokens - amount)

    def give_back(self, amount: float) -> None:
        """Return unused tokens (a read that got fewer bytes than it paid for)."""
        self.tokens = min(self.burst, self.tokens + amount)

    def time_until(self, amount: float, now: float) -> float:
        """Seconds until `amount` tokens are there (inf if more than `burst`)."""
        self.refill(now)
        if amount > self.burst:
            return math.inf
        return max(0.0, (amount - self.tokens) / self.rate)


@dataclass(slots=True)
class _Request:
    chain: tuple[Hashable, ...]  # limited channels only
    amount: int


@dataclass(slots=True)
class ChannelStats:
    """Per-channel counters: bytes granted in total, consumers waiting now."""

    granted: int = 0
    waiting: int = 0


@final
class RateLimiter:
    """Fair bandwidth sharing over named channels with optional limits.

    Engine contract: `request` either grants at once (returns True) or queues; then
    call `handle_timer(now)` at `get_timer()` and drain `next_grant()` to learn which
    queued consumers may go. `cancel` forgets a consumer (and its queued request);
    `give_back` refunds bytes paid for but not used. A channel without a rate is
    unlimited and costs nothing.

    Fairness is fair queuing on bytes served: every consumer has a service counter,
    and queued requests are paid in order of (counter + amount), the consumer that has
    received least going first. A channel whose next request in that order cannot be
    paid yet is closed for the rest of the round, so small requests cannot overtake a
    large one for ever. A consumer that comes back after a pause starts level with the
    least-served waiting consumer, not with a backlog of credit.
    """

    def __init__(
        self,
        *,
        tick: float = DEFAULT_TICK,
        min_interval: float = MIN_INTERVAL,
        burst_seconds: float = 0.1,
    ) -> None:
        if not 0 < min_interval <= tick or burst_seconds <= 0:
            raise ValueError("need 0 < min_interval <= tick and burst_seconds > 0")
        self.tick = tick
        self.min_interval = min_interval
        self.burst_seconds = burst_seconds
        self._buckets: dict[Hashable, TokenBucket] = {}
        self._queue: dict[Hashable, _Request] = {}
        self._served: dict[Hashable, int] = {}
        self._active: dict[Hashable, tuple[float, tuple[Hashable, ...]]] = {}
        self._ready: deque[Hashable] = deque()
        self._stats: dict[Hashable, ChannelStats] = {}
        self._at: float | None = None

    # ---------------------------------------------------------------- configuration

    def set_rate(
        self, channel: Hashable, rate: float | None, now: float, *, burst: float | None = None
    ) -> None:
        """Limit `channel` to `rate` bytes/s (None or 0: unlimited).

        The bucket holds `burst` bytes (default: `burst_seconds` of traffic, at least
        16 KiB so one block always fits). Waiting requests on a channel that becomes
        unlimited are re-evaluated at the next `handle_timer`.
        """
        if not rate:
            self._buckets.pop(channel, None)
            for req in self._queue.values():
                req.chain = tuple(c for c in req.chain if c != channel)
            return
        size = burst if burst is not None else max(rate * self.burst_seconds, 16 * 1024 + 64)
        old = self._buckets.get(channel)
        bucket = TokenBucket(rate, size, now)
        if old is not None:
            old.refill(now)
            bucket.tokens = min(size, old.tokens)
        self._buckets[channel] = bucket

    def limited(self, chain: Iterable[Hashable]) -> bool:
        """Does any channel of `chain` have a limit (else requests are free)?"""
        return any(c in self._buckets for c in chain)

    def rate(self, channel: Hashable) -> float | None:
        bucket = self._buckets.get(channel)
        return bucket.rate if bucket else None

    # ---------------------------------------------------------------- requests

    def request(
        self, consumer: Hashable, chain: Iterable[Hashable], amount: int, now: float
    ) -> bool:
        """Ask for `amount` bytes on every channel of `chain`.

        Granted at once (True) when nobody waits on its channels and every bucket can
        pay. Otherwise queued (False): it is paid in a later `handle_timer`, in fair
        order; drain `next_grant()` after each. A request larger than a bucket is
        paid when the bucket is full, and the bucket goes into debt for the rest.

        Raises:
            LocalProtocolError: `consumer` already has a request queued, or amount < 0.
        """
        if consumer in self._queue or amount < 0:
            raise LocalProtocolError(f"bad request by {consumer!r} for {amount} bytes")
        limited = tuple(c for c in dict.fromkeys(chain) if c in self._buckets)
        if not limited:
            return True
        stats = [self._stat(c) for c in limited]
        served = self._served.get(consumer, 0)
        last = self._active.get(consumer)
        if last is None or last[0] < now - self.tick:  # back from a pause: no credit
            floor = min((self._served[c] for c in self._queue), default=0)
            served = max(served, floor)
        self._served[consumer] = served
        self._active[consumer] = (now, limited)
        for bucket in (self._buckets[c] for c in limited):
            bucket.refill(now)
        if (
            not any(st.waiting for st in stats)
            and self._can_pay(limited, amount)
            and served <= self._least_served_rival(consumer, limited, now)
        ):
            self._pay(consumer, limited, amount)
            return True
        for st in stats:
            st.waiting += 1
        self._queue[consumer] = _Request(limited, amount)
        if self._at is None:
            self._at = now
        return False

    def cancel(self, consumer: Hashable) -> None:
        """Forget `consumer`: drop its queued request (nothing of it was paid)."""
        self._served.pop(consumer, None)
        self._active.pop(consumer, None)
        req = self._queue.pop(consumer, None)
        if req is None:
            return
        for channel in req.chain:
            self._stats[channel].waiting -= 1
        if not self._queue:
            self._at = None

    def give_back(self, chain: Iterable[Hashable], amount: int) -> None:
        """Refund `amount` bytes to every limited channel of `chain`."""
        for channel in dict.fromkeys(chain):
            bucket = self._buckets.get(channel)
            if bucket is not None and amount > 0:
                bucket.give_back(amount)
                self._stats[channel].granted -= amount

    def next_grant(self) -> Hashable | None:
        """The next queued consumer whose request is now paid, or None."""
        return self._ready.popleft() if self._ready else None

    def _least_served_rival(
        self, consumer: Hashable, chain: tuple[Hashable, ...], now: float
    ) -> float:
        """The smallest service counter among the other consumers that asked on a
        channel of `chain` within the last tick: one who has had more than they may
        not take tokens at once, or the first to ask would always win the leftover."""
        shared = set(chain)
        rivals = [
            self._served[other]
            for other, (at, their_chain) in self._active.items()
            if other != consumer and at >= now - self.tick and shared.intersection(their_chain)
        ]
        return min(rivals, default=math.inf)

    def _can_pay(self, chain: tuple[Hashable, ...], amount: int) -> bool:
        return all((b := self._buckets[c]).tokens >= min(amount, b.burst) - 1e-9 for c in chain)

    def _pay(self, consumer: Hashable, chain: tuple[Hashable, ...], amount: int) -> None:
        for channel in chain:
            self._buckets[channel].tokens -= amount  # may go into debt (amount > burst)
            self._stats[channel].granted += amount
        self._served[consumer] = self._served.get(consumer, 0) + amount

    # ---------------------------------------------------------------- time

    def get_timer(self) -> float | None:
        """When `handle_timer` should run next, or None while nobody waits.

        The earliest time at which the first request in fair order on some channel
        can be paid (so a fast channel is served as often as it needs), no later than
        `tick` after the last run and no sooner than `min_interval` after it.
        """
        if self._at is None:
            return None
        when = self._at + self.tick
        for req in self._queue.values():
            ready = self._at
            for channel in req.chain:
                bucket = self._buckets[channel]
                need = min(req.amount, bucket.burst) - bucket.tokens
                ready = max(ready, bucket.at + need / bucket.rate)
            when = min(when, ready)
        return max(when, self._at + self.min_interval)

    def handle_timer(self, now: float) -> None:
        """Pay what can be paid, least-served consumer first."""
        if not self._queue:
            self._at = None
            return
        self._at = now
        for bucket in self._buckets.values():
            bucket.refill(now)
        closed: set[Hashable] = set()
        order = sorted(self._queue, key=lambda c: self._served[c] + self._queue[c].amount)
        for consumer in order:
            req = self._queue[consumer]
            if closed.intersection(req.chain):
                continue
            short = [c for c in req.chain if not self._can_pay((c,), req.amount)]
            if short:
                closed.update(short)  # only the channels that are short: others go on
                continue
            del self._queue[consumer]
            for channel in req.chain:
                self._stats[channel].waiting -= 1
            self._pay(consumer, req.chain, req.amount)
            self._ready.append(consumer)
        if not self._queue:
            self._at = None

    # ---------------------------------------------------------------- introspection

    def statistics(self, channel: Hashable) -> ChannelStats:
        """A copy of the counters of `channel` (zeros for one never used)."""
        stats = self._stats.get(channel, ChannelStats())
        return ChannelStats(stats.granted, stats.waiting)

    def waiting(self) -> int:
        return len(self._queue)

    def _stat(self, channel: Hashable) -> ChannelStats:
        stats = self._stats.get(channel)
        if stats is None:
            stats = self._stats[channel] = ChannelStats()
        return stats
