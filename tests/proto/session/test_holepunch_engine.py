"""BEP 55 in the pure engine: relay, initiator and target roles, driven byte for byte.

Each remote is a real `PeerConnection` (the far end) wired to one `TorrentEngine`; the
holepunch messages cross the wire encoded, so these tests cover the BEP 10
negotiation (``m`` ids), the codec and the decisions together.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from shoal.errors import DecodeError
from shoal.ids import PeerId
from shoal.peer import events as ev
from shoal.peer.config import ConnectionConfig
from shoal.peer.connection import PeerConnection
from shoal.peer.extension import PexFlags, PexPeer
from shoal.peer.handshake import Handshake, ReservedBits
from shoal.peer.holepunch import (
    UT_HOLEPUNCH,
    HolepunchError,
    HolepunchMessage,
    HolepunchType,
    decode_holepunch,
    encode_holepunch,
)
from shoal.session import commands as cmd
from shoal.session.engine import EngineConfig, TorrentEngine
from shoal.session.holepunch import MAX_TARGETS, RATE_BURST, RATE_REFILL, RENDEZVOUS_BACKOFF
from shoal.swarm.bitfield import Bitfield
from shoal.swarm.peer_pool import PeerSource
from shoal.testing.swarmsim import make_torrent

META = make_torrent(random.Random(1).randbytes(3 * 16384), 16384)
ALL = ReservedBits.DHT | ReservedBits.FAST | ReservedBits.EXTENSION_PROTOCOL
US = PeerId(b"-SH0100-us0000000000")
R, C, E = HolepunchType.RENDEZVOUS, HolepunchType.CONNECT, HolepunchType.ERROR
A_ADDR = ("127.0.0.2", 6881)
B_ADDR = ("127.0.0.3", 6882)
R_ADDR = ("127.0.0.4", 6883)


def engine(peer_id: PeerId = US, *, holepunch: bool = True) -> TorrentEngine:
    e = TorrentEngine(
        META.info_hash,
        peer_id,
        rng=random.Random(0),
        now=0.0,
        config=EngineConfig(holepunch=holepunch),
        metainfo=META,
    )
    e.start_data(META.info, Bitfield(3), bytes([4]) * 3, sequential=False, now=0.0)
    return e


def handshake(peer_id: PeerId) -> Handshake:
    return Handshake(META.info_hash, peer_id, ALL)


class Far:
    """The far end of one connection of engine `e`."""

    def __init__(
        self,
        e: TorrentEngine,
        addr: tuple[str, int],
        peer_id: PeerId,
        *,
        holepunch: bool = True,
        utp: bool = False,
        incoming: bool = False,
    ) -> None:
        self.e = e
        config = ConnectionConfig(enable_holepunch=holepunch)
        self.conn = PeerConnection(
            META.info_hash, peer_id, 3, now=0.0, rng=random.Random(7), config=config
        )
        if not incoming:
            e.peers_found([addr], PeerSource.USER, 0.0)
            e.commands()
        key = e.peer_connected(
            addr, handshake(peer_id), b"", incoming=incoming, encrypted=False,
            dialer_end=addr if incoming else ("127.0.0.1", 5000), now=0.0, utp=utp,
        )  # fmt: skip
        assert key is not None
        self.key = key
        ours = PeerConnection(META.info_hash, e.peer_id, 3, now=0.0, rng=random.Random(2))
        self.conn.receive_data(b"".join(ours.data_to_send())[:68] + self._from_engine(), 0.0)
        e.peer_data(key, b"".join(self.conn.data_to_send())[68:], 0.0)
        self.events()  # the far end's view of the handshakes

    def _from_engine(self) -> bytes:
        return b"".join(self.e.data_to_send(self.key))

    def events(self, now: float = 0.0) -> list[ev.PeerEvent]:
        data = self._from_engine()
        if data:  # (b"" would mean end of stream)
            self.conn.receive_data(data, now)
        return self.conn.drain_events()

    def holepunch(self, now: float = 0.0) -> list[HolepunchMessage]:
        return [x.message for x in self.events(now) if isinstance(x, ev.HolepunchReceived)]

    def send_holepunch(self, msg: HolepunchMessage, now: float = 0.0) -> None:
        self.conn.send_extended(UT_HOLEPUNCH, encode_holepunch(msg))
        self.e.peer_data(self.key, b"".join(self.conn.data_to_send()), now)

    def send_pex(self, added: list[PexPeer], dropped: list[tuple[str, int]] = ()) -> None:  # type: ignore[assignment]
        self.conn.send_pex(added, dropped)
        self.e.peer_data(self.key, b"".join(self.conn.data_to_send()), 0.0)


def pid(name: str) -> PeerId:
    return PeerId(f"-LT2010-{name:<12}".encode()[:20])


# ---- advertising -----------------------------------------------------------------------


def test_ut_holepunch_is_advertised_only_when_enabled() -> None:
    on = Far(engine(), A_ADDR, pid("a"))
    off = Far(engine(holepunch=False), A_ADDR, pid("a"))
    assert on.conn.peer_supports(UT_HOLEPUNCH)
    assert not off.conn.peer_supports(UT_HOLEPUNCH)


def test_pex_flags_peers_that_support_holepunch() -> None:
    e = engine()
    a = Far(e, A_ADDR, pid("a"))
    Far(e, B_ADDR, pid("b"), holepunch=True, utp=True)
    Far(e, R_ADDR, pid("r"), holepunch=False)
    e.handle_timer(e.config.pex_interval + 1.0)
    (pex,) = [x for x in a.events() if isinstance(x, ev.PexReceived)]
    assert {p.addr: p.flags for p in pex.added} == {
        B_ADDR: PexFlags.UTP | PexFlags.HOLEPUNCH,
        R_ADDR: PexFlags.NONE,
    }


# ---- relay -----------------------------------------------------------------------------


def test_relay_introduces_both_sides() -> None:
    e = engine()
    a = Far(e, A_ADDR, pid("a"), utp=True, incoming=True)  # A's uTP source endpoint
    b = Far(e, B_ADDR, pid("b"))
    a.send_holepunch(HolepunchMessage(R, B_ADDR))
    assert a.holepunch() == [HolepunchMessage(C, B_ADDR)]
    assert b.holepunch() == [HolepunchMessage(C, A_ADDR)]
    assert e.holepunch.stats.relayed == 1


def test_relay_tells_the_target_the_listen_address_of_a_tcp_asker() -> None:
    e = engine()
    a = Far(e, ("127.0.0.2", 50000), pid("a"), incoming=True)  # ephemeral TCP port
    b = Far(e, B_ADDR, pid("b"))
    a.conn.set_metadata_size(len(META.info.raw))  # (resends a's BEP 10 handshake)
    e.peers[a.key].listen_addr = ("127.0.0.2", 6881)  # what its BEP 10 ``p`` said
    a.send_holepunch(HolepunchMessage(R, B_ADDR))
    assert b.holepunch() == [HolepunchMessage(C, ("127.0.0.2", 6881))]


@pytest.mark.parametrize(
    ("target", "code"),
    [
        (("127.0.0.9", 1), HolepunchError.NOT_CONNECTED),
        (B_ADDR, HolepunchError.NO_SUPPORT),
        (A_ADDR, HolepunchError.NO_SELF),
        (("127.0.0.9", 0), HolepunchError.NO_SUCH_PEER),
        (("0.0.0.0", 6881), HolepunchError.NO_SUCH_PEER),
    ],
)
def test_relay_errors(target: tuple[str, int], code: HolepunchError) -> None:
    e = engine()
    a = Far(e, A_ADDR, pid("a"))
    b = Far(e, B_ADDR, pid("b"), holepunch=False)
    a.send_holepunch(HolepunchMessage(R, target))
    # BEP 55: the error echoes the rendezvous' endpoint.
    assert a.holepunch() == [HolepunchMessage(E, target, code)]
    assert b.events() == []
    assert e.holepunch.stats.errors_sent == 1


def test_relay_ignores_a_peer_that_did_not_advertise_holepunch() -> None:
    """BEP 55: "the relaying peer MUST ignore any incoming ut_holepunch messages"."""
    e = engine()
    a = Far(e, A_ADDR, pid("a"), holepunch=False)
    b = Far(e, B_ADDR, pid("b"))
    # It knows our id (we advertised ours) but did not advertise its own.
    a.send_holepunch(HolepunchMessage(R, B_ADDR))
    assert b.holepunch() == []
    assert a.holepunch() == []
    assert e.holepunch.stats.dropped == 1
    assert e.peers[a.key].conn.state.name == "OPEN"  # ignored, not a protocol error


def test_relay_rate_limits_each_asker() -> None:
    e = engine()
    a = Far(e, A_ADDR, pid("a"))
    b = Far(e, B_ADDR, pid("b"))
    for _ in range(RATE_BURST + 3):
        a.send_holepunch(HolepunchMessage(R, B_ADDR), now=1.0)
    assert len(b.holepunch(1.0)) == RATE_BURST
    a.send_holepunch(HolepunchMessage(R, B_ADDR), now=1.0 + RATE_REFILL)
    assert len(b.holepunch(1.0 + RATE_REFILL)) == 1


# ---- initiator -------------------------------------------------------------------------


def initiator() -> tuple[TorrentEngine, Far]:
    """Engine connected to relay R, which tells it (PEX) about B, flagged holepunch."""
    e = engine()
    r = Far(e, R_ADDR, pid("r"))
    r.send_pex([PexPeer(B_ADDR, PexFlags.UTP | PexFlags.HOLEPUNCH)])
    assert cmd.Dial(B_ADDR) in e.commands()
    return e, r


def test_failed_dial_asks_the_relay_then_dials_on_connect() -> None:
    e, r = initiator()
    e.dial_failed(B_ADDR, 1.0)
    assert r.holepunch(1.0) == [HolepunchMessage(R, B_ADDR)]
    r.send_holepunch(HolepunchMessage(C, B_ADDR), now=1.1)
    assert cmd.Dial(B_ADDR, utp=True) in e.commands()
    assert B_ADDR in e.holepunch.punching
    # The punch fails too: no second rendezvous (no loop), B is not busy any more.
    e.dial_failed(B_ADDR, 2.0)
    assert r.holepunch(2.0) == []
    assert e.holepunch.stats.punch_failures == 1
    assert B_ADDR not in e.holepunch.punching


def test_one_rendezvous_per_target_per_back_off() -> None:
    e, r = initiator()
    e.dial_failed(B_ADDR, 1.0)
    assert len(r.holepunch(1.0)) == 1
    e.pool.mark_busy(B_ADDR, PeerSource.PEX)
    e.dial_failed(B_ADDR, 5.0)
    assert r.holepunch(5.0) == []
    e.pool.mark_busy(B_ADDR, PeerSource.PEX)
    e.dial_failed(B_ADDR, 1.0 + RENDEZVOUS_BACKOFF)
    assert r.holepunch(1.0 + RENDEZVOUS_BACKOFF) == [HolepunchMessage(R, B_ADDR)]


def test_error_is_recorded_and_backs_off() -> None:
    e, r = initiator()
    e.dial_failed(B_ADDR, 1.0)
    r.holepunch(1.0)
    r.send_holepunch(HolepunchMessage(E, B_ADDR, HolepunchError.NOT_CONNECTED), now=1.5)
    assert e.holepunch.error_count(B_ADDR) == 1
    assert e.holepunch.stats.errors_received == 1
    # This relay said it cannot reach B: it is not asked again.
    e.pool.mark_busy(B_ADDR, PeerSource.PEX)
    e.dial_failed(B_ADDR, 1000.0)
    assert r.holepunch(1000.0) == []


def test_an_unsolicited_error_is_ignored() -> None:
    e, r = initiator()
    r.send_holepunch(HolepunchMessage(E, B_ADDR, HolepunchError.NO_SUPPORT))
    assert e.holepunch.error_count(B_ADDR) == 0


def test_pex_dropped_and_relay_leaving_forget_the_relay() -> None:
    e, r = initiator()
    r.send_pex([], [B_ADDR])
    e.dial_failed(B_ADDR, 1.0)
    assert r.holepunch(1.0) == []
    e2, r2 = initiator()
    e2.close_peer(r2.key, "gone", 0.5)
    e2.dial_failed(B_ADDR, 1.0)
    assert e2.holepunch.stats.rendezvous_sent == 0


def test_connect_is_ignored_when_already_connected_or_banned() -> None:
    e, r = initiator()
    e.dial_failed(B_ADDR, 1.0)
    Far(e, B_ADDR, pid("b"), incoming=True)
    r.send_holepunch(HolepunchMessage(C, B_ADDR))
    other = ("127.0.0.7", 7)
    e.ban(other, "test", 0.0)
    r.send_holepunch(HolepunchMessage(C, other))
    assert not [c for c in e.commands() if isinstance(c, cmd.Dial)]
    assert e.holepunch.stats.punches == 0


def test_connect_from_a_peer_that_did_not_advertise_is_ignored() -> None:
    e = engine()
    r = Far(e, R_ADDR, pid("r"), holepunch=False)
    r.send_holepunch(HolepunchMessage(C, B_ADDR))
    assert not [c for c in e.commands() if isinstance(c, cmd.Dial)]
    assert e.holepunch.stats.dropped == 1


def test_disabled_engine_ignores_holepunch_messages() -> None:
    e = engine(holepunch=False)
    r = Far(e, R_ADDR, pid("r"), holepunch=False)
    r.conn._ext.ids[UT_HOLEPUNCH] = 3  # the far end uses id 3 though we never offered it
    r.send_holepunch(HolepunchMessage(C, B_ADDR))
    assert not [c for c in e.commands() if isinstance(c, cmd.Dial)]
    assert R_ADDR in [p.addr for p in e.peers.values()]  # and no protocol error


# ---- simultaneous open -----------------------------------------------------------------


def punching(me: PeerId, relay_addr: tuple[str, int], target: tuple[str, int]) -> TorrentEngine:
    e = engine(me)
    relay = Far(e, relay_addr, pid("relay"))
    relay.send_holepunch(HolepunchMessage(C, target))
    assert cmd.Dial(target, utp=True) in e.commands()
    return e


@pytest.mark.parametrize("a_smaller", [True, False])
@pytest.mark.parametrize("a_finishes_first", [True, False])
def test_simultaneous_open_keeps_exactly_one_connection(
    a_smaller: bool, a_finishes_first: bool
) -> None:
    """Both ends got ``connect`` and dialled: each sees the other's SYN arrive while its
    own dial is out. Both must keep the same one of the two connections."""
    pa, pb = (pid("aaa"), pid("bbb")) if a_smaller else (pid("bbb"), pid("aaa"))
    ea = punching(pa, R_ADDR, B_ADDR)
    eb = punching(pb, R_ADDR, A_ADDR)

    def incoming(e: TorrentEngine, addr: tuple[str, int], remote: PeerId) -> int | None:
        # The listener asks would_accept before answering the handshake.
        if not e.would_accept(bytes(remote), addr, addr):
            return None
        return e.peer_connected(
            addr, handshake(remote), b"", incoming=True, encrypted=False,
            dialer_end=addr, now=1.0, utp=True,
        )  # fmt: skip

    def outgoing(e: TorrentEngine, addr: tuple[str, int], remote: PeerId, ok: bool) -> int | None:
        if not ok:
            e.dial_failed(addr, 1.0)
            return None
        return e.peer_connected(
            addr, handshake(remote), b"", incoming=False, encrypted=False,
            dialer_end=("127.0.0.1", 1), now=1.0, utp=True,
        )  # fmt: skip

    # B's SYN reaches A and A's reaches B: each end decides on the inbound one.
    a_in = incoming(ea, B_ADDR, pb)
    b_in = incoming(eb, A_ADDR, pa)
    # Decided at the handshake already (no connection is set up only to be closed):
    # each end keeps the inbound one iff the other end has the smaller id.
    assert (a_in is not None, b_in is not None) == (not a_smaller, a_smaller)
    # A dial completes only if the other end kept it as its inbound connection.
    if a_finishes_first:
        a_out = outgoing(ea, B_ADDR, pb, b_in is not None)
        b_out = outgoing(eb, A_ADDR, pa, a_in is not None)
    else:
        b_out = outgoing(eb, A_ADDR, pa, a_in is not None)
        a_out = outgoing(ea, B_ADDR, pb, b_in is not None)
    a_to_b = a_out is not None and b_in is not None
    b_to_a = b_out is not None and a_in is not None
    assert a_to_b != b_to_a  # exactly one connection
    assert a_to_b == a_smaller  # the one opened by the smaller peer id
    for e in (ea, eb):
        assert len([p for p in e.peers.values() if p.addr != R_ADDR]) == 1
        assert not e.holepunch.punching
        assert e.holepunch.stats.rendezvous_sent == 0  # the lost dial asked nobody


def test_syn_before_connect_is_a_plain_inbound_and_the_connect_is_ignored() -> None:
    """The other end's SYN arrives before the relay's connect reached us."""
    e = engine(pid("bbb"))
    relay = Far(e, R_ADDR, pid("relay"))
    key = e.peer_connected(
        A_ADDR, handshake(pid("aaa")), b"", incoming=True, encrypted=False,
        dialer_end=A_ADDR, now=0.0, utp=True,
    )  # fmt: skip
    assert key is not None
    relay.send_holepunch(HolepunchMessage(C, A_ADDR))
    assert not [c for c in e.commands() if isinstance(c, cmd.Dial)]


# ---- properties ------------------------------------------------------------------------

ADDRS = [A_ADDR, B_ADDR, R_ADDR, ("127.0.0.9", 9), ("127.0.0.9", 0), ("0.0.0.0", 1), ("::1", 5)]


@st.composite
def scripted(draw: st.DrawFn) -> tuple[int, HolepunchMessage, float]:
    kind = draw(st.sampled_from(HolepunchType))
    error = draw(st.sampled_from(HolepunchError)) if kind is E else 0
    msg = HolepunchMessage(kind, draw(st.sampled_from(ADDRS)), int(error))
    return draw(st.integers(0, 2)), msg, draw(st.floats(0.0, 0.5))


# A burst past the bucket: only RATE_BURST of these may be relayed.
BURST = [(0, HolepunchMessage(R, B_ADDR), 0.0)] * (RATE_BURST + 5)


@given(st.lists(scripted(), max_size=40))
@example(BURST)
def test_what_peers_can_make_us_do_is_bounded(
    script: list[tuple[int, HolepunchMessage, float]],
) -> None:
    """Whatever holepunch messages three peers send: nothing but the documented
    behaviour, every dial is a uTP dial to an address a ``connect`` named, and the
    messages we send and the dials we start stay within the per-peer token buckets."""
    e = engine()
    fars = [Far(e, addr, pid(str(i)), utp=i == 1) for i, addr in enumerate(ADDRS[:3])]
    now, named, dials, sent = 0.0, set(), 0, 0
    spends = [0, 0, 0]  # rendezvous and connects each peer sent (each may cost a token)
    for who, msg, dt in script:
        now += dt
        if msg.msg_type is C:
            named.add(msg.addr)
        if msg.msg_type is not E:
            spends[who] += 1
        fars[who].send_holepunch(msg, now)
        for command in e.commands():
            if isinstance(command, cmd.Dial):
                assert command.utp
                assert command.addr in named
                dials += 1
        sent += sum(len(f.holepunch(now)) for f in fars)
    # Tokens a peer can have spent; a relayed rendezvous sends two messages, an error
    # one, an accepted connect starts one dial.
    tokens = sum(min(n, RATE_BURST + now / RATE_REFILL) for n in spends)
    assert dials <= tokens
    assert sent <= 2 * tokens
    assert len(e.holepunch.punching) <= dials
    assert len(e.peers) == len(fars)  # well-formed messages never cost a connection


@given(st.binary(max_size=30))
def test_a_malformed_payload_closes_only_that_peer(payload: bytes) -> None:
    e = engine()
    a = Far(e, A_ADDR, pid("a"))
    b = Far(e, B_ADDR, pid("b"))
    a.conn.send_extended(UT_HOLEPUNCH, payload)
    e.peer_data(a.key, b"".join(a.conn.data_to_send()), 0.0)
    try:
        decode_holepunch(payload)
    except DecodeError:
        assert a.key not in e.peers
        (closed,) = [c for c in e.commands() if isinstance(c, cmd.ClosePeer)]
        assert "ut_holepunch" in closed.reason
    else:
        assert a.key in e.peers
    assert b.key in e.peers


def test_a_connect_naming_ourselves_leaves_nothing_behind() -> None:
    e = engine()
    r = Far(e, R_ADDR, pid("r"))
    own = ("127.0.0.1", 6881)
    r.send_holepunch(HolepunchMessage(C, own))
    assert cmd.Dial(own, utp=True) in e.commands()
    e.dial_failed(own, 1.0, self_connection=True)  # the dialer refused our own address
    assert not e.holepunch.punching
    assert e.pool.is_banned(own)


def test_back_off_records_stay_bounded() -> None:
    e = engine()
    r = Far(e, R_ADDR, pid("r"))
    hp = e.holepunch
    for i in range(MAX_TARGETS + 50):
        target = (f"127.1.{i // 250}.{i % 250 + 1}", 6881)
        hp.learn(e.peers[r.key], [PexPeer(target, PexFlags.HOLEPUNCH)])
        assert hp.rendezvous_for(target, e.peers, float(i)) is e.peers[r.key]
        hp.unlearn(r.key, [target])
    assert len(hp._next_try) <= MAX_TARGETS
    assert len(hp._asked) <= MAX_TARGETS
    assert len(hp._relays) == 0


def test_relay_over_ipv6() -> None:
    e = engine()
    a6, b6 = ("::1", 7001), ("::1", 7002)
    a = Far(e, a6, pid("a"), utp=True, incoming=True)
    b = Far(e, b6, pid("b"))
    a.send_holepunch(HolepunchMessage(R, b6))
    assert a.holepunch() == [HolepunchMessage(C, b6)]
    assert b.holepunch() == [HolepunchMessage(C, a6)]
