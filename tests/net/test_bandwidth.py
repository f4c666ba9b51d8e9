"""Rate limits on real Trio streams, in virtual time (MockClock): bytes are counted
at the far end over 20 s, so nothing here depends on the speed of the machine."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from shoal.net.bandwidth import GLOBAL_DOWN, GLOBAL_UP, BandwidthManager

RATE = 200_000  # bytes per second
WINDOW = 20.0


async def _count(stream: trio.abc.ReceiveStream, total: list[int]) -> None:
    while data := await stream.receive_some(65536):
        total[0] += len(data)


async def _send_forever(stream: trio.abc.SendStream) -> None:
    block = b"x" * (16 * 1024 + 13)  # a piece message
    while True:
        await stream.send_all(block)


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_upload_limit_holds_within_ten_percent_over_20_s(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bandwidth = BandwidthManager()
    bandwidth.set_rate(GLOBAL_UP, RATE)
    got = [0]
    async with trio.open_nursery() as nursery:
        await nursery.start(bandwidth.serve)
        send, receive = trio.testing.memory_stream_pair()
        limited = bandwidth.wrap(send)
        nursery.start_soon(_count, receive, got)
        with trio.move_on_after(WINDOW):
            await _send_forever(limited)
        nursery.cancel_scope.cancel()
    assert got[0] == pytest.approx(RATE * WINDOW, rel=0.1)


async def test_download_limit_holds_within_ten_percent_over_20_s(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bandwidth = BandwidthManager()
    bandwidth.set_rate(GLOBAL_DOWN, RATE)
    got = [0]
    async with trio.open_nursery() as nursery:
        await nursery.start(bandwidth.serve)
        # Lockstep: the sender blocks until we read, like TCP with a full window.
        send, receive = trio.testing.lockstep_stream_pair()
        nursery.start_soon(_send_forever, send)
        with trio.move_on_after(WINDOW):
            await _count(bandwidth.wrap(receive), got)
        nursery.cancel_scope.cancel()
    assert got[0] == pytest.approx(RATE * WINDOW, rel=0.1)


async def test_two_connections_under_one_global_limit_share_it_evenly(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bandwidth = BandwidthManager()
    bandwidth.set_rate(GLOBAL_UP, RATE)
    got = [[0], [0]]
    async with trio.open_nursery() as nursery:
        await nursery.start(bandwidth.serve)
        for total in got:
            send, receive = trio.testing.memory_stream_pair()
            nursery.start_soon(_count, receive, total)
            nursery.start_soon(_send_forever, bandwidth.wrap(send))
        await trio.sleep(WINDOW)
        nursery.cancel_scope.cancel()
    a, b = got[0][0], got[1][0]
    assert a + b == pytest.approx(RATE * WINDOW, rel=0.1)
    assert a == pytest.approx(b, rel=0.1)


async def test_unlimited_channels_pass_through_without_a_timer() -> None:
    bandwidth = BandwidthManager()  # no serve(): nothing may wait for it
    send, receive = trio.testing.memory_stream_pair()
    limited = bandwidth.wrap(send)
    await limited.send_all(b"x" * 100_000)
    got = b""
    while len(got) < 100_000:
        got += await receive.receive_some()
    await limited.aclose()
