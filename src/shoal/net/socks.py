"""SOCKS5 transports: TCP CONNECT (through python-socks) and UDP ASSOCIATE (our codec).

Both fail closed. A connector never falls back to a direct connection: a proxy that
is down, refuses us, rejects our credentials or cannot reach the target raises
`ProxyError` and nothing else is tried. A UDP association whose control connection
drops is dead for good (RFC 1928: the association ends with it); every later send
raises `ProxyError`, so a DHT on top of it goes quiet rather than going direct.

Host names are always handed to the proxy as names (python-socks with ``rdns=True``;
ATYP DOMAINNAME in our UDP header), so no DNS query for a peer or DHT router leaves
this machine. Only the proxy's own host name, if the user gave one, is resolved
locally: there is nobody else to ask.

`bind_host`, when set, is the local address of every socket made here (the TCP
connection to the proxy and the UDP socket); a bind failure is an error, never a
reason to use another address.
"""

from __future__ import annotations

import math
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final, TypeVar

import trio
from python_socks import ProxyConnectionError, ProxyTimeoutError, ProxyType
from python_socks import ProxyError as _LibProxyError
from python_socks.async_.trio import Proxy

from .. import socks5
from ..errors import DecodeError, ProxyError
from ..socks5 import AuthMethod, Command, ProxyURL

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

__all__ = [
    "Socks5Connector",
    "Socks5UDPAssociation",
    "check_proxy",
    "open_socks5_udp_association",
]

#: Largest datagram we read from the relay (KRPC is < 1,500 bytes; header ≤ 262).
MAX_UDP: Final = 4096
_MAX_CONTROL_REPLY: Final = 600
_T = TypeVar("_T")


class Socks5Connector:
    """Dials TCP through a SOCKS5 proxy; `connect` returns a `trio.SocketStream`.

    This is the transport a dialer takes in place of `trio.open_tcp_stream`: same
    call shape, same result type, and the caller's cancel scope is the deadline.
    """

    def __init__(self, proxy: ProxyURL, *, bind_host: str | None = None) -> None:
        self.proxy = proxy
        self.bind_host = bind_host
        self._proxy = Proxy(
            ProxyType.SOCKS5,
            proxy.host,
            proxy.port,
            username=proxy.username,
            password=proxy.password,
            rdns=True,  # names go to the proxy unresolved
        )

    def __repr__(self) -> str:
        return f"<Socks5Connector via {self.proxy.display()}>"

    async def connect(self, host: str, port: int) -> trio.SocketStream:
        """A stream to `host:port` through the proxy.

        Raises:
            ProxyError: the proxy is unreachable, refused us or the target; wrong
                credentials; or it spoke something that is not SOCKS5.
        """
        where = self.proxy.display()
        local = (self.bind_host, 0) if self.bind_host else None
        try:
            # python-socks wants a timeout; ours is the caller's cancel scope.
            sock = await self._proxy.connect(host, port, timeout=math.inf, local_addr=local)
        except ProxyTimeoutError as exc:  # pragma: no cover - infinite timeout
            raise ProxyError(f"proxy {where} timed out") from exc
        except ProxyConnectionError as exc:
            raise ProxyError(f"cannot reach proxy {where}: {exc}") from exc
        except _LibProxyError as exc:
            raise ProxyError(f"proxy {where} refused {host}:{port}: {exc}") from exc
        except OSError as exc:  # bind failure for bind_host, or a reset mid-handshake
            # (a proxy that is being killed may accept and then reset: still unreachable)
            raise ProxyError(f"cannot reach proxy {where}: {exc}") from exc
        return trio.SocketStream(sock)


