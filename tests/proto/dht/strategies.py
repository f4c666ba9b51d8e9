"""Hypothesis strategies for DHT values: addresses, node infos and KRPC messages."""

from __future__ import annotations

import ipaddress

from hypothesis import strategies as st

from shoal.bencoding import encode
from shoal.dht.compact import Addr, NodeInfo
from shoal.dht.krpc import (
    AnnouncePeerQuery,
    Error,
    FindNodeQuery,
    GetPeersQuery,
    GetQuery,
    Message,
    PingQuery,
    PutQuery,
    Response,
    ResponseExt,
    SampleInfohashesQuery,
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
#: BEP 44 values in their (canonical) bencoded form.
bencoded_values = st.recursive(
    st.integers(-(2**40), 2**40) | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.binary(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
).map(encode)
seqs = st.integers(0, 2**63 - 1)


def ext_queries() -> st.SearchStrategy[Message]:
    """BEP 44 get/put and BEP 51 sample_infohashes."""
    ro = st.booleans()
    immutable_put = st.builds(
        PutQuery,
        tids,
        ids20,
        st.binary(max_size=20),
        bencoded_values,
        read_only=ro,
        version=versions,
    )
    mutable_put = st.builds(
        PutQuery,
        tids,
        ids20,
        st.binary(max_size=20),
        bencoded_values,
        st.binary(min_size=32, max_size=32),
        st.binary(max_size=64),
        seqs,
        st.binary(min_size=64, max_size=64),
        st.none() | seqs,
        ro,
        versions,
    )
    return st.one_of(
        st.builds(GetQuery, tids, ids20, ids20, st.none() | seqs, wants, ro, versions),
        st.builds(SampleInfohashesQuery, tids, ids20, ids20, wants, ro, versions),
        immutable_put,
        mutable_put,
    )


def response_exts() -> st.SearchStrategy[ResponseExt | None]:
    blooms = st.none() | st.binary(min_size=256, max_size=256)
    return st.none() | st.builds(
        ResponseExt,
        value=st.none() | bencoded_values,
        key=st.none() | st.binary(min_size=32, max_size=32),
        seq=st.none() | seqs,
        sig=st.none() | st.binary(min_size=64, max_size=64),
        bf_seeds=blooms,
        bf_peers=blooms,
        samples=st.none() | st.lists(ids20, max_size=20).map(tuple),
        interval=st.none() | st.integers(0, 21600),
        num=st.none() | st.integers(0, 2**31),
    ).filter(lambda e: e != ResponseExt())


def queries() -> st.SearchStrategy[Message]:
    ro = st.booleans()
    return st.one_of(
        st.builds(PingQuery, tids, ids20, ro, versions),
        st.builds(FindNodeQuery, tids, ids20, ids20, wants, ro, versions),
        st.builds(
            GetPeersQuery, tids, ids20, ids20, wants, ro, versions, st.booleans(), st.booleans()
        ),
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
            st.booleans(),
        ),
        ext_queries(),
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
        ext=response_exts(),
    )


def errors() -> st.SearchStrategy[Message]:
    return st.builds(Error, tids, st.integers(-(2**40), 2**40), st.text(max_size=40), versions)


def messages() -> st.SearchStrategy[Message]:
    return queries() | responses() | errors()
