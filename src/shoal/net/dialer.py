"""Outgoing peer connections: TCP connect, MSE per policy, BitTorrent handshake.

Theory of operation
-------------------
`Dialer.dial(addr, info_hash)` returns a `PeerLink`: the stream positioned after
both BitTorrent handshakes, the remote's handshake and any bytes already read past
it. Encryption follows `EncryptionMode` (BEP 8 / the MSE spec):

* REQUIRE: MSE offering RC4 only; a peer that cannot do it is a failed dial.
* DISABLE: plain BitTorrent only.
* PREFER: MSE offering RC4 (and header obfuscation); if the MSE handshake fails,
  reconnect once in plaintext, because many peers do not speak MSE at all and
  answer its random-looking first bytes by hanging up.

Our BitTorrent handshake rides in MSE's initial payload (IA) so the connection
costs no extra round trip. Every attempt holds one token of the shared
``max_half_open`` limiter and runs under its own deadline; the caller may add an
overall one with ``trio.fail_after``. The stream itself comes from a `Transport`
(``net/transport.py``): `TcpTransport` by default, whose ``bind_host`` (the user's
``--bind``) makes connections leave from the address we listen on.
Self-connections are refused twice: before dialling (our own listen address) and
after the handshake (our own peer id).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, final

import trio

from ..config import EncryptionMode
from ..errors import HandshakeError
from ..peer.handshake import Handshake, HandshakeParser, ReservedBits, encode_handshake
from ..peer.mse import CryptoMethod, EncryptionPolicy
from .mse_stream import MSEStream
from .transport import CONNECT_TIMEOUT, TcpTransport, Transport

if TYPE_CHECKING:
    from ..ids import InfoHash, PeerId

__all__ = [
    "CONNECT_TIMEOUT",
    "HANDSHAKE_TIMEOUT",
    "OUR_RESERVED",
    "Dialer",
    "PeerLink",
    "read_handshake",
]

Addr = tuple[str, int]

#: Per-attempt handshake deadline (the connect deadline is the transport's).
HANDSHAKE_TIMEOUT: Final = 10.0
#: What we support: BEP 5 DHT port, BEP 6 Fast extension, BEP 10 extension protocol.
OUR_RESERVED: Final = ReservedBits.DHT | ReservedBits.FAST | ReservedBits.EXTENSION_PROTOCOL
_RECEIVE_SIZE: Final = 4096
#: `HandshakeError.hint` when the address turned out to be us: the caller should never
#: dial it again (a DHT reply often lists our own announce).
SELF_CONNECTION: Final = "self-connection"


@final
@dataclass(slots=True)
class PeerLink:
    """A connected peer after the BitTorrent handshake (either direction).

    Attributes:
        stream: the (possibly encrypted) stream; the owner must close it.
        addr: the peer's address (for inbound: its source address).
        remote: the peer's handshake.
        trailing_data: peer-wire bytes read together with the handshake.
        encrypted: MSE RC4 protects the payload.
        incoming: the peer dialled us.
        dialer_end: the dialling side's (ip, port) of the TCP connection, which both
            ends see alike (for outgoing links: our socket's local address). It tells
            two connections between the same pair of peers apart (`Torrent`).
    """

    stream: trio.abc.Stream
    addr: Addr
    remote: Handshake
    trailing_data: bytes
    encrypted: bool
    incoming: bool
    dialer_end: Addr | None = None


async def read_handshake(stream: trio.abc.Stream, parser: HandshakeParser) -> Handshake:
    """Feed `parser` from `stream` until the 68-byte handshake is complete.

    Raises:
        HandshakeError: bad bytes, or EOF before the handshake ended.
        trio.BrokenResourceError: transport failure.
    """
    while parser.handshake is None:
        data = await stream.receive_some(_RECEIVE_SIZE)
        if not data:
            raise HandshakeError("peer closed the connection during the handshake")
        parser.receive_data(bytes(data))
    await trio.lowlevel.checkpoint()
    return parser.handshake


@final
class Dialer:
    """Opens outgoing peer connections for every torrent of one client."""

    def __init__(
        self,
        peer_id: PeerId,
        *,
        encryption: EncryptionMode = EncryptionMode.PREFER,
        max_half_open: int = 16,
        local_addrs: frozenset[Addr] = frozenset(),
        bind_host: str | None = None,
        rng: random.Random | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.peer_id: Final = peer_id
        self.encryption = encryption
        self.limiter: Final = trio.CapacityLimiter(max_half_open)
        #: Our own listen addresses, never dialled.
        self.local_addrs = local_addrs
        #: Source address of outgoing connections (``--bind``); None lets the OS choose.
        self.bind_host = bind_host
        #: Opens the streams (TCP unless another transport is injected).
        self.transport: Transport = transport if transport is not None else TcpTransport(bind_host)
        #: uTP only, for BEP 55 hole punches (set by the client when uTP is on; None:
        #: we cannot punch, so torrents do not advertise ut_holepunch).
        self.holepunch_transport: Transport | None = None
        self._rng = rng or random.SystemRandom()

    async def dial(
        self, addr: Addr, info_hash: InfoHash, *, plaintext: bool = False, holepunch: bool = False
    ) -> PeerLink:
        """Connect to `addr` for torrent `info_hash` (`plaintext`: skip MSE, unless
        encryption is required; for a peer that dropped our encrypted connection;
        `holepunch`: through `holepunch_transport`, uTP only).

        Raises:
            HandshakeError: the peer failed MSE or the BitTorrent handshake, or is us.
            OSError: the TCP connect failed.
            trio.TooSlowError: an attempt passed its deadline.
            trio.BrokenResourceError: the connection broke.
        """
        if addr in self.local_addrs:
            raise HandshakeError("refusing to dial our own listen address", hint=SELF_CONNECTION)
        transport = self.holepunch_transport if holepunch else self.transport
        if transport is None:
            raise OSError("hole punch needs uTP, which is off")
        if self.encryption is EncryptionMode.DISABLE or (
            plaintext and self.encryption is EncryptionMode.PREFER
        ):
            return await self._attempt(addr, info_hash, transport, encrypt=False)
        if self.encryption is EncryptionMode.REQUIRE:
            return await self._attempt(addr, info_hash, transport, encrypt=True)
        try:
            return await self._attempt(addr, info_hash, transport, encrypt=True)
        except (HandshakeError, trio.BrokenResourceError, trio.TooSlowError):
            # PREFER: the peer may simply not speak MSE. Real connect errors (OSError)
            # are not retried: plaintext would fail the same way.
            return await self._attempt(addr, info_hash, transport, encrypt=False)

    async def _attempt(
        self, addr: Addr, info_hash: InfoHash, transport: Transport, *, encrypt: bool
    ) -> PeerLink:
        ours = encode_handshake(Handshake(info_hash, self.peer_id, OUR_RESERVED))
        async with self.limiter:
            tcp = await transport.connect(addr)
        stream: trio.abc.Stream = tcp
        try:
            with trio.fail_after(HANDSHAKE_TIMEOUT):
                if encrypt:
                    mse = self._mse(tcp, info_hash, ours)
                    stream = mse
                    await mse.do_handshake()
                    encrypted = mse.crypto_method is CryptoMethod.RC4
                else:
                    await tcp.send_all(ours)
                    encrypted = False
                parser = HandshakeParser(expected_info_hash=info_hash)
                remote = await read_handshake(stream, parser)
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        if remote.peer_id == self.peer_id:
            await trio.aclose_forcefully(stream)
            raise HandshakeError("connected to ourselves", hint=SELF_CONNECTION)
        dialer_end = transport.local_end(tcp)
        return PeerLink(stream, addr, remote, parser.trailing_data, encrypted, False, dialer_end)

    def _mse(self, tcp: trio.abc.Stream, info_hash: InfoHash, ours: bytes) -> MSEStream:
        if self.encryption is EncryptionMode.REQUIRE:
            policy = EncryptionPolicy(methods=CryptoMethod.RC4, allow_unencrypted=False)
        else:
            policy = EncryptionPolicy()
        return MSEStream.initiator(
            tcp, bytes(info_hash), policy=policy, initial_payload=ours, rng=self._rng
        )
