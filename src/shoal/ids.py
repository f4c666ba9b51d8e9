"""20-byte identifiers: info-hashes, DHT node IDs and peer IDs, and XOR distance.

`InfoHash` and `NodeId` are ``bytes`` subclasses so that they hash, compare and
slice like the wire bytes they are (no unwrapping on hot DHT paths) while their
constructors still refuse anything that is not exactly 20 bytes.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Final, Self

from .errors import DecodeError

if TYPE_CHECKING:
    import random

__all__ = [
    "ID_LENGTH",
    "InfoHash",
    "NodeId",
    "PeerId",
    "anonymous_peer_id",
    "distance",
    "random_id",
]

# BEP 3: info_hash and peer_id are 20 bytes; BEP 5: node IDs are 160-bit.
ID_LENGTH: Final = 20


class _Id20(bytes):
    """Exactly 20 bytes. Subclasses name what the bytes identify."""

    __slots__ = ()

    def __new__(cls, value: bytes) -> Self:
        if len(value) != ID_LENGTH:
            raise DecodeError(f"{cls.__name__} must be {ID_LENGTH} bytes, got {len(value)}")
        return super().__new__(cls, value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.hex()!r})"

    def __str__(self) -> str:
        return self.hex()

    def __int__(self) -> int:
        return int.from_bytes(self, "big")

    @classmethod
    def from_hex(cls, text: str) -> Self:
        """Parse 40 hex digits (either case)."""
        if len(text) != 2 * ID_LENGTH:
            raise DecodeError(f"expected 40 hex digits, got {len(text)} characters")
        try:
            return cls(bytes.fromhex(text))
        except ValueError as exc:
            raise DecodeError(f"not hexadecimal: {text!r}") from exc

    @classmethod
    def from_int(cls, value: int) -> Self:
        if not 0 <= value < 1 << 160:
            raise ValueError("identifier out of the 160-bit range")
        return cls(value.to_bytes(ID_LENGTH, "big"))


class InfoHash(_Id20):
    """SHA-1 of a torrent's bencoded info dict (BEP 3, the v1 info-hash)."""

    __slots__ = ()

    @classmethod
    def from_base32(cls, text: str) -> Self:
        """Parse the 32-character base32 form used in older magnet links (BEP 9)."""
        if len(text) != 32:
            raise DecodeError(f"expected 32 base32 characters, got {len(text)}")
        try:
            return cls(base64.b32decode(text.upper()))
        except (binascii.Error, ValueError) as exc:
            raise DecodeError(f"not base32: {text!r}") from exc

    def to_base32(self) -> str:
        return base64.b32encode(self).decode("ascii")


class NodeId(_Id20):
    """A DHT node's 160-bit identifier (BEP 5)."""

    __slots__ = ()


class PeerId(_Id20):
    """A BitTorrent peer's self-chosen 20-byte identifier (BEP 3/BEP 20)."""

    __slots__ = ()


def distance(a: bytes, b: bytes) -> int:
    """Kademlia XOR metric between two 20-byte identifiers, as an integer."""
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


def random_id(rng: random.Random) -> bytes:
    """20 random bytes from an injected generator (pure modules never read entropy)."""
    return rng.getrandbits(160).to_bytes(ID_LENGTH, "big")


def anonymous_peer_id(rng: random.Random) -> PeerId:
    """A peer id with no client prefix (BEP 20 style ``-SHxxxx-`` names the client):
    20 random bytes, as libtorrent's anonymous mode sends."""
    return PeerId(random_id(rng))
