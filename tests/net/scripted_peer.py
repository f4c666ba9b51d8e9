"""A scripted remote peer for loopback tests: one pure `PeerConnection` on a real link.

Tests that need a peer behaving in a way no shoal client would (a seed that never
unchokes, a starting peer that only watches what it is offered) run the sans-IO engine
themselves over a link from shoal's own `Dialer` or `Listener`. This is deliberately not
a second `EngineSession`: one task, lockstep (read, feed, react, flush), no timers, no
back-pressure and no error containment; a protocol error fails the test.
"""

from __future__ import annotations

import ipaddress
import random
from typing import TYPE_CHECKING

import trio

from shoal.peer.connection import PeerConnection

if TYPE_CHECKING:
    from collections.abc import Callable

    from shoal.ids import PeerId
    from shoal.net.dialer import PeerLink
    from shoal.peer import events as ev
    from shoal.swarm.bitfield import Bitfield


def scripted_connection(
    link: PeerLink,
    our_peer_id: PeerId,
    *,
    our_pieces: Bitfield,
    piece_length: int,
    total_length: int,
) -> PeerConnection:
    """The engine for `link`, built from its already exchanged handshakes."""
    return PeerConnection(
        link.remote.info_hash,
        our_peer_id,
        our_pieces.num_pieces,
        now=trio.current_time(),
        rng=random.Random(0),
        our_pieces=our_pieces,
        piece_length=piece_length,
        total_length=total_length,
        remote_ip=ipaddress.ip_address(link.addr[0]),
        remote_handshake=link.remote,
    )


async def run_scripted_peer(
    link: PeerLink,
    conn: PeerConnection,
    react: Callable[[PeerConnection, ev.PeerEvent], None],
) -> None:
    """Drive `conn` over `link` until the other side hangs up (or the caller cancels);
    `react` sees every event and may queue commands. Closes the stream."""
    stream = link.stream

    async def step(data: bytes) -> None:
        if data:
            conn.receive_data(data, trio.current_time())
        while (event := conn.next_event()) is not None:
            react(conn, event)
        for buf in conn.data_to_send():
            await stream.send_all(buf)

    try:
        await step(link.trailing_data)
        while data := await stream.receive_some(65536):
            await step(bytes(data))
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the shoal side hung up
    finally:
        await trio.aclose_forcefully(stream)
