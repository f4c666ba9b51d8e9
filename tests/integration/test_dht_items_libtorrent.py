"""BEP 44 items and BEP 51 samples between shoal and libtorrent 2.1.1, on loopback.

A shoal node on 127.0.0.1 is everyone's bootstrap; libtorrent sessions run on their
own 127.0.0.x addresses (see ``test_dht_libtorrent.py`` for the settings). The
``shoal dht put|get|sample`` commands run as real processes.
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import sys
from typing import TYPE_CHECKING, Any

import trio

from shoal.bencoding import encode
from shoal.dht import bep44
from shoal.dht.krpc import GetPeersQuery, Response, decode_message, encode_message
from shoal.dht_client import open_dht_node
from tests.lt_helpers import loopback_settings, lt_torrent_session, single_file_info

from .test_dht_libtorrent import dht_port, lt, lt_session  # libtorrent or a CI failure / skip

if TYPE_CHECKING:
    from pathlib import Path

    from shoal.dht.compact import Addr
    from shoal.dht_client import DHT

DEADLINE = 45.0


async def shoal(*args: str) -> tuple[int, list[dict[str, Any]]]:
    """Run ``python -m shoal ARGS --json``; (exit code, JSON lines)."""
    with trio.fail_after(DEADLINE):
        proc = await trio.run_process(
            [sys.executable, "-m", "shoal", *args, "--json"],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines() if line.strip()]
    return proc.returncode, lines


def node_args(router: tuple[str, int]) -> list[str]:
    return ["--bind", "127.0.0.1", "--bootstrap", f"{router[0]}:{router[1]}"]


async def wait_alert(ses: Any, kind: type, accept: Any = lambda a: True) -> Any:
    while True:
        await trio.to_thread.run_sync(ses.wait_for_alert, 200)
        for alert in ses.pop_alerts():
            if isinstance(alert, kind) and accept(alert):
                return alert


async def warm(router: DHT, count: int) -> None:
    """Wait until `count` libtorrent nodes have joined through the router (a put made
    before libtorrent's DHT knows anyone is lost).

    Polled: the engine has no event for "table size reached", and libtorrent posts no
    bootstrap alert when its only contact is a node it was given (no routers).
    """
    with trio.fail_after(DEADLINE):
        while router.statistics().node.routing.nodes < count:  # noqa: ASYNC110
            await trio.sleep(0.2)


async def test_shoal_get_reads_what_libtorrent_put() -> None:
    async with (
        open_dht_node(("127.0.0.1", 0)) as router,
        lt_session("127.0.0.2", [router.address]) as a,
        lt_session("127.0.0.3", [router.address]),
    ):
        await warm(router, 2)
        target = bytes(a.dht_put_immutable_item(b"hello from libtorrent").to_bytes())
        assert target == bep44.immutable_target(encode(b"hello from libtorrent"))
        with trio.fail_after(DEADLINE):
            await wait_alert(a, lt.dht_put_alert)
        code, lines = await shoal("dht", "get", target.hex(), *node_args(router.address))
        assert code == 0, lines
        (item,) = lines
        assert item["value"] == "hello from libtorrent"
        assert item["seq"] is None
        assert item["nodes"] >= 1


async def test_libtorrent_reads_shoal_mutable_item_and_its_update(tmp_path: Path) -> None:
    key = tmp_path / "key"
    assert (
        await trio.run_process(
            [sys.executable, "-m", "shoal", "dht", "keygen", str(key)], capture_stdout=True
        )
    ).returncode == 0
    seed = bytes.fromhex(key.read_text())
    public = bep44.public_key_of(seed)
    async with (
        open_dht_node(("127.0.0.1", 0)) as router,
        lt_session("127.0.0.2", [router.address]),
        lt_session("127.0.0.3", [router.address]) as b,
    ):
        await warm(router, 2)
        for seq, text in ((1, "first"), (2, "second")):
            code, lines = await shoal(
                "dht",
                "put",
                text,
                "--key",
                str(key),
                "--salt",
                "topic",
                *node_args(router.address),
            )
            assert code == 0, lines
            assert (lines[0]["public_key"], lines[0]["seq"]) == (public.hex(), seq)
            assert lines[0]["cas"] == (None if seq == 1 else seq - 1)
            alert = await lt_get_mutable(b, public, b"topic", seq)
            value = alert.item
            assert value == text.encode()
            assert bep44.verify(public, bytes(alert.signature), encode(value), seq, b"topic")
            code, lines = await shoal(
                "dht", "get", public.hex(), "--salt", "topic", *node_args(router.address)
            )
            assert code == 0
            assert (lines[0]["value"], lines[0]["seq"]) == (text, seq)
        # BEP 44 cas: a writer who read seq 1 (the second put above sent cas 1 and
        # libtorrent took it) is refused with 301 by libtorrent and by shoal alike.
        put = ["dht", "put", "third", "--key", str(key), "--salt", "topic", "--cas", "1"]
        code, lines = await shoal(*put, *node_args(router.address))
        assert code == 1, lines
        assert (lines[0]["seq"], lines[0]["cas"], lines[0]["stored"]) == (2, 1, 0)
        assert set(lines[0]["errors"]) == {301}
        assert len(lines[0]["errors"]) == 3  # the router and both libtorrent nodes
        alert = await lt_get_mutable(b, public, b"topic", 2)
        assert alert.item == b"second"


async def test_libtorrent_reads_a_near_limit_item_served_by_shoal() -> None:
    """A ~1,000-byte mutable item in a shoal store only: libtorrent parses our get reply
    (value, key, signature, token and nodes, within `MAX_GET_REPLY`)."""
    seed = bytes(range(32))
    value = b"x" * 990
    item = bep44.make_mutable(seed, encode(value), 7, b"big")
    assert bep44.check_item(item) is None
    async with (
        open_dht_node(("127.0.0.1", 0)) as router,
        lt_session("127.0.0.2", [router.address]),
        lt_session("127.0.0.3", [router.address]) as b,
    ):
        await warm(router, 2)
        router.service.node.server.items.put(item, trio.current_time())
        alert = await lt_get_mutable(b, bep44.public_key_of(seed), b"big", 7)
        assert alert.item == value
        assert bytes(alert.signature) == item.sig


async def lt_get_mutable(ses: Any, public: bytes, salt: bytes, seq: int) -> Any:
    """libtorrent's get until it reports `seq` (it may first answer from a stale node)."""
    with trio.fail_after(DEADLINE):
        while True:
            ses.dht_get_mutable_item(public, salt)
            with trio.move_on_after(5):
                alert = await wait_alert(ses, lt.dht_mutable_item_alert)
                if alert.seq == seq:
                    return alert


async def test_libtorrent_samples_a_shoal_node() -> None:
    hashes = {bytes([i]) * 20 for i in range(1, 6)}
    async with (
        open_dht_node(("127.0.0.1", 0)) as node,
        lt_session("127.0.0.2", [node.address]) as ses,
    ):
        for i, h in enumerate(hashes):
            node.service.node.peer_store.add(h, (f"127.10.0.{i}", 6881), trio.current_time())
        with trio.fail_after(DEADLINE):
            while True:
                ses.dht_sample_infohashes(node.address, lt.sha1_hash(bytes(20)))
                with trio.move_on_after(3):
                    alert = await wait_alert(ses, lt.dht_sample_infohashes_alert)
                    break
        assert {bytes(h.to_bytes()) for h in alert.samples} == hashes
        assert alert.num_infohashes == 5
        assert alert.interval.total_seconds() == 300


async def test_shoal_dht_sample_finds_every_torrent_libtorrent_nodes_announced() -> None:
    hashes = [bytes([0xC0 + i]) * 20 for i in range(3)]
    async with (
        open_dht_node(("127.0.0.1", 0)) as router,
        lt_session("127.0.0.2", [router.address]) as a,
        lt_session("127.0.0.3", [router.address]) as b,
        lt_session("127.0.0.4", [router.address]) as c,
    ):
        sessions = (a, b, c)
        for ses in sessions:
            # Answer samples from the live store (libtorrent caches them for 6 h).
            ses.apply_settings({"dht_sample_infohashes_interval": 0})
        await warm(router, 3)
        store = router.service.node.peer_store
        with trio.fail_after(DEADLINE):
            # With four nodes every announce reaches every node, the router included:
            # once it holds all three, the libtorrent nodes do too.
            while len(store) < 3:
                for ses, h in zip(sessions, hashes, strict=True):
                    ses.dht_announce(lt.sha1_hash(h), 6881, 0)
                await trio.sleep(1)
        # Join through a libtorrent node: the walk asks its bootstrap node first.
        lt_node = ("127.0.0.2", dht_port(a))
        code, lines = await shoal("dht", "sample", "--max-rate", "20", *node_args(lt_node))
        assert code == 0
        found = {bytes.fromhex(line["info_hash"]) for line in lines}
        assert found == set(hashes)
        assert len(lines) == 3  # each once
        givers = {line["node"][0] for line in lines}
        assert givers & {"127.0.0.2", "127.0.0.3", "127.0.0.4"}  # libtorrent nodes sampled


async def test_shoal_dht_sample_metadata_names_a_libtorrent_torrent(tmp_path: Path) -> None:
    data = bytes(range(256)) * 300
    (tmp_path / "f.bin").write_bytes(data)
    info = single_file_info(data, 16384)
    info_hash = hashlib.sha1(info).digest()
    settings = loopback_settings("127.0.0.2", dht=True) | {
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
    }
    async with open_dht_node(("127.0.0.1", 0)) as router:
        with lt_torrent_session(lt, info, tmp_path, settings) as (ses, handle):
            ses.add_dht_node(router.address)
            store = router.service.node.peer_store
            with trio.fail_after(DEADLINE):
                while info_hash not in store.sample(random.Random(0), 100):
                    handle.force_dht_announce()
                    await trio.sleep(1)
            code, lines = await shoal(
                "dht", "sample", "--metadata", "--limit", "1", *node_args(router.address)
            )
            assert code == 0, lines
            (line,) = lines
            assert line["info_hash"] == info_hash.hex()
            assert (line["name"], line["size"], line["files"]) == ("f.bin", len(data), 1)


async def test_bep33_seed_flag_and_noseed_between_shoal_and_libtorrent() -> None:
    """libtorrent's seed announce (flag 1) is stored as a seed by shoal, and libtorrent
    answers shoal's ``noseed=1`` get_peers without its seeds."""
    ih = bytes.fromhex("5eed" * 10)
    seed_peer, leecher = ("127.0.0.2", 7001), ("127.0.0.3", 7002)
    async with (
        open_dht_node(("127.0.0.1", 0)) as router,
        lt_session("127.0.0.2", [router.address]) as a,
        lt_session("127.0.0.3", [router.address]) as b,
        lt_session("127.0.0.4", [router.address]) as c,
    ):
        await warm(router, 3)
        store = router.service.node.peer_store
        with trio.fail_after(DEADLINE):
            while len(store.get(ih, trio.current_time(), random.Random(0), 10)) < 2:
                a.dht_announce(lt.sha1_hash(ih), seed_peer[1], 1)  # 1: announce::seed
                b.dht_announce(lt.sha1_hash(ih), leecher[1], 0)
                await trio.sleep(1)
        assert store.scrape_ips(ih, trio.current_time()) == ({"127.0.0.2"}, {"127.0.0.3"})
        target = ("127.0.0.4", dht_port(c))
        with trio.fail_after(DEADLINE):
            # Polled: c (a libtorrent process) may not hold both announces yet.
            while await raw_get_peers(target, ih, noseed=False) != {seed_peer, leecher}:  # noqa: ASYNC110
                await trio.sleep(1)
            assert await raw_get_peers(target, ih, noseed=True) == {leecher}


async def raw_get_peers(target: tuple[str, int], ih: bytes, *, noseed: bool) -> set[Addr]:
    """One get_peers from a fresh loopback socket; the ``values`` of the reply."""
    query = GetPeersQuery(b"np", bytes(range(20)), ih, noseed=noseed)
    with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        await sock.bind(("127.0.0.1", 0))
        await sock.sendto(encode_message(query), target)
        with trio.move_on_after(3):
            while True:
                data, _ = await sock.recvfrom(2048)
                reply = decode_message(data)
                if isinstance(reply, Response) and reply.t == b"np":
                    return set(reply.values)
    return set()
