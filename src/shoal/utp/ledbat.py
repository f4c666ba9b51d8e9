"""LEDBAT congestion control as BEP 29 and libtorrent run it: the window follows queueing delay.

The receiver echoes, in every packet, how long our last packet took to reach it as
measured by its own clock (``timestamp_diff``). That number contains an unknown clock
offset, so only its *changes* mean anything: the smallest value seen recently
(``base_delay``) is taken as "empty queues", and ``our_delay = sample - base_delay`` is
how long our packets sit in some buffer on the path.

*Base delay* is the minimum over a sliding window of per-minute minima
(`BASE_HISTORY` minutes), so a route change or clock drift that raises the true
minimum is forgotten after a few minutes instead of never.

*Window update* on every ACK (BEP 29 "congestion control")::

    delay_factor  = (TARGET - our_delay) / TARGET
    window_factor = acked_bytes / cwnd
    cwnd += GAIN * delay_factor * window_factor

so per RTT the window grows by at most `GAIN` bytes when the queue is empty and shrinks
in proportion when the queue is above the 100 ms target; a TCP flow sharing the
bottleneck keeps the queue full, and uTP backs off to (almost) nothing. Like
libtorrent we start in *slow start* (cwnd += acked bytes) and leave it at the first
loss or once the queueing delay reaches 90 % of the target. A loss halves the window
(at most once per window of data, which the connection enforces); a timeout drops it
to one packet. The window only grows while it is actually used (``cwnd_full``),
otherwise an application-limited sender would accumulate a huge, untested window.

Timestamps are microseconds modulo 2**32 (they wrap every 71 minutes); all
comparisons here are wrap-aware. Pure: time is passed in.
"""

from __future__ import annotations

from typing import Final

__all__ = ["BASE_HISTORY", "GAIN", "TARGET_DELAY", "Ledbat"]

TARGET_DELAY: Final = 0.100  # seconds (BEP 29 CCONTROL_TARGET)
#: Bytes added per RTT at zero queueing delay (libtorrent's default utp_gain_factor).
GAIN: Final = 3000.0
#: Minutes of per-minute minima that make up the base delay's sliding window.
BASE_HISTORY: Final = 3
_U32: Final = 1 << 32
_HALF_U32: Final = 1 << 31


def _u32_less(a: int, b: int) -> bool:
    return (a - b) % _U32 >= _HALF_U32


class Ledbat:
    """One connection's congestion window, in bytes.

    Args:
        mss: the packet payload size; the window never drops below it, so at least one
            packet may always be in flight (BEP 29 lets the window reach zero and then
            sends one packet per timeout; a one-packet floor is the same thing without the
            timeout's stall).
        max_cwnd: hard cap (the receive window caps in practice, this bounds memory).
    """

    def __init__(self, mss: int, *, max_cwnd: int = 8 << 20, target: float = TARGET_DELAY) -> None:
        self.mss = mss
        self.max_cwnd = max_cwnd
        self.target_us = int(target * 1_000_000)
        self.cwnd: float = 2.0 * mss
        self.ssthresh: float = float(max_cwnd)
        self.slow_start = True
        self._minute_mins: list[tuple[int, int]] = []  # (minute index, min sample), oldest first
        self._last_delays: list[int] = []

    # -- delay ----------------------------------------------------------------------------

    @property
    def base_delay(self) -> int | None:
        """The raw sample (µs, mod 2**32) taken as "no queueing", or None before any sample."""
        best: int | None = None
        for _, value in self._minute_mins:
            if best is None or _u32_less(value, best):
                best = value
        return best

    def add_delay_sample(self, sample: int, now: float) -> None:
        """Record one echoed ``timestamp_diff`` (non-zero) received at `now`."""
        minute = int(now // 60)
        mins = self._minute_mins
        if mins and mins[-1][0] == minute:
            if _u32_less(sample, mins[-1][1]):
                mins[-1] = (minute, sample)
        else:
            mins.append((minute, sample))
        while mins and mins[0][0] <= minute - BASE_HISTORY:
            del mins[0]
        # The current queueing delay is the smallest of the last three samples: one
        # packet delayed by the receiver's scheduler should not cut the window.
        self._last_delays.append(sample)
        if len(self._last_delays) > 3:
            del self._last_delays[0]

    @property
    def our_delay_us(self) -> int:
        """Current queueing delay estimate in microseconds (0 before any sample)."""
        base = self.base_delay
        if base is None or not self._last_delays:
            return 0
        return min((s - base) % _U32 if not _u32_less(s, base) else 0 for s in self._last_delays)

    # -- window ---------------------------------------------------------------------------

    def on_ack(self, acked_bytes: int, *, cwnd_full: bool) -> None:
        """`acked_bytes` newly acknowledged; `cwnd_full`: the window limited sending."""
        if acked_bytes <= 0:
            return
        delay = self.our_delay_us
        delay_factor = (self.target_us - delay) / self.target_us
        window_factor = acked_bytes / max(self.cwnd, float(acked_bytes))
        gain = GAIN * delay_factor * window_factor
        if gain > 0 and not cwnd_full:
            return
        if self.slow_start and gain > 0:
            if delay > 0.9 * self.target_us or self.cwnd + acked_bytes > self.ssthresh:
                self.slow_start = False
                self.ssthresh = self.cwnd
            else:
                gain = max(gain, float(acked_bytes))
        self.cwnd = min(float(self.max_cwnd), max(float(self.mss), self.cwnd + gain))

    def on_loss(self) -> None:
        """A packet was lost (fast retransmit): halve the window, as BEP 29 (0.5) says."""
        self.cwnd = max(float(self.mss), self.cwnd * 0.5)
        self.ssthresh = self.cwnd
        self.slow_start = False

    def on_timeout(self) -> None:
        """Nothing was acknowledged for a whole RTO: restart from one packet in slow start."""
        self.ssthresh = max(float(self.mss), self.cwnd * 0.5)
        self.cwnd = float(self.mss)
        self.slow_start = True
