"""``--bind`` / `ClientConfig.bind_host` binds both the TCP listener and the DHT socket
(issue 4's command-line contract); ``tests/cli/test_get.py::test_every_option`` checks
that the flag reaches `ClientConfig`."""

from __future__ import annotations

import trio

import shoal

#: A BEP 5 ping from node id 0 (any valid query would do).
PING = b"d1:ad2:id20:" + bytes(20) + b"e1:q4:ping1:t2:aa1:y1:qe"
BIND = "127.0.0.7"  # any 127/8 address works on Linux; not 127.0.0.1, so it is ours


async def test_listener_and_dht_share_the_bind_address() -> None:
    config = shoal.ClientConfig(bind_host=BIND, port=0, dht=True)
    async with shoal.open_client(config) as client:
        host, port = client.listen_address
        assert host == BIND
        assert client.dht is not None
        assert client.dht.address == (BIND, port)  # same number on UDP while it is free
        with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as probe:
            # The DHT really listens there: it answers a ping from that address.
            await probe.sendto(PING, (BIND, port))
            with trio.fail_after(5):
                reply, addr = await probe.recvfrom(2048)
        assert addr == (BIND, port)
        assert b"1:y1:r" in reply
