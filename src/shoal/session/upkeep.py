"""`UpkeepInputs`: the `TorrentEngine`'s periodic swarm upkeep (PEX and peer turnover).

Both run from `TorrentEngine.handle_timer` on their own intervals and only look at the
connected peers as a whole: BEP 11 PEX deltas for every peer, and closing peers that
stay useless while others wait for a slot (`swarm/turnover.py`). A mixin of
`TorrentEngine` (which owns the state, as `HolepunchInputs` does) keeps the engine
module about connections; a mixin adds no call overhead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ..peer.connection import ConnectionState
from ..peer.extension import UT_PEX, PexFlags, PexPeer
from ..swarm.turnover import PeerActivity
from .holepunch import supports_holepunch

if TYPE_CHECKING:
    from ..swarm.peer_pool import PeerPool
    from ..swarm.turnover import TurnoverPolicy
    from .peer import EnginePeer
    from .pex import PexTracker

__all__ = ["UpkeepInputs"]


class _Limits(Protocol):
    @property
    def max_peers(self) -> int: ...


class _Engine(Protocol):
    """What `UpkeepInputs` needs of the engine that mixes it in."""

    private: bool
    paused: bool
    pool: PeerPool
    turnover: TurnoverPolicy
    _pex: PexTracker[EnginePeer]
    _refused_full: bool
    _refused_full_at: float
    _dirty: dict[int, None]

    @property
    def config(self) -> _Limits: ...
    @property
    def peers(self) -> dict[int, EnginePeer]: ...

    def _close(self, peer: EnginePeer, reason: str, now: float, *, clean: bool = False) -> None: ...


class UpkeepInputs:
    """A mixin of `TorrentEngine`: PEX rounds and peer turnover (module docstring)."""

    # Set here, owned by the engine (declared so that mypy types them as the engine does).
    _refused_full: bool
    _refused_full_at: float

    def _turn_over(self: _Engine, now: float) -> None:
        """Peer turnover (`swarm/turnover.py`): when every slot is taken and someone
        waits (a dialable address, or an inbound peer refused in the last 30 s), close
        peers useless for a while: no interest either way, no payload."""
        if self._refused_full:
            self._refused_full, self._refused_full_at = False, now
        activity = []
        for peer in self.peers.values():
            total = peer.downloaded + peer.uploaded
            seen, last = peer.payload_mark
            if total != seen:
                peer.payload_mark = (total, now)
                last = now
            conn = peer.conn
            activity.append(
                PeerActivity(peer, peer.started_at, last, conn.am_interested, conn.peer_interested)
            )
        waiting = self.pool.ready_count(now) + (now - self._refused_full_at < 30.0)
        if self.paused or not waiting:
            return
        for peer in self.turnover.pick(
            activity, now=now, max_peers=self.config.max_peers, waiting=waiting
        ):
            self._close(peer, "peer turnover: useless while others wait for a slot", now)

    def _send_pex(self: _Engine) -> None:
        """BEP 11: tell each peer which peers we are connected to, as deltas."""
        if self.private:
            return
        flags = {
            p.listen_addr: (PexFlags.UTP if p.utp else PexFlags.NONE)
            | (PexFlags.HOLEPUNCH if supports_holepunch(p) else PexFlags.NONE)
            for p in self.peers.values()
            if p.listen_addr is not None
        }
        live = set(flags)
        for peer in self.peers.values():
            conn = peer.conn
            if conn.state is not ConnectionState.OPEN or not conn.peer_supports(UT_PEX):
                continue
            added, dropped = self._pex.delta(peer, live, peer.listen_addr)
            if added or dropped:
                conn.send_pex([PexPeer(a, flags[a]) for a in added], dropped)
                self._dirty[peer.key] = None
