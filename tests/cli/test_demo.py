"""``shoal demo``: the offline swarm, as a real subprocess on a pipe and on a pty."""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.cli import main
from shoal.cli.demo import parse_size

from .helpers import SUBPROCESS_TIMEOUT, run_on_pty, run_shoal

if TYPE_CHECKING:
    from pathlib import Path

    from _pytest.capture import CaptureFixture


def _loopback(host: str) -> bool:
    return ipaddress.ip_address(host).is_loopback


@pytest.mark.integration
def test_demo_downloads_and_verifies_every_byte(tmp_path: Path) -> None:
    keep = tmp_path / "demo"
    result = run_shoal("demo", "--size", "3M", "--peers", "2", "--json", "--keep", str(keep))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    events = [r["event"] for r in records]
    assert events[0] == "demo"
    assert events[-1] == "verified"
    assert {"metadata", "complete"} <= set(events)
    demo = records[0]
    assert demo["magnet"].startswith("magnet:?xt=urn:btih:")
    assert "x.pe" not in demo["magnet"]  # the leecher must find peers through the DHT
    assert len(demo["seeders"]) == 2
    assert all(_loopback(host) for host, _ in demo["seeders"] + demo["dht"])
    peers = [r for r in records if r["event"] == "peer"]
    assert peers
    assert all(_loopback(r["host"]) for r in peers)
    assert records[-1]["bytes"] == 3 * 1024 * 1024
    # --keep leaves the swarm's files behind, and they really are identical.
    seeded = (keep / "seed" / "shoal-demo.bin").read_bytes()
    assert len(seeded) == 3 * 1024 * 1024
    assert (keep / "download" / "shoal-demo.bin").read_bytes() == seeded
    assert (keep / "shoal-demo.torrent").is_file()


@pytest.mark.integration
def test_demo_cleans_up_its_temporary_directory() -> None:
    result = run_shoal("demo", "--size", "100K", "--peers", "1", "--json")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[-1] == records[-1] | {"event": "verified", "bytes": 100 * 1024}
    assert not os.path.exists(records[0]["dir"])


@pytest.mark.integration
def test_ctrl_c_stops_the_swarm_and_the_child_and_cleans_up() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "shoal", "demo", "--size", "16M", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())  # printed just before 'shoal get' starts
        assert first["event"] == "demo"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=SUBPROCESS_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert err.endswith("shoal: interrupted\n")
    assert "Traceback" not in err
    assert '"verified"' not in out
    assert not os.path.exists(first["dir"])


@pytest.mark.integration
def test_demo_on_a_terminal_shows_the_live_get_display() -> None:
    status, _, tty, _ = run_on_pty(
        ["demo", "--size", "6M", "--peers", "2"],
        stdout_on_tty=True,
        columns=120,
        read_for=2 * SUBPROCESS_TIMEOUT,
    )
    assert status == 0, tty.decode(errors="replace")
    assert b"magnet:?xt=urn:btih:" in tty
    assert b"\x1b[" in tty  # rich's live view redraws in place
    assert b"shoal-demo.bin" in tty
    assert b"verified: 6291456 bytes identical to the seeded data" in tty
    assert b"Traceback" not in tty


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--size", "0"], "size must be from 1 byte to 4G"),
        (["demo", "--size", "lots"], "not a size"),
        (["demo", "--peers", "0"], "--peers takes 1 to 16"),
        (["demo", "--peers", "99"], "--peers takes 1 to 16"),
    ],
)
def test_bad_options_are_usage_errors(
    argv: list[str], message: str, capsys: CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


@pytest.mark.integration
def test_running_out_of_time_is_a_one_line_error() -> None:
    result = run_shoal("demo", "--size", "1M", "--timeout", "0.2")
    assert result.returncode == 1
    assert result.stderr == "shoal: the demo did not finish within 0.2 s; try a smaller --size\n"


def test_keep_refuses_a_directory_with_files_in_it(
    tmp_path: Path, capsys: CaptureFixture[str]
) -> None:
    (tmp_path / "precious.txt").write_text("do not delete")
    assert main(["demo", "--keep", str(tmp_path)]) == 1
    assert "is not an empty directory" in capsys.readouterr().err
    assert (tmp_path / "precious.txt").read_text() == "do not delete"


@given(st.integers(1, 4096), st.sampled_from(["K", "k", "KiB", "KB", "M", "MiB"]))
def test_parse_size_binary_units(n: int, unit: str) -> None:
    scale = 1024 if unit[0] in "Kk" else 1024**2
    assert parse_size(f"{n}{unit}") == n * scale


@given(st.text(max_size=12))
def test_parse_size_accepts_sizes_or_raises_argparse_errors(text: str) -> None:
    try:
        size = parse_size(text)
    except argparse.ArgumentTypeError:
        return
    assert 1 <= size <= 4 * 1024**3
