"""``shoal dht put|get|keygen`` (BEP 44 items) and ``shoal dht get-peers --scrape`` (BEP 33).

Each command runs a short-lived DHT node (the same ``--bind``/``--bootstrap`` options
as ``shoal dht``), does one lookup and exits. Registered by `shoal.cli.dht`, which
passes in its node-option helper so that this module does not import it back.

Values: ``put VALUE`` stores VALUE as a bencoded string (its UTF-8 bytes). ``get``
prints the value decoded to JSON: byte strings as text when they are UTF-8, else as
``{"hex": ...}``; integers, lists and dicts as themselves (non-UTF-8 dict keys as hex).
"""

from __future__ import annotations

import argparse
import json
import os
import stat
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from ..bencoding import Bencoded, decode, encode
from ..dht import bep44
from ..dht.bep44 import REPUT_INTERVAL
from ..errors import DecodeError
from .common import (
    EXIT_FAILURE,
    EXIT_OK,
    CommandError,
    add_global_options,
    bind_hosts,
    positive_seconds,
)
from .privacy import ip_filter_option

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from ..dht.events import ItemStored
    from ..dht_client import DHT
    from ..ids import InfoHash
    from .common import Subparsers

__all__ = ["add_parsers", "json_value", "open_node", "proxy_waiting", "run_scrape"]

NodeOptions = "Callable[[argparse.ArgumentParser], None]"


def add_parsers(
    sub: Subparsers, add_node_options: Callable[[argparse.ArgumentParser], None]
) -> None:
    """Register ``put``, ``get`` and ``keygen`` under ``shoal dht``."""
    put = _subparser(sub, "put", "store a BEP 44 item (immutable, or mutable with --key)")
    put.add_argument("value", metavar="VALUE", help="the value (stored as a bencoded string)")
    put.add_argument("--key", metavar="KEYFILE", help="ed25519 key file: store a mutable item")
    put.add_argument("--salt", default="", help="mutable items: salt (up to 64 bytes)")
    put.add_argument("--seq", type=int, help="mutable items: sequence number (default: next)")
    put.add_argument(
        "--cas",
        type=_seq_number,
        metavar="N",
        help="mutable items: replace only seq N (BEP 44 compare-and-swap; default: the "
        "seq read when --seq is absent)",
    )
    put.add_argument(
        "--keep",
        action="store_true",
        help="stay running and put the item again every --keep-interval (BEP 44 items "
        "expire after about 2 hours) until Ctrl-C",
    )
    put.add_argument(
        "--keep-interval",
        metavar="SECONDS",
        type=positive_seconds(1e9),
        default=REPUT_INTERVAL,
        help=f"with --keep: seconds between puts (default {REPUT_INTERVAL:g}, BEP 44's hourly)",
    )
    add_node_options(put)
    put.set_defaults(run=_run(_put))
    get = _subparser(sub, "get", "fetch a BEP 44 item by target (40 hex) or public key (64 hex)")
    get.add_argument("target", metavar="TARGET", help="40 hex: immutable; 64 hex: public key")
    get.add_argument("--salt", default="", help="mutable items: the salt it was stored with")
    add_node_options(get)
    get.set_defaults(run=_run(_get))
    keygen = _subparser(sub, "keygen", "write a new ed25519 private key for mutable items")
    keygen.add_argument("keyfile", metavar="KEYFILE", help="file to create (not overwritten)")
    keygen.set_defaults(run=_keygen)


