"""PeerConnection: two engines wired back to back in memory, scripted time, fuzzing."""

from __future__ import annotations

import ipaddress
import itertools
import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.errors import HandshakeError, LocalProtocolError, RemoteProtocolError
from shoal.ids import InfoHash, PeerId, anonymous_peer_id
from shoal.peer import availability
from shoal.peer import events as ev
from shoal.peer import messages as m
from shoal.peer.connection import ConnectionConfig, ConnectionState, PeerConnection
from shoal.peer.extension import (
    ExtendedHandshake,
    PexFlags,
    PexPeer,
    encode_extended_handshake,
)
from shoal.peer.handshake import Handshake, ReservedBits, encode_handshake
from shoal.swarm.bitfield import Bitfield

from .wire_strategies import split_at, wire_messages

INFO_HASH = InfoHash(bytes(range(20)))
ID_A = PeerId(b"-SH0100-aaaaaaaaaaaa")
ID_B = PeerId(b"-SH0100-bbbbbbbbbbbb")
PIECE_LEN = 32 * 1024
NUM_PIECES = 10
TOTAL = PIECE_LEN * (NUM_PIECES - 1) + 1000  # short last piece
BLOCK = m.BLOCK_SIZE
NO_FAST = ReservedBits.DHT | ReservedBits.EXTENSION_PROTOCOL


def drain(conn: PeerConnection) -> list[ev.PeerEvent]:
    return list(iter(conn.next_event, None))


def wire(conn: PeerConnection) -> bytes:
    return b"".join(conn.data_to_send())


def engine(
    peer_id: PeerId = ID_A,
    num_pieces: int | None = NUM_PIECES,
    *,
    have: Bitfield | None = None,
    now: float = 0.0,
    **cfg: Any,
) -> PeerConnection:
    total = None if num_pieces is None else PIECE_LEN * (num_pieces - 1) + 1000
    return PeerConnection(
        INFO_HASH,
        peer_id,
        num_pieces,
        now=now,
        rng=random.Random(peer_id),
        config=ConnectionConfig(**cfg),
        our_pieces=have,
        piece_length=PIECE_LEN if num_pieces is not None else None,
        total_length=total,
    )


@dataclass
class Pair:
    """A seeder `a` and a leecher `b` connected in memory (h11's ConnectionPair idea)."""

    a: PeerConnection
    b: PeerConnection
    now: float = 0.0
    log: dict[str, list[ev.PeerEvent]] = field(default_factory=lambda: {"a": [], "b": []})

    def transfer(self) -> None:
        """Move bytes both ways until neither side has anything to send."""
        for _ in range(10):
            ab, ba = wire(self.a), wire(self.b)
            if not ab and not ba:
                return
            if ab:
                self.b.receive_data(ab, self.now)
            if ba:
                self.a.receive_data(ba, self.now)
        raise AssertionError("engines kept talking")

    def events(self, side: str) -> list[ev.PeerEvent]:
        conn = self.a if side == "a" else self.b
        got = drain(conn)
        self.log[side] += got
        return got


def pair(
    *, fast: bool = True, n: int = NUM_PIECES, b_pieces: int | None = NUM_PIECES, **cfg: Any
) -> Pair:
    reserved: dict[str, Any] = {} if fast else {"reserved": NO_FAST}
    p = Pair(
        engine(ID_A, n, have=Bitfield.all(n), **reserved, **cfg),
        engine(ID_B, n if b_pieces == NUM_PIECES else b_pieces, **reserved, **cfg),
    )
    p.transfer()
    return p


# ---- the whole conversation ------------------------------------------------------------


def test_handshakes_then_piece_state_then_extended_handshake() -> None:
    a = engine(ID_A, have=Bitfield.from_indices(NUM_PIECES, [0, 9]), listen_port=6881)
    a_out = wire(a)
    assert a_out[:68] == encode_handshake(
        Handshake(
            INFO_HASH, ID_A, ReservedBits.DHT | ReservedBits.FAST | ReservedBits.EXTENSION_PROTOCOL
        )
    )
    assert len(a_out) == 68, "nothing but the handshake before the peer's handshake"
    b = engine(ID_B)
    b.receive_data(a_out, 0.0)
    a.receive_data(wire(b), 0.0)
    b.receive_data(wire(a), 0.0)
    got = drain(b)
    assert got[0] == ev.HandshakeReceived(ID_A, a.config.reserved)
    assert got[1] == ev.BitfieldReceived(Bitfield.from_indices(NUM_PIECES, [0, 9]))
    assert isinstance(got[2], ev.ExtendedHandshakeReceived)
    hs = got[2].handshake
    assert hs.m == {"ut_metadata": 1, "ut_pex": 2}
    assert hs.v is not None
    assert hs.v.startswith("shoal ")
    assert (hs.reqq, hs.p) == (2000, 6881)  # libtorrent's reqq; rtorrent's is 2,048
    assert b.peer_pieces == Bitfield.from_indices(NUM_PIECES, [0, 9])
    assert b.peer_extensions == {"ut_metadata": 1, "ut_pex": 2}
    assert b.peer_reqq == 2000
    assert b.fast
    assert b.extensions
    assert b.state is ConnectionState.OPEN
    assert b.peer_id == ID_A


def test_yourip_and_metadata_size_advertised() -> None:
    a = PeerConnection(
        INFO_HASH,
        ID_A,
        None,
        now=0,
        rng=random.Random(0),
        metadata_size=12345,
        remote_ip=ipaddress.ip_address("127.0.0.2"),
    )
    b = engine(ID_B, None)
    b.receive_data(wire(a), 0)
    a.receive_data(wire(b), 0)
    b.receive_data(wire(a), 0)
    hs = next(e for e in drain(b) if isinstance(e, ev.ExtendedHandshakeReceived)).handshake
    assert hs.metadata_size == 12345 == b.peer_metadata_size
    assert hs.yourip == ipaddress.ip_address("127.0.0.2")


