"""Compact IP/port and node info (BEP 5 "Contact Encoding", BEP 32 for IPv6).

Peers are 6 bytes (IPv4 + port) or 18 bytes (IPv6 + port); nodes prepend the
20-byte node ID, giving 26 and 38 bytes. All integers are big-endian. Decoders
are strict about lengths: a ``nodes`` string that is not a whole number of
entries is malformed, and guessing where the entries start would be worse than
dropping the message.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field
from typing import Final, TypeAlias

from ..errors import DecodeError

__all__ = [
    "NODE_ID_LENGTH",
    "NODE_INFO_V4_LENGTH",
    "NODE_INFO_V6_LENGTH",
    "PEER_V4_LENGTH",
    "PEER_V6_LENGTH",
    "Addr",
    "NodeInfo",
    "decode_nodes",
    "decode_nodes6",
    "decode_peer",
    "encode_nodes",
    "encode_nodes6",
    "encode_peer",
    "ip_packed",
]

Addr: TypeAlias = tuple[str, int]

NODE_ID_LENGTH: Final = 20
# BEP 5: "Compact IP-address/port info" is 4 + 2 bytes; "Compact node info" is 20 + 6.
PEER_V4_LENGTH: Final = 6
NODE_INFO_V4_LENGTH: Final = NODE_ID_LENGTH + PEER_V4_LENGTH
# BEP 32: the IPv6 forms are 16 + 2 and 20 + 18 bytes.
PEER_V6_LENGTH: Final = 18
NODE_INFO_V6_LENGTH: Final = NODE_ID_LENGTH + PEER_V6_LENGTH


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A DHT node's contact: its 20-byte ID and its UDP address."""

    node_id: bytes
    addr: Addr
    # The compact form, stored by the encoder on first use: routing-table entries keep
    # their NodeInfo, and find_node/get_peers replies list the same ones over and over.
    _compact: bytes | None = field(default=None, init=False, repr=False, compare=False)


# 16,384 addresses (about 2 MB): get_peers replies repeat the same stored peers.
@functools.lru_cache(maxsize=16_384)
def ip_packed(ip: str) -> bytes:
    """The 4- or 16-byte network form of a textual IP address.

    Runs several times per answered query (token, ``ip`` field, nodes), and the
    ``ipaddress`` parser was most of the cost of an answer: dotted-quad text, the only
    form sockets hand us for IPv4, is split by hand. The cache serves the routing
    table's addresses and the stored peers that get_peers replies list again and again.

    Raises:
        ValueError: `ip` is not an IPv4 or IPv6 address (a local bug, not remote input).
    """
    parts = ip.split(".")
    if len(parts) == 4 and all(_is_octet_text(p) for p in parts):
        return bytes(map(int, parts))  # ValueError above 255, like ipaddress
    return ipaddress.ip_address(ip).packed


def _is_octet_text(part: str) -> bool:
    # ipaddress refuses leading zeros ("01" could be octal) and non-ASCII digits.
    return (
        0 < len(part) <= 3
        and part.isascii()
        and part.isdigit()
        and (part[0] != "0" or len(part) == 1)
    )


def _check_port(port: int) -> None:
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port {port} out of range")


def encode_peer(addr: Addr) -> bytes:
    """Compact peer info: 6 bytes for IPv4, 18 for IPv6 (BEP 32)."""
    _check_port(addr[1])
    return ip_packed(addr[0]) + addr[1].to_bytes(2, "big")


def _ip_text(raw: bytes) -> str:
    if len(raw) == 4:
        return ".".join(str(b) for b in raw)
    return ipaddress.IPv6Address(raw).compressed


def decode_peer(data: bytes) -> Addr:
    """Parse one compact peer (6 or 18 bytes).

    Raises:
        DecodeError: any other length.
    """
    if len(data) not in (PEER_V4_LENGTH, PEER_V6_LENGTH):
        raise DecodeError(f"compact peer info must be 6 or 18 bytes, got {len(data)}")
    return _ip_text(data[:-2]), int.from_bytes(data[-2:], "big")


def _encode_node_list(nodes: list[NodeInfo] | tuple[NodeInfo, ...], ip_len: int) -> bytes:
    return b"".join([_encode_node(node, ip_len) for node in nodes])


def _encode_node(node: NodeInfo, ip_len: int) -> bytes:
    packed = node._compact
    if packed is None:
        if len(node.node_id) != NODE_ID_LENGTH:
            raise ValueError(f"node id must be 20 bytes, got {len(node.node_id)}")
        packed = node.node_id + encode_peer(node.addr)
        object.__setattr__(node, "_compact", packed)  # frozen: a cache, not a field
    if len(packed) != NODE_ID_LENGTH + ip_len + 2:
        raise ValueError(f"address {node.addr[0]!r} has the wrong family for this list")
    return packed


def _decode_node_list(data: bytes, entry_len: int) -> list[NodeInfo]:
    if len(data) % entry_len:
        raise DecodeError(f"compact node info length {len(data)} is not a multiple of {entry_len}")
    n = NODE_ID_LENGTH
    return [
        NodeInfo(data[i : i + n], decode_peer(data[i + n : i + entry_len]))
        for i in range(0, len(data), entry_len)
    ]


def encode_nodes(nodes: list[NodeInfo] | tuple[NodeInfo, ...]) -> bytes:
    """Concatenated 26-byte IPv4 node infos (the KRPC ``nodes`` value).

    Raises:
        ValueError: a node has a non-IPv4 address or a node id that is not 20 bytes.
    """
    return _encode_node_list(nodes, 4)


def decode_nodes(data: bytes) -> list[NodeInfo]:
    """Parse a KRPC ``nodes`` string.

    Raises:
        DecodeError: the length is not a multiple of 26.
    """
    return _decode_node_list(data, NODE_INFO_V4_LENGTH)


def encode_nodes6(nodes: list[NodeInfo] | tuple[NodeInfo, ...]) -> bytes:
    """Concatenated 38-byte IPv6 node infos (the BEP 32 ``nodes6`` value)."""
    return _encode_node_list(nodes, 16)


def decode_nodes6(data: bytes) -> list[NodeInfo]:
    """Parse a BEP 32 ``nodes6`` string.

    Raises:
        DecodeError: the length is not a multiple of 38.
    """
    return _decode_node_list(data, NODE_INFO_V6_LENGTH)
