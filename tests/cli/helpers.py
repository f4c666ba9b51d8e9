"""Helpers for the command-line tests: run shoal as a subprocess, build test torrents."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

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


def run_on_pty(
    argv: list[str],
    *,
    cwd: Path | None = None,
    stdout_on_tty: bool = False,
    stderr_on_tty: bool = True,
    columns: int = 100,
    read_for: float = SUBPROCESS_TIMEOUT,
    interrupt_on: bytes | None = None,
) -> tuple[int, str, bytes, str]:
    """``python -m shoal ARGV`` with stdout and/or stderr on a pseudo-terminal.

    Returns (status, stdout, bytes seen on the tty, stderr); each stream not on the
    tty is a pipe whose text is returned, one on the tty returns "".
    With `interrupt_on`, send SIGINT (what Ctrl-C does) once those bytes appear.
    Skips where the container has no /dev/ptmx.
    """
    assert stdout_on_tty or stderr_on_tty, "one stream must be on the terminal"
    try:
        master, slave = pty.openpty()
    except OSError as exc:  # a container without /dev/ptmx
        pytest.skip(f"no pseudo-terminals here: {exc}")
    # Colour follows the terminal alone: no inherited override either way.
    drop = {"NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TERM"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(TERM="xterm-256color", COLUMNS=str(columns), LINES="30")
    proc = subprocess.Popen(
        [sys.executable, "-m", "shoal", *argv],
        stdin=subprocess.DEVNULL,
        stdout=slave if stdout_on_tty else subprocess.PIPE,
        stderr=slave if stderr_on_tty else subprocess.PIPE,
        cwd=cwd,
        env=env,
    )
    os.close(slave)
    seen = bytearray()
    stdout = stderr = ""
    deadline = time.monotonic() + read_for
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer closed its side of the tty
                break
            if not chunk:
                break
            seen += chunk
            if interrupt_on is not None and interrupt_on in seen:
                proc.send_signal(signal.SIGINT)
                interrupt_on = None
        if proc.stdout is not None:
            stdout = proc.stdout.read().decode(errors="replace")
        if proc.stderr is not None:
            stderr = proc.stderr.read().decode(errors="replace")
        status = proc.wait(timeout=SUBPROCESS_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        os.close(master)
    return status, stdout, bytes(seen), stderr


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
