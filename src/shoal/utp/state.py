"""The vocabulary one uTP connection shares with its endpoint and its mixins.

Tunables (`UTPConfig`), the timing and size constants (their reasons are in
`utp/connection.py`'s docstring), the connection's states and signals, and
`SentPacket`, the record of one packet in flight. Kept apart from the engine so that
`utp/connection.py` stays about the protocol and `utp/acks.py` can share the record
without importing the engine back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from .packet import PacketType

__all__ = [
    "DELAYED_ACK",
    "FIN_WAIT",
    "HALF_OPEN_TIMEOUT",
    "KEEPALIVE",
    "LINGER",
    "MAX_REORDER",
    "MSS",
    "CloseReason",
    "ConnState",
    "SentPacket",
    "Signal",
    "UTPConfig",
]

MSS: Final = 1178
DELAYED_ACK: Final = 0.020
KEEPALIVE: Final = 29.0  # libtorrent's interval: keeps NAT mappings of idle connections
#: How long a finished connection stays to re-acknowledge a retransmitted FIN.
LINGER: Final = 2.0
#: After our FIN is acknowledged, how long we wait for the remote's FIN.
FIN_WAIT: Final = 30.0
#: Farthest ahead of ``ack_nr`` an out-of-order packet is buffered.
MAX_REORDER: Final = 2048
#: An incoming connection that hears nothing after its SYN-ACK is dropped after this.
HALF_OPEN_TIMEOUT: Final = 10.0


@dataclass(frozen=True, slots=True)
class UTPConfig:
    """Tunables (defaults follow libtorrent where it has an equivalent)."""

    recv_buffer: int = 1 << 20
    send_buffer: int = 1 << 20
    max_cwnd: int = 8 << 20
    target_delay: float = 0.100
    syn_resends: int = 2
    data_resends: int = 6
    #: Endpoint: most connections at all, and most half-open incoming ones (SYN flood).
    max_connections: int = 1024
    max_half_open_incoming: int = 64
    #: Endpoint: accepted SYNs per second (token bucket of the same size).
    syn_rate: float = 100.0


class CloseReason(enum.Enum):
    """Why a connection ended."""

    FINISHED = "finished"  # both FINs exchanged, or our close completed
    RESET = "reset"  # the remote sent ST_RESET
    TIMED_OUT = "timed out"  # too many consecutive retransmission timeouts (SYN included)
    REFUSED = "refused"  # our SYN was answered with a RESET
    ABORTED = "aborted"  # we called abort()


class Signal(enum.Enum):
    """What a connection tells its endpoint, which turns it into an event (events.py)."""

    CONNECTED = "connected"
    READABLE = "readable"
    WRITABLE = "writable"
    CLOSED = "closed"
    ACK_DUE = "ack due"  # not an event: the endpoint calls flush_ack() when drained


class ConnState(enum.Enum):
    SYN_SENT = "syn-sent"
    SYN_RECV = "syn-recv"
    CONNECTED = "connected"
    CLOSED = "closed"


class SentPacket:
    """A packet we sent (until acknowledged) or one received out of order.

    A plain slotted class: one is built per packet, and a dataclass ``__init__`` with
    defaults costs about twice as much."""

    __slots__ = ("fast_resent", "in_flight", "payload", "sent_at", "seq", "transmissions", "type")

    def __init__(self, seq: int, kind: PacketType, payload: bytes) -> None:
        self.seq = seq
        self.type = kind
        self.payload = payload
        self.sent_at = 0.0
        self.transmissions = 0
        self.in_flight = False
        self.fast_resent = False
