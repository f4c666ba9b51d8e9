"""`AckProcessing`: how a `UTPConnection` reads the acknowledgements it receives.

Cumulative ACKs, BEP 29 selective ACKs, duplicate-ACK counting and the loss decisions
they lead to (fast retransmit, one window halving per window of data): the sender's
half of the receive path, a mixin of `UTPConnection` (which owns the state) so that
the engine module stays under the size norm. It runs once per received packet; a
mixin adds no call overhead (the methods resolve through the class, as before).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .packet import SEQ_MASK, PacketType, seq_diff, seq_less

if TYPE_CHECKING:
    from .ledbat import Ledbat
    from .packet import Packet
    from .rtt import RttEstimator
    from .state import SentPacket

__all__ = ["AckProcessing"]


def _third_highest(mask: bytes, ack: int) -> int | None:
    """The sequence number with two more received after it, or None (fewer than three).

    BEP 29: bit ``i`` (least significant first) of byte ``j`` reports ``ack + 2 + 8*j +
    i``, which is exactly the little-endian reading of the mask as one integer. Every
    unacknowledged packet before this one has three later packets received: lost.
    """
    bits = int.from_bytes(mask, "little")
    for _ in range(2):
        if not bits:
            return None
        bits ^= 1 << (bits.bit_length() - 1)
    return (ack + 1 + bits.bit_length()) & SEQ_MASK if bits else None


class AckProcessing:
    """A mixin of `UTPConnection`: acknowledgements in, losses detected."""

    # The send-side state of the connection this reads and updates (set by its __init__).
    seq_nr: int
    cur_window: int
    fin_acked: bool
    ledbat: Ledbat
    rtt: RttEstimator
    _acked_to: int
    _outbuf: dict[int, SentPacket]
    _resend_queue: dict[int, SentPacket]
    _dup_acks: int
    _loss_seq: int
    _cwnd_full: bool
    _rto_at: float | None

    def _process_ack(self, pkt: Packet, now: float) -> None:
        acked = 0
        sack = pkt.sack if pkt.extensions else None
        progress = bool(sack)
        ack = pkt.ack_nr
        if seq_less(self._acked_to, ack):
            seq = (self._acked_to + 1) & SEQ_MASK
            while True:
                sent = self._outbuf.pop(seq, None)
                if sent is not None:
                    acked += self._on_acked(sent, now)
                if seq == ack:
                    break
                seq = (seq + 1) & SEQ_MASK
            self._acked_to = ack
            self._dup_acks = 0
            progress = True
        elif ack == self._acked_to and pkt.type is PacketType.STATE and self._outbuf:
            self._dup_acks += 1
        threshold = None
        if sack is not None:
            acked += self._process_sack(sack, ack, now)
            threshold = _third_highest(sack, ack)
        if acked:
            if pkt.timestamp_diff:
                self.ledbat.add_delay_sample(pkt.timestamp_diff, now)
            self.ledbat.on_ack(acked, cwnd_full=self._cwnd_full)
        if progress:  # the timeout counts from the last sign of progress
            self._rto_at = now + self.rtt.rto if self._outbuf else None
        self._detect_loss(threshold, ack)

    def _on_acked(self, sent: SentPacket, now: float) -> int:
        if sent.transmissions == 1:
            self.rtt.sample(now - sent.sent_at)
        if sent.type is PacketType.FIN:
            self.fin_acked = True
        self._resend_queue.pop(sent.seq, None)
        if sent.in_flight:
            self.cur_window -= len(sent.payload)
            return len(sent.payload)
        return 0

    def _process_sack(self, mask: bytes, ack: int, now: float) -> int:
        """Acknowledge what the mask reports received (bit order: see `_third_highest`)."""
        bits, base, acked = int.from_bytes(mask, "little"), ack + 2, 0
        nbits = 8 * len(mask)
        for q in list(self._outbuf):  # oldest first: stop past the mask
            d = seq_diff(q, base)
            if d >= nbits:
                break
            if d >= 0 and bits >> d & 1:
                acked += self._on_acked(self._outbuf.pop(q), now)
        return acked

    def _detect_loss(self, threshold: int | None, ack: int) -> None:
        lost: list[SentPacket] = []
        if self._dup_acks >= 3:
            first = self._outbuf.get((ack + 1) & SEQ_MASK)
            if first is not None:
                lost.append(first)
            self._dup_acks = 0
        if threshold is not None:
            for q, sent in self._outbuf.items():  # oldest first: stop at the threshold
                if not seq_less(q, threshold):
                    break
                lost.append(sent)
        cut = False
        for sent in lost:
            if not sent.in_flight or sent.fast_resent:
                continue
            sent.in_flight = False
            sent.fast_resent = True
            self._resend_queue[sent.seq] = sent
            self.cur_window -= len(sent.payload)
            if seq_less(self._loss_seq, sent.seq) and not cut:
                cut = True
                self.ledbat.on_loss()
                self._loss_seq = (self.seq_nr - 1) & SEQ_MASK
