"""The whole exception hierarchy: every exception shoal raises on purpose lives here.

Pure engines raise only `DecodeError`, `LocalProtocolError` or `RemoteProtocolError`
(and its subclass `HandshakeError`); anything else escaping an engine is a bug.
Expected outcomes (a KRPC error reply, a query timeout, a bad piece) are events or
return values, not exceptions.
"""

from __future__ import annotations

__all__ = [
    "BindAddressError",
    "DecodeError",
    "HandshakeError",
    "LocalProtocolError",
    "MetadataError",
    "NeedHandshakeError",
    "ProtocolError",
    "ProxyError",
    "RemoteProtocolError",
    "ShoalError",
    "StorageError",
]


class ShoalError(Exception):
    """Base class for every exception shoal raises on purpose."""


class DecodeError(ShoalError, ValueError):
    """Bytes or text could not be parsed (bencode, compact info, wire frame, magnet, metainfo).

    A `ValueError` subclass so that callers who only know the stdlib still catch it.
    """


class ProtocolError(ShoalError):
    """Abstract: a protocol rule was broken. Instantiate a subclass.

    `hint` carries a suggested reaction, e.g. a KRPC error code to reply with.
    """

    def __init__(self, msg: str, *, hint: object | None = None) -> None:
        if type(self) is ProtocolError:
            raise TypeError("ProtocolError is abstract; raise a subclass")
        super().__init__(msg)
        self.hint = hint


class LocalProtocolError(ProtocolError):
    """Our caller asked an engine for something illegal in its current state (a bug upstream)."""


class RemoteProtocolError(ProtocolError):
    """The remote node or peer violated the protocol; drop or penalise that one remote."""


class HandshakeError(RemoteProtocolError):
    """MSE or BitTorrent handshake failed (no sync marker, unknown info-hash, no common crypto)."""


class MetadataError(ShoalError):
    """ut_metadata could not be assembled or did not hash to the info-hash."""


class StorageError(ShoalError):
    """Disk storage failed; the `OSError` is chained as `__cause__`."""


class NeedHandshakeError(ShoalError):
    """A stream property was read before its handshake completed (as trio's SSLStream does)."""


class ProxyError(ShoalError):
    """The SOCKS5 proxy is unreachable, refused us (credentials, target, command) or
    went away. Nothing is ever sent around it instead: proxied traffic fails closed."""


class ProxyUnavailable(ProxyError, ConnectionError):
    """A datagram was not sent: its SOCKS5 UDP association is down (waiting for the
    proxy). An `OSError` too, so the socket loops that send it drop it as they drop any
    datagram the network refused, and never send it another way."""


class BindAddressError(ShoalError):
    """The ``--bind`` address (`ClientConfig.bind_host`) went away while running. shoal
    stops with this error rather than let any socket use another address."""
