"""Torrent: one torrent's engine room (metadata, peers, pieces, choking, seeding).

Theory of operation
-------------------
`Torrent.run` owns one nursery (docs/style.md 4.3) with these tasks:

* ``_connect_loop``: dials addresses from the `PeerPool` (DHT, PEX, ``x.pe``,
  ``peers=``) while below ``max_peers_per_torrent``; inbound links arrive through
  `accept` (called by the listener). Each peer runs a `PeerSession` in its own task;
  whatever the peer does wrong ends that task with a `PeerDropped`, nothing more.
* ``_discovery_loop``: DHT get_peers + announce (not for private torrents, BEP 27),
  after 1, 2, 4 ... s, then every 5 minutes; every `DRY_RELOOKUP` s while no peer is
  connected and the pool has nobody left to dial.
* ``_choke_loop``: the pure `Choker` every 10 s; ``_pex_loop``: BEP 11 every 60 s.
* ``_stats_loop``: rate windows and `Progress` events once a second.

State changes happen in `on_peer_event`, called by the sessions' tasks. It never
holds state across an ``await`` without re-checking it, so Trio's cooperative
scheduling makes each event's bookkeeping atomic: no locks.

Metadata phase (magnets, BEP 9): every peer advertising ut_metadata and a sane
``metadata_size`` is asked for missing pieces (one peer per piece at a time). When
all pieces are in, the SHA-1 must equal the info-hash; otherwise every peer that
sent a piece is banned and the fetch restarts. Nothing touches the disk before the
info dict is verified.

Download: blocks go to the `Picker` (which peer gets which request, endgame) and to
`Storage` piece buffers; a complete piece is hashed in a thread (`verify_piece`),
written, and announced with ``have`` to every peer. A failed piece is re-fetched;
its contributors are known per block with a block digest ("smart ban"): once the
piece verifies, whoever sent a block that differs from the good one is banned, and a
peer that alone supplied two failed pieces is banned too.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, final

import trio

from . import torrent_events as tev
from ._torrent_data import DataPhase, is_seed
from .errors import HandshakeError, MetadataError, StorageError
from .net.dialer import SELF_CONNECTION
from .net.peer_session import PEER_ERRORS, PeerSession
from .peer import events as ev
from .peer.connection import ConnectionConfig, ConnectionState
from .peer.extension import UT_PEX, PexPeer
from .peer.handshake import ReservedBits
from .session.duplicates import ConnectionFacts, keeps_new_connection
from .session.metadata_fetch import MetadataBadHash, MetadataDone, MetadataFetch, MetadataInvalid
from .session.pex import PexTracker
from .swarm.peer_pool import PeerPool, PeerSource
from .torrent_stats import TorrentState, TorrentStats

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Sequence
    from pathlib import Path

    from .config import ClientConfig
    from .dht_client import DHT
    from .ids import InfoHash, PeerId
    from .metainfo import Metainfo
    from .net.dialer import Dialer, PeerLink
    from .peer.handshake import Handshake
    from .storage.base import StorageFactory

__all__ = ["Torrent", "TorrentState", "TorrentStats", "check_select"]

log = logging.getLogger(__name__)

Addr = tuple[str, int]

#: BEP 3, "Choking": "ten seconds"; BEP 11: PEX "no more than once a minute".
PEX_INTERVAL: Final = 60.0
#: DHT re-lookup (BEP 5 peers expire after about 30 minutes; announce well within).
DHT_INTERVAL: Final = 300.0
#: With no peer connected and nothing left to dial, look the DHT up again this soon
#: instead of waiting out `DHT_INTERVAL` (issue 4: "re-lookup when the pool runs dry");
#: the floor keeps a dead swarm from costing more than one lookup per interval.
DRY_RELOOKUP: Final = 15.0
RATE_WINDOW: Final = 5.0
_EVENT_BUFFER: Final = 256


def check_select(select: Sequence[int], num_files: int) -> None:
    """Reject file indexes outside the torrent (a silent no-op would download nothing).

    Raises:
        ValueError: an index is negative or not below `num_files`.
    """
    bad = sorted({i for i in select if not 0 <= i < num_files})
    if bad:
        shown = ", ".join(map(str, bad[:10]))
        last = num_files - 1
        raise ValueError(f"file index {shown} out of range: the torrent has files 0..{last}")


@dataclass
class _Subscriptions:
    channels: list[trio.MemorySendChannel[tev.TorrentEvent]] = field(default_factory=list)

    def publish(self, event: tev.TorrentEvent) -> None:
        for ch in list(self.channels):
            try:
                ch.send_nowait(event)
            except trio.WouldBlock:
                pass  # a slow subscriber loses events rather than stalling the torrent
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.channels.remove(ch)

    def close(self) -> None:
        for ch in self.channels:
            ch.close()
        self.channels.clear()


@final
class Torrent:
    """One torrent added to a `Client` (the task object and the user's handle)."""

    def __init__(
        self,
        info_hash: InfoHash,
        *,
        config: ClientConfig,
        peer_id: PeerId,
        dialer: Dialer,
        dht: DHT | None,
        listen_port: int,
        save_to: Path | None,
        metainfo: Metainfo | None = None,
        name: str | None = None,
        peers: Sequence[Addr] = (),
        select: Sequence[int] | None = None,
        sequential: bool = False,
        seed: bool = True,
        rng: random.Random | None = None,
        storage: StorageFactory | None = None,
    ) -> None:
        self.info_hash: Final = info_hash
        self.metainfo = metainfo
        self._name = name
        self.config = config
        self.peer_id = peer_id
        self._dialer = dialer
        self._dht = dht
        self._listen_port = listen_port
        self.save_to = save_to
        #: Builds the torrent's `Storage` once the info dict is known; None: files
        #: under `save_to` (with resume data).
        self.storage_factory = storage
        self._seed = seed
        self._rng = rng or random.SystemRandom()
        self.pool = PeerPool()
        for addr in peers:
            self.pool.add(addr, PeerSource.USER)  # before run(): nothing to wake yet
        self.sessions: dict[Addr, PeerSession] = {}
        self._by_peer_id: dict[bytes, PeerSession] = {}
        self._dialing = 0
        self._state = TorrentState.FINDING_PEERS
        self._metadata_ready = trio.Event()
        self._complete = trio.Event()
        self._stopped = trio.Event()
        self._pool_changed = trio.Event()
        self._pool_dry = trio.Event()
        self._subs = _Subscriptions()
        self._nursery: trio.Nursery | None = None
        self._error: str | None = None
        self.fetch: MetadataFetch[PeerSession] = MetadataFetch(bytes(info_hash))
        self.data: DataPhase | None = None
        self._select = select
        self._sequential = sequential
        self._samples: deque[tuple[float, int, int]] = deque()
        self._paused = False  # no dialling, no accepting
        self._user_paused = False  # ...because of pause() (reported as PAUSED)
        self._gone_down = 0  # payload counters of sessions that have ended
        self._discovering = False
        self._gone_up = 0

    # ---- public API --------------------------------------------------------------

    @property
    def name(self) -> str | None:
        return self.metainfo.info.name if self.metainfo is not None else self._name

    @property
    def private(self) -> bool:
        return self.metainfo is not None and self.metainfo.info.private

    async def wait_metadata(self) -> Metainfo:
        """Wait until the info dict is known (at once for .torrent sources).

        Raises:
            MetadataError: the torrent stopped first (removed, or an error).
        """
        if not await self._wait_unless_stopped(self._metadata_ready):
            raise MetadataError(self._error or "torrent stopped before its metadata arrived")
        assert self.metainfo is not None
        return self.metainfo

    async def wait_complete(self) -> None:
        """Wait until every selected piece is verified and flushed.

        Raises:
            StorageError: the torrent stopped first (removed, or a disk error).
        """
        if not await self._wait_unless_stopped(self._complete):
            raise StorageError(self._error or "torrent stopped before completing")

    async def _wait_unless_stopped(self, event: trio.Event) -> bool:
        async with trio.open_nursery() as nursery:

            async def stop_on_stopped() -> None:
                await self._stopped.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(stop_on_stopped)
            await event.wait()
            nursery.cancel_scope.cancel()
        return event.is_set()

    def events(self) -> trio.MemoryReceiveChannel[tev.TorrentEvent]:
        """A new bounded subscription (an async iterator of `TorrentEvent`).

        Iteration ends when the torrent stops. A subscriber that falls more than
        256 events behind loses events rather than stalling the torrent; close the
        channel (``await events.aclose()`` or ``with events:``) to unsubscribe early.
        """
        send, receive = trio.open_memory_channel[tev.TorrentEvent](_EVENT_BUFFER)
        if self._stopped.is_set():
            send.close()
        else:
            self._subs.channels.append(send)
        return receive

    def add_peers(self, addrs: Sequence[Addr]) -> None:
        """Dial these addresses too (like ``peers=`` at `Client.add`)."""
        self.peers_found(addrs, PeerSource.USER)

    def peers_found(self, addrs: Iterable[Addr], source: PeerSource) -> int:
        """The one entry point for every peer source: DHT, PEX, the user (``--peer``),
        a magnet's ``x.pe``, incoming connections. Returns how many were new.

        PEX is ignored for private torrents (BEP 27); an incoming address is marked
        busy (connected) rather than queued for dialling.
        """
        new = 0
        for addr in addrs:
            if source is PeerSource.INCOMING:
                self.pool.mark_busy(addr, source)
            elif source is PeerSource.PEX and self.private:
                return 0
            elif self.pool.add(addr, source):
                new += 1
        if new:
            self._pool_changed.set()
        return new

    def _use_torrent_nodes(self) -> None:
        """BEP 5: a .torrent's ``nodes`` are DHT bootstrap contacts (not peers).

        Only IP literals: a name would need a DNS lookup chosen by an untrusted file.
        """
        if self._dht is None or self.metainfo is None or self.private:
            return
        contacts = []
        for host, port in self.metainfo.nodes:
            try:
                ipaddress.ip_address(host)
            except ValueError:
                continue
            if 0 < port < 65536:
                contacts.append((host, port))
        if contacts:
            self._dht.add_nodes(contacts)

    async def pause(self) -> None:
        """Disconnect every peer and stop dialling until `resume`."""
        self._user_paused = True
        self._paused = True
        for session in list(self.sessions.values()):
            session.close("paused")
        await trio.lowlevel.checkpoint()

    async def resume(self) -> None:
        """Undo `pause`: dial and accept peers again."""
        self._paused = self._user_paused = False
        self._pool_changed.set()
        await trio.lowlevel.checkpoint()

    async def remove(self, delete_files: bool = False) -> None:
        """Stop the torrent (saving resume data) and optionally delete its files."""
        await self.shutdown()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
            await self._stopped.wait()
        if delete_files and self.data is not None:
            await self.data.delete_files()

    def statistics(self) -> TorrentStats:
        data = self.data
        now = trio.current_time()
        down_rate, up_rate = self._rates(now)
        downloaded = data.verified_bytes() if data else 0
        payload = sum(s.downloaded for s in self.sessions.values()) + self._gone_down
        uploaded = sum(s.uploaded for s in self.sessions.values()) + self._gone_up
        left = data.wanted_left() if data else None
        eta = left / down_rate if left and down_rate > 0 else (0.0 if left == 0 else None)
        dht_nodes = 0
        if self._dht is not None:
            dht_nodes = self._dht.statistics().node.routing.nodes
        return TorrentStats(
            state=self.state,
            name=self.name,
            total_size=data.info.total_length if data else 0,
            selected_size=data.selected_size if data else 0,
            downloaded=downloaded,
            downloaded_payload=payload,
            uploaded=uploaded,
            download_rate=down_rate,
            upload_rate=up_rate,
            pieces_done=data.storage.verified().count() if data else 0,
            pieces_total=data.info.num_pieces if data else 0,
            peers=len(self.sessions),
            seeds=sum(1 for s in self.sessions.values() if is_seed(s)),
            encrypted_peers=sum(1 for s in self.sessions.values() if s.link.encrypted),
            known_peers=self.pool.statistics().known,
            metadata_peers=self.fetch.peer_count(self.sessions.values()),
            dht_nodes=dht_nodes,
            eta=eta,
            ratio=uploaded / downloaded if downloaded else 0.0,
        )

    def verified_pieces(self) -> list[bool]:
        """Per piece, whether it is verified (empty until the metadata is known).

        For callers that show per-piece or per-file progress (the daemon's
        ``pieceStates`` and ``files``); a copy, so holding it costs the engine nothing.
        """
        if self.data is None:
            return []
        have = self.data.storage.verified()
        return [have.test(i) for i in range(self.data.info.num_pieces)]

    @property
    def state(self) -> TorrentState:
        """What the torrent is doing now."""
        if self._stopped.is_set():
            return self._state  # STOPPED or ERROR
        if self._user_paused:
            return TorrentState.PAUSED
        if self._state is TorrentState.FETCHING_METADATA and not self.fetch.peer_count(
            self.sessions.values()
        ):
            return TorrentState.FINDING_PEERS  # nobody to ask for the metadata yet
        return self._state

    def _rates(self, now: float) -> tuple[float, float]:
        if len(self._samples) < 2:
            return 0.0, 0.0
        t0, d0, u0 = self._samples[0]
        t1, d1, u1 = self._samples[-1]
        span = max(t1 - t0, 1e-9)
        return (d1 - d0) / span, (u1 - u0) / span

    # ---- lifecycle ---------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until removed or cancelled (the client's nursery owns this task)."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._use_torrent_nodes()
                task_status.started()
                nursery.start_soon(self._stats_loop)
                if self.metainfo is None:
                    self._state = TorrentState.FETCHING_METADATA
                    nursery.start_soon(self._connect_loop)
                    await self._metadata_ready.wait()
                    await self._start_data()
                else:
                    # Peers only once our pieces are known: the first messages on a
                    # connection (bitfield, metadata_size) describe what we have.
                    await self._start_data()
                    nursery.start_soon(self._connect_loop)
                self._start_discovery()
                if not self.private:
                    nursery.start_soon(self._pex_loop)
                nursery.start_soon(self._choke_loop)
        except* StorageError as group:
            self.fail(f"storage error: {group.exceptions[0]}")
        finally:
            try:
                if self.data is not None:
                    # Every task using the files ended with the nursery: close them now
                    # (shielded: we are usually being cancelled), or their fds outlive
                    # us. Before `_stopped`: `remove` returns once the client forgot us.
                    with trio.CancelScope(shield=True):
                        await self.data.storage.close()
            finally:
                self._state = TorrentState.ERROR if self._error else TorrentState.STOPPED
                self._stopped.set()
                self._subs.close()

    def start_discovery_early(self) -> None:
        """Magnets need peers before metadata: start the DHT loop right away."""
        self._start_discovery()

    def _start_discovery(self) -> None:
        if self._nursery is None or self._dht is None or self._discovering or self.private:
            return
        self._discovering = True
        self._nursery.start_soon(self._discovery_loop)

    def fail(self, message: str) -> None:
        """Stop the torrent on an error it cannot recover from."""
        self._error = message
        self._subs.publish(tev.TorrentError(message))
        log.error("torrent %s: %s", self.info_hash.hex(), message)
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def shutdown(self) -> None:
        """Best-effort: save resume data (callers bound this with move_on_after)."""
        if self.data is not None:
            try:
                await self.data.save_resume()
            except StorageError as exc:
                log.warning("could not save resume data: %s", exc)

    async def _start_data(self) -> None:
        assert self.metainfo is not None
        if self.save_to is None and self.storage_factory is None:
            # metadata only (Client.fetch_metadata)
            await trio.sleep_forever()
        if self._select is not None:
            try:  # checked by Client.add already unless the files came from a magnet
                check_select(self._select, len(self.metainfo.info.files))
            except ValueError as exc:
                self.fail(str(exc))
                await trio.sleep_forever()
        self._state = TorrentState.CHECKING
        self.data = await DataPhase.open(self, self.metainfo.info, self._select, self._sequential)
        for session in list(self.sessions.values()):
            self.data.peer_joined_late(session)
        self._state = TorrentState.SEEDING if self.data.complete() else TorrentState.DOWNLOADING
        if self.data.complete():
            self.mark_complete()
        assert self._nursery is not None
        self._nursery.start_soon(self.data.run_saver)

    def mark_complete(self) -> None:
        if not self._complete.is_set():
            self._complete.set()
            self._state = TorrentState.SEEDING
            self._subs.publish(tev.Completed())
            if self.data is not None and self.data.have_all:
                for session in list(self.sessions.values()):
                    if is_seed(session):
                        session.close("both peers are seeds")
            if not self._seed:
                # Download-only: drop every peer and stop dialling (files stay open
                # for the caller, who removes the torrent when it likes).
                self._paused = True
                for session in list(self.sessions.values()):
                    session.close("download complete, not seeding")

    def metadata_verified(self, metainfo: Metainfo) -> None:
        """The fetch produced a verified info dict (called by `MetadataFetch`)."""
        self.metainfo = metainfo
        info = metainfo.info
        self._subs.publish(tev.MetadataReceived(info.name, info.total_length, info.num_pieces))
        self._metadata_ready.set()

    def publish(self, event: tev.TorrentEvent) -> None:
        self._subs.publish(event)

    def spawn(self, fn: Callable[[], Awaitable[None]]) -> None:
        """Run `fn` in the torrent's nursery (piece verification)."""
        assert self._nursery is not None
        self._nursery.start_soon(fn)

    # ---- peers -------------------------------------------------------------------

    def would_accept(self, remote: Handshake, addr: Addr) -> bool:
        """Would `accept` take this inbound peer now? (Asked before we answer it.)"""
        return not (
            self._nursery is None
            or self._paused
            or (self.metainfo is not None and self.data is None)  # still checking
            or len(self.sessions) + self._dialing >= self.config.max_peers_per_torrent
            or not self._wins_duplicate(bytes(remote.peer_id), incoming=True, dialer_end=addr)
            or self.pool.is_banned(addr)
            or addr in self.sessions
        )

    def accept(self, link: PeerLink) -> bool:
        """An inbound link from the listener; False makes the listener close it."""
        if self._nursery is None or not self.would_accept(link.remote, link.addr):
            return False
        session = self._new_session(link)
        self._register(session)  # now, not in the task: a racing dial must see it
        self._nursery.start_soon(self._serve_session, session)
        return True

    def _wins_duplicate(self, peer_id: bytes, *, incoming: bool, dialer_end: Addr | None) -> bool:
        """Should a new connection to `peer_id` be kept (one connection per peer)?

        Both ends must pick the same one: the rules are `session.duplicates`.
        """
        existing = self._by_peer_id.get(peer_id)
        facts = None
        if existing is not None:
            facts = ConnectionFacts(existing.link.incoming, existing.link.dialer_end)
        return keeps_new_connection(
            bytes(self.peer_id), peer_id, facts, ConnectionFacts(incoming, dialer_end)
        )

    def _drop_duplicate(self, peer_id: bytes) -> None:
        existing = self._by_peer_id.pop(peer_id, None)
        if existing is not None:
            existing.close("duplicate connection (the other one won)")

    def ban(self, addr: Addr, reason: str) -> None:
        """Disconnect `addr` and never talk to it again (for this torrent)."""
        if self.pool.is_banned(addr):
            return
        self.pool.ban(addr)
        self._subs.publish(tev.PeerBanned(addr, reason))
        session = self.sessions.get(addr)
        if session is not None:
            session.close(f"banned: {reason}")

    async def _connect_loop(self) -> None:
        while True:
            free = self.config.max_peers_per_torrent - len(self.sessions) - self._dialing
            now = trio.current_time()
            if not self._paused and free > 0:
                for addr in self.pool.pop_candidates(now, free):
                    self._dialing += 1
                    assert self._nursery is not None
                    self._nursery.start_soon(self._dial, addr)
            at = self.pool.next_ready_time(now)
            if at is None and not self.sessions and not self._dialing:
                self._pool_dry.set()
            with trio.move_on_at(math.inf if at is None or at <= now else at):
                await self._pool_changed.wait()
            self._pool_changed = trio.Event()
            await trio.sleep(0.05)  # coalesce bursts of PEX/DHT additions

    async def _dial(self, addr: Addr) -> None:
        try:
            link = await self._dialer.dial(addr, self.info_hash)
        except (*PEER_ERRORS, OSError) as exc:
            log.debug("dial %s failed: %s", addr, exc)
            if isinstance(exc, HandshakeError) and exc.hint == SELF_CONNECTION:
                self.pool.ban(addr)  # ourselves: never again, and not a live candidate
            else:
                self.pool.failed(addr, trio.current_time())
            return
        finally:
            self._dialing -= 1
        peer_id = bytes(link.remote.peer_id)
        if self._paused or not self._wins_duplicate(
            peer_id, incoming=False, dialer_end=link.dialer_end
        ):
            await trio.aclose_forcefully(link.stream)
            self.pool.closed(addr, trio.current_time())
            return
        self.pool.connected(addr)
        try:
            session = self._new_session(link)
        except BaseException:
            await trio.aclose_forcefully(link.stream)
            raise
        self._register(session)
        await self._serve_session(session)

    def _register(self, session: PeerSession) -> None:
        """Make `session` the connection to its peer (closing a losing duplicate)."""
        link = session.link
        self._drop_duplicate(bytes(link.remote.peer_id))
        self.sessions[link.addr] = session
        self._by_peer_id[bytes(link.remote.peer_id)] = session

    def _new_session(self, link: PeerLink) -> PeerSession:
        data = self.data
        info = data.info if data is not None else None
        return PeerSession(
            link,
            self.info_hash,
            self.peer_id,
            self,
            num_pieces=info.num_pieces if info else None,
            our_pieces=data.storage.verified() if data else None,
            piece_length=info.piece_length if info else None,
            total_length=info.total_length if info else None,
            metadata_size=len(info.raw) if info else None,
            config=ConnectionConfig(listen_port=self._listen_port, enable_pex=not self.private),
            rng=self._rng,
        )

    async def _serve_session(self, session: PeerSession) -> None:
        link = session.link
        if link.incoming:
            self.peers_found([link.addr], PeerSource.INCOMING)
        self._subs.publish(tev.PeerConnected(link.addr, "", link.encrypted, link.incoming))
        try:
            dropped = await session.run()
        finally:
            if self.sessions.get(link.addr) is session:
                del self.sessions[link.addr]
            if self._by_peer_id.get(bytes(link.remote.peer_id)) is session:
                del self._by_peer_id[bytes(link.remote.peer_id)]
            self._gone_down += session.downloaded
            self._gone_up += session.uploaded
            self.fetch.peer_left(session)
            if self.data is not None:
                self.data.peer_left(session)
            self.pool.closed(link.addr, trio.current_time())
            if session.listen_addr is not None and session.listen_addr != link.addr:
                self.pool.closed(session.listen_addr, trio.current_time())
            self._pool_changed.set()
        self._subs.publish(tev.PeerDisconnected(dropped.addr, dropped.reason))

    async def on_peer_event(self, session: PeerSession, event: ev.PeerEvent) -> None:
        """Everything a session's engine reports (see the module docstring)."""
        conn = session.conn
        if isinstance(event, ev.ExtendedHandshakeReceived):
            hs = event.handshake
            if hs.p and session.link.incoming:
                # BEP 10 ``p``: where the peer listens, for PEX and later redials.
                session.listen_addr = (session.addr[0], hs.p)
                self.peers_found([session.listen_addr], PeerSource.INCOMING)  # no redial
            if self.metainfo is None:
                self._request_metadata()
        elif isinstance(event, ev.MetadataPieceReceived):
            self._metadata_piece(session, event.piece, event.data)
        elif isinstance(event, ev.MetadataRejected):
            self.fetch.rejected(session, event.piece)
            self._request_metadata()
        elif isinstance(event, ev.MetadataRequested):
            self._serve_metadata(session, event.piece)
        elif isinstance(event, ev.HandshakeReceived):
            # BEP 5: tell DHT-capable peers our node's UDP port (not for BEP 27).
            if self._dht is not None and not self.private and event.reserved & ReservedBits.DHT:
                conn.send_port(self._dht.address[1])
        elif isinstance(event, ev.PortReceived):
            if self._dht is not None and not self.private and event.port:
                self._dht.add_nodes([(session.addr[0], event.port)])
        elif isinstance(event, ev.PexReceived):
            self.peers_found([peer.addr for peer in event.added[:50]], PeerSource.PEX)
        elif self.data is not None:
            await self.data.on_peer_event(session, event)
        if conn.state is ConnectionState.OPEN:
            session.wake()

    def _request_metadata(self) -> None:
        for session in self.fetch.request_more(self.sessions.values(), trio.current_time()):
            session.wake()

    def _metadata_piece(self, session: PeerSession, piece: int, data: bytes) -> None:
        outcome = self.fetch.piece_received(session, piece, data)
        if isinstance(outcome, MetadataBadHash):
            # One SHA-1 over the whole dict: every contributor is suspect.
            for culprit in outcome.blamed:
                self.ban(culprit.addr, "sent metadata that does not match the info-hash")
        elif isinstance(outcome, MetadataInvalid):
            self.fail(outcome.message)
            return
        elif isinstance(outcome, MetadataDone):
            self.metadata_verified(outcome.metainfo)
            return
        self._request_metadata()

    def _serve_metadata(self, session: PeerSession, piece: int) -> None:
        if session.conn.state is not ConnectionState.OPEN:
            return
        info = self.metainfo.info if self.metainfo is not None else None
        if info is None or not 0 <= piece * 16384 < len(info.raw):
            session.conn.send_metadata_reject(piece)
            return
        chunk = info.raw[piece * 16384 : (piece + 1) * 16384]
        session.conn.send_metadata_data(piece, len(info.raw), chunk)

    # ---- background loops ------------------------------------------------------------

    async def _discovery_loop(self) -> None:
        assert self._dht is not None
        # Look again after 1, 2, 4, ... s, then every DHT_INTERVAL: a swarm that is
        # forming (peers announcing right after us) is found within seconds.
        retry = 1.0
        while not self.private:  # a magnet's metadata may turn out private (BEP 27)
            async for addr in self._dht.get_peers(self.info_hash):
                self.peers_found([addr], PeerSource.DHT)
            if self._listen_port:
                seeding = self.state is TorrentState.SEEDING  # BEP 33 scrapes count seeds
                await self._dht.announce(self.info_hash, self._listen_port, seed=seeding)
            looked_up = trio.current_time()
            self._pool_dry = trio.Event()
            self._pool_changed.set()  # the connect loop re-checks, and says if still dry
            with trio.move_on_after(retry):
                await self._pool_dry.wait()
                await trio.sleep_until(looked_up + DRY_RELOOKUP)
            retry = min(DHT_INTERVAL, retry * 2)

    async def _choke_loop(self) -> None:
        while True:
            if self.data is not None:
                self.data.rechoke(self.sessions.values())
            await trio.sleep(10.0)

    async def _pex_loop(self) -> None:
        """BEP 11: tell each peer which peers we are connected to, as deltas."""
        tracker: PexTracker[PeerSession] = PexTracker()
        while True:
            await trio.sleep(PEX_INTERVAL)
            live = {s.listen_addr for s in self.sessions.values() if s.listen_addr is not None}
            for session in list(self.sessions.values()):
                conn = session.conn
                if conn.state is not ConnectionState.OPEN or not conn.peer_supports(UT_PEX):
                    continue
                added, dropped = tracker.delta(session, live, session.listen_addr)
                if added or dropped:
                    conn.send_pex([PexPeer(a) for a in added], dropped)
                    session.wake()
            tracker.retain(set(self.sessions.values()))

    async def _stats_loop(self) -> None:
        while True:
            now = trio.current_time()
            down = self._gone_down + sum(s.downloaded for s in self.sessions.values())
            up = self._gone_up + sum(s.uploaded for s in self.sessions.values())
            self._samples.append((now, down, up))
            while self._samples and self._samples[0][0] < now - RATE_WINDOW:
                self._samples.popleft()
            if self.metainfo is None and self.sessions:
                self.fetch.handle_timer(now)
                self._request_metadata()
            self._subs.publish(tev.Progress(self.statistics()))
            await trio.sleep(1.0)
