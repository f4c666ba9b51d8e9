"""Authentication rules with time as a parameter: PBKDF2 hashes, bans after 5 failures
(lifted after the ban time), session expiry and bounds, Host/Origin checks; and the
header parsers are total (hypothesis: any text gives an answer, never an exception)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shoal.daemon.auth import (
    BAN_SECONDS,
    MAX_FAILURES,
    SESSION_SECONDS,
    Authenticator,
    hash_password,
    host_allowed,
    same_origin,
    verify_password,
)
from shoal.daemon.server import _cookie

FAST = 1000  # PBKDF2 iterations in tests (the stored format carries the count)


def _auth(**kw: bool) -> Authenticator:
    return Authenticator("admin", hash_password("pw", iterations=FAST), **kw)


def test_hash_round_trip_and_salting() -> None:
    # "!" is in no base64 alphabet: the password can never turn up in salt or hash by
    # chance ("pw" alone did, in about one run of 40).
    one, two = hash_password("pw!", iterations=FAST), hash_password("pw!", iterations=FAST)
    assert one != two  # salted
    assert one.startswith(f"pbkdf2_sha512${FAST}$")
    assert verify_password("pw!", one)
    assert not verify_password("pW!", one)
    assert "pw!" not in one.split("$", 2)[2]


@given(st.text(max_size=30), st.text(max_size=80))
def test_verify_password_is_total(password: str, stored: str) -> None:
    assert verify_password(password, stored) in (True, False)


def test_five_failures_ban_for_the_ban_time() -> None:
    auth = _auth()
    for i in range(MAX_FAILURES):
        assert not auth.banned("192.0.2.1", float(i))
        assert auth.login("192.0.2.1", "admin", "wrong", float(i)) is None
    assert auth.banned("192.0.2.1", 10.0)
    assert not auth.banned("192.0.2.2", 10.0)  # per address
    assert auth.bans == 1
    assert not auth.banned("192.0.2.1", 4.0 + BAN_SECONDS + 1)


def test_a_good_login_resets_the_count_and_sessions_expire() -> None:
    auth = _auth()
    for _ in range(MAX_FAILURES - 1):
        auth.login("192.0.2.1", "admin", "wrong", 0.0)
    sid = auth.login("192.0.2.1", "admin", "pw", 1.0)
    assert sid is not None
    auth.login("192.0.2.1", "admin", "wrong", 2.0)
    assert not auth.banned("192.0.2.1", 3.0)
    assert auth.authorized(sid, "192.0.2.1", 100.0)
    assert auth.authorized(sid, "192.0.2.1", 100.0 + SESSION_SECONDS - 1)  # refreshed
    assert not auth.authorized(sid, "192.0.2.1", 100.0 + 3 * SESSION_SECONDS)
    auth.logout(sid)
    assert not auth.authorized(None, "192.0.2.1", 0.0)


def test_localhost_bypass_is_opt_in_and_loopback_only() -> None:
    assert not _auth().authorized(None, "127.0.0.1", 0.0)
    bypass = _auth(bypass_localhost=True)
    assert bypass.authorized(None, "127.0.0.1", 0.0)
    assert bypass.authorized(None, "::1", 0.0)
    assert not bypass.authorized(None, "192.0.2.2", 0.0)
    assert not bypass.authorized(None, "not an ip", 0.0)


def test_host_and_origin_rules() -> None:
    names = frozenset({"seedbox.lan"})
    assert host_allowed("127.0.0.1:8080", names)
    assert host_allowed("[::1]:8080", names)
    assert host_allowed("localhost:8080", names)
    assert host_allowed("SeedBox.lan:8080", names)
    assert not host_allowed("evil.example:8080", names)
    assert not host_allowed(None, names)
    assert same_origin("127.0.0.1:8080", None, None)
    assert same_origin("127.0.0.1:8080", "http://127.0.0.1:8080", "http://127.0.0.1:8080/x")
    assert not same_origin("127.0.0.1:8080", "http://evil.example", None)
    assert not same_origin("127.0.0.1:8080", None, "http://127.0.0.1:9999/")
    assert not same_origin("127.0.0.1:8080", "null", None)


@given(
    st.one_of(st.none(), st.text()),
    st.one_of(st.none(), st.text()),
    st.one_of(st.none(), st.text()),
)
def test_header_checks_are_total(host: str | None, origin: str | None, referer: str | None) -> None:
    assert host_allowed(host, frozenset()) in (True, False)
    assert same_origin(host, origin, referer) in (True, False)
    value = _cookie(origin, "SID")
    assert value is None or isinstance(value, str)
