"""BEP 55 ``ut_holepunch`` payload codec: golden bytes, round trip, strictness, totality."""

from __future__ import annotations

import contextlib
import ipaddress

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from shoal.errors import DecodeError
from shoal.peer.holepunch import (
    HolepunchError,
    HolepunchMessage,
    HolepunchType,
    decode_holepunch,
    encode_holepunch,
)

R, C, E = HolepunchType.RENDEZVOUS, HolepunchType.CONNECT, HolepunchType.ERROR

# BEP 55 layout, written out by hand: msg_type, addr_type, addr (ip + port), err_code.
GOLDEN = [
    (b"\x00\x00\x7f\x00\x00\x02\x1a\xe1\x00\x00\x00\x00", HolepunchMessage(R, ("127.0.0.2", 6881))),
    (b"\x01\x00\x0a\x00\x00\x01\x00\x50\x00\x00\x00\x00", HolepunchMessage(C, ("10.0.0.1", 80))),
    (
        b"\x02\x00\xc0\x00\x02\x07\xff\xff\x00\x00\x00\x03",
        HolepunchMessage(E, ("192.0.2.7", 65535), HolepunchError.NO_SUPPORT),
    ),
    (
        b"\x01\x01" + bytes(15) + b"\x01" + b"\x1a\xe1" + bytes(4),
        HolepunchMessage(C, ("::1", 6881)),
    ),
]


@pytest.mark.parametrize(("wire", "msg"), GOLDEN)
def test_golden(wire: bytes, msg: HolepunchMessage) -> None:
    assert decode_holepunch(wire) == msg
    assert encode_holepunch(msg) == wire


def test_libtorrent_form_without_err_code_is_accepted() -> None:
    # libtorrent 2.1 writes err_code only in error messages (bt_peer_connection.cpp,
    # write_holepunch_msg): a rendezvous/connect ends after the port.
    assert decode_holepunch(b"\x01\x00\x7f\x00\x00\x01\x1a\xe1") == HolepunchMessage(
        C, ("127.0.0.1", 6881)
    )
    six = b"\x00\x01" + ipaddress.IPv6Address("2001:db8::5").packed + b"\x00\x07"
    assert decode_holepunch(six) == HolepunchMessage(R, ("2001:db8::5", 7))


@pytest.mark.parametrize(
    ("wire", "why"),
    [
        (b"", "at least 2"),
        (b"\x00", "at least 2"),
        (b"\x03\x00\x7f\x00\x00\x01\x1a\xe1", "msg_type"),
        (b"\x00\x02\x7f\x00\x00\x01\x1a\xe1", "addr_type"),
        (b"\x00\x00\x7f\x00\x00\x01\x1a", "truncated"),
        (b"\x00\x01" + bytes(17), "truncated"),
        (b"\x02\x00\x7f\x00\x00\x01\x1a\xe1", "after the endpoint"),  # error without code
        (b"\x00\x00\x7f\x00\x00\x01\x1a\xe1\x00", "after the endpoint"),
        (b"\x00\x00\x7f\x00\x00\x01\x1a\xe1" + bytes(5), "after the endpoint"),
        (b"\x01\x00\x7f\x00\x00\x01\x1a\xe1\x00\x00\x00\x01", "error code"),
    ],
)
def test_strict_decode(wire: bytes, why: str) -> None:
    with pytest.raises(DecodeError, match=why):
        decode_holepunch(wire)


def test_unknown_error_codes_survive() -> None:
    wire = b"\x02\x00\x7f\x00\x00\x01\x1a\xe1\xde\xad\xbe\xef"
    msg = decode_holepunch(wire)
    assert msg.error == 0xDEADBEEF
    assert encode_holepunch(msg) == wire


@pytest.mark.parametrize(
    "msg",
    [
        HolepunchMessage(R, ("not an ip", 1)),
        HolepunchMessage(R, ("127.0.0.1", 65536)),
        HolepunchMessage(R, ("127.0.0.1", -1)),
        HolepunchMessage(C, ("127.0.0.1", 1), 2),
        HolepunchMessage(E, ("127.0.0.1", 1), 1 << 32),
    ],
)
def test_encode_refuses_what_the_wire_cannot_carry(msg: HolepunchMessage) -> None:
    with pytest.raises(ValueError):
        encode_holepunch(msg)


ips = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda ip: ip.compressed),
)


@st.composite
def messages(draw: st.DrawFn) -> HolepunchMessage:
    kind = draw(st.sampled_from(HolepunchType))
    error = draw(st.integers(0, 0xFFFFFFFF)) if kind is E else 0
    return HolepunchMessage(kind, (draw(ips), draw(st.integers(0, 0xFFFF))), error)


@given(messages())
def test_round_trip(msg: HolepunchMessage) -> None:
    wire = encode_holepunch(msg)
    assert len(wire) == (12 if ":" not in msg.addr[0] else 24)
    assert decode_holepunch(wire) == msg


def decode_checked(data: bytes) -> None:
    """Only `DecodeError` escapes; what decodes re-encodes to a form that decodes alike
    (byte-identical when the input carried the err_code)."""
    with contextlib.suppress(DecodeError):
        msg = decode_holepunch(data)
        again = encode_holepunch(msg)
        assert decode_holepunch(again) == msg
        assert again == data or len(data) == len(again) - 4


@given(st.binary(max_size=40))
@example(b"\x02\x01" + bytes(22))
@example(b"\x01\x00\x7f\x00\x00\x01\x1a\xe1")
def test_decode_is_total(data: bytes) -> None:
    """Fuzz target ``holepunch``: any bytes decode (and round-trip) or raise DecodeError."""
    decode_checked(data)


@given(
    messages().map(encode_holepunch),
    st.lists(st.tuples(st.integers(0, 30), st.integers(0, 255)), min_size=1, max_size=3),
    st.integers(-4, 4),
)
def test_totality_on_mutated_messages(
    wire: bytes, edits: list[tuple[int, int]], resize: int
) -> None:
    data = bytearray(wire)
    for pos, value in edits:
        data[pos % len(data)] = value
    data = data[: len(data) + resize] if resize < 0 else data + bytes(resize)
    decode_checked(bytes(data))
