"""`ConnectionConfig`: per-connection policy and limits for `PeerConnection`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, final

from .._version import __version__
from .extension import MAX_METADATA_SIZE
from .handshake import ReservedBits
from .messages import BLOCK_SIZE

__all__ = ["MAX_BLOCK_LIMIT", "ConnectionConfig"]

#: BEP 3 says 16 KiB; some clients accept up to 128 KiB. Never request or serve more.
MAX_BLOCK_LIMIT: Final = 128 * 1024


@final
@dataclass(frozen=True, slots=True)
class ConnectionConfig:
    """Per-connection policy. Times are seconds.

    Attributes:
        reserved: handshake bits we advertise (DHT, Fast, extension protocol).
        client_version: BEP 10 ``v``.
        listen_port: BEP 10 ``p`` (our TCP listen port), if any.
        max_inbound_requests: our BEP 10 ``reqq``; more queued requests are refused.
            2,000 as libtorrent (``max_allowed_in_request_queue``; rtorrent 2,048): a
            well-behaved peer keeps at most this many requests outstanding, and 250
            capped one at about 3 MB/s from a shoal seed on loopback. The queue holds
            request tuples only (about 100 bytes each), never block data.
        max_request_length: largest block we request or serve (BEP 3: 16 KiB).
        keepalive_interval: our silence before a keep-alive (BEP 3: "generally sent
            once every two minutes").
        idle_timeout: their silence before `PeerIdle` (longer than their keep-alive
            interval, so a quiet but healthy peer is not dropped).
        request_timeout: deadline of each request we send.
        snub_timeout: no block for this long while requests are outstanding → snubbed.
        min_queue_time: lower bound of the RTT used for the pipeline depth.
        min_pipeline_depth / max_pipeline_depth: clamp of the adaptive depth.
        max_metadata_size: largest BEP 9 ``metadata_size`` accepted.
        enable_pex: advertise ut_pex.
        enable_holepunch: advertise BEP 55 ut_holepunch (only when we can dial uTP:
            a ``connect`` asks us to).
        anonymous: libtorrent's ``anonymous_mode`` on the wire: our BEP 10 handshake
            carries no ``v`` (client name), no ``p`` (listen port) and no ``yourip``
            (what we know of the peer's address). The peer id is the caller's
            business (`shoal.ids.anonymous_peer_id`).
    """

    reserved: ReservedBits = ReservedBits.DHT | ReservedBits.FAST | ReservedBits.EXTENSION_PROTOCOL
    client_version: str = f"shoal {__version__}"
    listen_port: int | None = None
    max_inbound_requests: int = 2000
    max_request_length: int = BLOCK_SIZE
    keepalive_interval: float = 120.0
    idle_timeout: float = 240.0
    request_timeout: float = 60.0
    snub_timeout: float = 60.0
    min_queue_time: float = 1.0
    min_pipeline_depth: int = 2
    max_pipeline_depth: int = 250
    max_metadata_size: int = MAX_METADATA_SIZE
    enable_pex: bool = True
    enable_holepunch: bool = False
    anonymous: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.max_request_length <= MAX_BLOCK_LIMIT:
            raise ValueError(f"max_request_length must be 1..{MAX_BLOCK_LIMIT}")
        if min(self.keepalive_interval, self.idle_timeout, self.request_timeout) <= 0:
            raise ValueError("timeouts must be positive")
        if self.snub_timeout <= 0 or self.min_queue_time < 0:
            raise ValueError("snub_timeout must be positive, min_queue_time not negative")
        if self.max_inbound_requests < 1:
            raise ValueError("max_inbound_requests must be positive")
        if not 1 <= self.min_pipeline_depth <= self.max_pipeline_depth:
            raise ValueError("need 1 <= min_pipeline_depth <= max_pipeline_depth")
