"""TorrentEngine unit behaviour: handover, redials, client names, reasons, events.

Whole swarms are in ``tests/sim/test_swarm_sim.py``; these drive one engine against
real `PeerConnection` remotes, byte for byte.
"""

from __future__ import annotations

import random

import pytest

from shoal import torrent_events as tev
from shoal.ids import PeerId
from shoal.peer.config import ConnectionConfig
from shoal.peer.connection import PeerConnection
from shoal.peer.frames import FrameDecoder
from shoal.peer.handshake import Handshake, ReservedBits
from shoal.peer.messages import KeepAlive, Message
from shoal.session import commands as cmd
from shoal.session.engine import REDIAL_AFTER_METADATA, EngineConfig, TorrentEngine
from shoal.session.peer import client_name
from shoal.swarm.bitfield import Bitfield
from shoal.swarm.peer_pool import PeerSource
from shoal.testing.swarmsim import make_torrent

DATA = random.Random(1).randbytes(3 * 16384)
META = make_torrent(DATA, 16384)
ALL = ReservedBits.DHT | ReservedBits.FAST | ReservedBits.EXTENSION_PROTOCOL
US = PeerId(b"-SH0100-us0000000000")
THEM = PeerId(b"-LT2010-them00000000")
ADDR = ("127.0.0.2", 6881)


def engine(**kw: object) -> TorrentEngine:
    return TorrentEngine(
        META.info_hash,
        US,
        rng=random.Random(0),
        now=0.0,
        config=EngineConfig(**kw),  # type: ignore[arg-type]
        metainfo=META,
    )


def ready(e: TorrentEngine) -> TorrentEngine:
    e.start_data(META.info, Bitfield(3), bytes([4]) * 3, sequential=False, now=0.0)
    return e


def remote(metadata: bool = False) -> PeerConnection:
    return PeerConnection(
        META.info_hash,
        THEM,
        3,
        now=0.0,
        rng=random.Random(1),
        metadata_size=len(META.info.raw) if metadata else None,
    )


def connect(e: TorrentEngine, far: PeerConnection, *, encrypted: bool = False) -> tuple[int, bytes]:
    """Dial-side handover: the engine gets the far end's parsed handshake."""
    e.peers_found([ADDR], PeerSource.USER, 0.0)
    assert cmd.Dial(ADDR) in e.commands()
    key = e.peer_connected(
        ADDR,
        Handshake(META.info_hash, THEM, ALL),
        b"",
        incoming=False,
        encrypted=encrypted,
        dialer_end=("127.0.0.1", 5000),
        now=0.0,
    )
    assert key is not None
    # The far end sees our handshake (sent by the dialer) plus what the engine queued.
    hs = PeerConnection(META.info_hash, US, 3, now=0.0, rng=random.Random(2))
    far.receive_data(b"".join(hs.data_to_send())[:68] + b"".join(e.data_to_send(key)), 0.0)
    # ...and answers with its handshake (read by our dialer) and then peer-wire bytes.
    return key, b"".join(far.data_to_send())[68:]


def events(e: TorrentEngine) -> list[object]:
    return [c.event for c in e.commands() if isinstance(c, cmd.Publish)]


def test_client_names() -> None:
    assert client_name(b"-LT2010-xxxxxxxxxxxx") == "libtorrent 2.0.1.0"
    assert client_name(b"-qB4650-xxxxxxxxxxxx") == "qBittorrent 4.6.5.0"
    assert client_name(b"A2-1-37-0-xxxxxxxxxx") == "aria2 1.37.0"
    assert client_name(bytes(20)) == ""
    assert client_name(bytes(20), "Deluge\x07 2.1") == "Deluge 2.1"


def test_peer_connected_carries_the_v_name_and_disconnect_a_reason() -> None:
    e = ready(engine())
    far = remote()
    key, first = connect(e, far)
    assert events(e) == []  # PeerConnected waits for the BEP 10 handshake (its `v`)
    e.peer_data(key, first, 1.0)
    (connected,) = [x for x in events(e) if isinstance(x, tev.PeerConnected)]
    assert connected.client.startswith("shoal ")  # the remote engine's BEP 10 `v`
    e.peer_data(key, b"", 2.0)
    out = e.commands()
    assert cmd.ClosePeer(key, "peer closed the connection") in out
    assert cmd.Publish(tev.PeerDisconnected(ADDR, "peer closed the connection")) in out


def test_a_protocol_error_closes_that_peer_with_the_reason() -> None:
    e = ready(engine())
    key, _ = connect(e, remote())
    e.commands()
    e.peer_data(key, b"\x00\x00\x00\x05\x04\x00\x00\x00\x09", 1.0)  # have 9 of 3 pieces
    (close,) = [c for c in e.commands() if isinstance(c, cmd.ClosePeer)]
    assert close.reason.startswith("RemoteProtocolError")
    assert not e.peers


