"""Privacy and control options of ``get`` and ``seed``: proxy, IP filter, rate limits,
anonymous mode. One module so that get.py only adds a line each (others edit it too).

``--ip-filter`` is read here (the parser itself is pure, `shoal.ipfilter`): a bad line
is reported on stderr with its number and skipped; an unreadable or corrupt file is
a one-line error.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ..errors import DecodeError
from ..ipfilter import MAX_FILTER_BYTES, IPFilter
from ..ipfilter_load import load_ip_filter_bytes
from ..socks5 import parse_proxy_url
from .common import CommandError
from .output import safe

if TYPE_CHECKING:
    from .common import Parser

__all__ = [
    "add_privacy_options",
    "ip_filter_option",
    "load_ip_filter",
    "parse_proxy_option",
    "parse_rate",
    "privacy_config",
]

#: Bad lines printed before "... and N more".
MAX_REPORTED_LINES: Final = 10
_RATE: Final = re.compile(r"([0-9]{1,12}(?:\.[0-9]{1,6})?)([kKmMgG]?)(?:i?[bB](?:/s)?)?")
_UNITS: Final = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_rate(text: str) -> int | None:
    """``10M`` → 10 MiB/s in bytes per second; ``500k``, ``1.5M``, ``100000``; 0: none."""
    match = _RATE.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a rate: {text!r} (examples: 500k, 10M)")
    value = int(float(match[1]) * _UNITS[match[2].lower()])
    return value or None


def parse_proxy_option(text: str) -> str:
    """argparse type of ``--proxy`` (here and in ``shoal dht``): the URL, checked."""
    try:
        parse_proxy_url(text)
    except DecodeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_privacy_options(parser: Parser) -> None:
    parser.add_argument(
        "--proxy",
        metavar="socks5://[USER:PASS@]HOST:PORT",
        type=parse_proxy_option,
        help="every peer connection (CONNECT) and the DHT and uTP (UDP ASSOCIATE) through"
        " this SOCKS5 proxy, names resolved by the proxy; if it is down nothing goes direct"
        " (the DHT waits for it). Incoming connections are off",
    )
    parser.add_argument(
        "--ip-filter",
        metavar="FILE",
        type=Path,
        help="never connect to or accept addresses in this eMule ipfilter.dat or"
        " PeerGuardian P2P list (gzip allowed)",
    )
    parser.add_argument(
        "--max-download-rate",
        metavar="RATE",
        type=parse_rate,
        help="client-wide download limit, e.g. 500k or 10M (bytes/s; k, M = KiB, MiB)",
    )
    parser.add_argument(
        "--max-upload-rate",
        metavar="RATE",
        type=parse_rate,
        help="client-wide upload limit, e.g. 500k or 10M",
    )
    parser.add_argument(
        "--anonymous",
        action="store_true",
        help="no client name or id prefix, no incoming connections, the DHT only through"
        " --proxy (docs/security.md)",
    )


def load_ip_filter(path: Path) -> IPFilter:
    """Read and parse a filter list; bad lines are reported on stderr and skipped."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILTER_BYTES + 1)
    except OSError as exc:
        raise CommandError(f"cannot read IP filter '{path}': {exc.strerror or exc}") from exc
    try:
        flt, bad = load_ip_filter_bytes(data)
    except DecodeError as exc:
        raise CommandError(f"IP filter '{path}': {exc}") from exc
    for line in bad[:MAX_REPORTED_LINES]:
        print(f"shoal: IP filter {safe(str(path))} {line}; skipped", file=sys.stderr)
    if len(bad) > MAX_REPORTED_LINES:
        print(f"shoal: ... and {len(bad) - MAX_REPORTED_LINES} more bad lines", file=sys.stderr)
    return flt


def ip_filter_option(args: argparse.Namespace) -> IPFilter | None:
    """The list ``--ip-filter`` names, read and parsed; None without the option."""
    path: Path | None = getattr(args, "ip_filter", None)
    return load_ip_filter(path) if path is not None else None


def privacy_config(args: argparse.Namespace) -> dict[str, Any]:
    """The `ClientConfig` keyword arguments of these options."""
    return {
        "proxy": getattr(args, "proxy", None),
        "ip_filter": ip_filter_option(args),
        "anonymous": bool(getattr(args, "anonymous", False)),
        "max_download_rate": getattr(args, "max_download_rate", None),
        "max_upload_rate": getattr(args, "max_upload_rate", None),
    }
