"""`shoal dht get` prints bencoded values as JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.cli import main
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


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--cas", "-1"], "--cas: must be from 0"),
        (["--cas", str(2**63 - 1)], "--cas: must be from 0"),
        (["--cas", "x"], "--cas: not a sequence number"),
        (["--keep-interval", "0"], "--keep-interval: must be between"),
    ],
)
def test_put_option_values_are_checked(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dht", "put", "v", "--key", "k", *argv]) == 2
    assert needle in capsys.readouterr().err


def test_cas_without_key_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    # Refused before the put: the node (loopback only) never sends one.
    argv = ["dht", "put", "v", "--cas", "1", "--bind", "127.0.0.1", "--bootstrap", "127.0.0.1:9"]
    assert main(argv) == 1
    assert "--cas needs --key" in capsys.readouterr().err
