"""uTP throughput and CPU cost on 127.0.0.1: shoal's UTPStream vs libtorrent's uTP.

Method
------
A uTP-only libtorrent 2.1 seeder (TCP off both ways, DHT/LSD/UPnP/NAT-PMP off, bound
to 127.0.0.1) runs in a child process and seeds one file of ``--size`` bytes. Then,
alternating for ``--repeat`` rounds:

* **shoal**: a minimal BEP 3 leecher over `shoal.net.utp_socket` / `UTPStream` in this
  process (handshake, interested, 64 pipelined 16 KiB requests, blocks into one
  buffer; SHA-1 of the whole file checked at the end, outside the timing). It does not
  write to disk.
* **libtorrent**: a uTP-only libtorrent session in this process downloads the same
  torrent from the same seeder into a temporary directory (it writes and hashes).

For each run: wall time, MB/s, CPU seconds of this process (the leecher; nothing else
runs here during a run) and of the seeder process (it reports its own CPU time before
and after), both per GiB. ``--loopback`` instead measures shoal to shoal: two
`UTPSocket`s in this process, one ``send_all`` loop and one reader.

The numbers depend on the machine's load: run on an idle machine, and look at CPU per
GiB, which load does not change much.

    python tools/bench/utp_bench.py --size 64M --repeat 2
    python tools/bench/utp_bench.py --loopback --size 64M
    python tools/bench/utp_bench.py --size 64M --shared   # also shoal on the DHT's socket
    python tools/bench/utp_bench.py --loopback --size 256M --mss 1452  # packet size cost

``--mss`` (loopback only) replaces the fixed 1178-byte payload (docs/utp.md, "Packet
size") for the run, e.g. 1452 (a 1500-byte IPv4 Ethernet MTU), to see what the safe
size costs in packets and CPU.

``--shared`` adds a third leecher per round: the same shoal leecher with its
`UTPSocket` on a `DHTService`'s socket (the client's setup: every datagram goes through
the DHT's first-byte demultiplexer), to measure what sharing the port costs.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import struct
import subprocess
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from shoal import bencoding
from shoal.dht.node import DHTNode
from shoal.ids import random_id
from shoal.net.dht_service import DHTService
from shoal.net.utp_socket import UTPSocket, open_utp_socket

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

PIECE = 1 << 20
BLOCK = 16384
PIPELINE = 64

SEEDER = r"""
import sys, time, libtorrent as lt
size, path, info_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
settings = {
    "listen_interfaces": "127.0.0.1:0", "outgoing_interfaces": "127.0.0.1",
    "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
    "enable_ip_notifier": False, "dht_bootstrap_nodes": "",
    "enable_incoming_tcp": False, "enable_outgoing_tcp": False,
    "enable_incoming_utp": True, "enable_outgoing_utp": True,
}
ses = lt.session(settings)
params = lt.load_torrent_buffer(open(info_path, "rb").read())
params.save_path = path
h = ses.add_torrent(params)
deadline = time.monotonic() + 120
while not h.status().is_seeding and time.monotonic() < deadline:
    time.sleep(0.05)
print(ses.listen_port(), flush=True)
for line in sys.stdin:
    print(time.process_time(), flush=True)
"""


def _settings() -> dict[str, object]:
    return {
        "listen_interfaces": "127.0.0.1:0",
        "outgoing_interfaces": "127.0.0.1",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "dht_bootstrap_nodes": "",
        "enable_incoming_tcp": False,
        "enable_outgoing_tcp": False,
    }


def _make_torrent(root: Path, size: int) -> tuple[bytes, bytes, bytes]:
    """Data file under root/seed, the .torrent bytes, the info-hash, the data."""
    rng = random.Random(1)
    # randbytes is limited to 2**31 bits per call: build large files in 16 MiB chunks.
    data = b"".join(rng.randbytes(min(16 << 20, size - i)) for i in range(0, size, 16 << 20))
    (root / "seed").mkdir()
    (root / "seed" / "f.bin").write_bytes(data)
    pieces = b"".join(hashlib.sha1(data[i : i + PIECE]).digest() for i in range(0, size, PIECE))
    info = bencoding.encode(
        {b"name": b"f.bin", b"length": size, b"piece length": PIECE, b"pieces": pieces}
    )
    torrent = b"d4:info" + info + b"e"
    (root / "t.torrent").write_bytes(torrent)
    return torrent, hashlib.sha1(info).digest(), data


async def _exactly(stream: trio.abc.Stream, buf: bytearray, n: int) -> bytes:
    while len(buf) < n:
        chunk = await stream.receive_some(1 << 20)
        if not chunk:
            raise ConnectionError("seeder hung up")
        buf += chunk
    out = bytes(buf[:n])
    del buf[:n]
    return out


@asynccontextmanager
async def _utp_on_dht_socket() -> AsyncIterator[UTPSocket]:
    """A `UTPSocket` sharing a DHT node's UDP socket, as `shoal.client` runs it."""
    node = DHTNode(random_id(random.Random(7)), random.Random(7), trio.current_time())
    service = DHTService(node, bind=("127.0.0.1", 0))
    async with trio.open_nursery() as nursery:
        await nursery.start(service.serve)
        utp = UTPSocket(service)
        utp.local_address = service.address
        await nursery.start(utp.serve)
        service.set_datagram_handler(utp.datagram_received)
        yield utp
        nursery.cancel_scope.cancel()


