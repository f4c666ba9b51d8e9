"""Peer wire messages: golden bytes, round trips, split invariance, limits and totality."""

from __future__ import annotations

import struct

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from shoal.errors import LocalProtocolError, RemoteProtocolError
from shoal.peer.frames import FrameDecoder
from shoal.peer.messages import (
    BLOCK_SIZE,
    DEFAULT_MAX_EXTENDED_LENGTH,
    DEFAULT_MAX_LENGTH,
    AllowedFast,
    BitfieldMessage,
    Cancel,
    Choke,
    Extended,
    Have,
    HaveAll,
    HaveNone,
    Interested,
    KeepAlive,
    Message,
    MessageId,
    NotInterested,
    Piece,
    Port,
    Reject,
    Request,
    Suggest,
    Unchoke,
    encode_message,
    encode_piece_header,
)

from .wire_strategies import split_at, wire_messages

# (message, exact wire bytes), written out by hand from BEP 3 / 5 / 6 / 10.
GOLDEN: list[tuple[Message, bytes]] = [
    (KeepAlive(), b"\x00\x00\x00\x00"),
    (Choke(), b"\x00\x00\x00\x01\x00"),
    (Unchoke(), b"\x00\x00\x00\x01\x01"),
    (Interested(), b"\x00\x00\x00\x01\x02"),
    (NotInterested(), b"\x00\x00\x00\x01\x03"),
    (Have(0x01020304), b"\x00\x00\x00\x05\x04\x01\x02\x03\x04"),
    (BitfieldMessage(b"\xff\xa0"), b"\x00\x00\x00\x03\x05\xff\xa0"),
    (
        Request(1, 0x4000, 0x4000),
        b"\x00\x00\x00\x0d\x06\x00\x00\x00\x01\x00\x00\x40\x00\x00\x00\x40\x00",
    ),
    (Piece(2, 16, b"abc"), b"\x00\x00\x00\x0c\x07\x00\x00\x00\x02\x00\x00\x00\x10abc"),
    (
        Cancel(1, 0x4000, 0x4000),
        b"\x00\x00\x00\x0d\x08\x00\x00\x00\x01\x00\x00\x40\x00\x00\x00\x40\x00",
    ),
    (Port(6881), b"\x00\x00\x00\x03\x09\x1a\xe1"),
    (Suggest(7), b"\x00\x00\x00\x05\x0d\x00\x00\x00\x07"),
    (HaveAll(), b"\x00\x00\x00\x01\x0e"),
    (HaveNone(), b"\x00\x00\x00\x01\x0f"),
    (Reject(3, 0, 16384), b"\x00\x00\x00\x0d\x10\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x40\x00"),
    (AllowedFast(9), b"\x00\x00\x00\x05\x11\x00\x00\x00\x09"),
    (Extended(0, b"d1:md6:ut_pexi1eee"), b"\x00\x00\x00\x14\x14\x00d1:md6:ut_pexi1eee"),
]


def decode_all(data: bytes, **limits: int) -> list[Message]:
    dec = FrameDecoder(**limits)
    dec.receive_data(data)
    out = list(dec)
    assert dec.buffered == 0
    return out


def decode_chunks(chunks: list[bytes], num_pieces: int | None = None) -> list[Message]:
    dec = FrameDecoder(num_pieces=num_pieces)
    out: list[Message] = []
    for chunk in chunks:
        dec.receive_data(chunk)
        out.extend(dec)
    dec.receive_data(b"")
    assert dec.next_message() is None
    return out


@pytest.mark.parametrize(("msg", "wire"), GOLDEN, ids=lambda x: type(x).__name__)
def test_golden_encode_and_decode(msg: Message, wire: bytes) -> None:
    assert encode_message(msg) == wire
    assert decode_all(wire) == [msg]


def test_golden_covers_every_message_id() -> None:
    ids = {wire[4] for _, wire in GOLDEN if len(wire) > 4}
    assert ids == {m.value for m in MessageId}


