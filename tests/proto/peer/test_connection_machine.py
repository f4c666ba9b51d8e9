"""Stateful test: random command sequences on a seeder/leecher pair keep both engines'
request bookkeeping equal to a simple model, with and without BEP 6."""

from __future__ import annotations

import random

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from shoal.ids import InfoHash, PeerId
from shoal.peer import events as ev
from shoal.peer.config import ConnectionConfig
from shoal.peer.connection import PeerConnection
from shoal.peer.handshake import ReservedBits
from shoal.swarm import Bitfield

N = 2
PIECE = 32 * 1024
BLOCKS = [(i, b, 16 * 1024) for i in range(N) for b in (0, 16 * 1024)]
INFO_HASH = InfoHash(bytes(20))


def content(block: tuple[int, int, int]) -> bytes:
    return bytes([block[0] * 2 + block[1] // 16384 + 1]) * block[2]


class PairMachine(RuleBasedStateMachine):
    """`a` seeds, `b` leeches; every rule ends with all bytes delivered and events handled."""

    @initialize(fast=st.booleans())
    def start(self, fast: bool) -> None:
        bits = ReservedBits.EXTENSION_PROTOCOL | (ReservedBits.FAST if fast else 0)
        cfg = ConnectionConfig(
            reserved=ReservedBits(bits),
            request_timeout=10.0,
            snub_timeout=1e6,
            keepalive_interval=1e6,
            idle_timeout=1e6,
        )
        common = {"now": 0.0, "config": cfg, "piece_length": PIECE, "total_length": N * PIECE}
        self.fast = fast
        self.now = 0.0
        self.a = PeerConnection(
            INFO_HASH,
            PeerId(b"a" * 20),
            N,
            rng=random.Random(1),
            our_pieces=Bitfield.all(N),
            **common,  # type: ignore[arg-type]
        )
        self.b = PeerConnection(INFO_HASH, PeerId(b"b" * 20), N, rng=random.Random(2), **common)  # type: ignore[arg-type]
        self.a_pending: set[tuple[int, int, int]] = set()  # requests `a` must answer
        self.b_waiting: set[tuple[int, int, int]] = set()  # requests `b` waits for
        self.allowed: set[int] = set()
        self.settle()

    def settle(self) -> None:
        for _ in range(10):
            ab = b"".join(self.a.data_to_send())
            ba = b"".join(self.b.data_to_send())
            if ab:
                self.b.receive_data(ab, self.now)
            if ba:
                self.a.receive_data(ba, self.now)
            self.handle_events()
            if not ab and not ba:
                return
        raise AssertionError("engines kept talking")

    def handle_events(self) -> None:
        for e in iter(self.a.next_event, None):
            match e:
                case ev.BlockRequested(i, b, n):
                    assert (i, b, n) not in self.a_pending
                    self.a_pending.add((i, b, n))
                case ev.RequestCancelled(i, b, n):
                    self.a_pending.remove((i, b, n))
        for e in iter(self.b.next_event, None):
            match e:
                case ev.BlockReceived(i, b, data):
                    self.b_waiting.remove((i, b, len(data)))
                    assert bytes(data) == content((i, b, len(data)))
                case ev.RequestRejected(i, b, n) | ev.RequestTimedOut(i, b, n):
                    self.b_waiting.remove((i, b, n))

    @rule(choke=st.booleans())
    def a_chokes(self, choke: bool) -> None:
        self.a.set_choking(choke)
        if choke:  # the queue is discarded (BEP 6: except allowed-fast pieces)
            self.a_pending = {r for r in self.a_pending if self.fast and r[0] in self.allowed}
        self.settle()
        if choke and not self.fast:
            assert not self.b_waiting, "BEP 3: a choke drops every request"
        if choke and self.fast:
            assert self.b_waiting <= self.a_pending, "BEP 6: rejected unless allowed-fast"

    @rule(index=st.integers(0, N - 1))
    def a_allows_fast(self, index: int) -> None:
        if self.fast:
            self.a.send_allowed_fast(index)
            self.allowed.add(index)
            self.settle()

    @rule(block=st.sampled_from(BLOCKS))
    def b_requests(self, block: tuple[int, int, int]) -> None:
        if self.b.can_request(block[0]) and block not in self.b_waiting:
            self.b.request(*block, self.now)
            self.b_waiting.add(block)
            self.settle()

    @rule(data=st.data())
    def b_cancels(self, data: st.DataObject) -> None:
        if self.b_waiting:
            block = data.draw(st.sampled_from(sorted(self.b_waiting)))
            assert self.b.cancel(*block)
            self.b_waiting.remove(block)
            self.settle()

    @rule(data=st.data(), reject=st.booleans())
    def a_answers(self, data: st.DataObject, reject: bool) -> None:
        if not self.a_pending:
            return
        block = data.draw(st.sampled_from(sorted(self.a_pending)))
        self.a_pending.remove(block)
        if reject and self.fast:
            self.a.send_reject(*block)
        else:
            assert self.a.send_piece(block[0], block[1], content(block))
        self.settle()
        assert block not in self.b_waiting, "answered: received or rejected"

    @rule(dt=st.sampled_from([1.0, 5.0, 11.0]))
    def time_passes(self, dt: float) -> None:
        self.now += dt
        self.a.handle_timer(self.now)
        self.b.handle_timer(self.now)
        self.settle()

    @invariant()
    def bookkeeping_matches_the_model(self) -> None:
        assert set(self.b.outstanding) == self.b_waiting
        assert len(self.a._inbound) == len(self.a_pending)
        assert all(r in self.a._inbound for r in self.a_pending)
        assert self.b.unexpected_blocks == 0
        assert self.b.peer_choking == self.a.am_choking


TestPairMachine = PairMachine.TestCase
# max_examples follows the hypothesis profile (dev 100, ci 200, fuzz: many).
TestPairMachine.settings = settings(stateful_step_count=30, deadline=None)
