"""What the user names on the command line as a torrent: a .torrent path or a magnet URI.

Why a module: `shoal get`, `shoal seed` and `shoal info` all read these, and each
failure must be the same one-line `CommandError` (exit status 1, no traceback) whichever
command hit it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..bencoding import DEFAULT_MAX_SIZE
from ..errors import DecodeError
from ..magnet import Magnet, parse_magnet
from ..metainfo import Metainfo, parse_metainfo
from .common import CommandError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["load_magnet", "load_metainfo"]


def load_metainfo(path: Path) -> Metainfo:
    """Read and validate a .torrent file; every failure is a one-line `CommandError`."""
    try:
        with path.open("rb") as f:
            data = f.read(DEFAULT_MAX_SIZE + 1)  # one byte past the cap means "too large"
    except OSError as exc:
        raise CommandError(f"cannot read '{path}': {exc.strerror or exc}") from exc
    if len(data) > DEFAULT_MAX_SIZE:
        raise CommandError(f"'{path}' is too large to be a .torrent file")
    try:
        return parse_metainfo(data)
    except DecodeError as exc:
        raise CommandError(f"'{path}' is not a valid .torrent file: {exc}") from exc


def load_magnet(uri: str) -> Magnet:
    """Parse a magnet URI; a malformed one is a one-line `CommandError`."""
    try:
        return parse_magnet(uri)
    except DecodeError as exc:
        raise CommandError(f"invalid magnet link: {exc}") from exc
