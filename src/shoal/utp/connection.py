"""One uTP connection's engine: reliability, ordering, flow and congestion control.

It is driven by its `UTPEndpoint` (which owns the socket-level demultiplexing): the
endpoint hands it decoded packets and timer ticks, and collects the datagrams it queues.
The application side is `send` / `read` / `close` / `abort` on this object; after any
of them, drain the endpoint (``datagrams_to_send()``, ``next_event()``). The shared
vocabulary (`UTPConfig`, the constants below, the states) is in `utp/state.py`; reading
acknowledgements and detecting loss is the `AckProcessing` mixin (`utp/acks.py`).

Numbers, and why
----------------
* **Sequence numbers** count packets, 16-bit, wrapping (`seq_diff`). ST_STATE does not
  consume one, SYN/DATA/FIN do. As libtorrent and libutp do, the initiator sets
  ``ack_nr = seq_nr - 1`` from the acceptor's first packet (the SYN-ACK's ``seq_nr`` is
  the acceptor's first DATA number).
* **Packet size** is fixed at `MSS` = 1178 payload bytes: 1280 (the IPv6 minimum MTU,
  also below every common IPv4 tunnel MTU such as PPPoE's 1492 or typical VPNs'
  ~1400) - 40 (IPv6 header) - 8 (UDP) - 20 (uTP header) - 34 (the largest selective
  ACK we attach). Such datagrams are never fragmented, so no MTU probing is needed; the
  cost is 23 % more packets than 1452-byte ones on 1500-byte Ethernet paths, ~20 % CPU
  per byte where the CPU is the limit (docs/utp.md, "Packet size").
* **Delayed ACKs**: in-order data is acknowledged every second packet, or after
  `DELAYED_ACK` (20 ms); out-of-order, duplicate and FIN packets are acknowledged at
  once (the sender needs those for fast retransmit). Any packet we send carries the
  current ack, so acks also ride on data.
* **Loss**: a packet is resent when three duplicate ACKs arrive, when a selective ACK
  shows three later packets received (BEP 29 "packet loss"), or when the RTO (see
  `rtt.RttEstimator`) fires with nothing acknowledged. A loss halves the window at most
  once per window of data; a timeout resends from the oldest packet with a
  one-packet window. After `UTPConfig.data_resends` consecutive timeouts
  (`syn_resends` for the SYN) the connection fails.
* **Flow control**: the receiver advertises ``wnd_size`` = receive buffer minus unread
  and out-of-order bytes; the sender keeps ``in flight <= min(cwnd, wnd_size)``. Reading
  reopens the window and sends a window update. When the window is zero a sender probes
  with one packet after an RTO; the receiver always accepts the next in-order packet
  (buffer overshoot of at most one packet), so a probe always makes progress.
* **Close**: ``close()`` sends FIN after the queued data (graceful, like TCP's close);
  data that arrives after our close and beyond what we had acknowledged is answered with
  ST_RESET, as TCP does, so the remote sender learns nobody reads. ST_RESET ends the
  connection at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from .acks import AckProcessing
from .ledbat import Ledbat
from .packet import SEQ_MASK, U32_MASK, Packet, PacketType, encode_datagram, seq_diff, seq_less
from .rtt import RttEstimator
from .state import (
    DELAYED_ACK,
    FIN_WAIT,
    HALF_OPEN_TIMEOUT,
    KEEPALIVE,
    LINGER,
    MAX_REORDER,
    MSS,
    CloseReason,
    ConnState,
    SentPacket,
    Signal,
    UTPConfig,
)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["MSS", "CloseReason", "ConnState", "Signal", "UTPConfig", "UTPConnection"]

#: Largest selective ACK we attach (bytes of mask; the MSS leaves room for it).
_SACK_MAX_BYTES: Final = 32


def _micros(now: float) -> int:
    return int(now * 1_000_000) & U32_MASK


class UTPConnection(AckProcessing):
    """One connection (see the module docstring). Created by `UTPEndpoint` only."""

    def __init__(
        self,
        addr: tuple[str, int],
        *,
        recv_id: int,
        send_id: int,
        seq_nr: int,
        outgoing: bool,
        config: UTPConfig,
        emit: Callable[[UTPConnection, Signal], None],
        transmit: Callable[[bytes, tuple[str, int]], None],
        now: float,
    ) -> None:
        self.addr = addr
        self.recv_id = recv_id
        self.send_id = send_id
        self.outgoing = outgoing
        self.config = config
        self.state = ConnState.SYN_SENT if outgoing else ConnState.SYN_RECV
        self.close_reason: CloseReason | None = None
        self._emit = emit
        self._transmit = transmit
        self.ledbat = Ledbat(MSS, max_cwnd=config.max_cwnd, target=config.target_delay)
        self.rtt = RttEstimator()
        # Send side.
        self.seq_nr = seq_nr
        self._acked_to = (seq_nr - 1) & SEQ_MASK
        self._outbuf: dict[int, SentPacket] = {}
        #: Packets declared lost (not in flight), waiting for window to be resent.
        self._resend_queue: dict[int, SentPacket] = {}
        self.cur_window = 0
        self.peer_wnd = MSS
        self._send_buffer = bytearray()
        self._send_full = False
        self._dup_acks = 0
        self._loss_seq = self._acked_to
        self._cwnd_full = False
        self._timeouts = 0
        self._rto_at: float | None = None
        self._probe_at: float | None = None
        self._close_requested = False
        self._fin_requested = False
        self._fin_seq: int | None = None
        self.fin_acked = False
        # Receive side.
        self.ack_nr = 0
        self._syn_seq = 0
        self._first_seq = seq_nr
        self._inbuf: dict[int, SentPacket] = {}
        # Bit i: packet ack_nr + 2 + i is buffered out of order (the selective ACK to send).
        self._sack_bits = 0
        self._ooo_bytes = 0
        self._read_buffer = bytearray()
        self._eof_seq: int | None = None
        self.eof = False
        self._reply_micro = 0
        self._ack_due = False
        self._ack_deferred = False
        self._ack_now = 0.0
        self._unacked_in = 0
        self._delayed_ack_at: float | None = None
        self._last_adv_wnd = config.recv_buffer
        self._keepalive_at = now + KEEPALIVE
        self._expire_at: float | None = None
        self.bytes_sent = 0
        self.bytes_received = 0
        self.retransmits = 0
        self.timeouts = 0

    # -- application side -----------------------------------------------------------------

    def send(self, data: bytes | bytearray | memoryview, now: float) -> int:
        """Queue up to the free send-buffer space; returns how many bytes were taken.

        A short count means the buffer is full: wait for a `Writable` event.
        """
        if self._fin_requested or self.state is ConnState.CLOSED:
            return 0
        room = max(0, self.config.send_buffer - len(self._send_buffer))
        taken = min(room, len(data))
        self._send_buffer += data[:taken]
        if taken < len(data):
            self._send_full = True
        self._fill(now)
        return taken

    def read(self, max_bytes: int, now: float) -> bytes:
        """Take up to `max_bytes` in-order bytes (b"" if none; check `eof`). Reopens the window."""
        chunk = bytes(self._read_buffer[:max_bytes])
        del self._read_buffer[:max_bytes]
        if chunk and self.state is not ConnState.CLOSED:
            wnd = self._window()
            if wnd - self._last_adv_wnd >= max(self.config.recv_buffer // 4, 2 * MSS):
                self._ack_due = True  # window update: the sender may be stalled on us
                self._fill(now)
        return chunk

    @property
    def readable_bytes(self) -> int:
        return len(self._read_buffer)

    @property
    def send_buffer_free(self) -> int:
        return max(0, self.config.send_buffer - len(self._send_buffer))

    @property
    def all_sent(self) -> bool:
        """Everything queued so far has been acknowledged."""
        return not self._send_buffer and not self._outbuf

    def send_eof(self, now: float) -> None:
        """Half close: FIN after the queued data; we keep receiving (TCP's shutdown(WR))."""
        if self._fin_requested or self.state is ConnState.CLOSED:
            return
        self._fin_requested = True
        self._fill(now)

    def close(self, now: float) -> None:
        """Full close: FIN after the queued data; unread and later bytes are dropped."""
        if self._close_requested or self.state is ConnState.CLOSED:
            return
        self._close_requested = self._fin_requested = True
        self._read_buffer.clear()
        self._check_finished(now)
        self._fill(now)

    def abort(self, now: float) -> None:
        """Send ST_RESET and forget the connection."""
        if self.state is ConnState.CLOSED:
            return
        if self.state is not ConnState.SYN_SENT:
            self._send_packet(PacketType.RESET, self.seq_nr, b"", now)
        self._terminate(CloseReason.ABORTED, now)

    # -- timers ---------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        if self.state is ConnState.CLOSED:
            return self._expire_at
        times = (self._rto_at, self._probe_at, self._delayed_ack_at, self._expire_at)
        return min([self._keepalive_at, *(t for t in times if t is not None)])

    def handle_timer(self, now: float) -> None:
        if self.state is ConnState.CLOSED:
            return
        if self._expire_at is not None and now >= self._expire_at:
            half_open = self.state is ConnState.SYN_RECV
            self._terminate(CloseReason.TIMED_OUT if half_open else CloseReason.FINISHED, now)
            return
        if self._delayed_ack_at is not None and now >= self._delayed_ack_at:
            self._ack_due = True
        if now >= self._keepalive_at and self.state is ConnState.CONNECTED:
            self._ack_due = True
        if self._rto_at is not None and now >= self._rto_at and not self._on_timeout(now):
            return
        if self._probe_at is not None and now >= self._probe_at:
            self._probe_at = None
            self.peer_wnd = max(self.peer_wnd, MSS)  # zero-window probe: one packet
        if now >= self._keepalive_at:
            self._keepalive_at = now + KEEPALIVE
        self._fill(now)

    def _on_timeout(self, now: float) -> bool:
        """Returns False if the connection failed."""
        self._rto_at = None
        if not self._outbuf:
            return True
        self._timeouts += 1
        self.timeouts += 1
        syn = self.state is ConnState.SYN_SENT
        limit = self.config.syn_resends if syn else self.config.data_resends
        if self._timeouts > limit:
            self._terminate(CloseReason.TIMED_OUT, now)
            return False
        self.rtt.back_off()
        if self.peer_wnd >= MSS:  # a timed-out zero-window probe is not congestion
            self.ledbat.on_timeout()
        for sent in self._outbuf.values():
            sent.in_flight = False
            sent.fast_resent = False
        self._resend_queue = dict(self._outbuf)
        self.cur_window = 0
        self._loss_seq = (self.seq_nr - 1) & SEQ_MASK
        return True

    # -- packets in -----------------------------------------------------------------------

    def start_outgoing(self, now: float) -> None:
        """Queue our SYN (the endpoint calls this once)."""
        self._queue(PacketType.SYN, b"", now)

    def start_incoming(self, syn: Packet, now: float) -> None:
        """Answer the SYN that created us (the endpoint calls this once)."""
        self._syn_seq = self.ack_nr = syn.seq_nr
        self._first_seq = self.seq_nr
        self._reply_micro = (_micros(now) - syn.timestamp) & U32_MASK
        self.peer_wnd = max(syn.wnd_size, MSS)
        self._ack_due = True
        self._expire_at = now + HALF_OPEN_TIMEOUT
        self._fill(now)

    def receive_packet(self, pkt: Packet, now: float) -> None:
        """Process one packet addressed to us. Never raises: a bad ack is just ignored."""
        if self.state is ConnState.CLOSED:
            return
        if pkt.type is PacketType.RESET:
            refused = self.state is ConnState.SYN_SENT
            self._terminate(CloseReason.REFUSED if refused else CloseReason.RESET, now)
            return
        if pkt.type is PacketType.SYN:
            if not self.outgoing and pkt.seq_nr == self._syn_seq:
                self._ack_due = True  # our SYN-ACK was lost: say it again
                self._fill(now)
            return
        if seq_less((self.seq_nr - 1) & SEQ_MASK, pkt.ack_nr):
            return  # acknowledges packets we never sent: stale or forged
        self._timeouts = 0
        self._reply_micro = (_micros(now) - pkt.timestamp) & U32_MASK
        if self.state is ConnState.SYN_SENT:
            self.ack_nr = (pkt.seq_nr - 1) & SEQ_MASK
            self.state = ConnState.CONNECTED
            self._ack_due = True  # completes the handshake even if we have nothing to send
            self._emit(self, Signal.CONNECTED)
        elif self.state is ConnState.SYN_RECV:
            self.state = ConnState.CONNECTED
            self._expire_at = None
        self._process_ack(pkt, now)
        self.peer_wnd = pkt.wnd_size
        if self.peer_wnd >= MSS:
            self._probe_at = None
        if pkt.type is not PacketType.STATE:
            self._process_data(pkt, now)
        self._check_finished(now)
        if self.state is not ConnState.CLOSED:
            self._fill(now, defer_ack=True)

    def _process_data(self, pkt: Packet, now: float) -> None:
        seq = pkt.seq_nr
        ahead = seq_diff(seq, self.ack_nr)
        if ahead <= 0:
            self._ack_due = True  # a retransmission of something we have: our ack was lost
            return
        if self._eof_seq is not None and seq_less(self._eof_seq, seq):
            return  # beyond the end of the stream
        if self._close_requested and pkt.type is PacketType.DATA:
            # Nobody will read this: tell the sender, as TCP answers with RST.
            self._send_packet(PacketType.RESET, self.seq_nr, b"", now)
            self._terminate(CloseReason.FINISHED, now)
            return
        if ahead == 1:
            self._accept_in_order(pkt, now)
            return
        size = len(pkt.payload)
        if ahead > MAX_REORDER or seq in self._inbuf:
            self._ack_due = True
            return
        if len(self._read_buffer) + self._ooo_bytes + size > self.config.recv_buffer:
            self._ack_due = True
            return
        self._inbuf[seq] = SentPacket(seq, pkt.type, pkt.payload)
        self._sack_bits |= 1 << (ahead - 2)
        self._ooo_bytes += size
        if pkt.type is PacketType.FIN:
            self._eof_seq = seq
        self._ack_due = True  # tell the sender at once (selective ACK)

    def _accept_in_order(self, pkt: Packet, now: float) -> None:
        if pkt.type is PacketType.DATA and len(self._read_buffer) >= self.config.recv_buffer:
            self._ack_due = True  # no room: drop it, the ack carries our (zero) window
            return
        was_empty = not self._read_buffer
        readable = self._take(pkt.type, pkt.payload)
        while self._inbuf and not self.eof:
            nxt = self._inbuf.pop((self.ack_nr + 1) & SEQ_MASK, None)
            if nxt is None:
                break
            self._ooo_bytes -= len(nxt.payload)
            readable = self._take(nxt.type, nxt.payload) or readable
        if readable and (was_empty or self.eof):  # an edge: readers check the level
            self._emit(self, Signal.READABLE)
        self._unacked_in += 1
        if self.eof or self._inbuf or self._unacked_in >= 2:
            self._ack_due = True
        elif self._delayed_ack_at is None:
            self._delayed_ack_at = now + DELAYED_ACK

    def _take(self, kind: PacketType, payload: bytes) -> bool:
        self.ack_nr = (self.ack_nr + 1) & SEQ_MASK
        self._sack_bits >>= 1
        if kind is PacketType.FIN:
            self._eof_seq = self.ack_nr
        if self._eof_seq == self.ack_nr:
            self.eof = True
            self._sack_bits = 0
            self._inbuf.clear()
            self._ooo_bytes = 0
            return True
        if self._close_requested:
            return False
        self._read_buffer += payload
        self.bytes_received += len(payload)
        return True

    def _check_finished(self, now: float) -> None:
        if not self.fin_acked or not (self._close_requested or self.eof):
            return
        # Both directions done: linger to re-ack a retransmitted FIN. Only ours done:
        # give the remote FIN_WAIT to send its FIN (it may still be flushing).
        expire = now + (LINGER if self.eof else FIN_WAIT)
        if self._expire_at is None or expire < self._expire_at:
            self._expire_at = expire

    # -- packets out ----------------------------------------------------------------------

    def _window(self) -> int:
        return max(0, self.config.recv_buffer - len(self._read_buffer) - self._ooo_bytes)

    def _fill(self, now: float, *, defer_ack: bool = False) -> None:
        """Send whatever the windows allow: resends first, then new data, FIN, a bare ACK.

        With `defer_ack` (the receive path) a bare ACK is not sent now but when the
        endpoint's output is drained (`flush_ack`), so one ACK answers a whole batch
        of datagrams read together, as libtorrent defers its ACKs to the end of a read.
        """
        if self.state is ConnState.CLOSED:
            return
        self._cwnd_full = False
        idle = not (self._send_buffer or self._resend_queue or self._send_full)
        if idle and not self._ack_due and (self._fin_seq is not None or not self._fin_requested):
            return  # the common case on a receiving connection: nothing to send
        limit = min(int(self.ledbat.cwnd), self.peer_wnd)
        queue = self._resend_queue
        order = (
            sorted(queue, key=lambda q: seq_diff(q, self._acked_to)) if len(queue) > 1 else queue
        )
        for seq in list(order):
            sent = queue[seq]
            if self.cur_window and self.cur_window + len(sent.payload) > limit:
                self._cwnd_full = True
                break
            self._resend(sent, now)
        if self.state is ConnState.CONNECTED or (
            self.state is ConnState.SYN_RECV and not self._outbuf
        ):
            self._send_new_data(limit, now)
        if self._ack_due and self.state is not ConnState.SYN_SENT:
            if defer_ack:
                self._ack_now = now
                if not self._ack_deferred:
                    self._ack_deferred = True
                    self._emit(self, Signal.ACK_DUE)
            else:
                self._send_packet(PacketType.STATE, self._state_seq(), b"", now)

    def _state_seq(self) -> int:
        """The seq_nr of a bare ACK: the next one we will use, except before the
        initiator has answered our SYN-ACK. Then every ACK (a re-sent SYN-ACK above all)
        must carry the SYN-ACK's number, which the initiator takes as our first DATA
        number: our one DATA or FIN packet may already have used it (found by the
        hypothesis simulation: a lost SYN-ACK, a re-ACK with the next number, and the
        initiator skipped our first packet)."""
        if self.state is ConnState.SYN_RECV:
            return self._first_seq
        return self.seq_nr

    def flush_ack(self) -> None:
        """Send the ACK the receive path deferred, unless a data packet carried it since."""
        self._ack_deferred = False
        if self._ack_due and self.state is not ConnState.CLOSED:
            self._send_packet(PacketType.STATE, self._state_seq(), b"", self._ack_now)

    def _send_new_data(self, limit: int, now: float) -> None:
        while self._send_buffer:
            size = min(MSS, len(self._send_buffer))
            if self.cur_window + size > limit:
                self._cwnd_full = True
                if self.cur_window or self.peer_wnd >= size:
                    return
                if self._probe_at is None:  # zero window, nothing in flight: probe later
                    self._probe_at = now + self.rtt.rto
                return
            if len(self._outbuf) >= MAX_REORDER:
                return
            if self.state is ConnState.SYN_RECV and self._outbuf:
                return  # one packet until the initiator shows it knows our seq_nr
            chunk = bytes(self._send_buffer[:size])
            del self._send_buffer[:size]
            self._queue(PacketType.DATA, chunk, now)
        if self._send_full:
            self._send_full = False
            self._emit(self, Signal.WRITABLE)
        if self._fin_requested and self._fin_seq is None:
            self._fin_seq = self.seq_nr
            self._queue(PacketType.FIN, b"", now)

    def _queue(self, kind: PacketType, payload: bytes, now: float) -> None:
        sent = SentPacket(self.seq_nr, kind, payload)
        self._outbuf[self.seq_nr] = sent
        self.seq_nr = (self.seq_nr + 1) & SEQ_MASK
        self._resend(sent, now)

    def _resend(self, sent: SentPacket, now: float) -> None:
        if sent.transmissions:
            self.retransmits += 1
        else:
            self.bytes_sent += len(sent.payload)
        sent.transmissions += 1
        sent.sent_at = now
        sent.in_flight = True
        self._resend_queue.pop(sent.seq, None)
        self.cur_window += len(sent.payload)
        if self._rto_at is None:
            self._rto_at = now + self.rtt.rto
        conn_id = self.recv_id if sent.type is PacketType.SYN else self.send_id
        self._send_packet(sent.type, sent.seq, sent.payload, now, conn_id=conn_id)

    def _send_packet(
        self, kind: PacketType, seq: int, payload: bytes, now: float, *, conn_id: int | None = None
    ) -> None:
        wnd = self._window()
        datagram = encode_datagram(
            kind,
            self.send_id if conn_id is None else conn_id,
            int(now * 1_000_000) & U32_MASK,
            self._reply_micro,
            wnd,
            seq,
            self.ack_nr,
            payload,
            self._sack_mask(),
        )
        self._last_adv_wnd = wnd
        self._ack_due = False
        self._ack_deferred = False
        self._ack_now = 0.0
        self._unacked_in = 0
        self._delayed_ack_at = None
        self._keepalive_at = now + KEEPALIVE
        self._transmit(datagram, self.addr)

    def _sack_mask(self) -> bytes | None:
        """The selective-ACK mask to attach (whole 4-byte words, BEP 29), if any."""
        if not self._sack_bits or self.state is ConnState.SYN_SENT:
            return None
        bits = self._sack_bits & ((1 << 8 * _SACK_MAX_BYTES) - 1)
        if not bits:
            return None
        length = ((bits.bit_length() - 1) // 32 + 1) * 4
        return bits.to_bytes(length, "little")

    def _terminate(self, reason: CloseReason, now: float) -> None:
        self.state = ConnState.CLOSED
        self.close_reason = reason
        self._outbuf.clear()
        self._resend_queue.clear()
        self._inbuf.clear()
        self._send_buffer.clear()
        self.cur_window = 0
        self._expire_at = None
        self._emit(self, Signal.CLOSED)

    def statistics(self) -> dict[str, float]:
        """Counters and congestion state, for tests and diagnostics."""
        return {
            "cwnd": self.ledbat.cwnd,
            "cur_window": self.cur_window,
            "rtt": self.rtt.rtt or 0.0,
            "rto": self.rtt.rto,
            "our_delay": self.ledbat.our_delay_us / 1e6,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "retransmits": self.retransmits,
            "timeouts": self.timeouts,
        }