def test_seed_and_leecher_exchange_blocks() -> None:
    p = pair()
    assert isinstance(p.events("b")[1], ev.HaveAllReceived)
    assert isinstance(p.events("a")[1], ev.HaveNoneReceived)
    p.b.set_interested(True)
    p.a.set_choking(False)
    p.transfer()
    assert p.events("a") == [ev.PeerInterested()]
    assert p.events("b") == [ev.Unchoked()]
    p.b.request(3, 0, BLOCK, p.now)
    p.b.request(9, 0, 1000, p.now)  # the short last piece
    p.transfer()
    assert p.events("a") == [ev.BlockRequested(3, 0, BLOCK), ev.BlockRequested(9, 0, 1000)]
    data = bytes(range(256)) * 64
    assert p.a.send_piece(3, 0, data)
    (out,) = p.a.data_to_send()  # one buffer: header and block go out in one send
    header = m.encode_piece_header(3, 0, BLOCK)
    assert out.endswith(header + data)
    assert p.a.data_to_send() == []
    p.b.receive_data(out, p.now)
    (got,) = p.events("b")
    assert got == ev.BlockReceived(3, 0, data)
    assert p.b.outstanding == [(9, 0, 1000)]
    assert p.b.statistics()["downloaded"] == BLOCK
    assert p.a.statistics()["uploaded"] == BLOCK


def test_a_flush_of_blocks_and_control_messages_is_one_buffer_in_wire_order() -> None:
    p = pair()
    p.a.set_choking(False)
    p.transfer()
    for index, begin in ((3, 0), (3, BLOCK), (4, 0)):
        p.b.request(index, begin, BLOCK, p.now)
    p.transfer()
    p.events("a")
    blocks = [bytes([n]) * BLOCK for n in range(3)]
    data = bytearray(blocks[0])
    assert p.a.send_piece(3, 0, data)
    data[:] = bytes(BLOCK)  # the caller may reuse its buffer at once
    p.a.send_have(9)
    assert p.a.send_piece(3, BLOCK, memoryview(blocks[1]))
    assert p.a.send_piece(4, 0, blocks[2])
    out = p.a.data_to_send()
    expected = [
        m.Piece(3, 0, blocks[0]),
        m.Have(9),
        m.Piece(3, BLOCK, blocks[1]),
        m.Piece(4, 0, blocks[2]),
    ]
    assert out == [b"".join(m.encode_message(x) for x in expected)]


def test_a_read_of_blocks_is_refilled_once_after_its_last_block() -> None:
    p = pair(n=600, **NO_TIMEOUTS)
    p.a.set_choking(False)
    p.transfer()
    p.events("a")
    p.events("b")
    for index in range(4):
        p.b.request(index, 0, BLOCK, p.now)
    p.transfer()
    for e in p.events("a"):
        assert isinstance(e, ev.BlockRequested)
        assert p.a.send_piece(e.index, e.begin, bytes(BLOCK))
    p.b.receive_data(wire(p.a), p.now)  # one read, four blocks
    free = p.b.pipeline_depth(p.now) - len(p.b.pipeline)
    assert free > 0
    seen = []
    while (e := p.b.next_event()) is not None:
        seen.append(e)
        # a driver refilling after each block is told to wait until the read's last one
        assert p.b.request_slots(p.now) == (free if len(seen) == 4 else 0)
    assert [type(e) for e in seen] == [ev.BlockReceived] * 4


def test_drain_events_takes_a_whole_read_in_one_call() -> None:
    p = pair(n=600, **NO_TIMEOUTS)
    p.a.set_choking(False)
    p.transfer()
    p.events("a")
    p.events("b")
    for index in range(3):
        p.b.request(index, 0, BLOCK, p.now)
    p.transfer()
    for e in p.events("a"):
        assert isinstance(e, ev.BlockRequested)
        assert p.a.send_piece(e.index, e.begin, bytes([e.index]) * BLOCK)
    p.a.send_have(7)
    p.b.receive_data(wire(p.a), p.now)
    assert p.b.request_slots(p.now) == 0
    got = p.b.drain_events()
    assert got == [ev.BlockReceived(i, 0, bytes([i]) * BLOCK) for i in range(3)] + [
        ev.HaveReceived(7)
    ]
    assert p.b.next_event() is None
    assert p.b.request_slots(p.now) > 0


def test_cancel_withdraws_the_request_and_send_piece_reports_it() -> None:
    p = pair()
    p.a.set_choking(False)
    p.transfer()
    p.b.request(1, 0, BLOCK, p.now)
    p.transfer()
    assert p.b.cancel(1, 0, BLOCK)
    assert not p.b.cancel(1, 0, BLOCK)
    cancel = wire(p.b)
    assert cancel == m.encode_message(m.Cancel(1, 0, BLOCK))
    p.a.receive_data(cancel, 0)
    assert p.events("a")[-1] == ev.RequestCancelled(1, 0, BLOCK)
    # BEP 6: "every request is guaranteed to result in EXACTLY ONE response".
    reject = wire(p.a)
    assert reject == m.encode_message(m.Reject(1, 0, BLOCK))
    assert not p.a.send_piece(1, 0, bytes(BLOCK))
    assert wire(p.a) == b""
    p.events("b")
    p.b.receive_data(reject, 0)  # the answer to a cancelled request: quietly accepted
    assert p.events("b") == []


def test_late_block_after_cancel_is_dropped_quietly() -> None:
    p = pair()
    p.a.set_choking(False)
    p.transfer()
    p.events("b")
    p.b.request(1, 0, BLOCK, p.now)
    p.transfer()
    p.events("a")
    assert p.a.send_piece(1, 0, bytes(BLOCK))  # crosses the cancel on the wire
    p.b.cancel(1, 0, BLOCK)
    p.transfer()
    assert p.events("b") == []
    assert p.b.unexpected_blocks == 0


