"""One connected peer as the `TorrentEngine` sees it: its engine plus bookkeeping.

Also `client_name`: the peer's software, from BEP 10 ``v`` or else its BEP 20 peer id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, final

if TYPE_CHECKING:
    from ..peer.connection import PeerConnection

__all__ = ["EnginePeer", "client_name"]

Addr = tuple[str, int]

#: BEP 20 "Azureus-style" client codes we name (the rest are shown as the code).
_AZUREUS: Final = {
    "AZ": "Vuze",
    "BI": "BiglyBT",
    "BT": "BitTorrent",
    "DE": "Deluge",
    "LT": "libtorrent",
    "lt": "libtorrent (rakshasa)",
    "qB": "qBittorrent",
    "SH": "shoal",
    "TR": "Transmission",
    "UT": "µTorrent",
    "UW": "µTorrent Web",
}
_AZUREUS_RE: Final = re.compile(rb"-([A-Za-z]{2})([0-9A-Za-z]{4})-")
_ARIA2_RE: Final = re.compile(rb"A2-(\d+)-(\d+)-(\d+)-")
_PRINTABLE: Final = re.compile(r"[^\x20-\x7e\u00a0-\uffff]")


def client_name(peer_id: bytes, v: str | None = None) -> str:
    """The peer's software: BEP 10 ``v`` if it sent one, else decoded from its BEP 20
    peer id (Azureus style ``-XXvvvv-``, aria2's ``A2-x-y-z-``), else ``""``.

    Untrusted text: control characters are removed and the length capped.
    """
    if v:
        return _PRINTABLE.sub("", v)[:64]
    m = _AZUREUS_RE.match(peer_id)
    if m is not None:
        code = m.group(1).decode()
        version = ".".join(str(int(c, 36)) for c in m.group(2).decode())
        return f"{_AZUREUS.get(code, code)} {version}"
    m = _ARIA2_RE.match(peer_id)
    if m is not None:
        return "aria2 " + ".".join(g.decode() for g in m.groups())
    return ""


@final
@dataclass(eq=False)
class EnginePeer:
    """One connection (hashable by identity; `key` names it to the driver)."""

    key: int
    addr: Addr
    conn: PeerConnection
    incoming: bool
    encrypted: bool
    dialer_end: Addr | None
    started_at: float
    #: Where the peer accepts connections: its address if we dialled it, else its
    #: BEP 10 ``p`` once known. Used for PEX and to avoid redialling it.
    listen_addr: Addr | None = None
    client: str = ""
    downloaded: int = 0  #: payload bytes received (blocks)
    uploaded: int = 0  #: payload bytes sent (blocks)
    rate_mark: tuple[float, int, int] | None = None  #: (time, downloaded, uploaded)
    fast_pending: set[int] | None = None  #: BEP 6 allowed-fast pieces not yet offered
    #: It asked for our metadata (BEP 9) and nothing else happened yet: if it leaves
    #: cleanly now, it is switching from the magnet to the torrent: redial it soon.
    took_metadata: bool = False
    extended_seen: bool = False  #: its BEP 10 handshake arrived
    #: The connection runs over uTP (BEP 29): PEX tells others it supports uTP.
    utp: bool = False
    #: (downloaded + uploaded, when that total last changed or None): peer turnover.
    payload_mark: tuple[int, float | None] = (0, None)
    flags: dict[str, bool] = field(default_factory=dict)
