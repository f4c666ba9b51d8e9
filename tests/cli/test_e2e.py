"""The real program as a subprocess: create → info round trip, libtorrent agreement, a tty.

These start interpreters, so they are few; the many small cases run in process
(test_main.py, test_create.py, test_info.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import libtorrent as lt
import pytest

import shoal

from .helpers import SUBPROCESS_TIMEOUT, make_torrent, run_on_pty, run_shoal, write_tree

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_tree(
        tmp_path / "data",
        {
            "big.bin": bytes(range(256)) * 700,
            "docs/readme.txt": b"shoal test\n",
            "docs/deep/x.dat": b"\x00" * 33_000,
        },
    )


def test_create_then_info_agree_with_each_other_and_libtorrent(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "data.torrent"
    created = run_shoal("create", str(tree), "-o", str(out), "--comment", "e2e")
    assert created.returncode == 0, created.stderr
    magnet_line = created.stdout.strip()
    assert magnet_line.startswith("magnet:?xt=urn:btih:")

    shown = run_shoal("info", str(out), "--json")
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)

    ti = lt.torrent_info(str(out))
    assert info["info_hash"] == str(ti.info_hashes().v1)
    assert info["name"] == ti.name() == "data"
    assert info["total_size"] == ti.total_size() == 212_211
    assert info["piece_length"] == ti.piece_length()
    assert info["num_pieces"] == ti.num_pieces()
    assert info["comment"] == ti.comment() == "e2e"
    fs = ti.layout()
    assert [(f["path"], f["size"]) for f in info["files"]] == [
        (fs.file_path(i).replace(os.sep, "/"), fs.file_size(i)) for i in range(fs.num_files())
    ]

    from_magnet = run_shoal("info", magnet_line, "--json")
    assert from_magnet.returncode == 0, from_magnet.stderr
    assert json.loads(from_magnet.stdout)["info_hash"] == info["info_hash"]


def test_version() -> None:
    result = run_shoal("--version")
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        f"shoal {shoal.__version__}\n",
        "",
    )


@pytest.mark.parametrize(
    ("args", "status", "start"),
    [
        (["info", "magnet:?xt=urn:btih:nothex"], 1, "shoal: invalid magnet link: "),
        (["info", "/nonexistent/x.torrent"], 1, "shoal: cannot read '/nonexistent/x.torrent': "),
        (["create"], 2, "shoal create: the following arguments are required: PATH"),
        (["info", "--frobnicate", "x"], 2, "shoal: unrecognized arguments: --frobnicate"),
    ],
)
def test_errors_are_one_line_without_traceback(args: list[str], status: int, start: str) -> None:
    result = run_shoal(*args)
    assert result.returncode == status
    assert result.stdout == ""
    assert result.stderr.startswith(start)
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback() -> None:
    result = run_shoal("--debug", "info", "/nonexistent/x.torrent")
    assert result.returncode == 1
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert "FileNotFoundError" in result.stderr
    assert result.stderr.endswith(
        "shoal: cannot read '/nonexistent/x.torrent': No such file or directory\n"
    )


def test_reader_closing_the_pipe_early_is_not_an_error_report(tmp_path: Path) -> None:
    # ~300 KB of JSON: more than a pipe buffer, so shoal is still writing when the
    # reader (think `| head -c 100`) goes away.
    path = tmp_path / "many.torrent"
    make_torrent(path, [([f"file-{i:05d}.bin"], 100, False) for i in range(3000)])
    proc = subprocess.Popen(
        [sys.executable, "-m", "shoal", "info", str(path), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    assert proc.stdout.read(100).startswith(b"{")
    proc.stdout.close()
    try:
        status = proc.wait(timeout=SUBPROCESS_TIMEOUT)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert err == b""
    assert status == 1


def test_progress_renders_on_a_tty_and_not_on_a_pipe(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "movie", {"movie.bin": b"\x5a" * (24 * 1024 * 1024)})
    status, stdout, tty, _ = run_on_pty(["create", str(src), "-o", "tty.torrent"], cwd=tmp_path)
    assert status == 0, tty
    assert stdout.startswith("magnet:?xt=urn:btih:")
    assert "\x1b" not in stdout  # stdout is a pipe here: plain text only
    assert b"\x1b[" in tty  # cursor control: the bar is redrawn in place
    assert b"hashing movie" in tty
    assert "━".encode() in tty  # rich's bar glyph

    piped = run_shoal("create", str(src), "-o", "pipe.torrent", cwd=tmp_path)
    assert piped.returncode == 0
    assert "\x1b" not in piped.stdout + piped.stderr
    assert "━" not in piped.stderr
    assert piped.stdout == stdout


def test_ctrl_c_while_hashing_exits_130_quietly(tmp_path: Path) -> None:
    # A sparse 8 GiB file: no disk used, but seconds of SHA-1, so the signal lands
    # mid-hash; the first progress frame on the tty tells us hashing has started.
    src = tmp_path / "huge.bin"
    with src.open("wb") as f:
        f.truncate(8 * 1024**3)
    argv = ["create", str(src), "-o", "huge.torrent", "--piece-size", "4M"]
    status, stdout, tty, _ = run_on_pty(argv, cwd=tmp_path, interrupt_on="━".encode())
    assert status == 130, tty
    assert stdout == ""
    assert b"Traceback" not in tty
    assert tty.rstrip().endswith(b"shoal: interrupted")
    assert not (tmp_path / "huge.torrent").exists()
