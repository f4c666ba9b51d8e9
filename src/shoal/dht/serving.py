"""`QueryServer`: the half of a DHT node that answers other nodes' queries.

Theory of operation
-------------------
`DHTNode` receives every datagram; for a query it counts it, asks `may_answer`
(read-only mode, per-IP rate limit), lets the routing table hear of the sender,
and hands the query here. The server owns what only serving needs: announce
tokens, the peer store and the rate limiter. Each query type is answered by a
small method; the BEP extensions (44 items, 33 scrape, 51 samples) keep their
logic in their own pure modules and are only dispatched from here.

Every reply carries our id, the requester's address as ``ip`` (BEP 42) and our
version ``v``. find_node and get_peers return up to 8 closest nodes; get_peers
adds a token and at most `MAX_VALUES` peers, fewer if the reply would exceed
`amplification` times the query (so spoofed queries cannot turn us into a traffic
amplifier). announce_peer is stored only with a valid token, at the UDP source IP
(and source port with ``implied_port``). A BEP 44 get reply keeps its item whole and
drops its farthest nodes to stay within `MAX_GET_REPLY` (one datagram).

Output goes to the node's datagram list and event deque (shared objects), so the
node's ``datagrams_to_send``/``next_event`` drain both halves at once.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import TYPE_CHECKING, Final, Protocol

from .bep44 import Item, ItemError, check_item
from .events import AnnounceReceived
from .item_store import ItemStore, ItemStoreConfig
from .krpc import (
    AnnouncePeerQuery,
    Error,
    ErrorCode,
    FindNodeQuery,
    GetPeersQuery,
    GetQuery,
    PingQuery,
    PutQuery,
    Response,
    ResponseExt,
    SampleInfohashesQuery,
    encode_message,
    encode_response_capped,
)
from .peer_store import MAX_VALUES, PeerStore, PeerStoreConfig
from .ratelimit import RateLimiter
from .sampling import SampleCache
from .scrape import Bloom
from .tokens import TokenManager

if TYPE_CHECKING:
    import collections

    from .compact import Addr, NodeInfo
    from .events import DHTEvent
    from .krpc import Query
    from .routing import RoutingTable

__all__ = ["CLOSEST", "MAX_GET_REPLY", "HasTable", "QueryServer", "ServerConfig"]

#: BEP 5: find_node/get_peers return "the K (8) closest good nodes".
CLOSEST: Final = 8
#: Largest reply we send to a BEP 44 get: a UDP payload that fits an Ethernet frame over
#: IPv6 (1500 - 40 - 8); libtorrent reads datagrams into a 1500-byte buffer, and IP
#: fragments are often dropped. See `_answer_get`.
MAX_GET_REPLY: Final = 1452
#: BEP 33 filters are reused this long (seconds), for this many swarms (see `_scrape`).
SCRAPE_CACHE_TTL: Final = 60.0
SCRAPE_CACHE_SIZE: Final = 256
_ITEM_ERRORS: Final = {
    ItemError.BAD_TOKEN: "Protocol Error: bad token",
    ItemError.VALUE_TOO_BIG: "message (v field) too big",
    ItemError.INVALID_SIGNATURE: "invalid signature",
    ItemError.SALT_TOO_BIG: "salt (salt field) too big",
    ItemError.CAS_MISMATCH: "the CAS hash mismatched, re-read value and try again",
    ItemError.SEQ_TOO_LOW: "sequence number less than current",
}


class HasTable(Protocol):
    """What `QueryServer.sibling` must offer: the other family's routing table."""

    @property
    def table(self) -> RoutingTable: ...


class ServerConfig:
    """The serving policy, read from the node's `DHTConfig` (see there)."""

    __slots__ = ("amplification", "ipv6", "read_only", "version")

    def __init__(
        self, read_only: bool, amplification: int, ipv6: bool, version: bytes | None
    ) -> None:
        self.read_only = read_only
        self.amplification = amplification
        self.ipv6 = ipv6
        self.version = version


