"""The connection engine, packet by packet: handshake, acks, loss recovery, windows, close."""

from __future__ import annotations

import pytest

from shoal.utp import MSS, CloseReason, ConnState, UTPConfig
from shoal.utp.events import Connected, ConnectionClosed, IncomingConnection, Readable, Writable
from shoal.utp.packet import Packet, PacketType, seq_diff
from tests.proto.utp.harness import A, B, FixedRandom, Pair


def test_handshake_ids_and_sequence_numbers() -> None:
    pair = Pair.create(rng_a=FixedRandom(1000), rng_b=FixedRandom(500))
    ca = pair.a.connect(B, 0.0)
    (syn,) = pair.out("a")
    assert syn.type is PacketType.SYN
    assert (syn.connection_id, syn.seq_nr) == (1000, 1)  # BEP 29: seq starts at 1, id = recv id
    assert (ca.recv_id, ca.send_id) == (1000, 1001)
    pair.deliver("b", [syn])
    (synack,) = pair.out("b")
    assert synack.type is PacketType.STATE
    assert (synack.connection_id, synack.seq_nr, synack.ack_nr) == (1000, 500, 1)
    cb = pair.events["b"][0].conn
    assert (cb.recv_id, cb.send_id) == (1001, 1000)
    pair.deliver("a", [synack])
    assert isinstance(pair.events["a"][0], Connected)
    assert ca.state is ConnState.CONNECTED
    assert ca.ack_nr == 499  # the SYN-ACK's seq_nr is the acceptor's first DATA number
    ca.send(b"hello", pair.now)
    data = [p for p in pair.out("a") if p.type is PacketType.DATA]
    assert data[0].connection_id == 1001
    assert data[0].seq_nr == 2
    pair.deliver("b", data)
    assert cb.read(100, pair.now) == b"hello"
    cb.send(b"back", pair.now)
    pair.exchange()
    assert ca.read(100, pair.now) == b"back"
    assert cb.state is ConnState.CONNECTED