class Socks5UDPAssociation:
    """A live UDP ASSOCIATE: datagrams to any host go through the proxy's relay.

    Made by `open_socks5_udp_association`, which keeps the control connection open
    for as long as the association lives and watches it: when the proxy closes it,
    `broken` is set and `send_to` raises `ProxyError` from then on.
    """

    def __init__(
        self,
        proxy: ProxyURL,
        control: trio.SocketStream,
        sock: trio.socket.SocketType,
        relay: tuple[str, int],
    ) -> None:
        self.proxy = proxy
        self.relay = relay
        self._control = control
        self._sock = sock
        self.broken: str | None = None
        self._broken_event = trio.Event()
        self.dropped = 0  # datagrams from elsewhere, fragments and malformed ones

    @property
    def local_address(self) -> tuple[str, int]:
        host, port = self._sock.getsockname()[:2]
        return host, port

    async def send_to(self, data: bytes, addr: tuple[str, int]) -> None:
        """Send `data` to `addr` (an IP or a host name) through the relay.

        Raises:
            ProxyError: the association is broken (the proxy went away).
        """
        if self.broken is not None:
            raise ProxyError(self.broken)
        try:
            await self._sock.sendto(socks5.encode_udp(addr[0], addr[1], data), self.relay)
        except OSError as exc:
            self._break(f"proxy relay {self.relay[0]}:{self.relay[1]} unreachable: {exc}")
            raise ProxyError(self.broken or "") from exc

    async def receive_from(self) -> tuple[bytes, tuple[str, int]]:
        """The next datagram relayed to us, with the address it came from.

        Datagrams not from the relay, fragments and malformed headers are dropped
        (counted in `dropped`): only the proxy may talk to this socket.

        Raises:
            ProxyError: the association is broken.
        """
        while True:
            if self.broken is not None:
                raise ProxyError(self.broken)
            try:
                data, src = await self._sock.recvfrom(MAX_UDP)
            except OSError as exc:
                self._break(f"proxy relay socket failed: {exc}")
                continue
            dgram = socks5.accept_relayed(data, src, self.relay)
            if dgram is None:
                self.dropped += 1
                continue
            return dgram.data, (dgram.host, dgram.port)

    def _break(self, why: str) -> None:
        if self.broken is None:
            self.broken = why
            self._broken_event.set()

    async def wait_broken(self) -> str:
        """Wait until the association ends (the proxy went away); why it ended."""
        await self._broken_event.wait()
        return self.broken or ""

    async def _watch_control(self) -> None:
        """The association lives as long as the control connection (RFC 1928 §7)."""
        try:
            while await self._control.receive_some(_MAX_CONTROL_REPLY):
                pass  # a server has nothing to say here; ignore chatter
            why = "closed the control connection"
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            why = f"control connection failed: {exc!r}"
        self._break(f"proxy {self.proxy.display()} {why}; UDP association ended")
        self._sock.close()  # wakes a pending receive_from


@asynccontextmanager
async def open_socks5_udp_association(
    proxy: ProxyURL, *, bind_host: str = "127.0.0.1"
) -> AsyncIterator[Socks5UDPAssociation]:
    """Open a UDP ASSOCIATE through `proxy` and keep it for the `async with` body.

    `bind_host` is the local address of both the control connection and the UDP
    socket (the proxy only relays for the address we announce).

    Raises:
        ProxyError: the proxy is unreachable, refused the association or our
            credentials, or answered with something that is not SOCKS5.
    """
    family = trio.socket.AF_INET6 if ":" in bind_host else trio.socket.AF_INET
    sock = trio.socket.socket(family, trio.socket.SOCK_DGRAM)
    try:
        await sock.bind((bind_host, 0))
        control = await _open_control(proxy, bind_host)
        async with control:
            host, port = sock.getsockname()[:2]
            relay = await _negotiate(control, proxy, Command.UDP_ASSOCIATE, host, port)
            if relay[0] in ("0.0.0.0", "::"):
                relay = (await _proxy_ip(control), relay[1])  # "same host as the proxy"
            assoc = Socks5UDPAssociation(proxy, control, sock, relay)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(assoc._watch_control)
                try:
                    yield assoc
                finally:
                    nursery.cancel_scope.cancel()
    finally:
        sock.close()


async def _open_control(proxy: ProxyURL, bind_host: str) -> trio.SocketStream:
    try:
        if bind_host:
            return await _connect_bound(proxy, bind_host)
        return await trio.open_tcp_stream(proxy.host, proxy.port)
    except OSError as exc:
        raise ProxyError(f"cannot reach proxy {proxy.display()}: {exc}") from exc


