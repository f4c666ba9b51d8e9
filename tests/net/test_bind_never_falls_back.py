"""``--bind ADDR`` never falls back (issue 14): every socket the client opens leaves
from ADDR, as seen by loopback listeners on another address, and the watchdog stops
shoal with `BindAddressError` once ADDR cannot be bound any more.

The disappearing-address case with a real network namespace is in
``test_bind_address_lost_netns.py``; here an address that is never there stands in."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio

import shoal
from shoal.errors import BindAddressError, ProxyError
from shoal.net.bindwatch import check_bind_address, watch_bind_addresses, watched_hosts

if TYPE_CHECKING:
    from pathlib import Path

OURS = "127.0.0.5"  # the --bind address
THEIRS = "127.0.0.1"  # where the recording listeners are
MAGNET = "magnet:?xt=urn:btih:" + "ab" * 20
#: TEST-NET-1 (RFC 5737): never assigned here, so binding to it fails like a lost
#: address. Only bound, never sent to.
ABSENT = "192.0.2.1"


def config(**kw: object) -> shoal.ClientConfig:
    base: dict[str, object] = {"bind_host": OURS, "port": 0, "dht": False}
    return shoal.ClientConfig(**(base | kw))  # type: ignore[arg-type]


def test_only_ip_literals_that_can_go_away_are_watched() -> None:
    hosts = ["0.0.0.0", "::", "localhost", "127.0.0.5", "[::1]", "127.0.0.5"]
    assert watched_hosts(hosts) == ["127.0.0.5", "::1"]


async def test_watchdog_raises_for_an_address_that_cannot_be_bound() -> None:
    await check_bind_address(OURS)  # present: no error
    with pytest.raises(BindAddressError, match=r"192\.0\.2\.1 is gone"):
        await check_bind_address(ABSENT)
    with pytest.raises(BindAddressError):
        await watch_bind_addresses([OURS, ABSENT])


async def test_watchdog_ignores_failures_that_say_nothing_about_the_address() -> None:
    """Out of descriptors (a connection storm) is not a lost address: keep running."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    held = []
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        with pytest.raises(OSError, match="Too many open files"):  # noqa: PT012
            while True:  # bounded by the 64-descriptor limit
                held.append(open(__file__, "rb"))  # noqa: ASYNC230, SIM115
        await check_bind_address(ABSENT)  # cannot even make the socket: no verdict
    finally:
        for f in held:
            f.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    with pytest.raises(BindAddressError):
        await check_bind_address(ABSENT)  # with descriptors again, the verdict is back


async def test_watchdog_keeps_quiet_while_the_address_is_there(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.move_on_after(60) as scope:
        await watch_bind_addresses([OURS], interval=1.0)
    assert scope.cancelled_caught  # thirty checks later, still running


async def test_client_cannot_start_on_an_absent_address() -> None:
    with pytest.raises(OSError, match="assign"):
        async with shoal.open_client(config(bind_host=ABSENT)):
            pytest.fail("started without its bind address")


async def test_tcp_dials_leave_from_the_bind_address(tmp_path: Path) -> None:
    seen: list[str] = []
    got = trio.Event()
    async with trio.open_nursery() as nursery:
        [listener] = await trio.open_tcp_listeners(0, host=THEIRS)
        port = listener.socket.getsockname()[1]

        async def accept() -> None:
            async with listener:
                stream = await listener.accept()
                seen.append(stream.socket.getpeername()[0])
                got.set()
                await stream.aclose()

        nursery.start_soon(accept)
        async with shoal.open_client(config()) as client:
            await client.add(MAGNET, save_to=tmp_path, peers=[(THEIRS, port)])
            with trio.fail_after(20):
                await got.wait()
    assert seen == [OURS]


async def _first_datagram_source(sock: trio.socket.SocketType) -> str:
    with trio.fail_after(20):
        _, source = await sock.recvfrom(2048)
    return str(source[0])


async def test_dht_queries_leave_from_the_bind_address() -> None:
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as node:
        await node.bind((THEIRS, 0))
        boot = node.getsockname()
        async with shoal.open_client(config(dht=True, bootstrap=(boot,))):
            assert await _first_datagram_source(node) == OURS


async def test_utp_dials_leave_from_the_bind_address(tmp_path: Path) -> None:
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as peer:
        await peer.bind((THEIRS, 0))
        port = peer.getsockname()[1]
        async with shoal.open_client(config(transports=("utp",))) as client:
            await client.add(MAGNET, save_to=tmp_path, peers=[(THEIRS, port)])
            assert await _first_datagram_source(peer) == OURS  # the uTP SYN


async def test_proxy_connection_leaves_from_the_bind_address() -> None:
    seen: list[str] = []
    [proxy] = await trio.open_tcp_listeners(0, host=THEIRS)
    port = proxy.socket.getsockname()[1]

    async def accept_and_hang_up() -> None:
        async with proxy:
            stream = await proxy.accept()
            seen.append(stream.socket.getpeername()[0])
            await stream.aclose()  # not a proxy: the client must fail, not go direct

    async with trio.open_nursery() as nursery:
        nursery.start_soon(accept_and_hang_up)
        with pytest.raises(ProxyError), trio.fail_after(20):
            async with shoal.open_client(config(proxy=f"socks5://{THEIRS}:{port}")):
                pytest.fail("a dead proxy must stop the client")
    assert seen == [OURS]
