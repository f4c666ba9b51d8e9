"""``shoal get``: option parsing, event records and the progress renderers.

End-to-end downloads over loopback (shoal seed → shoal get, resume after SIGKILL) are
in the second half; the real-client interop is in tests/integration.
"""

from __future__ import annotations

import argparse
import enum
import io
import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from rich.console import Console

from shoal.cli import get
from shoal.cli.common import Parser
from shoal.cli.progress import (
    JsonRenderer,
    LiveRenderer,
    PlainRenderer,
    QuietRenderer,
    format_eta,
    format_rate,
    phase_text,
    progress_record,
    resume_line,
    status_line,
    summary_line,
)
from shoal.config import EncryptionMode
from shoal.dht_client import DEFAULT_BOOTSTRAP
from shoal.metainfo import MAX_FILES
from shoal.torrent_events import (
    Completed,
    MetadataReceived,
    PeerBanned,
    PeerConnected,
    PeerDisconnected,
    PieceFailed,
    PieceVerified,
    TorrentError,
)

if TYPE_CHECKING:
    from pathlib import Path


class State(enum.Enum):
    """Stands in for `shoal.torrent.TorrentState`: the display reads only `.name`."""

    FINDING_PEERS = enum.auto()
    FETCHING_METADATA = enum.auto()
    CHECKING = enum.auto()
    DOWNLOADING = enum.auto()
    SEEDING = enum.auto()


@dataclass(frozen=True)
class Stats:
    state: enum.Enum = State.DOWNLOADING
    name: str | None = "movie.mkv"
    total_size: int | None = 4 * 1024**2
    selected_size: int | None = 4 * 1024**2
    downloaded: int = 1024**2
    uploaded: int = 0
    download_rate: float = 512 * 1024
    upload_rate: float = 0.0
    pieces_done: int = 16
    pieces_total: int | None = 64
    peers: int = 3
    seeds: int = 2
    encrypted_peers: int = 1
    metadata_peers: int = 0
    dht_nodes: int = 42
    eta: float | None = 6.0
    checked: float | None = None
    dht_status: str | None = None


def _parse(*argv: str) -> argparse.Namespace:
    parser = Parser(prog="shoal")
    get.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["get", *argv])


# ---------------------------------------------------------------- options


def test_defaults() -> None:
    args = _parse("x.torrent")
    assert (args.source, args.output, args.port, args.bind) == ("x.torrent", ".", 6881, "0.0.0.0")
    assert args.peer == []
    assert not (args.no_seed)
    assert not (args.metadata_only)
    assert not (args.sequential)
    assert not (args.json)
    assert not (args.quiet)
    assert args.select is None
    assert args.timeout is None
    assert args.seed_ratio is None
    config = get.client_config(args)
    assert config.bootstrap == DEFAULT_BOOTSTRAP  # only because none was given
    assert config.encryption is EncryptionMode.PREFER


def test_every_option(tmp_path: Path) -> None:
    args = _parse(
        "magnet:?xt=urn:btih:" + "ab" * 20,
        "-o", str(tmp_path),
        "--bootstrap", "127.0.0.1:7000",
        "--bootstrap", "[::1]:7001",
        "--bind", "127.0.0.5",
        "--port", "0",
        "--peer", "127.0.0.9:6881",
        "--seed-ratio", "1.5",
        "--seed-time", "30",
        "--select", "3,0-1",
        "--sequential",
        "--state-dir", str(tmp_path / "state"),
        "--json",
        "--encryption", "require",
        "--timeout", "2.5",
    )  # fmt: skip
    assert args.peer == [("127.0.0.9", 6881)]
    assert args.select == (0, 1, 3)
    assert (args.seed_ratio, args.seed_time, args.timeout) == (1.5, 30.0, 2.5)
    config = get.client_config(args, state_dir=args.state_dir)
    assert config.bootstrap == (("127.0.0.1", 7000), ("::1", 7001))
    assert (config.bind_host, config.port) == ("127.0.0.5", 0)
    assert config.encryption is EncryptionMode.REQUIRE
    assert config.state_dir == tmp_path / "state"


