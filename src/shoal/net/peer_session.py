"""The I/O of one handshaken peer connection: `EngineSession`.

`EngineSession` is what a `Torrent` runs per connection: the connection's protocol
state lives in the torrent's pure `TorrentEngine`, so the session only moves bytes
(see its docstring).

Error containment (docs/style.md 4.3): what a remote peer can cause (`PEER_ERRORS`:
protocol errors, broken or closed streams, timeouts) ends this session only and is
reported to the host with the reason, after the stream is closed. Anything else is
our bug and propagates, crashing the torrent on purpose.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol, final

import trio

from ..errors import DecodeError, RemoteProtocolError
from ..session.send_budget import SendBudget

if TYPE_CHECKING:
    from .dialer import PeerLink

__all__ = ["PEER_ERRORS", "EngineHost", "EngineSession"]

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


class _Closed(Exception):
    """Internal: the session ends normally (EOF, local close)."""


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
