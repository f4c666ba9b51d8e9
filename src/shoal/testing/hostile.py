"""Hostile peers and DHT nodes, scriptable on loopback, for robustness tests.

Each function plays one class of attacker from issue 10 and docs/security.md against a
shoal client (or anything else) listening on 127.0.0.0/8 or ::1. They speak just enough
of the protocol to get past the checks they aim at, with the wire codecs of
`shoal.peer`, and report what they saw, so a test can assert that the victim's memory
and file descriptors stay bounded and an honest peer keeps working meanwhile.

Network safety: every address an attacker connects to or binds is checked to be
loopback (`LoopbackOnly`), so a typo cannot aim a storm at a real host. Every loop is
bounded by a count, and every task lives in a nursery of the caller: cancel it and
all sockets close.

Peer wire attackers (the victim listens at `addr`):

* `connect_storm`: connections that never send a byte, held open.
* `handshake_then_close`: handshake (+ BEP 10 ``p``) then close, new port each time.
* `slowloris`: a handshake dribbled one byte at a time.
* `keepalive_idlers`: complete handshakes, then nothing but keep-alives.
* `request_and_never_read`: asks for blocks and never reads the socket.
* `send_then_wait_close`: handshake + arbitrary bytes (oversized frames, wrong
  bitfields, out-of-range requests, malformed extension handshakes ...), returns
  whether the victim hung up.
* `corrupt_seed`: connects from many source ports and answers requests with garbage.

Listening attackers (the victim dials them): `serve_lying_metadata_peer` announces a
wrong or right ``metadata_size`` and then stays silent, rejects or sends garbage.

DHT nodes (the victim bootstraps from them): `serve_hostile_dht_node` in the modes
``silent``, ``wrong-tid`` and ``oversized``.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import trio

from ..bencoding import decode, encode
from ..errors import DecodeError, RemoteProtocolError, ShoalError
from ..peer import messages as m
from ..peer.extension import (
    ExtendedHandshake,
    MetadataData,
    MetadataReject,
    decode_metadata_message,
    encode_extended_handshake,
    encode_metadata_message,
)
from ..peer.frames import FrameDecoder
from ..peer.handshake import Handshake, ReservedBits, encode_handshake

if TYPE_CHECKING:
    from ..ids import InfoHash

__all__ = [
    "AttackStats",
    "DHTMode",
    "LoopbackOnly",
    "MetadataLie",
    "connect_storm",
    "corrupt_seed",
    "handshake_then_close",
    "keepalive_idlers",
    "request_and_never_read",
    "send_then_wait_close",
    "serve_hostile_dht_node",
    "serve_lying_metadata_peer",
    "slowloris",
    "wire_handshake",
]

Addr = tuple[str, int]

#: Reserved bits of a modern client: Fast, extension protocol, DHT.
RESERVED: Final = ReservedBits.FAST | ReservedBits.EXTENSION_PROTOCOL | ReservedBits.DHT
#: Our ut_metadata id in the extended handshakes we send.
UT_METADATA_ID: Final = 3


class LoopbackOnly(ShoalError, ValueError):
    """An attacker was pointed at a non-loopback address (refused: network safety)."""


def _check(host: str) -> str:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise LoopbackOnly(f"not an IP literal: {host!r}") from None
    if not ip.is_loopback:
        raise LoopbackOnly(f"hostile test traffic must stay on loopback, not {host}")
    return host


@dataclass
class AttackStats:
    """What an attacker managed: connections, bytes, and how the victim reacted.

    Set `source_host` (a 127.x address) to attack from an IP of its own, so that a
    host ban of the attacker does not also ban the honest peers of the test.
    """

    source_host: str | None = None
    connected: int = 0
    refused: int = 0
    closed_by_victim: int = 0
    sent: int = 0
    received: int = 0
    notes: list[str] = field(default_factory=list)
    #: Datagrams received (hostile DHT nodes).
    datagrams: int = 0
    #: Payload bytes sent on each connection, in order (`corrupt_seed`).
    per_connection: list[int] = field(default_factory=list)


def _peer_id(n: int) -> bytes:
    return b"-HX0001-" + n.to_bytes(12, "big")


def wire_handshake(
    info_hash: InfoHash | bytes,
    n: int = 0,
    *,
    listen_port: int | None = None,
    metadata_size: int | None = None,
) -> bytes:
    """BitTorrent handshake (+ a BEP 10 handshake): the opening of a real client."""
    hs = encode_handshake(Handshake(info_hash, _peer_id(n), RESERVED))  # type: ignore[arg-type]
    ext = ExtendedHandshake(
        m={"ut_metadata": UT_METADATA_ID}, p=listen_port, metadata_size=metadata_size, v="hx"
    )
    return hs + m.encode_message(m.Extended(0, encode_extended_handshake(ext)))


async def _open(addr: Addr, stats: AttackStats) -> trio.SocketStream | None:
    local = None if stats.source_host is None else _check(stats.source_host)
    try:
        stream = await trio.open_tcp_stream(_check(addr[0]), addr[1], local_address=local)
    except OSError:
        stats.refused += 1
        return None
    stats.connected += 1
    return stream


async def _drain_until_closed(stream: trio.SocketStream, stats: AttackStats) -> None:
    """Read (and count) until the victim closes; returns on EOF or reset."""
    try:
        while chunk := await stream.receive_some(65536):
            stats.received += len(chunk)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    stats.closed_by_victim += 1


# ---- peer-wire attackers -------------------------------------------------------------


async def connect_storm(addr: Addr, count: int, stats: AttackStats, *, send: bytes = b"") -> None:
    """Open `count` connections that send `send` (default: nothing) and hold them.

    Runs until cancelled; connections the victim closes are counted in `stats`.
    """
    async with trio.open_nursery() as nursery:
        for _ in range(count):
            stream = await _open(addr, stats)
            if stream is None:
                continue
            if send:
                await _send(stream, send, stats)
            nursery.start_soon(_hold, stream, stats)


async def _hold(stream: trio.SocketStream, stats: AttackStats) -> None:
    async with stream:
        await _drain_until_closed(stream, stats)


async def _send(stream: trio.SocketStream, data: bytes, stats: AttackStats) -> bool:
    try:
        await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return False
    stats.sent += len(data)
    return True


async def handshake_then_close(
    addr: Addr,
    info_hash: InfoHash | bytes,
    count: int,
    stats: AttackStats,
    *,
    claim_listen_ports: bool = False,
) -> None:
    """`count` times: connect (a fresh source port), handshake, close. With
    `claim_listen_ports`, each one also claims a different BEP 10 ``p``."""
    for i in range(count):
        stream = await _open(addr, stats)
        if stream is None:
            continue
        port = 1 + i % 60000 if claim_listen_ports else None
        async with stream:
            await _send(stream, wire_handshake(info_hash, i, listen_port=port), stats)


async def slowloris(
    addr: Addr, info_hash: InfoHash | bytes, stats: AttackStats, *, interval: float = 1.0
) -> None:
    """Send a handshake one byte every `interval` seconds; stop when the victim hangs up."""
    stream = await _open(addr, stats)
    if stream is None:
        return
    data = wire_handshake(info_hash)
    async with stream, trio.open_nursery() as nursery:
        done = trio.Event()

        async def watch() -> None:
            await _drain_until_closed(stream, stats)
            done.set()
            nursery.cancel_scope.cancel()

        nursery.start_soon(watch)
        for i in range(len(data)):
            if done.is_set() or not await _send(stream, data[i : i + 1], stats):
                break
            await trio.sleep(interval)
        nursery.cancel_scope.cancel()


async def keepalive_idlers(
    addr: Addr,
    info_hash: InfoHash | bytes,
    count: int,
    stats: AttackStats,
    *,
    interval: float = 30.0,
) -> None:
    """`count` peers that handshake and then only ever send keep-alives (until cancelled)."""
    async with trio.open_nursery() as nursery:
        for i in range(count):
            stream = await _open(addr, stats)
            if stream is None:
                continue
            await _send(stream, wire_handshake(info_hash, i), stats)
            nursery.start_soon(_idle, stream, interval, stats)


async def _idle(stream: trio.SocketStream, interval: float, stats: AttackStats) -> None:
    async with stream, trio.open_nursery() as nursery:
        nursery.start_soon(_drain_until_closed, stream, stats)
        for _ in range(1_000_000):  # bounded; in practice ends by cancellation or hang-up
            if not await _send(stream, m.encode_message(m.KeepAlive()), stats):
                break
            await trio.sleep(interval)
        nursery.cancel_scope.cancel()


async def request_and_never_read(
    addr: Addr,
    info_hash: InfoHash | bytes,
    stats: AttackStats,
    *,
    pieces: int,
    piece_length: int,
    rounds: int = 50,
    peer: int = 0,
) -> None:
    """Ask for every block, over and over, and never read a byte of the answers.

    The receive buffer is shrunk first, so the victim's send queue is what fills up.
    Give each of several attackers its own `peer` number (its peer id): the victim
    keeps one connection per peer id.
    Runs until `rounds` rounds are sent or the victim hangs up (then returns).
    """
    import socket  # the one attacker that needs a socket option

    stream = await _open(addr, stats)
    if stream is None:
        return
    async with stream:
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        hello = wire_handshake(info_hash, peer) + m.encode_message(m.Interested())
        if not await _send(stream, hello, stats):
            return
        with trio.move_on_after(30):  # read only until the victim unchokes us
            await _wait_unchoke(stream, stats)
        # One block of every piece before the next block of any: each queued block
        # then belongs to a different piece (the worst case for a victim that keeps
        # whole pieces alive for the blocks it has queued).
        blocks = [
            m.encode_message(m.Request(i, begin, min(16384, piece_length - begin)))
            for begin in range(0, piece_length, 16384)
            for i in range(pieces)
        ]
        for _ in range(rounds):
            with trio.move_on_after(5) as scope:  # a full send buffer: the victim stopped
                sent = await _send(stream, b"".join(blocks), stats)
            if scope.cancelled_caught or not sent:
                stats.notes.append("victim stopped reading our requests or hung up")
                return
            await trio.sleep(0.05)


async def _wait_unchoke(stream: trio.SocketStream, stats: AttackStats) -> None:
    decoder = FrameDecoder(max_length=1 << 20, max_request_length=1 << 17)
    skip = 68  # the victim's BitTorrent handshake
    while chunk := await stream.receive_some(65536):
        stats.received += len(chunk)
        cut = min(skip, len(chunk))
        chunk, skip = chunk[cut:], skip - cut
        if not chunk:
            continue
        decoder.receive_data(chunk)
        if any(isinstance(msg, m.Unchoke) for msg in decoder):
            stats.notes.append("unchoked")
            return


async def send_then_wait_close(
    addr: Addr, info_hash: InfoHash | bytes, payload: bytes, stats: AttackStats
) -> None:
    """Handshake, send `payload`, and read until the victim hangs up (caller bounds time)."""
    stream = await _open(addr, stats)
    if stream is None:
        return
    async with stream:
        if await _send(stream, wire_handshake(info_hash) + payload, stats):
            await _drain_until_closed(stream, stats)


def bad_frames(num_pieces: int) -> dict[str, bytes]:
    """One payload per classic malformation, each of which must cost the peer its link."""
    wrong_bitfield = m.encode_message(m.BitfieldMessage(b"\xff" * (num_pieces // 8 + 3)))
    return {
        "oversized frame": struct.pack(">I", 64 * 1024 * 1024) + b"\x07" + b"\0" * 1024,
        "wrong bitfield": wrong_bitfield,
        "out-of-range request": m.encode_message(m.Request(num_pieces + 5, 0, 16384)),
        "oversized request": m.encode_message(m.Request(0, 0, 1 << 20)),
        "malformed extension handshake": m.encode_message(m.Extended(0, b"d1:mi5ee")),
        "truncated have": struct.pack(">IB", 1, 4),
    }


async def corrupt_seed(
    addr: Addr,
    info_hash: InfoHash | bytes,
    stats: AttackStats,
    *,
    connections: int,
    num_pieces: int,
) -> None:
    """Connect `connections` times (new source port each), claim every piece, unchoke, and
    answer each request with zeros; counts connections the victim let in."""
    for i in range(connections):
        stream = await _open(addr, stats)
        if stream is None:
            continue
        async with stream:
            opening = (
                wire_handshake(info_hash, 1000 + i)
                + m.encode_message(m.HaveAll())
                + m.encode_message(m.Unchoke())
            )
            before = stats.sent
            if await _send(stream, opening, stats):
                with trio.move_on_after(10):
                    await _serve_garbage(stream, stats, num_pieces)
            stats.per_connection.append(stats.sent - before - len(opening))


async def _serve_garbage(stream: trio.SocketStream, stats: AttackStats, num_pieces: int) -> None:
    decoder = FrameDecoder(max_length=1 << 20, max_request_length=1 << 17)
    skip = 68  # the victim's BitTorrent handshake
    try:
        while chunk := await stream.receive_some(65536):
            stats.received += len(chunk)
            if skip:
                cut, skip = min(skip, len(chunk)), skip - min(skip, len(chunk))
                chunk = chunk[cut:]
            if not chunk:
                continue  # only the handshake so far (b"" would mean EOF)
            decoder.receive_data(chunk)
            for msg in decoder:
                if isinstance(msg, m.Request) and msg.index < num_pieces:
                    bad = m.Piece(msg.index, msg.begin, bytes(msg.length))
                    if not await _send(stream, m.encode_message(bad), stats):
                        return
    except (trio.BrokenResourceError, trio.ClosedResourceError, RemoteProtocolError):
        pass
    stats.closed_by_victim += 1


# ---- a listening liar: wrong metadata_size ------------------------------------------


class MetadataLie(enum.Enum):
    """How a lying metadata peer answers ut_metadata requests."""

    SILENT = "silent"
    REJECT = "reject"
    GARBAGE = "garbage"


async def serve_lying_metadata_peer(
    info_hash: InfoHash | bytes,
    metadata_size: int,
    lie: MetadataLie,
    stats: AttackStats,
    *,
    host: str = "127.0.0.1",
    task_status: trio.TaskStatus[Addr] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept connections, announce `metadata_size` and answer metadata requests per
    `lie`. Started with ``nursery.start``, which returns the bound address."""
    listeners = await trio.open_tcp_listeners(0, host=_check(host))
    sock = listeners[0].socket
    task_status.started((host, sock.getsockname()[1]))

    async def handle(stream: trio.SocketStream) -> None:
        stats.connected += 1
        opening = wire_handshake(info_hash, 7, metadata_size=metadata_size)
        if not await _send(stream, opening + m.encode_message(m.HaveAll()), stats):
            return
        await _answer_metadata(stream, lie, metadata_size, stats)

    await trio.serve_listeners(handle, listeners)


