"""`DHTNode`: the BEP 5 DHT node as a sans-IO datagram engine.

Theory of operation
-------------------
Inputs are datagrams (``receive_datagram``), commands (``bootstrap``, ``get_peers``,
``announce``, ``find_node``, ``ping``, ``add_node``; BEP 44/33/51 ``get_item``,
``put_item``, ``scrape``, ``sample`` from `dht/extensions.py`) and time (``handle_timer``).
Outputs are datagrams (``datagrams_to_send``), events (``next_event``) and one
deadline (``get_timer``). Every input method may queue datagrams: the driver calls
``datagrams_to_send()`` after each one, and ``handle_timer`` at ``get_timer()``.

The node composes the pure parts: `RoutingTable` (who we know), `Lookup` (which
node to ask next), `TokenManager` (announce tokens), `PeerStore` (what was
announced to us), `RateLimiter` (how much work a source IP may cause) and
`TransactionTable` (our outstanding queries). A reply is only accepted from the
address we asked and with the rng-drawn id we sent; each query has a deadline,
and on expiry the routing table hears ``failed(addr)``, by address, never by the
id we expected (that id may be a third party's lie).

Serving (BEP 5 "DHT Queries") lives in `serving.QueryServer`: the node counts a
query, lets the routing table hear of its sender and hands it over. Malformed
queries get a 203 (204 for unknown methods) when ``t`` was readable.

Dual stack (BEP 32): one engine per address family, each with its own table, tokens
and peer store, since the IPv4 and IPv6 DHTs are separate networks. `set_sibling`
links the engine of the other family, read-only, so that a find_node/get_peers whose
``want`` asks for ``n4``/``n6`` gets the closest nodes of each family asked for, from
the table that holds them. Without ``want`` a reply carries the querier's own family.
While the sibling's table holds fewer than k nodes, our lookups ask for both families
and report the other family's contacts as `OtherFamilyNodes` for the driver to hand
over: a dual-stack node bootstrapped through IPv4 routers alone still joins the IPv6
DHT.

Read-only mode (BEP 43): our queries carry ``ro=1`` and we answer nothing. Nodes
whose queries carry ``ro=1`` are answered but never enter our table.

Lookups and bootstrap (the job queue, driving each `Lookup`) are the
`lookup_driver.LookupDriver` mixin.

Retransmission: a query to a node believed alive (it has a measured RTT, or it is
a bootstrap address whose id we do not know yet) that got no answer within
``clamp(retransmit_factor * rtt, retransmit_min, retransmit_max)`` (``retransmit_unknown``
without an RTT) is sent once more, byte for byte: same ``t``, same deadline. This
lives in the transaction layer, so a lookup never sees it except as a later reply,
and its "never ask a node twice" property is untouched. Same ``t`` means a reply to
either copy matches; since we cannot tell which copy it answers, a retransmitted
query yields no RTT sample (Karn's algorithm). Nodes with no RTT learned from
others' replies are not retransmitted to: about half of them are dead, and the
lookup's soft timeout already moves on to another node.

IP filter (`set_ip_filter`, a predicate such as `IPFilter.blocks`): a datagram from a
blocked address is dropped before it is decoded (one lookup per datagram, counted as
``filtered``), so a blocked node gets no answer and never enters the routing table or
a replacement cache; blocked contacts and peers in replies are dropped before a lookup
sees them, and no query is ever sent to a blocked address (one that is asked anyway,
e.g. by `sample`, just times out). Setting a filter also evicts the nodes it blocks.

Invariant: ``receive_datagram`` never raises on remote input; undecodable or
unexpected datagrams are counted in ``statistics()`` and dropped.
"""

from __future__ import annotations

import collections
from dataclasses import replace
from typing import TYPE_CHECKING

