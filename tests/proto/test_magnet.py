"""Magnet links (BEP 9 + BEP 53): examples, every refusal, round trips and totality."""

from __future__ import annotations

import base64
import ipaddress
import time

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from shoal.errors import DecodeError
from shoal.ids import InfoHash
from shoal.magnet import MAX_MAGNET_LENGTH, Magnet, format_magnet, parse_magnet
from tests.strategies import mutated

HEX = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
IH = InfoHash(bytes.fromhex(HEX))
B32 = base64.b32encode(IH).decode()


# ---- BEP 9 examples -------------------------------------------------------------------


def test_bep9_minimal_link_is_just_the_info_hash() -> None:
    m = parse_magnet(f"magnet:?xt=urn:btih:{HEX}")
    assert m == Magnet(IH)
    assert m.info_hash == IH
    assert isinstance(m.info_hash, InfoHash)
    assert str(m) == f"magnet:?xt=urn:btih:{HEX}"


def test_bep9_full_format() -> None:
    # BEP 9: magnet:?xt=urn:btih:<info-hash>&dn=<name>&tr=<tracker-url>&x.pe=<peer-address>
    uri = (
        f"magnet:?xt=urn:btih:{HEX}&dn=My+File%20%C3%A9.iso"
        "&tr=udp%3A%2F%2F127.0.0.1%3A6969%2Fannounce&tr=http://127.0.0.1/announce"
        "&x.pe=peer.example:6881&x.pe=127.0.0.1:51413&x.pe=[::1]:6882"
    )
    m = parse_magnet(uri)
    assert m.display_name == "My File é.iso"
    assert m.trackers == ("udp://127.0.0.1:6969/announce", "http://127.0.0.1/announce")
    assert m.peers == (("peer.example", 6881), ("127.0.0.1", 51413), ("::1", 6882))
    assert m.select_only is None
    assert parse_magnet(str(m)) == m


@pytest.mark.parametrize("text", [HEX, HEX.upper(), B32, B32.lower()])
def test_info_hash_hex_or_base32_in_any_case(text: str) -> None:
    assert parse_magnet(f"magnet:?xt=urn:btih:{text}").info_hash == IH
    assert parse_magnet(f"MAGNET:?xt=URN:BTIH:{text}").info_hash == IH


def test_bep53_select_only() -> None:
    m = parse_magnet(f"magnet:?xt=urn:btih:{HEX}&so=0,2,4,6-8")
    assert m.select_only == ((0, 0), (2, 2), (4, 4), (6, 8))
    assert str(m).endswith("&so=0,2,4,6-8")


def test_format_emits_lowercase_hex_and_escapes() -> None:
    m = Magnet(IH, display_name="a+b c&d=e/é", trackers=("http://h/a?x=1&y=2",))
    uri = format_magnet(m)
    assert uri == (
        f"magnet:?xt=urn:btih:{HEX}&dn=a%2Bb%20c%26d%3De%2F%C3%A9"
        "&tr=http%3A%2F%2Fh%2Fa%3Fx%3D1%26y%3D2"
    )
    assert parse_magnet(uri) == m
    assert str(parse_magnet(f"magnet:?xt=urn:btih:{B32}")) == f"magnet:?xt=urn:btih:{HEX}"


def test_ipv6_peer_is_stored_compressed_and_bracketed_on_output() -> None:
    m = parse_magnet(f"magnet:?xt=urn:btih:{HEX}&x.pe=%5B2001:DB8:0:0::1%5D:80")
    assert m.peers == (("2001:db8::1", 80),)
    assert "x.pe=%5B2001:db8::1%5D:80" in str(m)


def test_unknown_and_empty_parameters_are_ignored() -> None:
    uri = f"magnet:?&xt=urn:btih:{HEX}&xl=1234&ws=http://x/&kt=a+b&&as=%zz&flag&"
    assert parse_magnet(uri) == Magnet(IH)


def test_hybrid_link_uses_the_v1_hash() -> None:
    btmh = "1220" + "ab" * 32
    m = parse_magnet(f"magnet:?xt=urn:btmh:{btmh}&xt=urn:btih:{HEX}&dn=x")
    assert m.info_hash == IH


def test_numbered_parameters_and_surrounding_whitespace() -> None:
    m = parse_magnet(f"  magnet:?xt.1=urn:btih:{HEX}&tr.1=http://a/&tr.2=http://b/\n")
    assert m == Magnet(IH, trackers=("http://a/", "http://b/"))


