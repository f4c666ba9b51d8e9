"""KRPC codec: BEP 5 golden packets, round trips, strictness and totality."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.bencoding import encode
from shoal.dht.compact import NodeInfo
from shoal.dht.krpc import (
    MAX_DATAGRAM,
    AnnouncePeerQuery,
    Error,
    ErrorCode,
    FindNodeQuery,
    GetPeersQuery,
    KRPCDecodeError,
    Message,
    PingQuery,
    Response,
    decode_message,
    encode_message,
)

from .strategies import messages

A = b"abcdefghij0123456789"
M = b"mnopqrstuvwxyz123456"

# (bencoded bytes exactly as printed in BEP 5, expected message)
GOLDEN: list[tuple[bytes, Message]] = [
    (
        b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee",
        Error(b"aa", 201, "A Generic Error Ocurred"),
    ),
    (b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe", PingQuery(b"aa", A)),
    (b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re", Response(b"aa", M)),
    (
        b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e"
        b"1:q9:find_node1:t2:aa1:y1:qe",
        FindNodeQuery(b"aa", A, M),
    ),
    (
        b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e"
        b"1:q9:get_peers1:t2:aa1:y1:qe",
        GetPeersQuery(b"aa", A, M),
    ),
    (
        b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee"
        b"1:t2:aa1:y1:re",
        Response(
            b"aa",
            A,
            token=b"aoeusnth",
            values=(("97.120.106.101", 11893), ("105.100.104.116", 28269)),
        ),
    ),
    (
        b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti6881e"
        b"5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
        AnnouncePeerQuery(b"aa", A, M, 6881, b"aoeusnth"),
    ),
]


@pytest.mark.parametrize(("raw", "msg"), GOLDEN)
def test_bep5_golden_packets(raw: bytes, msg: Message) -> None:
    assert decode_message(raw) == msg
    assert encode_message(msg) == raw


def test_bep5_nodes_examples_are_not_valid_compact_info() -> None:
    # BEP 5's "def456..." placeholder is 9 bytes: not a whole number of 26-byte entries.
    raw = b"d1:rd2:id20:0123456789abcdefghij5:nodes9:def456...e1:t2:aa1:y1:re"
    with pytest.raises(KRPCDecodeError) as info:
        decode_message(raw)
    assert info.value.t == b"aa"
    assert info.value.reply is None  # responses are never answered


def test_nodes_response_with_real_compact_info() -> None:
    node = NodeInfo(M, ("192.0.2.7", 6881))
    msg = Response(b"aa", A, nodes=(node,), token=b"aoeusnth")
    raw = encode_message(msg)
    assert raw.startswith(b"d1:rd2:id20:abcdefghij01234567895:nodes26:")
    assert decode_message(raw) == msg


def test_announce_with_implied_port_and_extensions() -> None:
    msg = AnnouncePeerQuery(b"\x00\x01", A, M, 0, b"tok", implied_port=True, read_only=True)
    raw = encode_message(msg)
    assert b"12:implied_porti1e" in raw
    assert b"2:roi1e" in raw
    assert decode_message(raw) == msg


def test_bep42_ip_and_version() -> None:
    msg = Response(b"xy", A, ip=("124.31.75.21", 6881), version=b"SH01")
    raw = encode_message(msg)
    assert b"2:ip6:\x7c\x1f\x4b\x15\x1a\xe1" in raw
    assert b"1:v4:SH01" in raw
    assert decode_message(raw) == msg


def test_unsorted_dict_and_unknown_keys_are_accepted() -> None:
    raw = b"d1:y1:q1:t2:aa1:q4:ping1:ad2:id20:abcdefghij01234567893:zzzi1ee5:extrale1:ei0ee"
    assert decode_message(raw) == PingQuery(b"aa", A)


def q(args: bytes, method: bytes = b"get_peers") -> bytes:
    return b"d1:ad" + args + b"e1:q" + str(len(method)).encode() + b":" + method + b"1:t2:tt1:y1:qe"


@pytest.mark.parametrize(
    "raw",
    [
        q(b"2:id19:abcdefghij012345678"),  # short node id
        q(b"2:idi5e"),  # wrong type
        q(b"2:id20:abcdefghij0123456789"),  # missing info_hash
        q(b"2:id20:abcdefghij01234567899:info_hash3:abc"),
        q(b"2:id20:abcdefghij01234567896:targeti1e", b"find_node"),
        q(
            b"2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti0e5:token1:x",
            b"announce_peer",
        ),  # port 0 without implied_port
        q(
            b"2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti70000e5:token1:x",
            b"announce_peer",
        ),
        q(
            b"2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti1e",
            b"announce_peer",
        ),  # no token
        b"d1:a3:abc1:q4:ping1:t2:tt1:y1:qe",  # 'a' not a dict
        b"d1:t2:tt1:y1:qe",  # no method
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:tt1:v3:abc2:ro1:x1:y1:qe",
    ],
)
def test_bad_query_owes_protocol_error(raw: bytes) -> None:
    with pytest.raises(KRPCDecodeError) as info:
        decode_message(raw)
    reply = info.value.reply
    assert reply is not None
    assert reply.t == b"tt"
    assert reply.code == ErrorCode.PROTOCOL
    assert decode_message(encode_message(reply)) == reply


def test_unknown_method_owes_204() -> None:
    with pytest.raises(KRPCDecodeError) as info:
        decode_message(q(b"2:id20:abcdefghij0123456789", b"vote"))
    assert info.value.reply_code == ErrorCode.METHOD_UNKNOWN
    assert info.value.t == b"tt"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"garbage",
        b"le",
        b"d1:y1:qe",  # no t: nothing to reply to
        b"d1:ti5e1:y1:qe",  # t not a string
        b"d1:t2:aa1:y1:xe",  # unknown type: not answered
        b"d1:t2:aa1:y1:re",  # response without r
        b"d1:rd2:id20:abcdefghij0123456789e1:t2:aa1:y1:r2:ip3:abce",  # bad ip length
        b"d1:rd2:id20:abcdefghij01234567896:valuesli5eee1:t2:aa1:y1:re",
        b"d1:eli201ee1:t2:aa1:y1:ee",  # error without message
        b"d1:el3:abc3:defe1:t2:aa1:y1:ee",
        b"d1:t2:aa1:y1:q1:t2:bbe",  # duplicate key
    ],
)
def test_malformed_owes_nothing(raw: bytes) -> None:
    with pytest.raises(KRPCDecodeError) as info:
        decode_message(raw)
    assert info.value.reply is None


def test_datagram_cap() -> None:
    pad = b"5:extra" + str(MAX_DATAGRAM).encode() + b":" + bytes(MAX_DATAGRAM)
    raw = b"d1:ad2:id20:abcdefghij0123456789e" + pad + b"1:q4:ping1:t2:aa1:y1:qe"
    with pytest.raises(KRPCDecodeError):
        decode_message(raw)


def test_deep_nesting_refused() -> None:
    raw = b"d1:t2:aa1:y1:q1:x" + b"l" * 50 + b"e" * 50 + b"e"
    with pytest.raises(KRPCDecodeError):
        decode_message(raw)


@given(messages())
def test_round_trip(msg: Message) -> None:
    raw = encode_message(msg)
    assert decode_message(raw) == msg
    assert encode_message(decode_message(raw)) == raw


@given(messages())
def test_encoding_fits_sane_datagram(msg: Message) -> None:
    # The strategies cap list sizes at what a reply may carry; all must fit the cap.
    assert len(encode_message(msg)) <= MAX_DATAGRAM


def _decode_only_decode_error(data: bytes) -> None:
    try:
        decode_message(data)
    except KRPCDecodeError as exc:
        if exc.reply is not None:
            encode_message(exc.reply)  # whatever we owe must be sendable


@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_raise_decode_error(data: bytes) -> None:
    _decode_only_decode_error(data)


@given(
    messages(),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
    st.integers(0, 10_000),
)
def test_mutated_messages_only_raise_decode_error(
    msg: Message, flips: list[tuple[int, int]], cut: int
) -> None:
    raw = bytearray(encode_message(msg))
    for pos, byte in flips:
        raw[pos % len(raw)] = byte
    _decode_only_decode_error(bytes(raw))
    _decode_only_decode_error(bytes(raw[: cut % (len(raw) + 1)]))


@given(
    st.recursive(
        st.integers() | st.binary(max_size=30),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        b"t",
                        b"y",
                        b"q",
                        b"a",
                        b"r",
                        b"e",
                        b"id",
                        b"ip",
                        b"nodes",
                        b"values",
                        b"token",
                        b"port",
                        b"ro",
                        b"v",
                        b"want",
                        b"target",
                        b"info_hash",
                    ]
                ),
                inner,
                max_size=6,
            )
        ),
        max_leaves=20,
    )
)
def test_structured_garbage_only_raises_decode_error(value: object) -> None:
    _decode_only_decode_error(encode(value))  # type: ignore[arg-type]


_values = st.integers(-5, 70_000) | st.binary(max_size=40) | st.lists(st.binary(max_size=20))
_arg_keys = st.sampled_from(
    [
        b"id",
        b"target",
        b"info_hash",
        b"port",
        b"token",
        b"implied_port",
        b"want",
        b"nodes",
        b"nodes6",
        b"values",
        b"scrape",
        b"seed",
        b"seq",
        b"sig",
        b"k",
        b"v",
        b"salt",
        b"cas",
        b"samples",
        b"BFsd",
        b"BFpe",
        b"interval",
        b"num",
    ]
)


@given(
    st.fixed_dictionaries(
        {b"t": st.binary(max_size=4), b"y": st.sampled_from([b"q", b"r", b"e"])},
        optional={
            b"q": st.sampled_from(
                [
                    b"ping",
                    b"find_node",
                    b"get_peers",
                    b"announce_peer",
                    b"get",
                    b"put",
                    b"sample_infohashes",
                ]
            ),
            b"a": st.dictionaries(_arg_keys, _values | st.binary(min_size=20, max_size=20)),
            b"r": st.dictionaries(_arg_keys, _values | st.binary(min_size=26, max_size=26)),
            b"e": st.lists(_values, max_size=3),
            b"ro": _values,
            b"ip": _values,
            b"v": _values,
        },
    )
)
def test_near_valid_messages_only_raise_decode_error(d: dict[bytes, object]) -> None:
    _decode_only_decode_error(encode(d))  # type: ignore[arg-type]
