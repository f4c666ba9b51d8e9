"""`PeerExtensions`: BEP 10 extension state of one connection (which extensions the peer
enabled and under which ids) and dispatch of incoming extended messages.

Theory of operation
-------------------
BEP 10: each side chooses the ids under which it wants to *receive* each extension and
announces them in the ``m`` dict of its extended handshake. So we send a message under
the id the peer chose (`id_for`), and we recognise an incoming one by the id we chose
(`OUR_EXTENSION_IDS`). The handshake may be repeated to change the mapping, and "the
``m`` dictionary is additive": a later one carries only changes, and "Setting an
extension number to zero means that the extension is not supported/disabled".

Payload codecs live in `shoal.peer.extension`; this class only routes. Every incoming
payload raises at most `DecodeError` (the engine turns it into `RemoteProtocolError`).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Final, final

from ..errors import LocalProtocolError
from . import events as ev
from .extension import (
    EXTENDED_HANDSHAKE_ID,
    UT_METADATA,
    UT_PEX,
    Addr,
    ExtendedHandshake,
    MetadataData,
    MetadataReject,
    MetadataRequest,
    PexMessage,
    PexPeer,
    decode_extended_handshake,
    decode_metadata_message,
    decode_pex,
    encode_extended_handshake,
    encode_pex,
)
from .holepunch import UT_HOLEPUNCH, decode_holepunch

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .events import PeerEvent

__all__ = ["OUR_EXTENSION_IDS", "PeerExtensions", "encode_pex_lists"]

#: The extended ids *we* want to receive (BEP 10: each side picks its own numbers).
OUR_EXTENSION_IDS: Final = {UT_METADATA: 1, UT_PEX: 2, UT_HOLEPUNCH: 3}


@final
class PeerExtensions:
    """The peer's BEP 10 state: `ids` (name → its id), `reqq`, `metadata_size`."""

    __slots__ = (
        "_enable_holepunch",
        "_enable_pex",
        "_max_metadata_size",
        "ids",
        "metadata_size",
        "reqq",
    )

    def __init__(
        self, *, max_metadata_size: int, enable_pex: bool, enable_holepunch: bool = False
    ) -> None:
        self._max_metadata_size = max_metadata_size
        self._enable_pex = enable_pex
        self._enable_holepunch = enable_holepunch
        self.ids: dict[str, int] = {}
        self.reqq: int | None = None
        self.metadata_size: int | None = None

    def our_handshake(
        self,
        *,
        version: str | None,
        listen_port: int | None,
        reqq: int,
        metadata_size: int | None,
        yourip: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
    ) -> bytes:
        """The payload of our extended handshake."""
        off = {UT_PEX} if not self._enable_pex else set()
        if not self._enable_holepunch:
            off.add(UT_HOLEPUNCH)
        ids = {k: v for k, v in OUR_EXTENSION_IDS.items() if k not in off}
        hs = ExtendedHandshake(
            m=ids, v=version, p=listen_port, reqq=reqq, metadata_size=metadata_size, yourip=yourip
        )
        return encode_extended_handshake(hs)

    def id_for(self, name: str) -> int:
        """The id the peer wants `name` sent under.

        Raises:
            LocalProtocolError: the peer has not enabled `name`.
        """
        ext_id = self.ids.get(name)
        if ext_id is None:
            raise LocalProtocolError(f"peer does not support {name}")
        return ext_id

    def receive(self, ext_id: int, payload: bytes) -> PeerEvent | None:
        """Decode one incoming extended message; ``None`` if it is to be ignored.

        Raises:
            DecodeError: a payload that does not decode.
        """
        max_size = self._max_metadata_size
        if ext_id == EXTENDED_HANDSHAKE_ID:
            hs = decode_extended_handshake(payload, max_metadata_size=max_size)
            for name, peer_id in hs.m.items():
                if peer_id == 0:
                    self.ids.pop(name, None)
                else:
                    self.ids[name] = peer_id
            self.reqq = hs.reqq if hs.reqq is not None else self.reqq
            if hs.metadata_size is not None:
                self.metadata_size = hs.metadata_size
            return ev.ExtendedHandshakeReceived(hs)
        if ext_id == OUR_EXTENSION_IDS[UT_METADATA]:
            # BEP 9: "an unrecognized message ID MUST be ignored" (decoder gives None).
            match decode_metadata_message(payload, max_metadata_size=max_size):
                case MetadataRequest(piece):
                    return ev.MetadataRequested(piece)
                case MetadataData(piece, total_size, data):
                    return ev.MetadataPieceReceived(piece, total_size, data)
                case MetadataReject(piece):
                    return ev.MetadataRejected(piece)
            return None
        if ext_id == OUR_EXTENSION_IDS[UT_PEX] and self._enable_pex:
            pex = decode_pex(payload)
            return ev.PexReceived(pex.added + pex.added6, pex.dropped + pex.dropped6)
        if ext_id == OUR_EXTENSION_IDS[UT_HOLEPUNCH] and self._enable_holepunch:
            return ev.HolepunchReceived(decode_holepunch(payload))
        return None


def encode_pex_lists(added: Iterable[PexPeer], dropped: Iterable[Addr]) -> bytes:
    """A ut_pex payload from mixed IPv4/IPv6 lists (BEP 11 keeps the families apart).

    Raises:
        ValueError: a host is not an IP address, or a port is out of range.
    """
    added, dropped = tuple(added), tuple(dropped)

    def version(host: str) -> int:
        return ipaddress.ip_address(host).version

    return encode_pex(
        PexMessage(
            added=tuple(p for p in added if version(p.addr[0]) == 4),
            dropped=tuple(a for a in dropped if version(a[0]) == 4),
            added6=tuple(p for p in added if version(p.addr[0]) == 6),
            dropped6=tuple(a for a in dropped if version(a[0]) == 6),
        )
    )
