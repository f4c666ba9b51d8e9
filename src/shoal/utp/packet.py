"""The BEP 29 packet: a 20-byte header, a chain of extensions, then the payload.

Strict decoding: anything BEP 29 does not allow (another version, an unknown type, an
extension chain that runs past the datagram, two selective-ACK masks, a payload on a
packet type that carries none, an empty DATA) raises
`DecodeError`, so the connection engine only ever sees well-formed packets. One
leniency: masks of any length are read (BEP 29 wants multiples of 4 bytes; libtorrent
2.1 sends 1-byte ones). Unknown
extension types are kept (BEP 29: "unknown extensions can be skipped"), which also
makes ``encode(decode(b)) == b`` hold for every accepted datagram.

Sequence and acknowledgement numbers are 16-bit and wrap; `seq_less` and `seq_diff`
are the only comparisons the engine uses on them.
"""

from __future__ import annotations

import enum
import struct
from typing import Final, NamedTuple

from ..errors import DecodeError

__all__ = [
    "HEADER_SIZE",
    "SACK_EXTENSION",
    "VERSION",
    "Packet",
    "PacketType",
    "decode_packet",
    "encode_datagram",
    "seq_diff",
    "seq_less",
]

VERSION: Final = 1
HEADER_SIZE: Final = 20
SACK_EXTENSION: Final = 1
SEQ_MASK: Final = 0xFFFF
U32_MASK: Final = 0xFFFFFFFF
_HEADER = struct.Struct(">BBHIIIHH")


class PacketType(enum.IntEnum):
    """The high nibble of byte 0 (BEP 29 "type")."""

    DATA = 0
    FIN = 1
    STATE = 2
    RESET = 3
    SYN = 4


# Only ST_DATA carries bytes. libtorrent and libutp never put a payload on the others;
# accepting one would give a FIN or a SYN two meanings.
_EMPTY_TYPES: Final = frozenset(
    {PacketType.FIN, PacketType.STATE, PacketType.RESET, PacketType.SYN}
)


_TYPES: Final = tuple(PacketType)  # indexed by the type nibble (cheaper than the enum call)


def seq_diff(a: int, b: int) -> int:
    """``a - b`` in the 16-bit sequence space, as a signed number in [-32768, 32767]."""
    d = (a - b) & SEQ_MASK
    return d - 0x10000 if d >= 0x8000 else d


def seq_less(a: int, b: int) -> bool:
    """True if sequence number ``a`` comes before ``b`` (wrap-around aware)."""
    return seq_diff(a, b) < 0


class Packet(NamedTuple):
    """One uTP packet. Numbers are raw header fields (timestamps in microseconds, mod 2**32).

    ``extensions`` keeps every extension in wire order as ``(type, bytes)``; use `sack`
    for the selective-ACK bitmask (BEP 29: bit ``i`` of byte ``j``, least significant
    first, acknowledges ``ack_nr + 2 + 8*j + i``).

    A named tuple rather than a frozen dataclass: one is built per datagram received,
    and a tuple is built several times faster (immutable all the same).
    """

    type: PacketType
    connection_id: int
    timestamp: int = 0
    timestamp_diff: int = 0
    wnd_size: int = 0
    seq_nr: int = 0
    ack_nr: int = 0
    payload: bytes = b""
    extensions: tuple[tuple[int, bytes], ...] = ()

    @property
    def sack(self) -> bytes | None:
        for kind, body in self.extensions:
            if kind == SACK_EXTENSION:
                return body
        return None

    def encode(self) -> bytes:
        """The datagram. Raises `ValueError` on out-of-range fields (a caller bug)."""
        first = self.extensions[0][0] if self.extensions else 0
        head = _HEADER.pack(
            (int(self.type) << 4) | VERSION,
            first,
            self.connection_id,
            self.timestamp,
            self.timestamp_diff,
            self.wnd_size,
            self.seq_nr,
            self.ack_nr,
        )
        parts = [head]
        for i, (kind, body) in enumerate(self.extensions):
            if kind == 0 or len(body) > 255:
                raise ValueError("extension type must be non-zero and at most 255 bytes long")
            following = self.extensions[i + 1][0] if i + 1 < len(self.extensions) else 0
            parts.append(bytes((following, len(body))))
            parts.append(body)
        parts.append(self.payload)
        return b"".join(parts)


def encode_datagram(
    kind: PacketType,
    connection_id: int,
    timestamp: int,
    timestamp_diff: int,
    wnd_size: int,
    seq_nr: int,
    ack_nr: int,
    payload: bytes,
    sack: bytes | None,
) -> bytes:
    """``Packet(...).encode()`` for a packet whose only extension is an optional
    selective ACK, without building the `Packet`: the send path's encoder (one call per
    datagram sent). Raises `ValueError` / `struct.error` on out-of-range fields."""
    head = _HEADER.pack(
        (kind << 4) | VERSION,
        SACK_EXTENSION if sack else 0,
        connection_id,
        timestamp,
        timestamp_diff,
        wnd_size,
        seq_nr,
        ack_nr,
    )
    if not sack:
        return head + payload
    if len(sack) > 255:
        raise ValueError("a selective ACK mask is at most 255 bytes long")
    return b"".join((head, bytes((0, len(sack))), sack, payload))


def decode_packet(data: bytes) -> Packet:
    """Parse one datagram. Raises `DecodeError` (only) on anything malformed."""
    if len(data) < HEADER_SIZE:
        raise DecodeError(f"uTP packet of {len(data)} bytes is shorter than the header")
    type_ver, ext, conn_id, ts, ts_diff, wnd, seq, ack = _HEADER.unpack_from(data)
    if type_ver & 0x0F != VERSION:
        raise DecodeError(f"uTP version {type_ver & 0x0F} is not 1")
    if type_ver >> 4 >= len(_TYPES):
        raise DecodeError(f"unknown uTP packet type {type_ver >> 4}")
    kind = _TYPES[type_ver >> 4]
    if ext:
        extensions, offset = _decode_extensions(data, ext)
    else:  # the common DATA packet: no extension chain to walk
        extensions, offset = (), HEADER_SIZE
    payload = data[offset:]
    if kind in _EMPTY_TYPES and payload:
        raise DecodeError(f"uTP {kind.name} packet carries a payload")
    if kind is PacketType.DATA and not payload:
        raise DecodeError("uTP DATA packet without payload")
    return Packet(kind, conn_id, ts, ts_diff, wnd, seq, ack, bytes(payload), extensions)


def _decode_extensions(data: bytes, kind: int) -> tuple[tuple[tuple[int, bytes], ...], int]:
    offset = HEADER_SIZE
    out: list[tuple[int, bytes]] = []
    while kind:
        if offset + 2 > len(data):
            raise DecodeError("uTP extension header runs past the datagram")
        following, length = data[offset], data[offset + 1]
        body = data[offset + 2 : offset + 2 + length]
        if len(body) != length:
            raise DecodeError("uTP extension runs past the datagram")
        # BEP 29 wants SACK masks of "at least 4, and in multiples of 4" bytes, but
        # libtorrent 2.1 sends 1-byte ones (seen on the wire): any length is read.
        if kind == SACK_EXTENSION and any(k == SACK_EXTENSION for k, _ in out):
            raise DecodeError("two selective ACK extensions in one packet")
        out.append((kind, bytes(body)))
        offset += 2 + length
        kind = following
    return tuple(out), offset
