"""The DHT state file: JSON round trip, atomic replacement, corrupt files rejected cleanly."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.errors import DecodeError
from shoal.net.dht_service import load_state, save_state

if TYPE_CHECKING:
    from pathlib import Path

ids = st.binary(min_size=20, max_size=20)
addrs = st.tuples(st.ip_addresses(v=4).map(str), st.integers(1, 65535))


@given(node_id=ids, nodes=st.lists(st.tuples(ids, addrs), max_size=30))
def test_round_trip(tmp_path_factory: pytest.TempPathFactory, node_id: bytes, nodes: list) -> None:
    path = tmp_path_factory.mktemp("state") / "dht.json"
    save_state(path, node_id, nodes)
    assert load_state(path) == (node_id, nodes)


def test_missing_file_is_a_cold_start(tmp_path: Path) -> None:
    assert load_state(tmp_path / "nope.json") is None


def test_save_replaces_atomically_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "dht.json"
    path.write_text("old")
    save_state(path, b"\x01" * 20, [(b"\x02" * 20, ("127.0.0.1", 6881))])
    assert [p.name for p in tmp_path.iterdir()] == ["dht.json"]
    assert json.loads(path.read_text())["node_id"] == "01" * 20


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "[]",
        '{"version": 2, "node_id": "", "nodes": []}',
        '{"version": 1, "node_id": "zz", "nodes": []}',
        '{"version": 1, "node_id": "' + "00" * 19 + '", "nodes": []}',
        '{"version": 1, "node_id": "' + "00" * 20 + '", "nodes": [{"id": "00"}]}',
        '{"version": 1, "node_id": "'
        + "00" * 20
        + '", "nodes": [{"id": "'
        + "00" * 20
        + '", "ip": "127.0.0.1", "port": 0}]}',
    ],
)
def test_corrupt_files_raise_decode_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "dht.json"
    path.write_text(text)
    with pytest.raises(DecodeError):
        load_state(path)
