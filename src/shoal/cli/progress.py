"""Progress display for ``shoal get`` and ``shoal seed``: rich, plain lines, JSON lines, quiet.

The commands turn engine events into *records* (plain dicts, the ``--json`` shape) and
sample `Torrent.statistics()` on a timer; a renderer only formats. Keeping the
renderers free of engine types means the JSON interface, the plain lines and the live
view are all driven by the same two inputs and can be tested without a swarm.

Where output goes: the live view and the plain lines go to stdout (``get`` has no
other result), errors to stderr. A rich `Live` is used only when stdout is a terminal;
a pipe or log file gets one plain line per interval, never escape sequences.
"""

from __future__ import annotations

import json
import math
import sys
from typing import TYPE_CHECKING, Any, Final, Protocol

from .output import format_size, plural, safe

if TYPE_CHECKING:
    import enum

    from rich.console import Console, RenderableType
    from rich.live import Live

__all__ = [
    "JsonRenderer",
    "LiveRenderer",
    "PlainRenderer",
    "QuietRenderer",
    "Renderer",
    "StatsView",
    "format_eta",
    "format_rate",
    "make_renderer",
    "phase_text",
    "progress_record",
    "resume_line",
    "status_line",
    "summary_line",
]

#: Seconds between plain lines when stdout is not a terminal (a log should stay short).
PLAIN_INTERVAL: Final = 5.0
#: Seconds between live redraws on a terminal.
LIVE_INTERVAL: Final = 0.5


class StatsView(Protocol):
    """The fields of `shoal.torrent.TorrentStats` the display reads (read-only)."""

    @property
    def state(self) -> enum.Enum: ...
    @property
    def name(self) -> str | None: ...
    @property
    def total_size(self) -> int | None: ...
    @property
    def selected_size(self) -> int | None: ...
    @property
    def downloaded(self) -> int: ...
    @property
    def uploaded(self) -> int: ...
    @property
    def download_rate(self) -> float: ...
    @property
    def upload_rate(self) -> float: ...
    @property
    def pieces_done(self) -> int: ...
    @property
    def pieces_total(self) -> int | None: ...
    @property
    def peers(self) -> int: ...
    @property
    def seeds(self) -> int: ...
    @property
    def encrypted_peers(self) -> int: ...
    @property
    def metadata_peers(self) -> int: ...
    @property
    def dht_nodes(self) -> int: ...
    @property
    def dht_status(self) -> str | None: ...
    @property
    def eta(self) -> float | None: ...
    @property
    def checked(self) -> float | None: ...


def format_rate(rate: float) -> str:
    """``1536.0 -> '1.5 KiB/s'``; negative rates show as 0, NaN as '-', infinity as 'inf'."""
    if not math.isfinite(rate):
        return "- B/s" if rate != rate or rate < 0 else "inf B/s"
    return format_size(int(rate) if rate > 0 else 0) + "/s"


