"""Simulated BitTorrent swarms: real `TorrentEngine`s on links in virtual time.

Theory of operation
-------------------
A discrete-event loop (a heap of ``(time, seq, action)``) stands in for Trio and the
network, the way `simnet` does for the DHT. Each `SimNode` is one client with one
torrent: a `TorrentEngine`, a `SimStorage` (verify-then-write, in memory) and an
uplink of `NetConfig.bandwidth` bytes/s shared by its connections. A connection is a
pair of engine keys; bytes a node sends are delivered after the serialisation time
on its uplink plus the link latency, and a lost segment arrives one retransmission
timeout later (TCP never loses bytes, it delays them). Closing one end delivers EOF
to the other after the latency.

Everything is seeded: the same `seed` replays a run exactly, so a failing test prints
its seed and can be rerun. Handshakes are not simulated byte by byte: a dial that
reaches a live node builds both `Handshake`s and hands them to `peer_connected` on
both ends (the handover every real driver does after the transport's handshakes).

Pure (no trio, no clock, no OS entropy): it only drives engines.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Final

from .. import torrent_events as tev
from ..bencoding import encode
from ..ids import InfoHash, PeerId
from ..metainfo import Metainfo, parse_info
from ..peer.handshake import Handshake, ReservedBits
from ..session import commands as cmd
from ..session.engine import EngineConfig, TorrentEngine
from ..swarm.bitfield import Bitfield
from ..swarm.peer_pool import PeerSource

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..metainfo import InfoDict

__all__ = ["LinkConfig", "SimNode", "SimStorage", "SwarmSim", "make_torrent"]

Addr = tuple[str, int]
_RESERVED: Final = ReservedBits.DHT | ReservedBits.FAST | ReservedBits.EXTENSION_PROTOCOL
#: How late a node's timer may fire (see `SwarmSim._after_input`).
_TIMER_SLACK: Final = 0.05
#: Largest chunk one delivery carries (a socket read's worth).
_SEGMENT: Final = 256 * 1024


def make_torrent(data: bytes, piece_length: int = 256 * 1024, name: str = "sim.bin") -> Metainfo:
    """A single-file v1 torrent of `data`."""
    pieces = b"".join(
        hashlib.sha1(data[i : i + piece_length]).digest() for i in range(0, len(data), piece_length)
    )
    raw = encode(
        {
            b"length": len(data),
            b"name": name.encode(),
            b"piece length": piece_length,
            b"pieces": pieces,
        }
    )
    return Metainfo(parse_info(raw), None, (), (), None, None, None)


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """How a node's connections behave."""

    latency: float = 0.01  #: one way, seconds
    bandwidth: float = 50e6  #: uplink, bytes/s
    loss: float = 0.0  #: probability a segment needs a retransmission
    rto: float = 0.2  #: the retransmission delay of a lost segment


class SimStorage:
    """Verify-then-write storage in memory; `committed` records every stored piece."""

    def __init__(self, info: InfoDict, data: bytes | None = None) -> None:
        self.info = info
        self.disk = bytearray(info.total_length)
        self.have = Bitfield(info.num_pieces)
        self._buffers: dict[int, bytearray] = {}
        self.rejected: dict[int, bytes] = {}
        #: Called with (index, bytes) for every piece written to `disk`.
        self.on_commit: Callable[[int, bytes], None] | None = None
        if data is not None:
            self.disk[:] = data
            for i in range(info.num_pieces):
                self.have.set(i)

    def _span(self, index: int) -> tuple[int, int]:
        start = index * self.info.piece_length
        return start, start + self.info.piece_size(index)

    def write(self, index: int, begin: int, data: bytes | memoryview) -> None:
        if self.have.test(index):
            return
        buf = self._buffers.get(index)
        if buf is None:
            buf = self._buffers[index] = bytearray(self.info.piece_size(index))
        buf[begin : begin + len(data)] = data

    def verify(self, index: int) -> tuple[bool, bytes]:
        buf = bytes(self._buffers.pop(index, b""))
        if hashlib.sha1(buf).digest() != self.info.piece_hash(index):
            return False, buf
        start, end = self._span(index)
        self.disk[start:end] = buf
        self.have.set(index)
        if self.on_commit is not None:
            self.on_commit(index, buf)
        return True, buf

    def read(self, index: int) -> bytes:
        start, end = self._span(index)
        return bytes(self.disk[start:end])


@dataclass(eq=False)
class SimNode:
    """One client in the swarm."""

    name: str
    addr: Addr
    engine: TorrentEngine
    storage: SimStorage | None
    link: LinkConfig
    #: Flip a byte in every piece this node serves (a corrupt peer).
    corrupt: bool = False
    alive: bool = True
    events: list[tev.TorrentEvent] = field(default_factory=list)
    completed_at: float | None = None
    uplink_free: float = 0.0
    conns: dict[int, tuple[SimNode, int]] = field(default_factory=dict)


