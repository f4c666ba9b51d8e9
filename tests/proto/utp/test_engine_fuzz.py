"""The endpoint fed arbitrary datagrams: only DecodeError escapes, and memory stays bounded."""

from __future__ import annotations

import contextlib

from hypothesis import given
from hypothesis import strategies as st

from shoal.errors import DecodeError
from shoal.utp import MSS, UTPConfig
from shoal.utp.packet import Packet, PacketType
from tests.proto.utp.harness import B, Pair
from tests.proto.utp.strategies import packets
from tests.strategies import mutated

CFG = UTPConfig(recv_buffer=16 * MSS, send_buffer=16 * MSS, max_connections=8)


@st.composite
def aimed(draw: st.DrawFn, recv_id: int, ack_nr: int, seq_nr: int) -> bytes:
    """A well-formed packet aimed at the live connection, with plausible numbers."""
    kind = draw(st.sampled_from(PacketType))
    payload = draw(st.binary(min_size=1, max_size=1500)) if kind is PacketType.DATA else b""
    sack = draw(st.none() | st.binary(min_size=4, max_size=4).map(lambda b: b * 2))
    conn_id = draw(st.sampled_from([recv_id, (recv_id - 1) & 0xFFFF, draw(st.integers(0, 0xFFFF))]))
    return Packet(
        kind,
        conn_id,
        draw(st.integers(0, 0xFFFFFFFF)),
        draw(st.integers(0, 0xFFFFFFFF)),
        draw(st.integers(0, 0xFFFFFFFF)),
        (ack_nr + draw(st.integers(-5, 3000))) & 0xFFFF,
        (seq_nr + draw(st.integers(-40, 3))) & 0xFFFF,
        payload,
        ((1, sack),) if sack else (),
    ).encode()


@given(st.data())
def test_arbitrary_datagrams_raise_only_decode_error_and_stay_bounded(data: st.DataObject) -> None:
    pair = Pair.create(CFG)
    ca, _cb = pair.connect()
    ca.send(b"q" * (4 * MSS), pair.now)
    pair.out("a")
    datagrams = data.draw(
        st.lists(
            aimed(ca.recv_id, ca.ack_nr, ca.seq_nr)
            | st.binary(max_size=64)
            | mutated(packets().map(Packet.encode)),
            max_size=40,
        )
    )
    for raw in datagrams:
        with contextlib.suppress(DecodeError):
            pair.a.receive_datagram(raw, B, pair.now)
        pair.now += 0.01
        pair.a.handle_timer(pair.now)
        pair.out("a")
        while pair.a.next_event() is not None:
            pass
        stats = pair.a.statistics()
        assert stats.connections <= CFG.max_connections
        for conn in pair.a.connections():
            assert conn.readable_bytes + conn._ooo_bytes <= CFG.recv_buffer + MSS
            assert len(conn._outbuf) <= 64
            assert conn.cur_window >= 0
    # Whatever happened, the engine still answers (timers run, nothing is wedged).
    pair.a.handle_timer(pair.now + 100.0)
