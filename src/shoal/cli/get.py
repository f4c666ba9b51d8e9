"""``shoal get``: download a magnet link or .torrent, show progress, then seed (or exit).

Exit codes follow `shoal.cli`: 0 complete (or seed target reached), 1 failure (including
``--timeout`` expiring with no peers or no metadata), 2 usage, 130 Ctrl-C. Ctrl-C
cancels the run inside `open_client`, whose exit writes the resume data, so running
the same command again continues where it stopped.

The engine's events become JSON-shaped *records* here (``metadata``, ``peer``,
``complete``, ``error``; ``progress`` is sampled from `Torrent.statistics()`), and
`shoal.cli.progress` renders them. `seed` reuses the helpers below.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import trio

from ..config import ClientConfig, EncryptionMode
from ..magnet import Magnet
from ..metainfo import MAX_FILES, Metainfo, build_metainfo
from ..torrent_events import (
    Completed,
    MetadataReceived,
    PeerBanned,
    PeerConnected,
    PeerDisconnected,
    PieceFailed,
    TorrentError,
    TorrentEvent,
)
from .common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    BindAction,
    CommandError,
    add_command,
    bind_hosts,
    parse_hostport,
    parse_port,
)
from .output import safe
from .privacy import add_privacy_options, privacy_config
from .progress import Renderer, make_renderer, resume_line
from .sources import load_magnet, load_metainfo

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..client import Client
    from ..torrent import Torrent, TorrentStats
    from .common import Parser, Subparsers

__all__ = [
    "add_client_options",
    "add_parser",
    "client_config",
    "event_record",
    "metadata_record",
    "parse_select",
    "pump_events",
    "report_resume",
    "run",
    "run_interruptible",
    "tick",
    "wait_checked",
]

_EXAMPLES = """\
  shoal get 'magnet:?xt=urn:btih:...' -o ~/Downloads        download, then seed until Ctrl-C
  shoal get photos.torrent --no-seed                        exit as soon as it is verified
  shoal get 'magnet:?xt=...' --metadata-only -o .           just write NAME.torrent
  shoal get photos.torrent --select 0,2-4 --seed-ratio 1.5  some files; seed to ratio 1.5
  shoal get 'magnet:?xt=...' --json | jq -c 'select(.event=="peer")'
