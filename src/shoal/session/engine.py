"""`TorrentEngine`: one torrent's swarm logic, sans-IO (the way wsproto builds on h11).

Theory of operation
-------------------
The engine owns everything a torrent decides: the `PeerPool` (who to dial), the
`PeerConnection` engine of every connected peer, the BEP 9 `MetadataFetch`, and, once
the info dict is known, the `DataPlane` (picker, choker, smart ban, uploads). It does
no I/O, reads no clock and draws no randomness of its own (``now`` and ``rng`` come in).

Inputs (one synchronous method per kind; none awaits):

* peers: `peers_found(addrs, source)`, `peer_connected(...)` (a parsed handshake plus
  the bytes after it), `peer_data(key, data, now)`, `peer_closed(key, reason, now)`,
  `dial_failed(addr, now)`;
* disk: `write_refused(index)`, `piece_checked(index, ok, data, now)`,
  `piece_read(index, data, now)`, `start_data(...)`, `completion_flushed(now)`;
* time: `handle_timer(now)` when `get_timer()` passes.

Outputs: `commands()` (dial, close a peer, write / verify / read a piece, publish an
event, ...: `session.commands`), `dirty_peers()` (connections with bytes queued:
drain each with `data_to_send(key)`) and `get_timer()`. After every input the driver
drains both. A peer is named by an ``int`` key; a closed peer's key is never reused.

Connections: of two connections to one peer id, `session.duplicates` decides (both
ends agree); a peer's protocol error closes that peer only (`ClosePeer` with the
reason). A peer that leaves cleanly right after taking our metadata is redialled
after `REDIAL_AFTER_METADATA` s: clients switching from the magnet to the torrent do
that, and waiting out the normal back-off would leave us idle (issue 9).

BEP 55 hole punching (`EngineConfig.holepunch`): `session.holepunch.Holepunch` decides,
the engine relays its messages and turns a relay's ``connect`` into `Dial(utp=True)`.

Mixins carry parts of the engine (it owns all the state): `HolepunchInputs` (BEP 55),
`InfoPhaseInputs` (BEP 9 metadata, then the data phase's disk inputs) and
`UpkeepInputs` (PEX rounds, peer turnover).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final, final

from .. import torrent_events as tev
from ..errors import DecodeError, RemoteProtocolError
from ..peer import events as ev
from ..peer.config import ConnectionConfig
from ..peer.connection import PeerConnection
from ..peer.handshake import ReservedBits
from ..swarm.peer_pool import BASE_BACKOFF, PeerPool, PeerSource
from ..swarm.turnover import TurnoverPolicy
from . import commands as cmd
from .duplicates import ConnectionFacts, keeps_new_connection
from .holepunch import Holepunch, HolepunchInputs
from .info_phase import InfoPhaseInputs
from .metadata_fetch import MetadataFetch
from .peer import EnginePeer, client_name
from .pex import PexTracker
from .upkeep import UpkeepInputs

if TYPE_CHECKING:
    import random
    from collections.abc import Iterable

    from ..ids import InfoHash, PeerId
    from ..metainfo import Metainfo
    from ..peer.handshake import Handshake
    from .data import DataPlane
    from .send_budget import SendBudget

__all__ = ["REDIAL_AFTER_METADATA", "EngineConfig", "TorrentEngine"]

Addr = tuple[str, int]

#: BEP 11: PEX "no more than once a minute".
PEX_INTERVAL: Final = 60.0
#: A peer that took our metadata and hung up is redialled this soon (issue 9).
REDIAL_AFTER_METADATA: Final = 2.0
#: BEP 11 caps "added" per message; more in one message is not believed either.
_PEX_ACCEPT: Final = 50


@final
@dataclass(frozen=True, slots=True)
class EngineConfig:
    """The engine's knobs (the driver fills them from `ClientConfig`)."""

    max_peers: int = 50
    upload_slots: int = 4
    listen_port: int | None = None
    #: Our DHT node's UDP port, sent to DHT-capable peers (BEP 5 ``port``).
    dht_port: int | None = None
    private: bool = False
    #: Keep serving after completing (False: drop every peer once complete).
    seed: bool = True
    connection: ConnectionConfig | None = None
    pex_interval: float = PEX_INTERVAL
    #: Encryption is preferred, not required: a peer that drops our encrypted
    #: connection before its BEP 10 handshake is redialled once in plaintext.
    retry_plaintext: bool = False
    #: The client-wide send budget, shared by every torrent (None: this torrent's
    #: own, unlimited; each peer is still capped at `MAX_SEND_BACKLOG`).
    send_budget: SendBudget | None = None
    #: BEP 55: advertise ut_holepunch, relay for others and punch through relays (the
    #: driver sets it when it can dial uTP, which a ``connect`` asks for).
    holepunch: bool = False


