"""`shoal dht get` prints bencoded values as JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hypothesis import given
from hypothesis import strategies as st

from shoal.cli.dht_items import json_value

if TYPE_CHECKING:
    from shoal.bencoding import Bencoded

values = st.recursive(
    st.integers() | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.binary(max_size=4), inner),
    max_leaves=8,
)


def test_strings_ints_lists_dicts() -> None:
    value: Bencoded = {b"name": b"x", b"n": 3, b"l": [b"\xff", b"ok"], b"\xfe": b""}
    assert json_value(value) == {"name": "x", "n": 3, "l": [{"hex": "ff"}, "ok"], "fe": ""}


@given(values)
def test_every_value_is_json_serialisable(value: Bencoded) -> None:
    import json

    json.dumps(json_value(value))
