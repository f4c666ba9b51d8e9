"""``shoal dht sample``: a polite BEP 51 indexer streaming the info-hashes it finds.

The walk's schedule is the pure `shoal.dht.sampler.SamplingWalk` (random targets, each
node's ``interval`` honoured, ``--max-rate`` queries per second at most); this module
only drives it: it sends each `SampleNode` through the DHT node, feeds the reply
back, and prints every new info-hash once, as it arrives:

    {"event": "sample", "info_hash": "<40 hex>", "node": ["ip", port], "time": <unix s>}

With ``--metadata`` a client fetches each torrent's info dict (BEP 9) with at most
``--metadata-concurrency`` fetches at a time, each under a deadline, and the line
gains ``name``, ``size`` and ``files`` (printed when the fetch ends, so lines may
come out of discovery order; a failed fetch prints the line without them).
The walk ends when no node is left to ask, after ``--limit`` info-hashes, or on Ctrl-C.
"""

from __future__ import annotations

import json
import random
import time
from typing import TYPE_CHECKING, Any

import trio

from ..dht.sampler import SampleNode, SamplingWalk, WaitUntil, WalkConfig
from .common import EXIT_OK, add_global_options, bind_hosts

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from ..client import Client
    from ..dht.compact import Addr
    from ..dht_client import DHT
    from .common import Subparsers

__all__ = ["add_parser"]

METADATA_DEADLINE = 60.0


def add_parser(
    sub: Subparsers, add_node_options: Callable[[argparse.ArgumentParser], None]
) -> None:
    text = "walk the DHT asking nodes for info-hash samples (BEP 51); print each once"
    parser = sub.add_parser("sample", help=text, description=text + ".")
    add_global_options(parser, top_level=False)
    parser.add_argument(
        "--max-rate", type=float, default=20.0, metavar="Q/S", help="queries per second, at most"
    )
    parser.add_argument("--limit", type=int, default=0, metavar="N", help="stop after N hashes")
    parser.add_argument(
        "--metadata", action="store_true", help="also fetch name, size and file count (BEP 9)"
    )
    parser.add_argument("--metadata-concurrency", type=int, default=8, metavar="N")
    parser.add_argument("--max-nodes", type=int, default=50_000, metavar="N")
    add_node_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.max_rate <= 0:
        from .common import CommandError

        raise CommandError("--max-rate must be positive")
    return trio.run(_main, args)


async def _main(args: argparse.Namespace) -> int:
    from ..dht_client import resolve
    from .dht_items import open_node

    async with open_node(args) as dht:
        # Dual stack (BEP 32): the walk starts from the contacts of every family's
        # table; `DHT.sample` sends each query from the socket of its address family.
        seeds: list[tuple[bytes | None, Addr]] = []
        for service in dht.services:
            if args.proxy is not None:  # names are the proxy's to resolve, never ours:
                break  # the node joined through them, its table below has the routers
            seeds += [(None, a) for a in await resolve(args.bootstrap or [], service.family)]
        with trio.move_on_after(10):
            await dht.wait_bootstrapped()
        for service in dht.services:
            seeds += [(e.node_id, e.addr) for e in service.node.table.entries()]
        if args.metadata:
            from ..client import open_client
            from ..config import ClientConfig

            hosts = bind_hosts(args)
            config = ClientConfig(
                bind_host=hosts[0],
                bind_hosts=hosts if len(hosts) > 1 else (),
                bootstrap=tuple(args.bootstrap or ()),
                proxy=args.proxy,  # the fetches go through it too (CONNECT)
                anonymous=args.anonymous,
            )
            async with open_client(config) as client:
                await _Walk(args, dht, client).run(seeds)
        else:
            await _Walk(args, dht, None).run(seeds)
    return EXIT_OK


class _Walk:
    def __init__(self, args: argparse.Namespace, dht: DHT, client: Client | None) -> None:
        self.args = args
        self.dht = dht
        self.client = client
        config = WalkConfig(max_rate=args.max_rate, max_nodes=args.max_nodes)
        self.walk = SamplingWalk(random.SystemRandom(), trio.current_time(), config)
        self.changed = trio.Event()
        self.found = 0
        self.fetches = trio.CapacityLimiter(max(1, args.metadata_concurrency))

    async def run(self, seeds: list[tuple[bytes | None, Addr]]) -> None:
        self.walk.add_nodes(seeds, trio.current_time())
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            while True:
                action = self.walk.next(trio.current_time())
                if isinstance(action, SampleNode):
                    nursery.start_soon(self._ask, action)
                    continue
                if not isinstance(action, WaitUntil):
                    break  # WalkDone
                self.changed = trio.Event()
                deadline = float("inf") if action.until is None else action.until
                with trio.move_on_at(deadline):
                    await self.changed.wait()
            # Walk done: let metadata fetches finish (the nursery waits for them).

    async def _ask(self, action: SampleNode) -> None:
        result = await self.dht.sample(action.addr, action.target, action.node_id)
        for info_hash in self.walk.on_result(result, trio.current_time()):
            self._found(info_hash, action.addr)
        self.changed.set()

    def _found(self, info_hash: bytes, addr: Addr) -> None:
        limit = self.args.limit
        if limit and self.found >= limit:
            return
        self.found += 1
        obj: dict[str, Any] = {
            "event": "sample",
            "info_hash": info_hash.hex(),
            "node": [addr[0], addr[1]],
            "time": round(time.time(), 3),
        }
        if self.client is not None:
            self.nursery.start_soon(self._with_metadata, obj, info_hash)
        else:
            self._emit(obj)
        if limit and self.found >= limit and self.client is None:
            self.nursery.cancel_scope.cancel()

    async def _with_metadata(self, obj: dict[str, Any], info_hash: bytes) -> None:
        assert self.client is not None
        async with self.fetches:
            with trio.move_on_after(METADATA_DEADLINE):
                meta = await self.client.fetch_metadata(f"magnet:?xt=urn:btih:{info_hash.hex()}")
                info = meta.info
                files = sum(1 for f in info.files if not f.pad)
                obj |= {"name": info.name, "size": info.total_length, "files": files}
        self._emit(obj)
        if self.args.limit and self.found >= self.args.limit:
            self.nursery.cancel_scope.cancel()

    def _emit(self, obj: dict[str, Any]) -> None:
        if self.args.json:
            print(json.dumps(obj), flush=True)
        else:
            extra = f"\t{obj['name']}\t{obj['size']}\t{obj['files']}" if "name" in obj else ""
            print(f"{obj['info_hash']}\t{obj['node'][0]}:{obj['node'][1]}{extra}", flush=True)
