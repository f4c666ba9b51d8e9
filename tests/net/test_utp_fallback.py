"""Connection policy: uTP first, TCP raced after a head start; both accepted."""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any

import pytest
import trio
import trio.testing

import shoal
from shoal.create import create_torrent
from shoal.metainfo import parse_metainfo
from shoal.net.utp_transport import UTP_HEAD_START, FallbackTransport

if TYPE_CHECKING:
    from pathlib import Path


def config(transports: tuple[str, ...]) -> shoal.ClientConfig:
    return shoal.ClientConfig(bind_host="127.0.0.1", port=0, dht=False, transports=transports)


async def _transfer(tmp_path: Path, seeder_transports: tuple[str, ...]) -> tuple[Any, Any]:
    data = tmp_path / "seed" / "payload"
    data.mkdir(parents=True)
    (data / "a.bin").write_bytes(random.Random(5).randbytes(200_000))
    metainfo = parse_metainfo(create_torrent(data, piece_length=16384))
    async with (
        shoal.open_client(config(seeder_transports)) as seeder,
        shoal.open_client(config(("utp", "tcp"))) as leecher,
    ):
        seeding = await seeder.add(metainfo, save_to=tmp_path / "seed")
        with trio.fail_after(30):
            await seeding.wait_complete()
            t = await leecher.add(
                metainfo, save_to=tmp_path / "leech", peers=[seeder.listen_address], seed=False
            )
            await t.wait_complete()
        assert (tmp_path / "leech" / "payload" / "a.bin").read_bytes() == (
            data / "a.bin"
        ).read_bytes()
        return seeder, leecher


def _dial_transport(client: Any) -> Any:
    """The transport under the client-wide wrappers (rate limits, IP filter)."""
    transport = client._dialer.transport
    while hasattr(transport, "inner"):
        transport = transport.inner
    return transport


async def test_both_dials_utp_when_the_peer_speaks_it(tmp_path: Path) -> None:
    _seeder, leecher = await _transfer(tmp_path, ("utp", "tcp"))
    transport = _dial_transport(leecher)
    assert isinstance(transport, FallbackTransport)
    assert transport.fallbacks == 0
    assert leecher.utp.statistics().datagrams_in > 200_000 // 1178  # payload came by uTP
    assert _seeder.utp is not None


async def test_both_falls_back_to_tcp_for_a_tcp_only_peer(tmp_path: Path) -> None:
    _seeder, leecher = await _transfer(tmp_path, ("tcp",))
    transport = _dial_transport(leecher)
    assert isinstance(transport, FallbackTransport)
    assert transport.fallbacks >= 1


# -- the race (happy eyeballs), in virtual time ------------------------------------------


class FakeTransport:
    """Answers `connect` after `delay` seconds with a stream or an error; records when."""

    def __init__(
        self, delay: float, error: Exception | None = None, *, uncancellable: bool = False
    ) -> None:
        self.delay = delay
        self.error = error
        self.uncancellable = uncancellable  # a connect that got through as we cancelled
        self.started: list[float] = []
        self.closed = 0

    async def connect(self, addr: tuple[str, int]) -> trio.abc.Stream:
        self.started.append(trio.current_time())
        with trio.CancelScope(shield=self.uncancellable):
            await trio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        stream, _ = trio.testing.memory_stream_pair()
        stream.send_stream.close_hook = self._closed
        return stream

    def _closed(self) -> None:
        self.closed += 1

    def local_end(self, stream: trio.abc.Stream) -> tuple[str, int] | None:
        return None


PEER = ("127.0.0.1", 6881)


async def test_race_a_silent_utp_peer_costs_only_the_head_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    utp, tcp = FakeTransport(math.inf), FakeTransport(0.001)
    transport = FallbackTransport(utp, tcp)
    start = trio.current_time()
    await transport.connect(PEER)
    assert tcp.started == [start + UTP_HEAD_START]  # not the 3 s uTP connect budget
    assert trio.current_time() == start + UTP_HEAD_START + 0.001
    assert transport.fallbacks == 1


async def test_race_a_refused_utp_dial_starts_tcp_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    utp = FakeTransport(0.01, ConnectionRefusedError("RESET"))
    tcp = FakeTransport(0.001)
    transport = FallbackTransport(utp, tcp)
    start = trio.current_time()
    await transport.connect(PEER)
    assert tcp.started == [start + 0.01]
    assert transport.fallbacks == 1


async def test_race_utp_wins_when_it_answers_within_a_round_trip(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A slow path: uTP's SYN-ACK takes 0.3 s, past the head start, and TCP takes as
    # long once started; uTP still wins because it started first. TCP is cancelled.
    utp, tcp = FakeTransport(0.3), FakeTransport(0.3)
    transport = FallbackTransport(utp, tcp)
    await transport.connect(PEER)
    assert transport.fallbacks == 0
    assert len(tcp.started) == 1
    assert tcp.closed == 0  # cancelled before it got through: nothing to close


async def test_race_waits_for_utp_when_tcp_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    utp = FakeTransport(1.0)  # a SYN-ACK lost once, answered on the resend
    tcp = FakeTransport(0.001, ConnectionRefusedError("uTP-only peer"))
    transport = FallbackTransport(utp, tcp)
    await transport.connect(PEER)
    assert transport.fallbacks == 0


async def test_race_both_failing_raises_tcps_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    utp = FakeTransport(0.01, ConnectionRefusedError("RESET"))
    tcp = FakeTransport(0.01, ConnectionRefusedError("tcp refused"))
    with pytest.raises(ConnectionRefusedError, match="tcp refused"):
        await FallbackTransport(utp, tcp).connect(PEER)


async def test_race_a_second_winner_is_closed(autojump_clock: trio.testing.MockClock) -> None:
    # Both connect at 0.75 s, and neither attempt can be cancelled any more by then.
    utp = FakeTransport(UTP_HEAD_START + 0.5, uncancellable=True)
    tcp = FakeTransport(0.5, uncancellable=True)
    transport = FallbackTransport(utp, tcp)
    stream = await transport.connect(PEER)
    assert utp.closed + tcp.closed == 1  # the loser of the tie is not leaked
    await stream.aclose()
    assert utp.closed + tcp.closed == 2


async def test_race_cancelled_as_it_connects_closes_the_winner(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # TCP gets through at 0.75 s, the very moment the caller's deadline cancels the dial:
    # the stream nobody will receive is closed, not leaked (a ResourceWarning in CI).
    utp = FakeTransport(math.inf)
    tcp = FakeTransport(0.5, uncancellable=True)
    with trio.move_on_after(UTP_HEAD_START + 0.5) as scope:
        await FallbackTransport(utp, tcp).connect(PEER)
    assert scope.cancelled_caught
    assert tcp.closed == 1