from . import bep42
from .config import DHTConfig, DHTStats
from .events import (
    DHTEvent,
    ExternalAddressVoted,
    LookupFinished,
    NodeAdded,
    OtherFamilyNodes,
    PeersFound,
    QueryTimedOut,
)
from .fast_serving import HotPath
from .jobs import JobKind, LookupJob, Purpose, PutProgress, Txn
from .krpc import (
    Error,
    KRPCDecodeError,
    PingQuery,
    Query,
    Response,
    decode_message,
    encode_message,
)
from .lookup_driver import LookupDriver
from .routing import Added, Pending, RoutingTable
from .serving import CLOSEST, QueryServer, ServerConfig
from .transactions import TransactionTable

if TYPE_CHECKING:
    import random
    from collections.abc import Callable

    from .compact import Addr, NodeInfo
    from .lookup import Lookup
    from .routing import InsertResult

__all__ = ["DHTConfig", "DHTNode", "DHTStats"]


class DHTNode(LookupDriver):
    """A Mainline DHT node engine (see the module docstring).

    Args:
        node_id: our 20-byte id (use `bep42.node_id_for_ip` once the external IP is known).
        rng: the only entropy source: transaction ids, token secrets, refresh targets.
        now: creation time.
        config: policy; defaults to `DHTConfig()`.
    """

    def __init__(
        self,
        node_id: bytes,
        rng: random.Random,
        now: float,
        config: DHTConfig | None = None,
    ) -> None:
        self.config = cfg = config if config is not None else DHTConfig()
        self.node_id = bytes(node_id)
        self._rng = rng
        self.table = RoutingTable(
            self.node_id, k=cfg.k, now=now, restrict_ips=cfg.restrict_ips, rng=rng
        )
        self._out: list[tuple[bytes, Addr]] = []
        self._events: collections.deque[DHTEvent] = collections.deque()
        self._counts: collections.Counter[str] = collections.Counter()
        self.server = QueryServer(
            self.node_id,
            self.table,
            ServerConfig(cfg.read_only, cfg.amplification, cfg.ipv6, cfg.version),
            rng,
            now,
            rate=cfg.rate,
            burst=cfg.burst,
            peer_store=cfg.peer_store,
            items=cfg.items,
            sample_interval=cfg.sample_interval,
            out=self._out,
            events=self._events,
            counts=self._counts,
        )
        # The hot BEP 5 queries skip the decoder and the dataclasses (IPv4 only).
        self._hot = None if cfg.ipv6 else HotPath(self.server, self._learn_querier)
        self.tokens = self.server.tokens
        self.peer_store = self.server.peer_store
        self._txns: TransactionTable[Txn] = TransactionTable(rng)
        self._pinging: set[Addr] = set()
        self._jobs: dict[int, LookupJob] = {}
        self._puts: dict[int, tuple[PutProgress, LookupFinished]] = {}
        self._samples: dict[int, tuple[bytes, float]] = {}  # lookup id -> (target, sent)
        self._next_lookup_id = 1
        self._bootstrap_addrs: list[Addr] = []
        self._bootstrapping = False  # a bootstrap runs or waits to retry: queue lookups
        self._queue: collections.deque[int] = collections.deque()  # lookups not yet started
        self._active = 0
        self._in_launch = False
        self._bootstrapped = False
        self._backoff = cfg.bootstrap_backoff
        self._bootstrap_retry_at: float | None = None
        self._first_retry = True
        self._bootstrap_id = 0
        self._maintenance_at = now + cfg.maintenance_interval
        self._votes: collections.OrderedDict[str, str] = collections.OrderedDict()
        self.external_ip: str | None = None
        self._sibling: DHTNode | None = None
        self._blocked: Callable[[str], bool] | None = None

    # ---- driver verbs ---------------------------------------------------------------

    def datagrams_to_send(self) -> list[tuple[bytes, Addr]]:
        """Drain the datagrams queued by earlier calls."""
        out = self._out[:]
        self._out.clear()  # the list is shared with the server: empty it in place
        return out

    def next_event(self) -> DHTEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """When `handle_timer` must next be called."""
        times = [j.wake for j in self._jobs.values() if j.wake is not None]
        times.append(self._maintenance_at)
        times.extend(
            t for t in (self._txns.next_deadline(), self._bootstrap_retry_at) if t is not None
        )
        resend = self._txns.next_resend()
        if resend is not None:
            times.append(resend)
        return min(times)

    def handle_timer(self, now: float) -> None:
        """Expire transactions, advance lookups, retry bootstrap, refresh buckets.

        Call `datagrams_to_send()` afterwards.
        """
        self._retransmit_due(now)
        for addr, txn in self._txns.pop_expired(now):
            self._on_timeout(addr, txn, now)
        for lookup_id, job in list(self._jobs.items()):
            if job.wake is not None and job.wake <= now:
                self._drive(lookup_id, now)
        if self._bootstrap_retry_at is not None and self._bootstrap_retry_at <= now:
            self._bootstrap_retry_at = None
            self._start_bootstrap(now)
        if self._maintenance_at <= now:
            self._maintenance_at = now + self.config.maintenance_interval
            self.peer_store.expire(now)
            self.server.items.expire(now)
            if self._bootstrapped and len(self.table):
                for target in self.table.buckets_to_refresh(now):
                    self._new_job(JobKind.REFRESH, target, now)

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        """Handle one datagram from `addr`. Call `datagrams_to_send()` afterwards.

        Never raises on remote input: malformed datagrams are counted and dropped, with
        a KRPC error reply where BEP 5 owes one.
        """
        if self._blocked is not None and self._blocked(addr[0]):
            self._counts["filtered"] += 1  # no answer, no table entry, not even a decode
            return
        hot = self._hot
        if hot is not None and hot.serve(data, addr, now):
            return
        try:
            msg = decode_message(data)
        except KRPCDecodeError as exc:
            self._counts["malformed"] += 1
            reply = exc.reply
            if reply is not None and self.server.may_answer(addr, now):
                self.server.send_error(reply.t, reply.code, reply.message, addr)
            return
        if isinstance(msg, Response):
            self._on_response(msg, addr, now)
        elif isinstance(msg, Error):
            self._on_error(msg, addr, now)
        else:
            self._on_query(msg, addr, len(data), now)

    # ---- commands -------------------------------------------------------------------

    def bootstrap(self, addrs: list[Addr], now: float) -> int:
        """Join the network through `addrs`; returns the bootstrap lookup's id."""
        self._bootstrap_addrs = list(addrs)
        self._backoff = self.config.bootstrap_backoff
        self._first_retry = True
        return self._start_bootstrap(now)

    def add_node(self, addr: Addr, now: float) -> None:
        """Ping `addr`; if it answers it enters the table (BEP 5 PORT message handling)."""
        self.ping(addr, now)

    def ping(self, addr: Addr, now: float, node_id: bytes | None = None) -> None:
        if addr in self._pinging or self._is_blocked(addr):
            return
        self._pinging.add(addr)
        msg = PingQuery(b"", self.node_id, self.config.read_only, self.config.version)
        self._send_query(msg, addr, now, Purpose.PING, node_id)

    def find_node(self, target: bytes, now: float) -> int:
        """Start a find_node lookup; returns its id (see `LookupFinished`)."""
        return self._new_job(JobKind.FIND_NODE, bytes(target), now)

    def get_peers(self, info_hash: bytes, now: float, *, noseed: bool = False) -> int:
        """Start a get_peers lookup; peers arrive as `PeersFound` events.

        `noseed` (BEP 33): we are a seed; the queries carry ``noseed=1`` so that nodes
        leave seeds out of their ``values``.
        """
        job = LookupJob(JobKind.GET_PEERS, bytes(info_hash))
        job.noseed = noseed
        return self._add_job(job, now)

    def announce(
        self,
        info_hash: bytes,
        port: int,
        now: float,
        implied_port: bool = False,
        *,
        seed: bool = False,
    ) -> int:
        """get_peers, then announce_peer to the closest token holders (`AnnounceSent`).

        `seed` sets BEP 33's flag: we have the whole torrent. The lookup's get_peers
        then carry ``noseed=1`` too, as libtorrent's do: a seed wants non-seeds.
        """
        if not 0 <= port <= 0xFFFF or (port == 0 and not implied_port):
            raise ValueError(f"bad port {port}")
        job = LookupJob(JobKind.ANNOUNCE, bytes(info_hash), port=port, implied_port=implied_port)
        job.seed = job.noseed = seed
        return self._add_job(job, now)

    def set_ip_filter(self, blocked: Callable[[str], bool] | None) -> None:
        """Ignore every address for which ``blocked(ip)`` is true (e.g. `IPFilter.blocks`).

        Takes effect at once, also when replacing a filter (a reload): nodes now blocked
        leave the routing table and the replacement caches. None: no filter.
        """
        self._blocked = blocked
        if blocked is not None:
            self.table.drop_addresses(blocked)

    def _is_blocked(self, addr: Addr) -> bool:
        return self._blocked is not None and self._blocked(addr[0])

    def _unblocked_nodes(self, nodes: tuple[NodeInfo, ...]) -> tuple[NodeInfo, ...]:
        if self._blocked is None or not nodes:
            return nodes
        blocked = self._blocked
        return tuple([n for n in nodes if not blocked(n.addr[0])])

    def set_sibling(self, sibling: DHTNode | None) -> None:
        """Link the engine of the other address family (BEP 32 dual stack).

        Only its routing table is read, to answer ``want`` for the other family; each
        engine keeps its own socket, lookups, tokens and peer store.
        """
        if sibling is not None and sibling.config.ipv6 == self.config.ipv6:
            raise ValueError("the sibling must serve the other address family")
        self._sibling = sibling
        self.server.sibling = None if sibling is None else sibling.server

    @property
    def sibling(self) -> DHTNode | None:
        return self._sibling

    @property
    def bootstrap_addrs(self) -> tuple[Addr, ...]:
        """The addresses of the last `bootstrap` call (retries go through them again)."""
        return tuple(self._bootstrap_addrs)

    def _sibling_hungry(self) -> bool:
        """A sibling is linked and its table holds fewer than k nodes."""
        sibling = self._sibling
        return sibling is not None and len(sibling.table) < self.config.k

    def statistics(self, now: float | None = None) -> DHTStats:
        c = self._counts
        return DHTStats(
            routing=self.table.statistics(now),
            lookups=self._active,
            queued_lookups=len(self._queue),
            transactions=len(self._txns),
            bootstrapped=self._bootstrapped,
            queries_received=c["queries"],
            responses_received=c["responses"],
            malformed=c["malformed"],
            rate_limited=c["rate_limited"],
            unsolicited=c["unsolicited"],
            errors_sent=c["errors_sent"],
            timeouts=c["timeouts"],
            peers_stored=self.peer_store.peer_count,
            info_hashes_stored=len(self.peer_store),
            external_ip=self.external_ip,
            retransmits=c["retransmits"],
            items_stored=len(self.server.items),
            filtered=c["filtered"],
        )

    # ---- serving queries (answers: serving.QueryServer) ------------------------------

    def _on_query(self, msg: Query, addr: Addr, size: int, now: float) -> None:
        self._counts["queries"] += 1
        server = self.server
        if not server.may_answer(addr, now):
            return
        if not msg.read_only:  # BEP 43: read-only nodes must not enter routing tables
            self._learn_querier(msg.node_id, addr, now)
        server.answer(msg, addr, size, now)

    def _learn_querier(self, node_id: bytes, addr: Addr, now: float) -> None:
        """A querier was heard: BEP 42 check, table insert (a full bucket: a ping)."""
        verified = bep42.is_valid_node_id(addr[0], node_id)
        self._learned(
            self.table.heard_from(node_id, addr, now, responded=False, verified=verified), now
        )

    # ---- our queries and their outcomes ----------------------------------------------

    def _send_query(
        self,
        msg: Query,
        addr: Addr,
        now: float,
        purpose: Purpose,
        node_id: bytes | None = None,
        lookup_id: int | None = None,
    ) -> None:
        """Send `msg` with a fresh transaction id (its own ``t`` is a placeholder)."""
        cfg = self.config
        timeout = cfg.lookup.hard_timeout if purpose is Purpose.LOOKUP else cfg.query_timeout
        txn = Txn(msg.method, purpose, now, node_id, lookup_id)
        t = self._txns.add(addr, txn, now + timeout)
        if self._is_blocked(addr):
            return  # never sent: it times out like a dead node's (see "IP filter")
        data = encode_message(replace(msg, t=t))
        self._out.append((data, addr))
        delay = self._retransmit_delay(addr, node_id)
        if delay is not None and delay < timeout:
            self._txns.schedule_resend(addr, t, now + delay, data)

    def _retransmit_delay(self, addr: Addr, node_id: bytes | None) -> float | None:
        """How long to wait before resending a query to `addr`; None: never resend."""
        cfg = self.config
        if cfg.retransmit_factor <= 0:
            return None
        rtt = self.table.rtt(addr)
        if rtt is None:
            # Unknown id (bootstrap address, add_node): the only way in, worth a resend.
            return cfg.retransmit_unknown if node_id is None else None
        return min(max(cfg.retransmit_factor * rtt, cfg.retransmit_min), cfg.retransmit_max)

    def _retransmit_due(self, now: float) -> None:
        for addr, datagram, txn in self._txns.pop_resends(now):
            self._out.append((datagram, addr))
            txn.resent = True
            self._counts["retransmits"] += 1

    def _on_response(self, msg: Response, addr: Addr, now: float) -> None:
        txn = self._txns.pop(addr, msg.t)
        if txn is None:
            self._counts["unsolicited"] += 1
            return
        self._counts["responses"] += 1
        if txn.purpose is Purpose.PING:
            self._pinging.discard(addr)
        elif txn.purpose is Purpose.PUT and txn.lookup_id is not None:
            self._put_outcome(txn.lookup_id, addr)
        elif txn.purpose is Purpose.SAMPLE and txn.lookup_id is not None:
            self._sample_outcome(txn.lookup_id, addr, now, msg)
        known = self.table.get_by_addr(addr)
        if known is not None and known.node_id != msg.node_id:
            # Another id answers at that address now: the node we knew there is gone.
            self.table.failed(addr, now)
        verified = bep42.is_valid_node_id(addr[0], msg.node_id)
        rtt = None if txn.resent else now - txn.sent_at  # Karn: ambiguous after a resend
        result = self.table.heard_from(
            msg.node_id, addr, now, responded=True, rtt=rtt, verified=verified
        )
        self._learned(result, now)
        if msg.ip is not None:
            self._vote(msg.ip[0], addr[0], now)
        job = self._jobs.get(txn.lookup_id) if txn.lookup_id is not None else None
        if job is not None and job.lookup is not None and txn.lookup_id is not None:
            self._lookup_response(txn.lookup_id, job, job.lookup, msg, addr, verified, now)
        if self._queue and self._bootstrapping and len(self.table):
            # The first contact is enough to start queued lookups; after the bootstrap
            # lookup took in this reply, so they are seeded with its nodes too.
            self._launch_queued(now)

    def _lookup_response(
        self,
        lookup_id: int,
        job: LookupJob,
        lookup: Lookup,
        msg: Response,
        addr: Addr,
        verified: bool,
        now: float,
    ) -> None:
        nodes = self._unblocked_nodes(msg.nodes6 if self.config.ipv6 else msg.nodes)
        other = self._unblocked_nodes(msg.nodes if self.config.ipv6 else msg.nodes6)
        if other and self._sibling_hungry():
            self._events.append(OtherFamilyNodes(other[:CLOSEST]))
        token = msg.token
        if self.config.enforce_bep42 and not verified:
            token = None  # BEP 42 "Enforcement": not eligible as a storage target
        values = msg.values
        if self._blocked is not None and values:
            values = tuple([v for v in values if not self._blocked(v[0])])
        fresh = lookup.on_response(addr, msg.node_id, nodes, values, token, now)
        self._fold_reply(job, msg)
        if fresh and job.job in (JobKind.GET_PEERS, JobKind.ANNOUNCE):
            hops = lookup.hops_of(addr)
            self._events.append(PeersFound(lookup_id, job.target, tuple(fresh), hops))
        self._drive(lookup_id, now)

    def _on_error(self, msg: Error, addr: Addr, now: float) -> None:
        txn = self._txns.pop(addr, msg.t)
        if txn is None:
            self._counts["unsolicited"] += 1
            return
        self._pinging.discard(addr)
        if txn.lookup_id is not None:
            self._query_failed(txn, addr, now, msg.code)
        job = self._jobs.get(txn.lookup_id) if txn.lookup_id is not None else None
        if job is not None and job.lookup is not None and txn.lookup_id is not None:
            job.lookup.on_failure(addr, now)
            self._drive(txn.lookup_id, now)

    def _on_timeout(self, addr: Addr, txn: Txn, now: float) -> None:
        self._counts["timeouts"] += 1
        self._pinging.discard(addr)
        # By address, never by the id we expected: lookup candidates' ids come from
        # other nodes' replies, and a liar pairing a real id with a dead address must
        # not be able to get that id's real entry marked as failed.
        self.table.failed(addr, now)
        self._events.append(QueryTimedOut(addr, txn.method, txn.node_id))
        if txn.lookup_id is not None:
            self._query_failed(txn, addr, now, None)
        # Lookups expire their own deadlines in next(now); wake them to notice.
        if txn.lookup_id is not None and txn.lookup_id in self._jobs:
            self._drive(txn.lookup_id, now)

    def _learned(self, result: InsertResult, now: float) -> None:
        if isinstance(result, Added):
            self._events.append(NodeAdded(result.entry.node_id, result.entry.addr))
        elif isinstance(result, Pending):
            # BEP 5: a full bucket pings its least recently seen questionable node.
            self.ping(result.ping.addr, now, result.ping.node_id)

    def change_id(self, node_id: bytes, now: float) -> None:
        """Adopt a new node id (e.g. BEP 42-valid for our external IP).

        The routing table is rebuilt around the new id: buckets depend on it. Every
        node we knew is pinged and re-enters the table when it answers. Call
        `datagrams_to_send()` afterwards.
        """
        if len(node_id) != 20:
            raise ValueError("node id must be 20 bytes")
        known = list(self.table.entries())
        cfg = self.config
        self.node_id = bytes(node_id)
        self.table = RoutingTable(
            self.node_id, k=cfg.k, now=now, restrict_ips=cfg.restrict_ips, rng=self._rng
        )
        self.server.node_id, self.server.table = self.node_id, self.table
        for entry in known:
            self.ping(entry.addr, now, entry.node_id)

    def _vote(self, ip: str, voter: str, now: float) -> None:
        """BEP 42: count distinct responders reporting our external IP (one vote each)."""
        self._votes.pop(voter, None)
        self._votes[voter] = ip
        if len(self._votes) > 4 * self.config.ip_votes:
            self._votes.popitem(last=False)
        tally = collections.Counter(self._votes.values())
        best, count = tally.most_common(1)[0]
        if count >= self.config.ip_votes and best != self.external_ip:
            self.external_ip = best
            valid = bep42.is_valid_node_id(best, self.node_id)
            self._events.append(ExternalAddressVoted(best, valid))
            if not valid and self.config.regenerate_id:
                self.change_id(bep42.node_id_for_ip(best, self._rng), now)
