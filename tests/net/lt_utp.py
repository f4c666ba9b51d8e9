"""A uTP-only libtorrent 2.1 session on 127.0.0.1 (TCP off both ways), for uTP interop."""

from __future__ import annotations

import hashlib
import random
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest
import trio

from tests.lt_helpers import loopback_settings, lt_torrent_session, single_file_info

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

lt: Any = pytest.importorskip("libtorrent")

PIECE = 65536
PE_FORCED, PE_DISABLED = 0, 2
PE_RC4 = 2


def utp_only_settings(*, rc4: bool) -> dict[str, object]:
    settings: dict[str, object] = dict(loopback_settings(utp=True))
    settings |= {"enable_incoming_tcp": False, "enable_outgoing_tcp": False}
    if rc4:
        settings |= {"in_enc_policy": PE_FORCED, "out_enc_policy": PE_FORCED}
        settings |= {"allowed_enc_level": PE_RC4}
    else:
        settings |= {"in_enc_policy": PE_DISABLED, "out_enc_policy": PE_DISABLED}
    return settings


@contextmanager
def utp_only_seed(
    tmp_path: Path, size: int, *, rc4: bool
) -> Iterator[tuple[Any, Any, bytes, bytes]]:
    """(session, handle, info dict, data): libtorrent seeding ``f.bin`` over uTP only."""
    data = random.Random(size).randbytes(size)
    (tmp_path / "f.bin").write_bytes(data)
    info = single_file_info(data, PIECE)
    with lt_torrent_session(lt, info, tmp_path, utp_only_settings(rc4=rc4)) as (session, handle):
        yield session, handle, info, data


def info_hash_of(info: bytes) -> bytes:
    return hashlib.sha1(info).digest()


async def wait_seeding(handle: Any) -> None:
    """Wait (under the caller's deadline) until libtorrent has all pieces."""
    while not handle.status().is_seeding:  # noqa: ASYNC110 - libtorrent has its own threads
        await trio.sleep(0.05)
