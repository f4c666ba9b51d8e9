"""The calls Sonarr/Radarr make to a qBittorrent download client, replayed as raw HTTP
(their order and parameters as in Sonarr's QBittorrentProxyV2), with the answers a
real qBittorrent 4.6 gives."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .helpers import PASSWORD, web_daemon

if TYPE_CHECKING:
    from pathlib import Path

HASH = "0123456789abcdef0123456789abcdef01234567"
MAGNET = f"magnet:?xt=urn:btih:{HASH}&dn=Show.S01E01"


async def test_sonarr_session(tmp_path: Path) -> None:
    async with web_daemon(tmp_path, login=False) as web:
        base = web.url
        # 1. Sonarr logs in with a Referer of the client's own URL.
        login = await web.post(
            "auth/login",
            data={"username": "admin", "password": PASSWORD},
            headers={"Referer": base + "/"},
        )
        assert (login.status_code, login.text) == (200, "Ok.")
        assert "SID" in login.cookies
        # 2-4. Version checks and preferences (share limits, queueing).
        assert (await web.get("app/version")).text == "v4.6.7"
        assert (await web.get("app/webapiVersion")).text == "2.9.3"
        prefs = (await web.get("app/preferences")).json()
        for key in ("max_ratio_enabled", "max_ratio", "max_seeding_time_enabled", "dht"):
            assert key in prefs
        assert prefs["queueing_enabled"] is False
        # 5-6. Categories: none yet; Sonarr creates its own.
        assert (await web.get("torrents/categories")).json() == {}
        save = str(web.download_dir / "tv")
        created = await web.post(
            "torrents/createCategory", data={"category": "tv-sonarr", "savePath": save}
        )
        assert created.status_code == 200
        again = await web.post("torrents/createCategory", data={"category": "tv-sonarr"})
        assert again.status_code == 409
        # 7. Add the release by magnet, into the category.
        added = await web.post(
            "torrents/add", data={"urls": MAGNET, "category": "tv-sonarr", "paused": "false"}
        )
        assert (added.status_code, added.text) == (200, "Ok.")
        # 8. Sonarr polls torrents/info filtered by its category.
        info = (await web.get("torrents/info", params={"category": "tv-sonarr"})).json()
        assert [t["hash"] for t in info] == [HASH]
        row = info[0]
        assert row["name"] == "Show.S01E01"
        assert row["save_path"] == save
        assert row["state"] == "metaDL"
        assert row["category"] == "tv-sonarr"
        for key in ("size", "progress", "eta", "ratio", "content_path", "seeding_time"):
            assert key in row
        assert (await web.get("torrents/info", params={"category": "other"})).json() == []
        # 9-10. Properties and files of the release.
        props = (await web.get("torrents/properties", params={"hash": HASH})).json()
        assert props["save_path"] == save
        assert props["seeding_time"] == 0
        assert (await web.get("torrents/files", params={"hash": HASH})).json() == []
        # 11. Re-categorise (post-import category), to an existing category.
        cat = await web.post("torrents/setCategory", data={"hashes": HASH, "category": "tv-sonarr"})
        assert cat.status_code == 200
        missing = await web.post("torrents/setCategory", data={"hashes": HASH, "category": "nope"})
        assert missing.status_code == 409
        # 12. Priority moves need queueing, which qBittorrent then refuses with 409.
        top = await web.post("torrents/topPrio", data={"hashes": HASH})
        assert top.status_code == 409
        # 13. Force start and 14. share limits, reflected in torrents/info.
        assert (
            await web.post("torrents/setForceStart", data={"hashes": HASH, "value": "true"})
        ).status_code == 200
        limits = await web.post(
            "torrents/setShareLimits",
            data={
                "hashes": HASH,
                "ratioLimit": "2",
                "seedingTimeLimit": "60",
                "inactiveSeedingTimeLimit": "-2",
            },
        )
        assert limits.status_code == 200
        row = (await web.get("torrents/info", params={"hashes": HASH})).json()[0]
        assert (row["force_start"], row["max_ratio"], row["max_seeding_time"]) == (True, 2.0, 60)
        # 15. Remove the release once imported (keeping the files).
        deleted = await web.post("torrents/delete", data={"hashes": HASH, "deleteFiles": "false"})
        assert deleted.status_code == 200
        assert (await web.get("torrents/info")).json() == []
        # Unknown hash: 404; an endpoint outside the subset: 404, as qBittorrent.
        assert (await web.get("torrents/properties", params={"hash": HASH})).status_code == 404
        assert (await web.get("search/plugins")).status_code == 404
