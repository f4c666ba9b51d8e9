"""Round-trip time and retransmission timeout, as BEP 29 ("timeouts") and libtorrent compute them.

Every packet acknowledged that was sent only once (Karn's rule: for a resent packet we
cannot tell which copy was acked) gives a sample::

    delta = rtt - sample
    rtt_var += (|delta| - rtt_var) / 4
    rtt += (sample - rtt) / 8
    rto = max(rtt + 4 * rtt_var, 0.5 s)

The first sample sets ``rtt = sample`` and ``rtt_var = sample / 2`` (RFC 6298), the
initial RTO is 1 s, and every consecutive timeout doubles it (capped at `MAX_RTO`).
"""

from __future__ import annotations

from typing import Final

__all__ = ["INITIAL_RTO", "MAX_RTO", "MIN_RTO", "RttEstimator"]

INITIAL_RTO: Final = 1.0
MIN_RTO: Final = 0.5
MAX_RTO: Final = 60.0


class RttEstimator:
    """Smoothed RTT, its variance and the backed-off timeout (all in seconds)."""

    __slots__ = ("_backoff", "rtt", "rtt_var")

    def __init__(self) -> None:
        self.rtt: float | None = None
        self.rtt_var = 0.0
        self._backoff = 1

    def sample(self, rtt: float) -> None:
        rtt = max(rtt, 0.0)
        if self.rtt is None:
            self.rtt, self.rtt_var = rtt, rtt / 2
        else:
            delta = self.rtt - rtt
            self.rtt_var += (abs(delta) - self.rtt_var) / 4
            self.rtt += (rtt - self.rtt) / 8
        self._backoff = 1

    @property
    def rto(self) -> float:
        base = INITIAL_RTO if self.rtt is None else max(self.rtt + 4 * self.rtt_var, MIN_RTO)
        return min(base * self._backoff, MAX_RTO)

    def back_off(self) -> None:
        """A timeout fired: double the next timeout."""
        self._backoff = min(self._backoff * 2, 1 << 10)
