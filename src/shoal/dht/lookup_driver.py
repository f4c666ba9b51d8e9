"""The lookup half of `DHTNode`: the job queue, driving each `Lookup`, and bootstrap.

Theory of operation
-------------------
A mixin of `DHTNode` (which owns the state it touches), split out of the engine
module to keep both under the size norm. Every lookup the node runs is a *job*
(`jobs.LookupJob`): commands add one with `_add_job`, which queues it; at most
`max_lookups` run at once, the rest wait in `_queue`, oldest first. `_drive` asks the
job's pure `Lookup` what to do next (query a node, wait, or finish) and sends the
query with the node's `_send_query`; replies come back through the node's
`_lookup_response`, which calls `_drive` again. `_finish` turns a finished lookup
into its events (and for an announce or a BEP 44 put, the follow-up queries).

Bootstrap: a find_node lookup for our own id, seeded with the bootstrap addresses.
Lookups requested meanwhile are queued and start as soon as the routing table holds
*any* node (the first bootstrap reply), not when bootstrap finishes: waiting for the
whole bootstrap lookup was most of a cold start's time. If nobody answered,
bootstrap is retried after `bootstrap_first_retry`, then with exponential backoff.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from .events import AnnounceSent, BootstrapFinished, LookupFinished
from .extensions import ExtensionCommands
from .jobs import GET_PEERS_KINDS, ITEM_KINDS, JobKind, LookupJob, Purpose
from .krpc import AnnouncePeerQuery, FindNodeQuery, GetPeersQuery, GetQuery
from .lookup import CandidateState, Lookup, LookupDone, LookupKind, QueryNode, Wait
from .serving import CLOSEST

if TYPE_CHECKING:
    import collections

    from .compact import Addr
    from .krpc import Query
    from .routing import RoutingTable

__all__ = ["LookupDriver"]

# Bound on the lookup-driving loop per call: each QueryNode occupies a slot, so a
# lookup yields at most alpha in a row; the cap only guards against a buggy policy.
_MAX_ACTIONS: Final = 64


class LookupDriver(ExtensionCommands):
    """Lookup jobs and bootstrap; mixed into `DHTNode`, whose attributes these are."""

    table: RoutingTable
    _jobs: dict[int, LookupJob]
    _queue: collections.deque[int]
    _active: int
    _in_launch: bool
    _bootstrap_addrs: list[Addr]
    _bootstrapping: bool
    _bootstrapped: bool
    _bootstrap_id: int
    _backoff: float
    _bootstrap_retry_at: float | None
    _first_retry: bool

    def _sibling_hungry(self) -> bool:
        raise NotImplementedError

    def _is_blocked(self, addr: Addr) -> bool:
        raise NotImplementedError

    # ---- lookups --------------------------------------------------------------------

    def _new_job(self, kind: JobKind, target: bytes, now: float) -> int:
        return self._add_job(LookupJob(kind, target), now)

    def _add_job(self, job: LookupJob, now: float) -> int:
        if len(job.target) != 20:
            raise ValueError("target must be 20 bytes")
        lookup_id = self._next_lookup_id
        self._next_lookup_id += 1
        self._jobs[lookup_id] = job
        if job.job is JobKind.BOOTSTRAP:
            self._launch(lookup_id, now)  # bootstrap never waits in the queue
        else:
            self._queue.append(lookup_id)
            self._launch_queued(now)
        return lookup_id

    def _launch_queued(self, now: float) -> None:
        """Start queued lookups, oldest first, unless at `max_lookups` or bootstrapping
        with an empty table.

        A lookup with no one to ask finishes inside `_launch`, and finishing calls back
        here; the flag makes that nested call a no-op (this loop re-checks the
        conditions), so thousands of queued lookups cannot exhaust the stack.
        """
        if self._in_launch:
            return
        self._in_launch = True
        try:
            while self._queue and (not self._bootstrapping or len(self.table)):
                if self._active >= self.config.max_lookups:
                    break
                self._launch(self._queue.popleft(), now)
        finally:
            self._in_launch = False

    def _launch(self, lookup_id: int, now: float) -> None:
        job = self._jobs[lookup_id]
        seeds: list[tuple[bytes | None, Addr]] = [
            (e.node_id, e.addr) for e in self.table.closest(job.target, 2 * CLOSEST, now=now)
        ]
        if job.job is JobKind.BOOTSTRAP:
            seeds.extend((None, a) for a in self._bootstrap_addrs)
        learned: list[tuple[bytes | None, Addr, int]] = []
        if job.job is not JobKind.BOOTSTRAP and self._bootstrapping:
            learned = self._bootstrap_contacts({a for _, a in seeds})
        kind = LookupKind.FIND_NODE
        if job.job in GET_PEERS_KINDS or job.job in ITEM_KINDS:
            kind = LookupKind.GET_PEERS  # collects tokens
        self._active += 1
        job.lookup = Lookup(
            job.target,
            kind,
            seeds,
            now=now,
            config=self.config.lookup,
            rtt_of=self.table.rtt,
            own_id=self.node_id,
            learned=learned,
        )
        self._drive(lookup_id, now)

    def _bootstrap_contacts(self, known: set[Addr]) -> list[tuple[bytes | None, Addr, int]]:
        """Contacts the running bootstrap lookup has heard of, with their hops, as seeds.

        A lookup started early (the table holds only the bootstrap node) would die
        with its first lost reply; the bootstrap's candidates are what a full table
        would have offered it a moment later.
        """
        boot = self._jobs.get(self._bootstrap_id)
        if boot is None or boot.lookup is None:
            return []
        lookup = boot.lookup
        out: list[tuple[bytes | None, Addr, int]] = []
        for node_id, addr, state in lookup.candidate_states():
            if state is not CandidateState.FAILED and addr not in known:
                out.append((node_id, addr, lookup.hops_of(addr) or 1))
                if len(out) >= 2 * CLOSEST:
                    break
        return out

    def _drive(self, lookup_id: int, now: float) -> None:
        job = self._jobs.get(lookup_id)
        lookup = None if job is None else job.lookup
        if job is None or lookup is None:
            return
        for _ in range(_MAX_ACTIONS):
            action = lookup.next(now)
            if isinstance(action, QueryNode) and self._is_blocked(action.addr):
                lookup.on_failure(action.addr, now)  # a blocked seed: never asked
                continue
            if isinstance(action, QueryNode):
                msg = self._lookup_query(job)
                self._send_query(msg, action.addr, now, Purpose.LOOKUP, action.node_id, lookup_id)
                continue
            if isinstance(action, Wait):
                job.wake = action.until
            elif isinstance(action, LookupDone):
                self._finish(lookup_id, job, lookup, now)
            return
        job.wake = now  # bounded loop exhausted: continue on the next timer tick

    def _lookup_query(self, job: LookupJob) -> Query:
        cfg = self.config
        # BEP 32: the IPv6 engine asks for IPv6 contacts; both families while the
        # sibling's table is short, so that one family's routers bootstrap the other.
        if self._sibling_hungry():
            want: tuple[bytes, ...] = (b"n4", b"n6")
        else:
            want = (b"n6",) if cfg.ipv6 else ()
        if job.job in ITEM_KINDS:
            return GetQuery(b"", self.node_id, job.target, None, want, cfg.read_only, cfg.version)
        if job.job in GET_PEERS_KINDS:
            scrape = job.job is JobKind.SCRAPE
            return GetPeersQuery(
                b"", self.node_id, job.target, want, cfg.read_only, cfg.version, scrape, job.noseed
            )
        return FindNodeQuery(b"", self.node_id, job.target, want, cfg.read_only, cfg.version)

    def _finish(self, lookup_id: int, job: LookupJob, lookup: Lookup, now: float) -> None:
        del self._jobs[lookup_id]
        self._active -= 1
        closest = lookup.closest_responded()
        result = self._job_result(job)
        pairs = tuple((n, a) for n, a, _ in closest)
        finished = LookupFinished(lookup_id, job.target, pairs, lookup.statistics(), result)
        if job.item is not None:
            self._start_puts(lookup_id, job.item, closest, finished, now, job.cas)
        else:
            self._events.append(finished)
        if job.job is JobKind.ANNOUNCE:
            sent = 0
            for node_id, addr, token in closest:
                if token is not None:
                    self._send_announce(job, node_id, addr, token, now)
                    sent += 1
            self._events.append(AnnounceSent(lookup_id, job.target, sent))
        elif job.job is JobKind.BOOTSTRAP:
            self._bootstrap_done(lookup, now)
        self._launch_queued(now)

    def _send_announce(
        self, job: LookupJob, node_id: bytes, addr: Addr, token: bytes, now: float
    ) -> None:
        cfg = self.config
        msg = AnnouncePeerQuery(
            b"",
            self.node_id,
            job.target,
            job.port,
            token,
            job.implied_port,
            cfg.read_only,
            cfg.version,
            job.seed,
        )
        self._send_query(msg, addr, now, Purpose.ANNOUNCE, node_id)

    # ---- bootstrap ------------------------------------------------------------------

    def _start_bootstrap(self, now: float) -> int:
        self._bootstrapping = True
        self._bootstrap_id = self._next_lookup_id
        return self._new_job(JobKind.BOOTSTRAP, self.node_id, now)

    def _bootstrap_done(self, lookup: Lookup, now: float) -> None:
        if lookup.statistics().responses == 0 and not len(self.table):
            # Nobody answered: retry soon once, then with exponential backoff; queued
            # lookups keep waiting.
            if self._first_retry:
                self._first_retry = False
                self._bootstrap_retry_at = now + self.config.bootstrap_first_retry
                return
            self._bootstrap_retry_at = now + self._backoff
            self._backoff = min(2 * self._backoff, self.config.bootstrap_backoff_max)
            return
        self._bootstrapping = False
        self._bootstrapped = True
        self._backoff = self.config.bootstrap_backoff
        self._events.append(BootstrapFinished(len(self.table)))  # queued lookups start next
