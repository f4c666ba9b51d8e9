"""``shoal dht`` and its actions with ``--proxy``, run as a real process through dante.

The far side is the recording network of test_dht_proxy.py (shoal nodes on their own
127.x addresses that remember the source of every datagram): the command's node binds
CLIENT_IP, and only dante's external address (EXTERNAL_IP) may reach the far nodes.
Every command gets a loopback ``--bootstrap``; dante and microsocks only relay to
127.0.0.0/8.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
import trio

from shoal.bencoding import decode
from tests.integration.socks_servers import CLIENT_IP, EXTERNAL_IP, run_dante, run_microsocks
from tests.integration.test_dht_proxy import (
    ANNOUNCER_IP,
    IH,
    ROUTER_IP,
    RecordingSocket,
    far_network,
    far_node,
)

if TYPE_CHECKING:
    from pathlib import Path

    from _typeshed import ReadableBuffer

    from shoal.net.dht_service import DHTService

pytestmark = pytest.mark.integration

DEADLINE = 60.0


async def shoal(*args: str) -> tuple[int, list[dict[str, Any]], str]:
    """``python -m shoal ARGS --json``: (exit code, JSON lines of stdout, stderr)."""
    with trio.fail_after(DEADLINE):
        proc = await trio.run_process(
            [sys.executable, "-m", "shoal", *args, "--json"],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines() if line.strip()]
    return proc.returncode, lines, proc.stderr.decode()


def node_args(router: DHTService, proxy_url: str) -> list[str]:
    assert router.address is not None
    host, port = router.address
    return ["--bind", CLIENT_IP, "--bootstrap", f"{host}:{port}", "--proxy", proxy_url]


def only_the_proxy_was_heard(sources: list[str]) -> None:
    assert EXTERNAL_IP in sources
    assert set(sources) - {ROUTER_IP, ANNOUNCER_IP} == {EXTERNAL_IP}


async def test_get_peers_through_dante(tmp_path: Path) -> None:
    sources: list[str] = []
    async with run_dante(tmp_path) as proxy, far_network(sources) as (router, _):
        code, lines, err = await shoal(
            "dht", "get-peers", IH.hex(), *node_args(router, proxy.url())
        )
    assert code == 0, err
    assert {"event": "peer", "ip": ANNOUNCER_IP, "port": 6881} in [
        {k: line.get(k) for k in ("event", "ip", "port")} for line in lines
    ]
    only_the_proxy_was_heard(sources)


async def test_put_then_get_through_dante(tmp_path: Path) -> None:
    sources: list[str] = []
    async with run_dante(tmp_path) as proxy, far_network(sources) as (router, _):
        args = node_args(router, proxy.url())
        code, put, err = await shoal("dht", "put", "through the proxy", *args)
        assert code == 0, err
        target = hashlib.sha1(b"17:through the proxy").hexdigest()
        assert put[-1]["target"] == target
        assert put[-1]["stored"] >= 1
        code, got, err = await shoal("dht", "get", target, *args)
    assert code == 0, err
    assert got[-1]["event"] == "item"
    assert got[-1]["value"] == "through the proxy"
    only_the_proxy_was_heard(sources)


async def test_sample_through_dante(tmp_path: Path) -> None:
    """BEP 51 walk through the relay: the router holds IH (the announcer announced it)."""
    sources: list[str] = []
    async with run_dante(tmp_path) as proxy, far_network(sources) as (router, _):
        args = node_args(router, proxy.url())
        code, lines, err = await shoal("dht", "sample", "--limit", "1", *args)
    assert code == 0, err
    assert [(line["event"], line["info_hash"]) for line in lines] == [("sample", IH.hex())]
    only_the_proxy_was_heard(sources)


class PayloadSocket(RecordingSocket):
    """Also keeps every datagram received, to read what our node sent."""

    def __init__(self, sources: list[str], payloads: list[bytes]) -> None:
        super().__init__(sources)
        self.payloads = payloads

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, tuple[str, int]]:
        data, addr = super().recvfrom(bufsize, flags)
        self.payloads.append(data)
        return data, addr

    def sendto(self, data: ReadableBuffer, *args: object) -> int:
        return super().sendto(data, *args)


async def test_anonymous_sends_no_client_version(tmp_path: Path) -> None:
    """With --anonymous the router's queries from us (through dante) carry no ``v``;
    without it they do (the control case: the check can see a version)."""
    import random

    from shoal.dht.node import DHTNode
    from shoal.net.dht_service import DHTService

    for anonymous in (False, True):
        sources: list[str] = []
        payloads: list[bytes] = []
        node = DHTNode(random.Random(1).randbytes(20), random.Random(1), trio.current_time())
        router = DHTService(node, bind=(ROUTER_IP, 0), sock=PayloadSocket(sources, payloads))
        async with run_dante(tmp_path) as proxy, trio.open_nursery() as nursery:
            await nursery.start(router.serve)
            flag = ["--anonymous"] if anonymous else []
            code, _, err = await shoal(
                "dht",
                "get-peers",
                IH.hex(),
                "--timeout",
                "5",
                *node_args(router, proxy.url()),
                *flag,
            )
            nursery.cancel_scope.cancel()
        assert code in (0, 1), err  # no peer is found: only the router is there
        queries = [m for m in map(decode, payloads) if isinstance(m, dict) and m.get(b"y") == b"q"]
        assert queries
        assert all((b"v" in q) is not anonymous for q in queries)
        assert set(sources) == {EXTERNAL_IP}


async def test_wrong_credentials_are_one_clear_error(tmp_path: Path) -> None:
    sources: list[str] = []
    async with (
        run_microsocks(tmp_path, "alice", "secret") as proxy,
        far_node(ROUTER_IP, sources, 1) as router,
    ):
        url = proxy.url("alice", "wrong")
        code, lines, err = await shoal("dht", "get-peers", IH.hex(), *node_args(router, url))
    assert code == 1
    assert lines == []
    assert err.strip().splitlines() == [
        f"shoal: proxy {proxy.host}:{proxy.port} rejected the user name or password"
    ]
    assert sources == []


async def test_proxy_down_at_start_is_one_error(tmp_path: Path) -> None:
    from tests.integration.peers import free_port

    sources: list[str] = []
    async with far_node(ROUTER_IP, sources, 1) as router:
        dead = f"socks5://127.0.0.2:{free_port('127.0.0.2')}"
        for action in (["dht"], ["dht", "get", "ab" * 20], ["dht", "put", "x"]):
            code, lines, err = await shoal(*action, *node_args(router, dead))
            assert code == 1
            assert lines == []
            assert err.strip().splitlines()[0].startswith("shoal: cannot reach proxy 127.0.0.2:")
            assert len(err.strip().splitlines()) == 1
    assert sources == []


async def test_anonymous_without_proxy_is_refused() -> None:
    code, lines, err = await shoal(
        "dht", "get-peers", IH.hex(), "--bind", CLIENT_IP, "--bootstrap", "127.0.0.1:9",
        "--anonymous",
    )  # fmt: skip
    assert (code, lines) == (1, [])
    assert "--anonymous needs --proxy" in err


async def _read_json_until(
    stream: trio.abc.ReceiveStream, buffer: bytearray, key: str, value: str
) -> None:
    """Read stdout lines of the node until a stats line has `key` == `value`."""
    while True:
        while b"\n" not in buffer:
            chunk = await stream.receive_some()
            assert chunk, "the node exited"
            buffer += chunk
        line, _, rest = bytes(buffer).partition(b"\n")
        buffer[:] = rest
        obj = json.loads(line)
        if obj.get(key) == value:
            return


async def test_node_says_waiting_for_proxy_when_dante_dies(tmp_path: Path) -> None:
    """``shoal dht --proxy``: stats say "through proxy"; kill dante: the JSON stats
    and stderr say "waiting for proxy", and the far end hears nothing more."""
    sources: list[str] = []
    async with run_dante(tmp_path) as proxy, far_network(sources) as (router, _):
        argv = [sys.executable, "-m", "shoal", "dht", "--json", "--interval", "0.2"]
        argv += node_args(router, proxy.url())
        err_file = tmp_path / "stderr"
        with err_file.open("wb") as err_out:
            process = await trio.lowlevel.open_process(argv, stdout=subprocess.PIPE, stderr=err_out)
        try:
            assert process.stdout is not None
            buffer = bytearray()
            with trio.fail_after(DEADLINE):
                await _read_json_until(process.stdout, buffer, "proxy", "through proxy")
                while EXTERNAL_IP not in sources:  # noqa: ASYNC110 - the node joined
                    await trio.sleep(0.05)
                proxy.stop()
                await _read_json_until(process.stdout, buffer, "proxy", "waiting for proxy")
                heard = len(sources)
                await _read_json_until(process.stdout, buffer, "proxy", "waiting for proxy")
                assert len(sources) == heard
                process.send_signal(signal.SIGINT)
                assert await process.wait() == 130
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    stderr = err_file.read_text()
    # The relay's warning (the same line `shoal get` prints), once, with the reason.
    assert stderr.count("waiting for proxy: proxy closed the control connection") == 1
    only_the_proxy_was_heard(sources)
