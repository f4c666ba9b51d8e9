"""MetadataFetch: the pure BEP 9 driver over real PeerConnection engines."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st

from shoal.bencoding import encode
from shoal.ids import InfoHash, PeerId
from shoal.peer import events as ev
from shoal.peer.connection import PeerConnection
from shoal.peer.extension import METADATA_PIECE_SIZE
from shoal.session.metadata_fetch import (
    MetadataBadHash,
    MetadataDone,
    MetadataFetch,
    MetadataInvalid,
)

RAW = encode(
    {
        b"length": 3000 * 16384,
        b"name": b"x.bin",
        b"piece length": 16384,
        b"pieces": random.Random(1).randbytes(20 * 3000),
    }
)
INFO_HASH = InfoHash(hashlib.sha1(RAW).digest())


@dataclass(eq=False)
class Peer:
    """A leecher-side engine talking to a seed-side engine (the 'remote')."""

    addr: tuple[str, int]
    conn: PeerConnection
    remote: PeerConnection
    raw: bytes
    requests: list[int] = field(default_factory=list)

    def pump(self) -> list[ev.PeerEvent]:
        """Move bytes both ways; the remote answers requests; our events returned."""
        out: list[ev.PeerEvent] = []
        for _ in range(20):
            moved = False
            for src, dst in ((self.conn, self.remote), (self.remote, self.conn)):
                data = b"".join(src.data_to_send())
                if data:
                    dst.receive_data(data, 0.0)
                    moved = True
            for e in iter(self.remote.next_event, None):
                if isinstance(e, ev.MetadataRequested):
                    self.requests.append(e.piece)
                    chunk = self.raw[e.piece * METADATA_PIECE_SIZE :][:METADATA_PIECE_SIZE]
                    self.remote.send_metadata_data(e.piece, len(self.raw), chunk)
            out += iter(self.conn.next_event, None)
            if not moved:
                return out
        return out


def make_peer(n: int, raw: bytes = RAW, info_hash: InfoHash = INFO_HASH) -> Peer:
    rng = random.Random(n)
    ours = PeerConnection(info_hash, PeerId(b"L" * 20), None, now=0, rng=rng)
    theirs = PeerConnection(
        info_hash, PeerId(bytes([n + 1]) * 20), 1, now=0, rng=rng, metadata_size=len(raw)
    )
    peer = Peer(("127.0.0.1", 6000 + n), ours, theirs, raw)
    peer.pump()
    return peer


def run(fetch: MetadataFetch[Peer], peers: list[Peer], order: list[int]) -> object:
    outcome: object = None
    touched = fetch.request_more(peers, 0.0)
    assert set(touched) <= set(peers)
    for i in order * 4:
        peer = peers[i % len(peers)]
        for e in peer.pump():
            if isinstance(e, ev.MetadataPieceReceived):
                outcome = fetch.piece_received(peer, e.piece, e.data) or outcome
        fetch.request_more(peers, 0.0)
        if outcome is not None:
            return outcome
    return outcome


@given(n=st.integers(1, 4), order=st.lists(st.integers(0, 3), min_size=4, max_size=12))
def test_honest_peers_complete_and_every_request_is_for_a_real_piece(
    n: int, order: list[int]
) -> None:
    peers = [make_peer(i) for i in range(n)]
    fetch: MetadataFetch[Peer] = MetadataFetch(bytes(INFO_HASH))
    assert fetch.peer_count(peers) == n
    outcome = run(fetch, peers, order + list(range(n)) * 3)
    assert isinstance(outcome, MetadataDone)
    assert outcome.metainfo.info.raw == RAW
    assert fetch.done
    assert fetch.get_timer() is None
    pieces = -(-len(RAW) // METADATA_PIECE_SIZE)
    assert all(0 <= r < pieces for p in peers for r in p.requests)


def test_a_lying_peer_is_blamed() -> None:
    bad = bytearray(RAW)
    bad[5] ^= 1
    peer = make_peer(0, bytes(bad))
    fetch: MetadataFetch[Peer] = MetadataFetch(bytes(INFO_HASH))
    outcome = run(fetch, [peer], [0] * 6)
    assert outcome == MetadataBadHash(frozenset({peer}))


def test_bytes_that_hash_but_do_not_parse_are_invalid() -> None:
    raw = encode({b"name": b"no pieces"})
    info_hash = InfoHash(hashlib.sha1(raw).digest())
    peer = make_peer(0, raw, info_hash)
    fetch: MetadataFetch[Peer] = MetadataFetch(bytes(info_hash))
    outcome = run(fetch, [peer], [0] * 3)
    assert isinstance(outcome, MetadataInvalid)


def test_unanswered_requests_are_freed_by_the_timer() -> None:
    silent, other = make_peer(0), make_peer(1)
    fetch: MetadataFetch[Peer] = MetadataFetch(bytes(INFO_HASH), request_timeout=5.0)
    assert fetch.request_more([silent], 100.0) == [silent]
    assert fetch.get_timer() == 105.0
    assert fetch.request_more([silent], 101.0) == []  # its two slots are busy
    fetch.handle_timer(104.0)
    assert fetch.request_more([silent], 104.0) == []
    fetch.handle_timer(105.0)
    # Both of its requests timed out with nothing delivered: two strikes, so the
    # assembler gives up on it (the driver disconnects it) and the pieces go elsewhere.
    assert fetch.asm.take_banned() == [silent]
    assert fetch.request_more([silent, other], 105.0) == [other]
    fetch.peer_left(other)
    fetch.peer_left(silent)
    assert fetch.get_timer() is None
