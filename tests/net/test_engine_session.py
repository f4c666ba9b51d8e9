"""`EngineSession` on loopback: what a raw peer sees of a client, and what the client
reports when the peer hangs up; bugs in the host propagate instead of being contained.

(Protocol errors ending one connection only: ``tests/net/test_hostile.py``,
``test_a_malformed_stream_costs_only_that_peer``; keep-alives and the idle drop:
``tests/proto/session/test_engine.py``.)
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import pytest
import trio

import shoal
from shoal import torrent_events as tev
from shoal.create import create_torrent
from shoal.ids import InfoHash, PeerId
from shoal.metainfo import parse_metainfo
from shoal.net.dialer import OUR_RESERVED, PeerLink, read_handshake
from shoal.net.peer_session import EngineSession
from shoal.peer import messages as m
from shoal.peer.frames import FrameDecoder
from shoal.peer.handshake import Handshake, HandshakeParser
from shoal.testing.hostile import wire_handshake

if TYPE_CHECKING:
    from pathlib import Path


def config() -> shoal.ClientConfig:
    return shoal.ClientConfig(bind_host="127.0.0.1", port=0, dht=False)


async def test_a_raw_peer_gets_one_handshake_then_frames_and_its_hang_up_is_reported(
    tmp_path: Path,
) -> None:
    data = tmp_path / "payload"
    data.mkdir()
    (data / "x.bin").write_bytes(random.Random(3).randbytes(50_000))
    metainfo = parse_metainfo(create_torrent(data, piece_length=16384))
    async with shoal.open_client(config()) as seeder:
        t = await seeder.add(metainfo, save_to=tmp_path)
        await t.wait_complete()
        events = t.events()
        async with await trio.open_tcp_stream(*seeder.listen_address) as stream:
            me = stream.socket.getsockname()[:2]
            with trio.fail_after(5):
                await stream.send_all(wire_handshake(metainfo.info_hash, 1))
                parser = HandshakeParser(expected_info_hash=metainfo.info_hash)
                await read_handshake(stream, parser)
                # The dialer/listener already sent the handshake: what follows are frames
                # (BEP 6: have_all first, then the BEP 10 handshake), not a second one.
                decoder = FrameDecoder(num_pieces=metainfo.info.num_pieces)
                if parser.trailing_data:
                    decoder.receive_data(parser.trailing_data)
                got = list(decoder)
                while not any(isinstance(x, m.Extended) for x in got):
                    decoder.receive_data(await stream.receive_some())
                    got.extend(decoder)
                assert isinstance(got[0], m.HaveAll), got
                async for event in events:
                    if isinstance(event, tev.PeerConnected):
                        assert event.addr == me
                        assert event.incoming
                        break
                await stream.aclose()
                async for event in events:
                    if isinstance(event, tev.PeerDisconnected):
                        assert event == tev.PeerDisconnected(me, "peer closed the connection")
                        break
        assert t.statistics().peers == 0


class BuggyHost:
    """An `EngineHost` with a bug: reading the peer's bytes raises."""

    def session_data(self, key: int, data: bytes) -> None:
        raise RuntimeError("bug in the torrent")

    def session_output(self, key: int) -> list[bytes | bytearray | memoryview]:
        return []

    def session_ended(self, key: int, reason: str) -> None:
        raise AssertionError(f"a bug is not a peer leaving: {reason}")

    def session_backlog(self, key: int) -> int:
        return 0


async def test_a_bug_in_the_host_propagates_instead_of_dropping_the_peer() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with listeners[0], await trio.open_tcp_stream("127.0.0.1", port) as far:
        near = await listeners[0].accept()
        ih = InfoHash(b"\x11" * 20)
        remote = Handshake(ih, PeerId(b"-XX0001-bbbbbbbbbbbb"), OUR_RESERVED)
        link = PeerLink(near, ("127.0.0.1", port), remote, b"", False, True)
        session = EngineSession(link, 1, BuggyHost())
        await far.send_all(b"\x00\x00\x00\x00")  # a keep-alive: anything reaches the host
        with trio.fail_after(5), pytest.RaisesGroup(RuntimeError, flatten_subgroups=True):
            await session.run()
        with pytest.raises(trio.ClosedResourceError):
            await near.send_all(b"x")  # the session closed its stream all the same
