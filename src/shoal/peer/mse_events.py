"""Events out of the MSE handshake engine (`shoal.peer.mse.MSEHandshake.next_event`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import final

__all__ = ["CryptoMethod", "HandshakeComplete"]


# Defined here, not in ``mse.py``, so that the event module needs nothing from the engine
# (``mse.py`` imports and re-exports it): no import circle.
class CryptoMethod(enum.IntFlag):
    """crypto_provide / crypto_select bits (MSE spec, "Constants/Variables")."""

    PLAINTEXT = 0x01  # header obfuscation only: payload after IA/PadD is unencrypted
    RC4 = 0x02  # the handshake's RC4 streams continue over the payload


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
