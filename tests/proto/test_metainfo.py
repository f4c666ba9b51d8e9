"""Metainfo parsing: validation, path sanitising, round trips and totality."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import PureWindowsPath
from typing import cast

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from shoal.bencoding import Bencoded, decode_dict, encode
from shoal.errors import DecodeError
from shoal.metainfo import (
    MAX_FILES,
    FileEntry,
    build_metainfo,
    check_component,
    parse_info,
    parse_metainfo,
)

KIB = 1024
PL = 16 * KIB


def fake_pieces(total: int, piece_length: int) -> bytes:
    n = -(-total // piece_length)
    return b"".join(hashlib.sha1(i.to_bytes(4, "big")).digest() for i in range(n))


def multi_info(
    files: Sequence[tuple[list[bytes], int] | Mapping[bytes, object]],
    *,
    name: bytes = b"root",
    piece_length: int = PL,
    extra: dict[bytes, Bencoded] | None = None,
) -> dict[bytes, Bencoded]:
    """A multi-file info dict; `files` as (path, length) pairs or ready-made entries."""
    entries: list[Bencoded] = []
    total = 0
    for f in files:
        if isinstance(f, Mapping):
            entry = cast("dict[bytes, Bencoded]", dict(f))  # test data, built here
        else:
            path, length = f
            entry = {b"path": list[Bencoded](path), b"length": length}
        length_v = entry.get(b"length")
        total += length_v if isinstance(length_v, int) else 0
        entries.append(entry)
    info: dict[bytes, Bencoded] = {
        b"name": name,
        b"piece length": piece_length,
        b"pieces": fake_pieces(max(total, 1), piece_length),
        b"files": entries,
    }
    info.update(extra or {})
    return info


def single_info(
    length: int = 40_000, *, name: bytes = b"file.bin", extra: dict[bytes, Bencoded] | None = None
) -> bytes:
    info: dict[bytes, Bencoded] = {
        b"name": name,
        b"piece length": PL,
        b"pieces": fake_pieces(length, PL),
        b"length": length,
    }
    info.update(extra or {})
    return encode(info)


# ---- basic geometry --------------------------------------------------------------------


def test_single_file() -> None:
    raw = single_info(40_000)
    info = parse_info(raw)
    assert info.name == "file.bin"
    assert not info.multi_file
    assert info.files == (FileEntry(("file.bin",), 40_000, 0),)
    assert info.total_length == 40_000
    assert info.num_pieces == 3
    assert [info.piece_size(i) for i in range(3)] == [PL, PL, 40_000 - 2 * PL]
    assert info.piece_hash(2) == fake_pieces(40_000, PL)[40:60]
    assert info.info_hash == hashlib.sha1(raw).digest()
    assert info.raw == raw
    assert not info.private


def test_piece_accessors_reject_out_of_range() -> None:
    info = parse_info(single_info(PL))
    assert info.piece_size(0) == PL
    for bad in (-1, 1):
        with pytest.raises(IndexError):
            info.piece_size(bad)
        with pytest.raises(IndexError):
            info.piece_hash(bad)


def test_multi_file_offsets_and_pad() -> None:
    raw = encode(
        multi_info(
            [
                {b"path": [b"a"], b"length": 100},
                {b"path": [b".pad", b"16284"], b"length": 16284, b"attr": b"p"},
                {b"path": [b"sub", b"b"], b"length": 0},
                {b"path": [b".pad", b"7"], b"length": 7},  # no attr: a real file
                {b"path": [b"sub", b"c"], b"length": 5, b"attr": b"x"},
            ]
        )
    )
    info = parse_info(raw)
    assert info.multi_file
    assert info.files == (
        FileEntry(("root", "a"), 100, 0),
        FileEntry(("root", ".pad", "16284"), 16284, 100, pad=True),
        FileEntry(("root", "sub", "b"), 0, 16384),
        FileEntry(("root", ".pad", "7"), 7, 16384),
        FileEntry(("root", "sub", "c"), 5, 16391),
    )
    assert info.total_length == 16396
    assert info.num_pieces == 2
    assert info.file_offsets == (0, 100, 16384, 16384, 16391)


def test_duplicate_pad_paths_are_fine() -> None:
    pad = {b"path": [b".pad", b"16383"], b"length": 16383, b"attr": b"p"}
    info = parse_info(encode(multi_info([([b"a"], 1), pad, ([b"b"], 1), dict(pad), ([b"c"], 1)])))
    assert [f.pad for f in info.files] == [False, True, False, True, False]


def test_private_flag() -> None:
    assert parse_info(single_info(extra={b"private": 1})).private
    assert not parse_info(single_info(extra={b"private": 0})).private
    with pytest.raises(DecodeError, match="private"):
        parse_info(single_info(extra={b"private": b"1"}))


def test_utf8_variants_preferred_and_bad_bytes_replaced() -> None:
    raw = encode(
        multi_info(
            [{b"path": [b"\xff\xfe"], b"path.utf-8": ["é".encode()], b"length": 1}],
            extra={b"name.utf-8": "名前".encode()},
        )
    )
    assert parse_info(raw).files[0].path == ("名前", "é")
    info = parse_info(single_info(name=b"caf\xe9.txt"))
    assert info.name == "caf\ufffd.txt"


def test_non_canonical_info_hashes_as_given() -> None:
    # Keys out of order: other clients hash the bytes as they are, so must we.
    canonical = single_info(PL)
    top = decode_dict(canonical)
    body = b"".join(encode(k) + encode(top[k]) for k in sorted(top, reverse=True))
    raw = b"d" + body + b"e"
    assert raw != canonical
    info = parse_info(raw)
    assert info.info_hash == hashlib.sha1(raw).digest()
    torrent = b"d4:info" + raw + b"e"
    assert parse_metainfo(torrent).info_hash == info.info_hash
    rebuilt = build_metainfo(raw, comment="kept verbatim")
    assert raw in rebuilt
    assert parse_metainfo(rebuilt).info_hash == info.info_hash


# ---- validation ------------------------------------------------------------------------


@pytest.mark.parametrize("piece_length", [0, -PL, 8 * KIB, 3 * PL, PL + 1, 128 * KIB * KIB])
def test_bad_piece_length(piece_length: int) -> None:
    info = decode_dict(single_info(PL))
    info[b"piece length"] = piece_length
    with pytest.raises(DecodeError, match="piece length"):
        parse_info(encode(info))


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.update({b"pieces": d[b"pieces"] + b"x"}), "multiple of 20"),
        (lambda d: d.update({b"pieces": d[b"pieces"] + b"x" * 20}), "piece hashes"),
        (lambda d: d.update({b"pieces": b""}), "piece hashes"),
        (lambda d: d.update({b"length": 0, b"pieces": b""}), "no data"),
        (lambda d: d.update({b"length": -1}), "negative"),
        (lambda d: d.update({b"files": []}), "exactly one"),
        (lambda d: d.pop(b"length"), "exactly one"),
        (lambda d: d.pop(b"name"), "name"),
        (lambda d: d.update({b"name": 5}), "name"),
        (lambda d: d.update({b"length": b"5"}), "length"),
        (lambda d: d.update({b"pieces": 1}), "pieces"),
    ],
)
def test_single_file_validation(mutate: object, match: str) -> None:
    info = decode_dict(single_info(40_000))
    assert callable(mutate)
    mutate(info)
    with pytest.raises(DecodeError, match=match):
        parse_info(encode(info))


@pytest.mark.parametrize(
    ("files", "match"),
    [
        ([], "empty"),
        ([5], "dict"),
        ([{b"path": [b"a"]}], "length"),
        ([{b"path": [b"a"], b"length": -1}], "negative"),
        ([{b"length": 1}], "path"),
        ([{b"path": [], b"length": 1}], "empty path"),
        ([{b"path": [b"a", 1], b"length": 1}], "components"),
        ([{b"path": b"a", b"length": 1}], "list"),
        ([{b"path": [b"a"], b"length": 1, b"attr": 1}], "attr"),
        ([{b"path": [b"a"], b"length": 0}], "no data"),
    ],
)
def test_multi_file_validation(files: list[Bencoded], match: str) -> None:
    info = multi_info([([b"x"], 1)])
    info[b"files"] = files
    with pytest.raises(DecodeError, match=match):
        parse_info(encode(info))


def test_absurd_lengths_fail_fast() -> None:
    # A 10^30-byte claim needs ~10^26 piece hashes; the mismatch is found by arithmetic.
    with pytest.raises(DecodeError, match="piece hashes"):
        parse_info(single_info(extra={b"length": 10**30}))
    info = multi_info([([b"a"], 1)])
    info[b"files"] = [{b"path": [b"a"], b"length": 10**30}, {b"path": [b"b"], b"length": 1}]
    with pytest.raises(DecodeError, match="piece hashes"):
        parse_info(encode(info))


def test_file_count_cap() -> None:
    info = multi_info([([b"x"], 1)])
    info[b"files"] = [{b"path": [b"f%d" % i], b"length": 0} for i in range(MAX_FILES + 1)]
    with pytest.raises(DecodeError, match="more than"):
        parse_info(encode(info))


def test_v2_only_refused_hybrid_accepted() -> None:
    v2: dict[bytes, Bencoded] = {
        b"name": b"x",
        b"piece length": PL,
        b"meta version": 2,
        b"file tree": {},
    }
    with pytest.raises(DecodeError, match="v2-only"):
        parse_info(encode(v2))
    hybrid = decode_dict(single_info(PL))
    hybrid.update({b"meta version": 2, b"file tree": {b"file.bin": {}}})
    assert parse_info(encode(hybrid)).total_length == PL


# ---- hostile paths ---------------------------------------------------------------------

HOSTILE_COMPONENTS = [
    b"",
    b".",
    b"..",
    b"...",
    b".. ",
    b" ",
    b"a/b",
    b"/etc",
    b"a\\b",
    b"..\\..\\x",
    b"a\x00b",
    b"\x00",
    b"line\nbreak",
    b"C:",
    b"c:evil",
    b"x" * 256,
    "é".encode() * 128,
]


@pytest.mark.parametrize("comp", HOSTILE_COMPONENTS)
def test_hostile_component_in_files(comp: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_info(encode(multi_info([([b"ok", comp, b"f"], 1)])))


@pytest.mark.parametrize("comp", HOSTILE_COMPONENTS)
def test_hostile_name(comp: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_info(single_info(name=comp))
    with pytest.raises(DecodeError):
        parse_info(encode(multi_info([([b"f"], 1)], name=comp)))


@pytest.mark.parametrize("comp", HOSTILE_COMPONENTS)
def test_hostile_utf8_variant_also_checked(comp: bytes) -> None:
    entry = {b"path": [b"fine"], b"path.utf-8": [comp], b"length": 1}
    with pytest.raises(DecodeError):
        parse_info(encode(multi_info([entry])))


def test_long_but_legal_component() -> None:
    assert check_component("x" * 255) == "x" * 255
    assert check_component("é" * 127 + "x") == "é" * 127 + "x"  # 255 bytes
    assert check_component(".hidden") == ".hidden"
    assert check_component("aux.c") == "aux.c"  # Windows-reserved, legal on POSIX


@pytest.mark.parametrize(
    "paths",
    [
        [[b"a"], [b"a"]],
        [[b"d", b"x"], [b"d", b"x"]],
        [[b"a"], [b"a", b"b"]],
        [[b"a", b"b", b"c"], [b"a", b"b"]],
        [[b"\xff"], [b"\xfe"]],  # both decode to U+FFFD
    ],
)
def test_path_collisions(paths: list[list[bytes]]) -> None:
    with pytest.raises(DecodeError, match=r"duplicate|both a file"):
        parse_info(encode(multi_info([(p, 1) for p in paths])))


def test_case_only_difference_allowed() -> None:
    info = parse_info(encode(multi_info([([b"xt_TCPMSS.c"], 1), ([b"xt_tcpmss.c"], 1)])))
    assert len(info.files) == 2


# Components drawn from a hostile alphabet (dots, separators, drive letters, NUL,
# spaces), mixed with benign look-alikes so that plenty of examples are accepted.
_benign = st.sampled_from(["a", "b.txt", ".hidden", "a..b", "x.", "..a", "a:b", "é", "C"])
_nasty = st.text(alphabet=st.sampled_from("./\\:C \x00a\u00e9"), max_size=6)
hostile_text = st.tuples(st.sampled_from([False, False, False, True]), _nasty, _benign).map(
    lambda t: t[1] if t[0] else t[2]
)


@given(
    name=hostile_text,
    paths=st.lists(st.lists(hostile_text, min_size=1, max_size=3), min_size=1, max_size=3),
)
@example(name="a", paths=[["..", "..", "b"]])
@example(name="..", paths=[["b"]])
@example(name="a", paths=[["C:", "x"]])
def test_accepted_paths_stay_inside_target(
    tmp_path_factory: pytest.TempPathFactory, name: str, paths: list[list[str]]
) -> None:
    target = tmp_path_factory.getbasetemp() / "target"
    files = [([c.encode() for c in p], 1) for p in paths]
    try:
        info = parse_info(encode(multi_info(files, name=name.encode())))
    except DecodeError:
        return
    for f in info.files:
        joined = (target.joinpath(*f.path)).resolve()
        assert joined.is_relative_to(target.resolve())
        assert joined != target.resolve()
        win = PureWindowsPath("C:/dl").joinpath(*f.path)
        assert win.is_relative_to(PureWindowsPath("C:/dl"))
        assert win.drive == "C:"
        assert len(win.parts) == 2 + len(f.path)


# ---- round trip ------------------------------------------------------------------------

safe_component = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")).filter(
        lambda c: c not in "/\\"
    ),
    min_size=1,
    max_size=12,
).filter(lambda s: s.strip(". ") != "" and not (len(s) > 1 and s[1] == ":"))


def _no_clash(paths: list[tuple[str, ...]]) -> bool:
    full = set(paths)
    return len(full) == len(paths) and not any(
        p[:i] in full for p in paths for i in range(1, len(p))
    )


@given(
    name=safe_component,
    piece_exp=st.integers(14, 17),
    files=st.lists(
        st.tuples(
            st.lists(safe_component, min_size=1, max_size=3).map(tuple), st.integers(0, 70_000)
        ),
        min_size=1,
        max_size=8,
    ),
    private=st.booleans(),
)
def test_round_trip_multi(
    name: str, piece_exp: int, files: list[tuple[tuple[str, ...], int]], private: bool
) -> None:
    assume(_no_clash([p for p, _ in files]))
    assume(sum(n for _, n in files) > 0)
    extra: dict[bytes, Bencoded] = {b"private": 1} if private else {}
    info_d = multi_info(
        [([c.encode() for c in p], n) for p, n in files],
        name=name.encode(),
        piece_length=1 << piece_exp,
        extra=extra,
    )
    raw = encode(info_d)
    info = parse_info(raw)
    assert info.name == name
    assert info.private == private
    assert info.piece_length == 1 << piece_exp
    assert [(f.path, f.length) for f in info.files] == [((name, *p), n) for p, n in files]
    offsets = [f.offset for f in info.files]
    assert offsets == [sum(n for _, n in files[:i]) for i in range(len(files))]
    assert b"".join(info.piece_hash(i) for i in range(info.num_pieces)) == info_d[b"pieces"]
    assert sum(info.piece_size(i) for i in range(info.num_pieces)) == info.total_length
    # ... and through a whole .torrent built by build_metainfo.
    torrent = build_metainfo(raw, comment="c", created_by="shoal/test", creation_date=7)
    meta = parse_metainfo(torrent)
    assert meta.info == info
    assert (meta.comment, meta.created_by, meta.creation_date) == ("c", "shoal/test", 7)


@given(
    name=safe_component,
    piece_exp=st.integers(14, 26),
    num_pieces=st.integers(1, 3_000),
    tail=st.floats(0, 1, exclude_min=True),
    private=st.sampled_from([None, 0, 1, 2]),
)
def test_round_trip_single(
    name: str, piece_exp: int, num_pieces: int, tail: float, private: int | None
) -> None:
    piece_length = 1 << piece_exp
    length = (num_pieces - 1) * piece_length + max(1, int(tail * piece_length))
    info_d: dict[bytes, Bencoded] = {
        b"name": name.encode(),
        b"piece length": piece_length,
        b"pieces": bytes(range(20)) * num_pieces,
        b"length": length,
    }
    if private is not None:
        info_d[b"private"] = private
    info = parse_info(encode(info_d))
    assert info.files == (FileEntry((name,), length, 0),)
    assert (info.name, info.total_length, info.num_pieces) == (name, length, num_pieces)
    assert info.private == (private == 1)
    assert info.piece_size(num_pieces - 1) == length - (num_pieces - 1) * piece_length
    assert 0 < info.piece_size(num_pieces - 1) <= piece_length


# ---- metainfo top level ----------------------------------------------------------------


def test_metainfo_optional_fields() -> None:
    raw = single_info(PL)
    top: dict[bytes, Bencoded] = {
        b"announce": b"http://127.0.0.1:1/announce",
        b"announce-list": [[b"http://127.0.0.1:1/a", 5], [], [b"udp://127.0.0.1:2"], b"junk"],
        b"nodes": [[b"127.0.0.1", 6881], [b"::1", 6882], [b"bad", 0], [b"x"], 5, [b"h", b"p"]],
        b"comment": b"plain",
        b"comment.utf-8": "ünïcode".encode(),
        b"created by": b"libtorrent",
        b"creation date": 1_700_000_000,
        b"info": decode_dict(raw),
    }
    meta = parse_metainfo(encode(top))
    assert meta.announce == "http://127.0.0.1:1/announce"
    assert meta.announce_list == (("http://127.0.0.1:1/a",), ("udp://127.0.0.1:2",))
    assert meta.nodes == (("127.0.0.1", 6881), ("::1", 6882))
    assert meta.comment == "ünïcode"
    assert meta.created_by == "libtorrent"
    assert meta.creation_date == 1_700_000_000
    assert meta.info_hash == hashlib.sha1(raw).digest()


def test_metainfo_wrongly_typed_optionals_are_ignored() -> None:
    top: dict[bytes, Bencoded] = {
        b"announce": 5,
        b"announce-list": b"x",
        b"nodes": b"x",
        b"comment": [],
        b"creation date": b"today",
        b"info": decode_dict(single_info(PL)),
    }
    meta = parse_metainfo(encode(top))
    assert (meta.announce, meta.announce_list, meta.nodes) == (None, (), ())
    assert (meta.comment, meta.creation_date) == (None, None)


@pytest.mark.parametrize(
    "data", [b"", b"de", b"d4:infoi1ee", b"le", b"d4:infod", b"d4:infodee", b"i1e"]
)
def test_metainfo_without_info(data: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_metainfo(data)


def test_build_metainfo_keeps_info_bytes_and_sorts_keys() -> None:
    raw = single_info(PL)
    torrent = build_metainfo(raw, created_by="me", nodes=[("127.0.0.1", 6881)], creation_date=1)
    assert raw in torrent
    assert torrent == encode(
        {
            b"created by": b"me",
            b"creation date": 1,
            b"info": decode_dict(raw),
            b"nodes": [[b"127.0.0.1", 6881]],
        }
    )
    assert parse_metainfo(torrent).nodes == (("127.0.0.1", 6881),)
    with pytest.raises(DecodeError):
        build_metainfo(b"de")


# ---- totality --------------------------------------------------------------------------

SEED_TORRENT = build_metainfo(
    encode(multi_info([([b"a"], 20_000), ([b"b", b"c"], 30_000)])),
    comment="seed",
    nodes=[("127.0.0.1", 1)],
)


@given(st.binary(max_size=300))
@example(b"d4:infod4:name1:a12:piece lengthi16384e6:pieces0:6:lengthi0eee")
def test_arbitrary_bytes_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        parse_metainfo(data)
    with contextlib.suppress(DecodeError):
        parse_info(data)


@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(SEED_TORRENT)), st.integers(0, 255), st.sampled_from("rid")),
        min_size=1,
        max_size=6,
    )
)
def test_mutated_torrent_only_decode_error(edits: list[tuple[int, int, str]]) -> None:
    data = bytearray(SEED_TORRENT)
    for pos, byte, op in edits:
        pos = min(pos, len(data))
        if op == "r" and pos < len(data):
            data[pos] = byte
        elif op == "i":
            data.insert(pos, byte)
        elif pos < len(data):
            del data[pos]
    try:
        meta = parse_metainfo(bytes(data))
    except DecodeError:
        return
    assert meta.info.total_length > 0


bencode_values = st.recursive(
    st.integers(-(2**70), 2**70) | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.binary(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(
    key=st.sampled_from(
        [b"name", b"piece length", b"pieces", b"length", b"files", b"private", b"name.utf-8"]
    ),
    value=bencode_values,
    file_key=st.sampled_from([b"path", b"length", b"attr", b"path.utf-8"]),
    file_value=bencode_values,
)
def test_ill_typed_fields_only_decode_error(
    key: bytes, value: Bencoded, file_key: bytes, file_value: Bencoded
) -> None:
    info = multi_info([([b"a"], 20_000), ([b"b"], 1)])
    files = info[b"files"]
    assert isinstance(files, list)
    assert isinstance(files[0], dict)
    files[0][file_key] = file_value
    info[key] = value
    with contextlib.suppress(DecodeError):
        parse_info(encode(info))