"""


def add_parser(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "get",
        summary="download a magnet link or .torrent file, then seed it",
        description=(
            "Download SOURCE (a magnet: URI or a .torrent file) into DIR, finding peers "
            "through the DHT. After the download is verified shoal keeps seeding until "
            "Ctrl-C, --seed-ratio or --seed-time; --no-seed exits at once. Ctrl-C saves "
            "resume data: run the same command again to continue."
        ),
        examples=_EXAMPLES,
        run=run,
    )
    parser.add_argument("source", metavar="SOURCE", help="magnet: URI or .torrent file")
    parser.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        default=".",
        help="download directory (default: %(default)s)",
    )
    add_client_options(parser)
    parser.add_argument(
        "--peer",
        metavar="HOST:PORT",
        type=parse_hostport,
        action="append",
        default=[],
        help="also connect to this peer (repeatable)",
    )
    seeding = parser.add_mutually_exclusive_group()
    seeding.add_argument("--no-seed", action="store_true", help="exit once verified")
    seeding.add_argument(
        "--seed-ratio", metavar="R", type=_non_negative_float, help="stop seeding at ratio R"
    )
    parser.add_argument(
        "--seed-time", metavar="S", type=_non_negative_float, help="stop seeding after S seconds"
    )
    parser.add_argument(
        "--metadata-only", action="store_true", help="write DIR/NAME.torrent and exit"
    )
    parser.add_argument(
        "--select", metavar="LIST", type=parse_select, help="file indexes, e.g. 0,2-4"
    )
    parser.add_argument("--sequential", action="store_true", help="download pieces in order")
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        type=Path,
        help="keep DHT state and resume data here (default: %(default)s)",
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    parser.add_argument(
        "--timeout",
        metavar="S",
        type=_positive_float,
        help="fail if no peer / no metadata within S seconds",
    )


def add_client_options(parser: Parser) -> None:
    """Options ``get`` and ``seed`` share: network, encryption, output format."""
    parser.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        type=parse_hostport,
        action="append",
        help="DHT node to join through (repeatable; default: the public routers)",
    )
    parser.add_argument(
        "--bind",
        metavar="ADDR",
        action=BindAction,
        default="0.0.0.0",
        help=(
            "address for TCP and DHT sockets; once more with the other family (IPv4/IPv6) "
            "for a dual-stack DHT (default: %(default)s)"
        ),
    )
    parser.add_argument(
        "--port",
        type=parse_port,
        default=6881,
        help="TCP/UDP port, 0 for any free one (default: %(default)s)",
    )
    parser.add_argument(
        "--encryption",
        choices=[m.value for m in EncryptionMode],
        default=EncryptionMode.PREFER.value,
        help="peer encryption (MSE/PE): prefer, require or disable (default: %(default)s)",
    )
    parser.add_argument(
        "--transport",
        choices=["tcp", "utp", "both"],
        default="both",
        help="peer transport to dial: tcp, utp (BEP 29) or both (uTP first, TCP raced"
        " after 0.25 s); with utp or both, uTP connections are accepted too"
        " (default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--interval", type=_positive_float, help=argparse.SUPPRESS)
    add_privacy_options(parser)


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0: {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0: {text!r}")
    return value


#: A file index: ASCII digits only (``str.isdigit`` also accepts "²", which `int` refuses)
#: and short enough that `int` never meets its 4300-digit limit.
_INDEX: Final = re.compile(r"[0-9]{1,9}")


def parse_select(text: str) -> tuple[int, ...]:
    """``"0,2-4"`` → ``(0, 2, 3, 4)``: sorted, de-duplicated file indexes (BEP 53 syntax)."""
    indexes: set[int] = set()
    for item in text.split(","):
        first, dash, last = item.strip().partition("-")
        if not _INDEX.fullmatch(first) or (dash and not _INDEX.fullmatch(last)):
            raise argparse.ArgumentTypeError(f"{item!r} is not a file index or a-b range")
        lo, hi = int(first), int(last) if dash else int(first)
        if lo > hi:
            raise argparse.ArgumentTypeError(f"range {item!r} runs backwards")
        if hi >= MAX_FILES:  # also bounds the work: at most MAX_FILES indexes in total
            raise argparse.ArgumentTypeError(f"{item!r}: no torrent has {MAX_FILES} files")
        indexes.update(range(lo, hi + 1))
    return tuple(sorted(indexes))


_TRANSPORTS: Final = {"tcp": ("tcp",), "utp": ("utp",), "both": ("utp", "tcp")}


def client_config(args: argparse.Namespace, *, state_dir: Path | None = None) -> ClientConfig:
    """The `ClientConfig` for ``get``/``seed`` options; public routers only if none given."""
    from ..dht_client import DEFAULT_BOOTSTRAP

    bootstrap: list[tuple[str, int]] | None = args.bootstrap
    return ClientConfig(
        bind_host=args.bind,
        bind_hosts=hosts if len(hosts := bind_hosts(args)) > 1 else (),
        port=args.port,
        bootstrap=tuple(bootstrap) if bootstrap else DEFAULT_BOOTSTRAP,
        state_dir=state_dir,
        encryption=EncryptionMode(args.encryption),
        transports=_TRANSPORTS[args.transport],
        **privacy_config(args),
    )


def check_select(select: Sequence[int] | None, meta: Metainfo) -> None:
    """``--select`` must name files that exist (indexes into the info dict's file list)."""
    count = len(meta.info.files)
    bad = [i for i in select or () if i >= count]
    if bad:
        raise CommandError(
            f"--select: no file {bad[0]} in {safe(meta.info.name)} (files are 0-{count - 1}); "
            "see 'shoal info --all'"
        )


def _load_source(text: str) -> Magnet | Metainfo:
    if text[:7].lower() == "magnet:":
        return load_magnet(text)
    return load_metainfo(Path(text))


def event_record(event: TorrentEvent) -> dict[str, Any] | None:
    """The JSON record for an engine event, or None for events the CLI does not show.

    ``complete`` is built by the command (it carries totals), so `Completed` maps to None.
    """
    match event:
        case MetadataReceived(name=name, size=size, pieces=pieces):
            return {"event": "metadata", "name": name, "size": size, "pieces": pieces}
        case PeerConnected(addr=(host, port), client=client, encrypted=enc, incoming=inc):
            return {
                "event": "peer",
                "host": host,
                "port": port,
                "client": client,
                "encrypted": enc,
                "incoming": inc,
            }
        case PeerDisconnected(addr=(host, port), reason=reason):
            return {"event": "peer_left", "host": host, "port": port, "reason": reason}
        case PieceFailed(index=index, peers=peers):
            return {"event": "piece_failed", "index": index, "peers": [list(p) for p in peers]}
        case PeerBanned(addr=(host, port), reason=reason):
            return {"event": "banned", "host": host, "port": port, "reason": reason}
        case TorrentError(message=message):
            return {"event": "error", "message": message}
        case _:
            return None


@dataclass
class _Watch:
    """What the event pump has seen, for the ``--timeout`` watchdog and the summary."""

    peers_seen: int = 0
    completed: trio.Event = field(default_factory=trio.Event)


async def pump_events(torrent: Torrent, renderer: Renderer, watch: _Watch | None) -> None:
    """Render the torrent's events until cancelled; a `TorrentError` fails the command."""
    if watch is None:
        watch = _Watch()
    async for event in torrent.events():
        record = event_record(event)
        if record is not None:
            renderer.record(record)
        if isinstance(event, PeerConnected):
            watch.peers_seen += 1
        elif isinstance(event, Completed):
            watch.completed.set()
        elif isinstance(event, TorrentError):
            raise CommandError(error_hint(safe(event.message)))


async def tick(torrent: Torrent, renderer: Renderer) -> None:
    """Sample the statistics every `renderer.interval` seconds, starting now."""
    while True:
        renderer.progress(torrent.statistics())
        await trio.sleep(renderer.interval)


async def _check_select_later(torrent: Torrent, select: Sequence[int]) -> None:
    check_select(select, await torrent.wait_metadata())


async def _watchdog(torrent: Torrent, watch: _Watch, patience: float) -> None:
    """``--timeout``: fail when S seconds pass without metadata or without a single peer."""
    await trio.sleep(patience)
    if torrent.metainfo is None:
        stats = torrent.statistics()
        raise CommandError(
            f"no metadata within {patience:g} s ({stats.metadata_peers} peers had it); "
            "check the magnet link and --bootstrap, or raise --timeout"
        )
    if watch.peers_seen == 0 and not watch.completed.is_set():
        raise CommandError(
            f"no peers within {patience:g} s; check --bootstrap / --peer, or raise --timeout"
        )


def complete_record(stats: TorrentStats, elapsed: float, resumed: int = 0) -> dict[str, Any]:
    return {
        "event": "complete",
        "name": stats.name,
        "size": stats.selected_size,
        "downloaded": stats.downloaded,
        "resumed": resumed,
        "uploaded": stats.uploaded,
        "elapsed": round(elapsed, 3),
    }


#: States before the data on disk has been checked (names, so that this module does not
#: import the engine before it is needed).
CHECKING_STATES: Final = frozenset({"CHECKING", "FINDING_PEERS", "FETCHING_METADATA", "PAUSED"})
#: How often `wait_checked` looks at the state.
_CHECK_POLL: Final = 0.05


async def wait_checked(torrent: Torrent) -> TorrentStats:
    """Wait until the metadata is known and the data on disk checked; the stats then."""
    while True:
        stats = torrent.statistics()
        if stats.state.name not in CHECKING_STATES:
            return stats
        await trio.sleep(_CHECK_POLL)


async def report_resume(torrent: Torrent, renderer: Renderer) -> int:
    """Say how much a rerun found on disk ("resuming at N%"); returns those bytes.

    They are `Torrent.resumed_bytes`, fixed when the data phase opened: on loopback the
    engine may have fetched more before this poll sees the state change.
    """
    stats = await wait_checked(torrent)
    resumed = torrent.resumed_bytes or 0
    line = resume_line(dataclasses.replace(stats, downloaded=resumed))
    if line is not None:
        renderer.record({"event": "resuming", "verified": resumed, "text": line})
    return resumed


def run(args: argparse.Namespace) -> int:
    source = _load_source(args.source)
    if isinstance(source, Metainfo):
        check_select(args.select, source)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise CommandError(f"'{out}' is not a directory; give -o an existing or new directory")
    if not args.metadata_only:
        check_writable(out)
    renderer = make_renderer(json_lines=args.json, quiet=args.quiet, interval=args.interval)
    try:
        return trio.run(_main, args, source, out, renderer)
    finally:
        renderer.close()


def check_writable(out: Path) -> None:
    """Create `out` if needed and prove we can write in it, before any peer is dialled.

    Files are opened lazily, so without this an unwritable directory would surface
    only when the first piece verifies, after minutes of downloading.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise CommandError(
            f"output directory '{out}' is not writable ({exc.strerror or exc}); "
            "choose another with -o"
        ) from exc


#: Storage failure text (from `shoal.storage.files`) → what the user can do about it.
_STORAGE_HINTS: Final = (
    ("disk full", "free some space, or download elsewhere with -o"),
    ("permission denied", "choose a writable directory with -o"),
    ("read-only file system", "choose a writable directory with -o"),
)


def error_hint(message: str) -> str:
    """`message` with advice appended when it names a failure the user can fix."""
    lowered = message.lower()
    for needle, hint in _STORAGE_HINTS:
        if needle in lowered:
            return f"{message}; {hint}"
    return message


async def run_interruptible(body: Any, *args: Any) -> bool:
    """Run ``await body(*args)`` until it returns or SIGINT arrives; True if interrupted.

    Ctrl-C cancels `body` (so `open_client` inside it exits cleanly and saves resume
    data) instead of raising KeyboardInterrupt at an arbitrary checkpoint.
    """
    interrupted = False
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def watch_signals() -> None:
                nonlocal interrupted
                async for _ in signals:
                    interrupted = True
                    nursery.cancel_scope.cancel()
                    return

            async def run_body() -> None:
                await body(*args)
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch_signals)
            nursery.start_soon(run_body)
    return interrupted


async def _main(
    args: argparse.Namespace, source: Magnet | Metainfo, out: Path, renderer: Renderer
) -> int:
    config = client_config(args, state_dir=args.state_dir)
    if await run_interruptible(_session, args, source, out, renderer, config):
        renderer.close()  # take the live view down before writing to the terminal
        saved = "" if args.metadata_only else "; resume data saved"
        print(f"shoal: interrupted{saved}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


async def _session(
    args: argparse.Namespace,
    source: Magnet | Metainfo,
    out: Path,
    renderer: Renderer,
    config: ClientConfig,
) -> None:
    from ..client import open_client

    start = trio.current_time()
    async with open_client(config) as client:
        host, port = client.listen_address
        renderer.record({"event": "listening", "host": host, "port": port})
        if args.metadata_only:
            await _metadata_only(client, source, out, renderer, args.timeout)
            return
        torrent = await client.add(
            source,
            save_to=out,
            peers=list(args.peer),
            select=list(args.select) if args.select is not None else None,
            sequential=args.sequential,
            seed=not args.no_seed,
        )
        if isinstance(source, Metainfo):
            renderer.record(metadata_record(source))
        watch = _Watch()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump_events, torrent, renderer, watch)
            nursery.start_soon(tick, torrent, renderer)
            if args.timeout is not None:
                nursery.start_soon(_watchdog, torrent, watch, args.timeout)
            if isinstance(source, Magnet) and args.select is not None:
                nursery.start_soon(_check_select_later, torrent, args.select)
            resumed = await report_resume(torrent, renderer)
            await torrent.wait_complete()
            stats = torrent.statistics()
            elapsed = trio.current_time() - start
            renderer.record(complete_record(stats, elapsed, resumed))
            renderer.finish(stats, elapsed, resumed=resumed)
            if not args.no_seed:
                await _seed_until_target(torrent, args.seed_ratio, args.seed_time)
            nursery.cancel_scope.cancel()


async def _seed_until_target(torrent: Torrent, ratio: float | None, seconds: float | None) -> None:
    """Seed until the ratio or the time target is met (whichever first), else forever."""
    if ratio is None and seconds is None:
        await trio.sleep_forever()
    with trio.move_on_after(seconds if seconds is not None else math.inf):
        while True:
            if ratio is not None and torrent.statistics().ratio >= ratio:
                return
            await trio.sleep(0.5)


async def _metadata_only(
    client: Client,
    source: Magnet | Metainfo,
    out: Path,
    renderer: Renderer,
    patience: float | None,
) -> None:
    if isinstance(source, Magnet):
        meta: Metainfo | None = None
        with trio.move_on_after(patience if patience is not None else math.inf):
            meta = await client.fetch_metadata(source)
        if meta is None:
            raise CommandError(
                f"no metadata within {patience:g} s; check the magnet link and --bootstrap, "
                "or raise --timeout"
            )
        source = meta
    _write_torrent(source, out, renderer)


def _write_torrent(meta: Metainfo, out: Path, renderer: Renderer) -> None:
    info = meta.info
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{info.name}.torrent"
    path.write_bytes(build_metainfo(info.raw))
    renderer.record(metadata_record(meta) | {"torrent": str(path)})


def metadata_record(meta: Metainfo) -> dict[str, Any]:
    """The ``metadata`` record for a torrent whose info dict we already have."""
    info = meta.info
    return {
        "event": "metadata",
        "name": info.name,
        "size": info.total_length,
        "pieces": info.num_pieces,
        "info_hash": str(info.info_hash),
    }
