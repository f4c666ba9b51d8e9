"""Peer wire messages (BEP 3, 5, 6, 10): the message dataclasses and their encoder.

Theory of operation
-------------------
After the handshake every message is ``<length: u32 BE><id: u8><payload>``; a zero
length is a keep-alive (BEP 3). Messages are frozen, slotted dataclasses; the union of
them is `Message`. `encode_message` writes one; `peer.frames.FrameDecoder` reads a byte
stream of them (a module of its own: its zero-copy buffering and its limits are most of
the code, and the engine is the only reader).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Final, TypeAlias, final

__all__ = [
    "BLOCK_SIZE",
    "DEFAULT_MAX_BITFIELD_LENGTH",
    "DEFAULT_MAX_EXTENDED_LENGTH",
    "DEFAULT_MAX_LENGTH",
    "PIECE_HEADER_LENGTH",
    "AllowedFast",
    "BitfieldMessage",
    "Cancel",
    "Choke",
    "Extended",
    "Have",
    "HaveAll",
    "HaveNone",
    "Interested",
    "KeepAlive",
    "Message",
    "MessageId",
    "NotInterested",
    "Piece",
    "Port",
    "RawBlock",
    "Reject",
    "Request",
    "Suggest",
    "Unchoke",
    "encode_message",
    "encode_piece_header",
    "encode_request",
]

# BEP 3: "All current implementations use 2^14 (16 kiB), and close connections which
# request an amount greater than that."
BLOCK_SIZE: Final = 16 * 1024
#: Length prefix (4) + id (1) + index (4) + begin (4) in front of a piece's block.
PIECE_HEADER_LENGTH: Final = 13
#: Default cap on a frame's length field: one 16 KiB block plus id, index and begin.
DEFAULT_MAX_LENGTH: Final = BLOCK_SIZE + PIECE_HEADER_LENGTH - 4
#: Extended messages carry BEP 9 metadata pieces (16 KiB + a ~50-byte dict) and BEP 11
#: PEX lists; 1 KiB of slack covers the dict and the extended id.
DEFAULT_MAX_EXTENDED_LENGTH: Final = BLOCK_SIZE + 1024
#: A bitfield may arrive before the piece count is known (magnet links): allow 2^21
#: pieces (256 KiB), far more than any sane torrent, but bounded.
DEFAULT_MAX_BITFIELD_LENGTH: Final = 1 + (1 << 21) // 8


class MessageId(enum.IntEnum):
    """The id byte of each message type."""

    # BEP 3
    CHOKE = 0
    UNCHOKE = 1
    INTERESTED = 2
    NOT_INTERESTED = 3
    HAVE = 4
    BITFIELD = 5
    REQUEST = 6
    PIECE = 7
    CANCEL = 8
    # BEP 5: "port <len=0003><id=9><listen-port>"
    PORT = 9
    # BEP 6 (Fast extension)
    SUGGEST = 0x0D
    HAVE_ALL = 0x0E
    HAVE_NONE = 0x0F
    REJECT = 0x10
    ALLOWED_FAST = 0x11
    # BEP 10: "extended <len><id=20><extended message id><payload>"
    EXTENDED = 20


@final
@dataclass(frozen=True, slots=True)
class KeepAlive:
    """Zero-length frame that keeps an idle connection open."""


@final
@dataclass(frozen=True, slots=True)
class Choke:
    """The sender will not answer our requests."""


@final
@dataclass(frozen=True, slots=True)
class Unchoke:
    """The sender will answer our requests."""


@final
@dataclass(frozen=True, slots=True)
class Interested:
    """The sender wants pieces we have."""


@final
@dataclass(frozen=True, slots=True)
class NotInterested:
    """The sender wants nothing from us."""


@final
@dataclass(frozen=True, slots=True)
class Have:
    """The sender has just completed and verified piece `index`."""

    index: int


@final
@dataclass(frozen=True, slots=True)
class BitfieldMessage:
    """The sender's pieces, high bit of byte 0 = piece 0 (see `shoal.swarm.Bitfield`)."""

    bitfield: bytes


@final
@dataclass(frozen=True, slots=True)
class Request:
    """Ask for `length` bytes of piece `index` from offset `begin`."""

    index: int
    begin: int
    length: int


@final
@dataclass(frozen=True, slots=True)
class Piece:
    """A block of data. Decoded blocks are read-only views into the received bytes."""

    index: int
    begin: int
    block: bytes | memoryview


@final
@dataclass(frozen=True, slots=True)
class Cancel:
    """Withdraw an earlier `Request` with the same fields."""

    index: int
    begin: int
    length: int


@final
@dataclass(frozen=True, slots=True)
class Port:
    """BEP 5: the sender's DHT node listens on this UDP port."""

    port: int


@final
@dataclass(frozen=True, slots=True)
class Suggest:
    """BEP 6: the sender suggests downloading piece `index`."""

    index: int


