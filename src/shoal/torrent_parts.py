"""Small parts of a `Torrent`'s user handle: event subscriptions, the view of one
connection, file-selection checks. Split out of ``torrent.py`` to keep it small."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol, final

import trio

if TYPE_CHECKING:
    from collections.abc import Sequence

    from . import torrent_events as tev
    from ._torrent_data import DataFiles
    from .dht_client import DHT
    from .net.peer_session import EngineSession
    from .peer.connection import PeerConnection
    from .session.engine import TorrentEngine
    from .session.peer import EnginePeer

__all__ = ["Session", "Subscriptions", "TorrentCore", "check_select", "dht_contacts", "is_seed"]


class TorrentCore(Protocol):
    """What the mixins of `Torrent` (``torrent_commands.py``, ``torrent_report.py``)
    read of it: a protocol, so that they do not import ``torrent.py`` back."""

    @property
    def engine(self) -> TorrentEngine: ...
    @property
    def data(self) -> DataFiles | None: ...
    @property
    def _dht(self) -> DHT | None: ...
    @property
    def _subs(self) -> Subscriptions: ...


def check_select(select: Sequence[int], num_files: int) -> None:
    """Reject file indexes outside the torrent (a silent no-op would download nothing).

    Raises:
        ValueError: an index is negative or not below `num_files`.
    """
    bad = sorted({i for i in select if not 0 <= i < num_files})
    if bad:
        shown = ", ".join(map(str, bad[:10]))
        last = num_files - 1
        raise ValueError(f"file index {shown} out of range: the torrent has files 0..{last}")


@dataclass
class Subscriptions:
    channels: list[trio.MemorySendChannel[tev.TorrentEvent]] = field(default_factory=list)

    def publish(self, event: tev.TorrentEvent) -> None:
        for ch in list(self.channels):
            try:
                ch.send_nowait(event)
            except trio.WouldBlock:
                pass  # a slow subscriber loses events rather than stalling the torrent
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.channels.remove(ch)

    def close(self) -> None:
        for ch in self.channels:
            ch.close()
        self.channels.clear()


@final
class Session:
    """A connection as the user (and tests) see it: the link and its engine state."""

    def __init__(self, io: EngineSession, peer: EnginePeer) -> None:
        self.io = io
        self.peer = peer
        self.link: Final = io.link
        self.addr: Final = io.addr

    @property
    def conn(self) -> PeerConnection:
        return self.peer.conn

    @property
    def client(self) -> str:
        return self.peer.client

    @property
    def downloaded(self) -> int:
        return self.peer.downloaded

    @property
    def uploaded(self) -> int:
        return self.peer.uploaded


def is_seed(peer: EnginePeer) -> bool:
    pieces = peer.conn.peer_pieces
    return pieces is not None and pieces.has_all()


def dht_contacts(nodes: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    """A .torrent's BEP 5 ``nodes`` usable as DHT bootstrap contacts: IP literals only
    (a name would need a DNS lookup chosen by an untrusted file), valid ports."""
    contacts = []
    for host, port in nodes:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            continue
        if 0 < port < 65536:
            contacts.append((host, port))
    return contacts
