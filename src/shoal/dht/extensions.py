"""The BEP 44, 33 and 51 commands of `DHTNode` and what their replies become.

Theory of operation
-------------------
A mixin of `DHTNode` (which owns the state it touches), kept apart so that each
extension's client side reads in one place and the engine module stays small:

* ``get_item`` / ``put_item`` (BEP 44) are lookups sending ``get``; replies are
  folded into a `jobs.ItemSearch`, and a put then sends ``put`` to the k closest
  token holders and finishes when each has answered or timed out (`jobs.PutProgress`).
* ``scrape`` (BEP 33) is a get_peers lookup with ``scrape=1``; every reply's filters
  (or, from older nodes, its ``values``) go into a `scrape.ScrapeTally`.
* ``sample`` (BEP 51) is one query, not a lookup: its reply, error or timeout
  becomes the result. Scheduling a walk over many nodes is `dht/sampler.py`'s job.

Every result is the ``result`` of the job's `LookupFinished` event.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from .bep44 import MAX_SEQ
from .events import LookupFinished, SampleReceived, ScrapeEstimate
from .jobs import ItemSearch, JobKind, LookupJob, Purpose, PutProgress
from .krpc import PutQuery, SampleInfohashesQuery
from .lookup import LookupStats
from .scrape import ScrapeTally

if TYPE_CHECKING:
    import collections

    from .bep44 import Item
    from .compact import Addr
    from .config import DHTConfig
    from .events import DHTEvent, LookupResult
    from .jobs import Txn
    from .krpc import Query, Response

__all__ = ["ExtensionCommands"]


class ExtensionCommands:
    """BEP 44/33/51 commands; mixed into `DHTNode`, whose attributes these are."""

    config: DHTConfig
    node_id: bytes
    _events: collections.deque[DHTEvent]
    _next_lookup_id: int
    _puts: dict[int, tuple[PutProgress, LookupFinished]]
    _samples: dict[int, tuple[bytes, float]]

    def _add_job(self, job: LookupJob, now: float) -> int:
        raise NotImplementedError

    def _send_query(
        self,
        msg: Query,
        addr: Addr,
        now: float,
        purpose: Purpose,
        node_id: bytes | None = None,
        lookup_id: int | None = None,
    ) -> None:
        raise NotImplementedError

    def get_item(self, target: bytes, now: float, salt: bytes = b"") -> int:
        """BEP 44 get: `LookupFinished.result` is an `ItemFound` (best valid item).

        For a mutable item the `salt` it was stored with is needed to verify replies.
        """
        job = LookupJob(JobKind.GET_ITEM, bytes(target))
        job.search = ItemSearch(bytes(target), salt)
        return self._add_job(job, now)

    def put_item(self, item: Item, now: float, cas: int | None = None) -> int:
        """BEP 44 put: a get lookup for tokens, then put to the closest token holders.

        `LookupFinished` (result `ItemStored`) comes once every put is answered or has
        timed out. The caller validates the item (`bep44.check_item`). `cas` (mutable
        items): the seq the caller read and means to replace; a node storing another
        seq refuses with 301 (BEP 44 "compare and swap"), so of two writers who read
        the same item, the second does not silently overwrite the first.
        """
        if cas is not None and (item.key is None or not 0 <= cas <= MAX_SEQ):
            raise ValueError("cas needs a mutable item and a seq in 0..2**63-1")
        job = LookupJob(JobKind.PUT_ITEM, item.target)
        job.item = item
        job.cas = cas
        return self._add_job(job, now)

    def scrape(self, info_hash: bytes, now: float) -> int:
        """BEP 33 scrape: a get_peers lookup with ``scrape=1`` (result `ScrapeEstimate`)."""
        job = LookupJob(JobKind.SCRAPE, bytes(info_hash))
        job.tally = ScrapeTally()
        return self._add_job(job, now)

    def sample(self, addr: Addr, target: bytes, now: float, node_id: bytes | None = None) -> int:
        """Send one BEP 51 sample_infohashes query to `addr`.

        Its `LookupFinished` carries a `SampleReceived` result (``samples`` None if the
        node did not answer or does not support BEP 51) and the nodes it returned.
        """
        lookup_id = self._next_lookup_id
        self._next_lookup_id += 1
        cfg = self.config
        want = (b"n6",) if cfg.ipv6 else ()
        msg = SampleInfohashesQuery(
            b"", self.node_id, bytes(target), want, cfg.read_only, cfg.version
        )
        self._samples[lookup_id] = (bytes(target), now)
        self._send_query(msg, addr, now, Purpose.SAMPLE, node_id, lookup_id)
        return lookup_id

    def _query_failed(self, txn: Txn, addr: Addr, now: float, code: int | None) -> None:
        """A put or sample query got an error (`code`) or timed out (None)."""
        assert txn.lookup_id is not None
        if txn.purpose is Purpose.PUT:
            self._put_outcome(txn.lookup_id, addr, code, timed_out=code is None)
        elif txn.purpose is Purpose.SAMPLE:
            self._sample_outcome(txn.lookup_id, addr, now)

    def _start_puts(
        self,
        lookup_id: int,
        item: Item,
        closest: list[tuple[bytes, Addr, bytes | None]],
        finished: LookupFinished,
        now: float,
        cas: int | None = None,
    ) -> None:
        """BEP 44: put `item` to the closest nodes that gave a token; finish when all answer."""
        cfg = self.config
        holders = [(n, a, t) for n, a, t in closest if t is not None]
        progress = PutProgress(item.target, finished.closest, {a for _, a, _ in holders})
        self._puts[lookup_id] = (progress, finished)
        for node_id, addr, token in holders:
            msg = PutQuery(
                b"",
                self.node_id,
                token,
                item.value,
                item.key,
                item.salt,
                item.seq,
                item.sig,
                cas,
                cfg.read_only,
                cfg.version,
            )
            self._send_query(msg, addr, now, Purpose.PUT, node_id, lookup_id)
        self._put_outcome(lookup_id, None)

    def _put_outcome(
        self, lookup_id: int, addr: Addr | None, error: int | None = None, timed_out: bool = False
    ) -> None:
        entry = self._puts.get(lookup_id)
        if entry is None:
            return
        progress, finished = entry
        if addr is not None:
            progress.on_outcome(addr, error, timed_out)
        if not progress.pending:
            del self._puts[lookup_id]
            self._events.append(replace(finished, result=progress.result()))

    def _sample_outcome(
        self, lookup_id: int, addr: Addr, now: float, msg: Response | None = None
    ) -> None:
        """BEP 51: the reply (or its absence) to a `sample` query becomes its result."""
        entry = self._samples.pop(lookup_id, None)
        if entry is None:
            return
        target, sent = entry
        ext = None if msg is None else msg.ext
        nodes = () if msg is None else (msg.nodes6 if self.config.ipv6 else msg.nodes)
        result = SampleReceived(
            addr,
            None if msg is None else msg.node_id,
            None if ext is None else ext.samples,
            None if ext is None else ext.interval,
            None if ext is None else ext.num,
            tuple(nodes),
        )
        closest = () if msg is None else ((msg.node_id, addr),)
        ok = int(msg is not None)
        stats = LookupStats(1, ok, 0, 0, 1 - ok, 1, None, sent, None, now)
        self._events.append(LookupFinished(lookup_id, target, closest, stats, result))

    def _fold_reply(self, job: LookupJob, msg: Response) -> None:
        """Feed a lookup reply to the job's BEP 44 or BEP 33 accumulator, if any."""
        if job.search is not None:
            job.search.on_reply(msg.ext)
        elif job.tally is not None:
            ext = msg.ext
            if ext is not None and (ext.bf_seeds is not None or ext.bf_peers is not None):
                job.tally.add_filters(ext.bf_seeds, ext.bf_peers)
            elif msg.values:
                job.tally.add_legacy_values(ip for ip, _ in msg.values)

    @staticmethod
    def _job_result(job: LookupJob) -> LookupResult | None:
        if job.search is not None:
            return job.search.result()
        if job.tally is not None:
            seeds, peers = job.tally.result()
            return ScrapeEstimate(seeds, peers, job.tally.responders, *job.tally.filters())
        return None
