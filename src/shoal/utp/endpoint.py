"""The datagram engine for one UDP socket: demultiplexes uTP packets to connections.

Same contract as `shoal.dht.node.DHTNode` (style.md 4.2): ``receive_datagram(data,
addr, now)``, ``datagrams_to_send()``, ``get_timer()``, ``handle_timer(now)``,
``next_event()``; commands are `connect` here and ``send`` / ``read`` / ``close`` /
``abort`` on the returned `UTPConnection`. After any command, drain
``datagrams_to_send()`` and ``next_event()``.

Demultiplexing. A packet belongs to the connection keyed by ``(source address,
connection_id)``, where ``connection_id`` is our receive id. An ST_SYN carries the
initiator's receive id ``i``: we answer on ``i`` and listen on ``i + 1`` (BEP 29), so a
retransmitted SYN finds its connection under ``(addr, i + 1)`` and is re-acknowledged
instead of opening a second one. Anything else for an unknown connection is answered
with ST_RESET (except a RESET), which is how a restarted peer learns its old
connection is gone.

SYN flood limit. New incoming connections are refused (with ST_RESET) when
`UTPConfig.max_connections` exist, when `UTPConfig.max_half_open_incoming` incoming
ones have not yet heard back from their initiator, or when the SYN token bucket
(`UTPConfig.syn_rate` per second) is empty. A half-open connection expires after
`connection.HALF_OPEN_TIMEOUT`. So a forged-source SYN flood costs at most a bounded
number of small connection objects and one ST_STATE per SYN we accept.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import LocalProtocolError
from .connection import ConnState, Signal, UTPConfig, UTPConnection
from .events import (
    Connected,
    ConnectionClosed,
    IncomingConnection,
    Readable,
    UTPEvent,
    Writable,
)
from .packet import SEQ_MASK, Packet, PacketType, decode_packet

if TYPE_CHECKING:
    import random

__all__ = ["Addr", "EndpointStats", "UTPEndpoint"]

Addr = tuple[str, int]
_SIGNAL_EVENTS: dict[Signal, type[UTPEvent]] = {
    Signal.CONNECTED: Connected,
    Signal.READABLE: Readable,
    Signal.WRITABLE: Writable,
}


@dataclass(frozen=True, slots=True)
class EndpointStats:
    connections: int
    half_open_incoming: int
    datagrams_in: int
    datagrams_out: int
    syns_refused: int
    resets_sent: int
    unknown_dropped: int


class UTPEndpoint:
    """All uTP connections on one socket (see the module docstring).

    Args:
        rng: connection ids and initial sequence numbers (seed it in tests).
        config: limits and tunables shared by every connection.
        accept: whether incoming SYNs open connections (False: refuse them all).
    """

    def __init__(
        self, rng: random.Random, config: UTPConfig | None = None, *, accept: bool = True
    ) -> None:
        self.config = config if config is not None else UTPConfig()
        self.accept = accept
        self._rng = rng
        self._conns: dict[tuple[Addr, int], UTPConnection] = {}
        self._by_send_id: dict[tuple[Addr, int], UTPConnection] = {}
        self._out: list[tuple[bytes, Addr]] = []
        #: Connections whose receive path deferred a bare ACK to the next drain.
        self._ack_due: list[UTPConnection] = []
        self._events: collections.deque[UTPEvent] = collections.deque()
        self._syn_tokens = self.config.syn_rate
        self._syn_time: float | None = None
        self._counts = dict.fromkeys(EndpointStats.__slots__, 0)

    # -- commands -------------------------------------------------------------------------

    def connect(self, addr: Addr, now: float) -> UTPConnection:
        """Open a connection to `addr`; a `Connected` or `ConnectionClosed` event follows."""
        if len(self._conns) >= self.config.max_connections:
            raise LocalProtocolError("too many uTP connections")
        for _ in range(64):
            recv_id = self._rng.randrange(1 << 16)
            send_id = (recv_id + 1) & SEQ_MASK
            if (addr, recv_id) not in self._conns and (addr, send_id) not in self._by_send_id:
                break
        else:  # pragma: no cover - needs ~65,000 connections to one address
            raise LocalProtocolError(f"no free uTP connection id towards {addr}")
        conn = self._new_conn(addr, recv_id, send_id, 1, outgoing=True, now=now)
        conn.start_outgoing(now)
        return conn

    def connections(self) -> list[UTPConnection]:
        return list(self._conns.values())

    # -- datagram engine ------------------------------------------------------------------

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        """One UDP datagram from `addr`. Raises `DecodeError` (only) if it is not uTP."""
        self._counts["datagrams_in"] += 1
        pkt = decode_packet(data)
        if pkt.type is PacketType.SYN:
            self._on_syn(pkt, addr, now)
            return
        conn = self._conns.get((addr, pkt.connection_id))
        if conn is None and pkt.type is PacketType.RESET:
            # A RESET for an unknown connection carries the id it was sent with; ours
            # (libtorrent) carry the receiver's id, a few implementations the sender's.
            conn = self._by_send_id.get((addr, pkt.connection_id))
        if conn is None:
            self._counts["unknown_dropped"] += 1
            if pkt.type is not PacketType.RESET:
                self._send_reset(pkt.connection_id, pkt.ack_nr, addr, now)
            return
        conn.receive_packet(pkt, now)
        self._reap(conn)

    def datagrams_to_send(self) -> list[tuple[bytes, Addr]]:
        for conn in self._ack_due:
            conn.flush_ack()
        self._ack_due.clear()
        out, self._out = self._out, []
        self._counts["datagrams_out"] += len(out)
        return out

    def next_event(self) -> UTPEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        times = [t for c in self._conns.values() if (t := c.get_timer()) is not None]
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        for conn in list(self._conns.values()):
            when = conn.get_timer()
            if when is not None and when <= now:
                conn.handle_timer(now)
                self._reap(conn)

    def statistics(self) -> EndpointStats:
        counts = dict(self._counts)
        counts["connections"] = len(self._conns)
        counts["half_open_incoming"] = self._half_open()
        return EndpointStats(**counts)

    # -- internals ------------------------------------------------------------------------

    def _new_conn(
        self, addr: Addr, recv_id: int, send_id: int, seq: int, *, outgoing: bool, now: float
    ) -> UTPConnection:
        conn = UTPConnection(
            addr,
            recv_id=recv_id,
            send_id=send_id,
            seq_nr=seq,
            outgoing=outgoing,
            config=self.config,
            emit=self._signal,
            transmit=self._transmit,
            now=now,
        )
        self._conns[(addr, recv_id)] = conn
        self._by_send_id[(addr, send_id)] = conn
        return conn

    def _signal(self, conn: UTPConnection, signal: Signal) -> None:
        if signal is Signal.ACK_DUE:
            self._ack_due.append(conn)
            return
        if signal is Signal.CLOSED:
            assert conn.close_reason is not None
            self._events.append(ConnectionClosed(conn, conn.close_reason))
        else:
            self._events.append(_SIGNAL_EVENTS[signal](conn))

    def _transmit(self, data: bytes, addr: Addr) -> None:
        self._out.append((data, addr))

    def _half_open(self) -> int:
        return sum(1 for c in self._conns.values() if c.state is ConnState.SYN_RECV)

    def _on_syn(self, pkt: Packet, addr: Addr, now: float) -> None:
        recv_id = (pkt.connection_id + 1) & SEQ_MASK
        existing = self._conns.get((addr, recv_id))
        if existing is not None:
            existing.receive_packet(pkt, now)  # a retransmitted SYN: re-ack it
            self._reap(existing)
            return
        if not self._admit_syn(addr, pkt.connection_id, now):
            self._counts["syns_refused"] += 1
            self._send_reset(pkt.connection_id, pkt.seq_nr, addr, now)
            return
        seq = self._rng.randrange(1 << 16)
        conn = self._new_conn(addr, recv_id, pkt.connection_id, seq, outgoing=False, now=now)
        conn.start_incoming(pkt, now)
        self._events.append(IncomingConnection(conn))

    def _admit_syn(self, addr: Addr, send_id: int, now: float) -> bool:
        if self._syn_time is not None:
            rate = self.config.syn_rate
            elapsed = max(0.0, now - self._syn_time)
            self._syn_tokens = min(rate, self._syn_tokens + elapsed * rate)
        self._syn_time = now
        if (
            not self.accept
            or (addr, send_id) in self._by_send_id
            or len(self._conns) >= self.config.max_connections
            or self._half_open() >= self.config.max_half_open_incoming
            or self._syn_tokens < 1.0
        ):
            return False
        self._syn_tokens -= 1.0
        return True

    def _send_reset(self, conn_id: int, ack_nr: int, addr: Addr, now: float) -> None:
        self._counts["resets_sent"] += 1
        micros = int(now * 1_000_000) & 0xFFFFFFFF
        pkt = Packet(PacketType.RESET, conn_id, micros, 0, 0, self._rng.randrange(1 << 16), ack_nr)
        self._out.append((pkt.encode(), addr))

    def _reap(self, conn: UTPConnection) -> None:
        if conn.state is ConnState.CLOSED:
            self._conns.pop((conn.addr, conn.recv_id), None)
            self._by_send_id.pop((conn.addr, conn.send_id), None)
