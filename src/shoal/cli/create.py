"""``shoal create``: hash a file or directory into a .torrent and print its magnet link."""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

from ..create import create_torrent
from ..magnet import Magnet, format_magnet
from ..metainfo import MAX_PIECE_LENGTH, MIN_PIECE_LENGTH, parse_metainfo
from .common import EXIT_OK, CommandError, add_command
from .output import format_size, hashing_progress, plural, print_json, safe

if TYPE_CHECKING:
    from .common import Subparsers

__all__ = ["MAX_PIECE_SIZE", "MIN_PIECE_SIZE", "add_parser", "parse_piece_size", "run"]

# The accepted range is the parser's (`shoal.metainfo`): a power of two in [16 KiB,
# 64 MiB], BEP 52's rule, so that every torrent we write is one we can read back.
MIN_PIECE_SIZE: Final = MIN_PIECE_LENGTH
MAX_PIECE_SIZE: Final = MAX_PIECE_LENGTH

_SIZE = re.compile(r"\s*([0-9]{1,12})\s*(?:([kKmM])(?:i?[bB])?)?\s*")
_MULTIPLIERS: Final = {"": 1, "k": 1024, "m": 1024 * 1024}

_EXAMPLES = """\
  shoal create ./photos                      writes ./photos.torrent, prints the magnet link
  shoal create film.mkv -o /tmp/film.torrent --piece-size 1M
  shoal create ./data --private --comment 'nightly build' --force
  shoal create ./data --json | jq -r .info_hash
"""


def add_parser(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "create",
        summary="make a .torrent from a file or directory",
        description=(
            "Hash PATH (a file, or a directory with all its files) into a .torrent file and\n"
            "print the torrent's magnet link on stdout. Hashing progress is shown on stderr\n"
            "when it is a terminal."
        ),
        examples=_EXAMPLES,
        run=run,
    )
    parser.add_argument("path", metavar="PATH", type=Path, help="file or directory to share")
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE.torrent",
        type=Path,
        help="where to write the .torrent (default: ./<name>.torrent)",
    )
    parser.add_argument(
        "--piece-size",
        metavar="N",
        type=parse_piece_size,
        help="piece length: a power of two from 16K to 64M, e.g. 256K, 1M, 16384 "
        "(default: chosen from the total size)",
    )
    parser.add_argument("--comment", metavar="TEXT", help="free-text comment stored in the file")
    parser.add_argument(
        "--private", action="store_true", help="set the BEP 27 private flag (disables the DHT)"
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing output file")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the magnet link"
    )


def parse_piece_size(text: str) -> int:
    """``'256K' -> 262144``, ``'1M'``, ``'16384'``; K/M are binary (KiB/MiB).

    Raises:
        argparse.ArgumentTypeError: not a size, or not a power of two in range; argparse
            turns it into a usage error (exit status 2).
    """
    match = _SIZE.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 256K, 1M or 16384)")
    size = int(match[1]) * _MULTIPLIERS[(match[2] or "").lower()]
    if size & (size - 1) or not MIN_PIECE_SIZE <= size <= MAX_PIECE_SIZE:
        raise argparse.ArgumentTypeError(
            f"{text!r} is {size} bytes; piece size must be a power of two from 16K to 64M"
        )
    return size


def run(args: argparse.Namespace) -> int:
    source: Path = args.path
    _check_source(source)
    output = _output_path(source, args.output, force=args.force)
    with hashing_progress(f"hashing {source.name or source}") as progress:
        try:
            torrent = create_torrent(
                source,
                piece_length=args.piece_size,
                comment=args.comment,
                private=args.private,
                creation_date=int(time.time()),
                progress=progress,
            )
        except ValueError as exc:
            raise CommandError(f"cannot make a torrent from '{source}': {exc}") from exc
    _write(output, torrent, force=args.force)
    _report(output, torrent, as_json=args.json)
    return EXIT_OK


def _check_source(source: Path) -> None:
    try:
        source.stat()
    except OSError as exc:
        raise CommandError(f"cannot read '{source}': {exc.strerror or exc}") from exc


def _output_path(source: Path, output: Path | None, *, force: bool) -> Path:
    """Choose and vet the output path *before* hashing, which may take minutes."""
    if output is None:
        name = source.resolve().name
        if not name:
            raise CommandError(f"cannot name a torrent after '{source}'; use -o FILE.torrent")
        output = Path(f"{name}.torrent")
    if source.is_dir() and output.resolve().is_relative_to(source.resolve()):
        # Written there, the .torrent would be hashed into the next run's torrent.
        raise CommandError(
            f"'{output}' is inside '{source}', which is being shared; "
            f"write it elsewhere with -o ../{output.name}"
        )
    if output.exists() and not force:
        raise CommandError(f"'{output}' already exists; use --force to overwrite it")
    if not output.parent.is_dir():
        raise CommandError(f"cannot write '{output}': its directory does not exist")
    return output


def _write(output: Path, torrent: bytes, *, force: bool) -> None:
    try:
        # "x" refuses to clobber a file that appeared while we were hashing.
        with output.open("wb" if force else "xb") as f:
            f.write(torrent)
    except FileExistsError as exc:
        raise CommandError(f"'{output}' already exists; use --force to overwrite it") from exc
    except OSError as exc:
        raise CommandError(f"cannot write '{output}': {exc.strerror or exc}") from exc


def _report(output: Path, torrent: bytes, *, as_json: bool) -> None:
    info = parse_metainfo(torrent).info
    magnet = format_magnet(Magnet(info.info_hash, display_name=info.name))
    files = [f for f in info.files if not f.pad]
    if as_json:
        print_json(
            {
                "torrent": str(output),
                "name": info.name,
                "info_hash": str(info.info_hash),
                "total_size": info.total_length,
                "piece_length": info.piece_length,
                "num_pieces": info.num_pieces,
                "num_files": len(files),
                "private": info.private,
                "magnet": magnet,
            }
        )
        return
    print(
        f"shoal: wrote '{safe(str(output))}': {plural(len(files), 'file')}, "
        f"{format_size(info.total_length)} in {plural(info.num_pieces, 'piece')} "
        f"of {format_size(info.piece_length)}",
        file=sys.stderr,
    )
    print(magnet)
