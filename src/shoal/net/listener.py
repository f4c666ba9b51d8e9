"""The TCP listener shared by every torrent of a client.

Theory of operation
-------------------
One socket serves all torrents. Each accepted connection gets its own task that,
under one `HANDSHAKE_TIMEOUT` deadline:

1. sniffs plaintext vs MSE (`sniff_inbound`); the MSE receiver is given the
   info-hashes we serve as its SKEYs, so it only completes for our torrents;
2. reads the BitTorrent handshake and looks its info-hash up among the registered
   torrents (MSE's SKEY must match it too: MSE proved the peer knows *that* hash);
3. replies with our handshake and hands the `PeerLink` to the torrent's `accept`
   callback, which takes ownership of the stream (returns True) or refuses it.

Everything the remote can get wrong ends in closing the stream; nothing reaches the
client nursery.

Resource bounds (docs/security.md): at most `MAX_HANDSHAKING` connections are in
steps 1-3 at once, and `MAX_HANDSHAKING_PER_IP` from one IP; past either cap a new
connection is closed at once, so connections that never send a byte cost at most
that many descriptors for `HANDSHAKE_TIMEOUT`. Running out of descriptors in
``accept`` (EMFILE/ENFILE, or the kernel out of buffers) backs off and retries
instead of ending the listener, and `bind` raises the soft ``RLIMIT_NOFILE`` to the
hard limit where allowed. Other transports (``net/transport.py``: uTP, a proxy) run their own
accept loops and hand each stream to `handle_stream`, the same code path as TCP.
Encryption policy: REQUIRE refuses plaintext and header-only MSE,
DISABLE refuses MSE (by offering no SKEYs), PREFER takes anything.
"""

from __future__ import annotations

import errno
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, NoReturn, final

import trio

from ..config import EncryptionMode
from ..errors import DecodeError, RemoteProtocolError
from ..ids import InfoHash
from ..peer.handshake import Handshake, HandshakeParser, encode_handshake
from ..peer.mse import CryptoMethod
from .dialer import HANDSHAKE_TIMEOUT, OUR_RESERVED, PeerLink, read_handshake
from .sniff import sniff_inbound

if TYPE_CHECKING:
    from ..ids import PeerId
    from ..ipfilter import IPFilter

__all__ = ["AcceptCallback", "Listener", "ReadyCallback"]

log = logging.getLogger(__name__)

#: Takes a handshaken inbound link; returns False to have the listener close it.
AcceptCallback = Callable[[PeerLink], bool]
#: Asked before we answer the peer's handshake: would the torrent take this peer now?
#: (A refusal then costs the peer no half-finished handshake.)
ReadyCallback = Callable[[Handshake, tuple[str, int]], bool]

_BACKLOG: Final = 64
#: Inbound connections still sniffing/handshaking, client-wide and per remote IP.
MAX_HANDSHAKING: Final = 128
MAX_HANDSHAKING_PER_IP: Final = 8
#: accept() errors that mean "out of a resource right now": wait and retry.
_ACCEPT_BACKOFF_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_ACCEPT_BACKOFF_MAX: Final = 1.0


