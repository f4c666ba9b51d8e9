"""BEP 10 extended handshake, BEP 9 ut_metadata and BEP 11 ut_pex payload codecs."""

from __future__ import annotations

import contextlib
import ipaddress
from typing import TYPE_CHECKING, Literal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from shoal.bencoding import encode
from shoal.errors import DecodeError
from shoal.peer.extension import (
    MAX_METADATA_SIZE,
    METADATA_PIECE_SIZE,
    ExtendedHandshake,
    MetadataData,
    MetadataMessage,
    MetadataReject,
    MetadataRequest,
    PexFlags,
    PexMessage,
    PexPeer,
    decode_extended_handshake,
    decode_metadata_message,
    decode_pex,
    encode_extended_handshake,
    encode_metadata_message,
    encode_pex,
    metadata_piece_count,
)

if TYPE_CHECKING:
    from collections.abc import Callable

# ---- extended handshake -----------------------------------------------------------

GOLDEN_HS = (
    b"d1:ei1e1:md11:ut_metadatai3e6:ut_pexi1ee13:metadata_sizei31235e1:pi6881e"
    b"4:reqqi250e1:v13:\xc2\xb5Torrent 1.26:yourip4:\x7f\x00\x00\x01e"
)


def test_golden_extended_handshake() -> None:
    hs = decode_extended_handshake(GOLDEN_HS)
    assert hs == ExtendedHandshake(
        m={"ut_metadata": 3, "ut_pex": 1},
        v="µTorrent 1.2",
        p=6881,
        reqq=250,
        metadata_size=31235,
        yourip=ipaddress.IPv4Address("127.0.0.1"),
        e=True,
    )
    assert encode_extended_handshake(hs) == GOLDEN_HS


def test_unknown_keys_are_kept_and_re_encoded() -> None:
    wire = b"d1:md6:ut_pexi2ee11:upload_onlyi1e4:ipv616:" + bytes(16) + b"e"
    hs = decode_extended_handshake(wire)
    assert hs.extra == {b"upload_only": 1, b"ipv6": bytes(16)}
    assert hs.m == {"ut_pex": 2}
    assert decode_extended_handshake(encode_extended_handshake(hs)) == hs


def test_everything_is_optional_and_order_is_lenient() -> None:
    assert decode_extended_handshake(b"de") == ExtendedHandshake()
    # Unsorted keys from a sloppy client are accepted.
    assert decode_extended_handshake(b"d1:pi1e1:md1:xi1eee").p == 1


def test_non_utf8_extension_names_round_trip() -> None:
    wire = b"d1:md2:\xff\xfei7eee"
    hs = decode_extended_handshake(wire)
    assert list(hs.m.values()) == [7]
    assert encode_extended_handshake(hs) == wire


def test_ipv6_yourip() -> None:
    ip = ipaddress.IPv6Address("2001:db8::1")
    hs = decode_extended_handshake(b"d6:yourip16:" + ip.packed + b"e")
    assert hs.yourip == ip