def test_unrequested_block_is_counted_and_ignored_without_fast() -> None:
    p = pair(fast=False)
    p.events("b")
    p.b.receive_data(m.encode_message(m.Piece(2, 0, b"xyz")), 0)
    assert p.events("b") == []
    assert p.b.unexpected_blocks == 1


def test_unrequested_block_is_a_violation_with_fast() -> None:
    p = pair()
    with pytest.raises(RemoteProtocolError, match="never requested"):
        p.b.receive_data(m.encode_message(m.Piece(2, 0, b"xyz")), 0)


def test_fast_reject_and_allowed_fast_while_choked() -> None:
    p = pair()
    p.events("a")
    p.events("b")
    p.a.send_allowed_fast(4)
    p.a.send_suggest(5)
    p.transfer()
    assert p.events("b") == [ev.AllowedFastReceived(4), ev.Suggested(5)]
    assert p.b.peer_allowed_fast == {4}
    assert p.b.suggested == {5}
    assert p.b.can_request(4)
    assert not p.b.can_request(3)
    with pytest.raises(LocalProtocolError):
        p.b.request(3, 0, BLOCK, p.now)
    p.b.request(4, 0, BLOCK, p.now)
    p.transfer()
    assert p.events("a") == [ev.BlockRequested(4, 0, BLOCK)]
    p.a.send_reject(4, 0, BLOCK)
    p.transfer()
    assert p.events("b") == [ev.RequestRejected(4, 0, BLOCK)]
    assert p.b.outstanding == []


def test_choking_with_fast_rejects_queued_requests_except_allowed_fast() -> None:
    p = pair()
    p.a.send_allowed_fast(2)
    p.a.set_choking(False)
    p.transfer()
    p.events("b")
    for index in (1, 2):
        p.b.request(index, 0, BLOCK, p.now)
    p.transfer()
    p.events("a")
    p.a.set_choking(True)
    p.transfer()
    # BEP 6: choke does not drop requests; the reject does.
    assert p.events("b") == [ev.Choked(), ev.RequestRejected(1, 0, BLOCK)]
    assert p.b.outstanding == [(2, 0, BLOCK)]
    assert not p.a.send_piece(1, 0, bytes(BLOCK))
    assert p.a.send_piece(2, 0, bytes(BLOCK))


def test_choke_without_fast_drops_every_request() -> None:
    p = pair(fast=False)
    assert not p.a.fast
    assert isinstance(p.events("b")[1], ev.BitfieldReceived), "no have_all without BEP 6"
    p.a.set_choking(False)
    p.transfer()
    p.events("b")
    p.b.request(1, 0, BLOCK, p.now)
    p.b.request(1, BLOCK, BLOCK, p.now)
    p.transfer()
    p.a.set_choking(True)
    p.transfer()
    assert p.events("b") == [
        ev.Choked(),
        ev.RequestRejected(1, 0, BLOCK),
        ev.RequestRejected(1, BLOCK, BLOCK),
    ]
    assert p.b.outstanding == []
    assert not p.a.send_piece(1, 0, bytes(BLOCK)), "the choke discarded the queue"
    with pytest.raises(LocalProtocolError):
        p.a.send_reject(1, 0, BLOCK)


def test_fast_messages_without_fast_are_violations() -> None:
    p = pair(fast=False)
    with pytest.raises(RemoteProtocolError):
        p.b.receive_data(m.encode_message(m.Reject(1, 0, BLOCK)), 0)
    assert p.b.state is ConnectionState.ERROR
    with pytest.raises(LocalProtocolError):
        p.b.receive_data(b"\0\0\0\0", 0)


def test_reject_for_a_request_never_sent_is_a_violation() -> None:
    p = pair()
    with pytest.raises(RemoteProtocolError):
        p.b.receive_data(m.encode_message(m.Reject(1, 0, BLOCK)), 0)


def test_inbound_requests_are_validated() -> None:
    p = pair(max_inbound_requests=2)
    p.a.set_choking(False)
    p.transfer()
    p.events("a")
    for begin in (0, BLOCK, 0):  # third: a duplicate, refused; fourth below: over reqq
        p.a.receive_data(m.encode_message(m.Request(0, begin, BLOCK)), 0)
    p.a.receive_data(m.encode_message(m.Request(1, 0, BLOCK)), 0)
    assert p.events("a") == [ev.BlockRequested(0, 0, BLOCK), ev.BlockRequested(0, BLOCK, BLOCK)]
    assert p.a.refused_requests == 2
    assert wire(p.a) == m.encode_message(m.Reject(0, 0, BLOCK)) + m.encode_message(
        m.Reject(1, 0, BLOCK)
    )
    with pytest.raises(RemoteProtocolError, match="past the end"):
        p.a.receive_data(m.encode_message(m.Request(9, 0, 1001)), 0)


def test_a_peer_may_queue_our_advertised_reqq_of_2000_requests() -> None:
    p = pair(n=2100)
    p.a.set_choking(False)
    p.transfer()
    p.events("a")
    reqq = p.a.config.max_inbound_requests
    assert reqq >= 2000
    blob = b"".join(m.encode_message(m.Request(i, 0, BLOCK)) for i in range(reqq + 1))
    p.a.receive_data(blob, 0)
    got = p.events("a")
    assert got == [ev.BlockRequested(i, 0, BLOCK) for i in range(reqq)]
    assert p.a.statistics()["inbound_queue"] == reqq
    assert p.a.refused_requests == 1, "one over the reqq"
    assert wire(p.a) == m.encode_message(m.Reject(reqq, 0, BLOCK))
    assert p.a.send_piece(0, 0, bytes(BLOCK))
    p.a.receive_data(m.encode_message(m.Request(reqq, 0, BLOCK)), 0)  # room again
    assert p.events("a") == [ev.BlockRequested(reqq, 0, BLOCK)]