def _seq_number(text: str) -> int:
    """A BEP 44 sequence number: 0 to 2**63 - 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a sequence number: {text!r}") from None
    if not 0 <= value < bep44.MAX_SEQ:  # N + 1 is put, so N itself stays below the top
        raise argparse.ArgumentTypeError(f"must be from 0 to {bep44.MAX_SEQ - 1}: {text!r}")
    return value


def _subparser(sub: Subparsers, name: str, text: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=text, description=text + ".")
    add_global_options(parser, top_level=False)
    return parser


def _run(
    fn: Callable[[argparse.Namespace, DHT], Any],
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        async def main() -> int:
            async with open_node(args) as dht:
                result: int = await fn(args, dht)
                return result

        return trio.run(main)

    return run


@asynccontextmanager
async def open_node(args: argparse.Namespace) -> AsyncIterator[DHT]:
    """A node for one command, from the ``shoal dht`` options: a socket per ``--bind``
    (one per address family), so the command's lookups run on both DHTs (BEP 32).

    With ``--proxy`` the proxy is checked first, as `open_client` does: one clear
    error if it is down or refuses our credentials, rather than a node that waits
    silently. ``--anonymous`` without ``--proxy`` is refused: a DHT node announces
    its own address to everyone it talks to.
    """
    from ..dht_client import DEFAULT_BOOTSTRAP, open_dht_node
    from ..net.socks import check_proxy
    from ..socks5 import parse_proxy_url

    text: str | None = getattr(args, "proxy", None)
    anonymous = bool(getattr(args, "anonymous", False))
    if anonymous and text is None:
        raise CommandError("--anonymous needs --proxy: a DHT node shows its address to every node")
    hosts = bind_hosts(args)
    proxy = None if text is None else parse_proxy_url(text)
    # The connection to the proxy leaves from the first --bind address unless wildcard.
    proxy_bind_host = "" if hosts[0] in ("0.0.0.0", "::", "") else hosts[0]
    if proxy is not None:
        await check_proxy(proxy, bind_host=proxy_bind_host or None)
    given: list[tuple[str, int]] | None = args.bootstrap
    async with open_dht_node(
        bind=[(host, args.port) for host in hosts],
        bootstrap=list(given) if given else list(DEFAULT_BOOTSTRAP),
        state_file=args.state_file,
        read_only=args.read_only,
        ip_filter=ip_filter_option(args),
        proxy=proxy,
        proxy_bind_host=proxy_bind_host,
        anonymous=anonymous,
    ) as dht:
        yield dht


def proxy_waiting(dht: DHT) -> str:
    """`` (waiting for proxy)`` when proxied and the proxy is away, else ""; for the
    "nothing found" errors, which would otherwise blame the network."""
    from ..net.socks_udp import RelayState

    stats = dht.statistics().proxy
    if stats is None or stats.state is RelayState.UP:
        return ""
    return f" ({stats.state.value}: {stats.last_error or 'no association'})"


def _emit(args: argparse.Namespace, obj: dict[str, Any], text: str) -> None:
    print(json.dumps(obj) if args.json else text, flush=True)


# ---- keys -------------------------------------------------------------------------------


def _keygen(args: argparse.Namespace) -> int:
    path = Path(args.keyfile)
    seed = os.urandom(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    except FileExistsError:
        raise CommandError(f"{str(path)!r} already exists; choose another KEYFILE") from None
    with os.fdopen(fd, "w") as f:
        f.write(seed.hex() + "\n")
    print(bep44.public_key_of(seed).hex())
    return EXIT_OK


def _read_key(path: str) -> bytes:
    try:
        text = Path(path).read_text().strip()
        seed = bytes.fromhex(text)
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot read key file {path!r}: {exc}") from None
    if len(seed) != 32:
        raise CommandError(f"{path!r} is not a key file (expected 64 hex digits)")
    return seed


# ---- put / get --------------------------------------------------------------------------


async def _put(args: argparse.Namespace, dht: DHT) -> int:
    value = encode(args.value.encode())
    salt = args.salt.encode()
    cas: int | None = args.cas
    if args.key is None:
        if cas is not None:
            raise CommandError("--cas needs --key: only mutable items have a seq")
        item = bep44.Item(value)
    else:
        seed = _read_key(args.key)
        seq, cas = await _seq_and_cas(args, dht, seed, salt)
        item = bep44.make_mutable(seed, value, seq, salt)
    error = bep44.check_item(item)
    if error is not None:
        raise CommandError(f"cannot store this item: {error.name.lower().replace('_', ' ')}")
    keeper = dht.keep_item(item, interval=args.keep_interval, cas=cas) if args.keep else None
    stored = await (anext(keeper) if keeper is not None else dht.put_item(item, cas=cas))
    _report_put(args, item, stored, cas, 1)
    if not stored.stored:
        raise CommandError(_put_refused(stored.errors, item.seq, cas) + proxy_waiting(dht))
    if keeper is None:
        return EXIT_OK
    # --keep: until Ctrl-C (KeyboardInterrupt: the CLI exits with 130). A later put
    # that nobody stored is reported and retried at the next interval.
    async for stored in keeper:
        _report_put(args, item, stored, None, keeper.puts)
    return EXIT_OK  # pragma: no cover - the keeper never ends by itself


def _report_put(
    args: argparse.Namespace, item: bep44.Item, stored: ItemStored, cas: int | None, puts: int
) -> None:
    obj: dict[str, Any] = {
        "event": "put",
        "target": item.target.hex(),
        "stored": stored.stored,
        "errors": list(stored.errors),
    }
    if args.keep:
        obj["puts"] = puts
    if item.key is not None:
        obj |= {"public_key": item.key.hex(), "seq": item.seq, "salt": args.salt, "cas": cas}
        text = f"public key {item.key.hex()} seq {item.seq}"
    else:
        text = item.target.hex()
    again = f"; put {puts}, next in {args.keep_interval:g}s" if args.keep else ""
    _emit(args, obj, f"{text}\t(stored on {stored.stored} nodes{again})")


async def _seq_and_cas(
    args: argparse.Namespace, dht: DHT, seed: bytes, salt: bytes
) -> tuple[int, int | None]:
    """The seq to put and the ``cas`` to send (BEP 44 compare-and-swap).

    Without ``--seq`` we read the item first and put the next seq with ``cas`` = the
    seq read, so a concurrent writer's newer item is refused (301), not overwritten.
    ``--cas N`` alone means "replace seq N": the seq put is N + 1, nothing is read.
    """
    if args.seq is not None:
        return args.seq, args.cas
    if args.cas is not None:
        return args.cas + 1, args.cas
    found = await dht.get_item(bep44.mutable_target(bep44.public_key_of(seed), salt), salt=salt)
    if found.item is None:
        return 1, None  # nothing to compare with
    return found.item.seq + 1, found.item.seq


def _put_refused(errors: tuple[int, ...], seq: int, cas: int | None) -> str:
    """Why no node stored the item, in words, with the BEP 44 error codes seen."""
    codes = set(errors)
    if bep44.ItemError.CAS_MISMATCH in codes:
        return (
            f"not stored: the item changed since seq {cas} was read (BEP 44 error 301, "
            "cas mismatch); run the put again without --seq/--cas to re-read it"
        )
    if bep44.ItemError.SEQ_TOO_LOW in codes:
        return (
            f"not stored: the nodes hold seq {seq} or higher (BEP 44 error 302); "
            "give a higher --seq, or none to use the next one"
        )
    if codes:
        return f"not stored: every node refused (error codes {sorted(codes)})"
    return "not stored: no node answered the put"


async def _get(args: argparse.Namespace, dht: DHT) -> int:
    try:
        raw = bytes.fromhex(args.target)
    except ValueError:
        raw = b""
    if len(raw) not in (20, 32):
        raise CommandError("TARGET must be 40 hex digits (immutable) or 64 (public key)")
    salt = args.salt.encode()
    target = raw if len(raw) == 20 else bep44.mutable_target(raw, salt)
    found = await dht.get_item(target, salt=salt)
    item = found.item
    if item is None or (len(raw) == 32 and item.key != raw):
        why = proxy_waiting(dht)
        _emit(args, {"event": "not_found", "target": target.hex()}, "not found" + why)
        return EXIT_FAILURE
    value = json_value(decode(item.value))
    obj: dict[str, Any] = {"event": "item", "target": target.hex(), "value": value}
    obj |= {"seq": item.seq if item.key is not None else None, "nodes": found.nodes}
    seq_text = f"\tseq {item.seq}" if item.key is not None else ""
    _emit(args, obj, f"{json.dumps(value)}{seq_text}\t({found.nodes} nodes)")
    return EXIT_OK


def json_value(value: Bencoded) -> Any:
    """A decoded bencoded value as JSON (see the module docstring)."""
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return {"hex": value.hex()}
    if isinstance(value, list):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {_json_key(k): json_value(v) for k, v in value.items()}
    return value


def _json_key(key: bytes) -> str:
    """A dict key as JSON text: UTF-8 as is, anything else as hex."""
    try:
        return key.decode()
    except UnicodeDecodeError:
        return key.hex()


# ---- scrape -----------------------------------------------------------------------------


def run_scrape(args: argparse.Namespace, info_hash: InfoHash) -> int:
    """``shoal dht get-peers INFOHASH --scrape``: estimated seeds and peers (BEP 33)."""

    async def main() -> int:
        async with open_node(args) as dht:
            est = await dht.scrape(info_hash)
        obj = {
            "event": "scrape",
            "info_hash": info_hash.hex(),
            "seeds": round(est.seeds, 1),
            "peers": round(est.peers, 1),
            "responders": est.responders,
        }
        text = f"seeds ~{est.seeds:.0f}\tpeers ~{est.peers:.0f}\t({est.responders} nodes)"
        _emit(args, obj, text)
        return EXIT_OK

    try:
        return trio.run(main)
    except DecodeError as exc:  # pragma: no cover - state file errors surface as usual
        raise CommandError(str(exc)) from exc
