"""The fast ways of loading an IP filter list agree with the general parser.

`parse_ip_filter` first tries `_clean_v4` (every line a blocking IPv4 range of one
format, cut by slices and validated in bulk) and may be given a C address parser
(`shoal.ipfilter_load.pack_v4`). Both only make loading faster: on every input the
result (ranges, bad lines with their numbers and reasons) must be the general
line-by-line parse's (`_parse_text`), and the clean path must really be taken for the
lists published in the wild, or the 500,000-ranges-in-a-second bar silently slips.
"""

from __future__ import annotations

import contextlib
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal import ipfilter
from shoal.errors import DecodeError
from shoal.ipfilter import IPFilter, parse_ip_filter
from shoal.ipfilter_load import load_ip_filter_bytes, pack_v4
from tests.strategies import mutated

V4_MAX = (1 << 32) - 1


def _quad(value: int, pad: bool) -> str:
    return ".".join(f"{(value >> s) & 255:0{3 if pad else 1}d}" for s in (24, 16, 8, 0))


def _result(flt: IPFilter, bad: list[ipfilter.BadLine]) -> tuple[object, ...]:
    return flt.ranges(4), flt.ranges(6), [(b.line, b.reason) for b in bad]


def _general(data: bytes) -> tuple[object, ...]:
    return _result(*ipfilter._parse_text(ipfilter._text(data)))


ranges_st = st.lists(
    st.tuples(st.integers(0, V4_MAX), st.integers(-3, 1 << 12)).map(
        lambda t: (t[0], max(0, min(V4_MAX, t[0] + t[1])))  # a few backwards ranges
    ),
    min_size=1,
    max_size=25,
)
# Lines the clean path must refuse (the general parser then reports or keeps them).
odd_lines = st.sampled_from(
    [
        "",
        "# comment",
        "# comment: with a colon",
        "2001:db8:: - 2001:db8::ff , 000 , six",
        "six:::1-::2",
        "1.2.3.400 - 1.2.3.5 , 000 , octet",
        "garbage",
        "1.0.0.0 - 1.0.0.9 , 200 , allowed",
        "1.0.0.0 - 1.0.0.9 , 12 , level",
        "1.0.0.0 - 1.0.0.9",
        "x:1.0.0.0 - 1.0.0.9 , 0",
        "Evil, Inc:1.0.0.0-1.0.0.9",
        "01.0.0.0-1.0.0.9",
        "1.0.0.0-1.0.0.9 ",
        "\t1.0.0.0\t-\t1.0.0.9",
    ]
)


@st.composite
def lists(draw: st.DrawFn) -> bytes:
    """A list as published (one format, uniform eMule lines or P2P lines, a header),
    sometimes with CRLF, other access levels, or odd lines anywhere."""
    ranges = draw(ranges_st)
    style = draw(st.sampled_from(["emule", "p2p", "p2p-padded", "emule-unpadded"]))
    level = draw(st.sampled_from(["000", "127", "128", "0", "099"]))
    if style.startswith("emule"):
        pad = style == "emule"
        lines = [
            f"{_quad(s, pad)} - {_quad(e, pad)} , {level} , r{i}" for i, (s, e) in enumerate(ranges)
        ]
    else:
        pad = style == "p2p-padded"
        lines = [f"Org {i}: x:{_quad(s, pad)}-{_quad(e, pad)}" for i, (s, e) in enumerate(ranges)]
    for line in draw(st.lists(odd_lines, max_size=2)):
        lines.insert(draw(st.integers(0, len(lines))), line)
    header = draw(st.lists(st.sampled_from(["# list", "", "// made by x", "  "]), max_size=3))
    end = draw(st.sampled_from(["\n", "\r\n"]))
    return (end.join(header + lines) + draw(st.sampled_from(["", end, end * 2]))).encode()


@given(lists())
def test_clean_path_agrees_with_the_general_parser(data: bytes) -> None:
    assert _result(*parse_ip_filter(data)) == _general(data)


