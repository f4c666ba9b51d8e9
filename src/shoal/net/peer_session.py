"""The I/O of one handshaken peer connection: `EngineSession` and `PeerSession`.

`EngineSession` is what a `Torrent` runs per connection: the connection's protocol
state lives in the torrent's pure `TorrentEngine`, so the session only moves bytes
(see its docstring). `PeerSession` drives a stand-alone `PeerConnection` with an async
event handler, for tools and tests that script one peer.

Theory of operation (`PeerSession`)
-----------------------------------
The dialer or listener has already exchanged both BitTorrent handshakes (the
listener must read the info-hash before it knows which torrent to hand the stream
to). The engine is built from the parsed remote handshake and starts OPEN (like
wsproto's ``Connection`` built from h11's ``trailing_data``); the peer-wire bytes
read together with the handshake (`PeerLink.trailing_data`) are its first input,
fed inside `run` so that a protocol error in them ends only this session.

Two tasks share the engine (safe: Trio switches tasks only at checkpoints and the
engine's methods never await):

* reader: ``receive_some`` → ``receive_data`` → each event to the handler.
* writer: waits on `wake()` (or the engine's timer), flushes ``data_to_send()`` and
  fires ``handle_timer``. There is no polling: anyone who queues bytes (the reader,
  the torrent calling a command) calls `wake()`.

Error containment (docs/style.md 4.3): what a remote peer can cause (protocol
errors, broken or closed streams, timeouts) ends this session only; `run` returns
a `PeerDropped` with the reason after closing the stream. Anything else is our bug
and propagates, crashing the torrent on purpose.
"""

from __future__ import annotations

import ipaddress
import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol, final

import trio

from ..errors import DecodeError, RemoteProtocolError
from ..peer import events as ev
from ..peer.connection import ConnectionConfig, PeerConnection
from ..session.send_budget import MAX_SEND_BACKLOG as _DATA_MAX_SEND_BACKLOG
from ..session.send_budget import SendBudget

if TYPE_CHECKING:
    from ..ids import InfoHash, PeerId
    from ..swarm.bitfield import Bitfield
    from .dialer import PeerLink

__all__ = [
    "PEER_ERRORS",
    "EngineHost",
    "EngineSession",
    "PeerDropped",
    "PeerSession",
    "SessionHandler",
]

Addr = tuple[str, int]

#: What a remote peer can make happen; these end one session and nothing else.
PEER_ERRORS: Final = (
    RemoteProtocolError,
    DecodeError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    trio.TooSlowError,
)
#: Large reads: one engine pass, one event batch and one writer wakeup per 256 KiB.
_RECEIVE_SIZE: Final = 256 * 1024
#: Bytes queued for one peer (in the engine plus the write in progress) past which we
#: stop reading from it; `shoal.session.data` stops serving it at the same mark. A peer
#: that requests and never reads then holds about this much of our memory.
MAX_SEND_BACKLOG: Final = _DATA_MAX_SEND_BACKLOG


@final
@dataclass(frozen=True, slots=True)
class PeerDropped:
    """A session ended; `reason` is for logs and `PeerDisconnected` events."""

    addr: Addr
    reason: str


class SessionHandler(Protocol):
    """What a session reports to (the torrent)."""

    async def on_peer_event(self, session: PeerSession, event: ev.PeerEvent) -> None: ...


class _Closed(Exception):
    """Internal: the session ends normally (EOF, idle peer, local close)."""


