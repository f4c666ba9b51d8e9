"""The BEP 29 packet codec: the header layout, every refusal, round trips and totality."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from shoal.errors import DecodeError
from shoal.utp.packet import (
    HEADER_SIZE,
    SACK_EXTENSION,
    Packet,
    PacketType,
    decode_packet,
    encode_datagram,
    seq_diff,
    seq_less,
)
from tests.proto.utp.strategies import packets
from tests.strategies import mutated


def test_header_layout_matches_bep29() -> None:
    pkt = Packet(PacketType.STATE, 0x1234, 0x01020304, 0x05060708, 0x0A0B0C0D, 0xFFFE, 0x0102)
    raw = pkt.encode()
    # type in the high nibble, version 1 in the low one; big-endian fields in BEP order.
    assert raw == bytes.fromhex("2100 1234 01020304 05060708 0a0b0c0d fffe 0102")
    assert len(raw) == HEADER_SIZE
    assert decode_packet(raw) == pkt


def test_selective_ack_extension_layout() -> None:
    pkt = Packet(PacketType.STATE, 7, ack_nr=10, extensions=((1, b"\x01\x00\x00\x80"),))
    raw = pkt.encode()
    assert raw[1] == 1  # first extension: selective ACK
    assert raw[HEADER_SIZE:] == b"\x00\x04\x01\x00\x00\x80"  # no next, 4 bytes, mask
    assert decode_packet(raw).sack == b"\x01\x00\x00\x80"


def test_all_five_types_round_trip() -> None:
    for kind in PacketType:
        payload = b"x" if kind is PacketType.DATA else b""
        pkt = Packet(kind, 1, 2, 3, 4, 5, 6, payload)
        assert decode_packet(pkt.encode()) == pkt
    assert [int(k) for k in PacketType] == [0, 1, 2, 3, 4]


def test_short_selective_ack_from_libtorrent_is_accepted() -> None:
    # BEP 29 asks for multiples of 4 bytes; libtorrent 2.1 sends 1-byte masks.
    raw = bytes.fromhex("210183a43c278c1d24d430f1000ff6ccb3f9603e000100")
    pkt = decode_packet(raw)
    assert pkt.type is PacketType.STATE
    assert pkt.sack == b"\x00"
    assert pkt.encode() == raw


def test_unknown_extension_is_skipped_and_kept() -> None:
    pkt = Packet(PacketType.DATA, 1, payload=b"abc", extensions=((9, b"zz"), (1, b"\xff" * 4)))
    got = decode_packet(pkt.encode())
    assert got.payload == b"abc"
    assert got.sack == b"\xff" * 4
    assert got.extensions == ((9, b"zz"), (1, b"\xff" * 4))


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"\x21\x00" + bytes(17), "shorter"),
        (b"\x22\x00" + bytes(18), "version"),
        (b"\x51\x00" + bytes(18), "type"),
        (b"\x01\x00" + bytes(18), "without payload"),
        (b"\x21\x00" + bytes(18) + b"x", "payload"),
        (b"\x21\x01" + bytes(18) + b"\x00", "runs past"),
        (b"\x21\x01" + bytes(18) + b"\x00\x08\x00", "runs past"),
        (b"\x21\x01" + bytes(18) + b"\x01\x04abcd\x00\x04abcd", "two selective"),
    ],
)
def test_refusals(raw: bytes, why: str) -> None:
    with pytest.raises(DecodeError, match=why):
        decode_packet(raw)


def test_sequence_numbers_wrap() -> None:
    assert seq_diff(0, 0xFFFF) == 1
    assert seq_diff(0xFFFF, 0) == -1
    assert seq_less(0xFFF0, 0x0005)
    assert not seq_less(0x0005, 0xFFF0)
    assert seq_diff(0x8000, 0) == -0x8000


@given(packets())
def test_round_trip(pkt: Packet) -> None:
    raw = pkt.encode()
    assert decode_packet(raw) == pkt
    assert decode_packet(raw).encode() == raw


@given(st.binary(max_size=80) | mutated(packets().map(Packet.encode)))
@example(b"\x41\x01" + bytes(18) + b"\x02\x00\x00\x00")
def test_totality(raw: bytes) -> None:
    """Any bytes either decode (and then re-encode to themselves) or raise DecodeError."""
    try:
        pkt = decode_packet(raw)
    except DecodeError:
        return
    assert pkt.encode() == raw


@given(packets(), st.one_of(st.none(), st.binary(min_size=1, max_size=32)))
def test_encode_datagram_is_packet_encode(pkt: Packet, sack: bytes | None) -> None:
    """The send path's encoder writes exactly what `Packet.encode` writes for the same
    fields and an optional selective ACK (its only extension), and decodes back."""
    extensions = ((SACK_EXTENSION, sack),) if sack else ()
    expected = pkt._replace(extensions=extensions)
    fields = (pkt.type, pkt.connection_id, pkt.timestamp, pkt.timestamp_diff, pkt.wnd_size)
    raw = encode_datagram(*fields, pkt.seq_nr, pkt.ack_nr, pkt.payload, sack)
    assert raw == expected.encode()
    assert decode_packet(raw) == expected
