"""``shoal create``, in process: output file, overwrite rules, JSON, errors, Ctrl-C."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

import shoal.cli.create
import shoal.create
from shoal.cli import main
from shoal.magnet import parse_magnet
from shoal.metainfo import parse_metainfo

from .helpers import write_tree

if TYPE_CHECKING:
    from pathlib import Path

CREATE_KEYS = {
    "torrent",
    "name",
    "info_hash",
    "total_size",
    "piece_length",
    "num_pieces",
    "num_files",
    "private",
    "magnet",
}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_tree(
        tmp_path / "photos",
        {"a.jpg": b"a" * 40_000, "b/c.jpg": b"c" * 1000, "b/d.txt": b"hello\n"},
    )


def test_create_writes_the_torrent_and_prints_the_magnet(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.torrent"
    assert main(["create", str(tree), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    meta = parse_metainfo(out.read_bytes())
    assert meta.info.name == "photos"
    assert meta.info.total_length == 41_006
    assert [f.path for f in meta.info.files] == [
        ("photos", "a.jpg"),
        ("photos", "b", "c.jpg"),
        ("photos", "b", "d.txt"),
    ]
    assert meta.created_by == f"shoal/{shoal.__version__}"
    assert meta.creation_date is not None
    magnet = parse_magnet(captured.out.strip())
    assert captured.out.count("\n") == 1
    assert magnet.info_hash == meta.info_hash
    assert magnet.display_name == "photos"
    assert captured.err == (f"shoal: wrote '{out}': 3 files, 40 KiB in 3 pieces of 16 KiB\n")


def test_default_output_is_name_dot_torrent_in_the_current_directory(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["create", str(tree / "a.jpg")]) == 0
    assert parse_metainfo((work / "a.jpg.torrent").read_bytes()).info.name == "a.jpg"
    capsys.readouterr()


def test_refuses_to_overwrite_before_hashing_unless_forced(
    tree: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out.torrent"
    out.write_bytes(b"precious")

    def must_not_hash(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("hashed although the output exists")

    with monkeypatch.context() as mp:
        mp.setattr(shoal.cli.create, "create_torrent", must_not_hash)
        assert main(["create", str(tree), "-o", str(out)]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"shoal: '{out}' already exists; use --force to overwrite it\n"
    assert captured.out == ""
    assert out.read_bytes() == b"precious"

    assert main(["create", str(tree), "-o", str(out), "--force"]) == 0
    assert parse_metainfo(out.read_bytes()).info.name == "photos"


def test_refuses_to_write_the_torrent_into_the_tree_it_describes(
    tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tree)
    assert main(["create", "."]) == 1
    assert capsys.readouterr().err == (
        "shoal: 'photos.torrent' is inside '.', which is being shared; "
        "write it elsewhere with -o ../photos.torrent\n"
    )
    assert main(["create", ".", "-o", "../photos.torrent"]) == 0
    assert (tree.parent / "photos.torrent").exists()
    assert not (tree / "photos.torrent").exists()
    capsys.readouterr()


def test_json_output(tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.torrent"
    argv = ["create", str(tree), "-o", str(out), "--json", "--piece-size", "32K", "--private"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    obj = json.loads(captured.out)
    meta = parse_metainfo(out.read_bytes())
    assert set(obj) == CREATE_KEYS
    assert obj == {
        "torrent": str(out),
        "name": "photos",
        "info_hash": str(meta.info_hash),
        "total_size": 41_006,
        "piece_length": 32 * 1024,
        "num_pieces": 2,
        "num_files": 3,
        "private": True,
        "magnet": obj["magnet"],
    }
    assert parse_magnet(obj["magnet"]).info_hash == meta.info_hash


def test_comment_and_piece_size_reach_the_file(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.torrent"
    argv = ["create", str(tree), "-o", str(out), "--comment", "nightly", "--piece-size", "1M"]
    assert main(argv) == 0
    meta = parse_metainfo(out.read_bytes())
    assert meta.comment == "nightly"
    assert meta.info.piece_length == 1024 * 1024
    assert meta.info.private is False
    capsys.readouterr()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "shoal: cannot read '{src}': No such file or directory"),
        ("empty-dir", "shoal: cannot make a torrent from '{src}': "),
        ("empty-file", "shoal: cannot make a torrent from '{src}': "),
    ],
)
def test_bad_sources_fail_with_one_line(
    setup: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src"
    if setup == "empty-dir":
        src.mkdir()
    elif setup == "empty-file":
        src.write_bytes(b"")
    assert main(["create", str(src), "-o", str(tmp_path / "x.torrent")]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(message.format(src=src))
    assert captured.err.count("\n") == 1
    assert not (tmp_path / "x.torrent").exists()


def test_output_directory_must_exist(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "no" / "such" / "dir" / "x.torrent"
    assert main(["create", str(tree), "-o", str(out)]) == 1
    assert capsys.readouterr().err == (
        f"shoal: cannot write '{out}': its directory does not exist\n"
    )


def test_ctrl_c_while_hashing_exits_130_and_writes_nothing(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = shoal.create.create_torrent

    def interrupted(*args: object, **kwargs: object) -> bytes:
        def progress(done: int, total: int) -> None:
            raise KeyboardInterrupt

        kwargs["progress"] = progress
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(shoal.cli.create, "create_torrent", interrupted)
    out = tmp_path / "out.torrent"
    assert main(["create", str(tree), "-o", str(out)]) == 130
    captured = capsys.readouterr()
    assert captured.err == "shoal: interrupted\n"
    assert captured.out == ""
    assert not out.exists()


def test_no_escape_sequences_when_stderr_is_not_a_terminal(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["create", str(tree), "-o", str(tmp_path / "x.torrent")]) == 0
    captured = capsys.readouterr()
    assert "\x1b" not in captured.err + captured.out


def test_progress_bar_is_drawn_when_stderr_counts_as_a_terminal(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # rich's documented override for "treat this stream as a terminal" (the real tty
    # case is covered with a pseudo-terminal in test_e2e.py).
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    assert main(["create", str(tree), "-o", str(tmp_path / "x.torrent")]) == 0
    captured = capsys.readouterr()
    assert "hashing photos" in captured.err
    assert "━" in captured.err
    assert "40.0/40.0 KiB" in captured.err
    assert captured.out.startswith("magnet:?")
