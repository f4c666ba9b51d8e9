"""``shoal info``, in process: text and JSON reports for .torrent files and magnet links."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shoal.cli.sources
from shoal.bencoding import decode_dict, encode
from shoal.cli import main
from shoal.magnet import parse_magnet

from .helpers import make_torrent

HASH = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
TORRENT_KEYS = {
    "type",
    "name",
    "info_hash",
    "total_size",
    "piece_length",
    "num_pieces",
    "private",
    "multi_file",
    "files",
    "comment",
    "created_by",
    "creation_date",
    "trackers",
    "nodes",
    "magnet",
}
MAGNET_KEYS = {"type", "name", "info_hash", "trackers", "peers", "select_only", "magnet"}
FILES = [
    (["a.bin"], 1000, False),
    ([".pad", "15384"], 15384, True),
    (["sub", "b.txt"], 20000, False),
]


def _info_hash(data: bytes) -> str:
    raw = encode(decode_dict(data)[b"info"])
    return hashlib.sha1(raw).hexdigest()


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, object]:
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    obj = json.loads(captured.out)
    assert isinstance(obj, dict)
    return obj


@pytest.fixture
def torrent(tmp_path: Path) -> tuple[Path, bytes]:
    path = tmp_path / "bundle.torrent"
    data = make_torrent(
        path,
        FILES,
        comment="built for tests",
        created_by="pytest",
        creation_date=1_700_000_000,
        nodes=(("127.0.0.1", 6881), ("::1", 6882)),
    )
    return path, data


def test_torrent_json_has_the_documented_keys_and_values(
    torrent: tuple[Path, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    path, data = torrent
    obj = _json(capsys, ["info", str(path), "--json"])
    assert set(obj) == TORRENT_KEYS
    assert obj["type"] == "torrent"
    assert obj["name"] == "bundle"
    assert obj["info_hash"] == _info_hash(data)
    assert obj["total_size"] == 36384
    assert obj["piece_length"] == 16384
    assert obj["num_pieces"] == 3
    assert obj["private"] is False
    assert obj["multi_file"] is True
    assert obj["files"] == [
        {"path": "bundle/a.bin", "size": 1000, "offset": 0, "pad": False},
        {"path": "bundle/sub/b.txt", "size": 20000, "offset": 16384, "pad": False},
    ]
    assert obj["comment"] == "built for tests"
    assert obj["created_by"] == "pytest"
    assert obj["creation_date"] == 1_700_000_000
    assert obj["trackers"] == []
    assert obj["nodes"] == [{"host": "127.0.0.1", "port": 6881}, {"host": "::1", "port": 6882}]
    magnet = parse_magnet(str(obj["magnet"]))
    assert str(magnet.info_hash) == obj["info_hash"]
    assert magnet.display_name == "bundle"


def test_pad_files_are_listed_only_with_all(
    torrent: tuple[Path, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = torrent
    obj = _json(capsys, ["info", str(path), "--json", "--all"])
    files = obj["files"]
    assert isinstance(files, list)
    assert [f["pad"] for f in files] == [False, True, False]
    assert files[1] == {"path": "bundle/.pad/15384", "size": 15384, "offset": 1000, "pad": True}

    assert main(["info", str(path)]) == 0
    assert ".pad" not in capsys.readouterr().out
    assert main(["info", str(path), "--all"]) == 0
    assert "bundle/.pad/15384  [pad]" in capsys.readouterr().out


def test_torrent_text_report(
    torrent: tuple[Path, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    path, data = torrent
    assert main(["info", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    lines = captured.out.splitlines()
    assert lines[:9] == [
        "name:           bundle",
        f"info-hash:      {_info_hash(data)}",
        "total size:     35.5 KiB (36384 bytes)",
        "pieces:         3 × 16 KiB",
        "private:        no",
        "comment:        built for tests",
        "created by:     pytest",
        "creation date:  2023-11-14 22:13:20 UTC",
        "DHT nodes:      127.0.0.1:6881",
    ]
    assert lines[9] == "                [::1]:6882"
    assert lines[10].startswith("magnet:         magnet:?")
    assert lines[11:] == [
        "files (2):",
        "    1000 B  bundle/a.bin",
        "  19.5 KiB  bundle/sub/b.txt",
    ]


def test_hostile_text_cannot_reach_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "evil.torrent"
    make_torrent(path, [(["f"], 10, False)], comment="\x1b[2J\x1b]0;owned\x07", created_by="a\rb")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "\r" not in out
    assert "\x07" not in out
    assert "comment:        \\x1b[2J\\x1b]0;owned\\x07" in out
    assert main(["info", str(path), "--json"]) == 0
    out = capsys.readouterr().out
    assert out.isascii()
    assert json.loads(out)["comment"] == "\x1b[2J\x1b]0;owned\x07"


def test_trackers_are_flattened_deduplicated_and_put_in_the_magnet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.torrent"
    top = decode_dict(make_torrent(path, [(["f"], 10, False)]))
    top[b"announce"] = b"http://127.0.0.1:1/announce"
    top[b"announce-list"] = [
        [b"http://127.0.0.1:1/announce", b"udp://127.0.0.1:2"],
        [b"udp://[::1]:3"],
    ]
    path.write_bytes(encode(top))
    expected = ["http://127.0.0.1:1/announce", "udp://127.0.0.1:2", "udp://[::1]:3"]
    obj = _json(capsys, ["info", str(path), "--json"])
    assert obj["trackers"] == expected
    assert list(parse_magnet(str(obj["magnet"])).trackers) == expected
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert (
        "trackers:       http://127.0.0.1:1/announce\n"
        "                udp://127.0.0.1:2\n"
        "                udp://[::1]:3\n"
    ) in out


def test_private_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.torrent"
    make_torrent(path, [(["f"], 10, False)], private=True)
    assert _json(capsys, ["info", str(path), "--json"])["private"] is True
    assert main(["info", str(path)]) == 0
    assert "private:        yes\n" in capsys.readouterr().out


def test_magnet_json(capsys: pytest.CaptureFixture[str]) -> None:
    uri = (
        f"magnet:?xt=urn:btih:{HASH.upper()}&dn=Some+Name&tr=udp%3A%2F%2F127.0.0.1%3A6969"
        "&x.pe=127.0.0.1:6881&x.pe=[::1]:6882&so=0,2-4"
    )
    obj = _json(capsys, ["info", uri, "--json"])
    assert set(obj) == MAGNET_KEYS
    assert obj["type"] == "magnet"
    assert obj["info_hash"] == HASH
    assert obj["name"] == "Some Name"
    assert obj["trackers"] == ["udp://127.0.0.1:6969"]
    assert obj["peers"] == [{"host": "127.0.0.1", "port": 6881}, {"host": "::1", "port": 6882}]
    assert obj["select_only"] == [[0, 0], [2, 4]]
    assert parse_magnet(str(obj["magnet"])) == parse_magnet(uri)


def test_magnet_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", f"magnet:?xt=urn:btih:{HASH}&x.pe=[::1]:6882&so=0,2-4"]) == 0
    out = capsys.readouterr().out
    assert f"info-hash:      {HASH}\n" in out
    assert "name:           (none)\n" in out
    assert "trackers:       (none)\n" in out
    assert "peers:          [::1]:6882\n" in out
    assert "selected files: 0, 2-4\n" in out


def test_base32_magnet_is_shown_in_hex(capsys: pytest.CaptureFixture[str]) -> None:
    b32 = "YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK"
    obj = _json(capsys, ["info", f"MAGNET:?xt=urn:btih:{b32}", "--json"])
    assert obj["info_hash"] == HASH
    assert obj["select_only"] is None


@pytest.mark.parametrize(
    "uri",
    ["magnet:", "magnet:?dn=x", "magnet:?xt=urn:btih:1234", "magnet:?xt=urn:sha1:" + HASH],
)
def test_bad_magnet_is_one_line_exit_1(uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", uri]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("shoal: invalid magnet link: ")
    assert captured.err.count("\n") == 1


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.torrent"
    assert main(["info", str(missing)]) == 1
    assert capsys.readouterr().err == f"shoal: cannot read '{missing}': No such file or directory\n"


def test_directory_is_not_a_torrent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"shoal: cannot read '{tmp_path}': Is a directory\n"


def test_garbage_is_not_a_torrent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.torrent"
    path.write_bytes(b"<html>not found</html>")
    assert main(["info", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"shoal: '{path}' is not a valid .torrent file: ")
    assert err.count("\n") == 1


def test_oversized_file_is_refused_without_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "big.torrent"
    make_torrent(path, [(["f"], 10, False)])
    monkeypatch.setattr(shoal.cli.sources, "DEFAULT_MAX_SIZE", 20)
    assert main(["info", str(path)]) == 1
    assert capsys.readouterr().err == f"shoal: '{path}' is too large to be a .torrent file\n"


@settings(max_examples=50)
@given(st.binary(max_size=300) | st.builds(lambda b: b"d4:info" + b, st.binary(max_size=200)))
def test_any_file_contents_give_0_or_1_never_an_internal_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.torrent"
        path.write_bytes(data)
        _check_total(["info", str(path), "--json"])


@settings(max_examples=50)
@given(st.text(max_size=120))
def test_any_magnet_text_gives_0_or_1_never_an_internal_error(text: str) -> None:
    _check_total(["info", "magnet:?" + text])


def _check_total(argv: list[str]) -> None:
    with pytest.MonkeyPatch.context() as mp:
        # capsys cannot be used under @given (function-scoped fixture), so capture here.
        out, err = io.StringIO(), io.StringIO()
        mp.setattr(sys, "stdout", out)
        mp.setattr(sys, "stderr", err)
        status = main(argv)
    assert status in (0, 1)
    assert "internal error" not in err.getvalue()
    if status == 1:
        assert err.getvalue().count("\n") == 1