def format_eta(seconds: float | None) -> str:
    """``None -> '-'``, ``75 -> '1m15s'``, ``3700 -> '1h01m'``; days beyond 99 show as '>99d'."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "-"
    if seconds >= 100 * 86400:  # also infinity, which int() refuses
        return ">99d"
    total = int(seconds + 0.5)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _size_of(stats: StatsView) -> int | None:
    """Bytes the user asked for, or None while the metadata is unknown (no pieces yet)."""
    if not stats.pieces_total:
        return None
    return stats.selected_size if stats.selected_size is not None else stats.total_size


def _percent(stats: StatsView) -> float:
    size = _size_of(stats)
    if not size:
        return 100.0 if size == 0 else 0.0
    return min(100.0, 100.0 * stats.downloaded / size)


def phase_text(stats: StatsView) -> str:
    """What the torrent is doing, in words: the metadata phase is the slow part of a magnet."""
    state = stats.state.name
    if state == "FINDING_PEERS":
        return "finding peers…"
    if state == "FETCHING_METADATA":
        return f"fetching metadata from {plural(stats.metadata_peers, 'peer')}…"
    if state == "CHECKING" and stats.checked is not None:
        return f"checking files on disk {100 * stats.checked:.0f}%…"
    return state.lower().replace("_", " ")


def status_line(stats: StatsView) -> str:
    """One line: name, size, percent, rates, ETA, peers/seeds, DHT nodes, encrypted share."""
    name = safe(stats.name) if stats.name is not None else "(name unknown)"
    size = _size_of(stats)
    swarm = (
        f"peers {stats.peers} (seeds {stats.seeds}, encrypted {stats.encrypted_peers}) "
        f"| {_dht_text(stats)}"
    )
    if size is None:
        return f"{name}: {phase_text(stats)} | {swarm}"
    if _seeding(stats):
        # Nothing left to download: an ETA of 0 s says nothing; what was served does.
        return (
            f"{name}: seeding {format_size(size)} | up {format_rate(stats.upload_rate)} "
            f"| uploaded {format_size(stats.uploaded)} (ratio {_ratio(stats):.2f}) | {swarm}"
        )
    return (
        f"{name}: {phase_text(stats)} {_percent(stats):.1f}% of {format_size(size)} "
        f"| down {format_rate(stats.download_rate)} up {format_rate(stats.upload_rate)} "
        f"| ETA {format_eta(stats.eta)} | {swarm}"
    )


def _dht_text(stats: StatsView) -> str:
    """``DHT nodes N``, and why it is stuck when proxied and the proxy is away."""
    status = f" ({stats.dht_status})" if stats.dht_status else ""
    return f"DHT nodes {stats.dht_nodes}{status}"


def _seeding(stats: StatsView) -> bool:
    return stats.state.name == "SEEDING"


def _ratio(stats: StatsView) -> float:
    return stats.uploaded / stats.downloaded if stats.downloaded > 0 else 0.0


def resume_line(stats: StatsView) -> str | None:
    """What a rerun finds on disk before it dials anyone, or None when it starts empty."""
    size = _size_of(stats)
    if not stats.downloaded or not size:
        return None
    name = safe(stats.name) if stats.name is not None else "(name unknown)"
    if stats.downloaded >= size:
        return f"{name}: already complete, {format_size(size)} verified on disk"
    return (
        f"{name}: resuming at {_percent(stats):.1f}% "
        f"({format_size(stats.downloaded)} of {format_size(size)} verified on disk)"
    )


def summary_line(
    stats: StatsView, elapsed: float, *, seeding: bool = False, resumed: int = 0
) -> str:
    """The one clean line printed when ``get`` finishes or ``seed`` stops.

    `resumed` is what was already verified on disk when this run started: the average
    rate counts only what this run downloaded (a finished torrent rerun took no time
    to download anything, it is not "14 GiB/s").
    """
    name = safe(stats.name) if stats.name is not None else "(name unknown)"
    size = _size_of(stats) or 0
    if seeding:
        return (
            f"{name}: seeded {format_size(size)} for {elapsed:.1f} s, "
            f"uploaded {format_size(stats.uploaded)}"
        )
    fetched = max(0, stats.downloaded - resumed)
    if resumed and not fetched:
        return (
            f"{name}: {format_size(size)} already verified on disk, "
            f"uploaded {format_size(stats.uploaded)}"
        )
    average = fetched / elapsed if elapsed > 0 else 0.0
    this_run = f"{format_size(fetched)} of it in this run, " if resumed else ""
    return (
        f"{name}: {format_size(size)} verified in {elapsed:.1f} s "
        f"({this_run}average {format_rate(average)}), uploaded {format_size(stats.uploaded)}"
    )


def progress_record(stats: StatsView) -> dict[str, Any]:
    """The ``progress`` JSON object (documented in docs/cli.md)."""
    return {
        "event": "progress",
        "state": stats.state.name.lower(),
        "name": stats.name,
        "size": _size_of(stats),
        "downloaded": stats.downloaded,
        "uploaded": stats.uploaded,
        "percent": round(_percent(stats), 2),
        "download_rate": round(stats.download_rate, 1),
        "upload_rate": round(stats.upload_rate, 1),
        "eta": None if stats.eta is None else round(stats.eta, 1),
        "pieces_done": stats.pieces_done,
        "pieces_total": stats.pieces_total,
        "peers": stats.peers,
        "seeds": stats.seeds,
        "encrypted_peers": stats.encrypted_peers,
        "metadata_peers": stats.metadata_peers,
        "dht_nodes": stats.dht_nodes,
        "dht_status": stats.dht_status,
        "checked": None if stats.checked is None else round(stats.checked, 4),
    }


class Renderer(Protocol):
    """Receives records and statistics samples; owns its output stream."""

    #: Seconds between `progress` calls the command should make.
    interval: float

    def record(self, record: dict[str, Any]) -> None:
        """An event: ``listening``, ``metadata``, ``peer``, ``piece_failed``, ``banned``,
        ``complete`` or ``error``."""

    def progress(self, stats: StatsView) -> None:
        """A periodic statistics sample."""

    def finish(
        self, stats: StatsView, elapsed: float, *, seeding: bool = False, resumed: int = 0
    ) -> None:
        """The download is complete (or ``seed`` stopped: `seeding`): print the summary."""

    def close(self) -> None:
        """Stop drawing (idempotent); called on every exit path, Ctrl-C included."""


class QuietRenderer:
    """``--quiet``: nothing at all (errors still reach stderr through `main`)."""

    interval = PLAIN_INTERVAL

    def record(self, record: dict[str, Any]) -> None:
        del record

    def progress(self, stats: StatsView) -> None:
        del stats

    def finish(
        self, stats: StatsView, elapsed: float, *, seeding: bool = False, resumed: int = 0
    ) -> None:
        del stats, elapsed, seeding, resumed

    def close(self) -> None:
        pass


class JsonRenderer:
    """``--json``: one JSON object per line on stdout, flushed so a pipe sees it at once."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval

    def record(self, record: dict[str, Any]) -> None:
        print(json.dumps(record), flush=True)

    def progress(self, stats: StatsView) -> None:
        self.record(progress_record(stats))

    def finish(
        self, stats: StatsView, elapsed: float, *, seeding: bool = False, resumed: int = 0
    ) -> None:
        del stats, elapsed, seeding, resumed  # the `complete` record already carries the totals

    def close(self) -> None:
        pass