async def _answer_metadata(
    stream: trio.SocketStream, lie: MetadataLie, size: int, stats: AttackStats
) -> None:
    decoder = FrameDecoder(max_length=1 << 20, max_request_length=1 << 17)
    skip = 68
    their_id: int | None = None
    try:
        while chunk := await stream.receive_some(65536):
            stats.received += len(chunk)
            if skip:
                cut = min(skip, len(chunk))
                chunk, skip = chunk[cut:], skip - cut
            if not chunk:
                continue  # only the handshake so far (b"" would mean EOF)
            decoder.receive_data(chunk)
            for msg in decoder:
                if not isinstance(msg, m.Extended):
                    continue
                if msg.extended_id == 0:
                    their_id = _their_ut_metadata(msg.payload)
                elif msg.extended_id == UT_METADATA_ID and their_id:
                    reply = _metadata_reply(msg.payload, lie, size)
                    if reply is not None:
                        wire = m.encode_message(m.Extended(their_id, reply))
                        if not await _send(stream, wire, stats):
                            return
    except (trio.BrokenResourceError, trio.ClosedResourceError, RemoteProtocolError):
        pass
    stats.closed_by_victim += 1


def _their_ut_metadata(payload: bytes) -> int | None:
    try:
        d = decode(payload)
    except DecodeError:
        return None
    ms = d.get(b"m") if isinstance(d, dict) else None
    ut = ms.get(b"ut_metadata") if isinstance(ms, dict) else None
    return ut if isinstance(ut, int) else None


