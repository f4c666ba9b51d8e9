"""What a TCP-only peer costs a ``--transport both`` dial, and what a uTP peer costs.

Method
------
A shoal client on 127.0.0.1 plays the peer: TCP only with its DHT on the same UDP
port (a TCP-only client that runs a DHT: our uTP SYN gets no answer), TCP only with no
UDP socket at all (the port is closed), or uTP + TCP. A second client dials it
``--dials`` times through its `FallbackTransport` (the transport the client uses for
``both``) and closes each stream; we report the mean and the maximum connect time and
how many dials ended on TCP. ``--head-start 3`` reproduces the old policy (uTP alone
for 3 s, libtorrent's ``utp_connect_timeout``, then TCP): with a silent uTP side the
race then waits exactly as the sequential fallback did.

    python tools/bench/utp_dial_bench.py --dials 20
    python tools/bench/utp_dial_bench.py --dials 5 --head-start 3
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

import trio

import shoal
from shoal.net.utp_transport import UTP_HEAD_START, FallbackTransport

if TYPE_CHECKING:
    from collections.abc import Sequence

PEERS: dict[str, dict[str, Any]] = {
    "tcp-only, DHT on its port": {"transports": ("tcp",), "dht": True},
    "tcp-only, UDP port closed": {"transports": ("tcp",), "dht": False},
    "utp + tcp": {"transports": ("utp", "tcp"), "dht": True},
}


def fallback_of(client: shoal.Client) -> FallbackTransport:
    transport: Any = client._dialer.transport
    while hasattr(transport, "inner"):  # rate limits, IP filter
        transport = transport.inner
    assert isinstance(transport, FallbackTransport)
    return transport


async def dial(name: str, peer_kw: dict[str, Any], dials: int, head_start: float) -> None:
    base = {"bind_host": "127.0.0.1", "port": 0}
    async with (
        shoal.open_client(shoal.ClientConfig(**(base | peer_kw))) as peer,
        shoal.open_client(shoal.ClientConfig(**base, dht=False)) as us,
    ):
        transport = fallback_of(us)
        transport.head_start = head_start
        times: list[float] = []
        for _ in range(dials):
            t0 = time.perf_counter()
            stream = await transport.connect(peer.listen_address)
            times.append(time.perf_counter() - t0)
            await stream.aclose()
        print(
            f"{name:28s} mean {1000 * sum(times) / dials:7.1f} ms  max {1000 * max(times):7.1f} ms"
            f"  on TCP {transport.fallbacks}/{dials}",
            flush=True,
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dials", type=int, default=20)
    parser.add_argument("--head-start", type=float, default=UTP_HEAD_START)
    args = parser.parse_args(argv)
    print(f"head start {args.head_start} s")
    for name, kw in PEERS.items():
        trio.run(dial, name, kw, args.dials, args.head_start)


if __name__ == "__main__":
    main()