def test_piece_header_allows_sending_block_separately() -> None:
    block = bytes(range(200))
    header = encode_piece_header(5, 32768, len(block))
    assert len(header) == 13
    assert header + block == encode_message(Piece(5, 32768, block))


def test_piece_block_is_a_zero_copy_view_that_outlives_later_reads() -> None:
    block = bytes(range(256)) * 64
    chunk = encode_message(Piece(1, 0, block)) + encode_message(Have(3))
    dec = FrameDecoder()
    dec.receive_data(chunk)
    piece = dec.next_message()
    assert isinstance(piece, Piece)
    assert isinstance(piece.block, memoryview)
    assert piece.block.obj is chunk  # a view into the received bytes, not a copy
    assert piece.block.readonly
    dec.receive_data(encode_message(Piece(2, 0, b"x" * 100)))
    assert list(dec) == [Have(3), Piece(2, 0, b"x" * 100)]
    assert piece.block == block


def test_only_the_frame_that_straddles_two_reads_is_copied() -> None:
    # Two reads of 2.5 blocks each: blocks inside a read are views into that read's
    # bytes; only the block cut by the read boundary is a copy (a fresh bytes object).
    blocks = [bytes([i]) * BLOCK_SIZE for i in range(5)]
    wire = b"".join(encode_message(Piece(0, i * BLOCK_SIZE, b)) for i, b in enumerate(blocks))
    cut = len(wire) // 2  # inside the third frame's block
    first, second = wire[:cut], wire[cut:]
    dec = FrameDecoder()
    dec.receive_data(first)
    got = list(dec)
    dec.receive_data(second)
    got += list(dec)
    assert [p.block for p in got if isinstance(p, Piece)] == blocks
    owners = [p.block.obj for p in got if isinstance(p, Piece) and isinstance(p.block, memoryview)]
    assert len(owners) == 5
    assert all(owners[i] is first for i in (0, 1))
    assert owners[2] not in (first, second)
    assert len(owners[2]) == len(encode_message(Piece(0, 0, blocks[2])))  # just that frame
    assert all(owners[i] is second for i in (3, 4))
    assert dec.buffered == 0


@given(cut=st.integers(1, 3 * (BLOCK_SIZE + 13) - 1))
def test_a_header_or_block_cut_anywhere_copies_at_most_one_frame(cut: int) -> None:
    blocks = [bytes([i]) * BLOCK_SIZE for i in range(3)]
    wire = b"".join(encode_message(Piece(1, i * BLOCK_SIZE, b)) for i, b in enumerate(blocks))
    first, second = wire[:cut], wire[cut:]
    dec = FrameDecoder()
    dec.receive_data(first)
    got = list(dec)
    dec.receive_data(second)
    got += list(dec)
    assert got == [Piece(1, i * BLOCK_SIZE, b) for i, b in enumerate(blocks)]
    copied = [
        p
        for p in got
        if isinstance(p, Piece)
        and isinstance(p.block, memoryview)
        and p.block.obj is not first
        and p.block.obj is not second
    ]
    assert len(copied) == (0 if cut % (BLOCK_SIZE + 13) == 0 else 1)


def test_mutable_input_is_copied_so_caller_can_reuse_its_buffer() -> None:
    buf = bytearray(encode_message(Piece(0, 0, b"hello")))
    dec = FrameDecoder()
    dec.receive_data(buf)
    buf[:] = b"\0" * len(buf)
    assert dec.next_message() == Piece(0, 0, b"hello")


@given(msg=wire_messages())
def test_round_trip_every_message(msg: Message) -> None:
    assert decode_all(encode_message(msg)) == [msg]


@given(msgs=st.lists(wire_messages(), max_size=12), cuts=st.lists(st.integers(0, 30_000)))
@example(msgs=[Piece(0, 0, b"x" * 100), Have(1)], cuts=[2, 3, 4, 5, 50])
def test_decoder_is_split_invariant(msgs: list[Message], cuts: list[int]) -> None:
    blob = b"".join(encode_message(m) for m in msgs)
    assert decode_chunks([blob]) == msgs
    assert decode_chunks(split_at(blob, cuts)) == msgs