@pytest.mark.parametrize(
    "wire",
    [
        b"le",  # not a dict
        b"d1:mi1ee",  # m not a dict
        b"d1:md1:x1:yee",  # id not an int
        b"d1:md1:xi256eee",  # id does not fit the extended id byte
        b"d1:md1:xi-1eee",
        b"d1:pi65536ee",
        b"d1:p4:6881e",
        b"d1:vi1ee",
        b"d4:reqqi-1ee",
        b"d13:metadata_sizei0ee",
        b"d13:metadata_sizei8388609ee",  # over the 8 MiB cap
        b"d6:yourip5:abcdee",
        b"d1:e1:xe",
        b"d1:pi1e1:pi2ee",  # duplicate keys are always refused
    ],
)
def test_bad_extended_handshakes(wire: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_extended_handshake(wire)


def test_metadata_size_cap_is_configurable() -> None:
    wire = b"d13:metadata_sizei" + str(MAX_METADATA_SIZE + 1).encode() + b"ee"
    hs = decode_extended_handshake(wire, max_metadata_size=2 * MAX_METADATA_SIZE)
    assert hs.metadata_size == MAX_METADATA_SIZE + 1


def test_encode_refuses_bad_handshakes() -> None:
    with pytest.raises(ValueError):
        encode_extended_handshake(ExtendedHandshake(m={"x": 300}))
    with pytest.raises(ValueError):
        encode_extended_handshake(ExtendedHandshake(extra={b"m": 1}))


KNOWN_KEYS = {b"m", b"v", b"p", b"reqq", b"metadata_size", b"yourip", b"e"}
bencoded_leaf = st.one_of(st.integers(-(2**70), 2**70), st.binary(max_size=8))
extended_handshakes = st.builds(
    ExtendedHandshake,
    m=st.dictionaries(st.text(max_size=12), st.integers(0, 255), max_size=4),
    v=st.none() | st.text(max_size=20),
    p=st.none() | st.integers(0, 65535),
    reqq=st.none() | st.integers(0, 1 << 31),
    metadata_size=st.none() | st.integers(1, MAX_METADATA_SIZE),
    yourip=st.none() | st.ip_addresses(),
    e=st.none() | st.booleans(),
    extra=st.dictionaries(
        st.binary(min_size=5, max_size=10).filter(lambda k: k not in KNOWN_KEYS),
        bencoded_leaf | st.lists(bencoded_leaf, max_size=3),
    ),
)


@given(hs=extended_handshakes)
def test_extended_handshake_round_trip(hs: ExtendedHandshake) -> None:
    wire = encode_extended_handshake(hs)
    assert decode_extended_handshake(wire) == hs
    assert encode_extended_handshake(decode_extended_handshake(wire)) == wire


# ---- ut_metadata ---------------------------------------------------------------------


def test_bep9_examples() -> None:
    assert encode_metadata_message(MetadataRequest(0)) == b"d8:msg_typei0e5:piecei0ee"
    assert decode_metadata_message(b"d8:msg_typei0e5:piecei0ee") == MetadataRequest(0)
    assert decode_metadata_message(b"d8:msg_typei2e5:piecei0ee") == MetadataReject(0)
    block = b"x" * METADATA_PIECE_SIZE
    wire = b"d8:msg_typei1e5:piecei0e10:total_sizei34256ee" + block
    assert decode_metadata_message(wire) == MetadataData(0, 34256, block)
    assert encode_metadata_message(MetadataData(0, 34256, block)) == wire


def test_last_piece_may_be_short_others_must_be_16k() -> None:
    total = 2 * METADATA_PIECE_SIZE + 100
    assert metadata_piece_count(total) == 3
    last = MetadataData(2, total, b"z" * 100)
    assert decode_metadata_message(encode_metadata_message(last)) == last
    for piece, size in ((0, METADATA_PIECE_SIZE - 1), (2, 99), (2, 101), (3, 0)):
        head = encode({b"msg_type": 1, b"piece": piece, b"total_size": total})
        with pytest.raises(DecodeError):
            decode_metadata_message(head + b"z" * size)


def test_unknown_msg_type_is_ignored() -> None:
    assert decode_metadata_message(b"d8:msg_typei7ee") is None
    assert decode_metadata_message(b"d8:msg_typei3e5:piecei0ee") is None


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"i1e",
        b"d5:piecei0ee",  # no msg_type
        b"d8:msg_typei0ee",  # no piece
        b"d8:msg_typei0e5:piecei-1ee",
        b"d8:msg_typei0e5:piecei512ee",  # beyond the 8 MiB cap (512 pieces)
        b"d8:msg_typei0e5:piecei0eeXX",  # bytes after a request
        b"d8:msg_typei1e5:piecei0ee",  # data without total_size
        b"d8:msg_typei1e5:piecei0e10:total_sizei0ee",
        b"d8:msg_typei1e5:piecei0e10:total_sizei8388609eex",
        b"d8:msg_typei1:05:piecei0ee",
    ],
)
def test_bad_metadata_messages(wire: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_metadata_message(wire)


@st.composite
def metadata_messages(draw: st.DrawFn) -> MetadataMessage:
    kind = draw(st.sampled_from(["request", "reject", "data"]))
    if kind != "data":
        piece = draw(st.integers(0, metadata_piece_count(MAX_METADATA_SIZE) - 1))
        return MetadataRequest(piece) if kind == "request" else MetadataReject(piece)
    total = draw(st.integers(1, 5 * METADATA_PIECE_SIZE))
    piece = draw(st.integers(0, metadata_piece_count(total) - 1))
    size = min(METADATA_PIECE_SIZE, total - piece * METADATA_PIECE_SIZE)
    return MetadataData(piece, total, bytes([draw(st.integers(0, 255))]) * size)


@given(msg=metadata_messages())
def test_metadata_round_trip(msg: MetadataMessage) -> None:
    assert decode_metadata_message(encode_metadata_message(msg)) == msg


# ---- ut_pex --------------------------------------------------------------------------


def test_golden_pex() -> None:
    msg = PexMessage(
        added=(PexPeer(("10.0.0.1", 6881), PexFlags.SEED | PexFlags.REACHABLE),),
        dropped=(("192.168.1.2", 80),),
        added6=(PexPeer(("::1", 1)),),
        dropped6=(("2001:db8::2", 65535),),
    )
    wire = (
        b"d5:added6:\x0a\x00\x00\x01\x1a\xe1" + b"7:added.f1:\x12"
        b"6:added618:" + bytes(15) + b"\x01\x00\x01" + b"8:added6.f1:\x00"
        b"7:dropped6:\xc0\xa8\x01\x02\x00\x50"
        b"8:dropped618:\x20\x01\x0d\xb8" + bytes(11) + b"\x02\xff\xffe"
    )
    assert encode_pex(msg) == wire
    assert decode_pex(wire) == msg


def test_pex_flags_are_optional() -> None:
    msg = decode_pex(b"d5:added6:\x7f\x00\x00\x01\x00\x50e")
    assert msg.added == (PexPeer(("127.0.0.1", 80), PexFlags.NONE),)


@pytest.mark.parametrize(
    "wire",
    [
        b"le",
        b"d5:added5:\x7f\x00\x00\x01\x00e",  # not a multiple of 6
        b"d6:added617:" + bytes(17) + b"e",
        b"d7:dropped7:" + bytes(7) + b"e",
        b"d5:added6:\x7f\x00\x00\x01\x00\x507:added.f2:\x00\x00e",  # flag count mismatch
        b"d5:addedi1ee",
        b"d5:added6:\x7f\x00\x00\x01\x00\x507:added.fi1ee",
    ],
)
def test_bad_pex(wire: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_pex(wire)


def test_encode_pex_refuses_wrong_family() -> None:
    with pytest.raises(ValueError):
        encode_pex(PexMessage(added=(PexPeer(("::1", 1)),)))


def addrs(version: Literal[4, 6]) -> st.SearchStrategy[tuple[str, int]]:
    return st.tuples(st.ip_addresses(v=version).map(str), st.integers(0, 65535))


pex_messages = st.builds(
    PexMessage,
    added=st.lists(st.builds(PexPeer, addrs(4), st.integers(0, 255).map(PexFlags)), max_size=8).map(
        tuple
    ),
    dropped=st.lists(addrs(4), max_size=8).map(tuple),
    added6=st.lists(
        st.builds(PexPeer, addrs(6), st.integers(0, 255).map(PexFlags)), max_size=8
    ).map(tuple),
    dropped6=st.lists(addrs(6), max_size=8).map(tuple),
)


@given(msg=pex_messages)
def test_pex_round_trip(msg: PexMessage) -> None:
    assert decode_pex(encode_pex(msg)) == msg


# ---- totality ------------------------------------------------------------------------

DECODERS: list[Callable[[bytes], object]] = [
    decode_extended_handshake,
    decode_metadata_message,
    decode_pex,
]


def decode_everything(data: bytes) -> None:
    for decoder in DECODERS:
        with contextlib.suppress(DecodeError):
            decoder(data)


@given(data=st.binary(max_size=2_000))
@example(data=b"d8:msg_typei1e5:piecei0e10:total_sizei99999999999999999999ee")
@example(data=b"d1:md1:xi99999999999999999999999eee")
def test_extension_decoders_are_total(data: bytes) -> None:
    """Fuzz target ``extension``: every payload decoder returns or raises `DecodeError`."""
    decode_everything(data)


@given(
    seed=st.one_of(
        extended_handshakes.map(encode_extended_handshake),
        metadata_messages().map(encode_metadata_message),
        pex_messages.map(encode_pex),
    ),
    edits=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_totality_on_mutated_payloads(seed: bytes, edits: list[tuple[int, int]]) -> None:
    data = bytearray(seed)
    for pos, value in edits:
        data[pos % len(data)] = value
    decode_everything(bytes(data))