def test_sequence_numbers_wrap_around() -> None:
    # The acceptor starts 10 packets before the wrap; 40 packets cross it.
    pair = Pair.create(rng_a=FixedRandom(7), rng_b=FixedRandom(0xFFF6))
    ca, cb = pair.connect()
    blob = bytes(range(256)) * (40 * MSS // 256)
    sent = 0
    while sent < len(blob):
        sent += cb.send(blob[sent:], pair.now)
        pair.exchange()
        pair.advance(0.05)
    got = b""
    while chunk := ca.read(1 << 20, pair.now):
        got += chunk
    assert got == blob
    assert seq_diff(cb.seq_nr, 0xFFF6) > 30
    assert cb.seq_nr < 0x100


def test_duplicate_syn_is_reacknowledged_not_a_second_connection() -> None:
    pair = Pair.create()
    pair.a.connect(B, 0.0)
    (syn,) = pair.out("a")
    pair.deliver("b", [syn])
    first = pair.out("b")
    pair.deliver("b", [syn])
    again = pair.out("b")
    assert [p.type for p in again] == [PacketType.STATE]
    assert again[0].seq_nr == first[0].seq_nr
    assert sum(isinstance(e, IncomingConnection) for e in pair.events["b"]) == 1


def test_syn_is_retransmitted_with_backoff_then_times_out() -> None:
    pair = Pair.create(UTPConfig(syn_resends=2))
    ca = pair.a.connect(B, 0.0)
    times = []
    for _ in range(80):
        if pair.out("a"):
            times.append(pair.now)
        pair.advance(0.125)  # exact in binary: no drift
    assert [round(t, 1) for t in times] == [0.0, 1.0, 3.0]  # 1 s initial RTO, doubled
    assert ca.state is ConnState.CLOSED
    assert ca.close_reason is CloseReason.TIMED_OUT
    assert pair.a.statistics().connections == 0


def _open_with_data(pair: Pair, packets: int) -> tuple[list[Packet], object, object]:
    ca, cb = pair.connect()
    ca.ledbat.cwnd = 100 * MSS  # open the window so all packets go out at once
    ca.send(b"x" * (packets * MSS), pair.now)
    data = [p for p in pair.out("a") if p.type is PacketType.DATA]
    assert len(data) == packets
    return data, ca, cb


def test_three_duplicate_acks_trigger_fast_retransmit() -> None:
    pair = Pair.create()
    data, ca, _cb = _open_with_data(pair, 6)
    acks = []
    for pkt in data[1:]:  # the first one is lost; one drain per datagram, as on a slow path
        pair.deliver("b", [pkt])
        acks += pair.out("b")
    assert all(p.ack_nr == data[0].seq_nr - 1 for p in acks)  # all duplicates
    assert len(acks) >= 3
    pair.deliver("a", acks)
    resent = pair.out("a")
    assert [p.seq_nr for p in resent if p.type is PacketType.DATA] == [data[0].seq_nr]
    assert ca.retransmits == 1


def test_selective_ack_is_sent_and_acknowledges_out_of_order_packets() -> None:
    pair = Pair.create()
    data, ca, _cb = _open_with_data(pair, 5)
    pair.deliver("b", [data[0], data[2], data[4]])
    acks = pair.out("b")
    last = acks[-1]
    assert last.ack_nr == data[0].seq_nr
    # bit 0 = ack_nr + 2 = data[2], bit 2 = ack_nr + 4 = data[4]
    assert last.sack == b"\x05\x00\x00\x00"
    pair.deliver("a", [last])
    assert ca.cur_window == 2 * MSS  # data[1] and data[3] are still in flight


def test_sack_hole_with_three_later_packets_is_resent() -> None:
    pair = Pair.create()
    data, _ca, _cb = _open_with_data(pair, 6)
    pair.deliver("b", [data[0], data[2], data[3], data[4]])
    last = pair.out("b")[-1]
    pair.deliver("a", [last])
    resent = [p.seq_nr for p in pair.out("a") if p.type is PacketType.DATA]
    assert resent == [data[1].seq_nr]


def test_retransmission_timeout_backs_off_and_finally_times_out() -> None:
    pair = Pair.create(UTPConfig(data_resends=3))
    _data, ca, _cb = _open_with_data(pair, 2)
    rto = ca.rtt.rto
    assert rto == pytest.approx(0.5)  # min 500 ms after a fast loopback sample
    times = []
    for _ in range(1000):
        pair.advance(0.0625)
        if any(p.type is PacketType.DATA for p in pair.out("a")):
            times.append(pair.now)
    gaps = [round(b - a, 1) for a, b in zip([0.0, *times], times, strict=False)]
    assert gaps == [0.5, 1.0, 2.0]
    assert ca.close_reason is CloseReason.TIMED_OUT
    assert ca.ledbat.cwnd == MSS


def test_rtt_is_measured_and_rto_follows_the_bep_formula() -> None:
    pair = Pair.create()
    ca, _cb = pair.connect()
    ca.send(b"x" * 100, pair.now)
    out = pair.out("a")
    pair.now += 0.2
    pair.deliver("b", out)
    pair.advance(0.05)  # the delayed ack
    pair.now += 0.2
    pair.deliver("a", pair.out("b"))
    # The SYN's sample was 0 s, this one 0.45 s: rtt moves 1/8 of the way (BEP 29).
    assert ca.rtt.rtt == pytest.approx(0.45 / 8)
    assert ca.rtt.rto == pytest.approx(max(0.5, ca.rtt.rtt + 4 * ca.rtt.rtt_var))


def test_one_ack_answers_a_batch_of_datagrams() -> None:
    pair = Pair.create()
    data, _ca, _cb = _open_with_data(pair, 8)
    pair.deliver("b", data)  # read in one batch before the endpoint is drained
    (ack,) = pair.out("b")
    assert ack.ack_nr == data[-1].seq_nr


def test_delayed_ack_every_second_packet_or_after_20ms() -> None:
    pair = Pair.create()
    data, _ca, _cb = _open_with_data(pair, 3)
    pair.deliver("b", data[:1])
    assert pair.out("b") == []  # one packet: wait
    pair.advance(0.021)
    (ack,) = pair.out("b")
    assert ack.ack_nr == data[0].seq_nr
    pair.deliver("b", data[1:2])
    assert pair.out("b") == []
    pair.deliver("b", data[2:3])
    assert [p.ack_nr for p in pair.out("b")] == [data[2].seq_nr]  # every second packet
    pair.advance(0.021)
    assert pair.out("b") == []


def test_receive_window_stops_the_sender_and_reading_reopens_it() -> None:
    cfg = UTPConfig(recv_buffer=8 * MSS, send_buffer=64 * MSS)
    pair = Pair.create(cfg)
    ca, cb = pair.connect()
    ca.ledbat.cwnd = 64 * MSS
    ca.send(b"y" * (40 * MSS), pair.now)
    for _ in range(20):
        pair.exchange()
        pair.advance(0.03)
    assert cb.readable_bytes <= 8 * MSS + MSS  # bounded: at most one probe packet over
    assert not ca.all_sent
    total = 0
    for _ in range(200):
        total += len(cb.read(1 << 20, pair.now))
        pair.exchange()
        pair.advance(0.1)
        if total == 40 * MSS:
            break
    assert total == 40 * MSS
    assert ca.state is ConnState.CONNECTED


def test_send_buffer_full_then_writable_event() -> None:
    pair = Pair.create(UTPConfig(send_buffer=4 * MSS))
    ca, _cb = pair.connect()
    assert ca.send(b"z" * (10 * MSS), pair.now) < 10 * MSS
    for _ in range(20):
        pair.exchange()
        pair.advance(0.03)
    assert any(isinstance(e, Writable) for e in pair.events["a"])


def test_fin_ends_the_stream_after_all_data_even_if_reordered() -> None:
    pair = Pair.create()
    data, ca, cb = _open_with_data(pair, 3)
    ca.close(pair.now)
    (fin,) = [p for p in pair.out("a") if p.type is PacketType.FIN]
    assert fin.seq_nr == data[-1].seq_nr + 1
    pair.deliver("b", [fin, data[2], data[0]])
    assert not cb.eof
    pair.deliver("b", [data[1]])
    assert cb.eof
    assert cb.read(1 << 20, pair.now) == b"x" * (3 * MSS)
    assert any(isinstance(e, Readable) for e in pair.events["b"])
    pair.exchange()
    assert ca.fin_acked
    cb.close(pair.now)
    pair.exchange()
    for _ in range(50):
        pair.advance(0.1)
    assert pair.a.statistics().connections == 0
    assert pair.b.statistics().connections == 0
    assert ca.close_reason is CloseReason.FINISHED


def test_data_after_our_close_is_answered_with_reset() -> None:
    pair = Pair.create()
    ca, cb = pair.connect()
    cb.close(pair.now)
    ca.send(b"nobody reads this", pair.now)
    pair.deliver("b", [p for p in pair.out("a") if p.type is PacketType.DATA])
    resets = [p for p in pair.out("b") if p.type is PacketType.RESET]
    assert len(resets) == 1
    pair.deliver("a", resets)
    assert ca.close_reason is CloseReason.RESET
    assert any(isinstance(e, ConnectionClosed) for e in pair.events["a"])


def test_unknown_connection_gets_a_reset_but_a_reset_gets_nothing() -> None:
    pair = Pair.create()
    stray = Packet(PacketType.DATA, 4242, seq_nr=5, ack_nr=9, payload=b"?")
    pair.b.receive_datagram(stray.encode(), A, 0.0)
    (reset,) = pair.out("b")
    assert reset.type is PacketType.RESET
    assert reset.connection_id == 4242
    pair.b.receive_datagram(reset.encode(), A, 0.0)
    assert pair.out("b") == []


def test_abort_sends_reset() -> None:
    pair = Pair.create()
    ca, cb = pair.connect()
    ca.abort(pair.now)
    pair.exchange()
    assert cb.close_reason is CloseReason.RESET
    assert ca.close_reason is CloseReason.ABORTED


def test_syn_flood_limit() -> None:
    cfg = UTPConfig(max_half_open_incoming=5, syn_rate=1000.0)
    pair = Pair.create(cfg)
    for i in range(20):
        syn = Packet(PacketType.SYN, i * 2, seq_nr=1)
        pair.b.receive_datagram(syn.encode(), ("127.0.0.9", 1000 + i), 0.0)
    stats = pair.b.statistics()
    assert stats.half_open_incoming == 5
    assert stats.syns_refused == 15
    # Half-open connections expire, which frees the slots again.
    pair.now = 11.0
    pair.b.handle_timer(pair.now)
    assert pair.b.statistics().connections == 0


def test_syn_rate_limit() -> None:
    pair = Pair.create(UTPConfig(syn_rate=3.0, max_half_open_incoming=100))
    for i in range(10):
        syn = Packet(PacketType.SYN, i * 2, seq_nr=1)
        pair.b.receive_datagram(syn.encode(), ("127.0.0.9", 1000 + i), 0.0)
    assert pair.b.statistics().connections == 3


def test_ack_for_unsent_packets_is_ignored() -> None:
    pair = Pair.create()
    ca, cb = pair.connect()
    forged = Packet(PacketType.STATE, ca.recv_id, ack_nr=(ca.seq_nr + 100) & 0xFFFF)
    pair.a.receive_datagram(forged.encode(), B, pair.now)
    assert ca.state is ConnState.CONNECTED
    ca.send(b"still fine", pair.now)
    pair.exchange()
    assert cb.read(100, pair.now) == b"still fine"


def test_resent_syn_ack_carries_the_first_seq_even_after_early_data() -> None:
    # The acceptor sends data before the initiator has heard from it; the SYN-ACK is
    # lost and the SYN re-sent: the re-ACK must not advertise the number after the data.
    pair = Pair.create()
    pair.a.connect(B, 0.0)
    (syn,) = pair.out("a")
    pair.deliver("b", [syn])
    (synack,) = pair.out("b")  # lost
    cb = next(e.conn for e in pair.events["b"] if isinstance(e, IncomingConnection))
    cb.send(b"early", pair.now)
    early = pair.out("b")  # also lost, for now
    assert [p.seq_nr for p in early] == [synack.seq_nr]
    pair.deliver("b", [syn])  # the initiator re-sends its SYN
    (reack,) = pair.out("b")
    assert reack.seq_nr == synack.seq_nr
    pair.deliver("a", [reack, *early])
    ca = next(e.conn for e in pair.events["a"] if isinstance(e, Connected))
    assert ca.read(100, pair.now) == b"early"
