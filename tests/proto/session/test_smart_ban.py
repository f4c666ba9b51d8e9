"""SmartBan: per-block digests of failed pieces against the verified copy."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shoal.session.smart_ban import SOLE_FAILURES_BEFORE_BAN, Ban, SmartBan

BLOCK = 16
PIECE = BLOCK * 4
GOOD = bytes(range(PIECE))


def corrupt(data: bytes, block: int) -> bytes:
    out = bytearray(data)
    out[block * BLOCK] ^= 0xFF
    return bytes(out)


@given(
    senders=st.lists(st.sampled_from("abcd"), min_size=4, max_size=4),
    liars=st.sets(st.integers(0, 3), min_size=1),
)
def test_exactly_the_senders_of_differing_blocks_are_banned(
    senders: list[str], liars: set[int]
) -> None:
    ban: SmartBan[str] = SmartBan(sole_failures_before_ban=99)
    bad = GOOD
    for block, peer in enumerate(senders):
        ban.block_received(0, block * BLOCK, BLOCK, peer)
        if block in liars:
            bad = corrupt(bad, block)
    peers, now_banned = ban.piece_failed(0, bad)
    assert set(peers) == set(senders)
    assert now_banned == []
    assert ban.suspected(0)
    # Refetched from an honest peer and verified.
    for block in range(4):
        ban.block_received(0, block * BLOCK, BLOCK, "honest")
    bans = ban.piece_verified(0, GOOD)
    assert {b.peer for b in bans} == {senders[i] for i in liars}
    assert len(bans) == len({b.peer for b in bans})  # one ban per peer
    assert not ban.suspected(0)


@given(st.lists(st.sampled_from("ab"), min_size=1, max_size=8))
def test_sole_supplier_is_banned_after_enough_failures(failing: list[str]) -> None:
    ban: SmartBan[str] = SmartBan()
    counts: dict[str, int] = {}
    for index, peer in enumerate(failing):
        ban.block_received(index, 0, BLOCK, peer)
        peers, bans = ban.piece_failed(index, None)
        assert peers == (peer,)
        counts[peer] = counts.get(peer, 0) + 1
        expected = [Ban(peer, "sent pieces that failed the hash check")]
        assert bans == (expected if counts[peer] >= SOLE_FAILURES_BEFORE_BAN else [])


def test_shared_failures_ban_nobody_by_count() -> None:
    ban: SmartBan[str] = SmartBan()
    for index in range(5):
        ban.block_received(index, 0, BLOCK, "a")
        ban.block_received(index, BLOCK, BLOCK, "b")
        assert ban.piece_failed(index, None)[1] == []


def test_verified_without_failure_needs_no_good_copy() -> None:
    ban: SmartBan[str] = SmartBan()
    ban.block_received(0, 0, BLOCK, "a")
    assert not ban.suspected(0)
    assert ban.piece_verified(0, None) == []
    assert ban.contributors(0) == set()


def test_forget_drops_the_sources() -> None:
    ban: SmartBan[str] = SmartBan()
    ban.block_received(3, 0, BLOCK, "a")
    assert ban.contributors(3) == {"a"}
    ban.forget(3)
    assert ban.piece_failed(3, None) == ((), [])


def test_blocks_of_two_failures_are_merged() -> None:
    ban: SmartBan[str] = SmartBan(sole_failures_before_ban=99)
    ban.block_received(0, 0, BLOCK, "a")
    ban.block_received(0, BLOCK, BLOCK, "b")
    ban.piece_failed(0, corrupt(GOOD, 0))
    ban.block_received(0, 2 * BLOCK, BLOCK, "c")
    ban.piece_failed(0, corrupt(GOOD, 2))
    assert {b.peer for b in ban.piece_verified(0, GOOD)} == {"a", "c"}