async def _connect_bound(proxy: ProxyURL, bind_host: str) -> trio.SocketStream:
    infos = await trio.socket.getaddrinfo(proxy.host, proxy.port, type=trio.socket.SOCK_STREAM)
    family, type_, proto, _, addr = infos[0]
    sock = trio.socket.socket(family, type_, proto)
    try:
        await sock.bind((bind_host, 0))
        await sock.connect(addr)
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


async def _proxy_ip(control: trio.SocketStream) -> str:
    host: str = control.socket.getpeername()[0]
    return host


async def check_proxy(proxy: ProxyURL, *, bind_host: str | None = None) -> None:
    """Connect, greet and authenticate, then hang up: is the proxy usable at all?

    The client calls this once at start, so that a proxy that is down or refuses our
    credentials is one clear error rather than peers that silently never connect.

    Raises:
        ProxyError: unreachable, not SOCKS5, no acceptable method, bad credentials.
    """
    control = await _open_control(proxy, bind_host or "")
    async with control:
        await _authenticate(control, proxy, _Reader(control, proxy.display()))


async def _authenticate(control: trio.SocketStream, proxy: ProxyURL, reader: _Reader) -> None:
    """Greeting and, if we have credentials, RFC 1929 username/password."""
    where = proxy.display()
    methods = [AuthMethod.NO_AUTH]
    if proxy.username is not None:
        methods = [AuthMethod.USERNAME_PASSWORD]
    await _send(control, socks5.encode_greeting(methods), where)
    chosen = await reader.read(socks5.decode_method_choice, _two)
    if chosen not in methods:
        raise ProxyError(f"proxy {where} accepts none of our auth methods ({chosen:#x})")
    if chosen == AuthMethod.USERNAME_PASSWORD:
        await _send(
            control, socks5.encode_userpass(proxy.username or "", proxy.password or ""), where
        )
        if not await reader.read(socks5.decode_auth_reply, _two):
            raise ProxyError(f"proxy {where} rejected the user name or password")


async def _negotiate(
    control: trio.SocketStream, proxy: ProxyURL, command: Command, host: str, port: int
) -> tuple[str, int]:
    """Greeting, optional RFC 1929 auth, then `command`; BND.ADDR:BND.PORT."""
    where = proxy.display()
    reader = _Reader(control, where)
    await _authenticate(control, proxy, reader)
    await _send(control, socks5.encode_request(command, host, port), where)
    reply, _ = await reader.read(socks5.decode_reply, lambda got: got[1])
    if (error := reply.error()) is not None:
        raise ProxyError(f"proxy {where} refused {command.name}: {error}")
    return reply.host, reply.port


async def _send(control: trio.SocketStream, data: bytes, where: str) -> None:
    try:
        await control.send_all(data)
    except trio.BrokenResourceError as exc:
        raise ProxyError(f"proxy {where} reset the connection") from exc


def _two(_: object) -> int:
    return 2  # method choice and auth reply are two bytes


class _Reader:
    """Reads from the control stream until a stream decoder has a whole message."""

    def __init__(self, stream: trio.SocketStream, where: str) -> None:
        self._stream = stream
        self._where = where
        self._buf = b""

    async def read(self, decode: Callable[[bytes], _T | None], used: Callable[[_T], int]) -> _T:
        """The next message; `used` says how many bytes it took from the buffer."""
        while True:
            try:
                got = decode(self._buf)
            except DecodeError as exc:
                raise ProxyError(f"proxy {self._where} is not speaking SOCKS5: {exc}") from exc
            if got is not None:
                self._buf = self._buf[used(got) :]
                return got
            if len(self._buf) > _MAX_CONTROL_REPLY:
                raise ProxyError(f"proxy {self._where} sent an oversized reply")
            try:
                chunk = await self._stream.receive_some(_MAX_CONTROL_REPLY)
            except trio.BrokenResourceError as exc:
                raise ProxyError(f"proxy {self._where} reset the connection") from exc
            if not chunk:
                raise ProxyError(f"proxy {self._where} closed the connection")
            self._buf += chunk
