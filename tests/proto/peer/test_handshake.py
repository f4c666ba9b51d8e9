"""BitTorrent handshake: golden bytes, reserved bits, incremental parsing, totality."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.errors import HandshakeError
from shoal.ids import InfoHash, PeerId
from shoal.peer.frames import FrameDecoder
from shoal.peer.handshake import (
    HANDSHAKE_LENGTH,
    PROTOCOL_HEADER,
    Handshake,
    HandshakeParser,
    ReservedBits,
    decode_handshake,
    encode_handshake,
)
from shoal.peer.messages import Message, encode_message

from .wire_strategies import split_at, wire_messages

IH = InfoHash(bytes(range(20)))
PID = PeerId(b"-SH0001-abcdefghijkl")
ALL_FLAGS = ReservedBits.DHT | ReservedBits.FAST | ReservedBits.EXTENSION_PROTOCOL
GOLDEN = (
    b"\x13BitTorrent protocol"
    + b"\x00\x00\x00\x00\x00\x10\x00\x05"  # BEP 10 byte 5 0x10; BEP 5 0x01 + BEP 6 0x04 in byte 7
    + bytes(range(20))
    + b"-SH0001-abcdefghijkl"
)

handshakes = st.builds(
    Handshake,
    info_hash=st.binary(min_size=20, max_size=20).map(InfoHash),
    peer_id=st.binary(min_size=20, max_size=20).map(PeerId),
    reserved=st.integers(0, 2**64 - 1).map(ReservedBits),
)


def test_golden_handshake() -> None:
    hs = Handshake(info_hash=IH, peer_id=PID, reserved=ALL_FLAGS)
    assert encode_handshake(hs) == GOLDEN
    assert len(GOLDEN) == HANDSHAKE_LENGTH
    decoded = decode_handshake(GOLDEN)
    assert decoded == hs
    assert ReservedBits.EXTENSION_PROTOCOL in decoded.reserved
    assert ReservedBits.DHT in decoded.reserved


def test_reserved_flag_positions_follow_bep4() -> None:
    assert ReservedBits.DHT.to_wire() == b"\0\0\0\0\0\0\0\x01"
    assert ReservedBits.FAST.to_wire() == b"\0\0\0\0\0\0\0\x04"
    assert ReservedBits.EXTENSION_PROTOCOL.to_wire() == b"\0\0\0\0\0\x10\0\0"


def test_unknown_reserved_bits_survive_a_round_trip() -> None:
    wire = PROTOCOL_HEADER + b"\x80\x00\x00\x00\x00\x18\x00\x05" + IH + PID
    hs = decode_handshake(wire)
    assert ReservedBits.FAST in hs.reserved
    assert encode_handshake(hs) == wire


@given(hs=handshakes)
def test_round_trip(hs: Handshake) -> None:
    assert decode_handshake(encode_handshake(hs)) == hs


@given(hs=handshakes, trailing=st.binary(max_size=40), cuts=st.lists(st.integers(0, 120)))
def test_parser_is_split_invariant_and_hands_on_trailing_bytes(
    hs: Handshake, trailing: bytes, cuts: list[int]
) -> None:
    parser = HandshakeParser()
    for chunk in split_at(encode_handshake(hs) + trailing, cuts):
        parser.receive_data(chunk)
    assert parser.handshake == hs
    assert parser.trailing_data == trailing


def test_info_hash_is_available_before_peer_id() -> None:
    # A listener must answer once it has seen the info_hash (BEP 3), before the peer_id.
    parser = HandshakeParser()
    seen = []
    start = 0
    for cut in (27, 28, 47, 48, 67, 68):
        parser.receive_data(GOLDEN[start:cut])
        start = cut
        seen.append((cut, parser.reserved, parser.info_hash, parser.handshake))
    full = Handshake(IH, PID, ALL_FLAGS)
    assert seen == [
        (27, None, None, None),
        (28, ALL_FLAGS, None, None),
        (47, ALL_FLAGS, None, None),
        (48, ALL_FLAGS, IH, None),
        (67, ALL_FLAGS, IH, None),
        (68, ALL_FLAGS, IH, full),
    ]


def test_bad_protocol_string_fails_on_first_wrong_byte() -> None:
    parser = HandshakeParser()
    parser.receive_data(b"\x13BitTorrent")
    with pytest.raises(HandshakeError, match="not a BitTorrent handshake"):
        parser.receive_data(b"X")


def test_bad_pstrlen_fails_immediately() -> None:
    with pytest.raises(HandshakeError):
        HandshakeParser().receive_data(b"\x14")
    with pytest.raises(HandshakeError):
        decode_handshake(b"\x12" + GOLDEN[1:])


def test_wrong_length_refused_by_decode_handshake() -> None:
    with pytest.raises(HandshakeError):
        decode_handshake(GOLDEN[:-1])


def test_expected_info_hash_is_enforced() -> None:
    parser = HandshakeParser(expected_info_hash=InfoHash(b"\xff" * 20))
    with pytest.raises(HandshakeError, match="info_hash"):
        parser.receive_data(GOLDEN)
    ok = HandshakeParser(expected_info_hash=IH)
    ok.receive_data(GOLDEN)
    assert ok.handshake is not None


def test_bytes_after_completion_are_kept_for_the_next_layer() -> None:
    parser = HandshakeParser()
    parser.receive_data(GOLDEN + b"\0\0")
    parser.receive_data(b"\0\0")
    assert parser.trailing_data == b"\0\0\0\0"


def test_encode_rejects_bad_fields() -> None:
    with pytest.raises(ValueError):
        encode_handshake(Handshake(IH, PID, ReservedBits(1 << 64)))


@given(data=st.binary(max_size=200), cuts=st.lists(st.integers(0, 200), max_size=5))
def test_totality_on_arbitrary_bytes(data: bytes, cuts: list[int]) -> None:
    parser = HandshakeParser()
    try:
        for chunk in split_at(data, cuts):
            parser.receive_data(chunk)
    except HandshakeError:  # the only error allowed out of the parser
        return
    # Anything accepted starts with the protocol header.
    assert data[: len(PROTOCOL_HEADER)] == PROTOCOL_HEADER[: min(len(data), 20)]


@given(hs=handshakes, pos=st.integers(0, 19), value=st.integers(0, 255))
def test_any_header_corruption_is_caught(hs: Handshake, pos: int, value: int) -> None:
    wire = bytearray(encode_handshake(hs))
    if wire[pos] == value:
        return
    wire[pos] = value
    with pytest.raises(HandshakeError):
        HandshakeParser().receive_data(bytes(wire))


@given(
    hs=handshakes,
    msgs=st.lists(wire_messages(), max_size=6),
    cuts=st.lists(st.integers(0, 3_000), max_size=8),
)
def test_hand_off_to_frame_decoder_is_split_invariant(
    hs: Handshake, msgs: list[Message], cuts: list[int]
) -> None:
    # Layer switch as a peer session does it: the handshake parser's leftover bytes are
    # the start of the message stream, wherever the reads happened to be cut.
    stream = encode_handshake(hs) + b"".join(encode_message(m) for m in msgs)
    parser = HandshakeParser()
    decoder = FrameDecoder()
    got: list[Message] = []
    switched = False
    for chunk in split_at(stream, cuts):
        if switched:
            decoder.receive_data(chunk)
        else:
            parser.receive_data(chunk)
            switched = parser.handshake is not None
            if switched and parser.trailing_data:
                decoder.receive_data(parser.trailing_data)
        got.extend(decoder)
    assert parser.handshake == hs
    assert got == msgs