@final
class TorrentEngine(HolepunchInputs, InfoPhaseInputs, UpkeepInputs):
    """One torrent's swarm, sans-IO (see the module docstring)."""

    def __init__(
        self,
        info_hash: InfoHash,
        peer_id: PeerId,
        *,
        rng: random.Random,
        now: float,
        config: EngineConfig | None = None,
        metainfo: Metainfo | None = None,
    ) -> None:
        self.info_hash: Final = info_hash
        self.peer_id: Final = peer_id
        self.config = config or EngineConfig()
        self._rng = rng
        self.metainfo = metainfo
        self.private = self.config.private or (metainfo is not None and metainfo.info.private)
        self.pool = PeerPool()
        self.fetch: MetadataFetch[EnginePeer] = MetadataFetch(bytes(info_hash))
        self.data: DataPlane | None = None
        self.peers: dict[int, EnginePeer] = {}
        self._by_id: dict[bytes, EnginePeer] = {}
        self._dialing: set[Addr] = set()
        self._next_key = 0
        self._commands: list[cmd.Command] = []
        self._dirty: dict[int, None] = {}
        self._pex: PexTracker[EnginePeer] = PexTracker()
        self.holepunch = Holepunch()
        self._next_pex = now + self.config.pex_interval
        #: Which useless peers to close when every slot is taken and others wait.
        self.turnover = TurnoverPolicy()
        self._next_turnover = now + 1.0
        self._refused_full = False  # an inbound peer was refused for lack of a slot
        self._refused_full_at = -1e18
        self.paused = False
        self.complete = False
        #: Payload counters of peers that have left.
        self.gone_down = 0
        self.gone_up = 0

    # ---- outputs -------------------------------------------------------------------

    def commands(self) -> list[cmd.Command]:
        """Drain the queued commands, in order."""
        out, self._commands = self._commands, []
        return out

    def dirty_peers(self) -> list[int]:
        """Keys of connections with bytes queued since the last call."""
        out = list(self._dirty)
        self._dirty.clear()
        return out

    def data_to_send(self, key: int) -> list[bytes | bytearray | memoryview]:
        """Drain connection `key`'s bytes (empty if it is gone)."""
        peer = self.peers.get(key)
        return peer.conn.data_to_send() if peer is not None else []

    def get_timer(self) -> float | None:
        """The earliest deadline of any part, or None."""
        times: list[float] = []
        for peer in self.peers.values():
            t = peer.conn.get_timer()
            if t is not None:
                times.append(t)
        t = self.fetch.get_timer() if self.metainfo is None else None
        if t is not None:
            times.append(t)
        if self.data is not None:
            times.append(self.data.next_rechoke)
        if self.peers and not self.private:
            times.append(self._next_pex)
        if len(self.peers) >= self.turnover.cutoff * self.config.max_peers:
            times.append(self._next_turnover)
        return min(times, default=None)

    # ---- peers found and dialled ---------------------------------------------------

    def peers_found(
        self, addrs: Iterable[Addr], source: PeerSource, now: float, *, named_by: str | None = None
    ) -> int:
        """Every peer source enters here; returns how many addresses were new.

        `named_by`: the IP of the peer that sent these in PEX (it may name LAN
        addresses only if it is on a LAN itself: `PeerPool.add`).
        """
        if source is PeerSource.PEX and self.private:
            return 0  # BEP 27
        new = sum(1 for addr in addrs if self.pool.add(addr, source, named_by=named_by))
        if new:
            self._dial_more(now)
        return new

    def _connectable(self) -> bool:
        """Peers only once our pieces are known (the first messages on a connection
        describe what we have), or while fetching a magnet's metadata."""
        return (
            not self.paused
            and not (self.complete and not self.config.seed)
            and (self.metainfo is None or self.data is not None)
        )

    def _dial_more(self, now: float) -> None:
        if not self._connectable():
            return
        free = self.config.max_peers - len(self.peers) - len(self._dialing)
        if free <= 0:
            return
        for addr in self.pool.pop_candidates(now, free):
            self._dialing.add(addr)
            self._commands.append(cmd.Dial(addr))

    def next_dial_time(self, now: float) -> float | None:
        """When dialling could resume (the pool's back-off), for the driver's wait."""
        return self.pool.next_ready_time(now)

    def dial_more(self, now: float) -> None:
        """Dial what the pool allows now (the driver calls this at `next_dial_time`)."""
        self._dial_more(now)

    def dial_failed(self, addr: Addr, now: float, *, self_connection: bool = False) -> None:
        self._dialing.discard(addr)
        if self_connection:
            self.pool.ban(addr)  # ourselves: never again
            self.holepunch.punching.discard(addr)  # (a relay may name us to us)
            return
        if self._in_use(addr):  # uTP: the peer reached us from addr, and that one won
            return
        self.pool.failed(addr, now)
        if self.config.holepunch:
            self._rendezvous(addr, now)

    def _in_use(self, addr: Addr) -> bool:
        """Whether a dial or a connection still holds `addr`'s pool entry busy.

        Over uTP a peer's connections to us come from its listen address, the one we
        dial, so one address can carry an incoming connection and our dial at once;
        the entry is released when the last of them ends.
        """
        return addr in self._dialing or any(
            addr in (p.addr, p.listen_addr) for p in self.peers.values()
        )

    @property
    def dialing(self) -> int:
        return len(self._dialing)

    def pool_dry(self) -> bool:
        """Nobody connected, nobody being dialled, nobody left to dial."""
        return not self.peers and not self._dialing and self.pool.next_ready_time(0.0) is None

    # ---- connections -----------------------------------------------------------------

    def would_accept(self, peer_id: bytes, addr: Addr, dialer_end: Addr | None) -> bool:
        """Would an inbound connection from `addr` be kept (asked before we answer)?

        A peer refused only for lack of a slot counts as waiting (peer turnover).
        """
        if len(self.peers) + len(self._dialing) >= self.config.max_peers:
            self._refused_full = True
        same = self._by_id.get(peer_id)  # its address may be this one's (uTP)
        return not (
            not self._connectable()
            or len(self.peers) + len(self._dialing) >= self.config.max_peers
            or self.pool.is_banned(addr)
            or any(p.addr == addr and p is not same for p in self.peers.values())
            or not self._keeps(peer_id, addr, incoming=True, dialer_end=dialer_end)
        )

    def _keeps(
        self, peer_id: bytes, addr: Addr, *, incoming: bool, dialer_end: Addr | None
    ) -> bool:
        existing = self._by_id.get(peer_id)
        facts = (
            None if existing is None else ConnectionFacts(existing.incoming, existing.dialer_end)
        )
        if (
            facts is None
            and incoming
            and (addr in self.holepunch.punching or addr in self._dialing)
        ):
            # Simultaneous open: our dial to it (a BEP 55 punch, or a plain uTP dial: a
            # uTP peer connects from its listen address) is out. Judge as if it had
            # connected, so both ends keep the same one (session/duplicates.py).
            facts = ConnectionFacts(False, None)
        return keeps_new_connection(
            bytes(self.peer_id), peer_id, facts, ConnectionFacts(incoming, dialer_end)
        )

    def peer_connected(
        self,
        addr: Addr,
        remote: Handshake,
        trailing_data: bytes,
        *,
        incoming: bool,
        encrypted: bool,
        dialer_end: Addr | None,
        now: float,
        utp: bool = False,
    ) -> int | None:
        """Both handshakes are done: take the connection (its key) or refuse it (None:
        the driver closes the stream). `trailing_data` is fed as the first input;
        `utp`: the link runs over uTP (PEX then flags the peer as supporting it)."""
        if not incoming:
            self._dialing.discard(addr)
        peer_id = bytes(remote.peer_id)
        keep = self._keeps(peer_id, addr, incoming=incoming, dialer_end=dialer_end)
        if (
            self.paused
            or not keep
            or (incoming and not self.would_accept(peer_id, addr, dialer_end))
        ):
            if not incoming and not self._in_use(addr):
                self.pool.closed(addr, now)
            return None
        try:
            conn = self._new_conn(addr, remote, now)
        except RemoteProtocolError:
            return None
        if incoming and addr not in self.holepunch.punching:  # (a punch holds its entry)
            # From an address a dial or a connection already holds (uTP): it is busy.
            if not self._in_use(addr) and not self.pool.mark_busy(addr, PeerSource.INCOMING):
                return None  # banned host, or too many connections from its IP
        elif not incoming:
            self.pool.connected(addr)
        self.holepunch.punch_connected(addr)
        existing = self._by_id.get(peer_id)
        key = self._next_key
        self._next_key += 1
        peer = EnginePeer(key, addr, conn, incoming, encrypted, dialer_end, now)
        peer.listen_addr = None if incoming else addr
        peer.client = client_name(peer_id)
        peer.utp = utp
        self.peers[key] = peer
        self._by_id[peer_id] = peer
        if existing is not None:  # closed after the new one holds a shared address
            self._close(existing, "duplicate connection (the other one won)", now)
        if not conn.extensions:
            self._publish_connected(peer)
        self._process(peer, now)
        if trailing_data and key in self.peers:
            self.peer_data(key, trailing_data, now)
        return key if key in self.peers else None

    def _new_conn(self, addr: Addr, remote: Handshake, now: float) -> PeerConnection:
        data = self.data
        info = self.metainfo.info if self.metainfo is not None else None
        try:
            ip = ipaddress.ip_address(addr[0])
        except ValueError:
            ip = None
        config = replace(
            self.config.connection or ConnectionConfig(),
            listen_port=self.config.listen_port,
            enable_pex=not self.private,
            enable_holepunch=self.config.holepunch,
        )
        return PeerConnection(
            self.info_hash,
            self.peer_id,
            info.num_pieces if data is not None and info is not None else None,
            now=now,
            rng=self._rng,
            config=config,
            our_pieces=data.have_copy() if data is not None else None,
            piece_length=info.piece_length if data is not None and info is not None else None,
            total_length=info.total_length if data is not None and info is not None else None,
            metadata_size=len(info.raw) if info is not None else None,
            remote_ip=ip,
            remote_handshake=remote,
        )

    def _publish_connected(self, peer: EnginePeer) -> None:
        if not peer.flags.get("announced"):
            peer.flags["announced"] = True
            event = tev.PeerConnected(peer.addr, peer.client, peer.encrypted, peer.incoming)
            self._commands.append(cmd.Publish(event))

    def peer_data(self, key: int, data: bytes | memoryview, now: float) -> None:
        """Bytes from connection `key` (``b""``: it closed its side)."""
        peer = self.peers.get(key)
        if peer is None:
            return
        try:
            peer.conn.receive_data(data, now)
        except (RemoteProtocolError, DecodeError) as exc:
            self._process(peer, now)  # what came before the error still counts
            self._close(peer, f"{type(exc).__name__}: {exc}", now)
            return
        self._process(peer, now)

    def peer_closed(self, key: int, reason: str, now: float) -> None:
        """The transport ended (error or EOF seen by the driver)."""
        peer = self.peers.get(key)
        if peer is not None:
            self._forget(peer, reason, now, clean=False)
            self._commands.append(cmd.ClosePeer(key, reason))

    def close_peer(self, key: int, reason: str, now: float) -> None:
        """Close connection `key` on the driver's or user's behalf."""
        peer = self.peers.get(key)
        if peer is not None:
            self._close(peer, reason, now)

    def _close(self, peer: EnginePeer, reason: str, now: float, *, clean: bool = False) -> None:
        if self.peers.get(peer.key) is not peer:
            return
        self._forget(peer, reason, now, clean=clean)
        self._commands.append(cmd.ClosePeer(peer.key, reason))

    def _forget(self, peer: EnginePeer, reason: str, now: float, *, clean: bool) -> None:
        del self.peers[peer.key]
        self._dirty.pop(peer.key, None)
        peer_id = peer.conn.peer_id
        if peer_id is not None and self._by_id.get(bytes(peer_id)) is peer:
            del self._by_id[bytes(peer_id)]
        self.gone_down += peer.downloaded
        self.gone_up += peer.uploaded
        self.fetch.peer_left(peer)
        self._pex.forget(peer)
        self.holepunch.peer_left(peer.key)
        if self.data is not None:
            self.data.peer_left(peer)
        # Some clients reset an RC4 connection right after the handshake (while they
        # fetch metadata); rtorrent's ``enable_retry`` redials those in plaintext.
        plain = (
            self.config.retry_plaintext
            and not peer.incoming
            and peer.encrypted
            and not peer.extended_seen
            and peer.conn.extensions
            and self._connectable()
        )
        for addr in {peer.addr, peer.listen_addr}:
            if addr is not None and not self._in_use(addr):
                if plain and addr == peer.addr:
                    self._dialing.add(addr)  # its pool entry stays busy
                    self._commands.append(cmd.Dial(addr, plaintext=True))
                    continue
                when = now
                if clean and peer.took_metadata and addr == peer.listen_addr:
                    # PeerPool.closed allows a redial after BASE_BACKOFF; date it back
                    # so the redial comes after REDIAL_AFTER_METADATA instead.
                    when = now - BASE_BACKOFF + REDIAL_AFTER_METADATA
                self.pool.closed(addr, when)
        self._publish_connected(peer)  # a peer that left before its BEP 10 handshake
        self._commands.append(cmd.Publish(tev.PeerDisconnected(peer.addr, reason)))
        self._dial_more(now)

    # ---- one peer's events ---------------------------------------------------------

    def _process(self, peer: EnginePeer, now: float) -> None:
        conn = peer.conn
        while (event := conn.next_event()) is not None:
            if self.peers.get(peer.key) is not peer:
                return
            self._on_event(peer, event, now)
        if self.peers.get(peer.key) is peer:
            self._dirty[peer.key] = None

    def _on_event(self, peer: EnginePeer, event: ev.PeerEvent, now: float) -> None:
        data = self.data
        if type(event) is ev.BlockReceived:
            peer.downloaded += len(event.data)
            if data is not None:
                data.on_block(peer, event.index, event.begin, event.data, now)
            return
        match event:
            case ev.ConnectionClosed():
                self._close(peer, "peer closed the connection", now, clean=True)
            case ev.PeerIdle():
                self._close(peer, "peer idle", now)
            case ev.HandshakeReceived(reserved=reserved):
                port = self.config.dht_port
                if port and not self.private and reserved & ReservedBits.DHT:
                    peer.conn.send_port(port)  # BEP 5
            case ev.ExtendedHandshakeReceived(handshake=hs):
                self._on_extended_handshake(peer, hs.v, hs.p, now)
            case ev.MetadataPieceReceived(piece=piece, data=chunk):
                self._metadata_piece(peer, piece, chunk, now)
            case ev.MetadataRejected(piece=piece):
                self.fetch.rejected(peer, piece)
                self._request_metadata(now)
            case ev.MetadataRequested(piece=piece):
                self._serve_metadata(peer, piece)
            case ev.PortReceived(port=port):
                if self.config.dht_port is not None and not self.private and port:
                    self._commands.append(cmd.AddDhtNodes(((peer.addr[0], port),)))
            case ev.PexReceived(added=added, dropped=dropped):
                self.holepunch.learn(peer, added[:_PEX_ACCEPT])
                self.holepunch.unlearn(peer.key, dropped)
                addrs = [p.addr for p in added[:_PEX_ACCEPT]]
                self.peers_found(addrs, PeerSource.PEX, now, named_by=peer.addr[0])
            case ev.HolepunchReceived(message=message):
                if self.config.holepunch:
                    self._on_holepunch(peer, message, now)
            case _:
                if data is not None:
                    data.on_event(peer, event, now)

    def _on_extended_handshake(
        self, peer: EnginePeer, v: str | None, p: int | None, now: float
    ) -> None:
        first = not peer.extended_seen
        peer.extended_seen = True
        if v:
            peer.client = client_name(b"", v)
        if p and peer.incoming and peer.listen_addr is None:
            # BEP 10 ``p``: where the peer listens, for PEX and later redials.
            peer.listen_addr = (peer.addr[0], p)
            # Busy while connected (no redial), but only as INCOMING: a claimed port is
            # forgotten when the peer leaves, so a handshake-then-close storm cannot
            # fill the dial pool with ports nobody verified (tests/net/test_hostile.py).
            self.pool.mark_busy(peer.listen_addr, PeerSource.INCOMING)
        if first:
            self._publish_connected(peer)
        if self.metainfo is None:
            self._request_metadata(now)

    def ban(self, addr: Addr, reason: str, now: float) -> None:
        """Disconnect `addr` and never talk to it again (for this torrent)."""
        if self.pool.is_banned(addr):
            return
        self.pool.ban(addr)
        self._commands.append(cmd.Publish(tev.PeerBanned(addr, reason)))
        for peer in [p for p in self.peers.values() if p.addr == addr]:
            self._close(peer, f"banned: {reason}", now)

    # ---- pause ---------------------------------------------------------------------

    def pause(self, now: float) -> None:
        """Close every connection and dial nobody until `resume`."""
        self.paused = True
        for peer in list(self.peers.values()):
            self._close(peer, "paused", now)

    def resume(self, now: float) -> None:
        self.paused = False
        self.pool.retry_now(now)  # pause closed them, not the peers' fault
        self._dial_more(now)

    # ---- timers --------------------------------------------------------------------

    def handle_timer(self, now: float) -> None:
        """Fire every deadline that has passed (early or repeated calls are harmless)."""
        for peer in list(self.peers.values()):
            t = peer.conn.get_timer()
            if t is not None and t <= now and self.peers.get(peer.key) is peer:
                peer.conn.handle_timer(now)
                self._process(peer, now)
        if self.metainfo is None:
            self.fetch.handle_timer(now)
            self._request_metadata(now)
        if self.data is not None and now >= self.data.next_rechoke:
            self.data.rechoke(now)
        if now >= self._next_pex:
            self._next_pex = now + self.config.pex_interval
            self._send_pex()
        if now >= self._next_turnover:
            self._next_turnover = now + 1.0
            self._turn_over(now)
        self._dial_more(now)

    # ---- statistics ----------------------------------------------------------------

    def payload_totals(self) -> tuple[int, int]:
        """(downloaded, uploaded) payload bytes over every connection ever."""
        down = self.gone_down + sum(p.downloaded for p in self.peers.values())
        up = self.gone_up + sum(p.uploaded for p in self.peers.values())
        return down, up

    def metadata_peers(self) -> int:
        return self.fetch.peer_count(self.peers.values())

    def queue(self, command: cmd.Command) -> None:
        """For the `DataPlane`: queue a command."""
        self._commands.append(command)

    def mark_dirty(self, peer: EnginePeer) -> None:
        self._dirty[peer.key] = None