def _metadata_reply(payload: bytes, lie: MetadataLie, size: int) -> bytes | None:
    try:
        request = decode_metadata_message(payload)
    except DecodeError:
        return None
    piece = getattr(request, "piece", 0)
    if lie is MetadataLie.SILENT:
        return None
    if lie is MetadataLie.REJECT:
        return encode_metadata_message(MetadataReject(piece))
    length = max(0, min(16384, size - piece * 16384))
    return encode_metadata_message(MetadataData(piece, size, bytes(length)))


# ---- hostile DHT nodes ---------------------------------------------------------------


class DHTMode(enum.Enum):
    """How a hostile DHT node answers queries."""

    SILENT = "silent"  # never answers
    WRONG_TID = "wrong-tid"  # a well-formed reply with another transaction id
    OVERSIZED = "oversized"  # a reply far larger than any KRPC datagram


async def serve_hostile_dht_node(
    mode: DHTMode,
    stats: AttackStats,
    *,
    host: str = "127.0.0.1",
    max_datagrams: int = 100_000,
    task_status: trio.TaskStatus[Addr] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Answer (or not) up to `max_datagrams` KRPC queries per `mode`; returns the bound
    address through ``nursery.start``."""
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    with sock:
        await sock.bind((_check(host), 0))
        task_status.started(sock.getsockname())
        for _ in range(max_datagrams):
            data, source = await sock.recvfrom(65536)
            stats.datagrams += 1
            stats.received += len(data)
            reply = _dht_reply(data, mode)
            if reply is not None:
                await sock.sendto(reply, source)
                stats.sent += len(reply)


def _dht_reply(data: bytes, mode: DHTMode) -> bytes | None:
    try:
        query = decode(data)
    except DecodeError:
        return None
    tid = query.get(b"t") if isinstance(query, dict) else None
    if mode is DHTMode.SILENT or not isinstance(tid, bytes):
        return None
    node_id = b"\x42" * 20
    if mode is DHTMode.WRONG_TID:
        wrong = bytes(b ^ 0xFF for b in tid) or b"\xff"
        return encode({b"t": wrong, b"y": b"r", b"r": {b"id": node_id, b"nodes": b""}})
    nodes = bytes(26 * 2000)  # 52 kB of compact node info
    return encode({b"t": tid, b"y": b"r", b"r": {b"id": node_id, b"nodes": nodes}})
