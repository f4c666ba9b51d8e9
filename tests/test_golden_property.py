"""Issue 2's "done when": every torrent shoal creates has the info-hash libtorrent computes.

The golden tests pin a few hand-made trees; this one lets hypothesis make the trees
(nesting, empty files, sizes around piece boundaries, names that sort differently as
text and as bytes) and checks the whole info dict, byte for byte, against libtorrent's
`create_torrent` in v1-only mode for the same files and piece size.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.create import create_torrent
from shoal.metainfo import parse_metainfo

try:
    import libtorrent as lt
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("libtorrent is not installed", allow_module_level=True)

from .test_golden_libtorrent import KIB, assert_same_as_libtorrent, blob, lt_create

# Components that are legal everywhere and, between them, disagree on case, text-vs-bytes
# order and dots; a shared alphabet makes nested directories and name clashes likely.
NAMES = st.sampled_from(["a", "B", "b.txt", "Z", "é", "ü.dat", "_", "x-1", "x.1", "10", "9"])
SIZES = st.one_of(
    st.sampled_from([0, 1, 16 * KIB - 1, 16 * KIB, 16 * KIB + 1, 32 * KIB]),
    st.integers(0, 80_000),
)
TREES = st.dictionaries(
    st.lists(NAMES, min_size=1, max_size=3).map(tuple), SIZES, min_size=1, max_size=6
)


def _is_prefix_clash(paths: list[tuple[str, ...]]) -> bool:
    """A file cannot also be a directory on disk."""
    as_set = set(paths)
    return any(p[:i] in as_set for p in paths for i in range(1, len(p)))


@settings(max_examples=50, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    tree=TREES.filter(lambda t: not _is_prefix_clash(list(t))),
    piece_size=st.sampled_from([16 * KIB, 32 * KIB, 64 * KIB]),
)
def test_any_tree_hashes_like_libtorrent(tree: dict[tuple[str, ...], int], piece_size: int) -> None:
    if sum(tree.values()) == 0:
        return  # nothing to share: shoal refuses (tested in tests/test_create.py)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root dir"
        for parts, size in tree.items():
            path = root.joinpath(*parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(blob("/".join(parts), size))
        ours = create_torrent(root, piece_length=piece_size)
        theirs = lt_create(root, piece_size, lt.create_torrent.v1_only)
    ti_ours, ti_theirs = lt.torrent_info(ours), lt.torrent_info(theirs)
    assert ti_ours.info_section() == ti_theirs.info_section()
    assert parse_metainfo(ours).info_hash == ti_theirs.info_hashes().v1.to_bytes()
    assert_same_as_libtorrent(parse_metainfo(ours), ours)
