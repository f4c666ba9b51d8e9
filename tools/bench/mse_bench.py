"""MSE/PE throughput: raw RC4, MSEStream over a trio memory stream, and handshake rate.

Usage: python tools/bench/mse_bench.py [--mib N] [--repeat R]

Rows:
- ``rc4 encrypt_into``: `RC4Pair.encrypt_into` over 64 KiB chunks into one reused
  buffer (the cipher's ceiling on this machine).
- ``memory stream (no MSE)``: the same bytes through a bare
  ``trio.testing.memory_stream_pair`` (the transport's ceiling). Its buffer is
  unbounded, so the sender can run far ahead and the rows over it are noisy.
- ``MSEStream rc4`` / ``MSEStream plaintext``: the same transfer through MSEStream,
  sender and receiver in one Trio run.
- ``socketpair ...``: the same three over a kernel socketpair (AF_UNIX), whose
  bounded buffers make sender and receiver alternate as on a real connection.
- ``rc4 ceiling``: what one core can do when it both encrypts and decrypts every
  byte and also moves it through the plaintext transport,
  1 / (1/plain + 2/rc4); ``MSEStream rc4`` cannot beat it in this one-core bench.
- ``handshakes/s``: complete pure-engine handshakes (two 768-bit DH exponentiations
  per side plus RC4 key setup and the 1024-byte discards).

Prints best-of-R MB/s (10^6 bytes per second) so runs on a shared machine compare.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import TYPE_CHECKING

import trio
import trio.testing

from shoal.net.mse_stream import MSEStream
from shoal.peer.mse import CryptoMethod, EncryptionPolicy, MSEHandshake, RC4Pair

if TYPE_CHECKING:
    from collections.abc import Callable

CHUNK = 64 * 1024
SKEY = bytes(range(20))


def bench_rc4(total: int) -> float:
    pair = RC4Pair(b"k" * 20, b"j" * 20)
    data = bytes(CHUNK)
    out = bytearray(CHUNK)
    start = time.perf_counter()
    for _ in range(total // CHUNK):
        pair.encrypt_into(data, out)
    return time.perf_counter() - start


async def _transfer(a: trio.abc.Stream, b: trio.abc.Stream, total: int) -> None:
    data = bytes(CHUNK)

    async def send() -> None:
        for _ in range(total // CHUNK):
            await a.send_all(data)

    async def receive() -> None:
        got = 0
        while got < total:
            got += len(await b.receive_some(CHUNK))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        nursery.start_soon(receive)


def _transport(kind: str) -> tuple[trio.abc.Stream, trio.abc.Stream]:
    if kind == "memory":
        return trio.testing.memory_stream_pair()
    left, right = trio.socket.socketpair()
    return trio.SocketStream(left), trio.SocketStream(right)


def bench_stream(total: int, method: CryptoMethod | None, kind: str = "memory") -> float:
    async def main() -> float:
        ta, tb = _transport(kind)
        a: trio.abc.Stream = ta
        b: trio.abc.Stream = tb
        if method is not None:
            policy = EncryptionPolicy(methods=method, prefer=method)
            ma = MSEStream.initiator(ta, SKEY, policy=policy)
            mb = MSEStream.receiver(tb, [SKEY], policy=policy)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ma.do_handshake)
                nursery.start_soon(mb.do_handshake)
            a, b = ma, mb
        start = time.perf_counter()
        await _transfer(a, b, total)
        elapsed = time.perf_counter() - start
        await a.aclose()
        await b.aclose()
        return elapsed

    return trio.run(main)


def bench_handshakes(count: int) -> float:
    rng = random.Random(0)
    start = time.perf_counter()
    for _ in range(count):
        a = MSEHandshake.initiator(SKEY, rng=rng, initial_payload=bytes(68))
        b = MSEHandshake.receiver([SKEY], rng=rng)
        b.receive_data(a.data_to_send())
        a.receive_data(b.data_to_send())
        b.receive_data(a.data_to_send())
        a.receive_data(b.data_to_send())
        assert a.next_event() is not None
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64, help="MiB per throughput run")
    parser.add_argument("--repeat", type=int, default=3, help="best of R runs")
    args_ns = parser.parse_args()
    total = args_ns.mib * 1024 * 1024

    def best(fn: Callable[..., float], *args: object) -> float:
        return min(fn(*args) for _ in range(args_ns.repeat))

    rc4 = best(bench_rc4, total)
    rows = [("rc4 encrypt_into", rc4)]
    for kind, label in (("memory", "memory stream"), ("socket", "socketpair")):
        plain = best(bench_stream, total, None, kind)
        rows += [
            (f"{label} (no MSE)", plain),
            (f"{label} rc4 ceiling", plain + 2 * rc4),
            (f"{label} MSEStream rc4", best(bench_stream, total, CryptoMethod.RC4, kind)),
            (
                f"{label} MSEStream plaintext",
                best(bench_stream, total, CryptoMethod.PLAINTEXT, kind),
            ),
        ]
    for name, seconds in rows:
        print(f"{name:<32} {total / seconds / 1e6:8.1f} MB/s")
    n = 200
    print(f"{'handshakes/s':<32} {n / best(bench_handshakes, n):8.1f}")


if __name__ == "__main__":
    main()
