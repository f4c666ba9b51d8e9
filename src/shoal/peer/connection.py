"""`PeerConnection`: the sans-IO peer-wire engine for one connection (BEP 3, 5, 6, 9, 10, 11).

Theory of operation
-------------------
The engine starts once the transport is set up (plaintext, or MSE with its leftover
plaintext passed as ``initial_data``). It is a stream engine with the h11/aioquic
contract. Its driver is the torrent's pure ``session.engine.TorrentEngine``, and
``net.peer_session.EngineSession`` does the I/O; in outline::

    conn = PeerConnection(info_hash, our_peer_id, num_pieces_or_None, now=t, rng=rng)
    loop:
        conn.receive_data(bytes_from_socket, now)   # b"" = EOF
        while (ev := conn.next_event()) is not None: handle(ev)
        for buf in conn.data_to_send(): await stream.send_all(buf)
        sleep until conn.get_timer(); conn.handle_timer(now)

Outputs. `data_to_send()` drains everything queued so far as a ``list`` of buffers
to be written in order; today that list holds at most one ``bytearray``: control
messages, piece headers and blocks given to `send_piece` are all appended to one
buffer, so a flush is one ``send_all``. Why joined, not scatter/gather: with
``TCP_NODELAY`` a 13-byte header sent on its own is a segment of its own, and on
loopback each ``send`` costs far more than copying 16 KiB (``tools/bench/send_path.py``:
0.70 CPU s/GiB joined vs 5.85 for a send per header and per block; ``sendmsg`` with
no copy saves another 0.16 but needs a raw socket, where the driver only has a
``trio.abc.Stream``, and MSE copies while it encrypts anyway). Every command and
every input may queue bytes: call `data_to_send()` afterwards. `next_event()` returns
`shoal.peer.events` objects in wire order, then ``None``. `get_timer()` is the next
deadline (keep-alive, idle timeout, request deadline, snub check) or ``None``; call
`handle_timer(now)` when it passes (early or repeated calls are harmless).

States (`ConnectionState`)::

    HANDSHAKE --their handshake--> OPEN --EOF between frames--> CLOSED
        \\______________________________\\--protocol violation--> ERROR

Our 68-byte handshake (reserved bits DHT, Fast, extension protocol) is queued by the
constructor. When the peer's arrives (info-hash must match, peer_id must not be ours)
we send, in this order: bitfield / have_all / have_none (BEP 6: "Exactly one of Have
All, Have None, or Have Bitfield MUST appear and only immediately after the
handshake"), then the BEP 10 extended handshake (``m`` with ut_metadata and ut_pex,
``v``, ``reqq``, ``metadata_size`` if known, ``p``, ``yourip``). Both cannot come
first; BEP 6 says MUST where BEP 10 says "should be sent immediately after the standard
bittorrent handshake", so BEP 6 wins. Before the piece count is known (magnet), a Fast
peer gets have_none and a plain one nothing; the peer's bitfield/have/have_all/have_none
are buffered and replayed as events by `set_num_pieces`.

Peer state: `am_choking`, `am_interested`, `peer_choking`, `peer_interested`,
`peer_pieces` (a `Bitfield`), `peer_extensions` (name → the id *they* want), `peer_reqq`,
`peer_allowed_fast`, `suggested`.

Requests we send (see `shoal.peer.pipeline`): `request(index, begin, length, now)` is
allowed while unchoked, or for a piece in `peer_allowed_fast`. Keep `request_slots(now)`
filled; the depth adapts to rate × RTT. A block that matches an outstanding request →
`BlockReceived`; one we cancelled or timed out is dropped quietly; any other is a
violation with BEP 6 ("if a peer receives a piece that was never requested, the peer
MUST close the connection") and without it is counted in `unexpected_blocks` and
ignored. Deadlines → `RequestTimedOut` (we send a cancel);
no block for ``snub_timeout`` while requests are outstanding → `PeerSnubbed` once.
Choke without BEP 6 drops every request (one `RequestRejected` each, after `Choked`);
with BEP 6 they stay until the peer sends a reject or the block (BEP 6: "choke no longer
implicitly rejects all pending requests").

Requests we receive are validated (length 1..``max_request_length``, inside the piece,
a piece we have, not choking them unless allowed-fast, at most ``max_inbound_requests``
queued) and become `BlockRequested`; refused ones get a reject with BEP 6 and are
dropped without. Answer with `send_piece` (returns False if the request was cancelled
meanwhile: do not count that as an error) or `send_reject`. Choking the peer discards
its queue (with BEP 6: a reject for each, except allowed-fast pieces). A cancel from a
BEP 6 peer is answered with a reject, since BEP 6 promises "EXACTLY ONE response"
(piece or reject) per request.

Time: keep-alive after ``keepalive_interval`` seconds of our silence (BEP 3 "generally
sent once every two minutes"); `PeerIdle` once after ``idle_timeout`` seconds of theirs.
Commands do not take ``now`` (except `request`): their send time is the latest ``now``
the engine has seen, which can only make a keep-alive early, never late.

Layout: this module is the engine, its outputs and the wire input; the commands live
in `peer.commands` (a mixin), and the parts with their own rules beside it:
`peer.frames` (the frame decoder), `peer.pipeline` (our requests, rate, depth,
snubbing), `peer.inbound` (the peer's requests), `peer.availability` (the peer's
pieces, buffered before metadata), `peer.extended` (BEP 10 ids and dispatch),
`peer.config` (`ConnectionConfig`).

Handover (wsproto's ``Connection(trailing_data=...)`` after h11): when the dialer or
listener already exchanged both handshakes, the engine is built with the parsed remote
``remote_handshake`` and starts OPEN, sends no handshake of its own, and takes the bytes
read after the handshake as ``initial_data``. Nothing is re-encoded or parsed twice.

BEP 9: a metadata request arriving while we have no info dict (``metadata_size`` unset)
is rejected by the engine itself; otherwise it becomes `MetadataRequested`.

Errors: `receive_data` and `set_num_pieces` raise only `RemoteProtocolError` (including
`HandshakeError`); the engine is then in ``ERROR`` and every later input raises
`LocalProtocolError`. Commands that make no sense (requesting while choked, an extension
the peer lacks, BEP 6 messages without BEP 6) raise `LocalProtocolError`.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Final, final

from ..errors import DecodeError, LocalProtocolError, RemoteProtocolError
from . import events as ev
from . import messages as m
from .availability import FirstMessage, PeerAvailability
from .commands import ConnectionCommands, ConnectionState
from .config import ConnectionConfig
from .extended import PeerExtensions
from .extension import UT_METADATA, MetadataReject
from .frames import FrameDecoder
from .handshake import Handshake, HandshakeParser, ReservedBits, encode_handshake
from .inbound import InboundRequests
from .pipeline import Block, RequestPipeline

if TYPE_CHECKING:
    import ipaddress
    import random

    from ..ids import InfoHash, PeerId
    from ..swarm.bitfield import Bitfield

__all__ = ["ConnectionConfig", "ConnectionState", "PeerConnection"]

#: Most allowed-fast / suggest indices kept per peer. Before the metadata the piece
#: count is unknown, so indices are unchecked claims; BEP 6 sets are ~10 pieces.
MAX_PEER_PIECE_SET: Final = 256


def _capped_add(pieces: set[int], index: int) -> bool:
    """Add `index` unless the set is full; True if it is (now) in the set."""
    if index not in pieces and len(pieces) >= MAX_PEER_PIECE_SET:
        return False
    pieces.add(index)
    return True


@final
class PeerConnection(ConnectionCommands):
    """One peer-wire connection, sans-IO (see the module docstring for the contract).

    Args:
        info_hash: the torrent; the peer's handshake must name it.
        our_peer_id: sent in our handshake; a peer using it is ourselves.
        num_pieces: the piece count, or ``None`` until the metadata is known.
        now: the current time (same clock as every later ``now``).
        rng: jitters the keep-alive interval so many connections do not tick together.
        config: policy and limits.
        our_pieces: what we have (default: nothing); updated by `send_have`.
        piece_length / total_length: torrent geometry, to check inbound request ranges.
        metadata_size: BEP 9 size of the info dict we can serve, if we have it.
        remote_ip: the peer's address, echoed as BEP 10 ``yourip``.
        initial_data: bytes already read from the peer (e.g. MSE ``trailing_data``).
        remote_handshake: the peer's handshake when the transport layer (dialer or
            listener) has already exchanged both: the engine starts OPEN, sends no
            handshake of its own, and `initial_data` is the peer-wire bytes that came
            after it (wsproto's ``Connection(trailing_data=...)`` after h11). Nothing
            is re-encoded or parsed twice.

    Raises:
        RemoteProtocolError: `initial_data` breaks the protocol (as `receive_data`),
            or `remote_handshake` names another torrent or carries our peer id.
    """

    def __init__(
        self,
        info_hash: InfoHash,
        our_peer_id: PeerId,
        num_pieces: int | None,
        *,
        now: float,
        rng: random.Random,
        config: ConnectionConfig | None = None,
        our_pieces: Bitfield | None = None,
        piece_length: int | None = None,
        total_length: int | None = None,
        metadata_size: int | None = None,
        remote_ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None,
        initial_data: bytes = b"",
        remote_handshake: Handshake | None = None,
    ) -> None:
        self.config = cfg = config or ConnectionConfig()
        self.info_hash = info_hash
        self.our_peer_id = our_peer_id
        self.state = ConnectionState.HANDSHAKE
        self._parser = HandshakeParser(expected_info_hash=info_hash)
        self._decoder = FrameDecoder(
            max_length=cfg.max_request_length + 9, max_request_length=cfg.max_request_length
        )
        self._num_pieces: int | None = None
        self.our_pieces: Bitfield | None = None
        self.metadata_size = metadata_size
        self._remote_ip = remote_ip
        self._events: deque[ev.PeerEvent] = deque()
        self._blocks_queued = 0  # BlockReceived events not yet taken by next_event()
        self._out = bytearray()
        self._clock = now
        self._last_send = now
        self._last_recv = now
        self._idle_reported = False
        self._keepalive = cfg.keepalive_interval * (0.9 + 0.1 * rng.random())
        self.pipeline = RequestPipeline(
            request_timeout=cfg.request_timeout,
            snub_timeout=cfg.snub_timeout,
            min_queue_time=cfg.min_queue_time,
            min_depth=cfg.min_pipeline_depth,
            max_depth=cfg.max_pipeline_depth,
        )
        self._cancelled: dict[Block, None] = {}
        self._inbound = InboundRequests(
            cfg.max_inbound_requests, piece_length=piece_length, total_length=total_length
        )
        # --- what we know about the peer
        self.peer_id: PeerId | None = None
        self.peer_reserved = ReservedBits.NONE
        self.fast = False  # BEP 6 negotiated (both sides set the bit)
        self.extensions = False  # BEP 10 negotiated
        self.am_choking = True
        self.am_interested = False
        self.peer_choking = True
        self.peer_interested = False
        self._avail = PeerAvailability(num_pieces)
        self._ext = PeerExtensions(
            max_metadata_size=cfg.max_metadata_size,
            enable_pex=cfg.enable_pex,
            enable_holepunch=cfg.enable_holepunch,
        )
        self.peer_allowed_fast: set[int] = set()
        self.suggested: set[int] = set()
        # --- counters (see statistics())
        self.unexpected_blocks = 0
        self.unknown_extended = 0
        self.downloaded = 0
        self.uploaded = 0
        if num_pieces is not None:
            self._set_geometry(num_pieces, our_pieces)
        if remote_handshake is None:
            self._queue_bytes(encode_handshake(Handshake(info_hash, our_peer_id, cfg.reserved)))
        else:
            if remote_handshake.info_hash != info_hash:
                self.state = ConnectionState.ERROR
                raise RemoteProtocolError("the peer's handshake names another torrent")
            self._on_handshake(remote_handshake)
        if initial_data:
            self.receive_data(initial_data, now)

    # =====================================================================================
    # Outputs
    # =====================================================================================

    def data_to_send(self) -> list[bytes | bytearray | memoryview]:
        """Drain the queued bytes as buffers to write in order (possibly empty).

        One buffer per call (see the module docstring); the engine never touches a
        returned buffer again, so the driver may send it while the engine runs on.
        """
        if not self._out:
            return []
        out, self._out = self._out, bytearray()
        return [out]

    @property
    def send_backlog(self) -> int:
        """Bytes queued for the peer and not yet handed out by `data_to_send`."""
        return len(self._out)

    def next_event(self) -> ev.PeerEvent | None:
        """The next event in arrival order, or ``None``."""
        if not self._events:
            return None
        event = self._events.popleft()
        if type(event) is ev.BlockReceived:
            self._blocks_queued -= 1
        return event

    def drain_events(self) -> list[ev.PeerEvent]:
        """Every queued event at once, in arrival order: a whole read's worth in one call.

        A driver that takes a read's events this way and handles them in one synchronous
        pass should call `request_slots` after the pass (it is 0 until then).
        """
        events = list(self._events)
        self._events.clear()
        self._blocks_queued = 0
        return events

    def get_timer(self) -> float | None:
        """When `handle_timer` must next be called, or ``None`` (closed or failed)."""
        if self.state in (ConnectionState.CLOSED, ConnectionState.ERROR):
            return None
        times = [self._last_send + self._keepalive]
        if not self._idle_reported:
            times.append(self._last_recv + self.config.idle_timeout)
        pipe = self.pipeline.next_deadline()
        if pipe is not None:
            times.append(pipe)
        return min(times)

    def handle_timer(self, now: float) -> None:
        """Fire every deadline that has passed: timeouts, snubbing, idleness, keep-alive.

        Queues events and bytes: call `next_event()` and `data_to_send()` afterwards.
        """
        if self.state in (ConnectionState.CLOSED, ConnectionState.ERROR):
            return
        self._tick(now)
        if self.pipeline.check_snub(now):
            self._events.append(ev.PeerSnubbed())
        for block in self.pipeline.expire(now):
            self._forget(block)
            self._events.append(ev.RequestTimedOut(*block))
            if self.state is ConnectionState.OPEN:
                self._queue(m.Cancel(*block))
        if not self._idle_reported and now >= self._last_recv + self.config.idle_timeout:
            self._idle_reported = True
            self._events.append(ev.PeerIdle())
        if now >= self._last_send + self._keepalive and self.state is ConnectionState.OPEN:
            self._queue(m.KeepAlive())

    def statistics(self) -> dict[str, int | float]:
        """Counters for logging and tests."""
        return {
            "downloaded": self.downloaded,
            "uploaded": self.uploaded,
            "outstanding": len(self.pipeline),
            "inbound_queue": len(self._inbound),
            "unexpected_blocks": self.unexpected_blocks,
            "refused_requests": self._inbound.refused,
            "unknown_extended": self.unknown_extended,
            "unknown_messages": self._decoder.unknown_messages,
        }

    # =====================================================================================
    # Input
    # =====================================================================================

    def receive_data(self, data: bytes | bytearray | memoryview, now: float) -> None:
        """Take bytes from the peer; ``b""`` means it closed its side.

        Mutable buffers are copied once (received blocks are views into the data).

        Queues events and bytes: call `next_event()` and `data_to_send()` afterwards.

        Raises:
            RemoteProtocolError: the peer broke the protocol (or `HandshakeError`);
                anything else is a bug.
            LocalProtocolError: called after an error, or with data after EOF.
        """
        if self.state is ConnectionState.ERROR:
            raise LocalProtocolError("connection already failed")
        if self.state is ConnectionState.CLOSED:
            raise LocalProtocolError("receive_data after end of stream")
        self._tick(now)
        if type(data) is not bytes:
            data = bytes(data)
        if data:
            self._last_recv = now
            self._idle_reported = False
        try:
            self._receive(data, now)
        except RemoteProtocolError:
            self.state = ConnectionState.ERROR
            raise
        except DecodeError as exc:
            self.state = ConnectionState.ERROR
            raise RemoteProtocolError(f"undecodable message from peer: {exc}") from exc

    def _receive(self, data: bytes, now: float) -> None:
        if self.state is ConnectionState.HANDSHAKE:
            if not data:
                raise RemoteProtocolError("stream ended during the handshake")
            self._parser.receive_data(data)
            hs = self._parser.handshake
            if hs is None:
                return
            self._on_handshake(hs)
            data = self._parser.trailing_data
            if not data:
                return
        self._decoder.receive_data(data)
        while (msg := self._decoder.next_item()) is not None:
            if isinstance(msg, tuple):  # a block, the hot path: no Piece, no dispatch below
                self._on_block(*msg, now)
            else:
                self._on_message(msg, now)
        if not data:
            self.state = ConnectionState.CLOSED
            self._events.append(ev.ConnectionClosed())

    def _on_handshake(self, hs: Handshake) -> None:
        if hs.peer_id == self.our_peer_id:
            self.state = ConnectionState.ERROR
            raise RemoteProtocolError("connected to ourselves (peer_id is ours)")
        ours = self.config.reserved
        self.peer_id, self.peer_reserved = hs.peer_id, hs.reserved
        self.fast = bool(ours & hs.reserved & ReservedBits.FAST)
        self.extensions = bool(ours & hs.reserved & ReservedBits.EXTENSION_PROTOCOL)
        self.state = ConnectionState.OPEN
        self._events.append(ev.HandshakeReceived(hs.peer_id, hs.reserved))
        self._send_piece_state()
        if self.extensions:
            self._send_extended_handshake()

    def _send_piece_state(self) -> None:
        have = self.our_pieces
        if have is None or have.has_none():
            if self.fast:
                self._queue(m.HaveNone())
        elif self.fast and have.has_all():
            self._queue(m.HaveAll())
        else:
            self._queue(m.BitfieldMessage(have.to_bytes()))

    def _on_message(self, msg: m.Message, now: float) -> None:
        match msg:
            case m.Piece(index, begin, block):
                self._on_block(index, begin, block, now)
            case m.Have(index):
                self._events += self._avail.have(index)
            case m.Request(index, begin, length):
                self._on_request((index, begin, length))
            case m.Cancel(index, begin, length):
                if self._inbound.cancel((index, begin, length)):
                    self._events.append(ev.RequestCancelled(index, begin, length))
                    if self.fast:
                        self._queue(m.Reject(index, begin, length))
            case m.Choke():
                self._on_choke()
            case m.Unchoke():
                self.peer_choking = False
                self._events.append(ev.Unchoked())
            case m.Interested():
                self.peer_interested = True
                self._events.append(ev.PeerInterested())
            case m.NotInterested():
                self.peer_interested = False
                self._events.append(ev.PeerNotInterested())
            case m.BitfieldMessage(bits):
                self._events += self._avail.first_message(FirstMessage.BITFIELD, bits)
            case m.HaveAll():
                self._require_fast("have_all")
                self._events += self._avail.first_message(FirstMessage.HAVE_ALL, None)
            case m.HaveNone():
                self._require_fast("have_none")
                self._events += self._avail.first_message(FirstMessage.HAVE_NONE, None)
            case m.Reject(index, begin, length):
                self._require_fast("reject")
                self._on_reject((index, begin, length))
            case m.AllowedFast(index):
                self._require_fast("allowed_fast")
                if _capped_add(self.peer_allowed_fast, index):
                    self._events.append(ev.AllowedFastReceived(index))
            case m.Suggest(index):
                self._require_fast("suggest")
                if _capped_add(self.suggested, index):
                    self._events.append(ev.Suggested(index))
            case m.Extended(ext_id, payload):
                self._on_extended(ext_id, payload)
            case m.Port(port):
                self._events.append(ev.PortReceived(port))
            case m.KeepAlive():
                pass

    def _require_fast(self, what: str) -> None:
        # BEP 6: if either side lacks the Fast bit, these messages are a violation.
        if not self.fast:
            raise RemoteProtocolError(f"{what} without the Fast extension")

    # ---- blocks we asked for ---------------------------------------------------------

    def _on_block(self, index: int, begin: int, data: bytes | memoryview, now: float) -> None:
        block = (index, begin, len(data))
        if self.pipeline.block_received(block, now):
            self.downloaded += block[2]
            self._events.append(ev.BlockReceived(index, begin, data))
            self._blocks_queued += 1
        elif self._cancelled.pop(block, 0) is None:
            pass  # we cancelled or timed it out; the peer sent it anyway (a race)
        elif self.fast:
            raise RemoteProtocolError(f"block {block} was never requested (BEP 6)")
        else:
            self.unexpected_blocks += 1

    def _on_choke(self) -> None:
        self.peer_choking = True
        self._events.append(ev.Choked())
        if not self.fast:
            # BEP 3: a choked peer discards our queue; without BEP 6 nobody tells us.
            self._cancelled.clear()
            for block in self.pipeline.clear():
                self._events.append(ev.RequestRejected(*block))

    def _on_reject(self, block: Block) -> None:
        if self.pipeline.remove(block):
            self._events.append(ev.RequestRejected(*block))
        elif self._cancelled.pop(block, 0) is not None:
            # BEP 6: "If a peer receives a reject for a request that was never sent,
            # it should close the connection."
            raise RemoteProtocolError(f"reject for a block we never requested: {block}")

    # ---- requests from the peer ------------------------------------------------------

    def _on_request(self, block: Block) -> None:
        if self._inbound.add(block, have=self.our_pieces, choking=self.am_choking):
            self._events.append(ev.BlockRequested(*block))
        elif self.fast:
            self._queue(m.Reject(*block))

    # ---- extension protocol ----------------------------------------------------------

    def _on_extended(self, ext_id: int, payload: bytes) -> None:
        if not self.extensions:
            raise RemoteProtocolError("extended message without the extension protocol")
        event = self._ext.receive(ext_id, payload)
        if event is None:
            self.unknown_extended += 1
        elif isinstance(event, ev.MetadataRequested) and self.metadata_size is None:
            # BEP 9: "Peers that do not have the entire metadata MUST respond with a
            # reject message to any metadata request." Answered here, so no event (and
            # not at all if the peer never told us its ut_metadata id).
            if self.peer_supports(UT_METADATA):
                self._send_metadata(MetadataReject(event.piece))
        else:
            self._events.append(event)
