"""`RequestPipeline`: our outstanding block requests to one peer, their deadlines, the
peer's download rate, and the adaptive queue depth derived from it.

Theory of operation
-------------------
Throughput on one connection is bounded by how many requests are in flight: with ``d``
blocks of 16 KiB outstanding and a round trip (request → block, including the peer's
disk and upload queue) of ``t`` seconds, the peer can deliver at most ``d × 16 KiB / t``.
So the depth must cover the bandwidth-delay product::

    depth = clamp(ceil(rate × max(srtt, min_queue_time) / 16 KiB), min_depth, max_depth)

where ``max_depth`` is the peer's advertised BEP 10 ``reqq`` (what it queues without
dropping) or our own cap. ``min_queue_time`` (1 s by default) keeps the queue at least
a second deep, so that a short RTT (loopback, LAN) does not starve a fast peer and the
measured rate has room to grow: at depth 2 a peer delivers 2 blocks per RTT, the
measured rate rises, the depth rises, and so on until the cap or the peer's real
bandwidth is reached (a slow start, as in TCP).

The rate is bytes of received blocks over a sliding window of ``rate_window`` seconds,
kept in fixed-width buckets so that memory stays O(window / bucket) however fast the
peer is. RTT samples come only from requests sent while nothing else was outstanding:
any other request's time includes queueing behind earlier blocks and would inflate it.

Deadlines: every request gets ``now + request_timeout``. Since the timeout is the same
for all, insertion order is deadline order and the first entry is the next to expire.

Snubbing (libtorrent's term): requests outstanding and no block for ``snub_timeout``
seconds. The clock starts when the outstanding set becomes non-empty or a block
arrives. A snubbed peer gets a depth of 1 until it delivers again.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Final, TypeAlias, final

__all__ = ["Block", "RequestPipeline"]

#: (piece index, begin, length): how BEP 3 names a block in request/piece/cancel.
Block: TypeAlias = tuple[int, int, int]

# BEP 3: "All current implementations use 2^14 (16 kiB)".
_BLOCK_SIZE: Final = 16 * 1024
_BUCKET: Final = 0.25  # seconds per rate bucket


@final
class RequestPipeline:
    """Outstanding requests, per-request deadlines, rate/RTT estimate, snub detection."""

    __slots__ = (
        "_buckets",
        "_max_depth",
        "_min_depth",
        "_min_queue_time",
        "_probe",
        "_rate_start",
        "_rate_window",
        "_request_timeout",
        "_snub_since",
        "_snub_timeout",
        "_window_bytes",
        "outstanding",
        "snubbed",
        "srtt",
    )

    def __init__(
        self,
        *,
        request_timeout: float,
        snub_timeout: float,
        min_queue_time: float = 1.0,
        min_depth: int = 2,
        max_depth: int = 250,
        rate_window: float = 5.0,
    ) -> None:
        if not 1 <= min_depth <= max_depth:
            raise ValueError("need 1 <= min_depth <= max_depth")
        self._request_timeout = request_timeout
        self._snub_timeout = snub_timeout
        self._min_queue_time = min_queue_time
        self._min_depth = min_depth
        self._max_depth = max_depth
        self._rate_window = rate_window
        #: Block → time sent, in the order requested (= deadline order: the deadline
        #: is the time sent + ``request_timeout``; no tuple per request).
        self.outstanding: dict[Block, float] = {}
        self._probe: Block | None = None  # the request that may give an RTT sample
        self._buckets: deque[list[float]] = deque()  # [bucket start, bytes]
        self._window_bytes = 0.0
        self._rate_start: float | None = None
        self._snub_since: float | None = None
        #: Smoothed RTT in seconds, once a sample exists.
        self.srtt: float | None = None
        self.snubbed = False

    def __len__(self) -> int:
        return len(self.outstanding)

    def __contains__(self, block: object) -> bool:
        return block in self.outstanding

    # ---- requests --------------------------------------------------------------------

    def add(self, block: Block, now: float) -> None:
        """Track a request we are about to send."""
        if not self.outstanding:
            self._probe = block
            self._snub_since = now
        if self._rate_start is None:
            self._rate_start = now
        self.outstanding[block] = now

    def remove(self, block: Block) -> bool:
        """Forget a request (cancelled or rejected). False if it was not outstanding."""
        if self.outstanding.pop(block, None) is None:
            return False
        if block == self._probe:
            self._probe = None
        if not self.outstanding:
            self._snub_since = None
        return True

    def clear(self) -> list[Block]:
        """Forget every request (e.g. choked without BEP 6); returns them in order."""
        blocks = list(self.outstanding)
        self.outstanding.clear()
        self._probe = self._snub_since = None
        return blocks

    def block_received(self, block: Block, now: float) -> bool:
        """A block arrived. Returns whether it was outstanding (else nothing changes).

        Once per block: written out (no `remove`, no new bucket unless the 0.25 s
        bucket changed, no allocation otherwise).
        """
        sent = self.outstanding.pop(block, None)
        if sent is None:
            return False
        if block == self._probe:
            self._probe = None
            sample = max(now - sent, 0.0)
            self.srtt = sample if self.srtt is None else 0.875 * self.srtt + 0.125 * sample
        n = block[2]
        buckets = self._buckets
        if buckets and buckets[-1][0] > now - _BUCKET:
            buckets[-1][1] += n
            self._window_bytes += n
        else:
            self._count_bytes(n, now)
        self.snubbed = False
        self._snub_since = now if self.outstanding else None
        return True

    # ---- time ------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The earliest request deadline or snub deadline."""
        times = []
        if self.outstanding:
            times.append(next(iter(self.outstanding.values())) + self._request_timeout)
        if self._snub_since is not None and not self.snubbed:
            times.append(self._snub_since + self._snub_timeout)
        return min(times, default=None)

    def expire(self, now: float) -> list[Block]:
        """Remove and return every request whose deadline is ``<= now``."""
        expired = []
        for block, sent in self.outstanding.items():
            if sent + self._request_timeout > now:
                break
            expired.append(block)
        for block in expired:
            self.remove(block)
        return expired

    def check_snub(self, now: float) -> bool:
        """True exactly once when the peer becomes snubbed."""
        if self.snubbed or self._snub_since is None:
            return False
        if now < self._snub_since + self._snub_timeout:
            return False
        self.snubbed = True
        return True

    # ---- rate and depth --------------------------------------------------------------

    def _count_bytes(self, n: int, now: float) -> None:
        start = now - now % _BUCKET
        if self._buckets and self._buckets[-1][0] >= start:
            self._buckets[-1][1] += n
        else:
            self._buckets.append([start, float(n)])
        self._window_bytes += n
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._buckets and self._buckets[0][0] <= now - self._rate_window:
            self._window_bytes -= self._buckets.popleft()[1]

    def rate(self, now: float) -> float:
        """Bytes per second of blocks received over the last ``rate_window`` seconds."""
        self._trim(now)
        if self._rate_start is None:
            return 0.0
        span = min(max(now - self._rate_start, 1.0), self._rate_window)
        return max(self._window_bytes, 0.0) / span

    def depth(self, now: float, peer_reqq: int | None = None) -> int:
        """How many requests to keep outstanding (module docstring)."""
        if self.snubbed:
            return 1
        cap = self._max_depth if peer_reqq is None else max(1, min(self._max_depth, peer_reqq))
        queue_time = max(self.srtt or 0.0, self._min_queue_time)
        want = math.ceil(self.rate(now) * queue_time / _BLOCK_SIZE)
        return max(min(want, cap), min(self._min_depth, cap))