def raise_nofile_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit where allowed; returns the soft limit
    now in force (0 where the platform has no such limit)."""
    try:
        import resource  # POSIX only
    except ImportError:  # pragma: no cover - Windows
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


#: What a misbehaving or slow remote can cause; anything else is our bug and propagates.
_REFUSALS: Final = (RemoteProtocolError, DecodeError, trio.BrokenResourceError, trio.TooSlowError)


@final
class Listener:
    """Accept loop plus info-hash dispatch (see the module docstring)."""

    def __init__(
        self,
        peer_id: PeerId,
        *,
        host: str = "0.0.0.0",
        port: int = 0,
        encryption: EncryptionMode = EncryptionMode.PREFER,
        rng: random.Random | None = None,
    ) -> None:
        self.peer_id: Final = peer_id
        self.encryption = encryption
        self._host = host
        self._port = port
        self._rng = rng or random.SystemRandom()
        self._torrents: dict[InfoHash, AcceptCallback] = {}
        self._ready: dict[InfoHash, ReadyCallback] = {}
        self.address: tuple[str, int] | None = None
        self._socket: trio.SocketListener | None = None
        self.accepted = 0
        self.refused = 0
        #: Inbound guards, set by the client: blocked addresses are closed at once,
        #: and `wrap` (rate limits) wraps every accepted stream.
        self.ip_filter: IPFilter | None = None
        self.wrap: Callable[[trio.abc.Stream], trio.abc.Stream] | None = None
        #: Connections closed at once because a handshaking cap was reached.
        self.over_cap = 0
        #: accept() calls that failed for lack of descriptors or buffers.
        self.accept_errors = 0
        self._handshaking: dict[str, int] = {}

    def register(
        self, info_hash: InfoHash, accept: AcceptCallback, ready: ReadyCallback | None = None
    ) -> None:
        self._torrents[InfoHash(info_hash)] = accept
        if ready is not None:
            self._ready[InfoHash(info_hash)] = ready

    def unregister(self, info_hash: InfoHash) -> None:
        self._torrents.pop(InfoHash(info_hash), None)
        self._ready.pop(InfoHash(info_hash), None)

    async def bind(self) -> tuple[str, int]:
        """Bind the socket now (before `serve`), e.g. to learn a port chosen by the OS."""
        if self._socket is None:
            raise_nofile_limit()
            listeners = await trio.open_tcp_listeners(self._port, host=self._host, backlog=_BACKLOG)
            for extra in listeners[1:]:
                await extra.aclose()
            self._socket = listeners[0]
            host, port = self._socket.socket.getsockname()[:2]
            self.address = (str(host), int(port))
        assert self.address is not None
        return self.address

    async def aclose(self) -> None:
        """Close the socket if `serve` never ran (serve closes it itself)."""
        if self._socket is not None:
            await self._socket.aclose()

    async def serve(
        self, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED
    ) -> NoReturn:
        """Listen and serve forever; ``task_status.started`` gets the bound address."""
        address = await self.bind()
        assert self._socket is not None
        async with self._socket, trio.open_nursery() as nursery:
            task_status.started(address)
            backoff = 0.0
            while True:
                try:
                    stream = await self._socket.accept()
                except OSError as exc:
                    if exc.errno not in _ACCEPT_BACKOFF_ERRNOS:
                        raise
                    # Out of descriptors: let handshakes time out and peers leave.
                    self.accept_errors += 1
                    backoff = min(_ACCEPT_BACKOFF_MAX, max(0.05, 2 * backoff))
                    log.warning("accept failed (%s); retrying in %.2f s", exc, backoff)
                    await trio.sleep(backoff)
                    continue
                backoff = 0.0
                nursery.start_soon(self._handle, stream)

    async def _handle(self, tcp: trio.SocketStream) -> None:
        try:
            peer = tcp.socket.getpeername()
            addr = (str(peer[0]), int(peer[1]))
        except OSError:
            await trio.aclose_forcefully(tcp)
            return
        await self.handle_stream(tcp, addr)

    async def handle_stream(self, tcp: trio.abc.Stream, addr: tuple[str, int]) -> None:
        """Serve one inbound connection from any transport (an `InboundHandler`).

        Sniffs, handshakes and hands the link to its torrent, or closes the stream;
        never raises for anything the remote does.
        """
        if self.ip_filter is not None and self.ip_filter.blocks(addr[0]):
            self.refused += 1
            await trio.aclose_forcefully(tcp)
            return
        if self.wrap is not None:
            tcp = self.wrap(tcp)
        link: PeerLink | None = None
        ip = addr[0]
        busy = self._handshaking.get(ip, 0)
        if busy >= MAX_HANDSHAKING_PER_IP or sum(self._handshaking.values()) >= MAX_HANDSHAKING:
            self.over_cap += 1
            self.refused += 1
            await trio.aclose_forcefully(tcp)
            return
        self._handshaking[ip] = busy + 1
        try:
            with trio.fail_after(HANDSHAKE_TIMEOUT):
                link = await self._handshake(tcp, addr)
        except _REFUSALS as exc:
            log.debug("inbound %s refused: %s", addr, exc)
        except trio.ClosedResourceError:
            pass
        finally:
            left = self._handshaking[ip] - 1
            if left:
                self._handshaking[ip] = left
            else:
                del self._handshaking[ip]
        if link is not None and self._dispatch(link):
            self.accepted += 1
            return
        self.refused += 1
        await trio.aclose_forcefully(link.stream if link is not None else tcp)

    async def _handshake(self, tcp: trio.abc.Stream, addr: tuple[str, int]) -> PeerLink:
        skeys = [] if self.encryption is EncryptionMode.DISABLE else list(self._torrents)
        inbound = await sniff_inbound(
            tcp, skeys=skeys, policy=self.encryption.policy(), rng=self._rng
        )
        if self.encryption is EncryptionMode.REQUIRE and inbound.method is not CryptoMethod.RC4:
            raise RemoteProtocolError("encryption required but the peer chose header obfuscation")
        parser = HandshakeParser(expected_info_hash=inbound.skey)
        remote = await read_handshake(inbound.stream, parser)
        if remote.info_hash not in self._torrents:
            raise RemoteProtocolError(f"no such torrent {remote.info_hash.hex()}")
        if remote.peer_id == self.peer_id:
            raise RemoteProtocolError("connected to ourselves")
        ready = self._ready.get(remote.info_hash)
        if ready is not None and not ready(remote, addr):
            raise RemoteProtocolError("torrent not accepting this peer now")
        await inbound.stream.send_all(
            encode_handshake(Handshake(remote.info_hash, self.peer_id, OUR_RESERVED))
        )
        encrypted = inbound.method is CryptoMethod.RC4
        return PeerLink(
            inbound.stream, addr, remote, parser.trailing_data, encrypted, True, dialer_end=addr
        )

    def _dispatch(self, link: PeerLink) -> bool:
        accept = self._torrents.get(link.remote.info_hash)
        return accept is not None and accept(link)
