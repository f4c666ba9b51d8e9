"""Events out of the MSE handshake engine (`shoal.peer.mse.MSEHandshake.next_event`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, final

if TYPE_CHECKING:
    from .mse import CryptoMethod

__all__ = ["HandshakeComplete"]


@final
@dataclass(frozen=True)
class HandshakeComplete:
    """The MSE handshake succeeded. Do not subclass.

    Attributes:
        method: the negotiated ENCRYPT2 method.
        skey: the shared secret, i.e. the torrent's info-hash.
        initial_payload: B only: A's decrypted IA (normally its BitTorrent handshake).
    """

    method: CryptoMethod
    skey: bytes
    initial_payload: bytes
