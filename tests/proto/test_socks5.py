"""The SOCKS5 codec (RFC 1928 / 1929): round trips, incremental decoding and totality."""

from __future__ import annotations

import contextlib
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal import socks5
from shoal.errors import DecodeError
from shoal.socks5 import Command, ProxyURL, Reply, UDPDatagram, parse_proxy_url
from tests.strategies import mutated

hostnames = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}\.){0,3}[a-z]{2,6}", fullmatch=True)
hosts = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    hostnames,
)
ports = st.integers(0, 0xFFFF)


def test_parse_proxy_url() -> None:
    assert parse_proxy_url("socks5://127.0.0.2:1080") == ProxyURL("127.0.0.2", 1080)
    url = parse_proxy_url("socks5h://us%40r:p%3Ass@[::1]:9050")
    assert url == ProxyURL("::1", 9050, "us@r", "p:ss")
    assert "p:ss" not in repr(url)
    assert url.display() == "[::1]:9050"
    for bad in (
        "http://127.0.0.1:80",
        "socks4://127.0.0.1:1080",
        "socks5://127.0.0.1",
        "socks5://:1080",
        "socks5://127.0.0.1:99999",
        "socks5://user@127.0.0.1:1080",
        "socks5://127.0.0.1:1080/path",
        "socks5://u:" + "x" * 256 + "@127.0.0.1:1080",
    ):
        with pytest.raises(DecodeError):
            parse_proxy_url(bad)


def test_names_are_sent_as_names() -> None:
    req = socks5.encode_request(Command.CONNECT, "router.example.net", 6881)
    assert req == b"\x05\x01\x00\x03\x12router.example.net\x1a\xe1"
    assert socks5.encode_request(Command.UDP_ASSOCIATE, "127.0.0.1", 0) == (
        b"\x05\x03\x00\x01\x7f\x00\x00\x01\x00\x00"
    )


def test_greeting_and_auth_messages() -> None:
    assert socks5.encode_greeting([socks5.AuthMethod.NO_AUTH]) == b"\x05\x01\x00"
    assert socks5.decode_method_choice(b"\x05") is None
    assert socks5.decode_method_choice(b"\x05\x02") == 2
    with pytest.raises(DecodeError):
        socks5.decode_method_choice(b"\x04\x00")
    assert socks5.encode_userpass("u", "pw") == b"\x01\x01u\x02pw"
    assert socks5.decode_auth_reply(socks5.encode_auth_reply(True)) is True
    assert socks5.decode_auth_reply(socks5.encode_auth_reply(False)) is False
    assert socks5.decode_auth_reply(b"\x01") is None


def test_reply_error_text() -> None:
    assert Reply(0, "0.0.0.0", 0).error() is None
    assert Reply(5, "0.0.0.0", 0).error() == "connection refused"
    assert Reply(0x42, "0.0.0.0", 0).error() == "unknown reply code 66"


@given(st.sampled_from(list(Command)), hosts, ports)
def test_request_round_trip_and_every_prefix_is_incomplete(
    command: Command, host: str, port: int
) -> None:
    data = socks5.encode_request(command, host, port)
    assert socks5.decode_request(data + b"extra") == (command, host, port, len(data))
    for cut in range(len(data)):
        assert socks5.decode_request(data[:cut]) is None


@given(st.integers(0, 255), hosts, ports)
def test_reply_round_trip(code: int, host: str, port: int) -> None:
    data = socks5.encode_reply(code, host, port)
    assert socks5.decode_reply(data) == (Reply(code, host, port), len(data))
    assert socks5.decode_reply(data[:-1]) is None


@given(hosts, ports, st.binary(max_size=200), st.integers(0, 255))
def test_udp_round_trip(host: str, port: int, data: bytes, frag: int) -> None:
    wrapped = socks5.encode_udp(host, port, data, frag=frag)
    assert socks5.decode_udp(wrapped) == UDPDatagram(host, port, data, frag)


def test_udp_header_layout_is_rfc_1928() -> None:
    wrapped = socks5.encode_udp("10.1.2.3", 6881, b"d1:ad2:id20:")
    assert wrapped[:10] == b"\x00\x00\x00\x01\x0a\x01\x02\x03\x1a\xe1"
    six = socks5.encode_udp("::1", 1, b"x")
    assert six[3] == 4
    assert ipaddress.ip_address(six[4:20]) == ipaddress.ip_address("::1")


decoders = [
    socks5.decode_method_choice,
    socks5.decode_auth_reply,
    socks5.decode_reply,
    socks5.decode_request,
    socks5.decode_udp,
]


@given(st.sampled_from(decoders), st.binary(max_size=300))
def test_decoders_are_total_on_arbitrary_bytes(decode: object, data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode(data)  # type: ignore[operator]


valid = st.one_of(
    st.builds(socks5.encode_reply, st.integers(0, 255), hosts, ports),
    st.builds(socks5.encode_request, st.sampled_from(list(Command)), hosts, ports),
    st.builds(socks5.encode_udp, hosts, ports, st.binary(max_size=40)),
)


@given(st.sampled_from(decoders), mutated(valid))
def test_decoders_are_total_on_mutated_messages(decode: object, data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode(data)  # type: ignore[operator]


@given(st.binary(max_size=300))
def test_every_decoder_is_total(data: bytes) -> None:
    """One-argument form for tools/fuzz.py (target ``socks5``)."""
    for decode in decoders:
        with contextlib.suppress(DecodeError):
            decode(data)  # type: ignore[operator]


RELAY = ("127.0.0.9", 1080)


def test_accept_relayed_delivers_only_the_relays_whole_datagrams() -> None:
    wrapped = socks5.encode_udp("127.0.0.5", 6881, b"d1:y1:re")
    assert socks5.accept_relayed(wrapped, RELAY, RELAY) == UDPDatagram(
        "127.0.0.5", 6881, b"d1:y1:re"
    )
    assert socks5.accept_relayed(wrapped, ("127.0.0.8", 1080), RELAY) is None  # a stranger
    assert socks5.accept_relayed(wrapped, RELAY, None) is None  # no association yet
    fragment = socks5.encode_udp("127.0.0.5", 6881, b"x", frag=1)
    assert socks5.accept_relayed(fragment, RELAY, RELAY) is None
    assert socks5.accept_relayed(b"\x00\x01\x00\x01", RELAY, RELAY) is None  # bad header


@given(st.binary(max_size=300))
def test_accept_relayed_is_total(data: bytes) -> None:
    dgram = socks5.accept_relayed(data, RELAY, RELAY)
    assert dgram is None or dgram.frag == 0
