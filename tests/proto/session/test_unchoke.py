"""The quick unchoke never exceeds the upload slots."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shoal.session.unchoke import quick_unchoke


@given(interested=st.lists(st.booleans(), max_size=30), slots=st.integers(0, 8))
def test_quick_unchoke_fills_free_slots_only(interested: list[bool], slots: int) -> None:
    unchoked = 0
    for _ in interested:
        if quick_unchoke(am_choking=True, unchoked=unchoked, max_unchoked=slots):
            unchoked += 1
        assert unchoked <= slots
    assert unchoked == min(slots, len(interested))
    assert not quick_unchoke(am_choking=False, unchoked=0, max_unchoked=slots)