def test_repeated_trackers_are_kept_in_order() -> None:
    m = parse_magnet(f"magnet:?xt=urn:btih:{HEX}&tr=b&tr=a&tr=b")
    assert m.trackers == ("b", "a", "b")


def test_empty_display_name_is_not_none() -> None:
    m = parse_magnet(f"magnet:?xt=urn:btih:{HEX}&dn=")
    assert m.display_name == ""
    assert parse_magnet(str(m)) == m


# ---- refusals, each with a message that says what is wrong ----------------------------

BAD = {
    "not a magnet": ("http://example.com/?xt=urn:btih:" + HEX, "not a magnet"),
    "no query": ("magnet:xt=urn:btih:" + HEX, "not a magnet"),
    "empty": ("", "not a magnet"),
    "no xt": ("magnet:?dn=x", "no xt"),
    "two btih": (f"magnet:?xt=urn:btih:{HEX}&xt=urn:btih:{B32}", "more than one"),
    "v2 only": ("magnet:?xt=urn:btmh:1220" + "ab" * 32, "v2-only"),
    "other urn": ("magnet:?xt=urn:sha1:ABCDEF", "not supported"),
    "short hex": (f"magnet:?xt=urn:btih:{HEX[:-1]}", "40 hex"),
    "long hex": (f"magnet:?xt=urn:btih:{HEX}0", "40 hex"),
    "non-hex": ("magnet:?xt=urn:btih:" + "g" * 40, "40 hex"),
    "base32 with 1": ("magnet:?xt=urn:btih:" + "1" * 32, "base32"),
    "hex with spaces": ("magnet:?xt=urn:btih:" + "c1 2f" * 8, "40 hex"),
    "non-ascii digits": ("magnet:?xt=urn:btih:" + "\u0661" * 40, "40 hex"),
    "two dn": (f"magnet:?xt=urn:btih:{HEX}&dn=a&dn=b", "more than one dn"),
    "two so": (f"magnet:?xt=urn:btih:{HEX}&so=1&so=2", "more than one so"),
    "bad escape": (f"magnet:?xt=urn:btih:{HEX}&dn=100%", "percent-escape"),
    "bad escape hex": (f"magnet:?xt=urn:btih:{HEX}&dn=%zz", "percent-escape"),
    "bad utf-8": (f"magnet:?xt=urn:btih:{HEX}&dn=%ff%fe", "UTF-8"),
    "lone surrogate": (f"magnet:?xt=urn:btih:{HEX}&dn=\udcff", "UTF-8"),
    "peer no port": (f"magnet:?xt=urn:btih:{HEX}&x.pe=127.0.0.1", "host:port"),
    "peer port 0": (f"magnet:?xt=urn:btih:{HEX}&x.pe=127.0.0.1:0", "port"),
    "peer port big": (f"magnet:?xt=urn:btih:{HEX}&x.pe=127.0.0.1:65536", "port"),
    "peer port sign": (f"magnet:?xt=urn:btih:{HEX}&x.pe=127.0.0.1:+80", "port"),
    "peer port empty": (f"magnet:?xt=urn:btih:{HEX}&x.pe=host:", "port"),
    "peer no host": (f"magnet:?xt=urn:btih:{HEX}&x.pe=:80", "host:port"),
    "peer bad ipv4": (f"magnet:?xt=urn:btih:{HEX}&x.pe=256.0.0.1:80", "IPv4"),
    "peer ipv4 leading zero": (f"magnet:?xt=urn:btih:{HEX}&x.pe=01.2.3.4:80", "IPv4"),
    "peer bare ipv6": (f"magnet:?xt=urn:btih:{HEX}&x.pe=::1:80", "brackets"),
    "peer bad ipv6": (f"magnet:?xt=urn:btih:{HEX}&x.pe=[::g]:80", "IPv6"),
    "peer ipv6 no port": (f"magnet:?xt=urn:btih:{HEX}&x.pe=[::1]", "ipv6"),
    "peer ipv6 zone": (f"magnet:?xt=urn:btih:{HEX}&x.pe=[fe80::1%25eth0]:80", "zone"),
    "peer bad hostname": (f"magnet:?xt=urn:btih:{HEX}&x.pe=-bad-.example:80", "host name"),
    "peer hostname space": (f"magnet:?xt=urn:btih:{HEX}&x.pe=a+b:80", "host name"),
    "so empty": (f"magnet:?xt=urn:btih:{HEX}&so=", "so="),
    "so empty item": (f"magnet:?xt=urn:btih:{HEX}&so=0,,2", "so="),
    "so backwards": (f"magnet:?xt=urn:btih:{HEX}&so=5-3", "backwards"),
    "so negative": (f"magnet:?xt=urn:btih:{HEX}&so=-1", "so="),
    "so open range": (f"magnet:?xt=urn:btih:{HEX}&so=4-", "so="),
    "so double range": (f"magnet:?xt=urn:btih:{HEX}&so=1-2-3", "so="),
    "so huge index": (f"magnet:?xt=urn:btih:{HEX}&so=" + "9" * 10, "so="),
    "so text": (f"magnet:?xt=urn:btih:{HEX}&so=all", "so="),
}


