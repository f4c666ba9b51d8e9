"""Per-IP token bucket."""

from __future__ import annotations

import pytest

from shoal.dht.ratelimit import RateLimiter


def test_burst_then_refill() -> None:
    rl = RateLimiter(rate=2.0, burst=3)
    assert [rl.allow("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert rl.allow("b", 0.0)  # independent per key
    assert not rl.allow("a", 0.4)  # 0.8 tokens
    assert rl.allow("a", 0.6)  # 0.8 + 0.4 = 1.2 tokens: a refusal costs nothing
    assert not rl.allow("a", 0.6)
    assert [rl.allow("a", 100.0) for _ in range(4)] == [True, True, True, False]


def test_tracked_keys_are_bounded() -> None:
    rl = RateLimiter(rate=1.0, burst=1, max_tracked=100)
    for i in range(1000):
        rl.allow(str(i), 0.0)
    assert len(rl) == 100


def test_time_going_backwards_does_not_mint_tokens() -> None:
    rl = RateLimiter(rate=1.0, burst=1)
    assert rl.allow("a", 10.0)
    assert not rl.allow("a", 5.0)


def test_rejects_bad_config() -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate=0, burst=1)
