"""SOCKS5 against real servers on loopback: dante-server (CONNECT and UDP ASSOCIATE) and
microsocks (CONNECT, username/password).

The far side (an echo server, a KRPC node) records the source address of everything it
receives: only the proxy's external address (EXTERNAL_IP) may appear, never ours
(CLIENT_IP), also after the proxy is killed (fail closed).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import pytest
import trio

from shoal import socks5
from shoal.errors import ProxyError
from shoal.net.socks import Socks5Connector, open_socks5_udp_association
from shoal.net.socks_udp import ProxyRelay, RelayedSocket, RelayState
from shoal.socks5 import parse_proxy_url
from tests.integration.peers import free_port
from tests.integration.socks_servers import (
    CLIENT_IP,
    EXTERNAL_IP,
    PROXY_IP,
    is_ping_reply,
    krpc_ping,
    run_dante,
    run_echo_server,
    run_krpc_responder,
    run_microsocks,
)

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration


async def echo_through(connector: Socks5Connector, host: str, port: int) -> bytes:
    with trio.fail_after(20):
        stream = await connector.connect(host, port)
        async with stream:
            await stream.send_all(b"hello through the proxy")
            got = b""
            while len(got) < 23:
                got += await stream.receive_some(100)
            return got


@pytest.mark.parametrize("server", ["dante", "microsocks"])
async def test_connect_through_a_real_proxy(tmp_path: Path, server: str) -> None:
    run = run_dante if server == "dante" else run_microsocks
    async with run(tmp_path) as proxy, run_echo_server() as echo:
        connector = Socks5Connector(parse_proxy_url(proxy.url()), bind_host=CLIENT_IP)
        assert await echo_through(connector, "127.0.0.5", echo.port) == b"hello through the proxy"
    assert echo.sources == [EXTERNAL_IP]


async def test_username_and_password(tmp_path: Path) -> None:
    async with run_microsocks(tmp_path, "alice", "s3cret") as proxy, run_echo_server() as echo:
        good = Socks5Connector(parse_proxy_url(proxy.url("alice", "s3cret")))
        assert await echo_through(good, "127.0.0.5", echo.port) == b"hello through the proxy"
        bad = Socks5Connector(parse_proxy_url(proxy.url("alice", "wrong")))
        with pytest.raises(ProxyError, match=r"refused 127\.0\.0\.5.*(?i:auth)"):
            await echo_through(bad, "127.0.0.5", echo.port)
        anonymous = Socks5Connector(parse_proxy_url(proxy.url()))
        with pytest.raises(ProxyError):
            await echo_through(anonymous, "127.0.0.5", echo.port)
    assert echo.sources == [EXTERNAL_IP]


async def test_proxy_down_is_a_clear_error_and_nothing_goes_direct() -> None:
    async with run_echo_server() as echo:
        dead = f"socks5://{PROXY_IP}:{free_port(PROXY_IP)}"
        connector = Socks5Connector(parse_proxy_url(dead))
        with pytest.raises(ProxyError, match=r"cannot reach proxy 127\.0\.0\.2"):
            await echo_through(connector, "127.0.0.5", echo.port)
    assert echo.sources == []


async def test_udp_associate_carries_krpc_through_dante(tmp_path: Path) -> None:
    async with run_dante(tmp_path) as proxy, run_krpc_responder() as node:
        url = parse_proxy_url(proxy.url())
        async with open_socks5_udp_association(url, bind_host=CLIENT_IP) as assoc:
            assert assoc.relay[0] == PROXY_IP
            with trio.fail_after(20):
                for i in range(3):
                    tid = bytes([i, i])
                    await assoc.send_to(krpc_ping(tid), ("127.0.0.5", node.port))
                    data, src = await assoc.receive_from()
                    assert is_ping_reply(data, tid)
                    assert src == ("127.0.0.5", node.port)
    assert node.sources == [EXTERNAL_IP] * 3


async def test_killing_dante_ends_the_association_and_nothing_goes_direct(
    tmp_path: Path,
) -> None:
    async with run_krpc_responder() as node, run_echo_server() as echo:
        async with run_dante(tmp_path) as proxy:
            url = parse_proxy_url(proxy.url())
            connector = Socks5Connector(url, bind_host=CLIENT_IP)
            async with open_socks5_udp_association(url, bind_host=CLIENT_IP) as assoc:
                with trio.fail_after(20):
                    await assoc.send_to(krpc_ping(b"aa"), ("127.0.0.5", node.port))
                    data, _ = await assoc.receive_from()
                    assert is_ping_reply(data, b"aa")
                    proxy.stop()  # the proxy dies mid-session
                    await assoc.wait_broken()  # the control connection tells us
                assert "UDP association ended" in (assoc.broken or "")
                with pytest.raises(ProxyError):
                    await assoc.send_to(krpc_ping(b"bb"), ("127.0.0.5", node.port))
                with pytest.raises(ProxyError):
                    await assoc.receive_from()
            with pytest.raises(ProxyError, match="cannot reach proxy"):
                await echo_through(connector, "127.0.0.5", echo.port)
        # Give anything that did leak time to arrive before checking the records.
        await trio.sleep(0.2)
    assert node.sources == [EXTERNAL_IP]
    assert echo.sources == []


async def test_host_names_reach_the_proxy_as_names() -> None:
    """A recording SOCKS5 server (our codec, a real loopback socket) sees ATYP
    DOMAINNAME for a name, from python-socks' CONNECT and from our UDP ASSOCIATE
    header alike: nothing was resolved locally."""
    seen: list[tuple[int, str, int]] = []
    udp_seen: list[socks5.UDPDatagram] = []
    got_udp = trio.Event()
    relay = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await relay.bind((PROXY_IP, 0))

    async def serve(stream: trio.SocketStream) -> None:
        buf = b""
        while socks5.decode_method_choice(buf + b"\x00") is None or len(buf) < 3:
            buf += await stream.receive_some(100)
        await stream.send_all(b"\x05\x00")
        buf = b""
        while (req := socks5.decode_request(buf)) is None:
            buf += await stream.receive_some(100)
        command, host, port, _ = req
        seen.append((command, host, port))
        if command == socks5.Command.CONNECT:
            await stream.send_all(
                socks5.encode_reply(socks5.ReplyCode.HOST_UNREACHABLE, "0.0.0.0", 0)
            )
            return
        await stream.send_all(socks5.encode_reply(0, PROXY_IP, relay.getsockname()[1]))
        data, _ = await relay.recvfrom(4096)
        udp_seen.append(socks5.decode_udp(data))
        got_udp.set()
        await stream.receive_some(100)  # hold the association until the client leaves

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, serve, 0, host=PROXY_IP))
        port = listeners[0].socket.getsockname()[1]
        url = parse_proxy_url(f"socks5://{PROXY_IP}:{port}")
        with trio.fail_after(20):
            with pytest.raises(ProxyError, match=r"(?i)host unreachable"):
                await Socks5Connector(url).connect("peer.shoal-test.invalid", 6881)
            async with open_socks5_udp_association(url, bind_host=CLIENT_IP) as assoc:
                await assoc.send_to(b"d1:y1:qe", ("router.shoal-test.invalid", 6881))
                await got_udp.wait()
        nursery.cancel_scope.cancel()
    relay.close()
    assert seen[0] == (socks5.Command.CONNECT, "peer.shoal-test.invalid", 6881)
    assert seen[1][0] == socks5.Command.UDP_ASSOCIATE
    assert udp_seen == [socks5.UDPDatagram("router.shoal-test.invalid", 6881, b"d1:y1:qe")]


async def test_client_start_with_the_proxy_down_is_one_clear_error() -> None:
    import shoal

    dead = f"socks5://{PROXY_IP}:{free_port(PROXY_IP)}"
    config = shoal.ClientConfig(bind_host=CLIENT_IP, port=0, proxy=dead)
    with pytest.raises(ProxyError, match=r"cannot reach proxy 127\.0\.0\.2:\d+"):
        async with shoal.open_client(config):
            pass


async def test_client_start_with_wrong_credentials_is_one_clear_error(tmp_path: Path) -> None:
    import shoal

    async with run_microsocks(tmp_path, "alice", "s3cret") as proxy:
        config = shoal.ClientConfig(bind_host=CLIENT_IP, port=0, proxy=proxy.url("alice", "nope"))
        with pytest.raises(ProxyError, match="rejected the user name or password"):
            async with shoal.open_client(config):
                pass
        good = shoal.ClientConfig(bind_host=CLIENT_IP, port=0, proxy=proxy.url("alice", "s3cret"))
        async with shoal.open_client(good) as client:
            # microsocks has no UDP ASSOCIATE: the DHT waits for the proxy, silent.
            assert client.dht is not None
            relay = client.dht.relay
            assert relay is not None
            with trio.fail_after(10):
                await relay.wait_state(RelayState.WAITING)
            assert relay.associations == 0
            assert relay.last_error is not None
            assert "UDP_ASSOCIATE" in relay.last_error


async def test_the_dht_relay_with_wrong_credentials_waits_and_says_why(tmp_path: Path) -> None:
    """If the proxy starts refusing our credentials after start-up (the start-up check
    makes that one clear error), the DHT's relay sends nothing and says why."""
    async with run_microsocks(tmp_path, "alice", "s3cret") as proxy:
        relayed = RelayedSocket()
        with relayed:
            relayed.bind((CLIENT_IP, 0))
            relay = ProxyRelay(relayed, parse_proxy_url(proxy.url("alice", "nope")))
            async with trio.open_nursery() as nursery:
                with trio.fail_after(10):
                    await nursery.start(relay.run)
                assert relay.state is RelayState.WAITING
                assert relay.last_error is not None
                assert "rejected the user name or password" in relay.last_error
                with pytest.raises(ProxyError):
                    relayed.sendto(b"d1:y1:qe", ("127.0.0.5", 6881))
                nursery.cancel_scope.cancel()
