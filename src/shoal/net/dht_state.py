"""The DHT state file: our node ID and the nodes worth calling again, as JSON.

Written by `DHTService` (periodically and on exit, in a worker thread) and read by
`open_dht_node` at start. One file holds every address family of a dual-stack node:
each node entry's ``ip`` says its family, so the format is the same as before dual
stack and old files load unchanged. Loading is total over any file contents and never
resolves names (addresses must be IP literals).

BEP 42 ties a node ID to the node's external address, so the engines of a dual-stack
node may adopt different IDs (one per family, each once its external address is
voted in). ``family_ids`` (``{"ipv4": hex, "ipv6": hex}``) keeps them; ``node_id`` is
still the first family's, so files without ``family_ids`` load as before.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import TYPE_CHECKING, Final

from .._atomic import write_atomic
from ..errors import DecodeError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from ..dht.compact import Addr

__all__ = ["MAX_STATE_FILE", "MAX_STATE_NODES", "load_family_ids", "load_state", "save_state"]

_STATE_VERSION: Final = 1


def save_state(
    path: Path,
    node_id: bytes,
    nodes: Iterable[tuple[bytes, Addr]],
    family_ids: Mapping[str, bytes] | None = None,
) -> None:
    """Write our node ID and nodes as JSON, crash-safely (`shoal._atomic`); blocking.

    `family_ids`: each address family's node ID (``"ipv4"``/``"ipv6"``), see above.
    """
    doc: dict[str, object] = {
        "version": _STATE_VERSION,
        "node_id": node_id.hex(),
        "nodes": [{"id": nid.hex(), "ip": ip, "port": port} for nid, (ip, port) in nodes],
    }
    if family_ids:
        doc["family_ids"] = {family: nid.hex() for family, nid in family_ids.items()}
    write_atomic(Path(path), json.dumps(doc, indent=1).encode())


#: A state file holds one node ID and at most a few hundred nodes; anything far larger is
#: not ours, and refusing it early bounds the memory a corrupt file can cost.
MAX_STATE_FILE: Final = 4 * 1024 * 1024
MAX_STATE_NODES: Final = 10_000


def load_state(path: Path) -> tuple[bytes, list[tuple[bytes, Addr]]] | None:
    """Read a state file; None if it does not exist. Raises `DecodeError` if it is corrupt.

    Total over any file contents: the file may be half-written by a killed run, from
    another version, or hand-edited. Addresses must be IP literals, so that loading a
    state file can never cause a DNS lookup.
    """
    loaded = _load(path)
    return None if loaded is None else loaded[:2]


def load_family_ids(path: Path) -> dict[str, bytes]:
    """Each address family's node ID (``"ipv4"``/``"ipv6"``) from a state file; empty
    if the file is missing or predates them. Raises `DecodeError` if it is corrupt."""
    loaded = _load(path)
    return {} if loaded is None else loaded[2]


def _load(path: Path) -> tuple[bytes, list[tuple[bytes, Addr]], dict[str, bytes]] | None:
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    try:
        if len(raw) > MAX_STATE_FILE:
            raise ValueError(f"larger than {MAX_STATE_FILE} bytes")
        doc = json.loads(raw.decode("utf-8"))
        node_id, nodes = _parse_state(doc)
        return node_id, nodes, _parse_family_ids(doc)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise DecodeError(f"corrupt DHT state file {path}: {exc}") from exc


def _parse_family_ids(doc: dict[str, object]) -> dict[str, bytes]:
    ids = doc.get("family_ids", {})
    if not isinstance(ids, dict) or not set(ids) <= {"ipv4", "ipv6"}:
        raise TypeError("'family_ids' must map 'ipv4'/'ipv6' to node ids")
    return {family: _hex20(value) for family, value in ids.items()}


def _parse_state(doc: object) -> tuple[bytes, list[tuple[bytes, Addr]]]:
    if not isinstance(doc, dict):
        raise TypeError("not a JSON object")
    if doc.get("version") != _STATE_VERSION or isinstance(doc.get("version"), bool):
        raise ValueError(f"unsupported DHT state version {doc.get('version')!r}")
    node_id = _hex20(doc.get("node_id"))
    entries = doc.get("nodes")
    if not isinstance(entries, list) or len(entries) > MAX_STATE_NODES:
        raise TypeError(f"'nodes' must be a list of at most {MAX_STATE_NODES} entries")
    nodes: list[tuple[bytes, Addr]] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise TypeError("a node entry is not an object")
        ip, port = entry.get("ip"), entry.get("port")
        if not isinstance(ip, str):
            raise TypeError("a node's 'ip' must be a string")
        ip = str(ipaddress.ip_address(ip))  # ValueError for host names and junk
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ValueError(f"bad port {port!r}")
        nodes.append((_hex20(entry.get("id")), (ip, port)))
    return node_id, nodes


def _hex20(value: object) -> bytes:
    if not isinstance(value, str) or len(value) != 40:
        raise ValueError("a node id must be 40 hex digits")
    return bytes.fromhex(value)
