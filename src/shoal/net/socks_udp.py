"""The DHT's UDP socket through a SOCKS5 relay (RFC 1928 §7), kept up and failing closed.

Theory of operation
-------------------
`RelayedSocket` is the UDP socket the `DHTService` binds and drives, unchanged, in
its hot loop: a `socket.socket` whose ``sendto`` wraps every datagram in the SOCKS5
UDP request header and sends it to the proxy's relay, and whose ``recvfrom`` returns
only what the relay sent, unwrapped, with the far end's address. Being a real
socket (a subclass) is the seam: the service's batch reads, its ``wait_readable``
and uTP's shared sends (``DHTService.send_datagram_nowait``) all go through these
two methods without knowing a proxy is there.

`ProxyRelay.run` owns the association: a TCP control connection to the proxy, a
UDP ASSOCIATE on it, and then it waits for the control connection to end (RFC 1928:
the association ends with it). While there is no association the socket has no
relay, and ``sendto`` raises `ProxyUnavailable` (an `OSError`) instead of sending:
the service counts it as a dropped datagram. There is no code path that sends to
anyone but the relay, so nothing ever goes direct. The relay then retries with
doubling back-off (`BACKOFF_MIN` .. `BACKOFF_MAX`) and, once a new association is
up, traffic resumes from the same local socket (the DHT keeps its port and table).

Host names are never resolved here. A datagram to a name goes to the relay as
ATYP DOMAINNAME; the proxy resolves it. That alone cannot bootstrap a DHT: replies
come back from the router's *IP*, and the engine matches replies on the address it
queried. So `ProxyRelay.resolve` pings the name through the relay and reads the
source address of the reply, which is the router's IP as the proxy saw it, and the
DHT bootstraps from that: DNS by KRPC, through the proxy.
"""

from __future__ import annotations

import enum
import logging
import socket
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, final

import trio

from .. import socks5
from ..bencoding import decode
from ..dht import krpc
from ..errors import DecodeError, ProxyError, ProxyUnavailable
from ..socks5 import Command
from .socks import _negotiate, _open_control, _proxy_ip

if TYPE_CHECKING:
    import random
    from collections.abc import AsyncIterator

    from _typeshed import ReadableBuffer

    from ..dht.compact import Addr
    from ..socks5 import ProxyURL

__all__ = ["ProxyRelay", "ProxyRelayStats", "RelayState", "RelayedSocket"]

log = logging.getLogger(__name__)

#: Seconds before the first retry of a lost association; doubled per failure up to
#: `BACKOFF_MAX` (a proxy that restarts is back within seconds; one that is gone for
#: good is asked twice a minute, not hammered).
BACKOFF_MIN: Final = 1.0
BACKOFF_MAX: Final = 30.0
#: The SOCKS5 UDP header is at most 4 + 1 + 255 + 2 bytes (a domain name).
_HEADER_ROOM: Final = 262
#: Pings per name for `ProxyRelay.resolve`, and seconds to wait for each reply.
_PROBES: Final = 3
_PROBE_WAIT: Final = 5.0
_MAX_CONTROL: Final = 600


class RelayState(enum.Enum):
    CONNECTING = "connecting to proxy"
    UP = "through proxy"
    WAITING = "waiting for proxy"


@final
@dataclass(frozen=True, slots=True)
class ProxyRelayStats:
    """What `ProxyRelay.statistics` reports (``DHT.statistics().proxy``)."""

    state: RelayState
    #: The proxy's relay address while an association is up.
    relay: tuple[str, int] | None
    #: Associations made so far (more than one: the proxy went away and came back).
    associations: int
    #: Datagrams not sent because no association was up (never sent another way).
    unsent: int
    #: Datagrams received from anyone but the relay, fragments and bad headers.
    dropped: int
    #: Why the last association ended or failed (None while the first one is up).
    last_error: str | None


class RelayedSocket(socket.socket):
    """A UDP socket that only ever talks to a SOCKS5 relay (see the module docstring).

    Without a relay (`relay` is None) ``sendto`` raises `ProxyUnavailable` and every
    datagram received is dropped.
    """

    def __init__(self, family: int = socket.AF_INET) -> None:
        super().__init__(family, socket.SOCK_DGRAM)
        self.relay: tuple[str, int] | None = None
        self.unsent = 0
        self.dropped = 0
        #: KRPC transaction ids of `ProxyRelay.resolve` pings → the source of the reply.
        self.probes: dict[bytes, Addr | None] = {}
        self.probe_lot = trio.lowlevel.ParkingLot()

    def sendto(self, data: ReadableBuffer, *args: object) -> int:
        """``sendto(data, addr)``: `data` to `addr` (an IP or a host name) via the relay.

        Raises:
            ProxyUnavailable: no association is up; nothing was sent.
            BlockingIOError: the socket is full (as for any non-blocking socket).
        """
        addr = args[-1]
        if not isinstance(addr, tuple):
            raise TypeError(f"sendto wants a (host, port) address, not {addr!r}")
        host, port = addr[0], addr[1]
        relay = self.relay
        if relay is None:
            self.unsent += 1
            raise ProxyUnavailable("no UDP association with the proxy: waiting for proxy")
        wrapped = socks5.encode_udp(str(host), int(port), bytes(data))
        super().sendto(wrapped, relay)
        return len(bytes(data))

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Addr]:
        """The next datagram the relay passed on, unwrapped, and who sent it.

        Raises:
            BlockingIOError: nothing (more) to read.
        """
        while True:
            data, src = super().recvfrom(bufsize + _HEADER_ROOM, flags)
            dgram = socks5.accept_relayed(data, src, self.relay)
            if dgram is None:
                self.dropped += 1
                continue
            addr = (dgram.host, dgram.port)
            if self.probes:
                self._match_probe(dgram.data, addr)
            return dgram.data, addr

    def _match_probe(self, data: bytes, addr: Addr) -> None:
        try:
            msg = decode(data)
        except DecodeError:
            return
        if isinstance(msg, dict) and msg.get(b"y") == b"r":
            tid = msg.get(b"t")
            if isinstance(tid, bytes) and tid in self.probes and self.probes[tid] is None:
                self.probes[tid] = addr
                self.probe_lot.unpark_all()


