"""Per-peer state held for a peer's unverified claims is capped (docs/security.md)."""

from __future__ import annotations

from shoal.peer import events as ev
from shoal.peer import messages as m
from shoal.peer.connection import MAX_PEER_PIECE_SET
from shoal.peer.handshake import Handshake, ReservedBits, encode_handshake

from .test_connection import ID_B, INFO_HASH, drain, engine, opened


def test_allowed_fast_and_suggest_floods_before_the_metadata_are_capped() -> None:
    # A magnet download: no piece count yet, so any index is accepted as a claim.
    conn = engine(num_pieces=None)
    conn.receive_data(encode_handshake(Handshake(INFO_HASH, ID_B, ReservedBits(0x100005))), 0.0)
    flood = b"".join(
        m.encode_message(msg)
        for i in range(10_000)
        for msg in (m.AllowedFast(i * 7919), m.Suggest(i * 104_729))
    )
    conn.receive_data(flood, 0.0)
    events = drain(conn)
    assert len(conn.peer_allowed_fast) == MAX_PEER_PIECE_SET
    assert len(conn.suggested) == MAX_PEER_PIECE_SET
    assert sum(isinstance(e, ev.AllowedFastReceived) for e in events) == MAX_PEER_PIECE_SET
    assert sum(isinstance(e, ev.Suggested) for e in events) == MAX_PEER_PIECE_SET
    # Repeats of a kept index still count (they are cheap and idempotent).
    conn.receive_data(m.encode_message(m.AllowedFast(0)), 0.0)
    assert [type(e) for e in drain(conn)] == [ev.AllowedFastReceived]


def test_a_normal_allowed_fast_set_is_kept_whole() -> None:
    conn = opened()
    conn.receive_data(b"".join(m.encode_message(m.AllowedFast(i)) for i in range(5)), 0.0)
    drain(conn)
    assert conn.peer_allowed_fast == set(range(5))
