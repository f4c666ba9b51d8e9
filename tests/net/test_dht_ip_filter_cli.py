"""``shoal dht --ip-filter FILE`` (issue 14): a real ``shoal dht`` process among loopback
DHT nodes, two of which (127.0.0.4 and .5) the list blocks. They end with no entry in
its routing table (nor in its state file), and it never answers or asks them: their
own tables never learn of it, although they query it and the others list them."""

from __future__ import annotations

import json
import signal
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import trio

from shoal.dht_client import DHT, open_dht_node
from tests.net.shoal_cli import shoal_process

if TYPE_CHECKING:
    from pathlib import Path

ALLOWED = ["127.0.0.2", "127.0.0.3"]
BLOCKED = ["127.0.0.4", "127.0.0.5"]


class Lines:
    """JSON records from a child's stdout, one at a time (none lost between reads)."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buf = b""

    async def next(self) -> dict[str, Any]:
        while b"\n" not in self._buf:
            chunk = await self._stream.receive_some()
            assert chunk, "shoal dht exited early"
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        record: dict[str, Any] = json.loads(line)
        return record


def _hostport(dht: DHT) -> str:
    return f"{dht.address[0]}:{dht.address[1]}"


async def test_shoal_dht_ip_filter_keeps_blocked_nodes_out(tmp_path: Path) -> None:
    block_list = tmp_path / "block.p2p"
    block_list.write_text("# test list\nloopback pair:127.0.0.4-127.0.0.5\n")
    state = tmp_path / "dht.json"
    async with AsyncExitStack() as stack:
        nodes = {
            ip: await stack.enter_async_context(open_dht_node((ip, 0))) for ip in ALLOWED + BLOCKED
        }
        with trio.fail_after(20):
            for ip, dht in nodes.items():  # everyone knows everyone
                dht.add_nodes([d.address for other, d in nodes.items() if other != ip])
            for dht in nodes.values():
                await dht.wait_bootstrapped()
        # (shoal hears of the blocked ones in the allowed ones' replies)
        assert all(dht.statistics().node.routing.nodes == 3 for dht in nodes.values())
        cmd = ["dht", "--bind", "127.0.0.1", "--json", "--interval", "0.2"]
        cmd += ["--ip-filter", str(block_list), "--state-file", str(state)]
        cmd += ["--bootstrap", _hostport(nodes[BLOCKED[0]])]
        cmd += ["--bootstrap", _hostport(nodes[ALLOWED[0]])]
        async with shoal_process(cmd) as proc:
            assert proc.stdout is not None
            lines = Lines(proc.stdout)
            with trio.fail_after(30):
                listening = await lines.next()
                assert listening["event"] == "listening"
                ours = tuple(listening["address"])
                for ip in BLOCKED:  # they query it: find_node for their own ids
                    nodes[ip].add_nodes([ours])
                while True:  # a stats line every 0.2 s, until both sides are seen
                    stats = await lines.next()
                    if stats["nodes"] >= len(ALLOWED) and stats["filtered"] >= len(BLOCKED):
                        break
                proc.send_signal(signal.SIGINT)
                assert await proc.wait() == 130
        saved = json.loads(state.read_text())
        kept = {n["ip"] for n in saved["nodes"]}
        assert kept == set(ALLOWED)  # learned from the allowed ones, blocked ones never
        for ip in BLOCKED:
            table = nodes[ip].services[0].node.table
            assert table.get_by_addr(ours) is None  # never answered, never asked
        for ip in ALLOWED:
            assert nodes[ip].services[0].node.table.get_by_addr(ours) is not None