@final
class ProxyRelay:
    """Keeps a UDP association for a `RelayedSocket` up, and waits out the proxy.

    Args:
        sock: the bound socket (its address is what the association announces).
        proxy: the SOCKS5 proxy.
        bind_host: local address of the control connection ("" for any).
        backoff: first and largest delay between attempts, in seconds.
    """

    def __init__(
        self,
        sock: RelayedSocket,
        proxy: ProxyURL,
        *,
        bind_host: str = "",
        backoff: tuple[float, float] = (BACKOFF_MIN, BACKOFF_MAX),
    ) -> None:
        self.sock = sock
        self.proxy = proxy
        self.bind_host = bind_host
        self.backoff = backoff
        self.state = RelayState.CONNECTING
        self.associations = 0
        self.last_error: str | None = None
        self._changed = trio.lowlevel.ParkingLot()

    def statistics(self) -> ProxyRelayStats:
        return ProxyRelayStats(
            self.state,
            self.sock.relay,
            self.associations,
            self.sock.unsent,
            self.sock.dropped,
            self.last_error,
        )

    async def wait_state(self, state: RelayState) -> None:
        """Return once the relay is in `state` (now or later)."""
        await trio.lowlevel.checkpoint()
        while self.state is not state:
            await self._changed.park()

    def _set(self, state: RelayState, relay: tuple[str, int] | None) -> None:
        self.sock.relay = relay  # first: no datagram may see UP without a relay
        self.state = state
        self._changed.unpark_all()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Associate, wait for the association to end, back off, repeat; until cancelled.

        ``task_status.started()`` comes after the first attempt, whether it worked
        (the state says): a proxy that is down at start is waited for like one that
        went away later.
        """
        delay = self.backoff[0]
        started = False
        while True:
            try:
                async with self._associate() as control:
                    delay = self.backoff[0]
                    if not started:
                        started = True
                        task_status.started()
                    why = await _wait_closed(control)
            except ProxyError as exc:
                why = str(exc)
            except (trio.BrokenResourceError, OSError) as exc:  # a reset mid-negotiation
                why = f"proxy {self.proxy.display()} failed: {exc!r}"
            self._set(RelayState.WAITING, None)
            if why != self.last_error:
                log.warning("DHT/uTP traffic stopped, waiting for proxy: %s", why)
            self.last_error = why
            if not started:
                started = True
                task_status.started()
            await trio.sleep(delay)
            delay = min(delay * 2, self.backoff[1])

    @asynccontextmanager
    async def _associate(self) -> AsyncIterator[trio.SocketStream]:
        """One UDP ASSOCIATE, up for the body; the control stream is yielded."""
        control = await _open_control(self.proxy, self.bind_host)
        async with control:
            host, port = self.sock.getsockname()[:2]
            bnd = await _negotiate(control, self.proxy, Command.UDP_ASSOCIATE, host, port)
            if bnd[0] in ("0.0.0.0", "::"):
                bnd = (await _proxy_ip(control), bnd[1])  # "same host as the proxy"
            self.associations += 1
            self._set(RelayState.UP, bnd)
            if self.associations > 1:
                log.warning("DHT/uTP traffic resumed through proxy %s", self.proxy.display())
            try:
                yield control
            finally:
                self._set(RelayState.WAITING, None)

    async def resolve(
        self, name: str, port: int, node_id: bytes, rng: random.Random
    ) -> Addr | None:
        """The address that answers a KRPC ping sent to `name`:`port` through the proxy.

        The proxy resolves the name (ATYP DOMAINNAME); we learn the IP from the reply's
        source. None when nothing answered `_PROBES` pings (or the proxy stayed down).
        """
        for _ in range(_PROBES):
            await self.wait_state(RelayState.UP)
            tid = rng.randbytes(4)
            self.sock.probes[tid] = None
            try:
                ping = krpc.encode_message(krpc.PingQuery(t=tid, node_id=node_id))
                try:
                    self.sock.sendto(ping, (name, port))
                except OSError as exc:  # the socket is full, or the proxy just went away
                    log.debug("probe of %s:%d not sent: %s", name, port, exc)
                with trio.move_on_after(_PROBE_WAIT):
                    # The DHT's loop reads the socket and fills in the reply's source.
                    while (found := self.sock.probes[tid]) is None:
                        await self.sock.probe_lot.park()
                    return found
            finally:
                del self.sock.probes[tid]
        log.warning("DHT router %s:%d did not answer through the proxy", name, port)
        return None


async def _wait_closed(control: trio.SocketStream) -> str:
    """Until the proxy ends the control connection; why it ended."""
    try:
        while await control.receive_some(_MAX_CONTROL):
            pass  # a server has nothing to say here; ignore chatter
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        return f"proxy control connection failed: {exc!r}; UDP association ended"
    return "proxy closed the control connection; UDP association ended"
