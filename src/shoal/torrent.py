"""Torrent: the Trio driver of one `TorrentEngine`, and the user's handle.

Theory of operation
-------------------
Every swarm decision is made by the pure `shoal.session.engine.TorrentEngine`; this
module is its thin driver, of the same shape as `DHTService`
(aioquic's protocol/transport split). `Torrent.run` owns one nursery (docs/style.md
4.3) with:

* one `EngineSession` per connection (reader and writer; inbound links arrive
  through `accept`, called by the listener; outgoing ones from `_dial`);
* ``_timer_loop``: sleeps until the engine's `get_timer()` or the pool's next dial
  time, then `handle_timer(now)` (rechoke, PEX, request deadlines, keep-alives,
  metadata request timeouts, redials);
* ``_discovery_loop``: DHT get_peers + announce (not for private torrents, BEP 27),
  after 1, 2, 4 ... s, then every 5 minutes; every `DRY_RELOOKUP` s while no peer is
  connected and the pool has nobody left to dial;
* ``_stats_loop``: rate windows and `Progress` events once a second;
* short tasks for the disk: one per piece to verify (SHA-1 in a thread) or to read
  for uploads, the resume saver, the final flush.

After every input the driver calls `_pump`, which carries out the engine's commands
(`shoal.session.commands`) and wakes the writers of connections with bytes queued. It
is synchronous: a block goes from the socket through the engine into the storage's
piece buffer (`write_block_now`) without an await, and a request for a piece not in
the engine's read cache becomes a `ReadPiece` task, so a slow disk never stalls the
reader. Two mixins of `Torrent` hold parts of it: `TorrentCommands`
(``torrent_commands.py``: the commands carried out) and `TorrentReporting`
(``torrent_report.py``: statistics and progress events).
"""

from __future__ import annotations

import logging
import math
import random
from collections import deque
from typing import TYPE_CHECKING, Final, final

import trio

from . import torrent_events as tev
from ._torrent_data import DataFiles
from .config import EncryptionMode
from .errors import HandshakeError, MetadataError, StorageError
from .net.bandwidth import add_channels, torrent_channels
from .net.dialer import SELF_CONNECTION
from .net.peer_session import PEER_ERRORS, EngineSession
from .net.utp_transport import is_utp
from .peer.config import ConnectionConfig
from .session.engine import EngineConfig, TorrentEngine
from .session.send_budget import SendBudget
from .swarm.peer_pool import PeerSource
from .torrent_commands import TorrentCommands
from .torrent_parts import Session, Subscriptions, check_select, dht_contacts
from .torrent_report import RATE_WINDOW as RATE_WINDOW
from .torrent_report import TorrentReporting
from .torrent_stats import TorrentState, TorrentStats

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

    from .config import ClientConfig
    from .dht_client import DHT
    from .ids import InfoHash, PeerId
    from .ipfilter import IPFilter
    from .metainfo import Metainfo
    from .net.bandwidth import BandwidthManager
    from .net.dialer import Dialer, PeerLink
    from .peer.handshake import Handshake
    from .storage.base import StorageFactory
    from .swarm.peer_pool import PeerPool

__all__ = ["Torrent", "TorrentState", "TorrentStats", "check_select"]

log = logging.getLogger(__name__)

Addr = tuple[str, int]

#: BEP 11: PEX "no more than once a minute" (read when a torrent is created).
PEX_INTERVAL: Final = 60.0
#: DHT re-lookup (BEP 5 peers expire after about 30 minutes; announce well within).
DHT_INTERVAL: Final = 300.0
#: With no peer connected and nothing left to dial, look the DHT up again this soon
#: instead of waiting out `DHT_INTERVAL` (issue 4: "re-lookup when the pool runs dry");
#: the floor keeps a dead swarm from costing more than one lookup per interval.
DRY_RELOOKUP: Final = 15.0
_EVENT_BUFFER: Final = 256


