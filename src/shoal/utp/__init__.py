"""uTP (BEP 29) with LEDBAT congestion control, as pure sans-IO engines.

`UTPEndpoint` is the datagram engine for one UDP socket; it creates one
`UTPConnection` per uTP connection. The Trio layer is `shoal.net.utp_socket` /
`shoal.net.utp_stream`. See docs/utp.md.
"""

from __future__ import annotations

from .connection import MSS, ConnState, UTPConfig, UTPConnection
from .endpoint import EndpointStats, UTPEndpoint
from .events import (
    CloseReason,
    Connected,
    ConnectionClosed,
    IncomingConnection,
    Readable,
    UTPEvent,
    Writable,
)
from .packet import Packet, PacketType, decode_packet

__all__ = [
    "MSS",
    "CloseReason",
    "ConnState",
    "Connected",
    "ConnectionClosed",
    "EndpointStats",
    "IncomingConnection",
    "Packet",
    "PacketType",
    "Readable",
    "UTPConfig",
    "UTPConnection",
    "UTPEndpoint",
    "UTPEvent",
    "Writable",
    "decode_packet",
]
