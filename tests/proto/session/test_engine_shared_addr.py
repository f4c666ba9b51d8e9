"""One address, two connections: a uTP peer's connections to us come from its listen
address, the very address we dial. The peer-id tie-break (``session/duplicates.py``)
must still decide, on both ends alike, and the pool entry must stay busy (no redial)
while either connection lives."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shoal.ids import PeerId
from shoal.peer.handshake import Handshake
from shoal.session import commands as cmd
from shoal.swarm.peer_pool import PeerSource
from tests.proto.session.test_engine import ADDR, ALL, META, US, engine, ready

if TYPE_CHECKING:
    from shoal.session.engine import TorrentEngine

assert bytes(US)[:3] == b"-SH"  # between the two ids below

SMALLER = PeerId(b"-AA0100-smaller00000")  # < US: its connection wins a tie
BIGGER = PeerId(b"-ZZ0100-bigger000000")  # > US: ours wins


def handover(e: TorrentEngine, peer: PeerId, *, incoming: bool, now: float) -> int | None:
    return e.peer_connected(
        ADDR,
        Handshake(META.info_hash, peer, ALL),
        b"",
        incoming=incoming,
        encrypted=False,
        dialer_end=ADDR if incoming else ("127.0.0.1", 6881),
        now=now,
        utp=True,
    )


def dialling() -> TorrentEngine:
    e = ready(engine())
    e.peers_found([ADDR], PeerSource.USER, 0.0)
    assert cmd.Dial(ADDR) in e.commands()
    return e


def no_redial(e: TorrentEngine, now: float) -> bool:
    e.dial_more(now)
    return not [c for c in e.commands() if isinstance(c, cmd.Dial)]


def test_simultaneous_open_keeps_the_smaller_ids_connection_on_our_side_too() -> None:
    e = dialling()
    # The peer (smaller id) dialled us at the same time: its connection wins...
    assert e.would_accept(bytes(SMALLER), ADDR, ADDR)
    key = handover(e, SMALLER, incoming=True, now=1.0)
    assert key is not None
    # ...and our own dial, answered later, is the duplicate.
    assert handover(e, SMALLER, incoming=False, now=1.5) is None
    assert list(e.peers) == [key]
    assert no_redial(e, 100.0)  # the address is still in use
    e.peer_data(key, b"", 200.0)  # the kept connection ends: the address is free again
    assert e.pool.next_ready_time(200.0) is not None


def test_simultaneous_open_refuses_theirs_when_our_id_is_smaller() -> None:
    e = dialling()
    assert not e.would_accept(bytes(BIGGER), ADDR, ADDR)
    key = handover(e, BIGGER, incoming=False, now=1.5)
    assert key is not None
    assert list(e.peers) == [key]


def test_dial_failing_after_their_connection_won_keeps_the_address_busy() -> None:
    e = dialling()
    key = handover(e, SMALLER, incoming=True, now=1.0)
    assert key is not None
    e.dial_failed(ADDR, 1.5)  # the peer refused our dial: it kept its own
    assert no_redial(e, 100.0)
    assert list(e.peers) == [key]


def test_an_incoming_duplicate_from_the_dialled_address_replaces_ours() -> None:
    e = dialling()
    ours = handover(e, SMALLER, incoming=False, now=1.0)
    assert ours is not None
    # The same peer dials us over uTP from the address we dialled; opposite
    # directions, its id is smaller: its connection is the one both ends keep.
    assert e.would_accept(bytes(SMALLER), ADDR, ADDR)
    theirs = handover(e, SMALLER, incoming=True, now=2.0)
    assert theirs is not None
    assert list(e.peers) == [theirs]
    assert cmd.ClosePeer(ours, "duplicate connection (the other one won)") in e.commands()
    assert no_redial(e, 100.0)


def test_another_peer_id_from_a_connected_address_is_refused() -> None:
    e = dialling()
    assert handover(e, SMALLER, incoming=False, now=1.0) is not None
    assert not e.would_accept(bytes(BIGGER), ADDR, ADDR)