@given(lists())
def test_the_c_address_parser_changes_nothing(data: bytes) -> None:
    assert _result(*load_ip_filter_bytes(data)) == _result(*parse_ip_filter(data))


@given(mutated(lists()))
def test_mutated_lists_agree_and_are_total(data: bytes) -> None:
    try:
        expected = _general(data)
    except DecodeError:
        with pytest.raises(DecodeError):
            parse_ip_filter(data)
        return
    assert _result(*parse_ip_filter(data)) == expected
    assert _result(*load_ip_filter_bytes(data)) == expected


@given(st.binary(max_size=300))
def test_load_is_total_on_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        load_ip_filter_bytes(data)


@pytest.mark.parametrize(
    "text",
    [
        # eMule ipfilter.dat as published: zero-padded, one level, LF or CRLF.
        "001.002.003.000 - 001.002.003.255 , 000 , A\n"
        "004.000.000.000 - 004.000.000.009 , 000 , B\n",
        "# header\r\n\r\n001.002.003.000 - 001.002.003.255 , 000 , A\r\n009.000.000.000 - 009.0"
        "00.000.001 , 000 , B, with a comma: and a colon\r\n",
        # Not in order: the clean path sorts.
        "200.002.003.000 - 200.002.003.255 , 100 , A\n004.000.000.000 - 004.000.000.009 , 100 , B",
        # PeerGuardian P2P, with the iblocklist header and colons in descriptions.
        "# List distributed by iblocklist.com\n\nA: b:1.2.3.0-1.2.3.255\nC:4.0.0.0-4.0.0.9\n",
        "1.2.3.0 - 1.2.3.255\n4.0.0.0-4.0.0.9\n",
    ],
)
def test_published_lists_take_the_clean_path(text: str) -> None:
    columns = ipfilter._clean_v4(text)
    assert columns is not None
    flt, bad = ipfilter._parse_text(text)
    assert bad == []
    assert list(zip(*ipfilter._merge_v4(*columns, ascending=True), strict=True)) == flt.ranges(4)


@pytest.mark.parametrize(
    "text",
    [
        "1.2.3.0 - 1.2.3.255 , 000 , a\n1.2.3.0 - 1.2.3.255 , 200 , allowed\n",
        "1.2.3.0 - 1.2.3.255 , 000 , a\n# a comment in the middle\n4.0.0.0 - 4.0.0.1 , 000 , b",
        "x:1.2.3.0-1.2.3.255\ny:2001:db8::-2001:db8::1\n",
        "x:1.2.3.0-1.2.3.256\n",
        "x:1.2.3.9-1.2.3.0\n",
    ],
)
def test_lists_with_anything_unusual_leave_the_clean_path(text: str) -> None:
    assert ipfilter._clean_v4(text) is None


def test_pack_v4_takes_plain_decimal_quads_only() -> None:
    assert pack_v4(["1.2.3.4", "255.0.0.1"]) == bytes([1, 2, 3, 4, 255, 0, 0, 1])
    for odd in ["01.2.3.4", "1.2.3", "0x1.2.3.4", "256.0.0.1", " 1.2.3.4", "1.2.3.4\0", "١.2.3.4"]:
        assert pack_v4(["1.1.1.1", odd]) is None, odd


def test_a_padded_list_with_the_c_parser_still_loads() -> None:
    # inet_pton refuses leading zeros: the pure conversion takes over.
    data = b"x:001.002.003.004-001.002.003.005\ny:9.9.9.9-9.9.9.9\n"
    flt, bad = load_ip_filter_bytes(data)
    assert bad == []
    assert flt.ranges(4) == [
        (int(ipaddress.IPv4Address("1.2.3.4")), int(ipaddress.IPv4Address("1.2.3.5"))),
        (int(ipaddress.IPv4Address("9.9.9.9")), int(ipaddress.IPv4Address("9.9.9.9"))),
    ]