@given(msgs=st.lists(wire_messages(), max_size=12), cuts=st.lists(st.integers(0, 30_000)))
def test_next_item_is_next_message_with_blocks_as_plain_tuples(
    msgs: list[Message], cuts: list[int]
) -> None:
    blob = b"".join(encode_message(m) for m in msgs)
    dec = FrameDecoder()
    items: list[object] = []
    for chunk in split_at(blob, cuts):
        dec.receive_data(chunk)
        items += iter(dec.next_item, None)
    want = [(m.index, m.begin, m.block) if isinstance(m, Piece) else m for m in msgs]
    assert items == want
    assert all(type(i) is not Piece for i in items)


@given(msgs=st.lists(wire_messages(), max_size=6))
def test_decoder_byte_by_byte(msgs: list[Message]) -> None:
    blob = b"".join(encode_message(m) for m in msgs)
    assert decode_chunks([blob[i : i + 1] for i in range(len(blob))]) == msgs


@given(
    num_pieces=st.integers(0, 100).flatmap(
        lambda n: st.tuples(st.just(n), st.lists(wire_messages(n), max_size=8))
    ),
    cuts=st.lists(st.integers(0, 5_000)),
)
def test_known_piece_count_accepts_valid_streams(
    num_pieces: tuple[int, list[Message]], cuts: list[int]
) -> None:
    n, msgs = num_pieces
    if n == 0:  # no valid index exists; drop index-bearing messages
        msgs = [m for m in msgs if not hasattr(m, "index")]
    blob = b"".join(encode_message(m) for m in msgs)
    assert decode_chunks(split_at(blob, cuts), num_pieces=n) == msgs


def test_large_piece_fed_in_small_chunks_is_assembled_once() -> None:
    block = bytes(range(256)) * 64
    wire = encode_message(Piece(0, 0, block))
    dec = FrameDecoder()
    for i in range(len(wire) - 1):
        dec.receive_data(wire[i : i + 1])
        assert dec.next_message() is None
    dec.receive_data(wire[-1:])
    assert dec.next_message() == Piece(0, 0, block)
    assert dec.buffered == 0


# ---- limits -----------------------------------------------------------------------


def frame(length: int, msg_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">IB", length, msg_id) + payload


def test_huge_declared_length_refused_from_the_prefix_alone() -> None:
    dec = FrameDecoder()
    dec.receive_data(b"\xff\xff\xff\xff")  # declares a 4 GiB frame
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        dec.next_message()
    assert dec.buffered == 4


@pytest.mark.parametrize("msg_id", [int(m) for m in MessageId] + [99])
def test_every_type_refuses_lengths_past_its_limit(msg_id: int) -> None:
    dec = FrameDecoder(num_pieces=8)
    dec.receive_data(frame(DEFAULT_MAX_EXTENDED_LENGTH + 1, msg_id))  # header only, no payload
    with pytest.raises(RemoteProtocolError):
        dec.next_message()


FIXED = {
    MessageId.CHOKE: 1,
    MessageId.UNCHOKE: 1,
    MessageId.INTERESTED: 1,
    MessageId.NOT_INTERESTED: 1,
    MessageId.HAVE: 5,
    MessageId.REQUEST: 13,
    MessageId.CANCEL: 13,
    MessageId.PORT: 3,
    MessageId.SUGGEST: 5,
    MessageId.HAVE_ALL: 1,
    MessageId.HAVE_NONE: 1,
    MessageId.REJECT: 13,
    MessageId.ALLOWED_FAST: 5,
}


# Length 0 would be a keep-alive, so one-byte messages are only tested with length 2.
WRONG_SIZES = [(i, n) for i, size in FIXED.items() for n in (size - 1, size + 1) if n > 0]


