"""`TorrentState` and `TorrentStats`: what a `Torrent` reports about itself.

Plain data, in a module of its own so that ``torrent_events`` (whose `Progress` event
carries a `TorrentStats`) does not import the Trio driver (no import circle).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import final

__all__ = ["TorrentState", "TorrentStats"]


class TorrentState(enum.Enum):
    FINDING_PEERS = "finding_peers"
    FETCHING_METADATA = "fetching_metadata"
    CHECKING = "checking"
    DOWNLOADING = "downloading"
    SEEDING = "seeding"
    PAUSED = "paused"
    STOPPED = "stopped"
    ERROR = "error"


@final
@dataclass(frozen=True, slots=True)
class TorrentStats:
    """A snapshot of one torrent (rates in B/s over about 5 s)."""

    state: TorrentState
    name: str | None
    total_size: int
    selected_size: int
    downloaded: int
    downloaded_payload: int
    uploaded: int
    download_rate: float
    upload_rate: float
    pieces_done: int
    pieces_total: int
    peers: int
    seeds: int
    encrypted_peers: int
    known_peers: int
    metadata_peers: int
    dht_nodes: int
    eta: float | None
    ratio: float
    #: While CHECKING: the share of the files' pieces rechecked so far (0.0 to 1.0), so
    #: a long recheck shows progress; None in every other state.
    checked: float | None = None
    #: Why the DHT is not reaching the network, when it is proxied and the proxy is
    #: away ("waiting for proxy", "connecting to proxy"); None otherwise.
    dht_status: str | None = None
