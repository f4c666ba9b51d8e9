"""BEP 42 "DHT Security extension": node IDs tied to the node's external IP.

The first 21 bits of a node ID must equal the first 21 bits of
``crc32c((ip & mask) | (r << shift))`` and the last byte must carry ``r`` (its low
3 bits) in [0, 7]. For IPv4 the masked address is hashed as 4 bytes and for
IPv6 as its high 8 bytes, as in the BEP's example code and test vectors.

CRC-32C (Castagnoli) is not in the stdlib (``zlib.crc32`` is the IEEE polynomial),
so it is a small table-driven function here; IDs are checked once per node, so
speed does not matter and no dependency is worth adding.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import TYPE_CHECKING, Final

from .compact import NODE_ID_LENGTH, ip_packed

if TYPE_CHECKING:
    import random

__all__ = ["crc32c", "is_exempt", "is_valid_node_id", "node_id_for_ip"]

_V4_MASK: Final = bytes([0x03, 0x0F, 0x3F, 0xFF])
_V6_MASK: Final = bytes([0x01, 0x03, 0x07, 0x0F, 0x1F, 0x3F, 0x7F, 0xFF])
_CASTAGNOLI_REFLECTED: Final = 0x82F63B78

# BEP 42, "Enforcement": "Any peer on a local network address is exempt".
# The BEP lists IPv4 blocks; the IPv6 ones are their counterparts (loopback,
# link-local, unique local).
_EXEMPT: Final = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "127.0.0.0/8",
        "::1/128",
        "fe80::/10",
        "fc00::/7",
    )
)


def _make_table() -> tuple[int, ...]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ _CASTAGNOLI_REFLECTED if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_TABLE: Final = _make_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), reflected, init and xor-out 0xFFFFFFFF (RFC 3720 B.4)."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _prefix(ip: str, r: int) -> int:
    packed = ip_packed(ip)
    mask = _V4_MASK if len(packed) == 4 else _V6_MASK
    masked = bytearray(a & m for a, m in zip(packed, mask, strict=False))
    masked[0] |= (r & 0x07) << 5  # (r << 29) for IPv4, (r << 61) for IPv6
    return crc32c(bytes(masked))


@functools.lru_cache(maxsize=4096)
def is_exempt(ip: str) -> bool:
    """True for local addresses, which BEP 42 exempts from ID verification."""
    addr = ipaddress.ip_address(ip)
    return any(addr in net for net in _EXEMPT if net.version == addr.version)


def node_id_for_ip(ip: str, rng: random.Random) -> bytes:
    """A random node ID that is valid for external address `ip` under BEP 42."""
    rand = rng.getrandbits(8)
    crc = _prefix(ip, rand & 0x07)
    head = bytes([(crc >> 24) & 0xFF, (crc >> 16) & 0xFF, ((crc >> 8) & 0xF8) | rng.getrandbits(3)])
    return head + rng.randbytes(NODE_ID_LENGTH - 4) + bytes([rand])


def is_valid_node_id(ip: str, node_id: bytes) -> bool:
    """True if `node_id` obeys BEP 42 for `ip` (always true for exempt addresses).

    Compares the top 21 bits of the ID with the CRC computed with ``r`` taken from
    the ID's last byte.
    """
    if len(node_id) != NODE_ID_LENGTH:
        return False
    if is_exempt(ip):
        return True
    crc = _prefix(ip, node_id[-1] & 0x07)
    return int.from_bytes(node_id[:3], "big") >> 3 == crc >> 11
