"""`DataPlane`: a `TorrentEngine`'s data phase (the info dict is known), sans-IO.

Theory of operation
-------------------
Blocks go to the `Picker` (which peer gets which request, endgame cancels) and, as a
`WriteBlock` command, to storage; when the picker says a piece is complete a
`VerifyPiece` command follows. The outcome (`piece_checked`) either announces the
piece (``have`` to every peer, BEP 6 allowed-fast offers, interest updates) or
re-fetches it, with `SmartBan` judging its senders.

Uploads never wait on the disk inside a peer's handler: a request for a piece in the
read cache (`READ_CACHE_PIECES` whole pieces; verified data never changes) is
answered at once; otherwise it waits in `_reads` while one `ReadPiece` command fetches
the piece, and `piece_read` answers every waiting request. Choking: the pure `Choker`
every 10 s (`next_rechoke`), and `quick_unchoke` when a peer turns interested.

The state of a block lives in one place, the picker; the connection's pipeline holds
only what was sent to that peer.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Final, Protocol, final

from .. import torrent_events as tev
from ..errors import RemoteProtocolError
from ..peer import events as ev
from ..peer.connection import ConnectionState
from ..peer.fast import allowed_fast_set
from ..swarm.blocks import Block
from ..swarm.choker import RECHOKE_INTERVAL, Choker, PeerStats
from ..swarm.picker import Picker
from . import commands as cmd
from .send_budget import MAX_SEND_BACKLOG, SendBudget
from .smart_ban import SmartBan
from .unchoke import quick_unchoke

if TYPE_CHECKING:
    import random

    from ..metainfo import InfoDict
    from ..swarm.bitfield import Bitfield
    from .peer import EnginePeer

__all__ = ["MAX_SEND_BACKLOG", "READ_CACHE_PIECES", "DataPlane"]

#: Whole pieces kept for uploads (verified data never changes, so no invalidation).
READ_CACHE_PIECES: Final = 8
#: Whole-piece reads in flight at once; requests for further pieces wait (bounded by
#: `MAX_DEFERRED_REQUESTS`), so requests spread over many pieces cannot make us hold
#: one piece buffer per request (a peer asking one block of each of 64 pieces).
MAX_PENDING_READS: Final = READ_CACHE_PIECES
MAX_DEFERRED_REQUESTS: Final = 4096

_AVAILABILITY: Final = (
    ev.BitfieldReceived,
    ev.HaveAllReceived,
    ev.HaveNoneReceived,
    ev.HaveReceived,
)


class DataOwner(Protocol):
    """What the data plane needs of its `TorrentEngine` (a protocol, not an import:
    ``engine.py`` -> ``data.py`` is the only direction of the dependency)."""

    @property
    def peers(self) -> dict[int, EnginePeer]: ...

    def queue(self, command: cmd.Command) -> None: ...
    def mark_dirty(self, peer: EnginePeer) -> None: ...
    def close_peer(self, key: int, reason: str, now: float) -> None: ...
    def ban(self, addr: tuple[str, int], reason: str, now: float) -> None: ...


def _open(peer: EnginePeer) -> bool:
    return peer.conn.state is ConnectionState.OPEN


def _is_seed(peer: EnginePeer) -> bool:
    pieces = peer.conn.peer_pieces
    return pieces is not None and pieces.has_all()


@final
class DataPlane:
    """Picker, choker, smart ban and uploads of one torrent (module docstring)."""

    def __init__(
        self,
        engine: DataOwner,
        info: InfoDict,
        have: Bitfield,
        priorities: bytes | bytearray,
        *,
        sequential: bool,
        now: float,
        rng: random.Random,
        upload_slots: int,
        send_budget: SendBudget | None = None,
    ) -> None:
        self.engine = engine
        #: Shared by every torrent of the client; its `peer_cap` is the per-peer cap
        #: (`MAX_SEND_BACKLOG`, less while the client is over its budget: the Trio
        #: driver also stops reading from a peer past it, `EngineSession`).
        self.send_budget = send_budget or SendBudget(None)
        self.info = info
        self._have = have.copy()
        self.picker: Picker[EnginePeer] = Picker(
            info.num_pieces,
            info.piece_length,
            info.total_length,
            rng,
            have=have,
            priorities=priorities,
            sequential=sequential,
        )
        self.choker: Choker[EnginePeer] = Choker(upload_slots, rng=rng)
        self.smart_ban: SmartBan[tuple[str, int]] = SmartBan()
        self.next_rechoke = now + RECHOKE_INTERVAL
        self._verifying: set[int] = set()
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._reads: dict[int, list[tuple[EnginePeer, int, int]]] = {}
        self._deferred: deque[tuple[EnginePeer, int, int, int]] = deque()
        #: We hold every piece (not only the wanted ones): a seed, for "both seeds".
        self.have_all = have.has_all()

    def have_copy(self) -> Bitfield:
        return self._have.copy()

    def verified(self) -> Bitfield:
        return self._have.copy()

    # ---- peers ---------------------------------------------------------------------

    def peer_joined_late(self, peer: EnginePeer, now: float) -> None:
        """A connection made before the metadata: give its engine the geometry."""
        conn = peer.conn
        if not _open(peer) or conn.num_pieces is not None:
            return
        info = self.info
        # BEP 10 allows a repeated handshake: it now says ``metadata_size``, so this
        # peer can fetch the info dict from us too.
        conn.set_metadata_size(len(info.raw))
        try:
            conn.set_num_pieces(
                info.num_pieces, piece_length=info.piece_length, total_length=info.total_length
            )
        except RemoteProtocolError as exc:
            self.engine.close_peer(peer.key, f"bad early piece state: {exc}", now)
            return
        for index in self._have:
            conn.send_have(index)

    def peer_left(self, peer: EnginePeer) -> None:
        if peer.conn.num_pieces is not None:
            self.picker.peer_left(peer)
        for waiting in self._reads.values():
            waiting[:] = [w for w in waiting if w[0] is not peer]
        self._deferred = deque(d for d in self._deferred if d[0] is not peer)

    def _update_interest(self, peer: EnginePeer) -> None:
        if _open(peer) and peer.conn.num_pieces is not None:
            peer.conn.set_interested(self.picker.interesting(peer))

    def fill(self, peer: EnginePeer, now: float) -> None:
        """Keep the peer's request pipeline full."""
        conn = peer.conn
        if not _open(peer) or conn.num_pieces is None or not conn.am_interested:
            return
        if conn.peer_choking and not (conn.fast and conn.peer_allowed_fast):
            return
        slots = conn.request_slots(now)
        if slots <= 0:
            return
        if conn.peer_choking:
            # BEP 6: a choked peer still serves its allowed-fast pieces.
            picked = self.picker.pick_blocks_in(peer, conn.peer_allowed_fast, slots)
        else:
            picked = self.picker.pick_blocks(peer, slots)
        for block in picked:
            if (block.index, block.begin, block.length) in conn.pipeline:
                continue  # an allowed-fast request that survived a choke: still booked
            conn.request(block.index, block.begin, block.length, now)

    def _offer_fast(self, peer: EnginePeer) -> None:
        """BEP 6: tell a Fast peer which pieces it may request while we choke it."""
        conn = peer.conn
        if peer.fast_pending is not None or not conn.fast or not _open(peer):
            return
        try:
            ip = ipaddress.ip_address(peer.addr[0])
        except ValueError:
            return
        info = self.info
        peer.fast_pending = set(allowed_fast_set(ip, bytes(info.info_hash), info.num_pieces))
        for index in sorted(peer.fast_pending):
            if self._have.test(index):
                self._send_allowed_fast(peer, index)

    def _send_allowed_fast(self, peer: EnginePeer, index: int) -> None:
        assert peer.fast_pending is not None
        peer.fast_pending.discard(index)
        pieces = peer.conn.peer_pieces
        if _open(peer) and not (pieces is not None and index in pieces):
            peer.conn.send_allowed_fast(index)
            self.engine.mark_dirty(peer)

    # ---- events --------------------------------------------------------------------

    def on_block(
        self, peer: EnginePeer, index: int, begin: int, data: bytes | memoryview, now: float
    ) -> None:
        """The hot path, once per 16 KiB: no hashing, no allocation beyond the command."""
        if peer.conn.num_pieces is None:
            return
        for other, dup in self.picker.block_received(peer, Block(index, begin, len(data))):
            if _open(other) and other.conn.cancel(dup.index, dup.begin, dup.length):
                self.engine.mark_dirty(other)
        self.smart_ban.block_received(index, begin, len(data), peer.addr)
        self.engine.queue(cmd.WriteBlock(index, begin, data))
        if self.picker.piece_complete(index) and index not in self._verifying:
            self._verifying.add(index)
            self.engine.queue(cmd.VerifyPiece(index))
        self.fill(peer, now)

    def write_refused(self, index: int) -> None:
        self.picker.piece_failed(index)
        self.smart_ban.forget(index)
        self._verifying.discard(index)

    def on_event(self, peer: EnginePeer, event: ev.PeerEvent, now: float) -> None:
        picker = self.picker
        if peer.conn.num_pieces is None:
            return
        match event:
            case ev.BitfieldReceived(bitfield=bits):
                picker.peer_bitfield(peer, bits)
            case ev.HaveAllReceived():
                picker.peer_have_all(peer)
            case ev.HaveNoneReceived():
                picker.peer_have_none(peer)
            case ev.HaveReceived(index=index):
                picker.peer_has(peer, index)
            case ev.Choked():
                picker.peer_choked(peer)
            case ev.RequestRejected(index=i, begin=b, length=n):
                picker.block_rejected(peer, Block(i, b, n))
            case ev.RequestTimedOut(index=i, begin=b, length=n):
                picker.request_timed_out(peer, Block(i, b, n))
            case ev.BlockRequested(index=i, begin=b, length=n):
                self._serve(peer, i, b, n)
            case ev.PeerInterested():
                self._quick_unchoke(peer)
            case _:
                pass
        if isinstance(event, _AVAILABILITY):
            if self.have_all and _is_seed(peer):
                # Nothing to trade (as libtorrent does).
                self.engine.close_peer(peer.key, "both peers are seeds", now)
                return
            self._offer_fast(peer)
        self._update_interest(peer)
        self.fill(peer, now)

    def _quick_unchoke(self, peer: EnginePeer) -> None:
        unchoked = sum(1 for p in self.engine.peers.values() if not p.conn.am_choking)
        if _open(peer) and quick_unchoke(
            am_choking=peer.conn.am_choking,
            unchoked=unchoked,
            max_unchoked=self.choker.max_unchoked,
        ):
            peer.conn.set_choking(False)

    # ---- uploads -------------------------------------------------------------------

    def _serve(self, peer: EnginePeer, index: int, begin: int, length: int) -> None:
        busy = self.send_budget.backlogged(peer.conn.send_backlog)  # not reading: see below
        if busy or not self._have.test(index):
            if peer.conn.fast and _open(peer):
                peer.conn.send_reject(index, begin, length)
                self.engine.mark_dirty(peer)
            return
        piece = self._cache.get(index)
        if piece is None:
            waiting = self._reads.get(index)
            if waiting is None:
                if len(self._reads) >= MAX_PENDING_READS:
                    if len(self._deferred) < MAX_DEFERRED_REQUESTS:
                        self._deferred.append((peer, index, begin, length))
                    elif peer.conn.fast and _open(peer):
                        peer.conn.send_reject(index, begin, length)
                        self.engine.mark_dirty(peer)
                    return
                waiting = self._reads[index] = []
                self.engine.queue(cmd.ReadPiece(index))
            waiting.append((peer, begin, length))
            return
        self._cache.move_to_end(index)
        self._send_piece(peer, index, begin, length, piece)

    def _send_piece(
        self, peer: EnginePeer, index: int, begin: int, length: int, piece: bytes
    ) -> None:
        if self.send_budget.backlogged(peer.conn.send_backlog):
            # The peer is not reading what we already queued (or the client as a
            # whole has too much queued, `SendBudget`): serve nothing more
            # (Fast: say so; otherwise its request waits, bounded by our reqq).
            if _open(peer) and peer.conn.fast:
                peer.conn.send_reject(index, begin, length)
                self.engine.mark_dirty(peer)
            return
        data = memoryview(piece)[begin : begin + length]
        if _open(peer) and peer.conn.send_piece(index, begin, data):
            peer.uploaded += len(data)
            self.engine.mark_dirty(peer)

    def piece_read(self, index: int, data: bytes, now: float) -> None:
        self._cache[index] = data
        self._cache.move_to_end(index)
        while len(self._cache) > READ_CACHE_PIECES:
            self._cache.popitem(last=False)
        for peer, begin, length in self._reads.pop(index, []):
            if self.engine.peers.get(peer.key) is peer:
                self._send_piece(peer, index, begin, length, data)
        while self._deferred and len(self._reads) < MAX_PENDING_READS:
            peer, i, begin, length = self._deferred.popleft()
            if self.engine.peers.get(peer.key) is peer and _open(peer):
                self._serve(peer, i, begin, length)

    # ---- verification --------------------------------------------------------------

    def piece_checked(
        self, index: int, ok: bool, data: bytes | bytearray | memoryview | None, now: float
    ) -> None:
        self._verifying.discard(index)
        if ok:
            self._piece_ok(index, data, now)
        else:
            self._piece_bad(index, data, now)

    def _piece_ok(
        self, index: int, good: bytes | bytearray | memoryview | None, now: float
    ) -> None:
        engine = self.engine
        self.picker.piece_verified(index)
        self._have.set(index)
        if self.picker.is_complete():
            self.have_all = self._have.has_all()
        for ban in self.smart_ban.piece_verified(index, good):
            engine.ban(ban.peer, ban.reason, now)
        for peer in list(engine.peers.values()):
            if peer.fast_pending is not None and index in peer.fast_pending:
                self._send_allowed_fast(peer, index)
            if _open(peer) and peer.conn.num_pieces is not None:
                peer.conn.send_have(index)
                self._update_interest(peer)
                engine.mark_dirty(peer)
        engine.queue(cmd.Publish(tev.PieceVerified(index)))
        if self.picker.is_complete():
            engine.queue(cmd.PiecesComplete())

    def _piece_bad(
        self, index: int, rejected: bytes | bytearray | memoryview | None, now: float
    ) -> None:
        engine = self.engine
        self.picker.piece_failed(index)
        peers, bans = self.smart_ban.piece_failed(index, rejected)
        engine.queue(cmd.Publish(tev.PieceFailed(index, tuple(sorted(peers)))))
        for ban in bans:
            engine.ban(ban.peer, ban.reason, now)
        for peer in list(engine.peers.values()):
            self.fill(peer, now)
            engine.mark_dirty(peer)

    # ---- choking -------------------------------------------------------------------

    def rechoke(self, now: float) -> None:
        self.next_rechoke = now + RECHOKE_INTERVAL
        stats: list[PeerStats[EnginePeer]] = []
        for p in self.engine.peers.values():
            if not _open(p) or p.conn.num_pieces is None:
                continue
            t0, d0, u0 = p.rate_mark or (p.started_at, 0, 0)
            span = max(now - t0, 1e-3)
            p.rate_mark = (now, p.downloaded, p.uploaded)
            stats.append(
                PeerStats(
                    peer=p,
                    download_rate=(p.downloaded - d0) / span,
                    upload_rate=(p.uploaded - u0) / span,
                    interested=p.conn.peer_interested,
                    snubbed=p.conn.snubbed,
                    is_seed=_is_seed(p),
                    uploaded=p.uploaded,
                )
            )
        decision = self.choker.rechoke(now, stats, seeding=self.picker.is_complete())
        for p in decision.unchoke:
            p.conn.set_choking(False)
            self.engine.mark_dirty(p)
        for p in decision.choke:
            p.conn.set_choking(True)
            self.engine.mark_dirty(p)
