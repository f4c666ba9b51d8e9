"""Output helpers and argument types: sizes, terminal-safe text, timestamps, piece sizes."""

from __future__ import annotations

import argparse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.cli.create import MAX_PIECE_SIZE, MIN_PIECE_SIZE, parse_piece_size
from shoal.cli.output import format_size, format_timestamp, plural, safe


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1 KiB"),
        (1536, "1.5 KiB"),
        (256 * 1024, "256 KiB"),
        (1024**2, "1 MiB"),
        (5 * 1024**3 + 1, "5 GiB"),
        (2**70, "1024 EiB"),
    ],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text


@given(st.integers(min_value=0, max_value=2**80))
def test_format_size_is_close_to_the_exact_size(size: int) -> None:
    text = format_size(size)
    number, unit = text.split(" ")
    assert unit in {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
    # Rounded to one decimal, the value is within 5% of the truth.
    scale = 1024 ** ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"].index(unit)
    assert abs(float(number) * scale - size) <= 0.05 * size + 1


def test_plural() -> None:
    assert [plural(n, "file") for n in (0, 1, 2)] == ["0 files", "1 file", "2 files"]


def test_format_timestamp() -> None:
    assert format_timestamp(0) == "1970-01-01 00:00:00 UTC"
    assert format_timestamp(1_700_000_000) == "2023-11-14 22:13:20 UTC"


@given(st.integers())
def test_format_timestamp_never_raises(seconds: int) -> None:
    assert format_timestamp(seconds)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain name.mkv", "plain name.mkv"),
        ("ünïcødé 日本", "ünïcødé 日本"),
        ("\x1b[2Jgotcha", "\\x1b[2Jgotcha"),
        ("a\rb\nc\x07", "a\\rb\\nc\\x07"),
        ("csi\x9b31m", "csi\\x9b31m"),
        ("bad\udcffbyte", "bad\\udcffbyte"),
    ],
)
def test_safe_escapes_terminal_controls(text: str, shown: str) -> None:
    assert safe(text) == shown


@given(st.text())
def test_safe_output_is_printable_and_identity_on_printable(text: str) -> None:
    shown = safe(text)
    assert shown.isprintable()
    if text.isprintable():
        assert shown == text


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("16384", 16384),
        ("16K", 16384),
        ("256K", 256 * 1024),
        ("256k", 256 * 1024),
        ("256KiB", 256 * 1024),
        ("256kb", 256 * 1024),
        ("1M", 1024**2),
        ("4MiB", 4 * 1024**2),
        (" 64M ", 64 * 1024**2),
    ],
)
def test_parse_piece_size(text: str, size: int) -> None:
    assert parse_piece_size(text) == size


@pytest.mark.parametrize(
    "text", ["", "K", "1.5M", "-16K", "256G", "8K", "128M", "100000", "48K", "1 M B", "0"]
)
def test_parse_piece_size_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_piece_size(text)


@given(st.text(max_size=30))
def test_parse_piece_size_is_total(text: str) -> None:
    try:
        size = parse_piece_size(text)
    except argparse.ArgumentTypeError:
        return
    assert MIN_PIECE_SIZE <= size <= MAX_PIECE_SIZE
    assert size & (size - 1) == 0
