"""PeerSession over in-memory streams: events flow both ways, errors end one session only."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

from shoal.ids import InfoHash, PeerId
from shoal.net.dialer import OUR_RESERVED, PeerLink
from shoal.net.peer_session import PeerDropped, PeerSession
from shoal.peer import events as ev
from shoal.peer.connection import ConnectionConfig
from shoal.peer.handshake import Handshake

if TYPE_CHECKING:
    from collections.abc import Callable

IH = InfoHash(b"\x11" * 20)
A_ID = PeerId(b"-SH0001-aaaaaaaaaaaa")
B_ID = PeerId(b"-SH0001-bbbbbbbbbbbb")


class Recorder:
    def __init__(self, react: Callable[[PeerSession, ev.PeerEvent], None] | None = None) -> None:
        self.events: list[ev.PeerEvent] = []
        self.react = react
        self.changed = trio.Event()

    async def on_peer_event(self, session: PeerSession, event: ev.PeerEvent) -> None:
        self.events.append(event)
        if self.react is not None:
            self.react(session, event)
        self.changed.set()
        self.changed = trio.Event()
        await trio.lowlevel.checkpoint()

    async def wait_for(self, kind: type) -> None:
        while not any(isinstance(e, kind) for e in self.events):
            await self.changed.wait()


def make_session(
    stream: trio.abc.Stream,
    ours: PeerId,
    theirs: PeerId,
    handler: Recorder,
    *,
    config: ConnectionConfig | None = None,
) -> PeerSession:
    link = PeerLink(
        stream, ("127.0.0.1", 1), Handshake(IH, theirs, OUR_RESERVED), b"", False, False
    )
    return PeerSession(link, IH, ours, handler, num_pieces=8, config=config, rng=random.Random(0))


async def test_events_flow_both_ways_and_eof_drops_the_other_side() -> None:
    left, right = trio.testing.memory_stream_pair()
    ra, rb = Recorder(), Recorder()
    a = make_session(left, A_ID, B_ID, ra)
    b = make_session(right, B_ID, A_ID, rb)
    results: dict[str, PeerDropped] = {}

    async def run(name: str, s: PeerSession) -> None:
        results[name] = await s.run()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "a", a)
            nursery.start_soon(run, "b", b)
            await ra.wait_for(ev.ExtendedHandshakeReceived)
            await rb.wait_for(ev.ExtendedHandshakeReceived)
            a.conn.set_interested(True)
            a.wake()  # no polling: the writer flushes only when woken
            await rb.wait_for(ev.PeerInterested)
            a.close("done here")
    assert results["a"].reason == "done here"
    assert results["b"].reason == "peer closed the connection"
    assert isinstance(ra.events[0], ev.HandshakeReceived)
    assert ra.events[0].peer_id == B_ID
    assert any(isinstance(e, ev.HaveNoneReceived) for e in rb.events)  # BEP 6 first message


async def test_garbage_is_contained_as_peer_dropped() -> None:
    left, right = trio.testing.memory_stream_pair()
    session = make_session(left, A_ID, B_ID, Recorder())
    # A frame announcing a 1 GiB message: a protocol violation, not a crash.
    await right.send_all(b"\x40\x00\x00\x00\x07")
    with trio.fail_after(5):
        dropped = await session.run()
    assert "RemoteProtocolError" in dropped.reason
    with pytest.raises(trio.ClosedResourceError):
        await left.send_all(b"x")  # the session closed its stream


async def test_unexpected_handler_errors_propagate() -> None:
    def boom(session: PeerSession, event: ev.PeerEvent) -> None:
        raise RuntimeError("bug in the torrent")

    left, right = trio.testing.memory_stream_pair()
    a = make_session(left, A_ID, B_ID, Recorder(boom))
    b = make_session(right, B_ID, A_ID, Recorder())
    with trio.fail_after(5), pytest.RaisesGroup(RuntimeError, flatten_subgroups=True):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a.run)
            nursery.start_soon(b.run)


async def test_silent_peer_is_dropped_as_idle(autojump_clock: trio.testing.MockClock) -> None:
    left, right = trio.testing.memory_stream_pair()
    cfg = ConnectionConfig(idle_timeout=30.0, keepalive_interval=10.0)
    session = make_session(left, A_ID, B_ID, Recorder(), config=cfg)
    sent = bytearray()

    async def drain() -> None:
        while data := await right.receive_some():
            sent.extend(data)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain)
        start = trio.current_time()
        dropped = await session.run()
        nursery.cancel_scope.cancel()
    assert dropped.reason == "peer idle"
    assert 30.0 <= trio.current_time() - start < 31.0
    assert b"\x00\x00\x00\x00" in sent  # keep-alives went out meanwhile


async def test_engine_handshake_is_not_sent_twice() -> None:
    left, right = trio.testing.memory_stream_pair()
    session = make_session(left, A_ID, B_ID, Recorder())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.run)
        with trio.fail_after(5):
            first = await right.receive_some()
        session.close("bye")
    # The dialer/listener already sent our handshake: the first bytes are peer-wire
    # frames (have_none, 1-byte body) rather than "\x13BitTorrent protocol".
    assert first.startswith(b"\x00\x00\x00\x01\x0f")
