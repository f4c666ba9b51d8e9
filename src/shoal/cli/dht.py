"""``shoal dht``: run a DHT node and print its statistics, or look up peers once.

``shoal dht`` runs until Ctrl-C, then saves the state file and exits with 130.
``shoal dht get-peers INFOHASH`` prints peers as the lookup finds them.
With ``--json`` every line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import trio

from ..errors import DecodeError
from ..ids import InfoHash
from ..net.bindwatch import watch_bind_addresses, watched_hosts
from . import dht_items, dht_sample
from .common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    BindAction,
    CommandError,
    add_command,
    add_global_options,
    bind_hosts,
    parse_hostport,
    parse_port,
    positive_seconds,
)
from .privacy import parse_proxy_option

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ..dht_client import DHT, DHTClientStats
    from .common import Subparsers

__all__ = ["add_parser", "run"]

_EXAMPLES = """\
  shoal dht                                   join the public DHT, print stats until Ctrl-C
  shoal dht --port 6881 --state-file dht.json keep our ID and known nodes across runs
  shoal dht --bootstrap 127.0.0.1:6881 --json one JSON stats object per line
  shoal dht --bind 0.0.0.0 --bind ::          dual stack: IPv4 and IPv6 DHTs (BEP 32)
  shoal dht get-peers 0123...cdef --bootstrap 127.0.0.1:6881
"""

_GET_PEERS_EXAMPLES = """\
  shoal dht get-peers 0123...cdef                           through the public routers
  shoal dht get-peers 0123...cdef --bootstrap 127.0.0.1:6881 --json
                                                            one JSON object per peer