def test_request_for_a_piece_we_lack_is_refused() -> None:
    p = pair()
    p.b.set_choking(False)
    p.transfer()
    p.events("b")
    p.b.receive_data(m.encode_message(m.Request(0, 0, BLOCK)), 0)
    assert p.events("b") == []
    assert wire(p.b) == m.encode_message(m.Reject(0, 0, BLOCK))


def test_zero_length_request_is_a_violation() -> None:
    p = pair()
    with pytest.raises(RemoteProtocolError):
        p.a.receive_data(m.encode_message(m.Request(0, 0, 0)), 0)


def test_extension_messages_pex_metadata_port() -> None:
    p = pair()
    p.a.set_metadata_size(5)
    added = [PexPeer(("127.0.0.5", 6881), PexFlags.SEED), PexPeer(("::1", 7000))]
    p.a.send_pex(added, [("127.0.0.6", 1)])
    p.a.send_port(6881)
    p.b.send_metadata_request(0)
    p.a.send_metadata_data(0, 5, b"hello")
    p.a.send_metadata_reject(1)
    p.transfer()
    assert p.events("b")[-4:] == [
        ev.PexReceived(tuple(added), (("127.0.0.6", 1),)),
        ev.PortReceived(6881),
        ev.MetadataPieceReceived(0, 5, b"hello"),
        ev.MetadataRejected(1),
    ]
    assert p.events("a")[-1] == ev.MetadataRequested(0)


def test_extension_disabled_by_a_later_handshake() -> None:
    p = pair()
    assert p.b.peer_supports("ut_pex")
    update = encode_extended_handshake(ExtendedHandshake(m={"ut_pex": 0}))
    p.b.receive_data(m.encode_message(m.Extended(0, update)), 0)
    assert not p.b.peer_supports("ut_pex")
    assert p.b.peer_supports("ut_metadata")
    with pytest.raises(LocalProtocolError):
        p.b.send_pex([], [])


def test_metadata_request_without_metadata_is_rejected_by_the_engine() -> None:
    p = pair()  # neither side set metadata_size
    p.events("a")
    p.events("b")
    p.b.send_metadata_request(0)
    p.transfer()
    assert p.events("a") == []
    assert p.events("b") == [ev.MetadataRejected(0)]


def test_metadata_size_announced_once_we_have_it() -> None:
    p = pair(b_pieces=None)
    p.events("a")
    p.b.set_metadata_size(4321)
    p.transfer()
    (got,) = p.events("a")
    assert isinstance(got, ev.ExtendedHandshakeReceived)
    assert got.handshake.metadata_size == 4321 == p.a.peer_metadata_size
    assert p.a.peer_supports("ut_metadata"), "the repeated handshake keeps the ids"


def test_unknown_extended_id_is_counted() -> None:
    p = pair()
    p.b.receive_data(m.encode_message(m.Extended(77, b"whatever")), 0)
    assert p.b.unknown_extended == 1


def test_bad_extended_payload_is_a_remote_error_only() -> None:
    p = pair()
    with pytest.raises(RemoteProtocolError) as info:
        p.b.receive_data(m.encode_message(m.Extended(1, b"not bencode")), 0)
    assert type(info.value) is RemoteProtocolError


def test_send_have_reaches_the_peer_and_updates_its_view() -> None:
    p = pair(fast=False)
    p.events("a")
    assert p.a.peer_pieces is None, "a plain peer with nothing sends no bitfield"
    p.b.send_have(2)
    p.transfer()
    assert p.events("a") == [ev.HaveReceived(2)]
    assert p.a.peer_pieces == Bitfield.from_indices(NUM_PIECES, [2])
    assert p.b.our_pieces == Bitfield.from_indices(NUM_PIECES, [2])


def test_withdrawn_requests_are_remembered_within_a_bound() -> None:
    p = pair(n=1200)
    p.a.set_choking(False)
    p.transfer()
    for i in range(1100):
        p.b.request(i, 0, BLOCK, 0.0)
        assert p.b.cancel(i, 0, BLOCK)
    p.b.data_to_send()
    assert len(p.b._cancelled) == 1024
    assert (0, 0, BLOCK) not in p.b._cancelled, "the oldest are forgotten first"
    assert (1099, 0, BLOCK) in p.b._cancelled


def test_extended_message_without_the_extension_bit_is_a_violation() -> None:
    a = engine(ID_A, reserved=ReservedBits.FAST)
    a.receive_data(encode_handshake(Handshake(INFO_HASH, ID_B, ReservedBits.FAST)), 0.0)
    with pytest.raises(RemoteProtocolError, match="extension protocol"):
        a.receive_data(m.encode_message(m.Extended(0, b"de")), 0.0)


def test_input_after_close_and_timers_after_close() -> None:
    p = pair()
    p.b.receive_data(bytearray(b"\0\0\0\0"), 1.0)  # mutable buffers are accepted
    p.b.receive_data(b"", 2.0)
    with pytest.raises(LocalProtocolError):
        p.b.receive_data(b"\0\0\0\0", 3.0)
    p.b.handle_timer(1e9)
    assert wire(p.b) == b""
    assert p.events("b")[-1] == ev.ConnectionClosed()


def test_our_pieces_must_match_the_piece_count() -> None:
    with pytest.raises(ValueError):
        engine(ID_A, 10, have=Bitfield.all(11))