@final
class PeerSession:
    """One connected peer (see the module docstring)."""

    def __init__(
        self,
        link: PeerLink,
        info_hash: InfoHash,
        our_peer_id: PeerId,
        handler: SessionHandler,
        *,
        num_pieces: int | None,
        our_pieces: Bitfield | None = None,
        piece_length: int | None = None,
        total_length: int | None = None,
        metadata_size: int | None = None,
        config: ConnectionConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.link: Final = link
        self.addr: Final = link.addr
        self._handler = handler
        try:
            remote_ip = ipaddress.ip_address(link.addr[0])
        except ValueError:
            remote_ip = None
        self.conn: Final = PeerConnection(
            info_hash,
            our_peer_id,
            num_pieces,
            now=trio.current_time(),
            rng=rng or random.SystemRandom(),
            config=config,
            our_pieces=our_pieces,
            piece_length=piece_length,
            total_length=total_length,
            metadata_size=metadata_size,
            remote_ip=remote_ip,
            remote_handshake=link.remote,
        )
        self._wake = trio.Event()
        self._drained = trio.Event()
        self._sending = 0  # bytes of the send_all in progress
        self._cancel = trio.CancelScope()
        self._close_reason: str | None = None
        self.started_at = trio.current_time()
        #: Payload counters for rate estimates (blocks only, as the choker wants).
        self.downloaded = 0
        self.uploaded = 0
        self.client = ""
        #: Where the peer accepts connections: its address if we dialled it, else the
        #: BEP 10 ``p`` port once known (the torrent sets it). Used for PEX.
        self.listen_addr: Addr | None = None if link.incoming else link.addr

    def wake(self) -> None:
        """Something was queued on `conn` (or its timer moved): flush soon."""
        self._wake.set()

    @property
    def send_backlog(self) -> int:
        """Bytes queued for this peer that it has not taken from us yet."""
        return self.conn.send_backlog + self._sending

    @property
    def backlogged(self) -> bool:
        """Over `MAX_SEND_BACKLOG`: serve this peer nothing more until it reads."""
        return self.send_backlog > MAX_SEND_BACKLOG

    def close(self, reason: str) -> None:
        """End the session (ban, torrent shutdown); `run` returns with `reason`."""
        if self._close_reason is None:
            self._close_reason = reason
        self._cancel.cancel()

    async def run(self) -> PeerDropped:
        """Serve the peer until it leaves or fails; always closes the stream."""
        reason = "closed"
        try:
            with self._cancel:
                if self.link.trailing_data:
                    await self._feed(self.link.trailing_data)
                else:
                    await self._dispatch()  # HandshakeReceived
                    self._wake.set()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer)
                    await self._reader()
                    nursery.cancel_scope.cancel()
        except* _Closed as group:
            reason = str(group.exceptions[0])
        except* PEER_ERRORS as group:
            exc = group.exceptions[0]
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self.link.stream)
        if self._close_reason is not None:
            reason = self._close_reason
        return PeerDropped(self.addr, reason)

    async def _feed(self, data: bytes) -> None:
        self.conn.receive_data(data, trio.current_time())
        await self._dispatch()
        self._wake.set()

    async def _dispatch(self) -> None:
        while (event := self.conn.next_event()) is not None:
            if isinstance(event, ev.ConnectionClosed):
                raise _Closed("peer closed the connection")
            if isinstance(event, ev.PeerIdle):
                raise _Closed("peer idle")
            if isinstance(event, ev.BlockReceived):
                self.downloaded += len(event.data)
            elif isinstance(event, ev.ExtendedHandshakeReceived) and event.handshake.v:
                self.client = event.handshake.v
            await self._handler.on_peer_event(self, event)

    async def _reader(self) -> None:
        while True:
            while self.send_backlog > MAX_SEND_BACKLOG:
                # Back-pressure: a peer that does not read gets nothing more read
                # (so no more requests served) until it has taken what is queued.
                self._drained = trio.Event()
                await self._drained.wait()
            data = await self.link.stream.receive_some(_RECEIVE_SIZE)
            await self._feed(bytes(data))
            if not data:
                # The engine queued ConnectionClosed (or raised); the writer may be the
                # one that dispatches it, so end here rather than read past EOF.
                raise _Closed("peer closed the connection")

    async def _writer(self) -> None:
        while True:
            for buf in self.conn.data_to_send():
                self._sending = len(buf)
                await self.link.stream.send_all(buf)
                self._sending = 0
                self._drained.set()
            deadline = self.conn.get_timer()
            with trio.move_on_at(math.inf if deadline is None else deadline):
                await self._wake.wait()
            self._wake = trio.Event()
            if deadline is not None and trio.current_time() >= deadline:
                self.conn.handle_timer(trio.current_time())
            # Events queued by a timer, or replayed by set_num_pieces (metadata arrived).
            await self._dispatch()


