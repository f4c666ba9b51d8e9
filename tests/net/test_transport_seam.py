"""The transport seam: the dialer and the listener's handshake/dispatch code work over
any `trio.abc.Stream` a `Transport` produces, not only TCP.

`PipeTransport` is a stand-in for uTP or a SOCKS5 proxy: each `connect` makes an
in-memory stream pair and hands the far end to the listener's `handle_stream`, the
entry point every non-TCP accept loop uses.
"""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from shoal.config import EncryptionMode
from shoal.ids import InfoHash, PeerId
from shoal.net.dialer import Dialer, PeerLink
from shoal.net.listener import Listener
from shoal.net.transport import TcpTransport, Transport

IH = InfoHash(bytes(range(20)))
SERVER_ID = PeerId(b"-SH0001-server000000")
CLIENT_ID = PeerId(b"-SH0001-client000000")
FAR_END = ("127.0.0.9", 4242)


class PipeTransport:
    def __init__(self, nursery: trio.Nursery, listener: Listener) -> None:
        self.nursery = nursery
        self.listener = listener
        self.dialled: list[tuple[str, int]] = []

    async def connect(self, addr: tuple[str, int]) -> trio.abc.Stream:
        self.dialled.append(addr)
        ours, theirs = trio.testing.memory_stream_pair()
        self.nursery.start_soon(self.listener.handle_stream, theirs, FAR_END)
        return ours

    def local_end(self, stream: trio.abc.Stream) -> tuple[str, int] | None:
        return FAR_END


@pytest.mark.parametrize("mode", [EncryptionMode.REQUIRE, EncryptionMode.DISABLE])
async def test_dial_and_accept_over_another_transport(mode: EncryptionMode) -> None:
    got: list[PeerLink] = []
    listener = Listener(SERVER_ID, encryption=mode, rng=random.Random(1))
    listener.register(IH, lambda link: got.append(link) is None)
    async with trio.open_nursery() as nursery:
        transport: Transport = PipeTransport(nursery, listener)
        dialer = Dialer(CLIENT_ID, encryption=mode, rng=random.Random(2), transport=transport)
        with trio.fail_after(10):
            link = await dialer.dial(("127.0.0.5", 6881), IH)
            await trio.testing.wait_all_tasks_blocked()
        assert link.remote.peer_id == SERVER_ID
        assert link.encrypted is (mode is EncryptionMode.REQUIRE)
        assert link.dialer_end == FAR_END
        (inbound,) = got
        assert inbound.remote.peer_id == CLIENT_ID
        assert inbound.addr == FAR_END
        assert inbound.incoming
        # The streams are connected end to end, through MSE when it was negotiated.
        await link.stream.send_all(b"ping")
        assert await inbound.stream.receive_some(4) == b"ping"
        await link.stream.aclose()
        await inbound.stream.aclose()
    assert listener.accepted == 1


def test_tcp_transport_has_no_local_end_for_other_streams() -> None:
    one, _ = trio.testing.memory_stream_pair()
    assert TcpTransport().local_end(one) is None