def test_too_many_haves_before_the_metadata_is_a_flood(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(availability, "MAX_PENDING_HAVES", 100)  # 65,536 in production
    a = engine(ID_A, None)
    a.receive_data(encode_handshake(Handshake(INFO_HASH, ID_B)), 0.0)
    flood = b"".join(m.encode_message(m.Have(i)) for i in range(100))
    a.receive_data(flood + m.encode_message(m.Have(5)), 0.0)  # a repeat is not growth
    with pytest.raises(RemoteProtocolError, match="too many"):
        a.receive_data(m.encode_message(m.Have(70000)), 0.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_request_length": 128 * 1024 + 1},
        {"idle_timeout": 0.0},
        {"snub_timeout": 0.0},
        {"max_inbound_requests": 0},
        {"min_pipeline_depth": 5, "max_pipeline_depth": 4},
    ],
)
def test_config_refuses_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ConnectionConfig(**kwargs)


# ---- piece state before the metadata ---------------------------------------------------


def test_piece_state_is_buffered_until_the_piece_count_is_known() -> None:
    p = pair(b_pieces=None)
    got = p.events("b")
    assert not any(isinstance(e, ev.HaveAllReceived) for e in got)
    assert p.b.peer_pieces is None
    p.b.set_num_pieces(NUM_PIECES, piece_length=PIECE_LEN, total_length=TOTAL)
    assert p.events("b") == [ev.HaveAllReceived()]
    assert p.b.peer_pieces == Bitfield.all(NUM_PIECES)


def test_early_bitfield_and_haves_replayed_and_checked() -> None:
    a = engine(ID_A, None, reserved=NO_FAST)
    b = engine(ID_B, None)
    bits = Bitfield.from_indices(12, [1]).to_bytes()
    b.receive_data(wire(a), 0)
    a.receive_data(wire(b), 0)
    drain(a)
    stream = m.encode_message(m.BitfieldMessage(bits)) + m.encode_message(m.Have(5))
    a.receive_data(stream, 0)
    assert drain(a) == []
    a.set_num_pieces(12)
    assert drain(a) == [
        ev.BitfieldReceived(Bitfield.from_indices(12, [1])),
        ev.HaveReceived(5),
    ]
    assert a.peer_pieces == Bitfield.from_indices(12, [1, 5])


@pytest.mark.parametrize("n", [8, 17, 5])
def test_early_piece_state_that_does_not_fit_fails_set_num_pieces(n: int) -> None:
    a = engine(ID_A, None, reserved=NO_FAST)
    a.receive_data(encode_handshake(Handshake(INFO_HASH, ID_B, NO_FAST)), 0)
    bits = Bitfield.from_indices(12, [1]).to_bytes()
    a.receive_data(m.encode_message(m.BitfieldMessage(bits)) + m.encode_message(m.Have(6)), 0)
    with pytest.raises(RemoteProtocolError):
        a.set_num_pieces(n)
    assert a.state is ConnectionState.ERROR


def test_late_first_messages_are_read_as_the_haves_they_add() -> None:
    # aria2 1.36 re-sends its full bitfield after each completed piece (against BEP 3).
    a = engine(ID_A, 12, reserved=NO_FAST)
    a.receive_data(encode_handshake(Handshake(INFO_HASH, ID_B, NO_FAST)), 0)
    drain(a)
    first = Bitfield.from_indices(12, [1, 2]).to_bytes()
    again = Bitfield.from_indices(12, [2, 3, 7]).to_bytes()  # bit 1 cleared: ignored
    a.receive_data(m.encode_message(m.BitfieldMessage(first)), 0)
    a.receive_data(m.encode_message(m.BitfieldMessage(again)), 0)
    got = drain(a)
    assert got[0] == ev.BitfieldReceived(Bitfield.from_indices(12, [1, 2]))
    assert got[1:] == [ev.HaveReceived(3), ev.HaveReceived(7)]
    assert a.peer_pieces == Bitfield.from_indices(12, [1, 2, 3, 7])


def test_late_have_none_is_ignored_and_late_have_all_adds_the_rest() -> None:
    p = pair()
    p.events("b")
    p.b.receive_data(m.encode_message(m.HaveNone()), 0)
    assert p.events("b") == []
    p.b.receive_data(m.encode_message(m.HaveAll()), 0)
    assert p.b.peer_pieces == Bitfield.all(NUM_PIECES)


def test_late_bitfield_before_the_metadata_becomes_pending_haves() -> None:
    a = engine(ID_A, None, reserved=NO_FAST)
    a.receive_data(encode_handshake(Handshake(INFO_HASH, ID_B, NO_FAST)), 0)
    drain(a)
    first = Bitfield.from_indices(12, [1]).to_bytes()
    again = Bitfield.from_indices(12, [1, 9]).to_bytes()
    a.receive_data(m.encode_message(m.BitfieldMessage(first)), 0)
    a.receive_data(m.encode_message(m.BitfieldMessage(again)), 0)
    assert drain(a) == []
    a.set_num_pieces(12)
    assert drain(a) == [
        ev.BitfieldReceived(Bitfield.from_indices(12, [1])),
        ev.HaveReceived(1),
        ev.HaveReceived(9),
    ]
    assert a.peer_pieces == Bitfield.from_indices(12, [1, 9])


def test_late_bitfield_of_the_wrong_size_is_still_a_violation() -> None:
    p = pair()
    with pytest.raises(RemoteProtocolError):
        p.b.receive_data(m.encode_message(m.BitfieldMessage(b"\xff" * 40)), 0)


# ---- handshake edge cases --------------------------------------------------------------


def test_wrong_info_hash_and_self_connection_refused() -> None:
    a = engine(ID_A)
    with pytest.raises(HandshakeError):
        a.receive_data(encode_handshake(Handshake(InfoHash(b"x" * 20), ID_B)), 0)
    a = engine(ID_A)
    with pytest.raises(HandshakeError):
        a.receive_data(b"\x13BitTorrent protocoX", 0)
    a = engine(ID_A)
    with pytest.raises(RemoteProtocolError, match="ourselves"):
        a.receive_data(encode_handshake(Handshake(INFO_HASH, ID_A)), 0)


