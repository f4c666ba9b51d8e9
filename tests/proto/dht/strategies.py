"""Hypothesis strategies for DHT values: addresses, node infos and KRPC messages."""

from __future__ import annotations

import ipaddress

from hypothesis import strategies as st

from shoal.dht.compact import Addr, NodeInfo
from shoal.dht.krpc import (
    AnnouncePeerQuery,
    Error,
    FindNodeQuery,
    GetPeersQuery,
    Message,
    PingQuery,
    Response,
)

ids20 = st.binary(min_size=20, max_size=20)
ports = st.integers(0, 0xFFFF)
ipv4s = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
ipv6s = st.integers(0, 2**128 - 1).map(lambda n: ipaddress.IPv6Address(n).compressed)
addrs_v4: st.SearchStrategy[Addr] = st.tuples(ipv4s, ports)
addrs_v6: st.SearchStrategy[Addr] = st.tuples(ipv6s, ports)
addrs = addrs_v4 | addrs_v6
nodes_v4 = st.builds(NodeInfo, ids20, addrs_v4)
nodes_v6 = st.builds(NodeInfo, ids20, addrs_v6)
tids = st.binary(max_size=6)
versions = st.none() | st.binary(min_size=0, max_size=6)
wants = st.lists(st.sampled_from([b"n4", b"n6"]), max_size=2, unique=True).map(tuple)


def queries() -> st.SearchStrategy[Message]:
    ro = st.booleans()
    return st.one_of(
        st.builds(PingQuery, tids, ids20, ro, versions),
        st.builds(FindNodeQuery, tids, ids20, ids20, wants, ro, versions),
        st.builds(GetPeersQuery, tids, ids20, ids20, wants, ro, versions),
        st.builds(
            AnnouncePeerQuery,
            tids,
            ids20,
            ids20,
            st.integers(1, 0xFFFF),
            st.binary(max_size=20),
            st.booleans(),
            ro,
            versions,
        ),
    )


def responses() -> st.SearchStrategy[Message]:
    return st.builds(
        Response,
        tids,
        ids20,
        nodes=st.lists(nodes_v4, max_size=8).map(tuple),
        nodes6=st.lists(nodes_v6, max_size=8).map(tuple),
        values=st.lists(addrs, max_size=20).map(tuple),
        token=st.none() | st.binary(max_size=20),
        ip=st.none() | addrs,
        version=versions,
    )


def errors() -> st.SearchStrategy[Message]:
    return st.builds(Error, tids, st.integers(-(2**40), 2**40), st.text(max_size=40), versions)


def messages() -> st.SearchStrategy[Message]:
    return queries() | responses() | errors()