class EngineHost(Protocol):
    """What an `EngineSession` reports to (the torrent driving a `TorrentEngine`).

    Every method is synchronous: the engine's handlers never await.
    """

    def session_data(self, key: int, data: bytes) -> None: ...
    def session_output(self, key: int) -> list[bytes | bytearray | memoryview]: ...
    def session_ended(self, key: int, reason: str) -> None: ...
    def session_backlog(self, key: int) -> int: ...


@final
class EngineSession:
    """The I/O of one connection whose protocol state lives in a `TorrentEngine`.

    Two tasks: the reader hands every read (up to 256 KiB) to the engine through the
    host, synchronously; the writer sleeps until `wake()` and then sends what the
    engine queued for this connection. Neither awaits anything but the socket, so a
    slow disk never stalls a peer. The engine closes a connection by the host calling
    `close`; a transport failure is reported with `session_ended`.
    """

    def __init__(
        self, link: PeerLink, key: int, host: EngineHost, budget: SendBudget | None = None
    ) -> None:
        self.link: Final = link
        self.addr: Final = link.addr
        self.key: Final = key
        self._host = host
        #: The client's send budget: we count our queued bytes into it; its
        #: `peer_cap` says when to stop reading (the engine's data plane stops
        #: serving us at the same mark).
        self._budget = budget or SendBudget(None)
        self._counted = 0  # our share of `_budget.queued`
        self._ended = False
        self._wake = trio.Event()
        self._drained = trio.Event()
        self._sending = 0  # bytes of the send_all in progress
        self._cancel = trio.CancelScope()
        self._close_reason: str | None = None

    def wake(self) -> None:
        """The engine queued bytes for this connection."""
        self._recount()
        self._wake.set()

    def _recount(self) -> None:
        """Report our queued bytes to the client's budget (only counting, no policy)."""
        queued = 0 if self._ended else self.send_backlog
        self._budget.adjust(queued - self._counted)
        self._counted = queued

    @property
    def send_backlog(self) -> int:
        """Bytes queued for this peer (in the engine and being written) not yet taken."""
        return self._host.session_backlog(self.key) + self._sending

    def close(self, reason: str) -> None:
        """The engine (or the torrent) ended the connection; `run` returns."""
        if self._close_reason is None:
            self._close_reason = reason
        self._cancel.cancel()

    async def run(self) -> None:
        """Serve the connection until either side ends it; always closes the stream."""
        reason = "closed"
        try:
            with self._cancel:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer)
                    await self._reader()
                    nursery.cancel_scope.cancel()
        except* _Closed as group:
            reason = str(group.exceptions[0])
        except* PEER_ERRORS as group:
            exc = group.exceptions[0]
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            self._ended = True
            self._recount()
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self.link.stream)
        if self._close_reason is None:
            self._close_reason = reason
            self._host.session_ended(self.key, reason)

    async def _reader(self) -> None:
        stream = self.link.stream
        while True:
            while self._budget.backlogged(self.send_backlog):
                # Back-pressure: nothing more is read from (so nothing more served to)
                # a peer that is not taking what we already queued for it (its cap is
                # smaller while the whole client is over its budget).
                self._drained = trio.Event()
                await self._drained.wait()
            data = await stream.receive_some(_RECEIVE_SIZE)
            self._host.session_data(self.key, bytes(data) if type(data) is not bytes else data)
            if not data:
                raise _Closed("peer closed the connection")

    async def _writer(self) -> None:
        stream = self.link.stream
        while True:
            buffers = self._host.session_output(self.key)
            if not buffers:
                await self._wake.wait()
                self._wake = trio.Event()
                continue
            for buf in buffers:
                self._sending = len(buf)
                self._recount()
                await stream.send_all(buf)
                self._sending = 0
                self._recount()
                self._drained.set()
