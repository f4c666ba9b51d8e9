"""The commands of `PeerConnection`: what the driver asks the engine to do.

Theory of operation
-------------------
A mixin of `PeerConnection` (which owns the state it touches), kept apart so the
engine module holds the wire input (handshake, message dispatch, timers) and this one
the commands the driver calls: the piece count and metadata size becoming known,
choking and interest, our requests and cancels, answers to the peer's requests, haves,
BEP 6 messages, and the BEP 9/10/11 extension messages. Every command that queues bytes
needs a ``data_to_send()`` afterwards, as the engine module says; commands that make no
sense in the current state raise `LocalProtocolError`.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Final

from ..errors import DecodeError, LocalProtocolError, RemoteProtocolError
from ..swarm.bitfield import Bitfield
from . import messages as m
from .extended import encode_pex_lists
from .extension import (
    UT_METADATA,
    UT_PEX,
    MetadataData,
    MetadataReject,
    MetadataRequest,
    encode_metadata_message,
)

if TYPE_CHECKING:
    import collections
    import ipaddress
    from collections.abc import Iterable

    from . import events as ev
    from .availability import PeerAvailability
    from .config import ConnectionConfig
    from .extended import PeerExtensions
    from .extension import Addr, MetadataMessage, PexPeer
    from .frames import FrameDecoder
    from .inbound import InboundRequests
    from .pipeline import Block, RequestPipeline

__all__ = ["ConnectionCommands", "ConnectionState"]

# Cancelled / timed-out requests remembered so their late blocks and BEP 6 rejects are
# not mistaken for protocol violations.
_MAX_CANCELLED: Final = 1024


class ConnectionState(enum.Enum):
    HANDSHAKE = "handshake"
    OPEN = "open"
    CLOSED = "closed"
    ERROR = "error"


class ConnectionCommands:
    """`PeerConnection`'s commands; mixed into it, whose attributes these are."""

    config: ConnectionConfig
    state: ConnectionState
    metadata_size: int | None
    our_pieces: Bitfield | None
    fast: bool
    extensions: bool
    am_choking: bool
    am_interested: bool
    peer_choking: bool
    peer_allowed_fast: set[int]
    suggested: set[int]
    uploaded: int
    pipeline: RequestPipeline
    _num_pieces: int | None
    _remote_ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    _events: collections.deque[ev.PeerEvent]
    _blocks_queued: int
    _out: bytearray
    _clock: float
    _cancelled: dict[Block, None]
    _inbound: InboundRequests
    _avail: PeerAvailability
    _ext: PeerExtensions
    _decoder: FrameDecoder

    # =====================================================================================
    # Commands
    # =====================================================================================

    def set_num_pieces(
        self, num_pieces: int, *, piece_length: int | None = None, total_length: int | None = None
    ) -> None:
        """The metadata is known: enable index checks and replay the buffered
        bitfield/have_all/have_none/haves as events.

        Raises:
            RemoteProtocolError: a buffered bitfield or have does not fit `num_pieces`.
            LocalProtocolError: the piece count was already set.
        """
        if self._num_pieces is not None:
            raise LocalProtocolError("num_pieces is already known")
        inbound = self._inbound
        inbound.piece_length = piece_length if piece_length is not None else inbound.piece_length
        inbound.total_length = total_length if total_length is not None else inbound.total_length
        self._set_geometry(num_pieces, None)
        try:
            self._events += self._avail.set_num_pieces(num_pieces)
            self.peer_allowed_fast = {i for i in self.peer_allowed_fast if i < num_pieces}
            self.suggested = {i for i in self.suggested if i < num_pieces}
        except (DecodeError, RemoteProtocolError) as exc:
            self.state = ConnectionState.ERROR
            raise RemoteProtocolError(f"peer's early piece state is invalid: {exc}") from exc

    def _set_geometry(self, num_pieces: int, our_pieces: Bitfield | None) -> None:
        if our_pieces is not None and our_pieces.num_pieces != num_pieces:
            raise ValueError("our_pieces has the wrong length")
        self._num_pieces = self._inbound.num_pieces = num_pieces
        self.our_pieces = our_pieces if our_pieces is not None else Bitfield.none(num_pieces)
        self._decoder.set_num_pieces(num_pieces)

    @property
    def refused_requests(self) -> int:
        """Requests from the peer refused without a violation (see `peer.inbound`)."""
        return self._inbound.refused

    @property
    def num_pieces(self) -> int | None:
        return self._num_pieces

    @property
    def peer_pieces(self) -> Bitfield | None:
        """The peer's pieces, once the piece count is known and the peer said anything."""
        return self._avail.pieces

    def set_metadata_size(self, size: int) -> None:
        """We now have the info dict (e.g. after a magnet fetch): re-send the extended
        handshake with ``metadata_size`` so the peer can fetch it from us (BEP 10 allows
        repeated handshakes; BEP 9 peers learn the size from it)."""
        self.metadata_size = size
        if self.state is ConnectionState.OPEN and self.extensions:
            self._send_extended_handshake()

    def set_choking(self, choking: bool) -> None:
        """Choke or unchoke the peer. Choking discards its queued requests (BEP 3);
        with BEP 6 each discarded one is rejected, except allowed-fast pieces."""
        self._check_open()
        if choking == self.am_choking:
            return
        self.am_choking = choking
        self._queue(m.Choke() if choking else m.Unchoke())
        for block in self._inbound.choke(fast=self.fast) if choking else ():
            if self.fast:
                self._queue(m.Reject(*block))

    def set_interested(self, interested: bool) -> None:
        """Tell the peer whether we want pieces it has."""
        self._check_open()
        if interested != self.am_interested:
            self.am_interested = interested
            self._queue(m.Interested() if interested else m.NotInterested())

    def request_slots(self, now: float) -> int:
        """How many more requests to send now to keep the pipeline full.

        0 while blocks of the current read are still queued as events: a driver that
        refills after each `BlockReceived` then picks once per read (after its last
        block), for all the slots the read freed, instead of once per block.
        """
        if self._blocks_queued:
            return 0
        return max(0, self.pipeline_depth(now) - len(self.pipeline))

    def pipeline_depth(self, now: float) -> int:
        """The adaptive target of outstanding requests (see `shoal.peer.pipeline`)."""
        return self.pipeline.depth(now, self.peer_reqq)

    def can_request(self, index: int) -> bool:
        """May we request from piece `index` now (unchoked, or allowed-fast)?"""
        return self.state is ConnectionState.OPEN and (
            not self.peer_choking or (self.fast and index in self.peer_allowed_fast)
        )

    def request(self, index: int, begin: int, length: int, now: float) -> None:
        """Ask for a block and track it with a deadline.

        Raises:
            LocalProtocolError: choked (and not allowed-fast), already outstanding, or
                a length outside 1..``max_request_length`` or an index out of range.
        """
        block = (index, begin, length)
        self._tick(now)
        if not self.can_request(index):
            raise LocalProtocolError(f"cannot request piece {index}: choked or not open")
        if block in self.pipeline:
            raise LocalProtocolError(f"{block} is already outstanding")
        if not 1 <= length <= self.config.max_request_length:
            raise LocalProtocolError(f"request length {length} out of range")
        if self._num_pieces is not None and not 0 <= index < self._num_pieces:
            raise LocalProtocolError(f"piece {index} out of range")
        self._cancelled.pop(block, None)
        self.pipeline.add(block, now)
        self._queue_bytes(m.encode_request(index, begin, length))

    @property
    def outstanding(self) -> list[Block]:
        """Our requests still waiting for a block, oldest first."""
        return list(self.pipeline.outstanding)

    @property
    def snubbed(self) -> bool:
        return self.pipeline.snubbed

    def cancel(self, index: int, begin: int, length: int) -> bool:
        """Withdraw an outstanding request (endgame). False if it was not outstanding."""
        block = (index, begin, length)
        if not self.pipeline.remove(block):
            return False
        self._forget(block)
        if self.state is ConnectionState.OPEN:
            self._queue(m.Cancel(*block))
        return True

    def send_piece(self, index: int, begin: int, data: bytes | memoryview) -> bool:
        """Answer a `BlockRequested`; `data` is copied once, into the output buffer
        (so the caller may reuse it at once).

        Returns False (and sends nothing) if that request is no longer queued: the peer
        cancelled it or we choked it meanwhile.
        """
        block = (index, begin, len(data))
        if self.state is not ConnectionState.OPEN or not self._inbound.take(block):
            return False
        self._queue_bytes(m.encode_piece_header(index, begin, len(data)))
        self._out += data  # the one copy of an upload (module docstring: why joined)
        self.uploaded += len(data)
        return True

    def send_reject(self, index: int, begin: int, length: int) -> None:
        """BEP 6: refuse a `BlockRequested`."""
        self._check_fast("reject")
        self._inbound.take((index, begin, length))
        self._queue(m.Reject(index, begin, length))

    def send_have(self, index: int) -> None:
        """Announce a piece we completed and verified."""
        self._check_open()
        if self.our_pieces is None:
            raise LocalProtocolError("send_have before the piece count is known")
        self.our_pieces.set(index)
        self._queue(m.Have(index))

    def send_allowed_fast(self, index: int) -> None:
        """BEP 6: let the peer request piece `index` while we choke it."""
        self._check_fast("allowed_fast")
        self._inbound.allowed_fast.add(index)
        self._queue(m.AllowedFast(index))

    def send_suggest(self, index: int) -> None:
        """BEP 6: suggest a piece to the peer."""
        self._check_fast("suggest")
        self._queue(m.Suggest(index))

    def peer_supports(self, name: str) -> bool:
        """Did the peer's extended handshake enable extension `name`?"""
        return name in self._ext.ids

    @property
    def peer_extensions(self) -> dict[str, int]:
        """Extension name → the id the peer wants it sent under (BEP 10 ``m``)."""
        return dict(self._ext.ids)

    @property
    def peer_reqq(self) -> int | None:
        """The peer's BEP 10 ``reqq`` (requests it queues), if it sent one."""
        return self._ext.reqq

    @property
    def peer_metadata_size(self) -> int | None:
        """The peer's BEP 9 ``metadata_size``, if it sent one."""
        return self._ext.metadata_size

    def send_extended(self, name: str, payload: bytes) -> None:
        """Send an extension message under the id the peer chose for `name` (BEP 10)."""
        self._check_open()
        self._queue(m.Extended(self._ext.id_for(name), payload))

    def send_metadata_request(self, piece: int) -> None:
        """BEP 9: ask for metadata piece `piece`."""
        self._send_metadata(MetadataRequest(piece))

    def send_metadata_data(self, piece: int, total_size: int, data: bytes) -> None:
        """BEP 9: send metadata piece `piece` of our `total_size`-byte info dict."""
        self._send_metadata(MetadataData(piece, total_size, data))

    def send_metadata_reject(self, piece: int) -> None:
        """BEP 9: refuse metadata piece `piece`."""
        self._send_metadata(MetadataReject(piece))

    def _send_metadata(self, msg: MetadataMessage) -> None:
        self.send_extended(UT_METADATA, encode_metadata_message(msg))

    def send_pex(self, added: Iterable[PexPeer], dropped: Iterable[Addr]) -> None:
        """BEP 11: tell the peer about contacts (IPv4 and IPv6 are split here)."""
        self.send_extended(UT_PEX, encode_pex_lists(added, dropped))

    def send_port(self, port: int) -> None:
        """BEP 5: tell the peer our DHT UDP port."""
        self._check_open()
        self._queue(m.Port(port))

    # =====================================================================================
    # Helpers
    # =====================================================================================

    def _send_extended_handshake(self) -> None:
        anonymous = self.config.anonymous  # no client name, port or peer address
        payload = self._ext.our_handshake(
            version=None if anonymous else self.config.client_version,
            listen_port=None if anonymous else self.config.listen_port,
            reqq=self.config.max_inbound_requests,
            metadata_size=self.metadata_size,
            yourip=None if anonymous else self._remote_ip,
        )
        self._queue(m.Extended(0, payload))

    def _forget(self, block: Block) -> None:
        """Remember a withdrawn request so its late block / reject is not an error."""
        self._cancelled[block] = None
        if len(self._cancelled) > _MAX_CANCELLED:
            del self._cancelled[next(iter(self._cancelled))]

    def _tick(self, now: float) -> None:
        self._clock = max(self._clock, now)

    def _check_open(self) -> None:
        if self.state is not ConnectionState.OPEN:
            raise LocalProtocolError(f"connection is {self.state.value}, not open")

    def _check_fast(self, what: str) -> None:
        self._check_open()
        if not self.fast:
            raise LocalProtocolError(f"{what} needs the Fast extension (BEP 6)")

    def _queue(self, msg: m.Message) -> None:
        self._queue_bytes(m.encode_message(msg))

    def _queue_bytes(self, data: bytes) -> None:
        self._out += data
        self._last_send = self._clock