class SwarmSim:
    """A swarm of `SimNode`s sharing one torrent (see the module docstring)."""

    def __init__(self, metainfo: Metainfo, *, seed: int) -> None:
        self.metainfo = metainfo
        self.seed = seed
        self.rng = random.Random(seed)
        self.now = 0.0
        self.nodes: list[SimNode] = []
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self._timers: dict[int, float] = {}
        self._ports = 40000
        self._last_arrival: dict[tuple[int, int], float] = {}
        self._rearmed: dict[int, float] = {}
        self.delivered_bytes = 0

    # ---- building ------------------------------------------------------------------

    def add_node(
        self,
        name: str,
        *,
        data: bytes | None = None,
        link: LinkConfig | None = None,
        corrupt: bool = False,
        magnet: bool = False,
        seed_after: bool = True,
        peers: tuple[Addr, ...] = (),
        max_peers: int = 50,
    ) -> SimNode:
        """A node with the whole `data` (a seed) or nothing; `magnet`: starts without
        the info dict and fetches it (BEP 9)."""
        i = len(self.nodes) + 1
        addr = (f"127.0.{i >> 8}.{i & 255}", 6881)
        peer_id = PeerId(f"-SH0100-{name[:12]:<12}".encode()[:20].ljust(20, b"x"))
        config = EngineConfig(
            max_peers=max_peers, listen_port=addr[1], seed=seed_after, upload_slots=4
        )
        engine = TorrentEngine(
            self.metainfo.info_hash,
            peer_id,
            rng=random.Random(self.rng.getrandbits(64)),
            now=self.now,
            config=config,
            metainfo=None if magnet else self.metainfo,
        )
        node = SimNode(name, addr, engine, None, link or LinkConfig(), corrupt=corrupt)
        self.nodes.append(node)
        if not magnet:
            self._open_storage(node, data)
        engine.peers_found(peers, PeerSource.USER, self.now)
        self._after_input(node)
        return node

    def _open_storage(self, node: SimNode, data: bytes | None) -> None:
        info = self.metainfo.info
        node.storage = SimStorage(info, data)
        prios = bytes([4]) * info.num_pieces
        node.engine.start_data(info, node.storage.have, prios, sequential=False, now=self.now)

    def kill(self, node: SimNode) -> None:
        """The node vanishes: every connection ends (peers see EOF)."""
        node.alive = False
        for key in list(node.conns):
            self._close(node, key)
        self._timers.pop(id(node), None)

    # ---- the loop ------------------------------------------------------------------

    def at(self, when: float, action: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, action))

    def run(self, until: float, *, stop: Callable[[], bool] | None = None) -> float:
        """Run events up to virtual time `until` (or until `stop()`); returns the time."""
        while self._heap and self._heap[0][0] <= until:
            when, _, action = heapq.heappop(self._heap)
            self.now = max(self.now, when)
            action()
            if stop is not None and stop():
                break
        else:
            self.now = max(self.now, until)
        return self.now

    def run_until_complete(self, nodes: list[SimNode], limit: float) -> float:
        """Run until every node in `nodes` completed (or `limit`)."""
        return self.run(limit, stop=lambda: all(n.completed_at is not None for n in nodes))

    # ---- driving one engine --------------------------------------------------------

    def _after_input(self, node: SimNode) -> None:
        """Carry out what the engine asked for, flush its connections, re-arm its timer."""
        engine = node.engine
        while True:
            commands = engine.commands()
            if not commands:
                break
            for command in commands:
                self._do(node, command)
        for key in engine.dirty_peers():
            data = b"".join(engine.data_to_send(key))
            if data:
                self._send(node, key, data)
        # Re-arming costs a pass over every connection, so it is done at most every
        # `_TIMER_SLACK` of virtual time per node (a deadline fires at most that late).
        if not node.alive or self._timers.get(id(node), math.inf) <= self.now + _TIMER_SLACK:
            return
        recheck = self._rearmed.get(id(node), -math.inf) + _TIMER_SLACK
        if self.now < recheck:
            # Re-armed a moment ago: look again (an early `handle_timer` is harmless).
            self._timers[id(node)] = recheck
            self.at(recheck, partial(self._fire, node, recheck))
            return
        self._rearmed[id(node)] = self.now
        timer = engine.get_timer()
        dial = engine.next_dial_time(self.now)
        if dial is not None and (timer is None or dial < timer):
            timer = max(dial, self.now + 0.001)
        if timer is not None and node.alive:
            scheduled = self._timers.get(id(node))
            if scheduled is None or timer < scheduled:
                self._timers[id(node)] = timer
                self.at(timer, partial(self._fire, node, timer))

    def _fire(self, node: SimNode, timer: float) -> None:
        if not node.alive or self._timers.get(id(node)) != timer:
            return
        del self._timers[id(node)]
        self._rearmed.pop(id(node), None)
        node.engine.handle_timer(self.now)
        node.engine.dial_more(self.now)
        self._after_input(node)

    def _do(self, node: SimNode, command: cmd.Command) -> None:
        engine = node.engine
        match command:
            case cmd.Dial(addr=addr):
                self.at(self.now + 2 * node.link.latency, lambda: self._connect(node, addr))
            case cmd.ClosePeer(peer=key):
                self._close(node, key)
            case cmd.WriteBlock(index=index, begin=begin, data=data):
                assert node.storage is not None
                node.storage.write(index, begin, data)
            case cmd.VerifyPiece(index=index):
                assert node.storage is not None
                ok, buf = node.storage.verify(index)
                good = buf if ok and engine.needs_good_copy(index) else None
                engine.piece_checked(index, ok, good if ok else buf, self.now)
            case cmd.ReadPiece(index=index):
                assert node.storage is not None
                piece = node.storage.read(index)
                if node.corrupt:
                    piece = bytes([piece[0] ^ 0xFF]) + piece[1:]
                engine.piece_read(index, piece, self.now)
            case cmd.Publish(event=event):
                node.events.append(event)
            case cmd.MetadataReady():
                self._open_storage(node, None)
            case cmd.PiecesComplete():
                if node.completed_at is None:
                    node.completed_at = self.now
                engine.completion_flushed(self.now)
            case cmd.AddDhtNodes() | cmd.Fail():
                node.events.append(tev.TorrentError(str(command)))

    # ---- connections ---------------------------------------------------------------

    def _node_at(self, addr: Addr) -> SimNode | None:
        for n in self.nodes:
            if n.addr == addr and n.alive:
                return n
        return None

    def _connect(self, dialer: SimNode, addr: Addr) -> None:
        if not dialer.alive:
            return
        target = self._node_at(addr)
        if target is None or target is dialer:
            dialer.engine.dial_failed(addr, self.now, self_connection=target is dialer)
            self._after_input(dialer)
            return
        self._ports += 1
        dialer_end = (dialer.addr[0], self._ports)
        ih = InfoHash(self.metainfo.info_hash)
        hs_dialer = Handshake(ih, dialer.engine.peer_id, _RESERVED)
        hs_target = Handshake(ih, target.engine.peer_id, _RESERVED)
        if not target.engine.would_accept(bytes(hs_dialer.peer_id), dialer_end, dialer_end):
            dialer.engine.dial_failed(addr, self.now)
            self._after_input(dialer)
            return
        k_t = target.engine.peer_connected(
            dialer_end,
            hs_dialer,
            b"",
            incoming=True,
            encrypted=False,
            dialer_end=dialer_end,
            now=self.now,
        )
        k_d = dialer.engine.peer_connected(
            addr,
            hs_target,
            b"",
            incoming=False,
            encrypted=False,
            dialer_end=dialer_end,
            now=self.now,
        )
        if k_t is not None and k_d is not None:
            target.conns[k_t] = (dialer, k_d)
            dialer.conns[k_d] = (target, k_t)
        else:
            if k_t is not None:
                target.engine.peer_closed(k_t, "refused by the other end", self.now)
            if k_d is not None:
                dialer.engine.peer_closed(k_d, "refused by the other end", self.now)
        self._after_input(target)
        self._after_input(dialer)

    def _send(self, node: SimNode, key: int, data: bytes) -> None:
        far = node.conns.get(key)
        if far is None:
            return
        other, other_key = far
        link = node.link
        for start in range(0, len(data), _SEGMENT):
            chunk = data[start : start + _SEGMENT]
            begin = max(self.now, node.uplink_free)
            node.uplink_free = begin + len(chunk) / link.bandwidth
            arrive = node.uplink_free + link.latency
            if link.loss and self.rng.random() < link.loss:
                arrive += link.rto
            # TCP delivers in order: a segment behind a retransmitted one waits for it.
            arrive = max(arrive, self._last_arrival.get((id(node), key), 0.0))
            self._last_arrival[(id(node), key)] = arrive
            self.at(arrive, partial(self._deliver, other, other_key, chunk))

    def _deliver(self, node: SimNode, key: int, chunk: bytes) -> None:
        if not node.alive or key not in node.conns:
            return
        self.delivered_bytes += len(chunk)
        node.engine.peer_data(key, chunk, self.now)
        self._after_input(node)

    def _close(self, node: SimNode, key: int) -> None:
        far = node.conns.pop(key, None)
        if node.alive:
            node.engine.peer_closed(key, "closed", self.now)
        if far is None:
            return
        other, other_key = far
        # Bytes already sent still arrive; then the far end sees EOF.
        self.at(
            max(self.now, node.uplink_free, self._last_arrival.get((id(node), key), 0.0))
            + node.link.latency
            + 1e-6,
            lambda: self._eof(other, other_key),
        )

    def _eof(self, node: SimNode, key: int) -> None:
        if not node.alive or key not in node.conns:
            return
        node.engine.peer_data(key, b"", self.now)
        if key in node.conns and key not in node.engine.peers:
            node.conns.pop(key)  # the engine forgot it without a ClosePeer
        self._after_input(node)
