"""Handshake handover: a `PeerConnection` built from the parsed remote handshake plus the
bytes after it starts OPEN and behaves exactly like one that parsed the handshake itself."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.errors import RemoteProtocolError
from shoal.ids import InfoHash, PeerId
from shoal.peer.connection import ConnectionState, PeerConnection
from shoal.peer.handshake import HANDSHAKE_LENGTH, HandshakeParser
from shoal.swarm.bitfield import Bitfield

if TYPE_CHECKING:
    from shoal.peer import events as ev

INFO_HASH = InfoHash(bytes(range(20)))
ID_A = PeerId(b"-SH0100-aaaaaaaaaaaa")
ID_B = PeerId(b"-SH0100-bbbbbbbbbbbb")
NUM_PIECES = 12


def remote_bytes(have: list[int], haves_after: list[int]) -> bytes:
    """What peer B sends: handshake, bitfield, extended handshake, then some haves."""
    bits = Bitfield.none(NUM_PIECES)
    for i in have:
        bits.set(i)
    b = PeerConnection(INFO_HASH, ID_B, NUM_PIECES, now=0.0, rng=random.Random(1), our_pieces=bits)
    a = PeerConnection(INFO_HASH, ID_A, NUM_PIECES, now=0.0, rng=random.Random(2))
    b.receive_data(b"".join(a.data_to_send()), 0.0)  # B answers A's handshake
    for i in haves_after:
        if not bits.test(i):
            b.send_have(i)
    return b"".join(b.data_to_send())


def events_of(conn: PeerConnection) -> list[ev.PeerEvent]:
    return list(iter(conn.next_event, None))


pieces = st.lists(st.integers(0, NUM_PIECES - 1), max_size=NUM_PIECES)


@given(have=pieces, later=pieces, cut=st.integers(0, 200))
def test_handover_gives_the_same_events_and_no_handshake_bytes(
    have: list[int], later: list[int], cut: int
) -> None:
    wire = remote_bytes(have, later)
    # Reference: the engine parses the handshake itself.
    ref = PeerConnection(INFO_HASH, ID_A, NUM_PIECES, now=0.0, rng=random.Random(3))
    ref.receive_data(wire, 0.0)
    ref_out = b"".join(ref.data_to_send())
    # Handover: the transport parsed the handshake (maybe with some bytes after it).
    parser = HandshakeParser(expected_info_hash=INFO_HASH)
    parser.receive_data(wire[: HANDSHAKE_LENGTH + cut])
    remote = parser.handshake
    assert remote is not None
    conn = PeerConnection(
        INFO_HASH,
        ID_A,
        NUM_PIECES,
        now=0.0,
        rng=random.Random(3),
        remote_handshake=remote,
        initial_data=parser.trailing_data,
    )
    assert conn.state is ConnectionState.OPEN
    rest = wire[HANDSHAKE_LENGTH + cut :]
    if rest:
        conn.receive_data(rest, 0.0)
    assert events_of(conn) == events_of(ref)
    # Our handshake went out already (from the dialer/listener): everything else is equal.
    assert b"".join(conn.data_to_send()) == ref_out[HANDSHAKE_LENGTH:]


def test_handover_refuses_another_torrent_and_ourselves() -> None:
    wire = remote_bytes([], [])
    parser = HandshakeParser(expected_info_hash=INFO_HASH)
    parser.receive_data(wire[:HANDSHAKE_LENGTH])
    remote = parser.handshake
    assert remote is not None
    other = InfoHash(bytes(20))
    with pytest.raises(RemoteProtocolError):
        PeerConnection(other, ID_A, None, now=0, rng=random.Random(), remote_handshake=remote)
    with pytest.raises(RemoteProtocolError):
        PeerConnection(INFO_HASH, ID_B, None, now=0, rng=random.Random(), remote_handshake=remote)