def test_initial_data_from_a_previous_layer_is_consumed() -> None:
    theirs = encode_handshake(Handshake(INFO_HASH, ID_B, ReservedBits.FAST))
    leftover = theirs + m.encode_message(m.HaveAll()) + m.encode_message(m.Unchoke())
    a = PeerConnection(INFO_HASH, ID_A, 4, now=0, rng=random.Random(0), initial_data=leftover)
    assert drain(a) == [
        ev.HandshakeReceived(ID_B, ReservedBits.FAST),
        ev.HaveAllReceived(),
        ev.Unchoked(),
    ]
    assert not a.extensions
    assert a.fast
    with pytest.raises(LocalProtocolError):
        a.send_pex([], [])  # the peer has no extension protocol at all


def test_eof_between_frames_closes_and_inside_a_frame_fails() -> None:
    p = pair()
    p.b.receive_data(b"", 1.0)
    assert p.events("b")[-1] == ev.ConnectionClosed()
    assert p.b.state is ConnectionState.CLOSED
    assert p.b.get_timer() is None
    p.a.receive_data(b"\0\0\0\x05\x04", 1.0)
    with pytest.raises(RemoteProtocolError):
        p.a.receive_data(b"", 1.0)
    c = engine(ID_A)
    c.receive_data(b"\x13Bit", 0)
    with pytest.raises(RemoteProtocolError):
        c.receive_data(b"", 0)


# ---- split invariance and totality -----------------------------------------------------


def peer_stream() -> bytes:
    """Everything a seeder might say, in one byte string (requests refused: choked)."""
    hs = ExtendedHandshake(m={"ut_metadata": 3, "ut_pex": 4}, v="x", reqq=10, metadata_size=99)
    parts: list[m.Message] = [
        m.HaveAll(),
        m.Extended(0, encode_extended_handshake(hs)),
        m.KeepAlive(),
        m.Unchoke(),
        m.Interested(),
        m.Have(3),
        m.AllowedFast(7),
        m.Suggest(2),
        m.Request(0, 0, BLOCK),
        m.Extended(2, b"d5:added6:\x7f\x00\x00\x01\x1a\xe1e"),
        m.Extended(1, b"d8:msg_typei0e5:piecei0ee"),
        m.Port(6881),
        m.Choke(),
        m.NotInterested(),
    ]
    theirs = encode_handshake(Handshake(INFO_HASH, ID_B, ReservedBits(0x100005 | 0x10 << 16)))
    return theirs + b"".join(map(m.encode_message, parts))


def replay(chunks: list[bytes]) -> tuple[list[ev.PeerEvent], bytes]:
    conn = engine(ID_A, have=Bitfield.from_indices(NUM_PIECES, [0]))
    conn.set_metadata_size(1234)
    for chunk in chunks:
        conn.receive_data(chunk, 0.0)
    events = [
        ev.BlockReceived(e.index, e.begin, bytes(e.data)) if isinstance(e, ev.BlockReceived) else e
        for e in drain(conn)
    ]
    return events, wire(conn)


def test_peer_stream_produces_the_expected_events() -> None:
    events, out = replay([peer_stream()])
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "HandshakeReceived",
        "HaveAllReceived",
        "ExtendedHandshakeReceived",
        "Unchoked",
        "PeerInterested",
        "HaveReceived",
        "AllowedFastReceived",
        "Suggested",
        "PexReceived",
        "MetadataRequested",
        "PortReceived",
        "Choked",
        "PeerNotInterested",
    ]
    assert out.endswith(m.encode_message(m.Reject(0, 0, BLOCK))), "we choke: request rejected"


def test_byte_by_byte_gives_the_same_events() -> None:
    data = peer_stream()
    assert replay([data[i : i + 1] for i in range(len(data))]) == replay([data])


@given(st.lists(st.integers(0, 600), max_size=12))
def test_split_invariance(cuts: list[int]) -> None:
    data = peer_stream()
    assert replay(split_at(data, cuts)) == replay([data])


def opened() -> PeerConnection:
    conn = engine(ID_A, have=Bitfield.from_indices(NUM_PIECES, [0]))
    conn.receive_data(encode_handshake(Handshake(INFO_HASH, ID_B, ReservedBits(0x100005))), 0.0)
    return conn


def feed_totally(conn: PeerConnection, chunks: list[bytes]) -> None:
    try:
        for chunk in chunks:
            conn.receive_data(chunk, 0.0)
            drain(conn)
            conn.data_to_send()
        conn.receive_data(b"", 0.0)
    except RemoteProtocolError:
        assert conn.state is ConnectionState.ERROR


@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=6))
def test_arbitrary_bytes_after_the_handshake_raise_only_remote_errors(
    data: bytes, cuts: list[int]
) -> None:
    feed_totally(opened(), split_at(data, cuts))


@given(st.data())
def test_mutated_valid_streams_raise_only_remote_errors(data: st.DataObject) -> None:
    stream = bytearray(peer_stream())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(68, len(stream) - 1))
        stream[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(stream)))
    feed_totally(engine(ID_A), split_at(bytes(stream), [cut]))


@given(
    st.lists(wire_messages(), max_size=25),
    st.booleans(),
    st.integers(1, 40),
)
def test_well_framed_messages_in_any_order_raise_only_remote_errors(
    msgs: list[m.Message], known: bool, n: int
) -> None:
    """Valid frames, nonsense order and values (rejects never asked for, bitfields
    twice, out-of-range indices...): only RemoteProtocolError, including from
    `set_num_pieces` replaying what arrived before the piece count was known."""
    conn = engine(ID_A, n if known else None, have=Bitfield.all(n) if known else None)
    conn.set_metadata_size(10)
    theirs = encode_handshake(Handshake(INFO_HASH, ID_B, ReservedBits(0x100005)))
    try:
        conn.receive_data(theirs + b"".join(map(m.encode_message, msgs)), 1.0)
        if not known:
            conn.set_num_pieces(n)
        conn.handle_timer(1e4)
    except RemoteProtocolError:
        assert conn.state is ConnectionState.ERROR


