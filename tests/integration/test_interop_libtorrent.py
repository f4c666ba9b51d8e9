"""``shoal get`` / ``shoal seed`` against libtorrent 2.1.1, through a loopback DHT.

Each test runs the real command line as a subprocess with ``--json`` and a libtorrent
session on its own 127.0.0.x address; they meet only through a shoal DHT node on
127.0.0.1 (magnets are trackerless). Torrents are made by libtorrent: its default
hybrid v1+v2 layout (multi-file, so with BEP 47 pad files) and a ``v1_only`` one.

libtorrent cannot play the corrupt peer: in ``seed_mode`` it hashes each piece before
serving it and stops seeding on a mismatch, so that test uses aria2c
(tests/integration/test_interop_aria2.py).
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Any

import pytest
import trio

from .peers import (
    DEADLINE,
    LT_LEECH_IP,
    LT_SEED_IP,
    SHOAL_IP,
    SHOAL_SEED_IP,
    Content,
    dht_router,
    hostport,
    lt_leech,
    lt_seed,
    lt_session,
    make_content,
    require_libtorrent,
    shoal_process,
    wait_announced,
    wait_lt_seeding,
)

if TYPE_CHECKING:
    from pathlib import Path

    from .peers import Shoal

pytestmark = pytest.mark.integration

lt = require_libtorrent()

LAYOUTS = {
    # name → (file sizes, v1_only): odd sizes so pieces straddle files and pads exist.
    "hybrid-multi-pads": ([100_000, 5, 70_001], False),
    "v1-single": ([200_000], True),
}


@pytest.fixture(params=sorted(LAYOUTS))
def content(request: pytest.FixtureRequest, tmp_path: Path) -> Content:
    sizes, v1_only = LAYOUTS[request.param]
    return make_content(tmp_path / "seed", "payload", sizes, v1_only=v1_only)


def _get_args(content: Content, out: Path, router: Any, *extra: str) -> list[str]:
    return [
        "get", content.magnet, "-o", str(out), "--bind", SHOAL_IP, "--port", "0",
        "--bootstrap", hostport(router), "--no-seed", "--timeout", str(DEADLINE - 10), *extra,
    ]  # fmt: skip


def _assert_encrypted(shoal: Shoal, host: str, *, encrypted: bool) -> None:
    peers = [p for p in shoal.events("peer") if p["host"] == host]
    assert peers, f"no connection with {host}: {shoal.records}"
    assert all(p["encrypted"] is encrypted for p in peers), peers


@pytest.mark.parametrize("forced", [False, True], ids=["prefer", "rc4-forced"])
async def test_shoal_gets_a_magnet_from_a_libtorrent_seed(
    content: Content, tmp_path: Path, forced: bool
) -> None:
    out = tmp_path / "out"
    extra = ["--encryption", "require"] if forced else []
    async with dht_router() as router:
        with lt_session(LT_SEED_IP, router, forced_encryption=forced) as ses:
            await wait_lt_seeding(lt_seed(ses, content))
            await wait_announced(router)
            args = _get_args(content, out, router, *extra)
            async with shoal_process(args, tmp_path / "get") as shoal:
                assert await shoal.wait() == 0, shoal.stderr
    content.assert_identical(out)
    assert shoal.events("metadata")[0]["name"] == content.name
    complete = shoal.events("complete")[0]
    # (verified bytes count BEP 47 pad bytes too, so they may exceed the file sizes)
    assert complete["downloaded"] >= complete["size"] == sum(map(len, content.files.values()))
    if forced:
        _assert_encrypted(shoal, LT_SEED_IP, encrypted=True)


@pytest.mark.parametrize("forced", [False, True], ids=["prefer", "rc4-forced"])
async def test_libtorrent_gets_a_magnet_from_a_shoal_seed(
    content: Content, tmp_path: Path, forced: bool
) -> None:
    torrent = content.write_torrent(tmp_path / "t.torrent")
    out = tmp_path / "out"
    args = [
        "seed", str(torrent), "--data", str(content.root), "--bind", SHOAL_SEED_IP,
        "--port", "0", "--bootstrap", "", *(["--encryption", "require"] if forced else []),
    ]  # fmt: skip
    async with dht_router() as router:
        args[args.index("")] = hostport(router)
        async with shoal_process(args, tmp_path / "seeder") as shoal:
            await shoal.wait_record("progress", lambda r: r["state"] == "seeding")
            await wait_announced(router)
            with lt_session(LT_LEECH_IP, router, forced_encryption=forced) as ses:
                handle = lt_leech(ses, content.magnet, out)
                await wait_lt_seeding(handle)
                # Either side may dial first (shoal's own lookup finds the leecher too).
                await shoal.wait_record("peer", lambda r: r["host"] == LT_LEECH_IP)
    content.assert_identical(out)
    if forced:
        _assert_encrypted(shoal, LT_LEECH_IP, encrypted=True)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
async def test_stop_then_rerun_resumes(tmp_path: Path, sig: signal.Signals) -> None:
    """Kill -9 or Ctrl-C mid-download; the same command again keeps the verified pieces."""
    content = make_content(tmp_path / "seed", "payload", [2_000_000], v1_only=True, seed=5)
    total = len(content.files["payload"])
    out, state = tmp_path / "out", tmp_path / "state"
    async with dht_router() as router:
        with lt_session(LT_SEED_IP, router) as ses:
            # ~5 s for the whole file; loopback is "local", exempt from limits by default
            ses.apply_settings(
                {"upload_rate_limit": 400_000, "ignore_limits_on_local_network": False}
            )
            handle = lt_seed(ses, content)
            await wait_lt_seeding(handle)
            await wait_announced(router)
            args = _get_args(content, out, router, "--state-dir", str(state), "--interval", "0.2")
            async with shoal_process(args, tmp_path / "run1") as first:
                record = await first.wait_record(
                    "progress", lambda r: r["pieces_done"] >= r["pieces_total"] // 3 > 0
                )
                await trio.sleep(1.5)  # a resume checkpoint, then stop mid-flight
                first.proc.send_signal(sig)
                with trio.fail_after(3):  # Ctrl-C: "within a second", plus interpreter exit
                    status = await first.wait()
            if sig == signal.SIGINT:
                assert status == 130
                assert first.stderr == "shoal: interrupted; resume data saved\n"
            done_before = record["pieces_done"]
            assert done_before < record["pieces_total"]
            uploaded_before = handle.status().total_payload_upload
            ses.apply_settings({"upload_rate_limit": 0})
            async with shoal_process(args, tmp_path / "run2") as second:
                assert await second.wait() == 0, second.stderr
            uploaded_again = handle.status().total_payload_upload - uploaded_before
    content.assert_identical(out)
    # The rerun says what it found on disk, and its summary counts only what it fetched.
    (resuming,) = second.events("resuming")
    assert resuming["verified"] >= done_before * 32 * 1024
    assert "resuming at" in resuming["text"]
    (complete,) = second.events("complete")
    assert complete["resumed"] == resuming["verified"]
    # The seed sent the remainder only (plus a few in-flight blocks), not the whole file.
    assert uploaded_again <= total - done_before * 32 * 1024 + 256 * 1024