def test_a_peer_that_took_our_metadata_and_left_is_redialled_soon() -> None:
    e = ready(engine())
    far = remote()
    key, first = connect(e, far)
    e.peer_data(key, first, 1.0)
    assert not e.data_to_send(key)
    far.send_metadata_request(0)
    e.peer_data(key, b"".join(far.data_to_send()), 1.0)
    e.peer_data(key, b"", 5.0)  # clean close right after the metadata
    assert e.pool.next_ready_time(5.0) == 5.0 + REDIAL_AFTER_METADATA


def test_a_peer_that_leaves_otherwise_waits_the_normal_back_off() -> None:
    e = ready(engine())
    far = remote()
    key, first = connect(e, far)
    e.peer_data(key, first, 1.0)
    e.peer_data(key, b"", 5.0)
    at = e.pool.next_ready_time(5.0)
    assert at is not None
    assert at > 5.0 + 10


@pytest.mark.parametrize("retry", [True, False])
def test_an_encrypted_connection_dropped_before_bep10_is_redialled_in_plaintext(
    retry: bool,
) -> None:
    e = ready(engine(retry_plaintext=retry))
    key, _ = connect(e, remote(), encrypted=True)
    e.commands()
    e.peer_data(key, b"", 1.0)  # gone before its extended handshake
    dials = [c for c in e.commands() if isinstance(c, cmd.Dial)]
    assert dials == ([cmd.Dial(ADDR, plaintext=True)] if retry else [])


def test_metadata_size_is_sent_again_once_known() -> None:
    magnet = TorrentEngine(META.info_hash, US, rng=random.Random(0), now=0.0)
    far = remote(metadata=True)
    key, first = connect(magnet, far)
    magnet.peer_data(key, first, 0.0)
    for _ in range(4):  # the metadata exchange
        out = b"".join(magnet.data_to_send(key))
        if out:
            far.receive_data(out, 0.0)
        for ev_ in iter(far.next_event, None):
            if type(ev_).__name__ == "MetadataRequested":
                raw = META.info.raw
                far.send_metadata_data(ev_.piece, len(raw), raw[ev_.piece * 16384 :][:16384])  # type: ignore[attr-defined]
        back = b"".join(far.data_to_send())
        if back:
            magnet.peer_data(key, back, 0.0)
    assert key in magnet.peers
    assert any(isinstance(c, cmd.MetadataReady) for c in magnet.commands())
    ready(magnet)
    far.receive_data(b"".join(magnet.data_to_send(key)), 0.0)
    sizes = [
        x.handshake.metadata_size  # type: ignore[attr-defined]
        for x in iter(far.next_event, None)
        if type(x).__name__ == "ExtendedHandshakeReceived"
    ]
    assert sizes == [len(META.info.raw)]


def test_pex_from_a_public_peer_cannot_name_private_addresses() -> None:
    e = engine()
    lan = [("192.168.1.5", 6881), ("127.0.0.9", 6881), ("169.254.0.3", 6881)]
    assert e.peers_found(lan, PeerSource.PEX, 0.0, named_by="1.2.3.4") == 0
    assert e.peers_found(lan, PeerSource.PEX, 0.0, named_by="192.168.1.2") == 3
    assert e.peers_found([("1.2.3.5", 6881)], PeerSource.PEX, 0.0, named_by="1.2.3.4") == 1


def test_a_silent_peer_gets_keep_alives_and_is_closed_as_idle() -> None:
    """BEP 3 keep-alives go out while the peer is silent; after `idle_timeout` seconds
    of its silence the engine closes it (formerly a test of the removed `PeerSession`)."""
    e = ready(engine(connection=ConnectionConfig(idle_timeout=30.0, keepalive_interval=10.0)))
    far = remote()
    key, first = connect(e, far)
    e.peer_data(key, first, 1.0)  # the peer's last word, at t = 1
    e.commands()
    decoder = FrameDecoder()
    sent: list[Message] = []
    closed_at = None
    for _ in range(1000):  # bounded: a few dozen timers in 31 s
        when = e.get_timer()
        assert when is not None
        if out := b"".join(e.data_to_send(key)):
            decoder.receive_data(out)
            sent.extend(decoder)
        e.handle_timer(when)
        if cmd.ClosePeer(key, "peer idle") in e.commands():
            closed_at = when
            break
    assert closed_at == 31.0
    assert sent.count(KeepAlive()) >= 2  # about every 10 s of our own silence
