"""MetadataAssembler: BEP 9 piece bookkeeping, size policy, SHA-1 check and blame."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.bencoding import encode
from shoal.errors import LocalProtocolError, RemoteProtocolError
from shoal.ids import InfoHash, PeerId
from shoal.metainfo import parse_info
from shoal.peer import events as ev
from shoal.peer.connection import PeerConnection
from shoal.peer.extension import METADATA_PIECE_SIZE
from shoal.swarm.metadata import MetadataAssembler, MetadataHashMismatch, MetadataVerified

PIECE = METADATA_PIECE_SIZE


def info_dict(num_pieces: int) -> bytes:
    """A valid bencoded info dict; 20 bytes of hash per piece sets its size."""
    return encode(
        {
            b"length": num_pieces * 16384,
            b"name": b"test.bin",
            b"piece length": 16384,
            b"pieces": bytes(random.Random(num_pieces).randbytes(20 * num_pieces)),
        }
    )


def chunks(raw: bytes) -> list[bytes]:
    return [raw[i : i + PIECE] for i in range(0, len(raw), PIECE)]


def assembler(raw: bytes, **kw: float) -> MetadataAssembler[str]:
    return MetadataAssembler(hashlib.sha1(raw).digest(), **kw)  # type: ignore[arg-type]


RAW = info_dict(2000)  # 3 pieces of metadata (~40 KB)


def test_single_peer_fetches_everything_and_it_parses() -> None:
    asm = assembler(RAW)
    assert asm.set_size("a", len(RAW))
    assert asm.missing == [0, 1, 2]
    results = []
    while (piece := asm.next_request("a", 0.0)) is not None:
        results.append(asm.piece_received("a", piece, chunks(RAW)[piece]))
    assert results[:-1] == [None] * (len(results) - 1)
    assert results[-1] == MetadataVerified(RAW)
    assert asm.raw() == RAW
    info = parse_info(asm.raw())
    assert info.name == "test.bin"
    assert info.info_hash == hashlib.sha1(RAW).digest()
    assert asm.next_request("a", 1.0) is None, "nothing more to fetch"


def test_requests_are_spread_over_peers_without_duplicates() -> None:
    raw = info_dict(5000)  # 7 pieces
    asm = assembler(raw)
    for peer in "abc":
        asm.set_size(peer, len(raw))
    asked = {peer: [asm.next_request(peer, 0.0) for _ in range(3)] for peer in "abc"}
    assert asked == {"a": [0, 1, None], "b": [2, 3, None], "c": [4, 5, None]}
    # Piece 6 is the last free one; after it, an idle peer duplicates the least-asked.
    asm.piece_received("a", 0, chunks(raw)[0])
    assert asm.next_request("a", 0.0) == 6
    asm.piece_received("a", 1, chunks(raw)[1])
    assert asm.next_request("a", 0.0) == 2, "endgame: duplicate the lowest in-flight piece"


def test_duplicate_answered_elsewhere_is_unsolicited() -> None:
    raw = info_dict(10)  # 1 piece
    asm = assembler(raw)
    asm.set_size("a", len(raw))
    asm.set_size("b", len(raw))
    assert asm.next_request("a", 0.0) == 0
    assert asm.next_request("b", 0.0) == 0
    assert asm.piece_received("b", 0, raw) == MetadataVerified(raw)
    assert asm.piece_received("a", 0, raw) is None
    assert asm.unsolicited == 1


def test_rejected_piece_is_asked_of_someone_else() -> None:
    asm = assembler(RAW, max_requests_per_peer=1)
    asm.set_size("a", len(RAW))
    asm.set_size("b", len(RAW))
    assert asm.next_request("a", 0.0) == 0
    asm.piece_rejected("a", 0)
    assert asm.next_request("a", 0.0) == 1, "not piece 0 again"
    assert asm.next_request("b", 0.0) == 0


def test_unanswered_requests_time_out() -> None:
    asm = assembler(RAW, request_timeout=5.0)
    asm.set_size("a", len(RAW))
    assert asm.get_timer() is None
    asm.next_request("a", 0.0)
    asm.next_request("a", 1.0)
    assert asm.get_timer() == 5.0
    assert asm.next_request("a", 2.0) is None, "two in flight per peer"
    assert asm.handle_timer(4.9) == []
    assert asm.handle_timer(5.0) == [("a", 0)]
    assert asm.get_timer() == 6.0
    assert asm.next_request("a", 5.0) == 0
    assert asm.piece_received("a", 1, chunks(RAW)[1]) is None  # still in flight: accepted
    assert asm.missing == [0, 2]


def test_corrupt_single_source_blames_exactly_that_peer_then_refetch_succeeds() -> None:
    asm = assembler(RAW, max_requests_per_peer=3)
    asm.set_size("liar", len(RAW))
    asm.set_size("honest", len(RAW))
    outcome = None
    while (piece := asm.next_request("liar", 0.0)) is not None:
        data = chunks(RAW)[piece]
        if piece == 1:
            data = bytes(len(data))
        outcome = asm.piece_received("liar", piece, data)
    assert outcome == MetadataHashMismatch(frozenset({"liar"}))
    assert asm.missing == [0, 1, 2], "everything is fetched again"
    assert asm.next_request("liar", 1.0) is None, "the blamed peer is not asked again"
    assert not asm.set_size("liar", len(RAW))
    while (piece := asm.next_request("honest", 1.0)) is not None:
        outcome = asm.piece_received("honest", piece, chunks(RAW)[piece])
    assert outcome == MetadataVerified(RAW)


def test_corruption_with_several_sources_goes_solo_and_then_names_the_culprit() -> None:
    asm = assembler(RAW, max_requests_per_peer=1)
    for peer in ("a", "b", "c", "d"):
        asm.set_size(peer, len(RAW))
    pieces = {peer: asm.next_request(peer, 0.0) for peer in "abc"}
    assert pieces == {"a": 0, "b": 1, "c": 2}
    outcome = None
    for peer, piece in pieces.items():
        assert piece is not None
        data = chunks(RAW)[piece] if peer != "b" else b"\xff" * PIECE
        outcome = asm.piece_received(peer, piece, data)
    # One SHA-1 cannot say who lied: nobody is banned, everybody assembles alone.
    assert outcome == MetadataHashMismatch(frozenset(), suspects=frozenset("abc"))
    assert asm.banned == set()
    outcomes = {}
    for _ in range(3):
        for peer in "abcd":
            piece = asm.next_request(peer, 1.0)
            assert piece is not None
            data = chunks(RAW)[piece] if peer != "b" else b"\xff" * PIECE
            outcomes[peer] = asm.piece_received(peer, piece, data)
            if asm.result is not None:
                break
        if asm.result is not None:
            break
    assert outcomes["a"] == MetadataVerified(RAW), "a private copy from a finishes first"
    assert asm.raw() == RAW


def test_a_lying_multi_source_peer_is_banned_once_alone() -> None:
    asm = assembler(RAW, max_requests_per_peer=3, max_groups=1)
    for peer in ("liar", "honest"):
        asm.set_size(peer, len(RAW))
    assert asm.next_request("liar", 0.0) == 0
    asm.piece_received("liar", 0, b"\x00" * PIECE)
    for piece in (1, 2):
        assert asm.next_request("honest", 0.0) == piece
        outcome = asm.piece_received("honest", piece, chunks(RAW)[piece])
    assert outcome == MetadataHashMismatch(frozenset(), suspects=frozenset({"liar", "honest"}))
    # Solo mode with room for one group: the liar's own copy goes first and fails.
    while (piece := asm.next_request("liar", 1.0)) is not None:
        outcome = asm.piece_received("liar", piece, bytes(len(chunks(RAW)[piece])))
    assert outcome == MetadataHashMismatch(frozenset({"liar"}))
    assert asm.take_banned() == ["liar"]
    assert asm.take_banned() == []
    while (piece := asm.next_request("honest", 1.0)) is not None:
        outcome = asm.piece_received("honest", piece, chunks(RAW)[piece])
    assert outcome == MetadataVerified(RAW)


def test_size_policy() -> None:
    asm = assembler(RAW, max_size=100_000)
    assert not asm.set_size("huge", 100_001)
    assert not asm.set_size("zero", 0)
    assert asm.missing == [], "no size adopted"
    # A liar announces first; the honest peers are asked all the same.
    assert asm.set_size("liar", 20_000)
    assert asm.set_size("h1", len(RAW))
    assert asm.set_size("h2", len(RAW))
    assert asm.size == len(RAW), "the best supported size leads"
    assert asm.next_request("h1", 0.0) == 0
    outcome = None
    while (piece := asm.next_request("liar", 0.0)) is not None:
        outcome = asm.piece_received("liar", piece, bytes(min(PIECE, 20_000 - piece * PIECE)))
    assert outcome == MetadataHashMismatch(frozenset({"liar"}))
    assert asm.take_banned() == ["liar"]
    assert asm.piece_received("h1", 0, chunks(RAW)[0]) is None
    for _ in range(3):
        for peer in ("h1", "h2"):
            piece = asm.next_request(peer, 0.0)
            if piece is not None:
                outcome = asm.piece_received(peer, piece, chunks(RAW)[piece])
    assert outcome == MetadataVerified(RAW)


@pytest.mark.parametrize("behaviour", ["silent", "rejects"])
def test_a_wrong_size_liar_does_not_delay_an_honest_peer(behaviour: str) -> None:
    # The "stop a magnet download": a liar announces a wrong metadata_size
    # first and then stays silent or rejects. The honest peer is asked at once, and the
    # liar loses its slot after max_strikes requests.
    asm = assembler(RAW, request_timeout=5.0)
    assert asm.set_size("liar", 3 * PIECE)
    lies = [asm.next_request("liar", 0.0), asm.next_request("liar", 0.0)]
    assert lies == [0, 1]
    assert asm.set_size("honest", len(RAW))
    outcome = None
    now = 0.5
    while (piece := asm.next_request("honest", now)) is not None:
        outcome = asm.piece_received("honest", piece, chunks(RAW)[piece])
    assert outcome == MetadataVerified(RAW), "done at t=0.5 whatever the liar does"
    # And when nobody honest is around, the liar is dropped within a few timeouts.
    asm = assembler(RAW, request_timeout=5.0)
    asm.set_size("liar", 3 * PIECE)
    lies = [asm.next_request("liar", 0.0), asm.next_request("liar", 0.0)]
    if behaviour == "rejects":
        for piece in lies:
            assert piece is not None
            asm.piece_rejected("liar", piece)
    else:
        timer = asm.get_timer()
        assert timer == 5.0
        asm.handle_timer(timer)
    assert asm.take_banned() == ["liar"]
    assert not asm.set_size("liar", 3 * PIECE), "banned for good"
    assert asm.size is None


def test_a_peer_that_delivers_is_not_banned_for_one_slow_piece() -> None:
    asm = assembler(RAW, request_timeout=5.0)
    asm.set_size("a", len(RAW))
    assert asm.next_request("a", 0.0) == 0
    assert asm.piece_received("a", 0, chunks(RAW)[0]) is None
    assert asm.next_request("a", 0.0) == 1
    assert asm.next_request("a", 0.0) == 2
    asm.handle_timer(5.0)  # two strikes, one piece delivered
    assert asm.take_banned() == ["a"]
    asm = assembler(RAW, request_timeout=5.0, max_strikes=3)
    asm.set_size("a", len(RAW))
    asm.next_request("a", 0.0)
    asm.handle_timer(5.0)
    assert asm.take_banned() == []
    assert asm.next_request("a", 5.0) == 0, "a timed-out piece may be asked again"


def test_claims_beyond_max_groups_are_parked_and_hold_no_bytes() -> None:
    asm = assembler(RAW, max_groups=2)
    sizes = {"x": 2 * PIECE + 1, "y": 2 * PIECE + 2, "z": 2 * PIECE + 3}
    assert [asm.set_size(p, n) for p, n in sizes.items()] == [True, True, False]
    assert asm.next_request("z", 0.0) is None, "parked: not asked, nothing buffered"
    asm.remove_peer("x")
    assert asm.next_request("z", 0.0) == 0, "a slot freed up"


def test_wrong_piece_length_is_a_remote_error() -> None:
    asm = assembler(RAW)
    asm.set_size("a", len(RAW))
    asm.next_request("a", 0.0)
    with pytest.raises(RemoteProtocolError):
        asm.piece_received("a", 0, b"short")


def test_removed_peer_frees_its_requests() -> None:
    asm = assembler(RAW, max_requests_per_peer=3)
    asm.set_size("a", len(RAW))
    asm.set_size("b", len(RAW))
    assert [asm.next_request("a", 0.0) for _ in range(3)] == [0, 1, 2]
    asm.remove_peer("a")
    assert asm.next_request("b", 0.0) == 0
    assert asm.next_request("a", 0.0) is None


def test_when_every_announcer_is_blamed_the_next_announcer_sets_the_size() -> None:
    raw = info_dict(10)  # one piece
    asm = assembler(raw)
    asm.set_size("liar", len(raw))
    assert asm.next_request("liar", 0.0) == 0
    assert asm.piece_received("liar", 0, bytes(len(raw))) == MetadataHashMismatch(
        frozenset({"liar"})
    )
    assert asm.size is None, "no unblamed peer vouches for any size"
    assert asm.set_size("late", len(raw))
    assert asm.next_request("late", 1.0) == 0
    assert asm.piece_received("late", 0, raw) == MetadataVerified(raw)


@pytest.mark.parametrize(
    "kwargs", [{"info_hash": b"short"}, {"max_size": 0}, {"max_requests_per_peer": 0}]
)
def test_constructor_checks_its_arguments(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"info_hash": bytes(20)} | kwargs
    with pytest.raises(ValueError):
        MetadataAssembler(**args)  # type: ignore[arg-type]


def test_raw_before_completion_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        assembler(RAW).raw()


def finish(
    asm: MetadataAssembler[str], raw: bytes, peers: list[str], now: float
) -> MetadataVerified | MetadataHashMismatch[str] | None:
    """Reconnect every peer (clearing its rejections) and let them serve everything."""
    for peer in peers:
        asm.remove_peer(peer)
        asm.set_size(peer, len(raw))
    for _ in range(len(chunks(raw)) + 1):
        for peer in peers:
            piece = asm.next_request(peer, now)
            if piece is not None and (done := asm.piece_received(peer, piece, chunks(raw)[piece])):
                return done
    return None


@given(
    st.integers(1, 5000).map(info_dict),
    st.integers(1, 4),
    st.integers(1, 3),
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 99), st.integers(0, 99)), max_size=120),
)
def test_any_interleaving_of_honest_peers_completes(
    raw: bytes, num_peers: int, per_peer: int, script: list[tuple[int, int, int]]
) -> None:
    """Peers request, answer in any order, reject and time out; then all serve.

    Strikes are switched off (tested above): this is about the piece bookkeeping.
    """
    asm = assembler(raw, request_timeout=3.0, max_requests_per_peer=per_peer, max_strikes=10**6)
    peers = [f"p{i}" for i in range(num_peers)]
    for peer in peers:
        asm.set_size(peer, len(raw))
    inflight: dict[str, list[int]] = {p: [] for p in peers}
    now = 0.0
    outcome = None
    for who, action, pick in script:
        peer = peers[who % num_peers]
        mine = inflight[peer]
        if action < 45:
            piece = asm.next_request(peer, now)
            if piece is not None:
                mine.append(piece)
        elif action < 90 and mine:
            piece = mine.pop(pick % len(mine))
            outcome = asm.piece_received(peer, piece, chunks(raw)[piece])
            if outcome is not None:
                break
        elif action < 95:
            now += 1.0
            for p, piece in asm.handle_timer(now):
                inflight[p].remove(piece)  # a late answer would be ignored; drop it
        elif mine:
            asm.piece_rejected(peer, mine.pop(pick % len(mine)))
    if outcome is None:
        outcome = finish(asm, raw, peers, now)
    assert outcome == MetadataVerified(raw)
    assert asm.raw() == raw


@given(
    st.sampled_from(["silent", "rejects", "garbage", "short"]),
    st.integers(1, 3 * PIECE),
    st.booleans(),
    st.integers(1, 3),
)
def test_no_liar_delays_an_honest_peer(
    behaviour: str, claimed: int, same_size: bool, liars: int
) -> None:
    """Liars announce first and answer each request in their way; one honest peer
    answers at once. The metadata is verified within a few rounds of 0.1 s, never
    waiting on a liar's timeout, and the honest peer is never banned."""
    asm = assembler(RAW, request_timeout=10.0)
    names = [f"liar{i}" for i in range(liars)]
    for name in names:
        asm.set_size(name, len(RAW) if same_size else claimed)
    asm.set_size("honest", len(RAW))
    now = 0.0
    for _ in range(40):  # 4 s of virtual time
        for name in names:
            while (piece := asm.next_request(name, now)) is not None:
                size = asm._announced[name]
                length = min(PIECE, size - piece * PIECE)
                if behaviour == "rejects":
                    asm.piece_rejected(name, piece)
                elif behaviour == "garbage":
                    asm.piece_received(name, piece, b"\x00" * length)
                elif behaviour == "short":
                    with pytest.raises(RemoteProtocolError):
                        asm.piece_received(name, piece, b"\x00" * (length - 1 or 2))
                    asm.remove_peer(name)  # the engine drops it
                if behaviour == "silent":
                    break
        while (piece := asm.next_request("honest", now)) is not None:
            asm.piece_received("honest", piece, chunks(RAW)[piece])
        if asm.result is not None:
            break
        now += 0.1
        asm.handle_timer(now)
    assert asm.result == RAW, f"not verified after {now:.1f} s"
    assert "honest" not in asm.banned


