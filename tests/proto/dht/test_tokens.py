"""Token rotation, scripted in time steps (BEP 5: 5-minute secret, 10-minute validity)."""

from __future__ import annotations

import itertools
import random

from hypothesis import given
from hypothesis import strategies as st

from shoal.dht.tokens import ROTATE_INTERVAL, TOKEN_LENGTH, TokenManager

from .strategies import ids20, ipv4s, ipv6s

IH = b"i" * 20
IP = "203.0.113.5"


def manager(now: float = 1000.0) -> TokenManager:
    return TokenManager(random.Random(7), now)


def test_valid_before_and_after_one_rotation_invalid_after_two() -> None:
    tm = manager()
    tok = tm.issue(IP, IH, 1000.0)
    assert len(tok) == TOKEN_LENGTH
    assert tm.validate(tok, IP, IH, 1000.0 + ROTATE_INTERVAL - 1)  # same secret
    assert tm.validate(tok, IP, IH, 1000.0 + ROTATE_INTERVAL)  # previous secret
    assert tm.validate(tok, IP, IH, 1000.0 + 2 * ROTATE_INTERVAL - 1)
    assert not tm.validate(tok, IP, IH, 1000.0 + 2 * ROTATE_INTERVAL)  # both rotated away


def test_long_silence_invalidates_everything_and_reanchors() -> None:
    tm = manager()
    tok = tm.issue(IP, IH, 1000.0)
    later = 1000.0 + 50 * ROTATE_INTERVAL + 3
    assert not tm.validate(tok, IP, IH, later)
    assert tm.get_timer() == later + ROTATE_INTERVAL
    fresh = tm.issue(IP, IH, later)
    assert tm.validate(fresh, IP, IH, later + ROTATE_INTERVAL)


def test_token_bound_to_ip_and_info_hash() -> None:
    tm = manager()
    tok = tm.issue(IP, IH, 1000.0)
    assert not tm.validate(tok, "203.0.113.6", IH, 1000.0)
    assert not tm.validate(tok, IP, b"j" * 20, 1000.0)
    assert not tm.validate(tok[:-1], IP, IH, 1000.0)
    assert not tm.validate(b"", IP, IH, 1000.0)


def test_issue_is_stable_within_an_interval_and_changes_across() -> None:
    tm = manager()
    a = tm.issue(IP, IH, 1000.0)
    assert tm.issue(IP, IH, 1000.0 + ROTATE_INTERVAL - 0.5) == a
    assert tm.issue(IP, IH, 1000.0 + ROTATE_INTERVAL) != a


def test_callable_secret_source() -> None:
    counter = itertools.count(1)
    tm = TokenManager(lambda n: bytes([next(counter)]) * n, 0.0)
    tok = tm.issue("::1", IH, 0.0)
    assert tm.validate(tok, "::1", IH, 1.0)
    assert TokenManager(lambda n: bytes(n), 0.0).issue("::1", IH, 0.0) != tok


@given(ipv4s | ipv6s, ids20, st.floats(0, 1e6), st.floats(0, ROTATE_INTERVAL * 0.999))
def test_issued_tokens_validate_for_at_least_one_interval(
    ip: str, info_hash: bytes, start: float, age: float
) -> None:
    tm = TokenManager(random.Random(1), 0.0)
    tok = tm.issue(ip, info_hash, start)
    assert tm.validate(tok, ip, info_hash, start + age)