"""

STATS_INTERVAL: Final = 5.0


def add_parser(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "dht",
        summary="run a Mainline DHT node, or look up peers for an info-hash",
        description=(
            "Run a DHT node (BEP 5) and print periodic statistics until Ctrl-C. "
            "Without --bootstrap, the well-known public routers are used."
        ),
        examples=_EXAMPLES,
        run=run,
    )
    _add_node_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="dht_command", metavar="ACTION", title="actions")
    get = sub.add_parser(
        "get-peers",
        help="find peers for INFOHASH and print them as they are found",
        description="Run one get_peers lookup and print each peer with the time it took.",
        epilog="examples:\n" + _GET_PEERS_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    get.add_argument("info_hash", metavar="INFOHASH", help="40 hex digits or 32 base32 characters")
    get.add_argument(
        "--scrape", action="store_true", help="print estimated seeds and peers (BEP 33) instead"
    )
    get.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=positive_seconds(1e6),
        default=GET_PEERS_TIMEOUT,
        help=f"give up after SECONDS; exit 1 if no peer was found (default {GET_PEERS_TIMEOUT:g})",
    )
    add_global_options(get, top_level=False)
    _add_node_options(get, suppress=True)
    get.set_defaults(run=run_get_peers)
    dht_items.add_parsers(sub, lambda p: _add_node_options(p, suppress=True))
    dht_sample.add_parser(sub, lambda p: _add_node_options(p, suppress=True))


#: A lookup that has heard nothing in this long will not: its bootstrap node is silent,
#: answers with the wrong transaction id, or sends replies too big to parse.
GET_PEERS_TIMEOUT: Final = 30.0


def _add_node_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Options valid before and after ``get-peers``; SUPPRESS keeps the outer value."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--bind",
        metavar="ADDR",
        action=BindAction,
        default=default("0.0.0.0"),
        help="local address; give one IPv4 and one IPv6 address for a dual-stack node",
    )
    parser.add_argument(
        "--port", type=parse_port, default=default(0), help="UDP port (0: any free port)"
    )
    parser.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        type=parse_hostport,
        action="append",
        default=default(None),
        help="node to join through (repeatable)",
    )
    parser.add_argument(
        "--state-file", metavar="FILE", default=default(None), help="node ID and nodes"
    )
    parser.add_argument("--read-only", action="store_true", default=default(False), help="BEP 43")
    parser.add_argument(
        "--ip-filter",
        metavar="FILE",
        type=Path,
        default=default(None),
        help="never answer, ask or keep in the routing table an address in this eMule"
        " ipfilter.dat or PeerGuardian P2P list (gzip allowed)",
    )
    parser.add_argument(
        "--proxy",
        metavar="socks5://[USER:PASS@]HOST:PORT",
        type=parse_proxy_option,
        default=default(None),
        help="every datagram through this SOCKS5 proxy's UDP relay (UDP ASSOCIATE), router"
        " names resolved by the proxy; down at start: an error; lost later: the node waits"
        " for it and nothing goes direct",
    )
    parser.add_argument(
        "--anonymous",
        action="store_true",
        default=default(False),
        help="no client version in our messages; needs --proxy (docs/security.md)",
    )
    parser.add_argument("--json", action="store_true", default=default(False), help="JSON lines")
    parser.add_argument(
        "--interval", type=float, default=default(STATS_INTERVAL), help=argparse.SUPPRESS
    )


def run(args: argparse.Namespace) -> int:
    """``shoal dht``: serve until SIGINT, then save state and return 130."""
    return trio.run(_serve, args)


def run_get_peers(args: argparse.Namespace) -> int:
    try:
        info_hash = _parse_info_hash(args.info_hash)
    except DecodeError as exc:
        raise CommandError(f"invalid info-hash: {exc}") from exc
    if args.scrape:
        return dht_items.run_scrape(args, info_hash)
    return trio.run(_get_peers, args, info_hash)


def _parse_info_hash(text: str) -> InfoHash:
    if len(text) == 32:
        return InfoHash.from_base32(text)
    return InfoHash(InfoHash.from_hex(text))


def _emit(args: argparse.Namespace, obj: dict[str, Any], text: str) -> None:
    print(json.dumps(obj) if args.json else text, flush=True)


async def _serve(args: argparse.Namespace) -> int:
    interrupted = False
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        async with (
            dht_items.open_node(args) as dht,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(_report_stats, args, dht)
            if watched := watched_hosts(bind_hosts(args)):
                nursery.start_soon(watch_bind_addresses, watched)  # stop if --bind goes
            where = " and ".join(_hostport(a) for a in dht.addresses)
            _emit(
                args,
                {
                    "event": "listening",
                    "address": list(dht.address),
                    "addresses": [list(a) for a in dht.addresses],
                    "node_id": dht.node_id.hex(),
                },
                f"DHT node {dht.node_id.hex()} listening on {where}",
            )
            async for _ in signals:
                interrupted = True
                nursery.cancel_scope.cancel()
                break
    # Leaving open_dht_node saved the state file.
    if interrupted:
        print(
            "shoal: interrupted; DHT state saved" if args.state_file else "shoal: interrupted",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    return EXIT_OK


def _hostport(addr: tuple[str, int]) -> str:
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"


async def _report_stats(args: argparse.Namespace, dht: DHT) -> None:
    previous = dht.statistics()
    then = trio.current_time()
    while True:
        await trio.sleep(args.interval)
        current, now = dht.statistics(), trio.current_time()
        obj = _stats_obj(previous, current, now - then)
        _emit(args, obj, _stats_line(obj))
        previous, then = current, now


def _stats_obj(previous: DHTClientStats, current: DHTClientStats, elapsed: float) -> dict[str, Any]:
    """Totals over every address family (a dual-stack node has a table per family)."""
    now = (current, *current.others)
    then = (previous, *previous.others)
    dt = max(elapsed, 1e-9)

    def total(get: Callable[[DHTClientStats], int], of: Sequence[DHTClientStats] = now) -> int:
        return sum(get(s) for s in of)

    def rate(get: Callable[[DHTClientStats], int]) -> float:
        return round((total(get) - total(get, then)) / dt, 2)

    return {
        "event": "stats",
        "nodes": total(lambda s: s.node.routing.nodes),
        "good": total(lambda s: s.node.routing.good),
        "buckets": total(lambda s: s.node.routing.buckets),
        #: Nodes per table, in --bind order (one entry unless dual stack).
        "tables": [s.node.routing.nodes for s in now],
        "queries_in_per_s": rate(lambda s: s.node.queries_received),
        "queries_out_per_s": rate(lambda s: s.service.queries_out),
        "info_hashes": total(lambda s: s.node.info_hashes_stored),
        "datagrams_in": total(lambda s: s.service.datagrams_in),
        "datagrams_out": total(lambda s: s.service.datagrams_out),
        #: Datagrams dropped unread because --ip-filter blocks their source.
        "filtered": total(lambda s: s.node.filtered),
        #: With --proxy: "through proxy", "connecting to proxy" or "waiting for proxy"
        #: (the proxy is away and nothing is sent); None without a proxy.
        "proxy": current.proxy.state.value if current.proxy is not None else None,
    }


def _stats_line(obj: dict[str, Any]) -> str:
    tables = obj["tables"]
    split = f" = {' + '.join(map(str, tables))}" if len(tables) > 1 else ""
    return (
        f"nodes {obj['nodes']}{split} (good {obj['good']}, {obj['buckets']} buckets) | "
        f"queries in {obj['queries_in_per_s']}/s out {obj['queries_out_per_s']}/s | "
        f"stored info-hashes {obj['info_hashes']}" + (f" | {obj['proxy']}" if obj["proxy"] else "")
    )


async def _get_peers(args: argparse.Namespace, info_hash: InfoHash) -> int:
    """One lookup, bounded by ``--timeout`` (the whole command, bootstrap included)."""
    found = [0]
    waiting = [""]  # why nothing came back, when it is the proxy
    start = trio.current_time()
    with trio.move_on_after(args.timeout) as scope:
        await _lookup(args, info_hash, found, start, waiting)
    if not scope.cancelled_caught:
        return EXIT_OK
    elapsed = trio.current_time() - start
    if found[0]:
        _emit(
            args,
            {"event": "timeout", "peers": found[0], "elapsed": round(elapsed, 3)},
            f"{found[0]} peers; lookup stopped by --timeout after {elapsed:.3f}s",
        )
        return EXIT_OK
    if waiting[0]:
        raise CommandError(f"no peers found within {args.timeout:g}s: DHT{waiting[0]}")
    raise CommandError(
        f"no peers found within {args.timeout:g}s: no DHT node answered usefully "
        "(check --bootstrap and your network, or raise --timeout)"
    )


async def _lookup(
    args: argparse.Namespace,
    info_hash: InfoHash,
    found: list[int],
    start: float,
    waiting: list[str],
) -> None:
    async with dht_items.open_node(args) as dht:
        try:
            await _search(args, dht, info_hash, found, start)
        finally:
            waiting[0] = dht_items.proxy_waiting(dht)


async def _search(
    args: argparse.Namespace, dht: DHT, info_hash: InfoHash, found: list[int], start: float
) -> None:
    search = dht.get_peers(info_hash)
    async for peer in search:
        found[0] += 1
        elapsed = trio.current_time() - start
        hops = search.hops.get(peer)
        obj = {
            "event": "peer",
            "ip": peer[0],
            "port": peer[1],
            "elapsed": round(elapsed, 3),
            "hops": hops,
        }
        hop_text = "?" if hops is None else str(hops)
        _emit(args, obj, f"{peer[0]}:{peer[1]}\t{elapsed:.3f}s\thop {hop_text}")
    count = found[0]
    stats = search.statistics
    summary: dict[str, Any] = {
        "event": "done",
        "peers": count,
        "elapsed": round(trio.current_time() - start, 3),
    }
    if stats is not None:
        summary |= {
            "hops": stats.hops,
            "first_peer_hops": stats.first_peer_hops,
            "queries": stats.queries_sent,
            "responses": stats.responses,
        }
    _emit(
        args,
        summary,
        f"{count} peers in {summary['elapsed']:.3f}s"
        + (f", {stats.hops} hops, {stats.queries_sent} queries" if stats else ""),
    )