# ---- over the wire ----------------------------------------------------------------------


def test_metadata_exchange_between_two_engines() -> None:
    info_hash = InfoHash(hashlib.sha1(RAW).digest())
    rng = random.Random(0)
    seed = PeerConnection(info_hash, PeerId(b"S" * 20), 1, now=0, rng=rng, metadata_size=len(RAW))
    leech = PeerConnection(info_hash, PeerId(b"L" * 20), None, now=0, rng=rng)
    asm: MetadataAssembler[str] = MetadataAssembler(info_hash)
    rejected: set[int] = set()

    def pump() -> None:
        for _ in range(10):
            moved = False
            for src, dst in ((seed, leech), (leech, seed)):
                data = b"".join(src.data_to_send())
                if data:
                    dst.receive_data(data, 0.0)
                    moved = True
            for e in iter(seed.next_event, None):
                if isinstance(e, ev.MetadataRequested):
                    if e.piece == 1 and not rejected:
                        rejected.add(1)
                        seed.send_metadata_reject(1)  # first time only
                    else:
                        seed.send_metadata_data(e.piece, len(RAW), chunks(RAW)[e.piece])
            if not moved:
                return

    pump()
    for e in iter(leech.next_event, None):
        if isinstance(e, ev.ExtendedHandshakeReceived):
            assert e.handshake.metadata_size == len(RAW)
            assert asm.set_size("seed", len(RAW))
    assert leech.peer_metadata_size == len(RAW)
    outcome = None
    for _ in range(6):
        while (piece := asm.next_request("seed", 0.0)) is not None:
            leech.send_metadata_request(piece)
        pump()
        for e in iter(leech.next_event, None):
            if isinstance(e, ev.MetadataPieceReceived):
                outcome = asm.piece_received("seed", e.piece, e.data) or outcome
            elif isinstance(e, ev.MetadataRejected):
                asm.piece_rejected("seed", e.piece)
                asm.remove_peer("seed")  # a real driver would ask again later
                asm.set_size("seed", len(RAW))
    assert outcome == MetadataVerified(RAW)
    info = parse_info(asm.raw())
    leech.set_num_pieces(info.num_pieces)
    assert leech.num_pieces == 2000


def test_peers_can_leave_after_verification() -> None:
    asm = assembler(RAW)
    for peer in "ab":
        asm.set_size(peer, len(RAW))
    while (piece := asm.next_request("a", 0.0)) is not None:
        asm.piece_received("a", piece, chunks(RAW)[piece])
    assert asm.result == RAW
    asm.remove_peer("a")
    asm.remove_peer("b")
    assert not asm.set_size("c", len(RAW)), "nothing left to fetch"