# ---- time ------------------------------------------------------------------------------


def test_keepalive_after_silence_and_idle_event() -> None:
    p = pair(keepalive_interval=100.0, idle_timeout=300.0)
    p.events("b")
    t = p.b.get_timer()
    assert t is not None
    assert 90.0 <= t <= 100.0
    p.b.handle_timer(t - 0.01)
    assert wire(p.b) == b""
    p.b.handle_timer(t)
    assert wire(p.b) == b"\0\0\0\0"
    t2 = p.b.get_timer()
    assert t2 is not None
    assert t2 == pytest.approx(2 * t)
    for step in range(2, 5):  # keep-alives continue while the peer is silent
        p.b.handle_timer(step * t + 0.5)
        assert wire(p.b) == b"\0\0\0\0"
    assert p.events("b") == [ev.PeerIdle()]
    p.b.handle_timer(410.0)
    p.b.data_to_send()
    assert p.events("b") == [], "idleness is reported once"
    p.b.receive_data(b"\0\0\0\0", 420.0)  # the peer speaks: the idle clock restarts
    timer = p.b.get_timer()
    assert timer is not None
    assert timer <= 720.0
    p.b.handle_timer(719.0)
    assert p.events("b") == []
    p.b.handle_timer(720.0)
    assert p.events("b") == [ev.PeerIdle()]


def test_request_timeout_cancels_and_reports() -> None:
    p = pair(request_timeout=10.0, snub_timeout=100.0, keepalive_interval=1000.0)
    p.a.set_choking(False)
    p.transfer()
    p.events("b")
    p.b.request(1, 0, BLOCK, 0.0)
    p.b.request(1, BLOCK, BLOCK, 2.0)
    p.transfer()
    assert p.b.get_timer() == 10.0
    p.b.handle_timer(10.0)
    assert p.events("b") == [ev.RequestTimedOut(1, 0, BLOCK)]
    assert wire(p.b) == m.encode_message(m.Cancel(1, 0, BLOCK))
    assert p.b.get_timer() == 12.0
    p.b.handle_timer(12.5)
    assert p.events("b") == [ev.RequestTimedOut(1, BLOCK, BLOCK)]
    assert p.b.outstanding == []


def test_snubbing_and_recovery() -> None:
    p = pair(request_timeout=100.0, snub_timeout=60.0, keepalive_interval=1000.0)
    p.a.set_choking(False)
    p.transfer()
    p.events("b")
    p.b.request(1, 0, BLOCK, 0.0)
    p.b.request(2, 0, BLOCK, 0.0)
    p.transfer()
    assert p.b.get_timer() == 60.0
    p.b.handle_timer(59.0)
    assert p.events("b") == []
    assert p.b.pipeline_depth(59.0) == 2, "not snubbed yet"
    p.b.handle_timer(60.0)
    assert p.events("b") == [ev.PeerSnubbed()]
    assert p.b.snubbed
    assert p.b.pipeline_depth(60.0) == 1
    assert p.b.get_timer() == 100.0  # no second snub; next is the request deadline
    p.a.send_piece(1, 0, bytes(BLOCK))
    p.now = 61.0
    p.transfer()
    assert isinstance(p.events("b")[0], ev.BlockReceived)
    assert p.b.pipeline_depth(61.0) >= 2, "a delivered block ends the snub"
    assert p.b.get_timer() == 100.0
    assert p.b.pipeline.next_deadline() == 100.0
    p.b.handle_timer(100.0)
    assert p.events("b") == [ev.RequestTimedOut(2, 0, BLOCK)]


NO_TIMEOUTS: dict[str, Any] = dict.fromkeys(
    ["request_timeout", "snub_timeout", "keepalive_interval", "idle_timeout"], 1e9
)


def serve_for(p: Pair, seconds: float, latency: float, blocks_per_tick: int) -> list[int]:
    """Leecher keeps its pipeline full; the seeder answers up to `blocks_per_tick` per tick."""
    depths: list[int] = []
    queue: list[ev.PeerEvent] = []
    index = begin = 0
    block = bytes(BLOCK)
    p.events("a")
    p.events("b")
    while p.now < seconds:
        for _ in range(p.b.request_slots(p.now)):
            p.b.request(index % ((p.b.num_pieces or 2) - 1), begin, BLOCK, p.now)
            begin += BLOCK
            index, begin = (index + 1, 0) if begin >= 2 * BLOCK else (index, begin)
        p.a.receive_data(wire(p.b), p.now)
        queue += p.events("a")
        served, queue = queue[:blocks_per_tick], queue[blocks_per_tick:]
        for e in served:
            assert isinstance(e, ev.BlockRequested)
            assert p.a.send_piece(e.index, e.begin, block)
        p.now += latency
        p.b.receive_data(wire(p.a), p.now)
        for e in p.events("b"):
            assert isinstance(e, ev.BlockReceived)
        depths.append(p.b.pipeline_depth(p.now))
    return depths


def test_pipeline_depth_grows_with_rate() -> None:
    p = pair(n=600, **NO_TIMEOUTS)
    p.a.set_choking(False)
    p.transfer()
    p.events("b")
    depths = serve_for(p, 2.0, latency=0.05, blocks_per_tick=1000)
    assert depths[0] <= 5
    assert depths[-1] == 250, "a fast peer fills the cap (reqq)"
    assert all(x <= y for x, y in itertools.pairwise(depths)), "no collapse"