class PlainRenderer:
    """Not a terminal: a status line per interval, notable events as they happen."""

    def __init__(self, interval: float = PLAIN_INTERVAL) -> None:
        self.interval = interval

    def record(self, record: dict[str, Any]) -> None:
        line = _record_line(record)
        if line is not None:
            print(line, flush=True)

    def progress(self, stats: StatsView) -> None:
        print(status_line(stats), flush=True)

    def finish(
        self, stats: StatsView, elapsed: float, *, seeding: bool = False, resumed: int = 0
    ) -> None:
        print(summary_line(stats, elapsed, seeding=seeding, resumed=resumed), flush=True)

    def close(self) -> None:
        pass


def _record_line(record: dict[str, Any]) -> str | None:
    """Plain text for the events worth a line of their own (peers come and go too often)."""
    kind = record.get("event")
    if kind == "metadata":
        line = (
            f"metadata: {safe(str(record['name']))}, {format_size(int(record['size']))} "
            f"in {plural(int(record['pieces']), 'piece')}"
        )
        return line + (f"; wrote '{safe(record['torrent'])}'" if "torrent" in record else "")
    if kind == "listening":
        return f"listening on {record['host']}:{record['port']}"
    if kind == "banned":
        return f"banned {record['host']}:{record['port']}: {safe(str(record['reason']))}"
    if kind == "complete":
        return f"complete: {safe(str(record.get('name')))}"
    if kind == "resuming":
        return safe(str(record["text"]))
    return None


class LiveRenderer:
    """A terminal: a rich `Live` view redrawn in place, events printed above it.

    The view is transient: stopping it erases it, so the screen ends with the lines
    printed above it (events and the summary), not with a stale frame. Closed any
    other way (Ctrl-C, an error), it leaves the last status as a plain line, so the
    user still sees how far it got.
    """

    def __init__(self, console: Console, interval: float = LIVE_INTERVAL) -> None:
        self.interval = interval
        self._console = console
        self._live: Live | None = None
        self._last: StatsView | None = None
        self._start("starting…")

    def _start(self, view: RenderableType) -> None:
        from rich.live import Live

        self._live = Live(view, console=self._console, auto_refresh=False, transient=True)
        self._live.start()

    def record(self, record: dict[str, Any]) -> None:
        line = _record_line(record)
        if line is not None:
            self._console.print(line, markup=False, highlight=False)

    def progress(self, stats: StatsView) -> None:
        self._last = stats
        if self._live is None:  # after `finish`: `get` seeds on, so draw a new view
            self._start(_live_view(stats))
        else:
            self._live.update(_live_view(stats), refresh=True)

    def finish(
        self, stats: StatsView, elapsed: float, *, seeding: bool = False, resumed: int = 0
    ) -> None:
        # Stop the view first: a line printed while it runs can be erased with it.
        self._last = None
        self.close()
        line = summary_line(stats, elapsed, seeding=seeding, resumed=resumed)
        self._console.print(line, markup=False, highlight=False)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
            if self._last is not None:
                self._console.print(status_line(self._last), markup=False, highlight=False)
        self._last = None


def _live_view(stats: StatsView) -> RenderableType:
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 1))
    size = _size_of(stats)
    title = safe(stats.name) if stats.name is not None else "(name unknown)"
    if size is not None:
        title += f" ({format_size(size)})"
    grid.add_row(Text(title, style="bold"))
    if size is None:
        grid.add_row(Text(phase_text(stats)))
    else:
        bar = ProgressBar(total=float(size or 1), completed=float(stats.downloaded if size else 1))
        grid.add_row(bar)
        if _seeding(stats):
            line = (
                f"seeding  ↑ {format_rate(stats.upload_rate)}  "
                f"uploaded {format_size(stats.uploaded)} (ratio {_ratio(stats):.2f})"
            )
        else:
            line = (
                f"{phase_text(stats)} {_percent(stats):.1f}%  "
                f"↓ {format_rate(stats.download_rate)}  ↑ {format_rate(stats.upload_rate)}  "
                f"ETA {format_eta(stats.eta)}"
            )
        grid.add_row(Text(line))
    grid.add_row(
        Text(
            f"peers {stats.peers} (seeds {stats.seeds}, encrypted {stats.encrypted_peers})  "
            f"{_dht_text(stats)}"
        )
    )
    return grid


def make_renderer(*, json_lines: bool, quiet: bool, interval: float | None) -> Renderer:
    """The renderer for these options and for what stdout is right now."""
    if quiet:
        return QuietRenderer()
    if json_lines:
        return JsonRenderer(interval if interval is not None else 1.0)
    from rich.console import Console

    console = Console(file=sys.stdout, highlight=False)
    if console.is_terminal:
        return LiveRenderer(console, interval if interval is not None else LIVE_INTERVAL)
    return PlainRenderer(interval if interval is not None else PLAIN_INTERVAL)
