"""How to hand a flush of blocks to the socket: separate sends, one joined buffer, or sendmsg.

Usage: python tools/bench/send_path.py [--mib N] [--batch K] [--repeat R]

A Trio task writes N MiB of 16 KiB blocks, each with its 13-byte piece header, to a
loopback TCP connection (TCP_NODELAY, as trio sets it); a child process reads and
discards. Blocks are queued K at a time, as the peer engine queues what one writer
wake-up flushes. Strategies:

* ``separate``: ``send_all(header)`` then ``send_all(block)`` per block (shoal before
  this change: a 13-byte segment on the wire per block);
* ``joined``: header and block copied into one ``bytearray`` per flush, one
  ``send_all`` (what `PeerConnection.data_to_send` now returns);
* ``sendmsg``: scatter/gather, ``socket.sendmsg([h1, b1, h2, b2, ...])`` per flush, no
  copy (needs the raw trio socket, so the driver could not stay a plain
  ``trio.abc.Stream`` user; and MSE copies anyway when it encrypts).

Prints best-of-R CPU seconds of the writer process per GiB and wall MB/s. The answer
it gave is in tools/bench/README.md ("The send path").
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time

import trio

from shoal.peer.messages import BLOCK_SIZE, encode_piece_header

MIB = 1024 * 1024

_DRAIN = """
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
while s.recv(1 << 20):
    pass
"""


async def _run(strategy: str, mib: int, batch: int) -> tuple[float, float]:
    block = bytes(BLOCK_SIZE)
    count = mib * MIB // BLOCK_SIZE
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    # A bench, not a service: the blocking spawn happens before any transfer is timed.
    child = subprocess.Popen([sys.executable, "-c", _DRAIN, str(port)])  # noqa: ASYNC220
    sock, _ = await listener.accept()
    listener.close()
    stream = trio.SocketStream(sock)  # sets TCP_NODELAY
    cpu0, t0 = time.process_time(), time.perf_counter()
    sent = 0
    while sent < count:
        n = min(batch, count - sent)
        items = [(encode_piece_header(0, i * BLOCK_SIZE, BLOCK_SIZE), block) for i in range(n)]
        if strategy == "separate":
            for header, data in items:
                await stream.send_all(header)
                await stream.send_all(memoryview(data))
        elif strategy == "joined":
            buf = bytearray()
            for header, data in items:
                buf += header
                buf += data
            await stream.send_all(buf)
        else:
            parts: list[bytes | memoryview] = [p for item in items for p in item]
            while parts:
                done = await sock.sendmsg(parts)
                while done:
                    head = parts[0]
                    if done >= len(head):
                        done -= len(head)
                        parts.pop(0)
                    else:
                        parts[0] = memoryview(head)[done:]
                        done = 0
        sent += n
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    sock.shutdown(socket.SHUT_WR)
    await stream.aclose()
    child.wait(30)
    return cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16, help="blocks per flush")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.repeat):  # alternate the strategies within each repetition
        for strategy in ("separate", "joined", "sendmsg"):
            cpu, wall = trio.run(_run, strategy, args.mib, args.batch)
            if strategy not in best or cpu < best[strategy][0]:
                best[strategy] = (cpu, wall)
    gib = args.mib / 1024
    for strategy, (cpu, wall) in best.items():
        mbps = args.mib * MIB / wall / 1e6
        print(f"{strategy:9} {cpu / gib:6.2f} CPU s/GiB  {mbps:7.0f} MB/s  (batch {args.batch})")


if __name__ == "__main__":
    main()
