"""The duplicate-connection tie-break: both ends must keep the same connection."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from shoal.session.duplicates import ConnectionFacts, keeps_new_connection

Addr = tuple[str, int]


@dataclass(frozen=True)
class Conn:
    dialer: bytes  # peer id of the dialling side
    dialer_end: Addr


def facts(conn: Conn, me: bytes) -> ConnectionFacts:
    return ConnectionFacts(incoming=conn.dialer != me, dialer_end=conn.dialer_end)


def survivor(me: bytes, other: bytes, first: Conn, second: Conn) -> Conn:
    """Which connection `me` keeps, seeing `first` complete before `second`."""
    keep_new = keeps_new_connection(me, other, facts(first, me), facts(second, me))
    return second if keep_new else first


ids = st.binary(min_size=20, max_size=20)
ends = st.tuples(st.sampled_from(["127.0.0.1", "127.0.0.2"]), st.integers(1, 65535))


flags = st.booleans()


@given(a=ids, b=ids, d1=flags, d2=flags, e1=ends, e2=ends, oa=flags, ob=flags)
def test_both_ends_keep_the_same_connection(
    a: bytes, b: bytes, d1: bool, d2: bool, e1: Addr, e2: Addr, oa: bool, ob: bool
) -> None:
    if a == b or (d1 == d2 and e1 == e2):
        return  # one peer; or two identical TCP connections (impossible)
    c1 = Conn(a if d1 else b, e1)
    c2 = Conn(a if d2 else b, e2)
    # Each end may see the handshakes complete in either order.
    at_a = survivor(a, b, c1, c2) if oa else survivor(a, b, c2, c1)
    at_b = survivor(b, a, c1, c2) if ob else survivor(b, a, c2, c1)
    assert at_a == at_b


def test_first_connection_is_always_kept() -> None:
    assert keeps_new_connection(b"a" * 20, b"b" * 20, None, ConnectionFacts(True, None))


def test_opposite_directions_keep_the_one_opened_by_the_smaller_id() -> None:
    small, big = b"\x01" * 20, b"\x02" * 20
    we_dialled = ConnectionFacts(incoming=False, dialer_end=None)
    they_dialled = ConnectionFacts(incoming=True, dialer_end=None)
    assert keeps_new_connection(small, big, they_dialled, we_dialled)
    assert not keeps_new_connection(big, small, they_dialled, we_dialled)


def test_same_direction_without_dialler_end_keeps_the_existing() -> None:
    old = ConnectionFacts(incoming=True, dialer_end=None)
    assert not keeps_new_connection(b"a" * 20, b"b" * 20, old, ConnectionFacts(True, None))