class QueryServer:
    """Answers queries for one node (see the module docstring).

    Args:
        node_id: our id; the node updates `node_id` and `table` when it changes id.
        table: the routing table closest nodes are drawn from.
        out: the node's outgoing datagram list (appended to).
        events: the node's event deque (appended to).
        counts: the node's counters (``rate_limited``, ``errors_sent``).
    """

    def __init__(
        self,
        node_id: bytes,
        table: RoutingTable,
        config: ServerConfig,
        rng: random.Random,
        now: float,
        *,
        rate: float,
        burst: float,
        peer_store: PeerStoreConfig,
        items: ItemStoreConfig | None = None,
        sample_interval: int | None = None,
        out: list[tuple[bytes, Addr]],
        events: collections.deque[DHTEvent],
        counts: collections.Counter[str],
    ) -> None:
        self.node_id = node_id
        self.table = table
        self.config = config
        self.tokens = TokenManager(rng, now)
        # Which stored peers (info-hashes) a reply lists is no secret, so the samples
        # come from a Mersenne Twister seeded once from `rng`: in production that is a
        # SystemRandom, each draw a system call, and 50 values out of a big swarm cost
        # ~200 µs per get_peers (30 µs this way).
        self._rng = random.Random(rng.getrandbits(64))
        self.peer_store = PeerStore(peer_store)
        self.items = ItemStore(items)
        self.samples = SampleCache() if sample_interval is None else SampleCache(sample_interval)
        self._scrapes: dict[bytes, tuple[float, ResponseExt]] = {}  # LRU, oldest first
        self._limiter = RateLimiter(rate, burst)
        self._out = out
        self._events = events
        self._counts = counts
        #: The same shared objects, for `fast_serving.HotPath` (which answers beside us).
        self.out, self.events, self.counts, self.rng = out, events, counts, self._rng
        #: BEP 32 dual stack: the other family's engine (anything with a ``table``).
        self.sibling: HasTable | None = None

    def may_answer(self, addr: Addr, now: float) -> bool:
        """Whether `addr` gets an answer now (read-only mode, per-IP rate limit)."""
        if self.config.read_only:
            return False  # BEP 43: read-only nodes do not respond to queries
        if not self._limiter.allow(addr[0], now):
            self._counts["rate_limited"] += 1
            return False
        return True

    def scrape_filters(self, info_hash: bytes, now: float) -> ResponseExt | None:
        """The BEP 33 ``BFsd``/``BFpe`` of a scrape reply (cached), for the fast path."""
        return self._scrape(info_hash, now)

    def answer(self, msg: Query, addr: Addr, size: int, now: float) -> None:
        """Queue the reply to `msg` (`size` is its datagram's length, for amplification caps)."""
        if isinstance(msg, PingQuery):
            self.reply(Response(msg.t, self.node_id, ip=addr, version=self.config.version), addr)
        elif isinstance(msg, FindNodeQuery):
            nodes, nodes6 = self.closest_nodes(msg.target, msg.want, now)
            resp = Response(
                msg.t, self.node_id, nodes, nodes6, ip=addr, version=self.config.version
            )
            self.reply(resp, addr)
        elif isinstance(msg, GetPeersQuery):
            self._answer_get_peers(msg, addr, size, now)
        elif isinstance(msg, AnnouncePeerQuery):
            self._answer_announce(msg, addr, now)
        elif isinstance(msg, GetQuery):
            self._answer_get(msg, addr, now)
        elif isinstance(msg, PutQuery):
            self._answer_put(msg, addr, now)
        else:
            self._answer_sample(msg, addr, now)

    def closest_nodes(
        self, target: bytes, want: tuple[bytes, ...], now: float
    ) -> tuple[tuple[NodeInfo, ...], tuple[NodeInfo, ...]]:
        """(nodes, nodes6) for a reply: the families `want` asks for (BEP 32).

        Without ``want`` (or with one naming no family we serve) the reply carries our
        own family. The other family's nodes come from `sibling`'s table: the engine
        of the other family in a dual-stack node, if one is linked.
        """
        v6 = self.config.ipv6
        dual = self.sibling is not None
        wants_v4 = b"n4" in want and (dual or not v6)
        wants_v6 = b"n6" in want and (dual or v6)
        if not (wants_v4 or wants_v6):
            wants_v4, wants_v6 = not v6, v6
        nodes = self._family_closest(target, False, now) if wants_v4 else ()
        nodes6 = self._family_closest(target, True, now) if wants_v6 else ()
        return nodes, nodes6

    def _family_closest(self, target: bytes, ipv6: bool, now: float) -> tuple[NodeInfo, ...]:
        owner = self if ipv6 == self.config.ipv6 else self.sibling
        if owner is None:
            return ()
        entries = owner.table.closest(target, CLOSEST, now=now)
        # Filtered anyway: a table could hold a contact of the other family (add_node).
        return tuple([e.info for e in entries if (":" in e.addr[0]) == ipv6])

    def _answer_get_peers(self, msg: GetPeersQuery, addr: Addr, size: int, now: float) -> None:
        token = self.tokens.issue(addr[0], msg.info_hash, now)
        nodes, nodes6 = self.closest_nodes(msg.info_hash, msg.want, now)
        family_v6 = ":" in addr[0]
        stored = self.peer_store.get(msg.info_hash, now, self._rng, MAX_VALUES, noseed=msg.noseed)
        peers = tuple([p for p in stored if (":" in p[0]) == family_v6])
        version = self.config.version
        ext = self._scrape(msg.info_hash, now) if msg.scrape else None
        resp = Response(msg.t, self.node_id, nodes, nodes6, peers, token, addr, version, ext)
        # Anti-amplification: values are cut so that the reply stays within
        # `amplification` times the size of the query.
        self._out.append((encode_response_capped(resp, self.config.amplification * size), addr))

    def _answer_announce(self, msg: AnnouncePeerQuery, addr: Addr, now: float) -> None:
        if not self.tokens.validate(msg.token, addr[0], msg.info_hash, now):
            self.send_error(msg.t, ErrorCode.PROTOCOL, "Protocol Error: bad token", addr)
            return
        # BEP 5: with implied_port, "the source port of the UDP packet should be used".
        peer = (addr[0], addr[1] if msg.implied_port else msg.port)
        self.peer_store.add(msg.info_hash, peer, now, seed=msg.seed)
        self._events.append(AnnounceReceived(msg.info_hash, peer))
        self.reply(Response(msg.t, self.node_id, ip=addr, version=self.config.version), addr)

    def _scrape(self, info_hash: bytes, now: float) -> ResponseExt | None:
        """BEP 33: the seed and peer filters, only when we store the swarm.

        Building them costs two SHA-1 per stored IP, so they are kept for
        `SCRAPE_CACHE_TTL` seconds (a scrape is an estimate; a minute-old one is as
        good; a swarm that expired meanwhile is reported until then) in a small LRU of
        `SCRAPE_CACHE_SIZE` swarms.
        """
        cache = self._scrapes
        hit = cache.pop(info_hash, None)
        if hit is not None and hit[0] > now:
            cache[info_hash] = hit
            return hit[1]
        ips = self.peer_store.scrape_ips(info_hash, now)
        if ips is None:
            return None
        seeds, peers = ips
        ext = ResponseExt(bf_seeds=bytes(Bloom.of(seeds)), bf_peers=bytes(Bloom.of(peers)))
        cache[info_hash] = (now + SCRAPE_CACHE_TTL, ext)
        if len(cache) > SCRAPE_CACHE_SIZE:
            del cache[next(iter(cache))]
        return ext

    def _answer_get(self, msg: GetQuery, addr: Addr, now: float) -> None:
        """BEP 44 ``get``: a write token, closest nodes and the item if it is newer."""
        token = self.tokens.issue(addr[0], msg.target, now)
        nodes, nodes6 = self.closest_nodes(msg.target, msg.want, now)
        item = self.items.get(msg.target, now)
        ext = None
        if item is not None and item.key is None:
            ext = ResponseExt(value=item.value)
        elif item is not None and msg.seq is not None and item.seq <= msg.seq:
            ext = ResponseExt(seq=item.seq)  # "k, v and sig SHOULD be omitted"
        elif item is not None:
            ext = ResponseExt(value=item.value, key=item.key, seq=item.seq, sig=item.sig)
        resp = Response(
            msg.t, self.node_id, nodes, nodes6, (), token, addr, self.config.version, ext
        )
        self._out.append((_fit_get_reply(resp), addr))

    def _answer_put(self, msg: PutQuery, addr: Addr, now: float) -> None:
        """BEP 44 ``put``: token, sizes, signature, then seq/cas against what is stored."""
        item = Item(msg.value, msg.key, msg.salt, msg.seq, msg.sig)
        error = check_item(item)
        if error is None and not self.tokens.validate(msg.token, addr[0], item.target, now):
            error = ItemError.BAD_TOKEN
        if error is None:
            error = self.items.put(item, now, msg.cas)
        if error is not None:
            self.send_error(msg.t, error, _ITEM_ERRORS[error], addr)
            return
        self.reply(Response(msg.t, self.node_id, ip=addr, version=self.config.version), addr)

    def _answer_sample(self, msg: SampleInfohashesQuery, addr: Addr, now: float) -> None:
        """BEP 51: up to 20 stored info-hashes, how many we store, when to ask again."""
        samples, num, interval = self.samples.samples(self.peer_store, now, self._rng)
        nodes, nodes6 = self.closest_nodes(msg.target, msg.want, now)
        ext = ResponseExt(samples=samples, interval=interval, num=num)
        version = self.config.version
        self.reply(
            Response(msg.t, self.node_id, nodes, nodes6, ip=addr, version=version, ext=ext), addr
        )

    def reply(self, resp: Response, addr: Addr) -> None:
        """Queue `resp`, which carries the requester's address (BEP 42) and our version."""
        self._out.append((encode_message(resp), addr))

    def send_error(self, t: bytes, code: int, message: str, addr: Addr) -> None:
        self._counts["errors_sent"] += 1
        self._out.append((encode_message(Error(t, code, message, self.config.version)), addr))


def _fit_get_reply(resp: Response) -> bytes:
    """`resp` encoded within `MAX_GET_REPLY` bytes, dropping the farthest nodes if needed.

    A mutable item near BEP 44's 1,000-byte limit plus a key, signature, token and 8
    nodes of each family (26 and 38 bytes each) is about 1.8 kB, past one Ethernet
    frame. The item is what the requester asked for and cannot be cut; the nodes only
    help its lookup along and are ordered closest first, so the other family's list
    (the ``want`` extra) loses its tail first, then our family's. The value is at most
    1,000 bytes (the store refuses more), so what is left always fits.
    """
    data = encode_message(resp)
    nodes, nodes6 = list(resp.nodes), list(resp.nodes6)
    first, second = (nodes6, nodes) if resp.ip is None or ":" not in resp.ip[0] else (nodes, nodes6)
    while len(data) > MAX_GET_REPLY and (first or second):
        excess = len(data) - MAX_GET_REPLY
        cut = first if first else second
        drop = -(-excess // (38 if cut is nodes6 else 26))  # ceil: compact node info sizes
        del cut[max(0, len(cut) - drop) :]
        data = encode_message(replace(resp, nodes=tuple(nodes), nodes6=tuple(nodes6)))
    return data
