"""`TorrentCommands`: how a `Torrent` carries out its engine's commands.

`_pump` (in ``torrent.py``) drains `TorrentEngine.commands()` after every input and
hands each to `_do`: a block goes into the storage's piece buffer synchronously, a
piece to verify or to read for uploads becomes a short task in the torrent's nursery,
a dial a task of its own, and so on (`shoal.session.commands`). A mixin of `Torrent`
(which owns the state) so that ``torrent.py`` stays about the task tree; a mixin adds
no call overhead on this per-block path.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

import trio

from . import torrent_events as tev
from .session import commands as cmd
from .storage.base import WriteResult
from .torrent_parts import TorrentCore
from .torrent_stats import TorrentState

if TYPE_CHECKING:
    from .torrent_parts import Session

__all__ = ["TorrentCommands"]

# The torrent's logger: these records were always `shoal.torrent`'s, keep them there.
log = logging.getLogger("shoal.torrent")

Addr = tuple[str, int]


class _Host(TorrentCore, Protocol):
    """What `TorrentCommands` needs of the `Torrent` that mixes it in."""

    _state: TorrentState
    _completing: bool

    @property
    def _nursery(self) -> trio.Nursery | None: ...
    @property
    def _conns(self) -> dict[int, Session]: ...
    @property
    def sessions(self) -> dict[Addr, Session]: ...
    @property
    def _metadata_ready(self) -> trio.Event: ...
    @property
    def _complete(self) -> trio.Event: ...

    def fail(self, message: str) -> None: ...
    def _pump(self) -> None: ...
    async def _dial(self, addr: Addr, plaintext: bool = False, utp: bool = False) -> None: ...
    async def _verify(self, index: int) -> None: ...
    async def _read(self, index: int) -> None: ...
    async def _flush_complete(self) -> None: ...


class TorrentCommands:
    """A mixin of `Torrent`: the engine's commands carried out (module docstring)."""

    # Set here, owned by the torrent (declared so that mypy types them as the torrent does).
    _state: TorrentState
    _completing: bool

    def _do(self: _Host, command: cmd.Command) -> None:
        nursery = self._nursery
        match command:
            case cmd.WriteBlock(index=index, begin=begin, data=block):
                assert self.data is not None
                if self.data.storage.write_block_now(index, begin, block) is WriteResult.NO_ROOM:
                    self.data.storage.discard_piece(index)
                    self.engine.write_refused(index)
            case cmd.Publish(event=event):
                self._subs.publish(event)
                if isinstance(event, tev.PeerDisconnected):  # shown at ``-v``
                    log.info("peer %s:%d left: %s", *event.addr, event.reason)
                if isinstance(event, tev.PieceVerified) and self.data and self.data.saver:
                    self.data.saver.piece_verified()
            case cmd.Dial(addr=addr, plaintext=plaintext, utp=utp):
                assert nursery is not None
                nursery.start_soon(self._dial, addr, plaintext, utp)
            case cmd.ClosePeer(peer=key, reason=reason):
                session = self._conns.pop(key, None)
                if session is not None:
                    if self.sessions.get(session.addr) is session:
                        del self.sessions[session.addr]
                    session.io.close(reason)
            case cmd.VerifyPiece(index=index):
                assert nursery is not None
                nursery.start_soon(self._verify, index)
            case cmd.ReadPiece(index=index):
                assert nursery is not None
                nursery.start_soon(self._read, index)
            case cmd.MetadataReady():
                self._metadata_ready.set()
            case cmd.PiecesComplete():
                if not self._completing:
                    self._completing = True
                    assert nursery is not None
                    nursery.start_soon(self._flush_complete)
            case cmd.AddDhtNodes(nodes=nodes):
                if self._dht is not None:
                    self._dht.add_nodes(list(nodes))
            case cmd.Fail(message=message):
                self.fail(message)

    async def _verify(self: _Host, index: int) -> None:
        assert self.data is not None
        storage = self.data.storage
        ok = await storage.verify_piece(index)
        if ok:
            good = None
            if self.engine.needs_good_copy(index):
                good = await storage.read_block(index, 0, self.data.info.piece_size(index))
            self.engine.piece_checked(index, True, good, trio.current_time())
        else:
            rejected = storage.pop_rejected(index)
            storage.discard_piece(index)
            self.engine.piece_checked(index, False, rejected, trio.current_time())
        self._pump()

    async def _read(self: _Host, index: int) -> None:
        assert self.data is not None
        piece = await self.data.storage.read_block(index, 0, self.data.info.piece_size(index))
        self.engine.piece_read(index, piece, trio.current_time())
        self._pump()

    async def _flush_complete(self: _Host) -> None:
        assert self.data is not None
        await self.data.storage.flush()
        await self.data.save_resume()
        self._state = TorrentState.SEEDING
        self.engine.completion_flushed(trio.current_time())
        self._complete.set()
        self._pump()
