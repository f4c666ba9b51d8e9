"""Settings applied by restarting a torrent in place (file priorities, recheck), piece
states and hashes, preferences, and that all of it is in the database."""

from __future__ import annotations

import hashlib
import json
import random
from typing import TYPE_CHECKING

from shoal.create import create_torrent
from shoal.metainfo import parse_metainfo
from shoal.net.bandwidth import torrent_channels

from .helpers import PASSWORD, poll, web_daemon

if TYPE_CHECKING:
    from pathlib import Path

    import requests

    from .helpers import Web


def _info(web: Web) -> dict[str, object]:
    return web.session.get(web.url + "/api/v2/torrents/info", timeout=30).json()[0]


async def test_file_priority_recheck_pieces_and_preferences(tmp_path: Path) -> None:
    async with web_daemon(tmp_path) as web:
        data = web.download_dir / "pair"
        data.mkdir()
        rng = random.Random(4)
        (data / "a.bin").write_bytes(rng.randbytes(64 * 1024))
        (data / "b.bin").write_bytes(rng.randbytes(64 * 1024))
        raw = create_torrent(data, piece_length=16384)
        meta = parse_metainfo(raw)
        h = meta.info_hash.hex()
        upload = {"torrents": ("pair.torrent", raw, "application/x-bittorrent")}
        assert (await web.post("torrents/add", files=upload)).text == "Ok."
        await poll("checked", lambda: _info(web)["progress"] == 1.0)

        states = (await web.get("torrents/pieceStates", params={"hash": h})).json()
        assert states == [2] * meta.info.num_pieces
        hashes = (await web.get("torrents/pieceHashes", params={"hash": h})).json()
        assert hashes[0] == hashlib.sha1((data / "a.bin").read_bytes()[:16384]).hexdigest()

        # Priority 0 on file b: the torrent restarts with only file a selected.
        prio = await web.post("torrents/filePrio", data={"hash": h, "id": "1", "priority": "0"})
        assert prio.status_code == 200
        files = (await web.get("torrents/files", params={"hash": h})).json()
        assert [f["priority"] for f in files] == [1, 0]
        await poll("re-checked", lambda: _info(web)["progress"] == 1.0)
        info = (await web.get("torrents/info")).json()[0]
        assert info["size"] == 64 * 1024  # only the selected file counts
        bad = await web.post("torrents/filePrio", data={"hash": h, "id": "2", "priority": "1"})
        assert bad.status_code == 409
        bad = await web.post("torrents/filePrio", data={"hash": h, "id": "0", "priority": "3"})
        assert bad.status_code == 400

        # Recheck hashes everything again: a damaged piece is found.
        with (data / "a.bin").open("r+b") as f:
            f.write(b"\0" * 10)
        assert (await web.post("torrents/recheck", data={"hashes": h})).status_code == 200
        await poll("recheck", lambda: _info(web)["state"] not in ("checkingDL", "checkingUP"))
        states = (await web.get("torrents/pieceStates", params={"hash": h})).json()
        assert states[0] == 0
        assert states[1] == 2

        # Per-torrent rate limits reach the torrent's own limiter channels at once.
        for endpoint, limit in (("setDownloadLimit", 100_000), ("setUploadLimit", 50_000)):
            answer = await web.post(f"torrents/{endpoint}", data={"hashes": h, "limit": limit})
            assert answer.status_code == 200
        down, up = torrent_channels(meta.info_hash)
        bandwidth = web.running.daemon.client.bandwidth
        assert bandwidth is not None
        limiter = bandwidth.limiter
        assert (limiter.rate(down), limiter.rate(up)) == (100_000, 50_000)
        assert (await web.get("torrents/downloadLimit", params={"hashes": h})).json() == {
            h: 100_000
        }
        assert (await web.post("torrents/setUploadLimit", data={"hashes": h, "limit": 0})).ok
        assert limiter.rate(up) is None

        prefs = {"max_ratio_enabled": True, "max_ratio": 1.5, "unknown_key": 1}
        answer = await web.post("app/setPreferences", data={"json": json.dumps(prefs)})
        assert answer.status_code == 200
        got = (await web.get("app/preferences")).json()
        assert (got["max_ratio_enabled"], got["max_ratio"]) == (True, 1.5)
        assert "unknown_key" not in got
        stored = await web.running.daemon.store.prefs()
        assert stored["max_ratio"] == 1.5
        (row,) = await web.running.daemon.store.torrents()
        assert row.file_prio == [1, 0]

        # A new password works at the next login; the old one does not.
        new = json.dumps({"web_ui_password": "another one"})
        assert (await web.post("app/setPreferences", data={"json": new})).status_code == 200
        old = await web.post("auth/login", data={"username": "admin", "password": PASSWORD})
        assert old.text == "Fails."
        fresh = await web.post("auth/login", data={"username": "admin", "password": "another one"})
        assert fresh.text == "Ok."


