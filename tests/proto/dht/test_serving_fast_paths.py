"""The hand-written serving fast paths agree with the general code they shortcut."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from shoal.dht.compact import NodeInfo, encode_nodes, ip_packed
from shoal.dht.krpc import (
    AnnouncePeerQuery,
    FindNodeQuery,
    GetPeersQuery,
    GetQuery,
    Message,
    PingQuery,
    Response,
    SampleInfohashesQuery,
    _decode_general,
    _decode_query_fast,
    _encode_generic,
    decode_message,
    encode_message,
    encode_response_capped,
)
from shoal.errors import DecodeError

from .strategies import queries, responses


@given(responses())
def test_response_encoder_matches_the_generic_encoder(msg: Message) -> None:
    assert encode_message(msg) == _encode_generic(msg)
    assert decode_message(encode_message(msg)) == msg


def test_response_encoder_is_canonical_with_every_field() -> None:
    node = NodeInfo(b"n" * 20, ("10.0.0.1", 6881))
    msg = Response(
        b"tt",
        b"i" * 20,
        nodes=(node,),
        nodes6=(NodeInfo(b"m" * 20, ("::1", 1)),),
        values=(("1.2.3.4", 5),),
        token=b"tok",
        ip=("9.8.7.6", 4321),
        version=b"SH\x00\x01",
    )
    expected = (
        b"d2:ip6:\x09\x08\x07\x06\x10\xe1"
        b"1:rd2:id20:"
        + b"i" * 20
        + b"5:nodes26:"
        + encode_nodes([node])
        + b"6:nodes638:"
        + b"m" * 20
        + bytes(15)
        + b"\x01\x00\x01"
        + b"5:token3:tok6:valuesl6:\x01\x02\x03\x04\x00\x05ee"
        b"1:t2:tt1:v4:SH\x00\x011:y1:re"
    )
    assert encode_message(msg) == expected


@given(st.ip_addresses(v=4))
def test_ip_packed_fast_path_matches_ipaddress(ip: ipaddress.IPv4Address) -> None:
    assert ip_packed(str(ip)) == ip.packed


@pytest.mark.parametrize(
    "text", ["256.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4.5", "1.2.3.-4", "1.2.3.٤", "", "a.b.c.d"]
)
def test_ip_packed_refuses_what_ipaddress_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        ipaddress.ip_address(text)
    with pytest.raises(ValueError):
        ip_packed(text)


def _mutations(data: bytes) -> st.SearchStrategy[bytes]:
    """`data` with one byte changed, one byte dropped, or cut short."""
    n = len(data)
    return st.one_of(
        st.tuples(st.integers(0, n - 1), st.integers(0, 255)).map(
            lambda iv: data[: iv[0]] + bytes([iv[1]]) + data[iv[0] + 1 :]
        ),
        st.integers(0, n - 1).map(lambda i: data[:i] + data[i + 1 :]),
        st.integers(0, n).map(lambda i: data[:i]),
    )


def _check_fast_decode(data: bytes) -> None:
    fast = _decode_query_fast(data)
    if fast is None:
        return
    assert fast == _decode_general(data)
    assert decode_message(data) == fast


def _is_common(msg: Message) -> bool:
    if isinstance(msg, PingQuery):
        return not msg.read_only
    if isinstance(msg, GetPeersQuery):
        return not msg.read_only and not msg.want and not msg.noseed  # scrape=1 is common
    if isinstance(msg, (FindNodeQuery, SampleInfohashesQuery)):
        return not msg.read_only and not msg.want
    if isinstance(msg, GetQuery):
        return not msg.read_only and not msg.want and msg.seq is None
    if isinstance(msg, AnnouncePeerQuery):
        return not msg.read_only and not msg.seed  # BEP 33's flag takes the general path
    return False


@given(queries())
def test_fast_query_decoder_agrees_with_the_general_decoder(msg: Message) -> None:
    data = encode_message(msg)
    _check_fast_decode(data)
    if _is_common(msg):
        assert _decode_query_fast(data) == msg  # the common shapes do take the fast path


@given(queries().flatmap(lambda msg: _mutations(encode_message(msg))))
def test_fast_query_decoder_on_mutated_queries(data: bytes) -> None:
    _check_fast_decode(data)


@given(st.binary(max_size=200))
def test_fast_query_decoder_on_arbitrary_bytes(data: bytes) -> None:
    _check_fast_decode(data)


@given(responses(), st.integers(0, 3000))
def test_capped_response_keeps_the_values_that_fit(msg: Message, max_size: int) -> None:
    assume(isinstance(msg, Response))
    assert isinstance(msg, Response)
    out = encode_response_capped(msg, max_size)
    bare = encode_message(replace(msg, values=()))
    kept = [n for n in range(len(msg.values) + 1) if n == 0 or _size_with(msg, n) <= max_size]
    expected = max(kept)
    assert out == encode_message(replace(msg, values=msg.values[:expected]))
    assert len(out) <= max(max_size, len(bare))


def _size_with(msg: Response, n: int) -> int:
    return len(encode_message(replace(msg, values=msg.values[:n])))


@pytest.mark.parametrize(
    "args",
    [
        b"4:porti0e",  # port 0 needs implied_port
        b"4:porti65536e",
        b"4:porti01e",
    ],
)
def test_fast_announce_decoder_leaves_bad_ports_to_the_general_decoder(args: bytes) -> None:
    data = (
        b"d1:ad2:id20:"
        + b"i" * 20
        + b"9:info_hash20:"
        + b"h" * 20
        + args
        + b"5:token2:tke1:q13:announce_peer1:t2:tt1:y1:qe"
    )
    assert _decode_query_fast(data) is None
    with pytest.raises(DecodeError):
        decode_message(data)


def test_fast_announce_decoder_reads_implied_port() -> None:
    msg = AnnouncePeerQuery(b"tt", b"i" * 20, b"h" * 20, 0, b"tok", True, False, b"LT\x01\x02")
    assert _decode_query_fast(encode_message(msg)) == msg
