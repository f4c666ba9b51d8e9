"""Events a `UTPEndpoint` reports (drain with ``next_event()``).

They carry the `UTPConnection` they concern, so the Trio layer can wake the one stream
that waits on it. Readable/Writable are edge notifications, not data: the bytes stay in
the connection until ``read()`` takes them, which is what makes flow control work.
"""

from __future__ import annotations

from dataclasses import dataclass

from .connection import CloseReason, UTPConnection

__all__ = [
    "CloseReason",
    "Connected",
    "ConnectionClosed",
    "IncomingConnection",
    "Readable",
    "UTPEvent",
    "Writable",
]


@dataclass(frozen=True, slots=True, eq=False)
class UTPEvent:
    conn: UTPConnection


@dataclass(frozen=True, slots=True, eq=False)
class IncomingConnection(UTPEvent):
    """A remote SYN created a new connection (already answered); it may be read at once."""


@dataclass(frozen=True, slots=True, eq=False)
class Connected(UTPEvent):
    """Our SYN was answered: the outgoing connection is established."""


@dataclass(frozen=True, slots=True, eq=False)
class Readable(UTPEvent):
    """In-order bytes arrived in an empty receive buffer, or the end of the stream did.

    Edge-triggered: after this, ``read()`` until it returns ``b""``; more data arriving
    while bytes are still unread raises no new event.
    """


@dataclass(frozen=True, slots=True, eq=False)
class Writable(UTPEvent):
    """The send buffer, which was full, has room again."""


@dataclass(frozen=True, slots=True, eq=False)
class ConnectionClosed(UTPEvent):
    """The connection is over; ``reason`` says how. No more events for it follow."""

    reason: CloseReason