async def test_a_seed_past_its_ratio_limit_is_paused(tmp_path: Path) -> None:
    async with web_daemon(tmp_path) as web:
        data = web.download_dir / "done"
        data.mkdir()
        (data / "x.bin").write_bytes(random.Random(5).randbytes(20_000))
        raw = create_torrent(data, piece_length=16384)
        h = parse_metainfo(raw).info_hash.hex()
        upload = {"torrents": ("done.torrent", raw, "application/x-bittorrent")}
        assert (await web.post("torrents/add", files=upload)).text == "Ok."
        await poll("seeding", lambda: _info(web)["progress"] == 1.0)
        assert _state(await web.get("torrents/info")) == "stalledUP"
        # -1 (no limit) keeps it seeding; a ratio limit of 0 is reached at once.
        limits = {"hashes": h, "ratioLimit": "-1", "seedingTimeLimit": "-1"}
        assert (await web.post("torrents/setShareLimits", data=limits)).status_code == 200
        assert _state(await web.get("torrents/info")) == "stalledUP"
        limits["ratioLimit"] = "0"
        assert (await web.post("torrents/setShareLimits", data=limits)).status_code == 200
        assert _state(await web.get("torrents/info")) == "pausedUP"
        (row,) = await web.running.daemon.store.torrents()
        assert (row.paused, row.ratio_limit) == (True, 0.0)


def _state(answer: requests.Response) -> str:
    return str(answer.json()[0]["state"])


async def test_force_start_resumes_and_a_plain_resume_clears_it(tmp_path: Path) -> None:
    """shoal has no queue: force start resumes a paused torrent and reports it forced
    (``forcedUP``); a plain resume clears the mark, as in qBittorrent."""
    async with web_daemon(tmp_path) as web:
        data = web.download_dir / "forced"
        data.mkdir()
        (data / "x.bin").write_bytes(random.Random(6).randbytes(20_000))
        raw = create_torrent(data, piece_length=16384)
        h = parse_metainfo(raw).info_hash.hex()
        upload = {"torrents": ("forced.torrent", raw, "application/x-bittorrent")}
        added = await web.post("torrents/add", files=upload, data={"paused": "true"})
        assert added.text == "Ok."
        (row,) = await web.running.daemon.store.torrents()
        assert row.paused
        assert (await web.post("torrents/setForceStart", data={"hashes": h, "value": "true"})).ok
        await poll("forced", lambda: _info(web)["state"] == "forcedUP")
        (row,) = await web.running.daemon.store.torrents()
        assert (row.paused, row.force_start) == (False, True)
        assert web.running.daemon.client.torrents()[0].state.name == "SEEDING"
        assert (await web.post("torrents/pause", data={"hashes": h})).ok
        assert _state(await web.get("torrents/info")) == "pausedUP"
        assert (await web.post("torrents/resume", data={"hashes": h})).ok
        assert _state(await web.get("torrents/info")) == "stalledUP"
        (row,) = await web.running.daemon.store.torrents()
        assert (row.paused, row.force_start) == (False, False)
