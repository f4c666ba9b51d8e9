"""BEP 42 per address family: each engine of a dual-stack node derives its own node ID
from its own external address, and the state file keeps both IDs."""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from shoal.dht import bep42
from shoal.dht.krpc import Response, decode_message, encode_message
from shoal.dht.node import DHTConfig, DHTNode
from shoal.dht_client import open_dht_node
from shoal.errors import DecodeError
from shoal.net.dht_state import load_family_ids, load_state, save_state

if TYPE_CHECKING:
    from pathlib import Path

EXT4 = "203.0.113.9"
EXT6 = "2001:db8:5::9"
ID = bytes(range(20))
ids = st.binary(min_size=20, max_size=20)


def _vote(node: DHTNode, voters: list[tuple[str, int]], external: str) -> None:
    """Ping each voter; each answers that our address is `external` (BEP 42 ``ip``)."""
    for voter in voters:
        node.ping(voter, 0.0)
    for data, dst in node.datagrams_to_send():
        reply = Response(decode_message(data).t, random.Random(dst[1]).randbytes(20))
        reply = Response(reply.t, reply.node_id, ip=(external, 6881))
        node.receive_datagram(encode_message(reply), dst, 0.1)


def test_each_family_derives_its_id_from_its_own_external_address() -> None:
    cfg4 = DHTConfig(ip_votes=3, regenerate_id=True)
    cfg6 = DHTConfig(ip_votes=3, regenerate_id=True, ipv6=True)
    v4 = DHTNode(ID, random.Random(1), 0.0, cfg4)
    v6 = DHTNode(ID, random.Random(2), 0.0, cfg6)
    v4.set_sibling(v6)
    v6.set_sibling(v4)
    _vote(v4, [(f"127.0.0.{i}", 7000) for i in range(2, 5)], EXT4)
    _vote(v6, [(f"fd00::{i}", 7000) for i in range(2, 5)], EXT6)
    assert (v4.external_ip, v6.external_ip) == (EXT4, EXT6)
    assert bep42.is_valid_node_id(EXT4, v4.node_id)
    assert bep42.is_valid_node_id(EXT6, v6.node_id)
    assert v4.node_id != v6.node_id  # one ID could not be valid for both addresses
    assert not bep42.is_valid_node_id(EXT6, v4.node_id)


@given(ids, ids, ids)
def test_state_file_keeps_each_familys_id(
    tmp_path_factory: pytest.TempPathFactory, first: bytes, id4: bytes, id6: bytes
) -> None:
    path = tmp_path_factory.mktemp("state") / "dht.json"
    save_state(path, first, [], {"ipv4": id4, "ipv6": id6})
    assert load_state(path) == (first, [])
    assert load_family_ids(path) == {"ipv4": id4, "ipv6": id6}
    save_state(path, first, [])  # an older writer: no family ids
    assert load_family_ids(path) == {}
    assert load_family_ids(path.with_name("missing.json")) == {}


@pytest.mark.parametrize(
    "bad", [[], {"ipv5": "00" * 20}, {"ipv4": "00" * 19}, {"ipv4": 3}, "x"], ids=str
)
def test_bad_family_ids_are_a_decode_error(tmp_path: Path, bad: object) -> None:
    path = tmp_path / "dht.json"
    path.write_text(
        json.dumps({"version": 1, "node_id": "00" * 20, "nodes": [], "family_ids": bad})
    )
    with pytest.raises(DecodeError):
        load_state(path)
    with pytest.raises(DecodeError):
        load_family_ids(path)


async def test_a_dual_stack_node_restarts_with_each_familys_id(tmp_path: Path) -> None:
    path = tmp_path / "dht.json"
    new6 = bep42.node_id_for_ip(EXT6, random.Random(3))
    with trio.fail_after(20):
        async with open_dht_node([("127.0.0.1", 0), ("::1", 0)], state_file=path) as dht:
            v4, v6 = (s.node for s in dht.services)
            assert v4.node_id == v6.node_id  # a fresh node: one random ID
            assert v4.config.regenerate_id
            assert v6.config.regenerate_id
            first = v4.node_id
            v6.change_id(new6, trio.current_time())  # as a vote for EXT6 would
        assert load_family_ids(path) == {"ipv4": first, "ipv6": new6}
        async with open_dht_node([("127.0.0.1", 0), ("::1", 0)], state_file=path) as dht:
            assert [s.node.node_id for s in dht.services] == [first, new6]
            assert dht.node_id == first
        async with open_dht_node([("::1", 0)], state_file=path) as dht:
            assert dht.node_id == new6  # an IPv6-only restart takes the IPv6 ID
        async with open_dht_node(("127.0.0.1", 0), state_file=path, node_id=ID) as dht:
            assert dht.node_id == ID  # a given ID wins and is kept
            assert not dht.service.node.config.regenerate_id