@pytest.mark.parametrize(
    "argv",
    [
        ["x", "--port", "65536"],
        ["x", "--encryption", "sometimes"],
        ["x", "--timeout", "0"],
        ["x", "--timeout", "nan"],
        ["x", "--seed-ratio", "-1"],
        ["x", "--seed-ratio", "inf"],
        ["x", "--no-seed", "--seed-ratio", "2"],
        ["x", "--select", "2-1"],
        ["x", "--select", "a"],
        ["x", "--select", ""],
        ["x", "--select", "0-100000"],
        ["x", "--peer", "nohost"],
        ["x", "--bootstrap", "127.0.0.1:0"],
        [],
    ],
)
def test_bad_options_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        _parse(*argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "Traceback" not in err


@given(st.sets(st.integers(0, 500), min_size=1))
def test_select_accepts_any_list_of_indexes(indexes: set[int]) -> None:
    text = ",".join(str(i) for i in sorted(indexes, reverse=True))
    assert get.parse_select(text) == tuple(sorted(indexes))


@given(st.text(alphabet="0123456789,- x") | st.text())
@example("²")  # str.isdigit() is true, int() refuses it
@example("1-" + "9" * 5000)  # past int()'s digit limit
def test_select_is_total(text: str) -> None:
    """Any text is either a sorted index tuple or an argparse error, never anything else."""
    try:
        indexes = get.parse_select(text)
    except argparse.ArgumentTypeError:
        return
    assert list(indexes) == sorted(set(indexes))
    assert all(0 <= i < MAX_FILES for i in indexes)


@given(st.integers(0, 300), st.integers(0, 300))
def test_select_ranges_are_inclusive(lo: int, length: int) -> None:
    assert get.parse_select(f"{lo}-{lo + length}") == tuple(range(lo, lo + length + 1))


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("magnet:?xt=urn:btih:zz", "invalid magnet link"),
        ("missing.torrent", "cannot read 'missing.torrent'"),
    ],
)
def test_bad_sources_are_one_line_errors(
    source: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from shoal.cli import main

    status = main(["get", source, "-o", str(tmp_path), "--bootstrap", "127.0.0.1:9"])
    err = capsys.readouterr().err
    assert status == 1
    assert err.startswith(f"shoal: {message}")
    assert err.count("\n") == 1


def test_output_must_be_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from shoal.cli import main

    (tmp_path / "file").write_bytes(b"")
    status = main(["get", "magnet:?xt=urn:btih:" + "ab" * 20, "-o", str(tmp_path / "file")])
    assert status == 1
    assert "is not a directory" in capsys.readouterr().err


# ---------------------------------------------------------------- records


def test_event_records() -> None:
    assert get.event_record(MetadataReceived("n", 10, 1)) == {
        "event": "metadata",
        "name": "n",
        "size": 10,
        "pieces": 1,
    }
    assert get.event_record(PeerConnected(("127.0.0.2", 6881), "lt", True, False)) == {
        "event": "peer",
        "host": "127.0.0.2",
        "port": 6881,
        "client": "lt",
        "encrypted": True,
        "incoming": False,
    }
    assert get.event_record(TorrentError("disk full")) == {"event": "error", "message": "disk full"}
    assert get.event_record(PieceFailed(7, (("127.0.0.5", 1), ("::1", 2)))) == {
        "event": "piece_failed",
        "index": 7,
        "peers": [["127.0.0.5", 1], ["::1", 2]],
    }
    assert get.event_record(PeerBanned(("127.0.0.5", 1), "sent 2 bad pieces")) == {
        "event": "banned",
        "host": "127.0.0.5",
        "port": 1,
        "reason": "sent 2 bad pieces",
    }
    assert get.event_record(PeerDisconnected(("127.0.0.5", 1), "peer idle")) == {
        "event": "peer_left",
        "host": "127.0.0.5",
        "port": 1,
        "reason": "peer idle",
    }
    for quiet in (Completed(), PieceVerified(3)):
        assert get.event_record(quiet) is None


# ---------------------------------------------------------------- text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (float("nan"), "-"),
        (-1.0, "-"),
        (0.2, "0s"),
        (59.6, "1m00s"),
        (75, "1m15s"),
        (3700, "1h01m"),
        (90000, "1d01h"),
        (1e12, ">99d"),
        (float("inf"), ">99d"),
    ],
)
def test_format_eta(seconds: float | None, text: str) -> None:
    assert format_eta(seconds) == text


def test_format_rate() -> None:
    assert format_rate(1536.0) == "1.5 KiB/s"
    assert format_rate(-3.0) == "0 B/s"
    assert format_rate(float("nan")) == "- B/s"
    assert format_rate(float("inf")) == "inf B/s"


def test_phases() -> None:
    assert phase_text(Stats(state=State.FINDING_PEERS)) == "finding peers…"
    assert (
        phase_text(Stats(state=State.FETCHING_METADATA, metadata_peers=2))
        == "fetching metadata from 2 peers…"
    )
    assert phase_text(Stats(state=State.FETCHING_METADATA, metadata_peers=1)).endswith("1 peer…")
    assert phase_text(Stats(state=State.CHECKING, checked=0.345)) == "checking files on disk 34%…"
    assert phase_text(Stats(state=State.CHECKING)) == "checking"


