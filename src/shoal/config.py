"""`ClientConfig`: every knob of a `Client`, as one frozen value.

A value rather than keyword arguments so that the CLI, tests and library users build
it once and pass it around; the client never mutates it.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, final

from .peer.mse import CryptoMethod, EncryptionPolicy
from .session.send_budget import DEFAULT_MAX_SEND_QUEUED
from .socks5 import ProxyURL, parse_proxy_url

if TYPE_CHECKING:
    from pathlib import Path

    from .ipfilter import IPFilter

__all__ = ["TRANSPORTS", "ClientConfig", "EncryptionMode"]

#: Peer transports a client can use (`ClientConfig.transports`).
TRANSPORTS = ("tcp", "utp")


class EncryptionMode(enum.Enum):
    """How we treat BEP 8 / MSE encryption on peer connections.

    PREFER: dial with MSE (offering RC4 and header obfuscation) and fall back to
    plaintext; accept everything; as the responder, pick header obfuscation when the
    dialer offers both (as libtorrent does).
    REQUIRE: MSE RC4 only, both ways (header obfuscation alone is refused too).
    DISABLE: plain BitTorrent only; inbound MSE is refused.
    """

    PREFER = "prefer"
    REQUIRE = "require"
    DISABLE = "disable"

    def policy(self) -> EncryptionPolicy:
        """The MSE engine policy for this mode (used when an MSE handshake happens at all)."""
        if self is EncryptionMode.REQUIRE:
            return EncryptionPolicy(
                methods=CryptoMethod.RC4, prefer=CryptoMethod.RC4, allow_unencrypted=False
            )
        # As the responder under PREFER, when the dialer offers both methods, pick the
        # plaintext one (header obfuscation only), as libtorrent does with its default
        # ``prefer_rc4 = false``: the dialer asked for obfuscation, and RC4 over the
        # payload costs CPU on both ends (docs/encryption.md, "Methods and policy").
        return EncryptionPolicy(prefer=CryptoMethod.PLAINTEXT, allow_unencrypted=True)


@final
@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Client settings.

    Attributes:
        bind_host: address of the TCP listener and of the DHT's UDP socket.
        bind_hosts: one address per family for a dual-stack client (BEP 32, e.g.
            ``("0.0.0.0", "::")``): a DHT socket on each, a TCP listener on the one of
            the other family than `bind_host` too (same port number), and outgoing
            connections leave from the address of the peer's family. Empty means
            ``(bind_host,)``.
        port: listen port; 0 picks a free one. The DHT binds the same number on UDP
            when it can (BEP 5 peers learn our DHT port from the `port` message).
        dht: run a DHT node for peer discovery.
        bootstrap: DHT nodes to join through; the library never adds public routers.
        state_dir: where DHT state and resume files live; None keeps nothing on disk.
        encryption: see `EncryptionMode`.
        max_peers_per_torrent: connected peers per torrent, inbound and outbound.
        max_half_open: outgoing connection attempts in flight, client-wide.
        upload_slots: peers unchoked at once per torrent (the choker's regular slots).
        transports: how we dial: ``("tcp",)``, ``("utp",)`` or both, the default
            (uTP first, TCP raced against it after 0.25 s or at once when uTP is
            refused; the first connection up wins). With "utp" uTP connections are
            accepted too, on every bound family: on the DHT's UDP socket (one port for
            both, as libtorrent does), without a DHT on `port` when its UDP side is
            free, else on any port. TCP is always accepted. Off while proxied.
        proxy: ``socks5://[user:pass@]HOST:PORT``. Every peer connection is a SOCKS5
            CONNECT (names go to the proxy unresolved); a proxy that is down or
            refuses fails the dial, never falls back to a direct one. The DHT (and the
            uTP sharing its socket) goes through the proxy's UDP relay (UDP
            ASSOCIATE): while the proxy is away it waits, sending nothing (docs/
            security.md). Incoming connections are off unless `accept_incoming`.
        ip_filter: addresses never dialled or accepted (`shoal.ipfilter`).
        anonymous: libtorrent's anonymous mode: a peer id without client prefix, no
            ``v``/``p``/``yourip`` in the BEP 10 handshake, no incoming connections,
            and the DHT only through `proxy` (without a proxy: no DHT) and with no KRPC
            ``v``.
        accept_incoming: None: accept unless `proxy` or `anonymous` is set.
        max_download_rate / max_upload_rate: client-wide limits in bytes per
            second over every peer connection (None: unlimited). What counts is
            every byte on the peer socket, BitTorrent framing and MSE included.
        max_send_queued: bytes queued for send over every peer of every torrent
            (each peer has its own 1 MiB cap too). Past it every peer's cap drops to
            64 KiB, so peers that do not read are served nothing more (their requests
            rejected under Fast) while peers that read keep going (`shoal.session.
            send_budget`). None: no client-wide cap.
    """

    bind_host: str = "0.0.0.0"
    bind_hosts: tuple[str, ...] = ()
    port: int = 6881
    dht: bool = True
    bootstrap: tuple[tuple[str, int], ...] = ()
    state_dir: Path | None = None
    encryption: EncryptionMode = EncryptionMode.PREFER
    max_peers_per_torrent: int = 50
    max_half_open: int = 16
    upload_slots: int = 4
    transports: tuple[str, ...] = ("utp", "tcp")
    proxy: str | None = None
    ip_filter: IPFilter | None = None
    anonymous: bool = False
    accept_incoming: bool | None = None
    max_download_rate: int | None = None
    max_upload_rate: int | None = None
    max_send_queued: int | None = DEFAULT_MAX_SEND_QUEUED

    def __post_init__(self) -> None:
        v6 = [_is_ipv6(host) for host in self.bind_hosts]
        if len(set(v6)) != len(v6):
            raise ValueError("bind_hosts takes at most one address per family (IPv4, IPv6)")
        if not 0 <= self.port <= 0xFFFF:
            raise ValueError(f"port {self.port} is out of range")
        if self.max_peers_per_torrent < 1 or self.max_half_open < 1 or self.upload_slots < 1:
            raise ValueError("peer, half-open and upload-slot limits must be at least 1")
        if not self.transports or not set(self.transports) <= set(TRANSPORTS):
            raise ValueError(f"transports must be a non-empty subset of {TRANSPORTS}")
        if self.proxy is not None:
            parse_proxy_url(self.proxy)  # DecodeError (a ValueError) if malformed
        for rate in (self.max_download_rate, self.max_upload_rate):
            if rate is not None and rate <= 0:
                raise ValueError("rate limits must be positive (None: unlimited)")
        if self.max_send_queued is not None and self.max_send_queued < 0:
            raise ValueError("max_send_queued cannot be negative (None: unlimited)")

    @property
    def proxy_url(self) -> ProxyURL | None:
        """`proxy`, parsed."""
        return None if self.proxy is None else parse_proxy_url(self.proxy)

    @property
    def incoming(self) -> bool:
        """Do we accept connections? (see `accept_incoming`)"""
        if self.accept_incoming is not None:
            return self.accept_incoming
        return self.proxy is None and not self.anonymous

    @property
    def dht_enabled(self) -> bool:
        """Does the DHT run? Through the proxy when there is one; anonymous mode without
        a proxy has none (as libtorrent's): it would announce our address."""
        return self.dht and (self.proxy is not None or not self.anonymous)


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).version == 6
    except ValueError:
        return False  # host names bind as IPv4
