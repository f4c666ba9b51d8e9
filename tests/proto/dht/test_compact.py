"""Compact peer and node info (BEP 5 "Contact Encoding", BEP 32)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.dht.compact import (
    NodeInfo,
    decode_nodes,
    decode_nodes6,
    decode_peer,
    encode_nodes,
    encode_nodes6,
    encode_peer,
)
from shoal.errors import DecodeError

from .strategies import addrs, nodes_v4, nodes_v6


def test_peer_v4_golden() -> None:
    assert encode_peer(("1.2.3.4", 6881)) == b"\x01\x02\x03\x04\x1a\xe1"
    assert decode_peer(b"\x01\x02\x03\x04\x1a\xe1") == ("1.2.3.4", 6881)


def test_peer_v6_golden() -> None:
    raw = bytes(15) + b"\x01" + b"\x00\x50"
    assert decode_peer(raw) == ("::1", 80)
    assert encode_peer(("::1", 80)) == raw


def test_node_v4_golden() -> None:
    node = NodeInfo(b"N" * 20, ("10.0.0.1", 1))
    raw = b"N" * 20 + b"\x0a\x00\x00\x01\x00\x01"
    assert encode_nodes([node]) == raw
    assert decode_nodes(raw) == [node]
    assert decode_nodes(b"") == []


@pytest.mark.parametrize("n", [1, 5, 7, 17, 19, 25, 27, 51])
def test_peer_wrong_length_refused(n: int) -> None:
    with pytest.raises(DecodeError):
        decode_peer(bytes(n))


@pytest.mark.parametrize("n", [1, 25, 27, 38, 51, 53])
def test_nodes_wrong_length_refused(n: int) -> None:
    with pytest.raises(DecodeError):
        decode_nodes(bytes(n))


@pytest.mark.parametrize("n", [1, 26, 37, 39, 77])
def test_nodes6_wrong_length_refused(n: int) -> None:
    with pytest.raises(DecodeError):
        decode_nodes6(bytes(n))


def test_encode_refuses_wrong_family_and_bad_values() -> None:
    with pytest.raises(ValueError):
        encode_nodes([NodeInfo(bytes(20), ("::1", 1))])
    with pytest.raises(ValueError):
        encode_nodes6([NodeInfo(bytes(20), ("1.2.3.4", 1))])
    with pytest.raises(ValueError):
        encode_nodes([NodeInfo(bytes(19), ("1.2.3.4", 1))])
    with pytest.raises(ValueError):
        encode_peer(("1.2.3.4", 70000))
    with pytest.raises(ValueError):
        encode_peer(("not-an-ip", 1))


@given(addrs)
def test_peer_round_trip(addr: tuple[str, int]) -> None:
    raw = encode_peer(addr)
    assert len(raw) in (6, 18)
    assert decode_peer(raw) == addr
    assert encode_peer(decode_peer(raw)) == raw


@given(st.lists(nodes_v4, max_size=10))
def test_nodes_round_trip(nodes: list[NodeInfo]) -> None:
    raw = encode_nodes(nodes)
    assert len(raw) == 26 * len(nodes)
    assert decode_nodes(raw) == nodes


@given(st.lists(nodes_v6, max_size=10))
def test_nodes6_round_trip(nodes: list[NodeInfo]) -> None:
    raw = encode_nodes6(nodes)
    assert len(raw) == 38 * len(nodes)
    assert decode_nodes6(raw) == nodes


@given(st.binary(max_size=200))
def test_decoders_are_total(data: bytes) -> None:
    for fn in (decode_nodes, decode_nodes6, decode_peer):
        with contextlib.suppress(DecodeError):
            fn(data)
