"""Errors a user causes are one line on stderr that says what to do (issue 6).

Each case runs the real program (``python -m shoal``) with real sockets and real file
systems on loopback: a port another process holds, an output directory we cannot write,
and a disk that fills up mid-download (a 128 KiB tmpfs in a private mount namespace,
made with ``unshare -rm``, so no privileges and nothing outside the test changes).
``--timeout`` with no peers is covered in test_seed.py.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from .helpers import SUBPROCESS_TIMEOUT, run_shoal

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SIZE = 300_000  # 19 pieces of 16 KiB: more than the 128 KiB disk below
NOWHERE = "127.0.0.1:9"  # a bootstrap node that never answers (discard port, loopback)


@pytest.fixture
def torrent(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "f.bin").write_bytes(os.urandom(SIZE))
    path = tmp_path / "f.torrent"
    made = run_shoal("create", str(data / "f.bin"), "-o", str(path), "--piece-size", "16K")
    assert made.returncode == 0, made.stderr
    return path


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in {"FORCE_COLOR", "TTY_COMPATIBLE"}}


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    return done.stderr.rstrip("\n")


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "true"], capture_output=True, timeout=SUBPROCESS_TIMEOUT, check=False
    )
    return probe.returncode == 0


def _in_private_mount(mount_opts: str, mountpoint: Path, argv: list[str]) -> list[str]:
    """``argv`` run with a fresh tmpfs (``mount_opts``) on `mountpoint`, seen only by it."""
    script = 'mount -t tmpfs -o "$1" tmpfs "$2" && shift 2 && exec "$@"'
    return ["unshare", "-rm", "sh", "-c", script, "sh", mount_opts, str(mountpoint), *argv]


needs_unshare = pytest.mark.skipif(
    not _can_unshare(), reason="needs 'unshare -rm' (util-linux, user namespaces enabled)"
)


@pytest.mark.integration
@pytest.mark.parametrize("command", ["get", "seed"])
def test_port_in_use(command: str, torrent: Path, tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        where = ["-o", str(tmp_path / "out")] if command == "get" else ["--data", str(tmp_path)]
        done = run_shoal(
            command, str(torrent), *where, "--bind", "127.0.0.1", "--port", str(port),
            "--bootstrap", NOWHERE,
        )  # fmt: skip
    assert _one_line(done) == (
        f"shoal: port {port} on 127.0.0.1 is already in use; "
        "choose another with --port (0 picks a free one)"
    )


@pytest.mark.integration
def test_output_directory_under_a_file(torrent: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    done = run_shoal("get", str(torrent), "-o", str(blocker / "sub"), "--bootstrap", NOWHERE)
    line = _one_line(done)
    assert line.startswith(f"shoal: output directory '{blocker / 'sub'}' is not writable (")
    assert line.endswith("); choose another with -o")


@pytest.mark.integration
@needs_unshare
def test_read_only_output_directory(torrent: Path, tmp_path: Path) -> None:
    mnt = tmp_path / "ro"
    mnt.mkdir()
    argv = [sys.executable, "-m", "shoal", "get", str(torrent), "-o", str(mnt)]
    argv += ["--bind", "127.0.0.1", "--port", "0", "--bootstrap", NOWHERE]
    done = subprocess.run(
        _in_private_mount("ro", mnt, argv),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )
    assert _one_line(done) == (
        f"shoal: output directory '{mnt}' is not writable (Read-only file system); "
        "choose another with -o"
    )


@pytest.fixture
def seeder(torrent: Path) -> Iterator[int]:
    """A ``shoal seed`` of `torrent` on 127.0.0.1; yields its port."""
    argv = [sys.executable, "-m", "shoal", "seed", str(torrent), "--data"]
    argv += [str(torrent.parent / "data"), "--bind", "127.0.0.1", "--port", "0"]
    argv += ["--bootstrap", NOWHERE, "--json"]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_env()
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())  # bounded: the seeder prints it or exits
        assert first["event"] == "listening", first
        yield int(first["port"])
    finally:
        proc.kill()
        proc.wait(timeout=SUBPROCESS_TIMEOUT)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.integration
@needs_unshare
def test_disk_full_mid_download(torrent: Path, tmp_path: Path, seeder: int) -> None:
    """300 kB into a 128 KiB file system: the download stops with one line, exit 1."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    argv = [sys.executable, "-m", "shoal", "get", str(torrent), "-o", str(mnt), "--no-seed"]
    argv += ["--peer", f"127.0.0.1:{seeder}", "--bind", "127.0.0.1", "--port", "0"]
    argv += ["--bootstrap", NOWHERE, "--timeout", "30"]
    done = subprocess.run(
        _in_private_mount("size=128k", mnt, argv),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )
    line = _one_line(done)
    assert line.startswith("shoal: "), line
    assert "disk full" in line, line
    assert line.endswith("; free some space, or download elsewhere with -o"), line
