"""Per-IP token buckets for incoming queries, with `now` passed in.

Why: a DHT node answers unauthenticated UDP, so one host could make us do
unbounded work (and, through our replies, amplify traffic at a spoofed victim).
Each source IP gets a bucket of `burst` tokens refilled at `rate` per second.
The table of buckets is itself bounded: when it is full the least recently
seen IP is forgotten, which only ever makes us *more* permissive to it.

The bucket arithmetic is `shoal.ratelimit.TokenBucket`, shared with the peer
bandwidth limits, so both are tested once (a clock that goes back mints nothing).
"""

from __future__ import annotations

from collections import OrderedDict

from ..ratelimit import TokenBucket

__all__ = ["RateLimiter"]


class RateLimiter:
    """Token bucket per key (an IP string)."""

    def __init__(self, rate: float, burst: float, *, max_tracked: int = 10_000) -> None:
        if rate <= 0 or burst < 1 or max_tracked < 1:
            raise ValueError("need rate > 0, burst >= 1, max_tracked >= 1")
        self.rate = rate
        self.burst = burst
        self.max_tracked = max_tracked
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def allow(self, key: str, now: float) -> bool:
        """Spend one token for `key`; False means drop the request."""
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = TokenBucket(self.rate, self.burst, now)
            if len(buckets) > self.max_tracked:
                buckets.popitem(last=False)
        else:
            buckets.move_to_end(key)  # most recently seen last
        # `TokenBucket.try_take(1.0, now)`, inlined: this runs for every query.
        if now > bucket.at:
            bucket.tokens = min(bucket.burst, bucket.tokens + (now - bucket.at) * bucket.rate)
            bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False

    def __len__(self) -> int:
        return len(self._buckets)
