"""Property: ``shoal create`` then ``shoal info --json`` describe exactly the tree on disk,
and libtorrent computes the same info-hash and piece hashes from the written file."""

from __future__ import annotations

import hashlib
import io
import json
import random
import sys
import tempfile
from pathlib import Path

import libtorrent as lt
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shoal.cli import main
from shoal.metainfo import parse_metainfo

from .helpers import write_tree

_names = st.text(alphabet="abcxyz019_-.", min_size=1, max_size=6).filter(
    lambda s: s.strip(".") != ""
)
_paths = st.lists(_names, min_size=1, max_size=3).map("/".join)
_trees = st.dictionaries(_paths, st.integers(0, 70_000), min_size=1, max_size=6)


def _consistent(tree: dict[str, int]) -> bool:
    """No path is also used as a directory of another path."""
    dirs = {"/".join(p.split("/")[:i]) for p in tree for i in range(1, p.count("/") + 1)}
    return not dirs & set(tree) and sum(tree.values()) > 0


def _torrent_order(contents: dict[str, bytes]) -> list[str]:
    """Files sorted by path components (how shoal.create orders them), not as strings."""
    return sorted(contents, key=lambda p: p.split("/"))


def _main_json(argv: list[str]) -> dict[str, object]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "stdout", out)
        mp.setattr(sys, "stderr", err)
        status = main(argv)
    assert status == 0, err.getvalue()
    obj = json.loads(out.getvalue())
    assert isinstance(obj, dict)
    return obj


@settings(max_examples=15)
@given(
    tree=_trees,
    piece_size=st.sampled_from([None, "16K", "32K"]),
    single=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_create_info_and_libtorrent_agree(
    tree: dict[str, int], piece_size: str | None, single: bool, seed: int
) -> None:
    assume(_consistent(tree))
    rng = random.Random(seed)
    contents = {path: rng.randbytes(size) for path, size in sorted(tree.items())}
    with tempfile.TemporaryDirectory() as tmp:
        root = write_tree(Path(tmp) / "root", contents)
        biggest = max(sorted(contents), key=lambda p: len(contents[p]))
        source = root / biggest if single else root
        out = Path(tmp) / "t.torrent"
        argv = ["create", str(source), "-o", str(out), "--json"]
        created = _main_json(argv + (["--piece-size", piece_size] if piece_size else []))
        shown = _main_json(["info", str(out), "--json", "--all"])

        if single:
            expected = [(source.name, len(contents[biggest]))]
        else:
            expected = [("root/" + p, len(contents[p])) for p in _torrent_order(contents)]
        files = shown["files"]
        assert isinstance(files, list)
        assert [(f["path"], f["size"]) for f in files] == expected
        assert created["info_hash"] == shown["info_hash"]
        assert shown["total_size"] == sum(size for _, size in expected)

        ti = lt.torrent_info(str(out))
        assert shown["info_hash"] == str(ti.info_hashes().v1)
        meta = parse_metainfo(out.read_bytes())
        if single:
            data = contents[biggest]
        else:
            data = b"".join(contents[p] for p in _torrent_order(contents))
        step = meta.info.piece_length
        digests = [hashlib.sha1(data[i : i + step]).digest() for i in range(0, len(data), step)]
        assert meta.info.piece_hashes == b"".join(digests)
        assert [bytes(ti.hash_for_piece(i)) for i in range(ti.num_pieces())] == digests