@final
@dataclass(frozen=True, slots=True)
class HaveAll:
    """BEP 6: the sender is a seed (replaces a bitfield)."""


@final
@dataclass(frozen=True, slots=True)
class HaveNone:
    """BEP 6: the sender has no pieces (replaces a bitfield)."""


@final
@dataclass(frozen=True, slots=True)
class Reject:
    """BEP 6: the sender will not serve this request."""

    index: int
    begin: int
    length: int


@final
@dataclass(frozen=True, slots=True)
class AllowedFast:
    """BEP 6: piece `index` may be requested even while we are choked."""

    index: int


@final
@dataclass(frozen=True, slots=True)
class Extended:
    """BEP 10: an extension message; `extended_id` 0 is the extended handshake."""

    extended_id: int
    payload: bytes


Message: TypeAlias = (
    KeepAlive
    | Choke
    | Unchoke
    | Interested
    | NotInterested
    | Have
    | BitfieldMessage
    | Request
    | Piece
    | Cancel
    | Port
    | Suggest
    | HaveAll
    | HaveNone
    | Reject
    | AllowedFast
    | Extended
)

#: A decoded block without its `Piece` wrapper: (index, begin, read-only view).
RawBlock: TypeAlias = tuple[int, int, memoryview]

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U32X2 = struct.Struct(">II")
_U32X3 = struct.Struct(">III")
_LEN_ID = struct.Struct(">IB")
_LEN_ID_U32 = struct.Struct(">IBI")
_LEN_ID_U32X2 = struct.Struct(">IBII")
_LEN_ID_U32X3 = struct.Struct(">IBIII")

_KEEP_ALIVE_FRAME: Final = b"\0\0\0\0"
# The payload-less messages: decoded to shared instances, encoded from a table.
_SINGLETONS: Final[dict[int, Message]] = {
    MessageId.CHOKE: Choke(),
    MessageId.UNCHOKE: Unchoke(),
    MessageId.INTERESTED: Interested(),
    MessageId.NOT_INTERESTED: NotInterested(),
    MessageId.HAVE_ALL: HaveAll(),
    MessageId.HAVE_NONE: HaveNone(),
}
_BARE: Final = {type(m): _LEN_ID.pack(1, msg_id) for msg_id, m in _SINGLETONS.items()}


def encode_piece_header(index: int, begin: int, block_length: int) -> bytes:
    """The 13 bytes that precede a block, so it can be sent without concatenation.

    ``send_all(encode_piece_header(i, b, len(block)))`` then ``send_all(block)`` puts
    the same bytes on the wire as ``encode_message(Piece(i, b, block))``.
    """
    try:
        return _LEN_ID_U32X2.pack(9 + block_length, MessageId.PIECE, index, begin)
    except struct.error as exc:
        raise ValueError(f"piece header field out of range: {exc}") from exc


def encode_request(index: int, begin: int, length: int) -> bytes:
    """``encode_message(Request(index, begin, length))`` without building the message
    (once per block on the download path)."""
    try:
        return _LEN_ID_U32X3.pack(13, MessageId.REQUEST, index, begin, length)
    except struct.error as exc:
        raise ValueError(f"request field out of range: {exc}") from exc


def encode_message(msg: Message) -> bytes:
    """The wire form of `msg`, length prefix included.

    Raises:
        ValueError: a field does not fit its wire width (a bug in the caller).
    """
    try:
        return _encode(msg)
    except struct.error as exc:
        raise ValueError(f"cannot encode {msg!r}: {exc}") from exc


def _encode(msg: Message) -> bytes:
    bare = _BARE.get(type(msg))
    if bare is not None:
        return bare
    match msg:
        case Piece(index, begin, block):
            return encode_piece_header(index, begin, len(block)) + block
        case Have(index):
            return _LEN_ID_U32.pack(5, MessageId.HAVE, index)
        case Request(index, begin, length):
            return _LEN_ID_U32X3.pack(13, MessageId.REQUEST, index, begin, length)
        case Cancel(index, begin, length):
            return _LEN_ID_U32X3.pack(13, MessageId.CANCEL, index, begin, length)
        case Reject(index, begin, length):
            return _LEN_ID_U32X3.pack(13, MessageId.REJECT, index, begin, length)
        case BitfieldMessage(bitfield):
            return _LEN_ID.pack(1 + len(bitfield), MessageId.BITFIELD) + bitfield
        case Extended(extended_id, payload):
            head = _LEN_ID.pack(2 + len(payload), MessageId.EXTENDED)
            return head + bytes((extended_id,)) + payload
        case Suggest(index):
            return _LEN_ID_U32.pack(5, MessageId.SUGGEST, index)
        case AllowedFast(index):
            return _LEN_ID_U32.pack(5, MessageId.ALLOWED_FAST, index)
        case Port(port):
            return _LEN_ID.pack(3, MessageId.PORT) + _U16.pack(port)
        case KeepAlive():
            return _KEEP_ALIVE_FRAME
    raise TypeError(f"not a peer wire message: {msg!r}")
