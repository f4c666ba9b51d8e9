"""TransactionTable: ids from the rng, matching on address and id, deadlines."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from shoal.dht.transactions import TransactionTable

A, B = ("127.0.0.1", 1), ("127.0.0.2", 2)


def test_reply_must_match_address_and_id() -> None:
    table: TransactionTable[str] = TransactionTable(random.Random(1))
    t = table.add(A, "ping", 5.0)
    assert len(t) == 2
    assert table.pop(B, t) is None  # same id from another address
    assert table.pop(A, t + b"x") is None
    assert table.pop(A, t) == "ping"
    assert table.pop(A, t) is None  # a duplicate reply finds nothing
    assert len(table) == 0


def test_deadlines_and_stale_heap_entries() -> None:
    table: TransactionTable[int] = TransactionTable(random.Random(2))
    t1 = table.add(A, 1, 3.0)
    table.add(A, 2, 5.0)
    table.add(B, 3, 4.0)
    assert table.next_deadline() == 3.0
    table.pop(A, t1)  # answered: its deadline no longer counts
    assert table.next_deadline() == 4.0
    assert table.pop_expired(4.5) == [(B, 3)]
    assert table.pop_expired(4.9) == []
    assert table.pop_expired(5.0) == [(A, 2)]
    assert table.next_deadline() is None


class SameBytes(random.Random):
    def randbytes(self, n: int) -> bytes:
        return bytes(n) if n == 2 else super().randbytes(n)


def test_collisions_fall_back_to_longer_ids() -> None:
    table: TransactionTable[int] = TransactionTable(SameBytes(3))
    first = table.add(A, 1, 1.0)
    second = table.add(A, 2, 1.0)
    assert first == b"\x00\x00"
    assert len(second) == 4
    assert table.add(B, 3, 1.0) == b"\x00\x00"  # ids are unique per address only


@given(st.lists(st.tuples(st.booleans(), st.floats(0, 100)), max_size=200))
def test_ids_unique_per_address_while_pending(ops: list[tuple[bool, float]]) -> None:
    table: TransactionTable[int] = TransactionTable(random.Random(0))
    live: dict[bytes, int] = {}
    for i, (answer, deadline) in enumerate(ops):
        t = table.add(A, i, deadline)
        assert t not in live
        live[t] = i
        if answer:
            assert table.pop(A, t) == i
            del live[t]
    expired = table.pop_expired(100.0)
    assert sorted(v for _, v in expired) == sorted(live.values())
    assert len(table) == 0


def test_a_scheduled_resend_comes_back_once_unless_answered() -> None:
    table: TransactionTable[str] = TransactionTable(random.Random(3))
    a, b, c = ("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 1)
    ta, tb, tc = (table.add(x, name, 5.0) for x, name in ((a, "a"), (b, "b"), (c, "c")))
    table.schedule_resend(a, ta, 0.5, b"qa")
    table.schedule_resend(b, tb, 0.7, b"qb")
    table.schedule_resend(c, tc, 0.6, b"qc")
    assert table.next_resend() == 0.5
    assert table.pop(b, tb) == "b"  # answered: its resend is dropped
    assert table.pop_resends(0.4) == []
    assert table.pop_resends(1.0) == [(a, b"qa", "a"), (c, b"qc", "c")]
    assert table.pop_resends(2.0) == []  # once only
    assert table.next_resend() is None
    assert len(table) == 2  # still pending: the deadline did not move
    assert [addr for addr, _ in table.pop_expired(5.0)] == [a, c]


def test_an_expired_query_is_not_resent() -> None:
    table: TransactionTable[str] = TransactionTable(random.Random(4))
    addr = ("10.0.0.1", 1)
    t = table.add(addr, "x", 1.0)
    table.schedule_resend(addr, t, 2.0, b"q")  # later than the deadline: never due
    assert table.pop_expired(1.0) == [(addr, "x")]
    assert table.next_resend() is None
    assert table.pop_resends(3.0) == []
    table.schedule_resend(addr, t, 2.0, b"q")  # unknown by now: ignored
    assert table.next_resend() is None
