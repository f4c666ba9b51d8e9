"""`TorrentReporting`: what a `Torrent` says about itself (statistics and progress).

`statistics()`, the per-piece views, the recheck progress and the once-a-second
`Progress` events read the engine, the storage and the DHT but change none of them.
A mixin of `Torrent` (which owns the state) so that ``torrent.py`` stays about driving
the engine; nothing here is on the per-block path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

import trio

from . import torrent_events as tev
from .torrent_parts import TorrentCore, is_seed
from .torrent_stats import TorrentState, TorrentStats

if TYPE_CHECKING:
    from collections import deque


__all__ = ["RATE_WINDOW", "TorrentReporting"]

#: Transfer rates are averaged over this many seconds of samples.
RATE_WINDOW: Final = 5.0


class _Host(TorrentCore, Protocol):
    """What `TorrentReporting` needs of the `Torrent` that mixes it in."""

    _checked: float

    @property
    def _samples(self) -> deque[tuple[float, int, int]]: ...
    @property
    def _state(self) -> TorrentState: ...
    @property
    def name(self) -> str | None: ...
    @property
    def state(self) -> TorrentState: ...

    def _rates(self) -> tuple[float, float]: ...
    def statistics(self) -> TorrentStats: ...


class TorrentReporting:
    """A mixin of `Torrent`: statistics, per-piece state, progress events."""

    # Set here, owned by the torrent (declared so that mypy types it as the torrent does).
    _checked: float

    def statistics(self: _Host) -> TorrentStats:
        data = self.data
        engine = self.engine
        down_rate, up_rate = self._rates()
        downloaded = data.verified_bytes() if data else 0
        payload, uploaded = engine.payload_totals()
        plane = engine.data
        left = plane.picker.wanted_left() if plane is not None else None
        eta = left / down_rate if left and down_rate > 0 else (0.0 if left == 0 else None)
        dht_nodes, dht_status = 0, None
        if self._dht is not None:
            dht_stats = self._dht.statistics()
            dht_nodes = dht_stats.nodes  # every address family
            if (proxy := dht_stats.proxy) is not None and proxy.relay is None:
                dht_status = proxy.state.value  # proxied and the proxy is away
        peers = list(engine.peers.values())
        return TorrentStats(
            state=self.state,
            name=self.name,
            total_size=data.info.total_length if data else 0,
            selected_size=data.selected_size if data else 0,
            downloaded=downloaded,
            downloaded_payload=payload,
            uploaded=uploaded,
            download_rate=down_rate,
            upload_rate=up_rate,
            pieces_done=data.storage.verified().count() if data else 0,
            pieces_total=data.info.num_pieces if data else 0,
            peers=len(peers),
            seeds=sum(1 for p in peers if is_seed(p)),
            encrypted_peers=sum(1 for p in peers if p.encrypted),
            known_peers=engine.pool.statistics().known,
            metadata_peers=engine.metadata_peers(),
            dht_nodes=dht_nodes,
            eta=eta,
            ratio=uploaded / downloaded if downloaded else 0.0,
            checked=self._checked if self._state is TorrentState.CHECKING else None,
            dht_status=dht_status,
        )

    def _checking(self: _Host, checked: int, total: int) -> None:
        """Progress of the recheck of files on disk (a big one takes minutes)."""
        self._checked = checked / total if total else 1.0

    def verified_pieces(self: _Host) -> list[bool]:
        """Per piece, whether it is verified (empty until the metadata is known).

        For callers that show per-piece or per-file progress (the daemon's
        ``pieceStates`` and ``files``); a copy, so holding it costs the engine nothing.
        """
        if self.data is None:
            return []
        have = self.data.storage.verified()
        return [have.test(i) for i in range(self.data.info.num_pieces)]

    def downloading_pieces(self: _Host) -> frozenset[int]:
        """Pieces with blocks requested or received but not yet verified (the daemon's
        ``pieceStates`` 1); empty before the data phase."""
        plane = self.engine.data
        return frozenset(plane.picker.partial_pieces()) if plane is not None else frozenset()

    def _rates(self: _Host) -> tuple[float, float]:
        if len(self._samples) < 2:
            return 0.0, 0.0
        t0, d0, u0 = self._samples[0]
        t1, d1, u1 = self._samples[-1]
        span = max(t1 - t0, 1e-9)
        return (d1 - d0) / span, (u1 - u0) / span

    async def _stats_loop(self: _Host) -> None:
        while True:
            now = trio.current_time()
            down, up = self.engine.payload_totals()
            self._samples.append((now, down, up))
            while self._samples and self._samples[0][0] < now - RATE_WINDOW:
                self._samples.popleft()
            self._subs.publish(tev.Progress(self.statistics()))
            await trio.sleep(1.0)
