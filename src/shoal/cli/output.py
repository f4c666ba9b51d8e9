"""Output helpers shared by the subcommands: sizes, terminal-safe text, JSON, progress.

Two rules hold for every subcommand: stdout carries the result (a magnet link, a
report, one JSON object) so that it can be piped; stderr carries diagnostics and
progress, and progress is drawn only when stderr is a terminal.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from rich.console import Console

__all__ = [
    "format_size",
    "format_timestamp",
    "hashing_progress",
    "plural",
    "print_json",
    "safe",
    "stderr_console",
]

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def format_size(size: int) -> str:
    """Binary-prefixed size for humans: ``1536 -> '1.5 KiB'``; bytes stay exact below 1 KiB."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in _UNITS:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            text = f"{value:.1f}".removesuffix(".0")
            return f"{text} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def plural(count: int, noun: str) -> str:
    """``plural(1, 'file') -> '1 file'``, ``plural(3, 'piece') -> '3 pieces'`` (regular nouns)."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def format_timestamp(seconds: int) -> str:
    """A Unix time as ``YYYY-MM-DD HH:MM:SS UTC``; out-of-range values print as the raw number.

    The value comes from a .torrent file, so it may be anything: negative, or far
    beyond what `datetime` can represent.
    """
    try:
        moment = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return str(seconds)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def safe(text: str) -> str:
    """Escape characters that could drive the terminal (ANSI sequences, CR, BEL, surrogates).

    Names, comments and trackers come from untrusted files and URIs; printing them
    raw would let a torrent rewrite the user's screen.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def print_json(obj: object) -> None:
    """Print one JSON object on stdout (ASCII-escaped, so no control bytes reach a terminal)."""
    print(json.dumps(obj, indent=2, sort_keys=False))


def stderr_console() -> Console:
    """A rich console on the *current* stderr (tests swap `sys.stderr`, so never cache it)."""
    # rich is imported on first use: it is a third of the CLI's start-up time, and
    # `shoal info` or `--version` in a script loop should not pay for it.
    from rich.console import Console

    return Console(file=sys.stderr, stderr=True, highlight=False)


@contextmanager
def hashing_progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """Yield a ``progress(done_bytes, total_bytes)`` callback that draws a bar on a terminal.

    When stderr is not a terminal (a pipe, a log file, CI) the callback does nothing:
    a redrawn bar would fill logs with escape sequences.
    """
    console = stderr_console()
    if not console.is_terminal:
        yield _ignore_progress
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(safe(label), total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def _ignore_progress(done: int, total: int) -> None:
    del done, total