def test_status_line_has_everything_the_user_wants() -> None:
    line = status_line(Stats())
    for part in (
        "movie.mkv",
        "25.0% of 4 MiB",
        "down 512 KiB/s",
        "up 0 B/s",
        "ETA 6s",
        "peers 3 (seeds 2, encrypted 1)",
        "DHT nodes 42",
    ):
        assert part in line


def test_status_line_says_the_proxied_dht_waits_for_the_proxy() -> None:
    assert status_line(Stats()).endswith("| DHT nodes 42")
    line = status_line(replace(Stats(), dht_nodes=0, dht_status="waiting for proxy"))
    assert line.endswith("| DHT nodes 0 (waiting for proxy)")


def test_status_line_before_metadata() -> None:
    stats = Stats(
        state=State.FETCHING_METADATA,
        name=None,
        total_size=None,
        selected_size=None,
        pieces_total=None,
        metadata_peers=4,
    )
    line = status_line(stats)
    assert line.startswith("(name unknown): fetching metadata from 4 peers…")
    assert "%" not in line


def test_untrusted_names_cannot_drive_the_terminal() -> None:
    stats = Stats(name="evil\x1b[2J\r.mkv")
    for text in (status_line(stats), summary_line(stats, 1.0)):
        assert "\x1b" not in text
        assert "\r" not in text
        assert "\\x1b[2J" in text


stats_strategy = st.builds(
    Stats,
    state=st.sampled_from(State),
    name=st.none() | st.text(),
    total_size=st.none() | st.integers(0, 2**60),
    selected_size=st.none() | st.integers(0, 2**60),
    downloaded=st.integers(0, 2**60),
    uploaded=st.integers(0, 2**60),
    download_rate=st.floats(allow_nan=True),
    upload_rate=st.floats(allow_nan=True),
    eta=st.none() | st.floats(allow_nan=True),
)


@given(stats_strategy, st.floats(0, 1e9))
def test_text_is_total_and_single_line(stats: Stats, elapsed: float) -> None:
    for text in (
        status_line(stats),
        summary_line(stats, elapsed),
        summary_line(stats, elapsed, seeding=True),
    ):
        assert "\n" not in text
    record = progress_record(stats)
    assert 0.0 <= record["percent"] <= 100.0
    json.dumps(record)


# ---------------------------------------------------------------- renderers


def test_json_renderer_prints_one_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    renderer = JsonRenderer()
    renderer.record({"event": "peer", "host": "127.0.0.2", "port": 1, "encrypted": True})
    renderer.progress(Stats())
    renderer.finish(Stats(), 1.0)
    lines = capsys.readouterr().out.splitlines()
    objects = [json.loads(line) for line in lines]
    assert [o["event"] for o in objects] == ["peer", "progress"]
    assert objects[1]["percent"] == 25.0
    assert objects[1]["state"] == "downloading"
    assert objects[1]["dht_nodes"] == 42


def test_plain_renderer(capsys: pytest.CaptureFixture[str]) -> None:
    renderer = PlainRenderer(interval=1.0)
    renderer.record({"event": "listening", "host": "127.0.0.1", "port": 7})
    renderer.record({"event": "metadata", "name": "m", "size": 2048, "pieces": 1})
    renderer.record({"event": "peer", "host": "h", "port": 1})  # too frequent for a line
    renderer.record({"event": "banned", "host": "h", "port": 1, "reason": "bad\x1b data"})
    renderer.progress(Stats())
    done = replace(Stats(), downloaded=4 * 1024**2, uploaded=1024)
    renderer.finish(done, 2.0)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "listening on 127.0.0.1:7"
    assert out[1] == "metadata: m, 2 KiB in 1 piece"
    assert out[2] == "banned h:1: bad\\x1b data"
    assert out[3] == status_line(Stats())
    assert out[4] == "movie.mkv: 4 MiB verified in 2.0 s (average 2 MiB/s), uploaded 1 KiB"
    renderer.finish(done, 60.0, seeding=True)
    assert capsys.readouterr().out == "movie.mkv: seeded 4 MiB for 60.0 s, uploaded 1 KiB\n"
    assert len(out) == 5


def test_quiet_renderer_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    renderer = QuietRenderer()
    renderer.record({"event": "metadata", "name": "m", "size": 1, "pieces": 1})
    renderer.progress(Stats())
    renderer.finish(Stats(), 1.0)
    renderer.close()
    assert capsys.readouterr() == ("", "")