@pytest.mark.parametrize(("msg_id", "length"), WRONG_SIZES, ids=str)
def test_fixed_size_messages_must_have_their_size(msg_id: int, length: int) -> None:
    dec = FrameDecoder()
    dec.receive_data(frame(length, msg_id, b"\0" * length))
    with pytest.raises(RemoteProtocolError, match="bad length"):
        dec.next_message()


def test_piece_limit_is_a_16k_block_by_default_and_configurable() -> None:
    assert DEFAULT_MAX_LENGTH + 4 == BLOCK_SIZE + 13
    ok = encode_message(Piece(0, 0, b"\0" * BLOCK_SIZE))
    assert decode_all(ok) == [Piece(0, 0, b"\0" * BLOCK_SIZE)]
    too_big = encode_message(Piece(0, 0, b"\0" * (BLOCK_SIZE + 1)))
    with pytest.raises(RemoteProtocolError):
        decode_all(too_big)
    assert len(decode_all(too_big, max_length=2 * BLOCK_SIZE)) == 1


def test_short_piece_and_extended_frames_refused() -> None:
    with pytest.raises(RemoteProtocolError):
        decode_all(frame(8, MessageId.PIECE, b"\0" * 8))
    with pytest.raises(RemoteProtocolError):
        decode_all(frame(1, MessageId.EXTENDED))


def test_extended_messages_may_carry_a_metadata_piece() -> None:
    payload = b"d8:msg_typei1e5:piecei0e10:total_sizei99999ee" + b"\0" * BLOCK_SIZE
    assert decode_all(encode_message(Extended(3, payload))) == [Extended(3, payload)]


def test_request_length_limit() -> None:
    assert decode_all(encode_message(Request(0, 0, BLOCK_SIZE))) == [Request(0, 0, BLOCK_SIZE)]
    big = encode_message(Request(0, 0, BLOCK_SIZE + 1))
    with pytest.raises(RemoteProtocolError, match="request"):
        decode_all(big)
    assert decode_all(big, max_request_length=1 << 17) == [Request(0, 0, BLOCK_SIZE + 1)]
    # Cancel and reject echo requests; they are not limited.
    assert decode_all(encode_message(Cancel(0, 0, 1 << 20))) == [Cancel(0, 0, 1 << 20)]


def test_bitfield_must_match_known_piece_count() -> None:
    assert decode_all(frame(3, MessageId.BITFIELD, b"\xff\xc0"), num_pieces=10) == [
        BitfieldMessage(b"\xff\xc0")
    ]
    for bits in (b"\xff", b"\xff\xc0\x00"):
        with pytest.raises(RemoteProtocolError, match="bad length"):
            decode_all(frame(1 + len(bits), MessageId.BITFIELD, bits), num_pieces=10)


def test_bitfield_spare_bits_refused() -> None:
    with pytest.raises(RemoteProtocolError, match="spare"):
        decode_all(frame(3, MessageId.BITFIELD, b"\xff\xe0"), num_pieces=10)


def test_set_num_pieces_later_enables_checks() -> None:
    dec = FrameDecoder()
    dec.receive_data(encode_message(Have(500)))
    assert dec.next_message() == Have(500)
    dec.set_num_pieces(100)
    dec.receive_data(encode_message(Have(100)))
    with pytest.raises(RemoteProtocolError, match="out of range"):
        dec.next_message()


@pytest.mark.parametrize(
    "msg",
    [Have(10), Suggest(10), AllowedFast(10), Request(10, 0, 1), Cancel(10, 0, 1), Reject(10, 0, 1)],
)
def test_piece_index_checked_when_count_known(msg: Message) -> None:
    with pytest.raises(RemoteProtocolError, match="out of range"):
        decode_all(encode_message(msg), num_pieces=10)


