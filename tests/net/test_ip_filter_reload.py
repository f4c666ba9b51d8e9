"""`Client.set_ip_filter` (what the daemon's SIGHUP calls): a dial that was already
under way when the new list blocked its address is closed once it connects, instead
of becoming a peer; and a library client's DHT takes the new list too."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

import shoal
from shoal.config import EncryptionMode
from shoal.ids import InfoHash, PeerId
from shoal.ipfilter import parse_ip_filter
from shoal.peer.handshake import Handshake, encode_handshake

if TYPE_CHECKING:
    from pathlib import Path

PEER = "127.0.0.1"
INFO_HASH = InfoHash(bytes.fromhex("cd" * 20))
BLOCK, _ = parse_ip_filter(f"peer:{PEER}-{PEER}\n".encode())


async def test_a_dial_in_flight_when_the_filter_changes_is_closed(tmp_path: Path) -> None:
    config = shoal.ClientConfig(
        bind_host="127.0.0.5", port=0, dht=False, encryption=EncryptionMode.DISABLE
    )
    [listener] = await trio.open_tcp_listeners(0, host=PEER)
    port = listener.socket.getsockname()[1]
    async with listener, shoal.open_client(config) as client:
        magnet = f"magnet:?xt=urn:btih:{INFO_HASH.hex()}"
        await client.add(magnet, save_to=tmp_path, peers=[(PEER, port)])
        with trio.fail_after(20):
            stream = await listener.accept()
            assert client.set_ip_filter(BLOCK) == 0  # nothing connected yet
            hello = b""
            while len(hello) < 68:  # the dialler's handshake (plaintext: DISABLE)
                hello += await stream.receive_some(68 - len(hello))
            answer = Handshake(INFO_HASH, PeerId(b"-XX0000-" + b"x" * 12))
            await stream.send_all(encode_handshake(answer))
            while await stream.receive_some():  # until the client hangs up
                pass
        await stream.aclose()
        assert client.statistics().peers == 0


#: A BEP 5 ping from node id 0.
PING = b"d1:ad2:id20:" + bytes(20) + b"e1:q4:ping1:t2:aa1:y1:qe"


async def test_the_clients_dht_takes_a_new_filter() -> None:
    config = shoal.ClientConfig(bind_host="127.0.0.5", port=0, dht=True)
    udp = trio.socket.SOCK_DGRAM
    with (
        trio.socket.socket(trio.socket.AF_INET, udp) as blocked,
        trio.socket.socket(trio.socket.AF_INET, udp) as allowed,
    ):
        await blocked.bind((PEER, 0))
        await allowed.bind(("127.0.0.6", 0))
        async with shoal.open_client(config) as client:
            assert client.dht is not None
            dht = client.dht.address
            with trio.fail_after(20):
                await blocked.sendto(PING, dht)
                await blocked.recv(2048)  # answered while there is no filter
                client.set_ip_filter(BLOCK)
                await blocked.sendto(PING, dht)
                await allowed.sendto(PING, dht)
                await allowed.recv(2048)  # the allowed one is answered...
            assert client.dht.statistics().node.filtered == 1  # ...the blocked one dropped
