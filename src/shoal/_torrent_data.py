"""The data phase inside a `Torrent`: picker, storage, choker and smart ban.

Split out of ``torrent.py`` to keep modules small; `DataPhase` is driven by `Torrent`
(``on_peer_event``) and hold no tasks of their own except piece verification.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import shutil
from collections import OrderedDict
from functools import partial
from typing import TYPE_CHECKING, Final, Protocol, final

import trio

from . import torrent_events as tev
from .errors import RemoteProtocolError
from .layout import file_pieces
from .peer import events as ev
from .peer.connection import ConnectionState
from .peer.fast import allowed_fast_set
from .session.smart_ban import SmartBan
from .session.unchoke import quick_unchoke
from .storage.base import Storage, WriteResult
from .storage.files import FileStorage
from .storage.resume import ResumeSaver, load_resume
from .swarm.blocks import Block
from .swarm.choker import Choker, PeerStats
from .swarm.picker import Picker

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable
    from pathlib import Path

    from .config import ClientConfig
    from .ids import InfoHash
    from .metainfo import InfoDict
    from .net.peer_session import PeerSession
    from .storage.base import StorageFactory

__all__ = ["DataPhase", "is_seed"]

Addr = tuple[str, int]

#: Whole pieces kept for uploads (verified data never changes, so no invalidation).
READ_CACHE_PIECES: Final = 8
#: The picker's default level (libtorrent's scale: 0 = skip, 4 = normal, 7 = top).
_NORMAL_PRIORITY: Final = 4


class DataHost(Protocol):
    """What the data phase needs of its torrent (`shoal.torrent.Torrent` is one).

    A protocol rather than an import, so ``torrent.py`` -> ``_torrent_data.py`` is the
    only direction of the dependency.
    """

    @property
    def config(self) -> ClientConfig: ...
    @property
    def info_hash(self) -> InfoHash: ...
    @property
    def save_to(self) -> Path | None: ...
    @property
    def storage_factory(self) -> StorageFactory | None: ...
    @property
    def sessions(self) -> dict[Addr, PeerSession]: ...

    def ban(self, addr: Addr, reason: str) -> None: ...
    def publish(self, event: tev.TorrentEvent) -> None: ...
    def mark_complete(self) -> None: ...
    def spawn(self, fn: Callable[[], Awaitable[None]]) -> None: ...


def _open(session: PeerSession) -> bool:
    return session.conn.state is ConnectionState.OPEN


def is_seed(session: PeerSession) -> bool:
    """Does the peer have every piece?"""
    pieces = session.conn.peer_pieces
    return pieces is not None and pieces.has_all()


#: Events that tell us what a peer has (may make it a seed; first one: offer allowed-fast).
_AVAILABILITY: Final = (
    ev.BitfieldReceived,
    ev.HaveAllReceived,
    ev.HaveNoneReceived,
    ev.HaveReceived,
)


@final
class DataPhase:
    """Picker + storage + choker for a torrent whose info dict is known."""

    def __init__(
        self,
        torrent: DataHost,
        info: InfoDict,
        storage: Storage,
        picker: Picker[PeerSession],
        saver: ResumeSaver | None,
    ) -> None:
        self.torrent = torrent
        self.info = info
        self.storage = storage
        self.picker = picker
        self.saver = saver
        self.choker: Choker[PeerSession] = Choker(
            torrent.config.upload_slots, rng=random.Random(torrent.info_hash)
        )
        self.selected_size = info.total_length
        #: Bytes of each piece that belong to selected, non-pad files: what "downloaded"
        #: counts, so it never exceeds `selected_size` (pad bytes are never data).
        self.piece_wanted_bytes: list[int] = [info.piece_size(i) for i in range(info.num_pieces)]
        #: Who sent each block of a piece in flight, and the suspects of failed pieces.
        self.smart_ban: SmartBan[Addr] = SmartBan()
        self._verifying: set[int] = set()
        self._rate_marks: dict[PeerSession, tuple[float, int, int]] = {}
        self._read_cache: OrderedDict[int, bytes] = OrderedDict()
        #: We hold every piece (not just the selected ones): a seed, for "both seeds".
        self.have_all = storage.verified().has_all()
        #: Allowed-fast pieces (BEP 6) not yet offered to each Fast peer.
        self._fast_pending: dict[PeerSession, set[int]] = {}

    @classmethod
    async def open(
        cls, torrent: DataHost, info: InfoDict, select: Iterable[int] | None, sequential: bool
    ) -> DataPhase:
        storage, saver = await _open_storage(torrent, info)
        have = storage.verified()
        chosen = set(range(len(info.files)) if select is None else select)
        wanted = [i in chosen and not f.pad for i, f in enumerate(info.files)]
        piece_prios = bytearray(info.num_pieces)  # 0 = skip
        for i, want in enumerate(wanted):
            if want:
                for piece in file_pieces(info, i):
                    piece_prios[piece] = _NORMAL_PRIORITY
        picker: Picker[PeerSession] = Picker(
            info.num_pieces,
            info.piece_length,
            info.total_length,
            random.Random(),
            have=have,
            priorities=piece_prios,
            sequential=sequential,
        )
        phase = cls(torrent, info, storage, picker, saver)
        phase.selected_size = sum(f.length for i, f in enumerate(info.files) if wanted[i])
        phase.piece_wanted_bytes = _wanted_bytes_per_piece(info, wanted)
        return phase

    async def run_saver(self) -> None:
        if self.saver is not None:
            await self.saver.run()

    async def save_resume(self) -> None:
        if self.saver is not None:
            await self.saver.save()

    async def delete_files(self) -> None:
        await self.storage.close()
        if self.torrent.storage_factory is not None or self.torrent.save_to is None:
            return  # not our files
        for f in self.info.files:
            path = os.path.join(self.torrent.save_to, *f.path)
            await trio.to_thread.run_sync(_remove, path)
        if self.info.multi_file:
            top = os.path.join(self.torrent.save_to, self.info.name)
            await trio.to_thread.run_sync(lambda: shutil.rmtree(top, ignore_errors=True))

    # ---- queries -------------------------------------------------------------------

    def complete(self) -> bool:
        return self.picker.is_complete()

    def wanted_left(self) -> int:
        return self.picker.wanted_left()

    def verified_bytes(self) -> int:
        """Verified bytes of selected files (pad files and unselected files excluded)."""
        wanted = self.piece_wanted_bytes
        return sum(wanted[i] for i in self.storage.verified())

    # ---- peers ---------------------------------------------------------------------

    def peer_joined_late(self, session: PeerSession) -> None:
        """A session that connected before the metadata: give its engine the geometry."""
        conn = session.conn
        if not _open(session) or conn.num_pieces is not None:
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
            session.close(f"bad early piece state: {exc}")
            return
        for index in self.storage.verified():
            conn.send_have(index)
        session.wake()  # the writer dispatches the replayed events

    def peer_left(self, session: PeerSession) -> None:
        if session.conn.num_pieces is not None:
            self.picker.peer_left(session)
        self._rate_marks.pop(session, None)
        self._fast_pending.pop(session, None)

    def _update_interest(self, session: PeerSession) -> None:
        if _open(session) and session.conn.num_pieces is not None:
            session.conn.set_interested(self.picker.interesting(session))

    def fill(self, session: PeerSession) -> None:
        conn = session.conn
        if not _open(session) or conn.num_pieces is None or not conn.am_interested:
            return
        if conn.peer_choking and not (conn.fast and conn.peer_allowed_fast):
            return
        now = trio.current_time()
        slots = conn.request_slots(now)
        if slots <= 0:
            return
        if conn.peer_choking:
            # BEP 6: a choked peer still serves its allowed-fast pieces.
            picked = self.picker.pick_blocks_in(session, conn.peer_allowed_fast, slots)
        else:
            picked = self.picker.pick_blocks(session, slots)
        for block in picked:
            if (block.index, block.begin, block.length) in conn.pipeline:
                continue  # an allowed-fast request that survived a choke: still booked
            conn.request(block.index, block.begin, block.length, now)
        session.wake()

    def _offer_fast(self, session: PeerSession) -> None:
        """BEP 6: tell a Fast peer which pieces it may request while we choke it.

        The set is fixed per peer address (`allowed_fast_set`); pieces we lack yet
        are offered when they verify (`_piece_ok`).
        """
        conn = session.conn
        if session in self._fast_pending or not conn.fast or not _open(session):
            return
        try:
            ip = ipaddress.ip_address(session.addr[0])
        except ValueError:
            return
        pending = set(allowed_fast_set(ip, bytes(self.info.info_hash), self.info.num_pieces))
        self._fast_pending[session] = pending
        for index in sorted(pending):
            if self.storage.has_piece(index):
                self._send_allowed_fast(session, index)

    def _send_allowed_fast(self, session: PeerSession, index: int) -> None:
        self._fast_pending[session].discard(index)
        pieces = session.conn.peer_pieces
        if _open(session) and not (pieces is not None and index in pieces):
            session.conn.send_allowed_fast(index)
            session.wake()

    # ---- events ------------------------------------------------------------------

    async def on_peer_event(self, session: PeerSession, event: ev.PeerEvent) -> None:
        picker = self.picker
        if session.conn.num_pieces is None:
            return
        if type(event) is ev.BlockReceived:
            # The hot path, once per 16 KiB: a block changes neither what the peer has
            # nor our interest in it (that changes when a piece verifies: `_piece_ok`).
            self._on_block(session, event.index, event.begin, event.data)
            self.fill(session)
            return
        match event:
            case ev.BitfieldReceived(bitfield=bits):
                picker.peer_bitfield(session, bits)
            case ev.HaveAllReceived():
                picker.peer_have_all(session)
            case ev.HaveNoneReceived():
                picker.peer_have_none(session)
            case ev.HaveReceived(index=index):
                picker.peer_has(session, index)
            case ev.Choked():
                picker.peer_choked(session)
            case ev.RequestRejected(index=i, begin=b, length=n):
                picker.block_rejected(session, Block(i, b, n))
            case ev.RequestTimedOut(index=i, begin=b, length=n):
                picker.request_timed_out(session, Block(i, b, n))
            case ev.BlockRequested(index=i, begin=b, length=n):
                await self._serve(session, i, b, n)
            case ev.PeerInterested():
                self._quick_unchoke(session)
            case _:
                pass
        if isinstance(event, _AVAILABILITY):
            if self.have_all and is_seed(session):
                session.close("both peers are seeds")  # nothing to trade (as libtorrent does)
                return
            self._offer_fast(session)
        self._update_interest(session)
        self.fill(session)

    def _quick_unchoke(self, session: PeerSession) -> None:
        """Unchoke a newly interested peer at once if a slot is free (no 10 s wait)."""
        unchoked = sum(1 for s in self.torrent.sessions.values() if not s.conn.am_choking)
        if _open(session) and quick_unchoke(
            am_choking=session.conn.am_choking,
            unchoked=unchoked,
            max_unchoked=self.choker.max_unchoked,
        ):
            session.conn.set_choking(False)

    async def _serve(self, session: PeerSession, index: int, begin: int, length: int) -> None:
        if not self.storage.has_piece(index):
            if session.conn.fast and _open(session):
                session.conn.send_reject(index, begin, length)
            return
        piece = self._read_cache.get(index)
        if piece is None:
            # Read whole pieces: one thread hop serves every block of the piece, and
            # peers usually ask for a piece's blocks in a row.
            piece = await self.storage.read_block(index, 0, self.info.piece_size(index))
            self._read_cache[index] = piece
            while len(self._read_cache) > READ_CACHE_PIECES:
                self._read_cache.popitem(last=False)
        else:
            self._read_cache.move_to_end(index)
        data = memoryview(piece)[begin : begin + length]
        if _open(session) and session.conn.send_piece(index, begin, data):
            session.uploaded += len(data)
        session.wake()

    def _on_block(
        self, session: PeerSession, index: int, begin: int, data: bytes | memoryview
    ) -> None:
        # The hot path: once per 16 KiB block, so no awaits (a checkpoint per block
        # costs a scheduler round trip) and no hashing (block digests for smart ban
        # are taken only when a piece fails, from the rejected bytes).
        block = Block(index, begin, len(data))
        for other, dup in self.picker.block_received(session, block):
            if _open(other) and other.conn.cancel(dup.index, dup.begin, dup.length):
                other.wake()
        self.smart_ban.block_received(index, begin, len(data), session.addr)
        # Synchronous, so a cancelled (banned) session cannot lose a block the picker
        # already counts as received.
        result = self.storage.write_block_now(index, begin, data)
        if result is WriteResult.NO_ROOM:
            self.storage.discard_piece(index)
            self.picker.piece_failed(index)
            self.smart_ban.forget(index)
            return
        if self.picker.piece_complete(index) and index not in self._verifying:
            self._verifying.add(index)
            self.torrent.spawn(partial(self._verify, index))

    async def _verify(self, index: int) -> None:
        try:
            ok = await self.storage.verify_piece(index)
        finally:
            self._verifying.discard(index)
        if ok:
            await self._piece_ok(index)
        else:
            self._piece_bad(index)

    async def _piece_ok(self, index: int) -> None:
        torrent = self.torrent
        self.picker.piece_verified(index)
        if self.picker.is_complete():
            self.have_all = self.storage.verified().has_all()
        good = None
        if self.smart_ban.suspected(index):
            # Smart ban: compare each earlier block with the now verified bytes.
            good = await self.storage.read_block(index, 0, self.info.piece_size(index))
        for ban in self.smart_ban.piece_verified(index, good):
            torrent.ban(ban.peer, ban.reason)
        for session in list(torrent.sessions.values()):
            if index in self._fast_pending.get(session, ()):
                self._send_allowed_fast(session, index)
            if _open(session) and session.conn.num_pieces is not None:
                session.conn.send_have(index)
                self._update_interest(session)
                session.wake()
        if self.saver is not None:
            self.saver.piece_verified()
        torrent.publish(tev.PieceVerified(index))
        if self.picker.is_complete():
            await self.storage.flush()
            await self.save_resume()
            torrent.mark_complete()

    def _piece_bad(self, index: int) -> None:
        torrent = self.torrent
        self.picker.piece_failed(index)
        rejected = self.storage.pop_rejected(index)
        self.storage.discard_piece(index)
        peers, bans = self.smart_ban.piece_failed(index, rejected)
        torrent.publish(tev.PieceFailed(index, tuple(sorted(peers))))
        for ban in bans:
            torrent.ban(ban.peer, ban.reason)
        for session in torrent.sessions.values():
            self.fill(session)

    # ---- choking -----------------------------------------------------------------

    def rechoke(self, sessions: Iterable[PeerSession]) -> None:
        now = trio.current_time()
        stats: list[PeerStats[PeerSession]] = []
        for s in sessions:
            if not _open(s) or s.conn.num_pieces is None:
                continue
            t0, d0, u0 = self._rate_marks.get(s, (s.started_at, 0, 0))
            span = max(now - t0, 1e-3)
            self._rate_marks[s] = (now, s.downloaded, s.uploaded)
            pieces = s.conn.peer_pieces
            stats.append(
                PeerStats(
                    peer=s,
                    download_rate=(s.downloaded - d0) / span,
                    upload_rate=(s.uploaded - u0) / span,
                    interested=s.conn.peer_interested,
                    snubbed=s.conn.snubbed,
                    is_seed=pieces is not None and pieces.has_all(),
                    uploaded=s.uploaded,
                )
            )
        decision = self.choker.rechoke(now, stats, seeding=self.complete())
        for s in decision.unchoke:
            s.conn.set_choking(False)
            s.wake()
        for s in decision.choke:
            s.conn.set_choking(True)
            s.wake()


async def _open_storage(torrent: DataHost, info: InfoDict) -> tuple[Storage, ResumeSaver | None]:
    """The injected storage (no resume data: it is the caller's), or files under
    ``save_to`` with their resume file."""
    if torrent.storage_factory is not None:
        return torrent.storage_factory(info), None
    assert torrent.save_to is not None
    root = torrent.save_to
    state_dir = torrent.config.state_dir
    resume_dir = state_dir / "resume" if state_dir is not None else None
    found = await load_resume(info, root, resume_dir)
    storage = FileStorage(info, root, have=found.have, durable=found.durable)
    saver = ResumeSaver(storage, root, resume_dir) if resume_dir is not None else None
    return storage, saver


def _wanted_bytes_per_piece(info: InfoDict, wanted: list[bool]) -> list[int]:
    out = [0] * info.num_pieces
    plen = info.piece_length
    for f, want in zip(info.files, wanted, strict=True):
        if not want or f.length == 0:
            continue
        start, end = f.offset, f.offset + f.length
        for piece in range(start // plen, (end - 1) // plen + 1):
            out[piece] += min(end, (piece + 1) * plen) - max(start, piece * plen)
    return out


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