async def shoal_leech(port: int, info_hash: bytes, size: int, shared: bool = False) -> bytes:
    opened = _utp_on_dht_socket() if shared else open_utp_socket()
    async with opened as sock:
        stream = await sock.connect(("127.0.0.1", port))
        buf = bytearray()
        await stream.send_all(
            b"\x13BitTorrent protocol" + bytes(8) + info_hash + b"-SH0001-benchbenchben"[:20]
        )
        await _exactly(stream, buf, 68)
        await stream.send_all(struct.pack(">IB", 1, 2))
        out = bytearray(size)
        blocks = [(i, min(BLOCK, size - i)) for i in range(0, size, BLOCK)]
        blocks.reverse()
        pending, got, unchoked = 0, 0, False
        while got < size:
            (length,) = struct.unpack(">I", await _exactly(stream, buf, 4))
            if length:
                body = await _exactly(stream, buf, length)
                if body[0] == 1:
                    unchoked = True
                elif body[0] == 7:
                    index, begin = struct.unpack_from(">II", body, 1)
                    offset = index * PIECE + begin
                    out[offset : offset + length - 9] = body[9:]
                    got += length - 9
                    pending -= 1
            requests = []
            while unchoked and blocks and pending < PIPELINE:
                offset, blen = blocks.pop()
                index, begin = divmod(offset, PIECE)
                requests.append(struct.pack(">IBIII", 13, 6, index, begin, blen))
                pending += 1
            if requests:
                await stream.send_all(b"".join(requests))
        await stream.aclose()
        return bytes(out)


def lt_leech(lt: object, torrent: bytes, port: int, save: Path) -> None:
    ses = lt.session(_settings())  # type: ignore[attr-defined]
    params = lt.load_torrent_buffer(torrent)  # type: ignore[attr-defined]
    params.save_path = str(save)
    handle = ses.add_torrent(params)
    handle.connect_peer(("127.0.0.1", port))
    deadline = time.monotonic() + 600
    while not handle.status().is_seeding:
        if time.monotonic() > deadline:
            raise TimeoutError("libtorrent leecher did not finish in 600 s")
        time.sleep(0.01)
    ses.remove_torrent(handle)


def _parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].upper() in units else int(text)


def _report(name: str, size: int, wall: float, cpu: float, seeder_cpu: float | None) -> None:
    gib = size / (1 << 30)
    extra = f", seeder CPU {seeder_cpu / gib:6.1f} s/GiB" if seeder_cpu is not None else ""
    print(
        f"{name:10s} {size / wall / 1e6:7.1f} MB/s  wall {wall:6.2f} s  "
        f"leecher CPU {cpu / gib:6.1f} s/GiB{extra}",
        flush=True,
    )


def run_loopback(size: int, mss: int | None = None) -> None:
    if mss is not None:
        import shoal.utp.connection

        shoal.utp.connection.MSS = mss  # read at every use, so this is the whole change

    async def main() -> None:
        async with open_utp_socket() as a, open_utp_socket() as b:
            assert b.local_address is not None
            client = await a.connect(b.local_address)
            server = await b.accept()
            blob = bytes(1 << 20)
            got = 0
            t0, c0 = time.perf_counter(), time.process_time()

            async def send() -> None:
                for _ in range(size >> 20):
                    await client.send_all(blob)
                await client.send_eof()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(send)
                while chunk := await server.receive_some(1 << 20):
                    got += len(chunk)
            _report(
                f"loopback {mss or 1178}",
                got,
                time.perf_counter() - t0,
                time.process_time() - c0,
                None,
            )

    trio.run(main)


def run_versus(size: int, repeat: int, shared: bool = False) -> None:
    import libtorrent as lt

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        torrent, info_hash, data = _make_torrent(root, size)
        seeder = subprocess.Popen(
            [sys.executable, "-c", SEEDER, str(size), str(root / "seed"), str(root / "t.torrent")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert seeder.stdin is not None
            assert seeder.stdout is not None
            port = int(seeder.stdout.readline())

            def seeder_cpu() -> float:
                seeder.stdin.write("cpu\n")  # type: ignore[union-attr]
                seeder.stdin.flush()  # type: ignore[union-attr]
                return float(seeder.stdout.readline())  # type: ignore[union-attr]

            def timed(name: str, run: Callable[[], object]) -> object:
                s0, t0, c0 = seeder_cpu(), time.perf_counter(), time.process_time()
                result = run()
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                _report(name, size, wall, cpu, seeder_cpu() - s0)
                return result

            for rnd in range(repeat):
                got = timed(
                    f"shoal #{rnd + 1}", lambda: trio.run(shoal_leech, port, info_hash, size)
                )
                if got != data:
                    raise SystemExit("shoal leecher: data mismatch")
                if shared:
                    got = timed(
                        f"shared #{rnd + 1}",
                        lambda: trio.run(shoal_leech, port, info_hash, size, True),
                    )
                    if got != data:
                        raise SystemExit("shoal leecher on the DHT socket: data mismatch")
                save = root / f"lt{rnd}"
                save.mkdir()
                timed(f"lt #{rnd + 1}", lambda save=save: lt_leech(lt, torrent, port, save))
                (save / "f.bin").unlink()
        finally:
            seeder.kill()
            seeder.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=_parse_size, default=64 << 20, help="e.g. 64M, 1G")
    parser.add_argument("--repeat", type=int, default=2, help="alternating rounds")
    parser.add_argument("--loopback", action="store_true", help="shoal to shoal only")
    parser.add_argument(
        "--shared", action="store_true", help="also shoal with uTP on a DHT node's socket"
    )
    parser.add_argument("--mss", type=int, help="loopback: payload bytes per packet")
    args = parser.parse_args()
    if args.loopback:
        run_loopback(args.size, args.mss)
    else:
        run_versus(args.size, args.repeat, args.shared)


if __name__ == "__main__":
    main()
