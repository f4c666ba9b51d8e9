"""``shoal dht --port N --read-only`` as a real process on 127.0.0.1: the flags take effect.

The main CLI tests (test_dht_cli.py) cover stats, state saving and get-peers; this file
proves the two node flags the issue names that those tests do not pass.
"""

from __future__ import annotations

import signal
import socket

import trio

from shoal.dht_client import open_dht_node

from .shoal_cli import read_json_lines, shoal_process


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_port_and_read_only_flags() -> None:
    port = free_udp_port()
    async with open_dht_node(("127.0.0.1", 0)) as peer:
        host, peer_port = peer.address
        cmd = ["dht", "--bind", "127.0.0.1", "--port", str(port), "--read-only"]
        cmd += ["--bootstrap", f"{host}:{peer_port}", "--json", "--interval", "0.2"]
        async with shoal_process(cmd) as proc:
            assert proc.stdout is not None
            with trio.fail_after(20):
                listening, stats = await read_json_lines(proc.stdout, 2)
            assert listening["event"] == "listening"
            assert listening["address"] == ["127.0.0.1", port]
            assert stats["nodes"] == 1  # the read-only node uses the DHT...
            node_stats = peer.statistics().node
            assert node_stats.queries_received >= 1
            assert node_stats.routing.nodes == 0  # ...but BEP 43: nobody adds it to a table
            proc.send_signal(signal.SIGINT)
            with trio.fail_after(10):
                assert await proc.wait() == 130
