"""Client: the root of shoal's nursery tree (DHT node, peer listener, torrents).

Theory of operation
-------------------
``async with open_client(config) as client`` binds the TCP listener first (so the
listen port is known), then the DHT's UDP socket on the same port number when it
is free (BEP 5 peers learn our DHT port from the ``port`` message; one number is
simplest to forward), and runs every `Torrent` in the same nursery. uTP rides on
the DHT's socket (datagrams not starting with ``d`` go to it, as in libtorrent), so
one UDP port serves both; without a DHT it binds a socket of its own. Leaving the
block is a bounded shutdown: each torrent gets a shared ~1.5 s budget to flush and
write resume data, then everything is cancelled; the DHT node saves its state file
as it unwinds.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, final

import trio

from ._version import __version__
from .config import ClientConfig
from .dht_client import open_dht_node
from .errors import DecodeError
from .ids import InfoHash, PeerId, anonymous_peer_id
from .magnet import Magnet, parse_magnet
from .metainfo import Metainfo, parse_metainfo
from .net.bandwidth import GLOBAL_DOWN, GLOBAL_UP, BandwidthManager
from .net.bindwatch import watch_bind_addresses, watched_hosts
from .net.dialer import Dialer
from .net.guarded import FilteredTransport, RateLimitedTransport, Socks5Transport
from .net.listener import Listener
from .net.socks import check_proxy
from .net.transport import TcpTransport, Transport
from .net.utp_socket import UTPSocket, open_utp_socket
from .net.utp_transport import FallbackTransport, UTPTransport, serve_utp
from .session.send_budget import SendBudget
from .swarm.peer_pool import PeerSource
from .torrent import Torrent, check_select

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from contextlib import AbstractAsyncContextManager

    from .dht_client import DHT
    from .ipfilter import IPFilter
    from .net.dht_service import DHTService
    from .storage.base import StorageFactory

__all__ = ["Client", "ClientStats", "open_client"]

log = logging.getLogger(__name__)

#: Total time given to torrents to save resume data on shutdown (the brief is ~2 s).
SHUTDOWN_BUDGET: Final = 1.5


def make_peer_id(rng: random.Random) -> PeerId:
    """Azureus-style ``-SHxyzw-`` prefix (BEP 20) plus 12 random printable bytes."""
    digits = "".join(c for c in __version__ if c.isdigit())[:4].ljust(4, "0")
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    tail = "".join(rng.choice(alphabet) for _ in range(12))
    return PeerId(f"-SH{digits}-{tail}".encode()[:20])


@final
@dataclass(frozen=True, slots=True)
class ClientStats:
    torrents: int
    peers: int
    download_rate: float
    upload_rate: float
    listen_address: tuple[str, int]
    inbound_accepted: int
    inbound_refused: int
    #: Bytes queued for send over every peer now, and the most ever (`SendBudget`).
    send_queued: int = 0
    send_queued_peak: int = 0


@final
class Client:
    """A running client (obtain one from `open_client`)."""

    #: The client-wide rate limiter (set by `open_client`).
    bandwidth: BandwidthManager | None = None
    #: The IP filters in front of every dial transport (set by `open_client`; swapped
    #: by `set_ip_filter`).
    dial_filters: Sequence[FilteredTransport] = ()

    def __init__(
        self,
        config: ClientConfig,
        nursery: trio.Nursery,
        listener: Listener,
        dialer: Dialer,
        dht: DHT | None,
        peer_id: PeerId,
        utp: tuple[UTPSocket, ...] = (),
    ) -> None:
        self.config = config
        self._nursery = nursery
        self._listener = listener
        self._dialer = dialer
        self.dht = dht
        self.peer_id = peer_id
        assert listener.address is not None
        self.listen_address: tuple[str, int] = listener.address
        #: The uTP socket of `bind_host`'s family when `ClientConfig.transports` has "utp"
        #: (its ``local_address``); `utp_sockets` has one per bound family.
        self.utp: UTPSocket | None = utp[0] if utp else None
        self.utp_sockets = utp
        self._torrents: dict[InfoHash, Torrent] = {}
        #: Bytes queued for send over every peer of every torrent (issue 10).
        self.send_budget = SendBudget(config.max_send_queued)

    async def add(
        self,
        source: Magnet | Metainfo | str | Path,
        *,
        save_to: Path | None = None,
        peers: Sequence[tuple[str, int]] = (),
        select: Sequence[int] | None = None,
        sequential: bool = False,
        seed: bool = True,
        storage: StorageFactory | None = None,
    ) -> Torrent:
        """Start downloading (or seeding) `source` into `save_to`.

        `source` is a magnet, parsed metainfo, a magnet URI or a .torrent path.
        `storage` replaces the files under `save_to`: it is called with the info dict
        once known and returns any `shoal.storage.Storage` (e.g. a `MemoryStorage`;
        no resume data is kept for it). Give exactly one of `save_to` and `storage`.

        Raises:
            DecodeError: the source cannot be parsed.
            ValueError: the torrent is already added, or `select` names a file index
                the torrent does not have (checked once the metadata is known: a
                magnet's torrent then stops with an error instead).
        """
        if (save_to is None) == (storage is None):
            raise ValueError("give exactly one of save_to and storage")
        magnet, metainfo = await _resolve_source(source)
        root = Path(save_to) if save_to is not None else None
        return await self._add(
            magnet, metainfo, root, peers, select, sequential, seed, storage=storage
        )

    async def _add(
        self,
        magnet: Magnet | None,
        metainfo: Metainfo | None,
        save_to: Path | None,
        peers: Sequence[tuple[str, int]],
        select: Sequence[int] | None,
        sequential: bool,
        seed: bool,
        *,
        storage: StorageFactory | None = None,
    ) -> Torrent:
        if metainfo is not None:
            info_hash = metainfo.info_hash
        else:
            assert magnet is not None
            info_hash = magnet.info_hash
        if info_hash in self._torrents:
            raise ValueError(f"torrent {info_hash.hex()} is already added")
        if select is None and magnet is not None and magnet.select_only is not None:
            # BEP 53 ``so=``: an explicit `select` wins over the magnet's.
            select = [i for a, b in magnet.select_only for i in range(a, b + 1)]
        if select is not None and metainfo is not None:
            check_select(select, len(metainfo.info.files))
        torrent = Torrent(
            info_hash,
            config=self.config,
            peer_id=self.peer_id,
            dialer=self._dialer,
            dht=self.dht,
            listen_port=self.listen_address[1] if self.config.incoming else 0,
            save_to=save_to,
            metainfo=metainfo,
            name=magnet.display_name if magnet is not None else None,
            peers=peers,
            select=select,
            sequential=sequential,
            seed=seed,
            storage=storage,
            send_budget=self.send_budget,
        )
        torrent.bandwidth = self.bandwidth
        if magnet is not None:
            torrent.peers_found(magnet.peers, PeerSource.MAGNET)
        self._torrents[info_hash] = torrent
        self._listener.register(info_hash, torrent.accept, torrent.would_accept)
        await self._nursery.start(self._run_torrent, torrent)
        if metainfo is None:
            torrent.start_discovery_early()
        return torrent

    async def _run_torrent(
        self, torrent: Torrent, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            await torrent.run(task_status=task_status)
        finally:
            self._listener.unregister(torrent.info_hash)
            self._torrents.pop(torrent.info_hash, None)

    async def fetch_metadata(self, magnet: Magnet | str) -> Metainfo:
        """Fetch only the info dict of `magnet` from the swarm (nothing is written).

        Put a deadline around this: an empty swarm never answers.
        """
        if isinstance(magnet, str):
            magnet = parse_magnet(magnet)
        existing = self._torrents.get(magnet.info_hash)
        if existing is not None:
            return await existing.wait_metadata()
        torrent = await self._add(magnet, None, None, (), None, False, False)
        try:
            return await torrent.wait_metadata()
        finally:
            await torrent.remove()

    def set_ip_filter(self, ip_filter: IPFilter | None) -> int:
        """Swap the IP filter everywhere at once (a reload; None: no filter): dials,
        accepted connections, the peers torrents learn (DHT, PEX, magnets) and the DHT
        node itself. Connections to addresses now blocked are closed; returns how many.

        Synchronous, so no other task sees half of the swap.
        """
        self.config = dataclasses.replace(self.config, ip_filter=ip_filter)
        self._listener.ip_filter = ip_filter
        for dial_filter in self.dial_filters:
            dial_filter.ip_filter = ip_filter
        if self.dht is not None:
            self.dht.set_ip_filter(ip_filter)
        closed = 0
        for torrent in self._torrents.values():
            torrent.config = self.config
            if ip_filter is not None:
                closed += torrent.drop_blocked(ip_filter)
        return closed

    def torrents(self) -> list[Torrent]:
        return list(self._torrents.values())

    def set_limits(self, *, download: int | None = None, upload: int | None = None) -> None:
        """The client-wide rate limits in bytes/s (None: unlimited), at once, for every
        peer (`ClientConfig.max_download_rate`/`max_upload_rate` are the start values)."""
        assert self.bandwidth is not None  # set by open_client before the client is handed out
        self.bandwidth.set_rate(GLOBAL_DOWN, download)
        self.bandwidth.set_rate(GLOBAL_UP, upload)

    def limits(self) -> tuple[int | None, int | None]:
        """The client-wide (download, upload) limits in bytes/s; None: unlimited."""
        assert self.bandwidth is not None
        down, up = (self.bandwidth.limiter.rate(c) for c in (GLOBAL_DOWN, GLOBAL_UP))
        return (None if down is None else int(down)), (None if up is None else int(up))

    def statistics(self) -> ClientStats:
        stats = [t.statistics() for t in self._torrents.values()]
        return ClientStats(
            torrents=len(stats),
            peers=sum(s.peers for s in stats),
            download_rate=sum(s.download_rate for s in stats),
            upload_rate=sum(s.upload_rate for s in stats),
            listen_address=self.listen_address,
            inbound_accepted=self._listener.accepted,
            inbound_refused=self._listener.refused,
            send_queued=self.send_budget.queued,
            send_queued_peak=self.send_budget.peak,
        )

    async def _shutdown(self) -> None:
        with trio.move_on_after(SHUTDOWN_BUDGET):
            async with trio.open_nursery() as nursery:
                for torrent in list(self._torrents.values()):
                    nursery.start_soon(torrent.shutdown)


async def _resolve_source(
    source: Magnet | Metainfo | str | Path,
) -> tuple[Magnet | None, Metainfo | None]:
    if isinstance(source, Magnet):
        return source, None
    if isinstance(source, Metainfo):
        return None, source
    text = source if isinstance(source, str) else ""
    if text.startswith("magnet:"):
        return parse_magnet(text), None
    try:
        raw = await trio.Path(source).read_bytes()
    except OSError as exc:
        raise DecodeError(f"cannot read torrent file {source}: {exc}") from exc
    return None, parse_metainfo(raw)


_WILDCARD: Final = ("0.0.0.0", "::", "")


@asynccontextmanager
async def open_client(config: ClientConfig | None = None) -> AsyncIterator[Client]:
    """Run a client for the duration of the ``async with`` block.

    Raises:
        OSError: the listen address cannot be bound.
        ProxyError: `config.proxy` is unreachable or refuses us (checked first).
        BindAddressError: (out of the block, in an ExceptionGroup like any error of the
            client's tasks) `bind_host` went away while running: every task is
            cancelled rather than let a socket use another address (`net.bindwatch`).
    """
    config = config or ClientConfig()
    if (proxy := config.proxy_url) is not None:  # one clear error, not silent peers
        await check_proxy(
            proxy, bind_host=None if config.bind_host in _WILDCARD else config.bind_host
        )
    rng = random.SystemRandom()
    peer_id = anonymous_peer_id(rng) if config.anonymous else make_peer_id(rng)
    listener = Listener(
        peer_id, host=config.bind_host, port=config.port, encryption=config.encryption
    )
    listener.ip_filter = config.ip_filter
    address = await listener.bind()
    if not config.incoming:
        await listener.aclose()  # proxied or anonymous: nothing may reach us directly
    try:
        # The DHT is entered outside the nursery so it is closed (and saves its state)
        # after the torrents have stopped, not while being cancelled with them.
        async with (
            _open_dht(config, address[1]) as dht,
            _open_utp(config, address[1], dht) as utp,
            trio.open_nursery() as nursery,
        ):
            bandwidth = await _start_bandwidth(config, nursery)
            listener.wrap = bandwidth.wrap
            if watched := watched_hosts((config.bind_host, *config.bind_hosts)):
                nursery.start_soon(watch_bind_addresses, watched)  # BindAddressError
            extra: list[tuple[str, int]] = []
            if config.incoming:
                await nursery.start(listener.serve)
                extra = await _serve_other_families(nursery, config, address[1], listener)
            for sock in utp if config.incoming else ():
                await nursery.start(serve_utp, sock, listener.handle_stream)
            local = {address, *extra}
            wildcard = config.bind_host in ("0.0.0.0", "::", "")
            if wildcard:
                local.add(("127.0.0.1", address[1]))
            bind_host = None if wildcard else config.bind_host
            dial_filter = FilteredTransport(
                _dial_transport(config, utp, bind_host), config.ip_filter
            )
            dialer = Dialer(
                peer_id,
                encryption=config.encryption,
                max_half_open=config.max_half_open,
                local_addrs=frozenset(local),
                bind_host=bind_host,
                transport=RateLimitedTransport(dial_filter, bandwidth),
            )
            filters = [dial_filter]
            if utp and config.proxy_url is None:  # BEP 55 punches are uTP
                filters.append(FilteredTransport(UTPTransport(*utp), config.ip_filter))
                dialer.holepunch_transport = RateLimitedTransport(filters[-1], bandwidth)
            client = Client(config, nursery, listener, dialer, dht, peer_id, utp)
            client.bandwidth = bandwidth
            client.dial_filters = filters
            try:
                yield client
            finally:
                with trio.CancelScope(shield=True):
                    await client._shutdown()
                nursery.cancel_scope.cancel()
    finally:
        await listener.aclose()


async def _start_bandwidth(config: ClientConfig, nursery: trio.Nursery) -> BandwidthManager:
    """The rate limiter's timer task. Always there, so that `Torrent.set_limits` works
    at any time; a stream on unlimited channels pays one check per call."""
    bandwidth = BandwidthManager()
    bandwidth.set_rate(GLOBAL_DOWN, config.max_download_rate)
    bandwidth.set_rate(GLOBAL_UP, config.max_upload_rate)
    await nursery.start(bandwidth.serve)
    return bandwidth


def _dial_transport(
    config: ClientConfig, utp: tuple[UTPSocket, ...], bind_host: str | None
) -> Transport:
    proxy = config.proxy_url
    if proxy is not None:  # TCP through CONNECT; uTP only on the relayed DHT socket
        socks = Socks5Transport(proxy, bind_host=bind_host)
        if not utp:
            return socks
        if "tcp" not in config.transports:
            return UTPTransport(*utp)
        return FallbackTransport(UTPTransport(*utp), socks)
    tcp = TcpTransport(bind_host, bind_hosts=config.bind_hosts)
    if not utp:
        return tcp
    if "tcp" not in config.transports:
        return UTPTransport(*utp)
    return FallbackTransport(UTPTransport(*utp), tcp)


@asynccontextmanager
async def _open_utp(
    config: ClientConfig, port: int, dht: DHT | None
) -> AsyncIterator[tuple[UTPSocket, ...]]:
    """One uTP socket per bound address family (`bind_hosts`, else `bind_host`), the
    first of `bind_host`'s family: the DHT's socket of that family when there is one
    (issue 13: one UDP port for DHT and uTP), else its own on the TCP port number when
    free, else any. Proxied, only on the DHT's sockets, which go through the proxy's
    UDP relay (`net/socks_udp.py`); a socket of its own would go direct."""
    if "utp" not in config.transports or (config.proxy is not None and dht is None):
        yield ()
        return
    v6 = ":" in config.bind_host
    hosts = sorted(config.bind_hosts or (config.bind_host,), key=lambda h: (":" in h) != v6)
    async with AsyncExitStack() as stack:
        sockets = []
        for host in hosts:
            if config.proxy is not None and (dht is None or dht.service_for(host) is None):
                continue  # never a socket of its own while proxied: it would go direct
            opened = _open_utp_at(host, port, dht, accept=config.incoming)
            sockets.append(await stack.enter_async_context(opened))
        yield tuple(sockets)


@asynccontextmanager
async def _open_utp_at(
    host: str, port: int, dht: DHT | None, *, accept: bool
) -> AsyncIterator[UTPSocket]:
    """The uTP socket for `host`'s family; `accept`: whether SYNs are answered at all."""
    service = dht.service_for(host) if dht is not None else None
    if service is not None:
        async with _utp_on_dht_socket(service, accept=accept) as utp:
            yield utp
        return
    async with AsyncExitStack() as stack:
        try:
            utp = await stack.enter_async_context(open_utp_socket(host, port, accept=accept))
        except OSError:
            log.info("UDP port %d is taken; uTP uses another one", port)
            utp = await stack.enter_async_context(open_utp_socket(host, 0, accept=accept))
        yield utp


async def _serve_other_families(
    nursery: trio.Nursery, config: ClientConfig, port: int, listener: Listener
) -> list[tuple[str, int]]:
    """TCP listeners on the `bind_hosts` of the other family (BEP 32 dual stack), on the
    listen port number, feeding the same `Listener`: peers that found us through the
    IPv6 DHT connect to the port we announced there. Returns their addresses."""
    addresses: list[tuple[str, int]] = []
    v6 = ":" in config.bind_host
    for host in config.bind_hosts:
        if (":" in host) == v6:
            continue  # the main listener's family
        try:
            sockets = await trio.open_tcp_listeners(port, host=host)
        except OSError as exc:
            log.warning("cannot listen on [%s]:%d too: %s", host, port, exc)
            continue
        for sock in sockets:
            nursery.start_soon(_accept_loop, sock, listener)
        addresses.append((host, port))
    return addresses


async def _accept_loop(sock: trio.SocketListener, listener: Listener) -> None:
    """Hand each connection to `listener`, which gives it to its torrent (so unlike
    `trio.serve_listeners`, nothing closes the stream when the handler returns)."""
    async with sock, trio.open_nursery() as nursery:
        while True:
            stream = await sock.accept()
            try:
                peer = stream.socket.getpeername()
            except OSError:
                await trio.aclose_forcefully(stream)
                continue
            nursery.start_soon(listener.handle_stream, stream, (str(peer[0]), int(peer[1])))


@asynccontextmanager
async def _utp_on_dht_socket(service: DHTService, *, accept: bool) -> AsyncIterator[UTPSocket]:
    """Run a `UTPSocket` over the DHT's socket: it receives the non-KRPC datagrams
    (`DHTService.set_datagram_handler`) and sends with `DHTService.send_datagram`."""
    utp = UTPSocket(service, accept=accept)  # no accept: incoming SYNs are refused
    utp.local_address = service.address
    async with trio.open_nursery() as nursery:
        await nursery.start(utp.serve)
        service.set_datagram_handler(utp.datagram_received)
        try:
            yield utp
        finally:
            service.set_datagram_handler(None)
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def _open_dht(config: ClientConfig, port: int) -> AsyncIterator[DHT | None]:
    if not config.dht_enabled:  # anonymous without a proxy: it would announce us
        yield None
        return
    proxy = config.proxy_url
    # Proxied, every datagram goes through the proxy's UDP relay (one socket, the
    # first bind host's family) and waits for the proxy while it is away; the
    # connection to the proxy leaves from bind_host like every other socket.
    bind_host = "" if config.bind_host in _WILDCARD else config.bind_host
    state = None
    if config.state_dir is not None:
        await trio.Path(config.state_dir).mkdir(parents=True, exist_ok=True)
        state = config.state_dir / "dht.json"
    # Same number as the TCP port when the UDP port is free, else any port. With
    # several bind hosts (one per family, BEP 32) every family gets its own socket.
    hosts = config.bind_hosts or (config.bind_host,)

    def node(udp_port: int) -> AbstractAsyncContextManager[DHT]:
        return open_dht_node(
            [(h, udp_port) for h in hosts],
            config.bootstrap,
            state_file=state,
            proxy=proxy,
            proxy_bind_host=bind_host,
            anonymous=config.anonymous,
            ip_filter=config.ip_filter,
        )

    async with AsyncExitStack() as stack:
        try:
            dht = await stack.enter_async_context(node(port))
        except OSError:
            log.info("UDP port %d is taken; the DHT uses another one", port)
            dht = await stack.enter_async_context(node(0))
        yield dht
