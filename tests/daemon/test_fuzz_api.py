"""Totality of the Web API's parameter parsing: any parameters, on any endpoint of the
subset, get an answer below 500 (a one-line 4xx for bad input), never a traceback."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.daemon import api_app, api_torrents

from .helpers import web_daemon

if TYPE_CHECKING:
    from pathlib import Path

HASH = "fedcba9876543210fedcba9876543210fedcba98"
ENDPOINTS = [
    *sorted(
        r.path.removeprefix("/api/v2/")
        for r in (*api_app.routes, *api_torrents.routes)
        if "/auth/" not in r.path
    ),
    "sync/maindata",
]
PARAMS = [
    "hashes", "hash", "urls", "savepath", "savePath", "category", "categories", "tags",
    "paused", "stopped", "sequentialDownload", "deleteFiles", "id", "priority", "limit",
    "offset", "filter", "sort", "reverse", "rid", "ratioLimit", "seedingTimeLimit",
    "inactiveSeedingTimeLimit", "value", "json", "tag",
]  # fmt: skip
_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
VALUES = st.one_of(
    _text,
    st.sampled_from(["all", HASH, f"magnet:?xt=urn:btih:{HASH}", "-1", "0", "7", "1e309",
                     "true", "false", "{}", '{"max_ratio": "x"}', "..", "/", "a|b", ""]),
)  # fmt: skip


async def test_any_parameters_get_an_answer_below_500(tmp_path: Path) -> None:
    async with web_daemon(tmp_path) as web:

        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.sampled_from(ENDPOINTS), st.dictionaries(st.sampled_from(PARAMS), VALUES))
        def check(endpoint: str, params: dict[str, str]) -> None:
            answer = web.session.post(web.url + "/api/v2/" + endpoint, data=params, timeout=30)
            assert answer.status_code < 500, (endpoint, params, answer.text)
            if answer.status_code >= 400:
                assert "Traceback" not in answer.text
                assert len(answer.text.strip().splitlines()) <= 1

        await trio.to_thread.run_sync(check)
