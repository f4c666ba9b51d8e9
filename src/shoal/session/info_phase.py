"""`InfoPhaseInputs`: the `TorrentEngine` inputs that follow the info dict's life cycle.

A magnet's engine first fetches the info dict from peers (BEP 9 ``ut_metadata``) and
serves it once known; when storage is open the data phase starts (`DataPlane`) and the
disk's answers come back through these inputs. They live in a mixin of
`TorrentEngine` (which owns the state, as `HolepunchInputs` does) so that the engine
module stays about connections and the swarm; a mixin adds no call overhead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from .. import torrent_events as tev
from ..errors import RemoteProtocolError
from . import commands as cmd
from .data import DataPlane
from .metadata_fetch import MetadataBadHash, MetadataDone, MetadataInvalid

if TYPE_CHECKING:
    import random

    from ..metainfo import InfoDict, Metainfo
    from ..swarm.bitfield import Bitfield
    from .metadata_fetch import MetadataFetch
    from .peer import EnginePeer
    from .send_budget import SendBudget

__all__ = ["InfoPhaseInputs"]

Addr = tuple[str, int]


class _Config(Protocol):
    @property
    def seed(self) -> bool: ...
    @property
    def upload_slots(self) -> int: ...
    @property
    def send_budget(self) -> SendBudget | None: ...


class _Engine(Protocol):
    """What `InfoPhaseInputs` needs of the engine that mixes it in."""

    metainfo: Metainfo | None
    private: bool
    complete: bool
    fetch: MetadataFetch[EnginePeer]
    data: DataPlane | None
    _rng: random.Random
    _commands: list[cmd.Command]
    _dirty: dict[int, None]

    @property
    def config(self) -> _Config: ...
    @property
    def peers(self) -> dict[int, EnginePeer]: ...

    def _close(self, peer: EnginePeer, reason: str, now: float, *, clean: bool = False) -> None: ...
    def _process(self, peer: EnginePeer, now: float) -> None: ...
    def _dial_more(self, now: float) -> None: ...
    def _request_metadata(self, now: float) -> None: ...
    def ban(self, addr: Addr, reason: str, now: float) -> None: ...
    def queue(self, command: cmd.Command) -> None: ...
    def mark_dirty(self, peer: EnginePeer) -> None: ...
    def close_peer(self, key: int, reason: str, now: float) -> None: ...


class InfoPhaseInputs:
    """A mixin of `TorrentEngine`: BEP 9 metadata, then the data phase's disk inputs."""

    # Set here, owned by the engine (declared so that mypy types them as the engine does).
    metainfo: Metainfo | None
    private: bool
    complete: bool
    data: DataPlane | None

    # ---- BEP 9 -----------------------------------------------------------------------

    def _request_metadata(self: _Engine, now: float) -> None:
        for peer in self.fetch.take_banned():
            # Announced a size, then timed out or rejected too often (its data never
            # backed the size): `MetadataAssembler` strikes.
            self._close(peer, "did not serve the metadata it announced", now)
        for peer in self.fetch.request_more(list(self.peers.values()), now):
            self._dirty[peer.key] = None

    def _metadata_piece(
        self: _Engine, peer: EnginePeer, piece: int, chunk: bytes, now: float
    ) -> None:
        if self.metainfo is not None:
            return
        try:
            outcome = self.fetch.piece_received(peer, piece, chunk)
        except RemoteProtocolError as exc:
            self._close(peer, f"RemoteProtocolError: {exc}", now)
            return
        if isinstance(outcome, MetadataBadHash):
            for culprit in list(outcome.blamed):
                self.ban(culprit.addr, "sent metadata that does not match the info-hash", now)
        elif isinstance(outcome, MetadataInvalid):
            self._commands.append(cmd.Fail(outcome.message))
            return
        elif isinstance(outcome, MetadataDone):
            self.metainfo = outcome.metainfo
            info = outcome.metainfo.info
            self.private = self.private or info.private
            event = tev.MetadataReceived(info.name, info.total_length, info.num_pieces)
            self._commands.append(cmd.Publish(event))
            self._commands.append(cmd.MetadataReady(outcome.metainfo))
            return
        self._request_metadata(now)

    def _serve_metadata(self: _Engine, peer: EnginePeer, piece: int) -> None:
        conn = peer.conn
        info = self.metainfo.info if self.metainfo is not None else None
        if info is None or not 0 <= piece * 16384 < len(info.raw):
            conn.send_metadata_reject(piece)
            return
        peer.took_metadata = True
        conn.send_metadata_data(piece, len(info.raw), info.raw[piece * 16384 : (piece + 1) * 16384])

    # ---- the data phase ------------------------------------------------------------

    def start_data(
        self: _Engine,
        info: InfoDict,
        have: Bitfield,
        priorities: bytes | bytearray,
        *,
        sequential: bool,
        now: float,
    ) -> None:
        """Storage is open (`MetadataReady`, or at once for a .torrent): download."""
        self.data = DataPlane(
            self,
            info,
            have,
            priorities,
            sequential=sequential,
            now=now,
            rng=self._rng,
            upload_slots=self.config.upload_slots,
            send_budget=self.config.send_budget,
        )
        for peer in list(self.peers.values()):
            self.data.peer_joined_late(peer, now)
            self._process(peer, now)
        if self.data.picker.is_complete():
            self._commands.append(cmd.PiecesComplete())
        self._dial_more(now)

    def write_refused(self: _Engine, index: int) -> None:
        """`WriteBlock` found no buffer room: the piece is re-requested later."""
        if self.data is not None:
            self.data.write_refused(index)

    def piece_checked(
        self, index: int, ok: bool, data: bytes | bytearray | memoryview | None, now: float
    ) -> None:
        """The outcome of `VerifyPiece`. `data`: the rejected bytes if not `ok`; the good
        copy if `ok` and `needs_good_copy(index)`; else None."""
        if self.data is not None:
            self.data.piece_checked(index, ok, data, now)

    def needs_good_copy(self: _Engine, index: int) -> bool:
        """Smart ban wants the verified bytes of `index` to judge earlier senders."""
        return self.data is not None and self.data.smart_ban.suspected(index)

    def piece_read(self: _Engine, index: int, data: bytes, now: float) -> None:
        """The outcome of `ReadPiece`: serve every request waiting for it."""
        if self.data is not None:
            self.data.piece_read(index, data, now)

    def completion_flushed(self: _Engine, now: float) -> None:
        """`PiecesComplete` is durable: publish `Completed`, drop peers we no longer need."""
        self.complete = True
        self._commands.append(cmd.Publish(tev.Completed()))
        data = self.data
        for peer in list(self.peers.values()):
            pieces = peer.conn.peer_pieces
            if not self.config.seed:
                self._close(peer, "download complete, not seeding", now)
            elif data is not None and data.have_all and pieces is not None and pieces.has_all():
                self._close(peer, "both peers are seeds", now)