@final
class Torrent(TorrentCommands, TorrentReporting):
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
        send_budget: SendBudget | None = None,
    ) -> None:
        self.info_hash: Final = info_hash
        #: The client's (shared by its torrents); a torrent made alone has its own.
        self.send_budget = send_budget or SendBudget(config.max_send_queued)
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
        self._rng = rng or random.SystemRandom()
        private = metainfo is not None and metainfo.info.private
        self.engine = TorrentEngine(
            info_hash,
            peer_id,
            rng=self._rng,
            now=trio.current_time(),
            metainfo=metainfo,
            config=EngineConfig(
                max_peers=config.max_peers_per_torrent,
                upload_slots=config.upload_slots,
                listen_port=listen_port or None,
                dht_port=dht.address[1] if dht is not None and not private else None,
                private=private,
                seed=seed,
                connection=ConnectionConfig(listen_port=listen_port, anonymous=config.anonymous),
                pex_interval=PEX_INTERVAL,
                retry_plaintext=config.encryption is EncryptionMode.PREFER,
                send_budget=self.send_budget,
                # BEP 55 needs uTP dials (a relay's ``connect``); never when anonymous.
                holepunch=dialer.holepunch_transport is not None and not config.anonymous,
            ),
        )
        for addr in peers:
            self.engine.pool.add(addr, PeerSource.USER)  # dialled once run() starts
        self._conns: dict[int, Session] = {}
        self.sessions: dict[Addr, Session] = {}
        self._state = TorrentState.FINDING_PEERS
        self._metadata_ready = trio.Event()
        self._complete = trio.Event()
        self._stopped = trio.Event()
        self._timer_moved = trio.Event()
        self._timer_at = math.inf
        self._pool_dry = trio.Event()
        self._subs = Subscriptions()
        #: The client's rate limiter (`set_limits`); set by `Client.add`.
        self.bandwidth: BandwidthManager | None = None
        self._nursery: trio.Nursery | None = None
        self._error: str | None = None
        self.data: DataFiles | None = None
        self.resumed_bytes: int | None = None
        self._checked = 0.0  # share of the recheck done (CHECKING state only)
        self._select = select
        self._file_levels: tuple[int, ...] | None = None  # set_file_priorities
        self._sequential = sequential
        self._samples: deque[tuple[float, int, int]] = deque()
        self._user_paused = False
        self._discovering = False
        self._completing = False

    # ---- public API --------------------------------------------------------------

    @property
    def metainfo(self) -> Metainfo | None:
        return self.engine.metainfo

    @property
    def pool(self) -> PeerPool:
        return self.engine.pool

    @property
    def name(self) -> str | None:
        return self.metainfo.info.name if self.metainfo is not None else self._name

    @property
    def private(self) -> bool:
        return self.engine.private

    async def wait_metadata(self) -> Metainfo:
        """Wait until the info dict is known (at once for .torrent sources).

        Raises:
            MetadataError: the torrent stopped first (removed, or an error).
        """
        if self.metainfo is None and not await self._wait_unless_stopped(self._metadata_ready):
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
        a magnet's ``x.pe``. Returns how many were new (PEX is ignored for private
        torrents, BEP 27). Addresses the IP filter blocks never enter the pool."""
        flt = self.config.ip_filter
        found = [a for a in addrs if flt is None or not flt.blocks(a[0])]
        new = self.engine.peers_found(found, source, trio.current_time())
        self._pump()
        return new

    async def pause(self) -> None:
        """Disconnect every peer and stop dialling until `resume`."""
        self._user_paused = True
        self.engine.pause(trio.current_time())
        self._pump()
        await trio.lowlevel.checkpoint()

    async def resume(self) -> None:
        """Undo `pause`: dial and accept peers again."""
        self._user_paused = False
        self.engine.resume(trio.current_time())
        self._pump()
        await trio.lowlevel.checkpoint()

    async def remove(self, delete_files: bool = False) -> None:
        """Stop the torrent (saving resume data) and optionally delete its files."""
        await self.shutdown()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
            await self._stopped.wait()
        if delete_files and self.data is not None:
            await self.data.delete_files()

    def set_file_priorities(self, levels: Sequence[int]) -> None:
        """Download order of the selected files: one level per file, 1 (low) .. 4
        (normal) .. 7 (top); higher levels' pieces are requested first. Which files
        are selected is fixed at `Client.add` (``select``). Kept for the data phase if
        the metadata is still missing.

        Raises:
            ValueError: not one level in 1..7 per file (once the metadata is known).
        """
        self._file_levels = tuple(levels)
        if self.data is not None and self.engine.data is not None:
            self.engine.data.picker.set_priorities(self.data.piece_priorities(levels))
            self._pump()

    @property
    def state(self) -> TorrentState:
        """What the torrent is doing now."""
        if self._stopped.is_set():
            return self._state  # STOPPED or ERROR
        if self._user_paused:
            return TorrentState.PAUSED
        if self._state is TorrentState.FETCHING_METADATA and not self.engine.metadata_peers():
            return TorrentState.FINDING_PEERS  # nobody to ask for the metadata yet
        return self._state

    # ---- lifecycle ---------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until removed or cancelled (the client's nursery owns this task)."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._use_torrent_nodes()
                self._pump()  # what was queued before we ran (e.g. a magnet's peers)
                task_status.started()
                nursery.start_soon(self._stats_loop)
                nursery.start_soon(self._timer_loop)
                if self.metainfo is None:
                    self._state = TorrentState.FETCHING_METADATA
                    self.engine.dial_more(trio.current_time())
                    self._pump()
                    await self._metadata_ready.wait()
                await self._start_data()
                self._start_discovery()
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

    def _use_torrent_nodes(self) -> None:
        """BEP 5: a .torrent's ``nodes`` are DHT bootstrap contacts (not peers).

        Only IP literals: a name would need a DNS lookup chosen by an untrusted file.
        """
        if self._dht is None or self.metainfo is None or self.private:
            return
        contacts = dht_contacts(self.metainfo.nodes)
        if contacts:
            self._dht.add_nodes(contacts)

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
        info = self.metainfo.info
        self.data = data = await DataFiles.open(self, info, self._select, self._checking)
        #: Verified bytes found on disk when the data phase opened (resume data or a
        #: recheck), before this run fetched anything: "resuming at N%".
        self.resumed_bytes = data.verified_bytes()
        have = data.storage.verified()
        self.engine.start_data(
            info, have, data.priorities, sequential=self._sequential, now=trio.current_time()
        )
        plane = self.engine.data
        assert plane is not None
        if self._file_levels is not None:
            try:  # given before the metadata was known: checked only now
                plane.picker.set_priorities(data.piece_priorities(self._file_levels))
            except ValueError as exc:
                self.fail(str(exc))
                await trio.sleep_forever()
        done = plane.picker.is_complete()
        self._state = TorrentState.SEEDING if done else TorrentState.DOWNLOADING
        assert self._nursery is not None
        self._nursery.start_soon(data.run_saver)
        self._pump()

    # ---- the engine's inputs and outputs ---------------------------------------------

    def _pump(self) -> None:
        """Carry out the engine's commands and wake writers (never awaits)."""
        engine = self.engine
        if self._nursery is None:
            return  # not running yet: the commands wait in the engine until `run`
        while commands := engine.commands():
            for command in commands:
                self._do(command)
        for key in engine.dirty_peers():
            session = self._conns.get(key)
            if session is not None:
                session.io.wake()
        timer = engine.get_timer()
        if timer is not None and timer < self._timer_at:
            self._timer_moved.set()
        if engine.pool_dry():
            self._pool_dry.set()

    # ---- connections ---------------------------------------------------------------

    def session_data(self, key: int, data: bytes) -> None:
        self.engine.peer_data(key, data, trio.current_time())
        self._pump()

    def session_output(self, key: int) -> list[bytes | bytearray | memoryview]:
        return self.engine.data_to_send(key)

    def session_backlog(self, key: int) -> int:
        peer = self.engine.peers.get(key)
        return 0 if peer is None else peer.conn.send_backlog

    def session_ended(self, key: int, reason: str) -> None:
        self.engine.peer_closed(key, reason, trio.current_time())
        self._pump()

    def would_accept(self, remote: Handshake, addr: Addr) -> bool:
        """Would `accept` take this inbound peer now? (Asked before we answer it.)"""
        return self._nursery is not None and self.engine.would_accept(
            bytes(remote.peer_id), addr, addr
        )

    def accept(self, link: PeerLink) -> bool:
        """An inbound link from the listener; False makes the listener close it."""
        if self._nursery is None:
            return False
        session = self._connected(link)
        if session is None:
            return False
        self._nursery.start_soon(session.io.run)
        return True

    def _connected(self, link: PeerLink) -> Session | None:
        """Hand a handshaken link to the engine; None if it refused it."""
        key = self.engine.peer_connected(
            link.addr,
            link.remote,
            link.trailing_data,
            incoming=link.incoming,
            encrypted=link.encrypted,
            dialer_end=link.dialer_end,
            now=trio.current_time(),
            utp=is_utp(link.stream),
        )
        session = None
        if key is not None:
            if self.bandwidth is not None:  # charge this torrent's limits too
                down, up = torrent_channels(self.info_hash)
                add_channels(link.stream, down=down, up=up)
            io = EngineSession(link, key, self, self.send_budget)
            session = Session(io, self.engine.peers[key])
            self._conns[key] = session
            self.sessions[link.addr] = session
        self._pump()
        return session

    def set_limits(self, *, download: int | None = None, upload: int | None = None) -> None:
        """This torrent's rate limits in bytes/s (None: unlimited), under the client's.

        Applies at once to connected peers and to those that connect later.
        """
        if self.bandwidth is None:
            raise RuntimeError("set_limits needs a torrent added to a running client")
        down, up = torrent_channels(self.info_hash)
        self.bandwidth.set_rate(down, download)
        self.bandwidth.set_rate(up, upload)

    def ban(self, addr: Addr, reason: str) -> None:
        """Disconnect `addr` and never talk to it again (for this torrent)."""
        self.engine.ban(addr, reason, trio.current_time())
        self._pump()

    def drop_blocked(self, ip_filter: IPFilter) -> int:
        """Close every connection to an address `ip_filter` blocks (it was just swapped
        in by `Client.set_ip_filter`); returns how many were closed."""
        now = trio.current_time()
        keys = [k for k, p in self.engine.peers.items() if ip_filter.blocks(p.addr[0])]
        for key in keys:
            self.engine.close_peer(key, "blocked by the IP filter", now)
        self._pump()
        return len(keys)

    def publish(self, event: tev.TorrentEvent) -> None:
        self._subs.publish(event)

    async def _dial(self, addr: Addr, plaintext: bool = False, utp: bool = False) -> None:
        try:
            if plaintext:
                link = await self._dialer.dial(addr, self.info_hash, plaintext=True)
            elif utp:  # a BEP 55 hole punch: uTP now, while the peer dials us
                link = await self._dialer.dial(addr, self.info_hash, holepunch=True)
            else:
                link = await self._dialer.dial(addr, self.info_hash)
        except (*PEER_ERRORS, OSError) as exc:
            log.debug("dial %s failed: %s", addr, exc)
            itself = isinstance(exc, HandshakeError) and exc.hint == SELF_CONNECTION
            self.engine.dial_failed(addr, trio.current_time(), self_connection=itself)
            self._pump()
            return
        flt = self.config.ip_filter
        if flt is not None and flt.blocks(addr[0]):  # blocked by a reload while dialling
            await trio.aclose_forcefully(link.stream)
            self.engine.dial_failed(addr, trio.current_time())
            self._pump()
            return
        try:
            session = self._connected(link)
        except BaseException:
            await trio.aclose_forcefully(link.stream)
            raise
        if session is None:
            await trio.aclose_forcefully(link.stream)
            return
        await session.io.run()

    # ---- background loops ------------------------------------------------------------

    async def _timer_loop(self) -> None:
        """Fire the engine's timers; dial when the pool's back-off allows."""
        engine = self.engine
        while True:
            now = trio.current_time()
            at = engine.get_timer()
            dial = engine.next_dial_time(now)
            if dial is not None and dial > now and (at is None or dial < at):
                at = dial
            self._timer_at = math.inf if at is None else at
            self._timer_moved = trio.Event()
            with trio.move_on_at(self._timer_at):
                await self._timer_moved.wait()
            now = trio.current_time()
            engine.handle_timer(now)
            self._pump()
            await trio.sleep(0.01)  # coalesce: timers of many peers fire in one pass

    async def _discovery_loop(self) -> None:
        assert self._dht is not None
        # Look again after 1, 2, 4, ... s, then every DHT_INTERVAL: a swarm that is
        # forming (peers announcing right after us) is found within seconds.
        retry = 1.0
        while not self.private:  # a magnet's metadata may turn out private (BEP 27)
            # BEP 33: a seed asks for non-seeds only (noseed), and announces as a seed
            # so that scrapes count it.
            seeding = self.state is TorrentState.SEEDING
            async for addr in self._dht.get_peers(self.info_hash, noseed=seeding):
                self.peers_found([addr], PeerSource.DHT)
            if self._listen_port:
                await self._dht.announce(self.info_hash, self._listen_port, seed=seeding)
            looked_up = trio.current_time()
            self._pool_dry = trio.Event()
            self._pump()  # says whether the pool is still dry
            with trio.move_on_after(retry):
                await self._pool_dry.wait()
                await trio.sleep_until(looked_up + DRY_RELOOKUP)
            retry = min(DHT_INTERVAL, retry * 2)
