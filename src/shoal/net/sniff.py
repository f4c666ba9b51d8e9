"""Inbound protocol sniffing: plain BitTorrent or MSE, decided from the first bytes.

A plain BitTorrent connection starts with the fixed 20-byte protocol string
(BEP 3: ``\\x13BitTorrent protocol``); an MSE connection starts with a 96-byte DH
key that is indistinguishable from random. We read at most those 20 bytes (never
more, so nothing is taken from the layer above) and push them back in front of the
stream: into a `PrefixedStream` for plaintext, or into the MSE receiver's engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, final

import trio

from ..errors import HandshakeError
from ..peer.mse import CryptoMethod, EncryptionPolicy, SKeyLookup
from ._conflict import ConflictDetector
from ._max_bytes import check_max_bytes
from .mse_stream import MSEStream

if TYPE_CHECKING:
    import random

__all__ = ["BT_PROTOCOL_HEADER", "InboundConnection", "PrefixedStream", "sniff_inbound"]

#: BEP 3 handshake prefix: pstrlen (19) then pstr.
BT_PROTOCOL_HEADER: Final = b"\x13BitTorrent protocol"


@final
class PrefixedStream(trio.abc.Stream):
    """Serve `prefix` from ``receive_some`` first, then read `transport_stream`.

    Everything else (sending, closing) goes straight to the transport. This is how
    bytes peeked for a decision are handed back to the next layer.
    """

    def __init__(self, prefix: bytes, transport_stream: trio.abc.Stream) -> None:
        self.transport_stream: Final = transport_stream
        self._prefix = bytearray(prefix)
        self._closed = False
        self._receive_conflict = ConflictDetector("another task is receiving on this stream")

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        max_bytes = check_max_bytes(max_bytes)
        with self._receive_conflict:
            if self._closed:
                raise trio.ClosedResourceError("stream is closed")
            if not self._prefix:
                return await self.transport_stream.receive_some(max_bytes)
            await trio.lowlevel.checkpoint()
            n = len(self._prefix) if max_bytes is None else max_bytes
            chunk = bytes(self._prefix[:n])
            del self._prefix[:n]
            return chunk

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.transport_stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport_stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        self._closed = True
        await self.transport_stream.aclose()


@final
@dataclass(frozen=True)
class InboundConnection:
    """What `sniff_inbound` found.

    Attributes:
        stream: read the BitTorrent handshake from here, whatever the encryption.
        method: the MSE method, or None for a plain BitTorrent connection.
        skey: the info-hash the MSE peer asked for (None for plaintext: read it
            from the BitTorrent handshake instead). MSE only proves the peer knows
            it; the BitTorrent handshake that follows must name the same info-hash,
            and checking that is the handshake layer's job.
    """

    stream: trio.abc.Stream
    method: CryptoMethod | None
    skey: bytes | None


async def sniff_inbound(
    stream: trio.abc.Stream,
    *,
    skeys: SKeyLookup,
    policy: EncryptionPolicy | None = None,
    rng: random.Random | None = None,
) -> InboundConnection:
    """Tell plain BitTorrent from MSE on an accepted stream and finish MSE if needed.

    Put a deadline around this (``trio.fail_after``): a silent peer blocks it.

    Raises:
        HandshakeError: EOF before a decision, plaintext refused by `policy`, or
            any MSE handshake failure.
        trio.BrokenResourceError: the transport failed.
    """
    policy = policy or EncryptionPolicy()
    prefix = bytearray()
    # Stop as soon as the bytes cannot be the protocol string: an MSE key starts
    # with 0x13 only 1 time in 256, so we usually decide after one byte.
    while len(prefix) < len(BT_PROTOCOL_HEADER) and BT_PROTOCOL_HEADER.startswith(prefix):
        chunk = await stream.receive_some(len(BT_PROTOCOL_HEADER) - len(prefix))
        if not chunk:
            raise HandshakeError("peer closed the connection before its first message")
        prefix += chunk
    if prefix == BT_PROTOCOL_HEADER:
        if not policy.allow_unencrypted:
            raise HandshakeError("plaintext BitTorrent refused: encryption is required")
        return InboundConnection(PrefixedStream(bytes(prefix), stream), None, None)
    mse = MSEStream.receiver(stream, skeys, policy=policy, initial_data=bytes(prefix), rng=rng)
    await mse.do_handshake()
    return InboundConnection(mse, mse.crypto_method, mse.skey)