def test_unknown_ids_are_skipped_and_counted() -> None:
    dec = FrameDecoder()
    dec.receive_data(frame(4, 0x42, b"abc") + encode_message(Choke()) + frame(1, 0xFF))
    assert list(dec) == [Choke()]
    assert dec.unknown_messages == 2
    assert dec.buffered == 0


def test_unknown_id_still_bounded_by_max_length() -> None:
    dec = FrameDecoder()
    dec.receive_data(frame(DEFAULT_MAX_LENGTH + 1, 0x42))
    with pytest.raises(RemoteProtocolError):
        dec.next_message()


def test_eof_mid_frame_is_an_error_and_clean_eof_is_not() -> None:
    dec = FrameDecoder()
    dec.receive_data(encode_message(Have(1))[:-1])
    dec.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="ended"):
        dec.next_message()
    clean = FrameDecoder()
    clean.receive_data(encode_message(Choke()))
    clean.receive_data(b"")
    assert list(clean) == [Choke()]


def test_decoder_stays_broken_and_rejects_data_after_eof() -> None:
    dec = FrameDecoder()
    dec.receive_data(frame(2, MessageId.CHOKE, b"\0\0"))
    with pytest.raises(RemoteProtocolError):
        dec.next_message()
    with pytest.raises(RemoteProtocolError, match="already failed"):
        dec.next_message()
    dec.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        dec.receive_data(b"x")


@pytest.mark.parametrize(
    "msg",
    [
        Have(-1),
        Have(2**32),
        Request(0, 0, 2**32),
        Port(65536),
        Piece(-1, 0, b""),
        Extended(256, b""),
    ],
)
def test_encoding_out_of_range_fields_is_a_value_error(msg: Message) -> None:
    with pytest.raises(ValueError):
        encode_message(msg)


def test_encoding_a_non_message_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        encode_message(object())  # type: ignore[arg-type]


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FrameDecoder(max_length=0)
    with pytest.raises(ValueError):
        FrameDecoder(num_pieces=-1)


# ---- totality: remote bytes raise only our documented errors ------------------------


def outcome(chunks: list[bytes], num_pieces: int | None) -> tuple[list[Message], bool]:
    """Messages decoded before the stream ended or failed, and whether it failed."""
    dec = FrameDecoder(num_pieces=num_pieces)
    got: list[Message] = []
    try:
        for chunk in chunks:
            dec.receive_data(chunk)
            got.extend(dec)
        dec.receive_data(b"")
        assert dec.next_message() is None
    except RemoteProtocolError:  # DecodeError never comes out of the frame layer
        return got, True
    assert dec.buffered == 0
    return got, False


@given(data=st.binary(max_size=4_000))
@example(data=b"\xff\xff\xff\xff" + b"\0" * 100)
@example(data=b"\0\0\0\x05\x04\0\0\0\x40")  # have 64: out of range for 37 pieces
def test_wire_decoder_is_total(data: bytes) -> None:
    """Fuzz target ``wire``: any bytes give messages or `RemoteProtocolError`, nothing
    else, and the outcome is the same whole, byte by byte and in uneven chunks."""
    for num_pieces in (None, 37):
        whole = outcome([data], num_pieces)
        step = 1 + len(data) % 7
        assert outcome([data[i : i + 1] for i in range(len(data))], num_pieces) == whole
        assert outcome([data[i : i + step] for i in range(0, len(data), step)], num_pieces) == whole


@given(
    msgs=st.lists(wire_messages(), min_size=1, max_size=6),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
    cuts=st.lists(st.integers(0, 10_000), max_size=6),
    num_pieces=st.none() | st.integers(0, 64),
)
def test_totality_on_mutated_streams(
    msgs: list[Message],
    edits: list[tuple[int, int]],
    cuts: list[int],
    num_pieces: int | None,
) -> None:
    blob = bytearray(b"".join(encode_message(m) for m in msgs))
    for pos, value in edits:
        blob[pos % len(blob)] = value
    whole = outcome([bytes(blob)], num_pieces)
    assert outcome(split_at(bytes(blob), cuts), num_pieces) == whole
