"""`SyncTracker` (pure): a client that merges every incremental ``sync/maindata``
answer into what it had ends up with exactly the current data; unknown or evicted
rids get a full update; memory is bounded by `KEEP` snapshots."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from shoal.daemon.sync import MainData, SyncTracker

_hashes = st.sampled_from([f"{i:040x}" for i in range(6)])
# Every torrent row has the same keys (as torrents/info rows do); values change.
_value = st.one_of(st.integers(0, 3), st.sampled_from(["a", "b", ""]))
_fields = st.fixed_dictionaries(dict.fromkeys(("state", "progress", "dlspeed", "name"), _value))
_maindata = st.builds(
    MainData,
    torrents=st.dictionaries(_hashes, _fields, max_size=5),
    categories=st.dictionaries(
        st.sampled_from(["tv", "music", "x"]),
        st.fixed_dictionaries({"savePath": st.sampled_from(["", "/a", "/b"])}),
        max_size=3,
    ),
    tags=st.lists(st.sampled_from(["t1", "t2", "t3"]), unique=True).map(tuple),
    server_state=st.fixed_dictionaries(
        {"dl_info_speed": st.integers(0, 3), "dht_nodes": st.integers(0, 2)}
    ),
)


def _apply(have: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """What a web UI does with an answer (VueTorrent's merge, in short)."""
    if answer.get("full_update"):
        return {
            "torrents": {h: dict(t) for h, t in answer["torrents"].items()},
            "categories": dict(answer["categories"]),
            "tags": list(answer["tags"]),
            "server_state": dict(answer["server_state"]),
        }
    for h, diff in answer.get("torrents", {}).items():
        have["torrents"].setdefault(h, {}).update(diff)
    for h in answer.get("torrents_removed", []):
        del have["torrents"][h]
    have["categories"].update(answer.get("categories", {}))
    for name in answer.get("categories_removed", []):
        del have["categories"][name]
    have["tags"] += answer.get("tags", [])
    have["tags"] = [t for t in have["tags"] if t not in answer.get("tags_removed", [])]
    have["server_state"].update(answer.get("server_state", {}))
    return have


def _as_client_sees(data: MainData) -> dict[str, Any]:
    return {
        "torrents": data.torrents,
        "categories": data.categories,
        "tags": list(data.tags),
        "server_state": data.server_state,
    }


@given(st.lists(_maindata, min_size=1, max_size=8))
def test_merging_incremental_answers_reproduces_the_data(states: list[MainData]) -> None:
    tracker = SyncTracker()
    have: dict[str, Any] = {}
    rid = 0
    for data in states:
        answer = tracker.answer(rid, data)
        assert answer["rid"] > rid
        assert answer.get("full_update", False) == (rid == 0)
        have = _apply(have, answer)
        assert sorted(have["tags"]) == sorted(data.tags)  # a set: order is the UI's
        have["tags"] = list(data.tags)
        assert have == _as_client_sees(data)
        rid = answer["rid"]


def test_unchanged_data_gives_an_empty_delta_and_unknown_rids_a_full_update() -> None:
    data = MainData({"a" * 40: {"state": "stalledUP"}}, {}, ("t",), {"dht_nodes": 1})
    tracker = SyncTracker(keep=2)
    first = tracker.answer(0, data)
    assert tracker.answer(first["rid"], data) == {"rid": first["rid"] + 1}
    assert tracker.answer(12345, data)["full_update"] is True
    for _ in range(5):
        tracker.answer(0, data)
    assert tracker.statistics() == 2  # bounded
    assert tracker.answer(first["rid"], data)["full_update"] is True  # evicted


@given(st.integers(), _maindata)
def test_any_rid_is_answered(rid: int, data: MainData) -> None:
    answer = SyncTracker().answer(rid, data)
    assert answer["full_update"] is True
