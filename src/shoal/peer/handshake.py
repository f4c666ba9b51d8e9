"""BitTorrent handshake (BEP 3): protocol string, reserved bits (BEP 4), info_hash, peer_id.

Theory of operation
-------------------
The handshake is a fixed 68-byte record::

    <pstrlen=19><pstr="BitTorrent protocol"><reserved: 8><info_hash: 20><peer_id: 20>

`HandshakeParser` is fed bytes as they arrive and exposes each field as soon as it is
complete, because a listener must see the ``info_hash`` (byte 48) to pick a torrent and
answer with its own handshake *before* the remote's ``peer_id`` arrives (BEP 3: "the
recipient may wait for the initiator's handshake ... however, the recipient must respond
as soon as it sees the info_hash part"). The protocol string is checked byte by byte as
it arrives, so a non-BitTorrent (or still-encrypted) stream fails on its first wrong
byte rather than after 68 bytes. Bytes after the handshake are never interpreted here:
they are handed on as `trailing_data` to the peer-wire `FrameDecoder`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, final

from ..errors import HandshakeError
from ..ids import InfoHash, PeerId

__all__ = [
    "HANDSHAKE_LENGTH",
    "PROTOCOL_HEADER",
    "Handshake",
    "HandshakeParser",
    "ReservedBits",
    "decode_handshake",
    "encode_handshake",
]

# BEP 3: "The handshake starts with character ninteen (decimal) followed by the string
# 'BitTorrent protocol'."
PROTOCOL_HEADER: Final = b"\x13BitTorrent protocol"
_RESERVED_END: Final = 28  # 20-byte header + 8 reserved bytes
_INFO_HASH_END: Final = 48
#: 20 + 8 + 20 + 20.
HANDSHAKE_LENGTH: Final = 68


class ReservedBits(enum.IntFlag):
    """The 8 reserved bytes read as one big-endian 64-bit integer (BEP 4 allocations).

    Unknown bits are kept (``IntFlag`` keeps undefined values), so re-encoding a received
    handshake reproduces it exactly.
    """

    NONE = 0
    #: BEP 5: "the last bit of the 8-byte reserved flags" (byte 7, 0x01): DHT support.
    DHT = 0x01
    #: BEP 6: "reserved[7] |= 0x04": Fast extension.
    FAST = 0x04
    #: BEP 10: "reserved_byte[5] & 0x10": extension protocol.
    EXTENSION_PROTOCOL = 0x10 << 16

    @classmethod
    def from_wire(cls, data: bytes) -> ReservedBits:
        """The flags of an 8-byte reserved field."""
        return cls(int.from_bytes(data, "big"))

    def to_wire(self) -> bytes:
        """The 8-byte wire form."""
        return int(self).to_bytes(8, "big")


@final
@dataclass(frozen=True, slots=True)
class Handshake:
    """One side's handshake. `reserved` advertises the extensions that side supports."""

    info_hash: InfoHash
    peer_id: PeerId
    reserved: ReservedBits = ReservedBits.NONE


def encode_handshake(handshake: Handshake) -> bytes:
    """The 68-byte wire form of `handshake`."""
    if len(handshake.info_hash) != 20 or len(handshake.peer_id) != 20:
        raise ValueError("info_hash and peer_id must be 20 bytes")
    if not 0 <= handshake.reserved < 1 << 64:
        raise ValueError("reserved bits must fit in 8 bytes")
    return b"".join(
        (PROTOCOL_HEADER, handshake.reserved.to_wire(), handshake.info_hash, handshake.peer_id)
    )


def _check_header(data: bytes | bytearray, start: int) -> None:
    """Raise unless ``data`` agrees with the protocol header from offset `start` on."""
    end = min(len(data), len(PROTOCOL_HEADER))
    if start < end and data[start:end] != PROTOCOL_HEADER[start:end]:
        raise HandshakeError(f"not a BitTorrent handshake: header starts {bytes(data[:end])!r}")


def decode_handshake(data: bytes) -> Handshake:
    """Parse exactly one 68-byte handshake.

    Raises:
        HandshakeError: wrong length or protocol string.
    """
    if len(data) != HANDSHAKE_LENGTH:
        raise HandshakeError(f"handshake must be {HANDSHAKE_LENGTH} bytes, got {len(data)}")
    _check_header(data, 0)
    return Handshake(
        reserved=ReservedBits.from_wire(data[20:_RESERVED_END]),
        info_hash=InfoHash(data[_RESERVED_END:_INFO_HASH_END]),
        peer_id=PeerId(data[_INFO_HASH_END:HANDSHAKE_LENGTH]),
    )


@final
class HandshakeParser:
    """Incremental parser for the remote's handshake.

    Feed bytes with `receive_data`; `reserved`, `info_hash` and `handshake` become
    non-``None`` as soon as their bytes have arrived. Once `handshake` is set, every
    further byte goes to `trailing_data` for the next layer.

    Args:
        expected_info_hash: the initiator knows which torrent it asked for; a different
            ``info_hash`` is refused as soon as it arrives.
    """

    __slots__ = ("_buf", "_expected", "handshake", "info_hash", "reserved", "trailing_data")

    def __init__(self, *, expected_info_hash: bytes | None = None) -> None:
        self._buf = bytearray()
        self._expected = expected_info_hash
        self.reserved: ReservedBits | None = None
        self.info_hash: InfoHash | None = None
        self.handshake: Handshake | None = None
        #: Bytes received after the handshake: the start of the peer-wire stream.
        self.trailing_data = b""

    def receive_data(self, data: bytes) -> None:
        """Take bytes from the remote.

        Raises:
            HandshakeError: wrong protocol string or unexpected ``info_hash``
                (a `RemoteProtocolError`); anything else is a bug.
        """
        if self.handshake is not None:
            # The caller should have switched layers; keep the bytes rather than lose them.
            self.trailing_data += data
            return
        need = HANDSHAKE_LENGTH - len(self._buf)
        start = len(self._buf)
        self._buf += data[:need]
        if len(data) > need:
            self.trailing_data = bytes(data[need:])
        _check_header(self._buf, start)
        buf = self._buf
        if self.reserved is None and len(buf) >= _RESERVED_END:
            self.reserved = ReservedBits.from_wire(bytes(buf[20:_RESERVED_END]))
        if self.info_hash is None and len(buf) >= _INFO_HASH_END:
            info_hash = InfoHash(bytes(buf[_RESERVED_END:_INFO_HASH_END]))
            if self._expected is not None and info_hash != self._expected:
                raise HandshakeError(f"peer answered for info_hash {info_hash.hex()}")
            self.info_hash = info_hash
        if len(buf) == HANDSHAKE_LENGTH and self.info_hash is not None:
            assert self.reserved is not None  # set at byte 28, before the info_hash
            self.handshake = Handshake(
                info_hash=self.info_hash,
                peer_id=PeerId(bytes(buf[_INFO_HASH_END:])),
                reserved=self.reserved,
            )
