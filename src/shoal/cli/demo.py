"""``shoal demo``: a whole swarm on loopback, downloaded by the real ``shoal get``.

The demo proves the product end to end without touching the internet: it starts a
few DHT nodes on 127.0.0.x, seeds generated data from N `Client`s that announce on
that DHT, prints the magnet link, and then runs ``shoal get MAGNET --bootstrap ...``
as a child process. So the download is the normal path (magnet → DHT get_peers →
dial → ut_metadata → pieces → SHA-1 → disk) with the normal progress display, and
the only thing the child is told is the magnet link and where the DHT is. Finally
every downloaded byte is compared with the seeded bytes.

Why a subprocess rather than calling ``get.run`` in-process: the leecher then has its
own interpreter (its own GIL and event loop), as it would in real life, and its
terminal handling (rich live view, Ctrl-C) is exactly that of ``shoal get``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import shutil
import sys
import tempfile
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import trio

from .common import EXIT_INTERRUPTED, EXIT_OK, CommandError, add_command
from .get import run_interruptible
from .output import format_size, plural

if TYPE_CHECKING:
    from ..client import Client
    from ..dht_client import DHT
    from ..metainfo import Metainfo
    from .common import Subparsers

__all__ = ["DEFAULT_SIZE", "add_parser", "parse_size", "run"]

DEFAULT_SIZE: Final = 32 * 1024 * 1024
#: Enough nodes that the leecher's get_peers is a real (if short) iterative lookup.
DHT_NODES: Final = 3
#: The DHT nodes listen on 127.0.0.2, .3, ... (Linux routes all of 127/8 to lo);
#: where only 127.0.0.1 exists they share it on different ports.
DHT_HOST_BASE: Final = 2
MAX_PEERS: Final = 16
MAX_SIZE: Final = 4 * 1024**3
#: Seeders hash-check the generated data before they serve it.
SEED_CHECK_BUDGET: Final = 60.0
_SIZE = re.compile(r"(\d+)\s*([KMG]i?B?)?", re.IGNORECASE)
_MULTIPLIERS: Final = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}

_EXAMPLES = """\
  shoal demo                              32 MiB from 2 seeders, then clean up
  shoal demo --size 256M --peers 4        a bigger swarm
  shoal demo --keep ./demo                leave the data, torrent and state behind
  shoal demo --json | jq -c .             JSON lines: demo records and shoal get's
"""


def add_parser(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "demo",
        summary="download from a local swarm on 127.0.0.x (works offline)",
        description=(
            "Start a private swarm on loopback: DHT nodes on 127.0.0.2 and up and N seeding "
            "clients (--peers) serving SIZE bytes of generated data. Then download its magnet link "
            "with 'shoal get' (found through that DHT only), compare every byte, and "
            "clean up. Nothing leaves this machine."
        ),
        examples=_EXAMPLES,
        run=run,
    )
    parser.add_argument(
        "--size", type=parse_size, default=DEFAULT_SIZE, help="payload size (default 32M)"
    )
    parser.add_argument(
        "--peers", type=_peer_count, default=2, metavar="N", help="number of seeders (default 2)"
    )
    parser.add_argument(
        "--keep", metavar="DIR", type=Path, help="work in DIR and keep everything afterwards"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument(
        "--timeout",
        metavar="S",
        type=float,
        default=120.0,
        help="give up after S seconds (default 120)",
    )


def parse_size(text: str) -> int:
    """``'32M' -> 33554432``, ``'512K'``, ``'1G'``, ``'1000'``; K/M/G are binary."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 32M, 512K or 1000)")
    size = int(match[1]) * _MULTIPLIERS[(match[2] or "")[:1].lower()]
    if not 1 <= size <= MAX_SIZE:
        raise argparse.ArgumentTypeError(f"size must be from 1 byte to 4G: {text!r}")
    return size


def _peer_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_PEERS:
        raise argparse.ArgumentTypeError(f"--peers takes 1 to {MAX_PEERS}: {text!r}")
    return int(text)


@dataclass(frozen=True, slots=True)
class _Out:
    """Demo's own lines: JSON records with ``--json``, short sentences otherwise."""

    json_lines: bool

    def emit(self, record: dict[str, Any], text: str) -> None:
        print(json.dumps(record) if self.json_lines else text, flush=True)


def run(args: argparse.Namespace) -> int:
    if not args.timeout > 0:
        raise CommandError("--timeout must be greater than 0")
    keep: Path | None = args.keep
    if keep is not None:
        if keep.exists() and (not keep.is_dir() or any(keep.iterdir())):
            raise CommandError(f"'{keep}' is not an empty directory; --keep needs a new one")
        keep.mkdir(parents=True, exist_ok=True)
        root = keep.resolve()
    else:
        root = Path(tempfile.mkdtemp(prefix="shoal-demo-"))
    try:
        return trio.run(_main, args, root, _Out(args.json))
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)


