"""``shoal seed`` and shoal-to-shoal transfers through the command line, on loopback.

Each test runs the real program as subprocesses (``python -m shoal``), with a shoal DHT
node on 127.0.0.1 as the only bootstrap node: ``seed`` on one 127.0.0.x address,
``get`` on another. Interop with other clients is in tests/integration.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import pytest
import trio

from shoal.metainfo import parse_metainfo
from tests.integration.peers import (
    DEADLINE,
    SHOAL_IP,
    SHOAL_SEED_IP,
    dht_router,
    hostport,
    shoal_process,
    wait_announced,
)

from .helpers import run_on_pty, run_shoal, write_tree

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from shoal.dht_client import DHT
    from tests.integration.peers import Shoal

FILES = {
    "album/a.bin": bytes(range(256)) * 700,  # 179,200 bytes: pieces straddle the files
    "album/sub/b.txt": b"hello\n" * 3000,
    "album/empty": b"",
}


@pytest.fixture
def album(tmp_path: Path) -> tuple[Path, Path, str]:
    """(data dir, .torrent, magnet) for a small multi-file torrent made by `shoal create`."""
    data = write_tree(tmp_path / "data", FILES)
    torrent = tmp_path / "album.torrent"
    made = run_shoal("create", str(data / "album"), "-o", str(torrent), "--piece-size", "16K")
    assert made.returncode == 0, made.stderr
    return data, torrent, made.stdout.strip()


def _seed_args(torrent: Path, data: Path, router: DHT, *extra: str) -> list[str]:
    return [
        "seed", str(torrent), "--data", str(data), "--bind", SHOAL_SEED_IP, "--port", "0",
        "--bootstrap", hostport(router), *extra,
    ]  # fmt: skip


def _get_args(magnet: str, out: Path, router: DHT, *extra: str) -> list[str]:
    return [
        "get", magnet, "-o", str(out), "--bind", SHOAL_IP, "--port", "0",
        "--bootstrap", hostport(router), "--timeout", str(DEADLINE - 10), *extra,
    ]  # fmt: skip


def _offline_seed_args(torrent: Path, data: Path) -> list[str]:
    """``shoal seed`` bootstrapping from a dead loopback port (so it exits 1)."""
    return [
        "seed", str(torrent), "--data", str(data),
        "--bind", SHOAL_SEED_IP, "--port", "0", "--bootstrap", "127.0.0.1:9",
    ]  # fmt: skip


@asynccontextmanager
async def _seeding(
    torrent: Path, data: Path, tmp_path: Path, *extra: str, announced: bool = True
) -> AsyncIterator[tuple[DHT, Shoal]]:
    """A DHT router and a ``shoal seed`` that is seeding (and, if `announced`, findable)."""
    async with (
        dht_router() as router,
        shoal_process(_seed_args(torrent, data, router, *extra), tmp_path / "s") as seed,
    ):
        await seed.wait_record("progress", lambda r: r["state"] == "seeding")
        if announced:
            await wait_announced(router)
        yield router, seed


# ---------------------------------------------------------------- errors, no network


def test_data_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    from shoal.cli import main

    assert main(["seed", "x.torrent"]) == 2
    assert "--data" in capsys.readouterr().err


def test_missing_torrent_and_bad_data_dir(tmp_path: Path, album: tuple[Path, Path, str]) -> None:
    missing = run_shoal("seed", str(tmp_path / "nope.torrent"), "--data", str(tmp_path))
    assert missing.returncode == 1
    assert missing.stderr.startswith("shoal: cannot read")
    _, torrent, _ = album
    not_dir = run_shoal("seed", str(torrent), "--data", str(torrent))
    assert not_dir.returncode == 1
    assert "is not a directory" in not_dir.stderr
    assert not_dir.stderr.count("\n") == 1


# ---------------------------------------------------------------- loopback


@pytest.mark.integration
@pytest.mark.parametrize("present", ["nothing", "one file"])
async def test_seed_refuses_incomplete_data(
    tmp_path: Path, album: tuple[Path, Path, str], present: str
) -> None:
    _, torrent, _ = album
    partial = tmp_path / "partial"
    if present == "one file":
        write_tree(partial, {"album/a.bin": FILES["album/a.bin"]})
    else:
        partial.mkdir()
    async with (
        dht_router() as router,
        shoal_process(_seed_args(torrent, partial, router), tmp_path / "s") as seed,
    ):
        assert await seed.wait() == 1
    lines = seed.stderr.splitlines()
    assert len(lines) == 1
    assert "pieces of album; point --data at the directory" in lines[0]


@pytest.mark.integration
@pytest.mark.parametrize("encryption", ["prefer", "require", "disable"])
async def test_shoal_to_shoal_through_the_dht(
    tmp_path: Path, album: tuple[Path, Path, str], encryption: str
) -> None:
    data, torrent, magnet = album
    out = tmp_path / "out"
    enc = ["--encryption", encryption]
    async with _seeding(torrent, data, tmp_path, *enc) as (router, _seed):
        args = _get_args(magnet, out, router, "--no-seed", *enc)
        async with shoal_process(args, tmp_path / "g") as get:
            assert await get.wait() == 0, get.stderr
    for rel, content in FILES.items():
        assert (out / rel).read_bytes() == content
    peers = get.events("peer")
    assert peers
    # "prefer" dials with MSE offering both methods and the "prefer" seed picks header
    # obfuscation (as libtorrent does), so only "require" carries RC4.
    assert all(p["encrypted"] is (encryption == "require") for p in peers), peers
    assert next(r["event"] for r in get.records) == "listening"
    assert get.events("metadata")[0]["name"] == "album"
    assert get.events("complete")[0]["size"] == sum(map(len, FILES.values()))


@pytest.mark.integration
async def test_seed_dials_a_peer_given_with_peer(
    tmp_path: Path, album: tuple[Path, Path, str]
) -> None:
    """``seed --peer``: a leecher that no DHT names (both bootstrap from a dead port) is
    dialled by the seed and downloads from it."""
    data, torrent, magnet = album
    out = tmp_path / "out"
    dead = ["--bootstrap", "127.0.0.1:9", "--timeout", str(DEADLINE - 10), "--no-seed"]
    get_args = ["get", magnet, "-o", str(out), "--bind", SHOAL_IP, "--port", "0", *dead]
    async with shoal_process(get_args, tmp_path / "g") as get:
        listening = await get.wait_record("listening")
        leecher = f"{listening['host']}:{listening['port']}"
        seed_args = [*_offline_seed_args(torrent, data), "--peer", leecher]
        async with shoal_process(seed_args, tmp_path / "s") as seed:
            assert await get.wait() == 0, get.stderr
            dialled = await seed.wait_record("peer")
        assert not dialled["incoming"]
        assert (dialled["host"], dialled["port"]) == (listening["host"], listening["port"])
        assert any(p["incoming"] for p in get.events("peer"))
    for rel, content in FILES.items():
        assert (out / rel).read_bytes() == content


@pytest.mark.integration
async def test_metadata_only_writes_the_torrent(
    tmp_path: Path, album: tuple[Path, Path, str]
) -> None:
    data, torrent, magnet = album
    out = tmp_path / "meta"
    async with _seeding(torrent, data, tmp_path) as (router, _seed):
        args = _get_args(magnet, out, router, "--metadata-only")
        async with shoal_process(args, tmp_path / "g") as get:
            assert await get.wait() == 0, get.stderr
    written = parse_metainfo((out / "album.torrent").read_bytes())
    assert written.info.raw == parse_metainfo(torrent.read_bytes()).info.raw
    assert get.events("metadata")[0]["torrent"] == str(out / "album.torrent")
    assert not (out / "album").exists()  # nothing but the .torrent


@pytest.mark.integration
async def test_timeout_without_peers_is_a_one_line_error(
    tmp_path: Path, album: tuple[Path, Path, str]
) -> None:
    _, _, magnet = album
    async with dht_router() as router:
        args = [*_get_args(magnet, tmp_path / "out", router), "--timeout", "1.5"]
        async with shoal_process(args, tmp_path / "g") as get:
            with trio.fail_after(20):
                assert await get.wait() == 1
    lines = get.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("shoal: no metadata within 1.5 s")


@pytest.mark.integration
async def test_ctrl_c_stops_seed_and_get_quickly(
    tmp_path: Path, album: tuple[Path, Path, str]
) -> None:
    data, torrent, _magnet = album
    async with _seeding(torrent, data, tmp_path, announced=False) as (router, seed):
        nobody = "magnet:?xt=urn:btih:" + "ab" * 20
        args = _get_args(nobody, tmp_path / "out", router)
        async with shoal_process(args, tmp_path / "g") as get:
            await get.wait_record("listening")
            for proc in (get, seed):
                proc.proc.send_signal(signal.SIGINT)
                with trio.fail_after(3):  # "within a second", plus interpreter exit
                    assert await proc.wait() == 130
    assert get.stderr.strip() == "shoal: interrupted; resume data saved"
    assert seed.stderr.strip() == "shoal: interrupted"


@pytest.mark.integration
def test_plain_output_when_stdout_is_a_pipe(tmp_path: Path, album: tuple[Path, Path, str]) -> None:
    """Without --json and without a terminal: a few plain lines, no escape sequences."""
    _, torrent, _ = album
    env = {k: v for k, v in os.environ.items() if k not in {"FORCE_COLOR", "TTY_COMPATIBLE"}}
    argv = [sys.executable, "-m", "shoal", *_offline_seed_args(torrent, tmp_path)]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"listening on {SHOAL_SEED_IP}:")
    assert lines[1] == "metadata: album, 192.6 KiB in 13 pieces"
    assert "\x1b" not in done.stdout


@pytest.mark.integration
async def test_timeout_without_any_peer_for_a_torrent_file(
    tmp_path: Path, album: tuple[Path, Path, str]
) -> None:
    _, torrent, _ = album
    async with dht_router() as router:
        args = [*_get_args(str(torrent), tmp_path / "out", router), "--timeout", "1.5"]
        async with shoal_process(args, tmp_path / "g") as get:
            with trio.fail_after(20):
                assert await get.wait() == 1
    assert get.stderr.startswith("shoal: no peers within 1.5 s")
    assert get.stderr.count("\n") == 1


@pytest.mark.integration
def test_live_display_on_a_terminal(tmp_path: Path, album: tuple[Path, Path, str]) -> None:
    """stdout on a pseudo-terminal: rich redraws in place, the error still ends on one line."""
    _, torrent, _ = album
    argv = _offline_seed_args(torrent, tmp_path)
    status, _, seen, err = run_on_pty(argv, stdout_on_tty=True, stderr_on_tty=False)
    assert status == 1
    assert b"\x1b[" in seen  # cursor control: the view is drawn in place
    assert b"metadata: album" in seen
    assert err.count("\n") == 1
    assert "pieces of album" in err


@pytest.mark.integration
@pytest.mark.parametrize(
    ("target", "low", "high"),
    [(["--seed-time", "2"], 1.5, 10.0), (["--seed-ratio", "0"], 0.0, 2.0)],
    ids=["seed-time", "seed-ratio-reached"],
)
async def test_get_seeds_until_the_target_then_exits_0(
    tmp_path: Path, album: tuple[Path, Path, str], target: list[str], low: float, high: float
) -> None:
    data, torrent, magnet = album
    async with _seeding(torrent, data, tmp_path) as (router, _seed):
        args = _get_args(magnet, tmp_path / "out", router, *target)
        async with shoal_process(args, tmp_path / "g") as get:
            await get.wait_record("complete")
            completed = trio.current_time()
            assert await get.wait() == 0, get.stderr
            seeded = trio.current_time() - completed
    assert low <= seeded <= high


@pytest.mark.integration
async def test_select_downloads_only_the_chosen_file(
    tmp_path: Path, album: tuple[Path, Path, str]
) -> None:
    data, torrent, magnet = album
    files = [f.path for f in parse_metainfo(torrent.read_bytes()).info.files]
    wanted = files.index(("album", "sub", "b.txt"))
    out = tmp_path / "out"
    async with _seeding(torrent, data, tmp_path) as (router, _seed):
        args = _get_args(magnet, out, router, "--no-seed", "--select", str(wanted))
        async with shoal_process(args, tmp_path / "g") as get:
            assert await get.wait() == 0, get.stderr
    assert (out / "album/sub/b.txt").read_bytes() == FILES["album/sub/b.txt"]
    assert get.events("complete")[0]["size"] == len(FILES["album/sub/b.txt"])


@pytest.mark.integration
async def test_quiet_prints_nothing_on_success(
    tmp_path: Path, album: tuple[Path, Path, str]
) -> None:
    data, torrent, magnet = album
    async with _seeding(torrent, data, tmp_path) as (router, _seed):
        args = _get_args(magnet, tmp_path / "out", router, "--no-seed", "--quiet")
        async with shoal_process(args, tmp_path / "g") as get:  # --quiet wins over --json
            assert await get.wait() == 0, get.stderr
    assert get.records == []
    assert get.stderr == ""
    assert (tmp_path / "out/album/a.bin").read_bytes() == FILES["album/a.bin"]
