"""BEP 11: PEX flags the peers we reach over uTP as "supports uTP" (0x04)."""

from __future__ import annotations

import random

from shoal.ids import PeerId
from shoal.peer import events as ev
from shoal.peer.connection import PeerConnection
from shoal.peer.extension import PexFlags
from shoal.peer.handshake import Handshake, ReservedBits
from shoal.session.engine import EngineConfig, TorrentEngine
from shoal.swarm.bitfield import Bitfield
from shoal.swarm.peer_pool import PeerSource
from shoal.testing.swarmsim import make_torrent

META = make_torrent(random.Random(1).randbytes(3 * 16384), 16384)
ALL = ReservedBits.DHT | ReservedBits.FAST | ReservedBits.EXTENSION_PROTOCOL
US = PeerId(b"-SH0100-us0000000000")


def _connect(
    e: TorrentEngine, addr: tuple[str, int], pid: PeerId, *, utp: bool
) -> tuple[int, PeerConnection]:
    far = PeerConnection(META.info_hash, pid, 3, now=0.0, rng=random.Random(len(addr[0])))
    e.peers_found([addr], PeerSource.USER, 0.0)
    key = e.peer_connected(
        addr, Handshake(META.info_hash, pid, ALL), b"", incoming=False, encrypted=False,
        dialer_end=("127.0.0.1", 5000), now=0.0, utp=utp,
    )  # fmt: skip
    assert key is not None
    hs = PeerConnection(META.info_hash, US, 3, now=0.0, rng=random.Random(2))
    far.receive_data(b"".join(hs.data_to_send())[:68] + b"".join(e.data_to_send(key)), 0.0)
    e.peer_data(key, b"".join(far.data_to_send())[68:], 0.0)
    return key, far


def _pex_seen(e: TorrentEngine, key: int, far: PeerConnection, now: float) -> list[ev.PexReceived]:
    far.receive_data(b"".join(e.data_to_send(key)), now)
    out = []
    while (event := far.next_event()) is not None:
        if isinstance(event, ev.PexReceived):
            out.append(event)
    return out


def test_pex_flags_utp_peers() -> None:
    e = TorrentEngine(
        META.info_hash, US, rng=random.Random(0), now=0.0, config=EngineConfig(), metainfo=META
    )
    e.start_data(META.info, Bitfield(3), bytes([4]) * 3, sequential=False, now=0.0)
    over_utp = ("127.0.0.2", 6881)
    over_tcp = ("127.0.0.3", 6881)
    k_utp, far_utp = _connect(e, over_utp, PeerId(b"-LT2010-utp000000000"), utp=True)
    k_tcp, far_tcp = _connect(e, over_tcp, PeerId(b"-LT2010-tcp000000000"), utp=False)
    now = e.config.pex_interval + 1.0
    e.handle_timer(now)
    (to_tcp,) = _pex_seen(e, k_tcp, far_tcp, now)
    (to_utp,) = _pex_seen(e, k_utp, far_utp, now)
    assert [(p.addr, p.flags) for p in to_tcp.added] == [(over_utp, PexFlags.UTP)]
    assert [(p.addr, p.flags) for p in to_utp.added] == [(over_tcp, PexFlags.NONE)]
