"""A real libtorrent 2.x seed on 127.0.0.1, for MSE interop tests.

Loopback only: DHT, LSD, UPnP, NAT-PMP and uTP are off, and the session listens
on 127.0.0.1. Encryption is *forced* both ways, at the level asked for, so a
passing test proves that libtorrent accepted our MSE handshake, not a fallback.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
import trio

from tests.lt_helpers import loopback_settings, lt_torrent_session, single_file_info

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


lt: Any = pytest.importorskip("libtorrent")

# libtorrent settings_pack enums: enc_policy pe_forced = 0; enc_level values.
PE_FORCED = 0
PE_PLAINTEXT, PE_RC4 = 1, 2
PIECE = 16384


@dataclass
class LtSeed:
    session: Any
    handle: Any
    info_hash: bytes
    port: int


@contextmanager
def lt_seed(tmp_path: Path, enc_level: int) -> Iterator[LtSeed]:
    data = bytes(range(256)) * 160  # 40 KiB: three pieces
    (tmp_path / "f.bin").write_bytes(data)
    info = single_file_info(data, PIECE)
    settings = loopback_settings(utp=False)
    settings |= {
        "in_enc_policy": PE_FORCED,
        "out_enc_policy": PE_FORCED,
        "allowed_enc_level": enc_level,
    }
    with lt_torrent_session(lt, info, tmp_path, settings) as (session, handle):
        yield LtSeed(session, handle, hashlib.sha1(info).digest(), session.listen_port())


async def wait_until_seeding(seed: LtSeed) -> None:
    """Wait (under the caller's deadline) until libtorrent has checked the data."""
    # libtorrent's state lives in its own threads: polling is the only way.
    while not seed.handle.status().is_seeding:  # noqa: ASYNC110
        await trio.sleep(0.05)


def bt_handshake(info_hash: bytes) -> bytes:
    """A minimal BEP 3 handshake (no reserved bits) from peer id -SH0001-..."""
    return b"\x13BitTorrent protocol" + bytes(8) + info_hash + b"-SH0001-abcdefghijkl"