@pytest.mark.parametrize(("uri", "message"), BAD.values(), ids=BAD.keys())
def test_bad_links_are_refused_with_a_clear_message(uri: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        parse_magnet(uri)


def test_error_messages_stay_short_for_huge_values() -> None:
    with pytest.raises(DecodeError) as info:
        parse_magnet("magnet:?xt=urn:btih:" + "z" * 10_000)
    assert len(str(info.value)) < 300


def test_overlong_link_refused_in_bounded_time() -> None:
    uri = f"magnet:?xt=urn:btih:{HEX}" + "&tr=x" * MAX_MAGNET_LENGTH
    t0 = time.perf_counter()
    with pytest.raises(DecodeError, match="longer than"):
        parse_magnet(uri)
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"peers": (("h", 0),)},
        {"peers": (("", 80),)},
        {"select_only": ()},
        {"select_only": ((3, 2),)},
        {"select_only": ((-1, 2),)},
    ],
)
def test_constructor_refuses_invalid_fields(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Magnet(IH, **kwargs)  # type: ignore[arg-type]


def test_constructor_requires_an_info_hash() -> None:
    with pytest.raises(TypeError):
        Magnet(bytes(20))  # type: ignore[arg-type]


# ---- properties -----------------------------------------------------------------------

_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_hostnames = (
    st.lists(_label, min_size=1, max_size=4)
    .map(".".join)
    .filter(lambda h: not all(c.isdigit() or c == "." for c in h))
)
_ports = st.integers(1, 65535)
_peers = st.tuples(
    st.one_of(
        _hostnames,
        st.ip_addresses(v=4).map(str),
        st.ip_addresses(v=6).map(lambda a: str(ipaddress.IPv6Address(a))),
    ),
    _ports,
)
_ranges = st.tuples(st.integers(0, 10**6), st.integers(0, 1000)).map(lambda t: (t[0], t[0] + t[1]))

magnets = st.builds(
    Magnet,
    info_hash=st.binary(min_size=20, max_size=20).map(InfoHash),
    display_name=st.none() | st.text(max_size=40),
    trackers=st.lists(st.text(max_size=40), max_size=3).map(tuple),
    peers=st.lists(_peers, max_size=3).map(tuple),
    select_only=st.none() | st.lists(_ranges, min_size=1, max_size=4).map(tuple),
)


@given(magnets)
def test_round_trip(m: Magnet) -> None:
    uri = format_magnet(m)
    assert uri == str(m)
    assert uri.isascii()
    assert parse_magnet(uri) == m


def _valid_uris() -> st.SearchStrategy[bytes]:
    return magnets.map(lambda m: str(m).encode())


@given(
    st.text(max_size=300)
    | st.text(max_size=200).map(lambda s: "magnet:?" + s)
    | mutated(_valid_uris()).map(lambda b: b.decode("utf-8", "surrogateescape"))
)
@example("magnet:?xt=urn:btih:" + "0" * 40 + "&x.pe=[")
@example("magnet:?xt=urn:btih:" + "0" * 40 + "&x.pe=[]:1")
@example("magnet:?xt=urn:btih:" + "0" * 40 + "&so=-")
def test_parse_is_total(uri: str) -> None:
    """Totality: any text parses or raises DecodeError; what parses is stable.

    This is the `magnet` target of tools/fuzz.py, so it takes one `str` argument.
    """
    try:
        m = parse_magnet(uri)
    except DecodeError:
        return
    assert parse_magnet(format_magnet(m)) == m