def test_pipeline_depth_stays_small_for_a_slow_peer() -> None:
    p = pair(n=600, **NO_TIMEOUTS)
    p.a.set_choking(False)
    p.transfer()
    p.events("b")
    # One block per 0.5 s = 32 KiB/s: one second of queue is 2 blocks.
    depths = serve_for(p, 10.0, latency=0.5, blocks_per_tick=1)
    assert max(depths[4:]) <= 3


def test_depth_respects_the_peers_reqq() -> None:
    p = pair(n=600, **NO_TIMEOUTS)
    update = encode_extended_handshake(ExtendedHandshake(reqq=7))  # BEP 10: a later update
    p.b.receive_data(m.encode_message(m.Extended(0, update)), 0.0)
    assert p.b.peer_reqq == 7
    p.a.set_choking(False)
    p.transfer()
    assert max(serve_for(p, 3.0, latency=0.05, blocks_per_tick=1000)) == 7


def test_commands_on_a_connection_that_is_not_open_raise() -> None:
    a = engine(ID_A)
    with pytest.raises(LocalProtocolError):
        a.set_choking(False)
    with pytest.raises(LocalProtocolError):
        a.request(0, 0, BLOCK, 0.0)
    p = pair()
    p.a.set_choking(False)
    p.transfer()
    with pytest.raises(LocalProtocolError):
        p.b.request(0, 0, BLOCK + 1, 0.0)
    with pytest.raises(LocalProtocolError):
        p.b.request(NUM_PIECES, 0, BLOCK, 0.0)
    p.b.request(0, 0, BLOCK, 0.0)
    with pytest.raises(LocalProtocolError):
        p.b.request(0, 0, BLOCK, 0.0)
    with pytest.raises(LocalProtocolError):
        p.b.set_num_pieces(NUM_PIECES)


# ---- every state × every kind of input -------------------------------------------------


def in_state(state: ConnectionState) -> PeerConnection:
    conn = engine(ID_A)
    if state is not ConnectionState.HANDSHAKE:
        conn.receive_data(encode_handshake(Handshake(INFO_HASH, ID_B, ReservedBits(0x100005))), 0)
    if state is ConnectionState.CLOSED:
        conn.receive_data(b"", 0)
    if state is ConnectionState.ERROR:
        with pytest.raises(RemoteProtocolError):
            conn.receive_data(b"\xff\xff\xff\xff", 0)
    assert conn.state is state
    conn.data_to_send()
    drain(conn)
    return conn


COMMANDS = {
    "set_choking": lambda c: c.set_choking(False),
    "set_interested": lambda c: c.set_interested(True),
    "send_have": lambda c: c.send_have(0),
    "send_port": lambda c: c.send_port(1),
    "send_allowed_fast": lambda c: c.send_allowed_fast(0),
    "send_suggest": lambda c: c.send_suggest(0),
}
# state → (receive bytes, EOF, commands allowed, timer armed)
TABLE = {
    ConnectionState.HANDSHAKE: ("ok", RemoteProtocolError, False, True),
    ConnectionState.OPEN: ("ok", "ok", True, True),
    ConnectionState.CLOSED: (LocalProtocolError, LocalProtocolError, False, False),
    ConnectionState.ERROR: (LocalProtocolError, LocalProtocolError, False, False),
}


@pytest.mark.parametrize("state", list(ConnectionState))
@pytest.mark.parametrize("data", [b"\x13Bit", b""], ids=["bytes", "eof"])
def test_receive_in_every_state(state: ConnectionState, data: bytes) -> None:
    conn = in_state(state)
    expected = TABLE[state][0 if data else 1]
    if expected == "ok":
        conn.receive_data(data if state is not ConnectionState.OPEN else b"\0\0\0\0", 1.0)
    else:
        assert isinstance(expected, type)
        with pytest.raises(expected):
            conn.receive_data(data, 1.0)


@pytest.mark.parametrize("state", list(ConnectionState))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_commands_in_every_state(state: ConnectionState, command: str) -> None:
    conn = in_state(state)
    if TABLE[state][2]:
        COMMANDS[command](conn)
        assert wire(conn) != b""
    else:
        with pytest.raises(LocalProtocolError):
            COMMANDS[command](conn)
        assert wire(conn) == b""


@pytest.mark.parametrize("state", list(ConnectionState))
def test_timer_in_every_state(state: ConnectionState) -> None:
    conn = in_state(state)
    assert (conn.get_timer() is not None) == TABLE[state][3]
    conn.handle_timer(1e6)
    assert (wire(conn) == b"\0\0\0\0") == (state is ConnectionState.OPEN), "keep-alive"
    assert (drain(conn) == [ev.PeerIdle()]) == TABLE[state][3]


def test_anonymous_mode_sends_no_client_name_port_or_yourip() -> None:
    a = PeerConnection(
        INFO_HASH,
        anonymous_peer_id(random.Random(1)),
        None,
        now=0,
        rng=random.Random(0),
        config=ConnectionConfig(anonymous=True, listen_port=6881),
        remote_ip=ipaddress.ip_address("127.0.0.2"),
    )
    b = engine(ID_B, None)
    b.receive_data(wire(a), 0)
    a.receive_data(wire(b), 0)
    out = wire(a)
    b.receive_data(out, 0)
    hs = next(e for e in drain(b) if isinstance(e, ev.ExtendedHandshakeReceived)).handshake
    assert (hs.v, hs.p, hs.yourip) == (None, None, None)
    assert hs.m == {"ut_metadata": 1, "ut_pex": 2}  # everything else is unchanged
    assert b"1:v" not in out
    assert b"6:yourip" not in out


def test_anonymous_peer_id_has_no_client_prefix() -> None:
    ids = {bytes(anonymous_peer_id(random.Random(seed))) for seed in range(50)}
    assert len(ids) == 50
    assert all(len(i) == 20 and not i.startswith(b"-SH") for i in ids)
