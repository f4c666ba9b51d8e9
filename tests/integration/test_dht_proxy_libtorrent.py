"""``shoal get MAGNET --proxy`` with the DHT included, against real libtorrent and dante.

A small libtorrent DHT on loopback (two plain nodes and the seeder, each on its own
127.x address, bootstrapped from each other only) holds the seeder's announce. shoal
gets nothing but the magnet and one DHT node to bootstrap from: it must find the
seeder through the DHT, through dante's UDP relay, and download through dante's
CONNECT. Every libtorrent session records who talked to it: the source of every DHT
packet it received (``dht_pkt_alert``, category ``dht_log``), every incoming and
outgoing peer connection (``incoming_connection_alert``, ``peer_connect_alert``) and
the seeder's peer list. Apart from libtorrent's own addresses only the proxy's
external address (EXTERNAL_IP) may appear, never shoal's (CLIENT_IP); and in
anonymous mode no DHT packet from the proxy carries shoal's KRPC ``v``.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

import pytest
import trio

from tests.integration.peers import require_libtorrent
from tests.integration.socks_servers import CLIENT_IP, EXTERNAL_IP, run_dante
from tests.lt_helpers import loopback_settings, lt_torrent_session, single_file_info
from tests.net.lt_utp import wait_seeding
from tests.net.shoal_cli import SHOAL, shoal_process

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration
lt = require_libtorrent()

SEEDER_IP = "127.0.0.5"
NODE_IPS = ("127.0.0.7", "127.0.0.8")
LT_IPS = {SEEDER_IP, *NODE_IPS}
SIZE = 1 << 20
#: How libtorrent's dht_pkt_alert prints the ``v`` of shoal's KRPC messages.
SHOAL_V = "'v': '53480001'"
#: ``<== [127.0.0.3:40000] {...}``: a DHT packet libtorrent received, and from where.
_INCOMING = re.compile(r"^<== \[([0-9.]+):\d+\]")


def _dht_settings(ip: str) -> Any:
    return loopback_settings(ip, dht=True, utp=False) | {
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "alert_mask": int(
            lt.alert_category.dht_log
            | lt.alert_category.dht
            | lt.alert_category.dht_operation
            | lt.alert_category.connect
            | lt.alert_category.peer
            | lt.alert_category.status
        ),
    }


class Records:
    """Who talked to the libtorrent sessions, from their alerts and peer lists."""

    def __init__(self, sessions: list[Any], seeder: Any) -> None:
        self.sessions = sessions
        self.seeder = seeder
        self.dht: set[str] = set()
        self.peers: set[str] = set()
        self.found: set[tuple[str, int]] = set()  # get_peers replies (for the setup)
        self.proxied: list[str] = []  # the DHT packets that came from the proxy, as text

    def drain(self) -> None:
        for ses in self.sessions:
            for alert in ses.pop_alerts():
                if isinstance(alert, lt.dht_pkt_alert):
                    if match := _INCOMING.match(text := alert.message()):
                        self.dht.add(match[1])
                        if match[1] == EXTERNAL_IP:
                            self.proxied.append(text)
                elif isinstance(alert, lt.incoming_connection_alert | lt.peer_connect_alert):
                    self.peers.add(str(alert.endpoint[0]))
                elif isinstance(alert, lt.dht_get_peers_reply_alert):
                    self.found.update((str(ip), int(port)) for ip, port in alert.peers())
        self.peers.update(p.ip[0] for p in self.seeder.get_peer_info())

    def strangers(self) -> set[str]:
        """Every address that talked to libtorrent but is not libtorrent."""
        return (self.dht | self.peers) - LT_IPS

    async def record(self) -> None:
        while True:
            self.drain()
            await trio.sleep(0.02)


@contextmanager
def lt_swarm(tmp_path: Path) -> Iterator[tuple[str, int, bytes, bytes, Records]]:
    """The DHT nodes and the seeder; yields (magnet, router port, info, data, records)."""
    data = random.Random(7).randbytes(SIZE)
    (tmp_path / "seed").mkdir()
    (tmp_path / "seed" / "f.bin").write_bytes(data)
    info = single_file_info(data, 64 * 1024)
    with ExitStack() as stack:
        nodes = [lt.session(_dht_settings(ip)) for ip in NODE_IPS]
        seeder, handle = stack.enter_context(
            lt_torrent_session(lt, info, tmp_path / "seed", _dht_settings(SEEDER_IP))
        )
        stack.callback(_stop, [*nodes, seeder])
        router = nodes[0].listen_port()
        nodes[1].add_dht_node((NODE_IPS[0], router))
        seeder.add_dht_node((NODE_IPS[0], router))
        magnet = f"magnet:?xt=urn:btih:{hashlib.sha1(info).hexdigest()}&dn=f.bin"
        yield magnet, router, info, data, Records([*nodes, seeder], handle)


def _stop(sessions: list[Any]) -> None:
    for ses in sessions:  # the binding has no abort(): stop all network activity now
        ses.apply_settings({"enable_dht": False})
        ses.pause()


async def wait_announced(records: Records, info: bytes, port: int) -> None:
    """Until the DHT node that is not the router returns the seeder for the info hash."""
    ih = lt.sha1_hash(hashlib.sha1(info).digest())
    node, seeder = records.sessions[1], records.sessions[2]
    while (SEEDER_IP, port) not in records.found:
        seeder.dht_announce(ih, port, 0)  # the torrent's own announce may come late
        node.dht_get_peers(ih)
        with trio.move_on_after(2):
            while (SEEDER_IP, port) not in records.found:  # noqa: ASYNC110 - lt's threads
                await trio.sleep(0.05)


def shoal_get(magnet: str, out: Path, proxy: str, router: int, *extra: str) -> list[str]:
    return [
        *SHOAL, "get", magnet, "-o", str(out), "--bind", CLIENT_IP, "--port", "0",
        "--no-seed", "--proxy", proxy, "--bootstrap", f"{NODE_IPS[0]}:{router}", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize("anonymous", [True, False], ids=["anonymous", "named"])
async def test_shoal_get_a_magnet_through_dante_dht_included(
    tmp_path: Path, anonymous: bool
) -> None:
    async with run_dante(tmp_path) as proxy:
        with lt_swarm(tmp_path) as (magnet, router, info, data, records):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(records.record)
                with trio.fail_after(120):
                    await wait_seeding(records.seeder)
                    port = records.sessions[2].listen_port()
                    await wait_announced(records, info, port)
                    records.dht.clear()  # from here on, only shoal is a stranger
                    extra = ["--quiet", "--timeout", "60"] + (["--anonymous"] if anonymous else [])
                    result = await trio.run_process(
                        shoal_get(magnet, tmp_path / "out", proxy.url(), router, *extra),
                        capture_stdout=True,
                        capture_stderr=True,
                        check=False,
                    )
                records.drain()
                nursery.cancel_scope.cancel()
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert (tmp_path / "out" / "f.bin").read_bytes() == data
    assert EXTERNAL_IP in records.dht  # the DHT went through the proxy's relay
    assert EXTERNAL_IP in records.peers  # and the download through its CONNECT
    assert records.strangers() == {EXTERNAL_IP}
    # Anonymous: no KRPC "v" names us (libtorrent prints shoal's b"SH\0\1" as hex).
    assert any(SHOAL_V in text for text in records.proxied) is not anonymous


async def test_killing_dante_mid_download_stops_everything_and_says_so(tmp_path: Path) -> None:
    """dante dies once shoal has a verified piece: no datagram or connection of ours
    reaches libtorrent afterwards (nor before, but from the proxy), and the ``--json``
    progress records say the DHT is ``waiting for proxy``, as does a warning."""
    async with run_dante(tmp_path) as proxy:
        with lt_swarm(tmp_path) as (magnet, router, info, _, records):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(records.record)
                with trio.fail_after(120):
                    await wait_seeding(records.seeder)
                    await wait_announced(records, info, records.sessions[2].listen_port())
                    records.dht.clear()
                    args = shoal_get(
                        magnet, tmp_path / "out", proxy.url(), router,
                        "--json", "--interval", "0.2", "--max-download-rate", "128K",
                    )  # fmt: skip
                    async with shoal_process(args[len(SHOAL) :]) as process:
                        assert process.stdout is not None
                        lines = JsonLines(process.stdout)
                        while (record := await lines.next()).get("downloaded", 0) == 0:
                            pass
                        proxy.stop()
                        records.drain()
                        seen = set(records.strangers())
                        while (record := await lines.next()).get("dht_status") is None:
                            pass
                        await trio.sleep(2)  # let any leak happen (the records would show it)
                        process.kill()
                        assert process.stderr is not None
                        stderr = b""
                        while chunk := await process.stderr.receive_some():
                            stderr += chunk
                records.drain()
                nursery.cancel_scope.cancel()
    assert record["dht_status"] == "waiting for proxy"
    assert record["downloaded"] < SIZE
    assert b"waiting for proxy" in stderr  # and one warning says why
    assert seen == {EXTERNAL_IP}
    assert records.strangers() == {EXTERNAL_IP}


class JsonLines:
    """``--json`` records from a stream, one `next` at a time (no async generator to
    finalise when the test stops reading)."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buf = b""

    async def next(self) -> dict[str, Any]:
        while b"\n" not in self._buf:
            chunk = await self._stream.receive_some()
            if not chunk:
                raise EOFError("shoal exited")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        record: dict[str, Any] = json.loads(line)
        return record
