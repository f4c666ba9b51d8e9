"""Helpers for the command-line tests: run shoal as a subprocess, build test torrents."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

from shoal.bencoding import Bencoded, encode
from shoal.metainfo import build_metainfo

if TYPE_CHECKING:
    from pathlib import Path

#: Generous: a cold interpreter start on a loaded 2-core machine can take seconds.
SUBPROCESS_TIMEOUT = 60


def run_shoal(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m shoal ARGS`` with pipes for stdout and stderr (so not a terminal)."""
    env = {k: v for k, v in os.environ.items() if k not in {"FORCE_COLOR", "TTY_COMPATIBLE"}}
    return subprocess.run(
        [sys.executable, "-m", "shoal", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    """Create `files` (relative POSIX paths → contents) under `root`; return `root`."""
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def make_torrent(
    path: Path,
    files: list[tuple[list[str], int, bool]],
    *,
    name: str = "bundle",
    piece_length: int = 16384,
    private: bool = False,
    comment: str | None = None,
    created_by: str | None = None,
    creation_date: int | None = None,
    nodes: tuple[tuple[str, int], ...] = (),
) -> bytes:
    """Write a multi-file .torrent (fake piece hashes: nothing here verifies data)."""
    total = sum(length for _, length, _ in files)
    entries: list[Bencoded] = []
    for parts, length, pad in files:
        entry: dict[bytes, Bencoded] = {
            b"length": length,
            b"path": [p.encode() for p in parts],
        }
        if pad:
            entry[b"attr"] = b"p"
        entries.append(entry)
    info: dict[bytes, Bencoded] = {
        b"name": name.encode(),
        b"piece length": piece_length,
        b"pieces": b"\xab" * 20 * -(-total // piece_length),
        b"files": entries,
    }
    if private:
        info[b"private"] = 1
    data = build_metainfo(
        encode(info),
        comment=comment,
        created_by=created_by,
        creation_date=creation_date,
        nodes=nodes,
    )
    path.write_bytes(data)
    return data
