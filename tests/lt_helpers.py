"""Shared libtorrent setup for the interop tests: one place for the loopback-only settings.

Every session a test builds starts from `loopback_settings`, so the safety settings
(LSD, UPnP, NAT-PMP and the IP notifier off, no default DHT routers, listening and
dialling on one 127.x address only) cannot be forgotten by a new test. The caller
imports libtorrent itself (skip/fail policy differs per module) and passes it in.
"""

from __future__ import annotations

import hashlib
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from shoal import bencoding

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from libtorrent import settings_pack

#: Bound on libtorrent's hash check of a small test torrent.
CHECK_DEADLINE = 30.0


def loopback_settings(
    ip: str = "127.0.0.1", *, port: int = 0, dht: bool = False, utp: bool = True
) -> settings_pack:
    """A libtorrent settings pack that only ever touches `ip` (a 127.0.0.0/8 address or
    ``::1``).

    ``dht`` turns the DHT on but with an empty bootstrap list, so the session talks
    only to nodes the test adds; ``utp=False`` keeps a test on plain TCP.
    """
    assert ip.startswith("127.") or ip == "::1", f"{ip} is not a loopback address"
    settings: settings_pack = {
        "listen_interfaces": f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}",
        "outgoing_interfaces": ip,
        "enable_dht": dht,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "dht_bootstrap_nodes": "",
    }
    if not utp:
        settings |= {"enable_outgoing_utp": False, "enable_incoming_utp": False}
    return settings


def lt_checked_pieces(lt: Any, torrent: bytes, save_path: Path) -> list[bool]:
    """Which pieces a loopback-only libtorrent session finds valid under `save_path`."""
    ses = lt.session(loopback_settings() | {"alert_mask": int(lt.alert_category.status)})
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(torrent)
    atp.save_path = str(save_path)
    handle = ses.add_torrent(atp)
    deadline = time.monotonic() + CHECK_DEADLINE
    checked = False
    while not checked and time.monotonic() < deadline:
        ses.wait_for_alert(200)
        checked = any(isinstance(a, lt.torrent_checked_alert) for a in ses.pop_alerts())
    assert checked, f"libtorrent did not finish checking within {CHECK_DEADLINE:.0f} s"
    pieces = [bool(ok) for ok in handle.status(lt.status_flags_t.query_pieces).pieces]
    ses.remove_torrent(handle)
    return pieces


def single_file_info(data: bytes, piece_length: int) -> bytes:
    """The bencoded v1 info dict of one file ``f.bin`` holding `data`."""
    pieces = b"".join(
        hashlib.sha1(data[i : i + piece_length]).digest() for i in range(0, len(data), piece_length)
    )
    return bencoding.encode(
        {b"name": b"f.bin", b"length": len(data), b"piece length": piece_length, b"pieces": pieces}
    )


@contextmanager
def lt_torrent_session(
    lt: Any, info: bytes, save_path: Path, settings: settings_pack
) -> Iterator[tuple[Any, Any]]:
    """A libtorrent session holding the torrent of `info` (data under `save_path`).

    The torrent is removed and the session dropped on the way out; the session's
    destructor joins libtorrent's threads.
    """
    params = lt.load_torrent_buffer(b"d4:info" + info + b"e")
    params.save_path = str(save_path)
    session = lt.session(settings)
    handle = session.add_torrent(params)
    try:
        yield session, handle
    finally:
        session.remove_torrent(handle)
        del handle, session
