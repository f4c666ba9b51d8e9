"""BEP 42 "DHT Security extension": node IDs tied to the node's external IP.

The first 21 bits of a node ID must equal the first 21 bits of
``crc32c((ip & mask) | (r << shift))`` and the last byte must carry ``r`` (its low
3 bits) in [0, 7]. For IPv4 the masked address is hashed as 4 bytes and for
IPv6 as its high 8 bytes, as in the BEP's example code and test vectors.

CRC-32C (Castagnoli) is not in the stdlib (``zlib.crc32`` is the IEEE polynomial),
so it is a small table-driven function here; the input is only 4 or 8 bytes, so no
dependency is worth adding.

`is_valid_node_id` runs for every query a node answers, from requesters that are mostly
new to it, so caches do not help: the address is packed once (`compact.ip_packed`
splits dotted quads by hand) and the exemption is an integer prefix test, not an
``ipaddress`` parse and network walk (which cost ~4 µs per new address, about a tenth
of answering a query).
"""

from __future__ import annotations

import functools
import ipaddress
from typing import TYPE_CHECKING, Final

from .compact import NODE_ID_LENGTH, ip_packed

if TYPE_CHECKING:
    import random

__all__ = ["crc32c", "is_exempt", "is_valid_node_id", "node_id_for_ip"]

# BEP 42: "ip & 0x030f3fff" for IPv4; the high 8 bytes "& 0x0103070f1f3f7fff" for IPv6.
_V4_MASK: Final = 0x030F3FFF
_V6_MASK: Final = 0x0103070F1F3F7FFF
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
#: packed length -> [(shift, prefix)]: exempt iff ``int(address) >> shift == prefix``.
_EXEMPT_PREFIXES: Final[dict[int, tuple[tuple[int, int], ...]]] = {
    size: tuple(
        (
            net.max_prefixlen - net.prefixlen,
            int(net.network_address) >> (net.max_prefixlen - net.prefixlen),
        )
        for net in _EXEMPT
        if net.max_prefixlen == 8 * size
    )
    for size in (4, 16)
}


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


def _prefix(packed: bytes, r: int) -> int:
    """``crc32c((ip & mask) | (r << shift))``, on integers rather than masking byte by byte."""
    if len(packed) == 4:
        return crc32c(
            ((int.from_bytes(packed, "big") & _V4_MASK) | (r & 0x07) << 29).to_bytes(4, "big")
        )
    head = int.from_bytes(packed[:8], "big")
    return crc32c(((head & _V6_MASK) | (r & 0x07) << 61).to_bytes(8, "big"))


def is_exempt(ip: str) -> bool:
    """True for local addresses, which BEP 42 exempts from ID verification.

    Raises:
        ValueError: `ip` is not an IPv4 or IPv6 address (a local bug, not remote input).
    """
    return _is_exempt_packed(ip_packed(ip))


@functools.lru_cache(maxsize=16_384)  # once per querier: ip_packed caches as many IPs
def _is_exempt_packed(packed: bytes) -> bool:
    value = int.from_bytes(packed, "big")
    return any(value >> shift == prefix for shift, prefix in _EXEMPT_PREFIXES[len(packed)])


def node_id_for_ip(ip: str, rng: random.Random) -> bytes:
    """A random node ID that is valid for external address `ip` under BEP 42."""
    rand = rng.getrandbits(8)
    crc = _prefix(ip_packed(ip), rand & 0x07)
    head = bytes([(crc >> 24) & 0xFF, (crc >> 16) & 0xFF, ((crc >> 8) & 0xF8) | rng.getrandbits(3)])
    return head + rng.randbytes(NODE_ID_LENGTH - 4) + bytes([rand])


def is_valid_node_id(ip: str, node_id: bytes) -> bool:
    """True if `node_id` obeys BEP 42 for `ip` (always true for exempt addresses).

    Compares the top 21 bits of the ID with the CRC computed with ``r`` taken from
    the ID's last byte.
    """
    if len(node_id) != NODE_ID_LENGTH:
        return False
    packed = ip_packed(ip)
    if _is_exempt_packed(packed):
        return True
    crc = _prefix(packed, node_id[-1] & 0x07)
    return int.from_bytes(node_id[:3], "big") >> 3 == crc >> 11
