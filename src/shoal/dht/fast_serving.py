"""`HotPath`: the hot queries answered straight from the datagram, byte for byte as
the general path would answer them.

Theory of operation
-------------------
A busy node spends its CPU on get_peers, find_node, announce_peer and ping, and in
smaller shares on BEP 33 scrapes, BEP 51 ``sample_infohashes`` and BEP 44 ``get``.
The general path decodes each into a dataclass (`krpc.decode_message`), walks it
through `DHTNode._on_query` and `QueryServer.answer`, and builds a `Response`
dataclass for the encoder: a dozen objects and some forty calls per query, more than
the socket work around it. `HotPath.serve` takes the datagram itself:

1. `krpc_fast.parse_hot_query` recognises the canonical shape (or says "general
   path", before anything has changed);
2. the same policy steps as the general path, in the same order: count the query,
   `QueryServer.may_answer` (read-only mode, rate limit), let the routing table hear
   of the sender (the node's ``learn`` callback), then answer;
3. the reply is concatenated from pieces: the ``ip`` field per source address
   (cached), our id, the closest nodes, token, values, the ``t``/``v``/``y`` tail.
   The keys come in sorted order, so the bytes are the canonical encoding, the same
   as `krpc.encode_message` of the general path's `Response` (a differential test
   runs both paths on twin nodes and compares every datagram, event and counter).
   A BEP 44 ``get`` is only decoded here and answered by `QueryServer`, which owns
   its reply-size rules.

What it never takes: IPv6 (the node or the source), read-only senders (``ro``),
``want``, ``noseed``, an announce's ``seed``, ``get`` with ``seq``, ``put``, unknown
keys, anything malformed. Those are rare, and the general path knows their rules.

The closest nodes of a reply: when the target's bucket is full and known to be all
GOOD (the routing table's ``closest`` fast case, which a busy node hits almost
always), the reply lists exactly that bucket's entries nearest first.
`RoutingTable.closest_compact` keeps their compact forms with the bucket, so a reply
costs one sort of eight integers and a join.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from .compact import encode_nodes, encode_peer
from .events import AnnounceReceived
from .krpc import ErrorCode, _encode_value, hot_query_message
from .krpc_fast import FIND_NODE, GET, GET_PEERS, PING, SAMPLE, parse_hot_query
from .peer_store import MAX_VALUES
from .serving import CLOSEST

if TYPE_CHECKING:
    from collections.abc import Callable

    from .compact import Addr
    from .serving import QueryServer

__all__ = ["HotPath"]

#: Source addresses whose ``ip`` field is kept ready (a dict, emptied when full).
IP_CACHE_SIZE: Final = 8192


class HotPath:
    """Serves the canonical hot queries for one IPv4 node (see the module docstring).

    Args:
        server: the node's `QueryServer`: policy, tokens, peer store, output lists.
        learn: ``learn(node_id, addr, now)``, the node's "a querier was heard" step
            (BEP 42 check, routing-table insert, a ping for a full bucket).
    """

    def __init__(self, server: QueryServer, learn: Callable[[bytes, Addr, float], None]) -> None:
        self._server = server
        self._learn = learn
        version = server.config.version
        self._v = b"" if version is None else b"1:v%d:%s" % (len(version), version)
        self._ip: dict[Addr, bytes] = {}

    def serve(self, data: bytes, addr: Addr, now: float) -> bool:
        """Answer `data` if it is a canonical hot query from an IPv4 source.

        True: handled (answered, or dropped by the rate limit), with the reply queued
        on the node's datagram list. False: nothing was done or changed, take the
        general path. Never raises on remote input.
        """
        if type(data) is not bytes:
            return False
        hot = parse_hot_query(data)
        if hot is None or ":" in addr[0]:
            return False
        method, node_id, key, t, _, port, token, flag = hot
        server = self._server
        server.counts["queries"] += 1
        if not server.may_answer(addr, now):
            return True
        self._learn(node_id, addr, now)
        if method == GET:
            # BEP 44: decoded without the bencode walk, answered by the server.
            server.answer(hot_query_message(hot), addr, len(data), now)
            return True
        head = self._ip.get(addr)
        if head is None:
            head = self._ip_head(addr)
        # BEP 33's "BFpe"/"BFsd" sort before "id", so they go between the two.
        scrape = server.scrape_filters(key, now) if flag and method == GET_PEERS else None
        if scrape is not None:
            bf_seeds, bf_peers = scrape.bf_seeds or b"", scrape.bf_peers or b""
            head += b"4:BFpe%d:%s4:BFsd%d:%s" % (len(bf_peers), bf_peers, len(bf_seeds), bf_seeds)
        head += b"2:id20:" + server.node_id
        tail = b"e1:t%d:%s%s1:y1:re" % (len(t), t, self._v)
        if method == GET_PEERS:
            self._get_peers(key, addr, head, tail, len(data), now)
        elif method == SAMPLE:
            self._sample(key, addr, head, tail, now)
        elif method == FIND_NODE:
            nodes = self._nodes(key, now)
            if nodes:
                head += b"5:nodes%d:%s" % (len(nodes), nodes)
            server.out.append((head + tail, addr))
        elif method == PING:
            server.out.append((head + tail, addr))
        else:
            self._announce(key, addr, port, token, flag, head + tail, t, now)
        return True

    def _ip_head(self, addr: Addr) -> bytes:
        """``d``, the BEP 42 ``ip`` field for `addr` and the start of ``r`` (cached)."""
        cache = self._ip
        if len(cache) >= IP_CACHE_SIZE:
            cache.clear()
        head = cache[addr] = b"d2:ip6:" + encode_peer(addr) + b"1:rd"
        return head

    def _sample(self, target: bytes, addr: Addr, head: bytes, tail: bytes, now: float) -> None:
        """BEP 51, as `QueryServer._answer_sample`: keys ``interval``, ``nodes``, ``num``,
        ``samples`` in their sorted order."""
        server = self._server
        samples, num, interval = server.samples.samples(server.peer_store, now, server.rng)
        nodes = self._nodes(target, now)
        head += b"8:intervali%de" % interval
        if nodes:
            head += b"5:nodes%d:%s" % (len(nodes), nodes)
        joined = b"".join(samples)
        head += b"3:numi%de7:samples%d:%s" % (num, len(joined), joined)
        server.out.append((head + tail, addr))

    def _nodes(self, target: bytes, now: float) -> bytes:
        """The compact IPv4 nodes closest to `target`, as `QueryServer.closest_nodes`."""
        table = self._server.table
        nodes = table.closest_compact(target, CLOSEST, now)
        if nodes is not None:
            return nodes
        entries = table.closest(target, CLOSEST, now=now)
        return encode_nodes([e.info for e in entries if ":" not in e.addr[0]])

    def _get_peers(
        self, info_hash: bytes, addr: Addr, head: bytes, tail: bytes, size: int, now: float
    ) -> None:
        server = self._server
        token = server.tokens.issue(addr[0], info_hash, now)
        nodes = self._nodes(info_hash, now)
        if nodes:
            head += b"5:nodes%d:%s" % (len(nodes), nodes)
        head += b"5:token%d:%s" % (len(token), token)
        stored = server.peer_store.get(info_hash, now, server.rng, MAX_VALUES)
        if not stored:
            server.out.append((head + tail, addr))
            return
        # As `krpc.encode_response_capped`: the leading values that keep the reply
        # within `amplification` times the query (10 = "6:values", "l" and "e").
        room = server.config.amplification * size - len(head) - len(tail) - 10
        values = []
        for peer in stored:
            if ":" in peer[0]:
                continue
            value = _encode_value(peer)
            room -= len(value)
            if room < 0:
                break
            values.append(value)
        if values:
            head = b"".join((head, b"6:valuesl", *values, b"e"))
        server.out.append((head + tail, addr))

    def _announce(
        self,
        info_hash: bytes,
        addr: Addr,
        port: int,
        token: bytes,
        implied: bool,
        reply: bytes,
        t: bytes,
        now: float,
    ) -> None:
        server = self._server
        if not server.tokens.validate(token, addr[0], info_hash, now):
            server.send_error(t, ErrorCode.PROTOCOL, "Protocol Error: bad token", addr)
            return
        # BEP 5: with implied_port, "the source port of the UDP packet should be used".
        peer = (addr[0], addr[1] if implied else port)
        server.peer_store.add(info_hash, peer, now, seed=False)
        server.events.append(AnnounceReceived(info_hash, peer))
        server.out.append((reply, addr))
