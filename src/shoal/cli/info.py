"""``shoal info``: show what a .torrent file or a magnet link describes.

The ``--json`` output is a stable interface (documented in docs/cli.md): keys are
only ever added, never renamed or removed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..magnet import Magnet, format_magnet
from .common import EXIT_OK, add_command
from .output import format_size, format_timestamp, print_json, safe
from .sources import load_magnet, load_metainfo

if TYPE_CHECKING:
    import argparse

    from ..metainfo import Metainfo
    from .common import Subparsers

__all__ = ["add_parser", "magnet_summary", "run", "torrent_summary"]

#: Fixed so that reports line up the same way whichever optional rows are present.
_LABEL_WIDTH = len("selected files:") + 1

_EXAMPLES = """\
  shoal info photos.torrent                  name, size, files, info-hash, magnet link
  shoal info photos.torrent --all            also list BEP 47 pad files
  shoal info 'magnet:?xt=urn:btih:...&dn=x'  decode a magnet link
  shoal info photos.torrent --json | jq '.files[].path'
"""


def add_parser(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "info",
        summary="show the contents of a .torrent file or magnet link",
        description="Describe SOURCE, a .torrent file or magnet URI, without downloading anything.",
        examples=_EXAMPLES,
        run=run,
    )
    parser.add_argument("source", metavar="SOURCE", help=".torrent file path or magnet: URI")
    parser.add_argument("--all", action="store_true", help="also list pad files (BEP 47)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    source: str = args.source
    if source[:7].lower() == "magnet:":
        magnet = load_magnet(source)
        if args.json:
            print_json(magnet_summary(magnet))
        else:
            _print_magnet(magnet)
    else:
        meta = load_metainfo(Path(source))
        if args.json:
            print_json(torrent_summary(meta, include_pad=args.all))
        else:
            _print_torrent(meta, include_pad=args.all)
    return EXIT_OK


def torrent_summary(meta: Metainfo, *, include_pad: bool) -> dict[str, object]:
    """The JSON shape of a .torrent (keys documented in docs/cli.md)."""
    info = meta.info
    trackers = _flat_trackers(meta)
    magnet = Magnet(info.info_hash, display_name=info.name, trackers=trackers)
    return {
        "type": "torrent",
        "name": info.name,
        "info_hash": str(info.info_hash),
        "total_size": info.total_length,
        "piece_length": info.piece_length,
        "num_pieces": info.num_pieces,
        "private": info.private,
        "multi_file": info.multi_file,
        "files": [
            {"path": "/".join(f.path), "size": f.length, "offset": f.offset, "pad": f.pad}
            for f in info.files
            if include_pad or not f.pad
        ],
        "comment": meta.comment,
        "created_by": meta.created_by,
        "creation_date": meta.creation_date,
        "trackers": list(trackers),
        "nodes": [{"host": host, "port": port} for host, port in meta.nodes],
        "magnet": format_magnet(magnet),
    }


def magnet_summary(magnet: Magnet) -> dict[str, object]:
    """The JSON shape of a magnet link (keys documented in docs/cli.md)."""
    select = magnet.select_only
    return {
        "type": "magnet",
        "name": magnet.display_name,
        "info_hash": str(magnet.info_hash),
        "trackers": list(magnet.trackers),
        "peers": [{"host": host, "port": port} for host, port in magnet.peers],
        "select_only": None if select is None else [[lo, hi] for lo, hi in select],
        "magnet": format_magnet(magnet),
    }


def _flat_trackers(meta: Metainfo) -> tuple[str, ...]:
    """BEP 12 tiers flattened, de-duplicated, in order; falls back to ``announce``."""
    urls = [url for tier in meta.announce_list for url in tier]
    if meta.announce is not None:
        urls.insert(0, meta.announce)
    return tuple(dict.fromkeys(urls))


def _print_torrent(meta: Metainfo, *, include_pad: bool) -> None:
    info = meta.info
    trackers = _flat_trackers(meta)
    rows = [
        ("name", safe(info.name)),
        ("info-hash", str(info.info_hash)),
        ("total size", f"{format_size(info.total_length)} ({info.total_length} bytes)"),
        ("pieces", f"{info.num_pieces} × {format_size(info.piece_length)}"),
        ("private", "yes" if info.private else "no"),
    ]
    if meta.comment is not None:
        rows.append(("comment", safe(meta.comment)))
    if meta.created_by is not None:
        rows.append(("created by", safe(meta.created_by)))
    if meta.creation_date is not None:
        rows.append(("creation date", format_timestamp(meta.creation_date)))
    if trackers:
        rows.append(("trackers", "\n".join(safe(t) for t in trackers)))
    rows.append(("DHT nodes", "\n".join(_hostport(h, p) for h, p in meta.nodes) or "(none)"))
    magnet = Magnet(info.info_hash, display_name=info.name, trackers=trackers)
    rows.append(("magnet", safe(format_magnet(magnet))))
    _print_rows(rows)
    files = [f for f in info.files if include_pad or not f.pad]
    print(f"files ({len(files)}):")
    sizes = [format_size(f.length) for f in files]
    width = max((len(size) for size in sizes), default=0)
    for f, size in zip(files, sizes, strict=True):
        pad = "  [pad]" if f.pad else ""
        print(f"  {size:>{width}}  {safe('/'.join(f.path))}{pad}")


def _print_magnet(magnet: Magnet) -> None:
    selected = "all"
    if magnet.select_only is not None:
        selected = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in magnet.select_only)
    name = magnet.display_name
    _print_rows(
        [
            ("info-hash", str(magnet.info_hash)),
            ("name", "(none)" if name is None else safe(name)),
            ("trackers", "\n".join(safe(t) for t in magnet.trackers) or "(none)"),
            ("peers", "\n".join(_hostport(h, p) for h, p in magnet.peers) or "(none)"),
            ("selected files", selected),
            ("magnet", safe(format_magnet(magnet))),
        ]
    )


def _print_rows(rows: list[tuple[str, str]]) -> None:
    """``label:  value`` lines, values aligned; multi-line values continue under the value."""
    width = _LABEL_WIDTH
    for label, value in rows:
        first, *rest = value.split("\n")
        print(f"{label + ':':<{width}}{first}")
        for line in rest:
            print(" " * width + line)


def _hostport(host: str, port: int) -> str:
    """``host:port``, with IPv6 literals bracketed as in URLs."""
    host = safe(host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
