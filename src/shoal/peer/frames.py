"""The incremental, length-limited peer-wire decoder (`FrameDecoder`).

Why a module of its own: the message types and their encoder (`peer.messages`) are
shared by everything that speaks the wire, but decoding is the one place that holds
hostile bytes, and its buffering and limits are most of the code.

Theory of operation
-------------------
`FrameDecoder` reads a byte stream of ``<length: u32 BE><id: u8><payload>`` frames,
fed in arbitrary pieces with `receive_data` and drained with `next_message` (or by
iterating the decoder).

Buffering, and why it is not a bytearray. The decoder keeps received chunks as the
immutable ``bytes`` objects they arrived as, plus a read offset into the first one. A
frame that lies inside one chunk is parsed in place, and a `Piece` block is handed out
as a read-only ``memoryview`` into that chunk: zero copies, and the view stays valid
for as long as the caller holds it (it keeps its chunk alive). A frame that straddles
chunks is assembled once, and only when all of its bytes are present, so a 16 KiB block
fed one byte at a time costs O(n), not O(n²). Only that frame is copied: the frames
after it in the later chunk are again parsed in place (an earlier version joined
everything buffered, so a stream read in 64-256 KiB pieces was copied about 1.03
times over). A frame header that straddles is read through a 5-byte peek. A growing
``bytearray`` cannot give out such views: it refuses to resize while a view exists
(``BufferError``) and compacting it would overwrite blocks the caller still holds.

Limits (all checked before a frame is buffered; see docs/protocol.md):

* a frame may not be longer than ``max_length`` (default 16 KiB block + 9 header
  bytes), except a bitfield (sized by the piece count) and an extended message
  (``max_extended_length``: a BEP 9 data message is a 16 KiB block plus a small dict);
  the length prefix is refused as soon as its 4 (or, per type, 5) bytes arrive, so a
  declared 4 GiB frame costs nothing;
* fixed-size messages must have exactly their size;
* once the piece count is known, a bitfield must be exactly ``ceil(n / 8)`` bytes with
  zero spare bits, and piece indices must be ``< n``;
* a request may ask for at most ``max_request_length`` bytes (BEP 3: clients "close
  connections which request an amount greater than" 16 KiB).

Unknown message ids are skipped, as BEP 3 asks, and counted in `unknown_messages`.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Final, final

from ..errors import LocalProtocolError, RemoteProtocolError
from .messages import (
    _LEN_ID,
    _SINGLETONS,
    _U16,
    _U32,
    _U32X2,
    BLOCK_SIZE,
    DEFAULT_MAX_BITFIELD_LENGTH,
    DEFAULT_MAX_EXTENDED_LENGTH,
    DEFAULT_MAX_LENGTH,
    AllowedFast,
    BitfieldMessage,
    Cancel,
    Extended,
    Have,
    KeepAlive,
    Message,
    MessageId,
    Piece,
    Port,
    RawBlock,
    Reject,
    Request,
    Suggest,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["FrameDecoder"]

# Payload length (id byte included) of every fixed-size message.
_FIXED_LENGTH: Final[dict[int, int]] = {
    MessageId.CHOKE: 1,
    MessageId.UNCHOKE: 1,
    MessageId.INTERESTED: 1,
    MessageId.NOT_INTERESTED: 1,
    MessageId.HAVE: 5,
    MessageId.REQUEST: 13,
    MessageId.CANCEL: 13,
    MessageId.PORT: 3,
    MessageId.SUGGEST: 5,
    MessageId.HAVE_ALL: 1,
    MessageId.HAVE_NONE: 1,
    MessageId.REJECT: 13,
    MessageId.ALLOWED_FAST: 5,
}
_KEEP_ALIVE: Final = KeepAlive()
_MESSAGE_NAMES: Final = {m.value: m.name for m in MessageId}
_EMPTY: Final = b""


@final
class FrameDecoder:
    """Incremental peer-wire decoder with hard limits (see the module docstring).

    Args:
        max_length: largest length field accepted for pieces and unknown messages.
        max_extended_length: largest length field of a BEP 10 extended message.
        max_request_length: largest ``length`` a `Request` may ask for.
        num_pieces: the torrent's piece count, if known (else call `set_num_pieces`
            once the metadata arrives); enables exact bitfield and index checks.
        max_bitfield_length: largest bitfield frame while the piece count is unknown.
    """

    __slots__ = (
        "_avail",
        "_buf",
        "_eof",
        "_error",
        "_max_any",
        "_max_bitfield",
        "_max_extended",
        "_max_length",
        "_max_request",
        "_more",
        "_need",
        "_num_pieces",
        "_pos",
        "_view",
        "unknown_messages",
    )

    def __init__(
        self,
        *,
        max_length: int = DEFAULT_MAX_LENGTH,
        max_extended_length: int = DEFAULT_MAX_EXTENDED_LENGTH,
        max_request_length: int = BLOCK_SIZE,
        num_pieces: int | None = None,
        max_bitfield_length: int = DEFAULT_MAX_BITFIELD_LENGTH,
    ) -> None:
        if min(max_length, max_extended_length, max_request_length, max_bitfield_length) < 1:
            raise ValueError("limits must be positive")
        self._max_length = max_length
        self._max_extended = max_extended_length
        self._max_request = max_request_length
        self._max_bitfield = max_bitfield_length
        self._num_pieces: int | None = None
        self._max_any = max(max_length, max_extended_length, max_bitfield_length)
        if num_pieces is not None:
            self.set_num_pieces(num_pieces)
        self._buf: bytes = _EMPTY  # first unconsumed chunk (possibly merged)
        self._view = memoryview(self._buf)
        self._pos = 0  # read offset into _buf
        self._more: deque[bytes] = deque()  # chunks received after _buf
        self._avail = 0  # unread bytes in _buf[_pos:] and _more
        self._need = 0  # _next cannot progress until _avail reaches this (fast path)
        self._eof = False
        self._error: RemoteProtocolError | None = None
        #: Frames with an id we do not know, skipped as BEP 3 asks.
        self.unknown_messages = 0

    def set_num_pieces(self, num_pieces: int) -> None:
        """Enable exact bitfield-length and piece-index checks (e.g. after ut_metadata)."""
        if num_pieces < 0:
            raise ValueError("num_pieces must not be negative")
        self._max_bitfield = 1 + (num_pieces + 7) // 8
        self._num_pieces = num_pieces
        self._need = 0  # re-check any pending frame against the new limits
        self._max_any = max(self._max_length, self._max_extended, self._max_bitfield)

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as messages."""
        return self._avail

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Take bytes from the peer; ``b""`` means the peer closed the stream.

        ``bytes`` are kept without copying; mutable buffers are copied once, because
        decoded blocks may point into them.
        """
        if self._eof and data:
            raise LocalProtocolError("receive_data after end of stream")
        if not data:
            self._eof = True
            return
        chunk = data if type(data) is bytes else bytes(data)
        if self._avail == 0:
            self._buf, self._view, self._pos = chunk, memoryview(chunk), 0
        else:
            self._more.append(chunk)
        self._avail += len(chunk)

    def __iter__(self) -> Iterator[Message]:
        return self

    def __next__(self) -> Message:
        msg = self.next_message()
        if msg is None:
            raise StopIteration
        return msg

    def next_message(self) -> Message | None:
        """The next complete message, or ``None`` until more bytes arrive.

        Raises:
            RemoteProtocolError: the peer broke a framing rule or a limit; the decoder
                stays broken afterwards. Anything else is a bug.
        """
        item = self.next_item()
        return Piece(*item) if isinstance(item, tuple) else item

    def next_item(self) -> Message | RawBlock | None:
        """`next_message`, except that a block comes as a plain ``(index, begin, data)``
        tuple instead of a `Piece`: the peer engine's per-block path, which needs no
        message object for it (same errors as `next_message`)."""
        if self._avail < self._need and not self._eof:
            return None  # hot path while a large frame trickles in
        if self._error is not None:
            raise RemoteProtocolError("peer wire decoder already failed") from self._error
        try:
            return self._next()
        except RemoteProtocolError as exc:
            self._error = exc
            raise

    def _peek_header(self) -> bytes:
        """The first ``min(5, buffered)`` unread bytes, when they straddle chunks."""
        head = bytes(self._view[self._pos : self._pos + 5])
        for chunk in self._more:
            if len(head) >= 5:
                break
            head += chunk[: 5 - len(head)]
        return head

    def _gather(self, total: int) -> bytes:
        """Consume and return the next `total` bytes, which straddle chunks.

        The one copy of the data path: only this frame is joined; the chunk it ends in
        becomes the current chunk, read in place from where the frame ends.
        """
        parts: list[bytes | memoryview] = [self._view[self._pos :]]
        need = total - (len(self._buf) - self._pos)
        more = self._more
        while need:
            chunk = more.popleft()
            if len(chunk) > need:
                parts.append(memoryview(chunk)[:need])
                self._buf, self._view, self._pos = chunk, memoryview(chunk), need
                break
            parts.append(chunk)
            need -= len(chunk)
            if not need:
                nxt = more.popleft() if more else _EMPTY
                self._buf, self._view, self._pos = nxt, memoryview(nxt), 0
        self._avail -= total
        self._need = 0
        return b"".join(parts)

    def _next(self) -> Message | RawBlock | None:
        # Loops only to skip unknown messages; each pass consumes a frame or returns.
        while True:
            avail = self._avail
            if avail < 4:
                return self._incomplete(4)
            buf, pos = self._buf, self._pos
            inbuf = len(buf) - pos
            if inbuf >= 5:
                length, msg_id = _LEN_ID.unpack_from(buf, pos)
            else:
                head = self._peek_header()
                length = _U32.unpack_from(head)[0]
                msg_id = head[4] if len(head) > 4 else -1
            if length == 0:
                self._take(4, inbuf)
                return _KEEP_ALIVE
            if length > self._max_any:
                raise RemoteProtocolError(f"frame of {length} bytes exceeds every limit")
            if avail < 5:
                return self._incomplete(5)
            self._check_length(msg_id, length)
            total = 4 + length
            if avail < total:
                return self._incomplete(total)
            if inbuf >= total:
                view = self._view
                self._consume(total)
            else:
                buf, pos = self._gather(total), 0
                view = memoryview(buf)
            msg = self._parse(msg_id, buf, view, pos + 5, pos + total)
            if msg is not None:
                return msg
            self.unknown_messages += 1

    def _take(self, n: int, inbuf: int) -> None:
        """Consume `n` bytes whatever their layout (small frames only)."""
        if inbuf >= n:
            self._consume(n)
        else:
            self._gather(n)

    def _consume(self, n: int) -> None:
        self._need = 0
        self._pos += n
        self._avail -= n
        if self._avail == 0:
            self._more.clear()
        elif self._pos == len(self._buf):
            self._buf = self._more.popleft()
            self._view = memoryview(self._buf)
            self._pos = 0

    def _incomplete(self, need: int) -> Message | None:
        """Fewer than `need` bytes buffered: wait for more, unless the stream has ended."""
        if self._eof and self._avail:
            raise RemoteProtocolError(f"stream ended inside a frame ({self._avail} bytes)")
        self._need = need
        return None

    def _check_length(self, msg_id: int, length: int) -> None:
        """Refuse a frame whose declared length is wrong for its type, before buffering it."""
        fixed = _FIXED_LENGTH.get(msg_id)
        if fixed is not None:
            ok = length == fixed
        elif msg_id == MessageId.PIECE:
            ok = 9 <= length <= self._max_length
        elif msg_id == MessageId.EXTENDED:
            ok = 2 <= length <= self._max_extended
        elif msg_id == MessageId.BITFIELD:
            if self._num_pieces is None:
                ok = 1 <= length <= self._max_bitfield
            else:
                ok = length == self._max_bitfield
        else:
            ok = length <= self._max_length
        if not ok:
            name = _MESSAGE_NAMES.get(msg_id, f"message id {msg_id}")
            raise RemoteProtocolError(f"{name} frame with bad length {length}")

    def _index(self, buf: bytes, at: int) -> int:
        index: int = _U32.unpack_from(buf, at)[0]
        if self._num_pieces is not None and index >= self._num_pieces:
            raise RemoteProtocolError(f"piece index {index} out of range")
        return index

    def _parse(
        self, msg_id: int, buf: bytes, view: memoryview, start: int, end: int
    ) -> Message | RawBlock | None:
        """Build the message whose payload (after the id byte) is ``buf[start:end]``;
        `view` is a memoryview of `buf`, for blocks."""
        if msg_id == MessageId.PIECE:
            index, begin = _U32X2.unpack_from(buf, start)
            if self._num_pieces is not None and index >= self._num_pieces:
                raise RemoteProtocolError(f"piece index {index} out of range")
            return (index, begin, view[start + 8 : end])
        single = _SINGLETONS.get(msg_id)
        if single is not None:
            return single
        if msg_id in (MessageId.HAVE, MessageId.SUGGEST, MessageId.ALLOWED_FAST):
            index = self._index(buf, start)
            if msg_id == MessageId.HAVE:
                return Have(index)
            return Suggest(index) if msg_id == MessageId.SUGGEST else AllowedFast(index)
        if msg_id in (MessageId.REQUEST, MessageId.CANCEL, MessageId.REJECT):
            index = self._index(buf, start)
            begin, length = _U32X2.unpack_from(buf, start + 4)
            if msg_id == MessageId.REQUEST:
                if length > self._max_request:
                    raise RemoteProtocolError(f"request of {length} bytes over the limit")
                return Request(index, begin, length)
            if msg_id == MessageId.CANCEL:
                return Cancel(index, begin, length)
            return Reject(index, begin, length)
        if msg_id == MessageId.BITFIELD:
            return BitfieldMessage(self._bitfield(buf[start:end]))
        if msg_id == MessageId.EXTENDED:
            return Extended(buf[start], buf[start + 1 : end])
        if msg_id == MessageId.PORT:
            port: int = _U16.unpack_from(buf, start)[0]
            return Port(port)
        return None

    def _bitfield(self, bits: bytes) -> bytes:
        # BEP 3: "Spare bits at the end are set to zero. Clients which send a bitfield
        # with ... any of the spare bits set should drop the connection."
        n = self._num_pieces
        if n is not None and n % 8 and bits[-1] & (0xFF >> (n % 8)):
            raise RemoteProtocolError("bitfield has spare bits set")
        return bits