async def _main(args: argparse.Namespace, root: Path, out: _Out) -> int:
    status = EXIT_OK

    async def body() -> None:
        nonlocal status
        # Inside the task, so the error is ours to translate (a nursery would wrap it).
        try:
            with trio.fail_after(args.timeout):
                status = await _demo(args, root, out)
        except trio.TooSlowError:
            raise CommandError(
                f"the demo did not finish within {args.timeout:g} s; try a smaller --size"
            ) from None

    interrupted = await run_interruptible(body)
    if interrupted:
        print("shoal: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return status


async def _demo(args: argparse.Namespace, root: Path, out: _Out) -> int:
    from ..magnet import Magnet
    from ..metainfo import parse_metainfo

    payload = root / "seed" / "shoal-demo.bin"
    if not out.json_lines:  # JSON consumers get the documented `demo` record first
        # Generating and hashing 1 GiB takes seconds: say so instead of going silent.
        out.emit({}, f"shoal demo: generating {format_size(args.size)} of data and its .torrent…")
    digest = await trio.to_thread.run_sync(_write_payload, payload, args.size)
    torrent = await trio.to_thread.run_sync(_make_torrent, payload)
    await trio.Path(root / "shoal-demo.torrent").write_bytes(torrent)
    meta = parse_metainfo(torrent)
    async with AsyncExitStack() as stack:
        nodes = await _start_dht(stack)
        bootstrap = [node.address for node in nodes]
        seeders = await _start_seeders(stack, args.peers, meta, root, bootstrap)
        magnet = str(Magnet(meta.info_hash, display_name=payload.name))
        hosts = ", ".join(f"{h}:{p}" for h, p in bootstrap)
        out.emit(
            {
                "event": "demo",
                "magnet": magnet,
                "size": args.size,
                "seeders": [list(c.listen_address) for c in seeders],
                "dht": [list(a) for a in bootstrap],
                "dir": str(root),
            },
            f"shoal demo: {plural(args.peers, 'seeder')} with {format_size(args.size)}, "
            f"DHT nodes {hosts}\n{magnet}",
        )
        start = trio.current_time()
        result = await trio.run_process(_get_command(args, magnet, root, bootstrap), check=False)
        elapsed = trio.current_time() - start
    if result.returncode != 0:
        raise CommandError(f"'shoal get' failed with exit status {result.returncode}")
    downloaded = root / "download" / payload.name
    if await trio.to_thread.run_sync(_sha256, downloaded) != digest:
        raise CommandError(f"'{downloaded}' differs from the seeded data")
    rate = args.size / elapsed if elapsed > 0 else 0.0
    out.emit(
        {
            "event": "verified",
            "bytes": args.size,
            "sha256": digest.hex(),
            "elapsed": round(elapsed, 3),
            "rate": round(rate),
        },
        f"verified: {args.size} bytes identical to the seeded data "
        f"({format_size(args.size)} in {elapsed:.1f} s, {format_size(int(rate))}/s)",
    )
    return EXIT_OK


def _write_payload(path: Path, size: int) -> bytes:
    """Write `size` pseudo-random bytes (seeded: reruns are comparable); return SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0x5B0A1)
    digest = hashlib.sha256()
    with path.open("wb") as f:
        left = size
        while left:
            chunk = rng.randbytes(min(left, 4 * 1024 * 1024))
            f.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return digest.digest()


def _make_torrent(path: Path) -> bytes:
    from ..create import create_torrent

    return create_torrent(path)


def _sha256(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.digest()


async def _start_dht(stack: AsyncExitStack) -> list[DHT]:
    """DHT_NODES nodes on distinct loopback IPs, each bootstrapped from the first."""
    from ..dht_client import open_dht_node

    nodes: list[DHT] = []
    for i in range(DHT_NODES):
        boot = [nodes[0].address] if nodes else []
        try:
            node = await stack.enter_async_context(
                open_dht_node((f"127.0.0.{DHT_HOST_BASE + i}", 0), boot)
            )
        except OSError:  # only 127.0.0.1 is configured (macOS, some containers)
            node = await stack.enter_async_context(open_dht_node(("127.0.0.1", 0), boot))
        nodes.append(node)
    return nodes


async def _start_seeders(
    stack: AsyncExitStack,
    count: int,
    meta: Metainfo,
    root: Path,
    bootstrap: list[tuple[str, int]],
) -> list[Client]:
    """`count` clients seeding root/seed, each announced on the DHT before we return."""
    from ..client import open_client
    from ..config import ClientConfig

    clients: list[Client] = []
    for i in range(count):
        config = ClientConfig(
            bind_host="127.0.0.1",
            port=0,
            bootstrap=tuple(bootstrap),
            state_dir=root / "state" / f"seeder{i}",
        )
        client = await stack.enter_async_context(open_client(config))
        torrent = await client.add(meta, save_to=root / "seed", seed=True)
        with trio.fail_after(SEED_CHECK_BUDGET):
            await torrent.wait_complete()
        clients.append(client)
    # Announce now rather than waiting for each torrent's discovery loop, so the
    # leecher's first lookup already finds every seeder.
    async with trio.open_nursery() as nursery:
        for client in clients:
            assert client.dht is not None
            nursery.start_soon(client.dht.announce, meta.info_hash, client.listen_address[1])
    return clients


def _get_command(
    args: argparse.Namespace, magnet: str, root: Path, bootstrap: list[tuple[str, int]]
) -> list[str]:
    """``shoal get`` told only the magnet link and the DHT, as a user would run it."""
    command = [sys.executable, "-m", "shoal", "get", magnet, "-o", str(root / "download")]
    for host, port in bootstrap:
        command += ["--bootstrap", f"{host}:{port}"]
    command += ["--bind", "127.0.0.1", "--port", "0", "--no-seed"]
    command += ["--state-dir", str(root / "state" / "leecher"), "--timeout", "30"]
    if args.json:
        command.append("--json")
    if args.debug:
        command.append("--debug")
    return command
