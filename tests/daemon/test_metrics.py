"""``/metrics`` parsed by prometheus-client's own parser: per-torrent and session
families with standard names, and the same access rules as the API (plus Basic auth)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from prometheus_client.parser import text_string_to_metric_families

from shoal.create import create_torrent

from .helpers import PASSWORD, poll, web_daemon

if TYPE_CHECKING:
    from pathlib import Path


async def test_metrics_parse_and_describe_the_session(tmp_path: Path) -> None:
    async with web_daemon(tmp_path) as web:
        data = web.download_dir / "photos"
        data.mkdir()
        (data / "a.jpg").write_bytes(random.Random(1).randbytes(70_000))
        torrent = create_torrent(data, piece_length=16384)
        upload = {"torrents": ("photos.torrent", torrent, "application/x-bittorrent")}
        added = await web.post("torrents/add", files=upload)
        assert added.text == "Ok."
        # The data is already there: the check finds every piece and it seeds.
        await poll(
            "seeding",
            lambda: web.session.get(web.url + "/api/v2/torrents/info").json()[0]["progress"] == 1.0,
        )
        await web.post("auth/login", data={"username": "admin", "password": "wrong"})

        web.session.cookies.clear()
        assert (await web.get("/metrics")).status_code == 403
        wrong = await web.get("/metrics", auth=("admin", "wrong"))
        assert wrong.status_code == 403
        answer = await web.get("/metrics", auth=("admin", PASSWORD))
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain; version=")
        families = {f.name: f for f in text_string_to_metric_families(answer.text)}

        h = next(iter(web.running.daemon.hashes()))

        def sample(metric: str, **labels: str) -> float:
            for family in families.values():
                for s in family.samples:
                    if s.name == metric and all(s.labels.get(k) == v for k, v in labels.items()):
                        return float(s.value)
            raise AssertionError(f"no sample {metric} {labels}")

        assert families["shoal_torrent_downloaded_bytes"].type == "counter"
        assert families["shoal_torrent_peers"].type == "gauge"
        assert sample("shoal_torrent_state", info_hash=h, state="stalled") == 1.0
        assert sample("shoal_torrent_state", info_hash=h, state="downloading") == 0.0
        assert sample("shoal_torrent_progress_ratio", info_hash=h, name="photos") == 1.0
        assert sample("shoal_torrent_size_bytes", info_hash=h) == 70_000
        assert sample("shoal_torrent_uploaded_bytes_total", info_hash=h) == 0
        assert sample("shoal_torrents") == 1
        assert sample("shoal_peer_connections") == 0
        assert sample("shoal_hash_failures_total") == 0
        assert sample("shoal_webui_bans_total") == 0
        for name in ("shoal_dht_nodes", "shoal_dht_queries_received", "shoal_peer_bans"):
            assert name in families
