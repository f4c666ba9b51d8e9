"""``torrents/info`` selection (`qbt.filter_views`): status filters, category and tag
(empty string = none), hashes, sort (numbers and text), reverse, offset and limit."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.daemon.qbt import filter_views


def _row(h: str, state: str, *, progress: float = 0.5, dl: int = 0, up: int = 0,
         category: str = "", tags: str = "", name: str = "x") -> dict[str, Any]:  # fmt: skip
    return {"hash": h, "state": state, "progress": progress, "dlspeed": dl, "upspeed": up,
            "category": category, "tags": tags, "name": name, "size": int(h, 16)}  # fmt: skip


ROWS = [
    _row("1", "downloading", dl=10, category="tv", tags="a, b", name="Beta"),
    _row("2", "stalledUP", progress=1.0, category="tv", name="alpha"),
    _row("3", "pausedDL", tags="b", name="gamma"),
    _row("4", "uploading", progress=1.0, up=5, name="Delta"),
    _row("5", "metaDL", progress=0.0, name="eps"),
    _row("6", "error", name="zeta"),
]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("all", "123456"),
        ("downloading", "135"),
        ("seeding", "24"),
        ("completed", "24"),
        ("paused", "3"),
        ("stopped", "3"),
        ("resumed", "12456"),
        ("running", "12456"),
        ("active", "14"),
        ("inactive", "2356"),
        ("stalled", "2"),
        ("stalled_uploading", "2"),
        ("stalled_downloading", ""),
        ("errored", "6"),
    ],
)
def test_status_filters(status: str, expected: str) -> None:
    assert "".join(r["hash"] for r in filter_views(ROWS, status=status)) == expected


def test_category_tag_hashes_sort_and_paging() -> None:
    def hashes(**kw: Any) -> str:
        return "".join(r["hash"] for r in filter_views(ROWS, **kw))

    assert hashes(category="tv") == "12"
    assert hashes(category="") == "3456"
    assert hashes(tag="b") == "13"
    assert hashes(tag="") == "2456"
    assert hashes(hashes={"2", "5", "9"}) == "25"
    assert hashes(sort="name") == "214536"  # case-insensitive text
    assert hashes(sort="dlspeed", reverse=True)[0] == "1"
    assert hashes(sort="size", reverse=True, offset=1, limit=2) == "54"
    assert hashes(offset=-2) == "56"
    assert hashes(sort="no_such_field") == "123456"
    with pytest.raises(ValueError, match="unknown filter"):
        filter_views(ROWS, status="sideways")


@given(st.integers(-10, 10), st.integers(-3, 10), st.booleans())
def test_paging_is_a_slice_of_the_sorted_rows(offset: int, limit: int, reverse: bool) -> None:
    everything = filter_views(ROWS, sort="size", reverse=reverse)
    page = filter_views(ROWS, sort="size", reverse=reverse, offset=offset, limit=limit)
    start = max(len(ROWS) + offset, 0) if offset < 0 else offset
    stop = start + limit if limit > 0 else None
    assert page == everything[start:stop]
