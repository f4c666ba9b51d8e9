"""``shoal seed``: serve a .torrent's data from a directory until Ctrl-C.

The data is hash-checked first; if any piece is missing or wrong the command fails
(exit 1) rather than quietly turning into a download. While seeding it announces on
the DHT and shows peers and upload rate. Ctrl-C stops within a second with exit 130.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from .common import EXIT_INTERRUPTED, CommandError, add_command, parse_hostport
from .get import (
    add_client_options,
    client_config,
    metadata_record,
    pump_events,
    run_interruptible,
    tick,
    wait_checked,
)
from .output import safe
from .progress import Renderer, make_renderer
from .sources import load_metainfo

if TYPE_CHECKING:
    import argparse

    from ..config import ClientConfig
    from ..metainfo import Metainfo
    from ..torrent import Torrent
    from .common import Subparsers

__all__ = ["add_parser", "run"]

_EXAMPLES = """\
  shoal seed photos.torrent --data ~/Pictures             serve ~/Pictures/photos
  shoal seed photos.torrent --data . --port 51413 --json  JSON lines (peers, progress)
  shoal seed photos.torrent --data . --encryption require only MSE/RC4 peers
  shoal seed photos.torrent --data . --peer 127.0.0.1:6881 also dial this peer
"""


def add_parser(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "seed",
        summary="seed a .torrent from existing data until Ctrl-C",
        description=(
            "Check that DIR holds TORRENT's data, then serve it to peers found through "
            "the DHT until Ctrl-C. DIR is the directory that contains the torrent's "
            "file (or its top-level directory), as for 'shoal get -o DIR'."
        ),
        examples=_EXAMPLES,
        run=run,
    )
    parser.add_argument("torrent", metavar="TORRENT", help=".torrent file")
    parser.add_argument(
        "--data", metavar="DIR", required=True, type=Path, help="directory holding the data"
    )
    add_client_options(parser)
    parser.add_argument(
        "--peer",
        metavar="HOST:PORT",
        type=parse_hostport,
        action="append",
        default=[],
        help="also connect to this peer (repeatable): for clients that learn no "
        "loopback or LAN peers from the DHT",
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")


def run(args: argparse.Namespace) -> int:
    meta = load_metainfo(Path(args.torrent))
    data: Path = args.data
    if not data.is_dir():
        raise CommandError(f"'{data}' is not a directory; --data names the download directory")
    renderer = make_renderer(json_lines=args.json, quiet=args.quiet, interval=args.interval)
    try:
        return trio.run(_main, args, meta, data, renderer)
    finally:
        renderer.close()


async def _main(args: argparse.Namespace, meta: Metainfo, data: Path, renderer: Renderer) -> int:
    config = client_config(args)
    await run_interruptible(_session, meta, data, renderer, config, args.peer)
    # Seeding has no natural end: reaching here means Ctrl-C (or SIGINT from a script).
    renderer.close()
    print("shoal: interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


async def _session(
    meta: Metainfo,
    data: Path,
    renderer: Renderer,
    config: ClientConfig,
    peers: list[tuple[str, int]],
) -> None:
    from ..client import open_client

    start = trio.current_time()
    async with open_client(config) as client:
        host, port = client.listen_address
        renderer.record({"event": "listening", "host": host, "port": port})
        renderer.record(metadata_record(meta))
        torrent = await client.add(meta, save_to=data, seed=True, peers=peers)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump_events, torrent, renderer, None)
            await _require_complete(torrent, data)
            nursery.start_soon(tick, torrent, renderer)
            try:
                await trio.sleep_forever()
            finally:
                elapsed = trio.current_time() - start
                renderer.finish(torrent.statistics(), elapsed, seeding=True)


async def _require_complete(torrent: Torrent, data: Path) -> None:
    """Wait for the check of existing data; fail unless every piece verified."""
    stats = await wait_checked(torrent)
    if stats.state.name != "SEEDING":
        raise CommandError(
            f"'{safe(str(data))}' holds {stats.pieces_done} of {stats.pieces_total} pieces of "
            f"{safe(stats.name or '?')}; point --data at the directory that contains it"
        )