def test_live_renderer_redraws_in_place_and_keeps_the_summary() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100, color_system=None)
    renderer = LiveRenderer(console, interval=0.1)
    renderer.progress(Stats(state=State.FETCHING_METADATA, name=None, total_size=None,
                            selected_size=None, metadata_peers=2))  # fmt: skip
    renderer.record({"event": "metadata", "name": "movie.mkv", "size": 4 * 1024**2, "pieces": 64})
    renderer.progress(Stats())
    renderer.finish(Stats(), 2.0)
    renderer.progress(Stats(state=State.SEEDING))  # `get` seeds on after the summary
    renderer.close()
    renderer.close()  # idempotent
    text = buffer.getvalue()
    assert "\x1b[" in text  # cursor movement: redrawn, not appended
    assert "fetching metadata from 2 peers…" in text
    assert "metadata: movie.mkv, 4 MiB in 64 pieces" in text
    assert "movie.mkv (4 MiB)" in text
    assert "━" in text
    assert summary_line(Stats(), 2.0) in text
    assert "seeding" in text.split(summary_line(Stats(), 2.0), 1)[1]


# ---------------------------------------------------------------- docs


def test_docs_list_every_progress_key_and_record() -> None:
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
    section = doc.split("### `get --json` / `seed --json` records", 1)[1].split("\n## ", 1)[0]
    events, keys = section.split("`progress` keys:", 1)
    documented_events = set(re.findall(r"^\| `([a-z_]+)` ", events, re.MULTILINE)) - {"event"}
    assert documented_events == {
        "listening", "metadata", "peer", "peer_left", "piece_failed", "banned", "progress",
        "resuming",
        "complete", "error",
    }  # fmt: skip
    documented_keys = set(re.findall(r"^\| `([a-z_]+)` ", keys, re.MULTILINE))
    assert documented_keys == set(progress_record(Stats())) - {"event"}


def test_select_out_of_range_for_a_torrent_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from shoal.cli import main

    from .helpers import make_torrent

    torrent = tmp_path / "b.torrent"
    make_torrent(torrent, [(["x"], 10, False), (["y"], 20, False)])
    argv = [
        "get",
        str(torrent),
        "-o",
        str(tmp_path),
        "--select",
        "1,2",
        "--bootstrap",
        "127.0.0.1:9",
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err == "shoal: --select: no file 2 in bundle (files are 0-1); see 'shoal info --all'\n"


def test_seeding_lines_show_what_was_uploaded_not_an_eta() -> None:
    stats = Stats(state=State.SEEDING, downloaded=4 * 1024**2, uploaded=1024**2, eta=0.0)
    line = status_line(stats)
    assert "ETA" not in line
    assert "seeding 4 MiB" in line
    assert "uploaded 1 MiB (ratio 0.25)" in line
    assert "peers 3 (seeds 2, encrypted 1)" in line


def test_summary_after_a_resume_counts_only_this_run() -> None:
    done = Stats(downloaded=4 * 1024**2, uploaded=0)
    # 3 MiB were on disk already: 1 MiB in 2 s is 512 KiB/s, not 2 MiB/s.
    line = summary_line(done, 2.0, resumed=3 * 1024**2)
    assert "1 MiB of it in this run, average 512 KiB/s" in line
    # A finished torrent rerun downloaded nothing: no absurd average at all.
    again = summary_line(done, 0.01, resumed=4 * 1024**2)
    assert again == "movie.mkv: 4 MiB already verified on disk, uploaded 0 B"
    assert summary_line(done, 2.0) == summary_line(done, 2.0, resumed=0)


def test_resume_line() -> None:
    assert resume_line(Stats(downloaded=0)) is None
    assert resume_line(Stats(pieces_total=None, selected_size=None, total_size=None)) is None
    assert resume_line(Stats()) == "movie.mkv: resuming at 25.0% (1 MiB of 4 MiB verified on disk)"
    full = Stats(downloaded=4 * 1024**2)
    assert resume_line(full) == "movie.mkv: already complete, 4 MiB verified on disk"


def test_plain_renderer_prints_the_resume_record(capsys: pytest.CaptureFixture[str]) -> None:
    PlainRenderer().record({"event": "resuming", "verified": 1, "text": "x: resuming at 1.0%"})
    assert capsys.readouterr().out == "x: resuming at 1.0%\n"


def test_live_view_interrupted_leaves_the_last_status_on_screen() -> None:
    """Ctrl-C (close without finish) must not wipe how far the download got."""
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=200, color_system=None)
    renderer = LiveRenderer(console, interval=0.1)
    renderer.progress(Stats())
    renderer.close()
    renderer.close()
    tail = buffer.getvalue().rsplit("\x1b", 1)[-1]  # after the last cursor movement
    assert status_line(Stats()) in tail
    assert buffer.getvalue().count(status_line(Stats())) == 1
