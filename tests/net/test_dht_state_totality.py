"""`load_state` is total: any file contents give a state or `DecodeError`, nothing else.

The state file is local, but it is written by a previous run that may have been killed,
by another version, or by a user's editor; its docstring promises `DecodeError` for a
corrupt file, and `shoal dht` turns exactly that into a one-line error. The holes once found
are pinned as regression cases.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.errors import DecodeError
from shoal.net.dht_service import load_state

if TYPE_CHECKING:
    from pathlib import Path

ID = "11" * 20


def state(**node: object) -> bytes:
    entry = {"id": ID, "ip": "1.2.3.4", "port": 6881, **node}
    return json.dumps({"version": 1, "node_id": "00" * 20, "nodes": [entry]}).encode()


def check_total(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        result = load_state(path)
    except DecodeError:
        return
    assert result is not None
    node_id, nodes = result
    assert len(node_id) == 20
    for nid, (ip, port) in nodes:
        assert len(nid) == 20
        assert isinstance(ip, str)
        assert isinstance(port, int)
        assert 0 < port < 65536


def test_a_good_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "dht.json"
    path.write_bytes(state())
    assert load_state(path) == (bytes(20), [(bytes.fromhex(ID), ("1.2.3.4", 6881))])


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{}",
        b"[]",
        b'"text"',
        b"null",
        json.dumps({"version": 2, "node_id": "00" * 20, "nodes": []}).encode(),
        json.dumps({"version": 1, "node_id": "00" * 19, "nodes": []}).encode(),
        json.dumps({"version": 1, "node_id": "00" * 20, "nodes": {"a": 1}}).encode(),
        state(port=0),
        state(port=70000),
        state(port=float("nan")),
        state(port="x"),
        state(id="zz"),
    ],
)
def test_corrupt_files_are_decode_errors(tmp_path: Path, data: bytes) -> None:
    check_total(tmp_path / "dht.json", data)


FOUND_HOLES = [
    pytest.param(b"\xff\xfe{}", id="not-utf8-UnicodeDecodeError"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, id="deep-json-RecursionError"),
    pytest.param(state().replace(b"6881", b"Infinity"), id="infinite-port-OverflowError"),
]


@pytest.mark.parametrize("data", FOUND_HOLES)
def test_known_holes(tmp_path: Path, data: bytes) -> None:
    check_total(tmp_path / "dht.json", data)


@pytest.mark.parametrize("node", [{"ip": "not an ip"}, {"ip": 7}, {"port": 5.9}])
def test_addresses_are_validated(tmp_path: Path, node: dict[str, object]) -> None:
    # A host name here would even be resolved (DNS traffic) when the node is pinged.
    path = tmp_path / "dht.json"
    path.write_bytes(state(**node))
    with pytest.raises(DecodeError):
        load_state(path)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 70_000) | st.text(max_size=45),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@settings(max_examples=100)
@given(
    version=st.sampled_from([1, 1, 2, "1", None]),
    node_id=st.sampled_from(["00" * 20, "0" * 39, "xx" * 20, 5]),
    nodes=st.lists(
        st.fixed_dictionaries(
            {"id": st.sampled_from([ID, "1", 3]), "ip": json_values, "port": json_values}
        )
        | json_values,
        max_size=4,
    ),
)
def test_structured_garbage_is_a_state_or_a_decode_error(
    tmp_path_factory: pytest.TempPathFactory, version: object, node_id: object, nodes: object
) -> None:
    doc = {"version": version, "node_id": node_id, "nodes": nodes}
    check_total(tmp_path_factory.mktemp("s") / "dht.json", json.dumps(doc).encode())


@settings(max_examples=100)
@given(st.binary(max_size=200))
def test_arbitrary_ascii_is_a_state_or_a_decode_error(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    check_total(tmp_path_factory.mktemp("s") / "dht.json", data)
