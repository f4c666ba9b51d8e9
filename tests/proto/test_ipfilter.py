"""IP filter lists: both formats, gzip, bad lines with their numbers, and the lookup
agreeing with a naive scan of the ranges (hypothesis)."""

from __future__ import annotations

import contextlib
import gzip
import ipaddress
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal import ipfilter
from shoal.errors import DecodeError
from shoal.ipfilter import MAX_FILTER_BYTES, BadLine, IPFilter, parse_ip_filter
from tests.strategies import mutated

V4_MAX = (1 << 32) - 1
V6_MAX = (1 << 128) - 1


def ip4(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def test_emule_line_with_leading_zeros_blocks_the_range() -> None:
    flt, bad = parse_ip_filter(b"001.002.003.000 - 001.002.003.255 , 000 , Some ISP\n")
    assert bad == []
    assert flt.ranges(4) == [(ip4("1.2.3.0"), ip4("1.2.3.255"))]
    assert flt.blocks("1.2.3.77")
    assert not flt.blocks("1.2.4.0")
    assert not flt.blocks("1.2.2.255")


def test_emule_access_level_above_127_allows() -> None:
    data = b"1.0.0.0 - 1.0.0.255 , 200 , allowed\n2.0.0.0 - 2.0.0.255 , 127 , blocked\n"
    flt, bad = parse_ip_filter(data)
    assert bad == []
    assert not flt.blocks("1.0.0.1")
    assert flt.blocks("2.0.0.1")


def test_p2p_line_with_colons_in_the_description() -> None:
    flt, bad = parse_ip_filter(b"Evil: Corp, Inc:10.0.0.0-10.0.0.9\r\n")
    assert bad == []
    assert flt.ranges(4) == [(ip4("10.0.0.0"), ip4("10.0.0.9"))]


def test_ipv6_ranges_in_both_formats() -> None:
    data = b"2001:db8:: - 2001:db8::ff , 000 , doc\nnet:::1-::1\n"
    flt, bad = parse_ip_filter(data)
    assert bad == []
    assert flt.blocks("2001:db8::10")
    assert not flt.blocks("2001:db8::100")
    assert flt.blocks("::1")
    assert not flt.blocks("::2")
    assert len(flt) == 2


def test_ipv4_mapped_address_is_judged_by_the_ipv4_list() -> None:
    flt, _ = parse_ip_filter(b"x:127.0.0.0-127.0.0.255\n")
    assert flt.blocks("::ffff:127.0.0.5")
    assert flt.blocks(ipaddress.IPv4Address("127.0.0.5"))
    assert not flt.blocks("not an address")  # host names are never resolved here


def test_bad_lines_are_reported_with_their_number_and_skipped() -> None:
    data = (
        b"# comment\n"
        b"// also a comment\n"
        b"\n"
        b"1.2.3.4 - 1.2.3.5 , 000 , ok\n"
        b"1.2.3.400 - 1.2.3.5 , 000 , octet\n"
        b"garbage\n"
        b"9.9.9.9 - 1.1.1.1 , 0 , backwards\n"
        b"x:1.1.1.1-::1\n"
        b"1.0.0.0 - 1.0.0.1 , abc , level\n"
        b"y:5.5.5.5-5.5.5.6\n"
    )
    flt, bad = parse_ip_filter(data)
    assert [b.line for b in bad] == [5, 6, 7, 8, 9]
    assert str(bad[2]) == "line 7: range start after its end"
    assert flt.ranges(4) == [(ip4("1.2.3.4"), ip4("1.2.3.5")), (ip4("5.5.5.5"), ip4("5.5.5.6"))]


def test_overlapping_and_adjacent_ranges_merge() -> None:
    data = b"a:1.0.0.10-1.0.0.20\nb:1.0.0.0-1.0.0.12\nc:1.0.0.21-1.0.0.30\nd:1.0.0.40-1.0.0.50\n"
    flt, _ = parse_ip_filter(data)
    assert flt.ranges(4) == [(ip4("1.0.0.0"), ip4("1.0.0.30")), (ip4("1.0.0.40"), ip4("1.0.0.50"))]


def test_gzip_is_decompressed_and_corrupt_gzip_is_a_decode_error() -> None:
    blob = gzip.compress(b"x:8.8.8.0-8.8.8.255\n")
    assert parse_ip_filter(blob)[0].blocks("8.8.8.8")
    with pytest.raises(DecodeError):
        parse_ip_filter(blob[:-10])
    with pytest.raises(DecodeError):
        parse_ip_filter(blob[:12] + b"\xff" * 20)


def test_oversized_gzip_is_refused_without_inflating_it_all() -> None:
    bomb = gzip.compress(b"#" * (MAX_FILTER_BYTES + 10), compresslevel=9)
    with pytest.raises(DecodeError, match="larger than"):
        parse_ip_filter(bomb)


def test_constructor_checks_ranges() -> None:
    with pytest.raises(ValueError):
        IPFilter(v4=[(5, 4)])
    with pytest.raises(ValueError):
        IPFilter(v4=[(0, V4_MAX + 1)])


# ---------------------------------------------------------------- properties

v4_ranges = st.lists(
    st.tuples(st.integers(0, V4_MAX), st.integers(0, 1 << 12)).map(
        lambda t: (t[0], min(V4_MAX, t[0] + t[1]))
    ),
    max_size=30,
)
v6_ranges = st.lists(
    st.tuples(st.integers(0, V6_MAX), st.integers(0, 1 << 70)).map(
        lambda t: (t[0], min(V6_MAX, t[0] + t[1]))
    ),
    max_size=10,
)


def _v4_text(value: int, zero_pad: bool) -> str:
    octets = [(value >> s) & 255 for s in (24, 16, 8, 0)]
    return ".".join(f"{o:03d}" if zero_pad else str(o) for o in octets)


def format_lines(v4: list[tuple[int, int]], v6: list[tuple[int, int]], styles: list[int]) -> bytes:
    """A filter text in a mix of the two formats (the test-side encoder)."""
    lines = []
    for i, (start, end) in enumerate(v4):
        style = styles[i % len(styles)] if styles else 0
        if style == 0:
            lines.append(f"{_v4_text(start, True)} - {_v4_text(end, True)} , 000 , r{i}")
        elif style == 1:
            lines.append(f"range: {i}:{_v4_text(start, False)}-{_v4_text(end, False)}")
        else:
            lines.append(f"{_v4_text(start, False)}-{_v4_text(end, False)}")
    for i, (start, end) in enumerate(v6):
        a, b = ipaddress.IPv6Address(start), ipaddress.IPv6Address(end)
        lines.append(f"{a} - {b} , 10 , six" if i % 2 else f"six {i}:{a}-{b}")
    return "\n".join(lines).encode()


@given(v4_ranges, v6_ranges, st.lists(st.integers(0, 2), max_size=3), st.booleans())
def test_round_trip_through_the_text_formats(
    v4: list[tuple[int, int]], v6: list[tuple[int, int]], styles: list[int], zipped: bool
) -> None:
    data = format_lines(v4, v6, styles)
    flt, bad = parse_ip_filter(gzip.compress(data) if zipped else data)
    assert bad == []
    assert flt.ranges(4) == IPFilter(v4=v4).ranges(4)
    assert flt.ranges(6) == IPFilter(v6=v6).ranges(6)


@given(
    v4_ranges,
    v6_ranges,
    st.lists(st.integers(0, V4_MAX), max_size=20),
    st.lists(st.integers(0, V6_MAX), max_size=10),
)
def test_lookup_equals_a_naive_scan(
    v4: list[tuple[int, int]], v6: list[tuple[int, int]], probes4: list[int], probes6: list[int]
) -> None:
    flt = IPFilter(v4=v4, v6=v6)
    # Probe the edges of every range too: that is where off-by-one errors live.
    edges = [x for s, e in v4 for x in (s - 1, s, e, e + 1) if 0 <= x <= V4_MAX]
    for value in probes4 + edges:
        expected = any(s <= value <= e for s, e in v4)
        assert flt.blocks(ipaddress.IPv4Address(value)) is expected
        assert flt.blocks(str(ipaddress.IPv4Address(value))) is expected
    for value in probes6 + [x for s, e in v6 for x in (s, e, e + 1) if x <= V6_MAX]:
        addr = ipaddress.IPv6Address(value)
        if addr.ipv4_mapped is not None:
            continue
        assert flt.blocks(addr) is any(s <= value <= e for s, e in v6)
    merged = flt.ranges(4)
    assert all(e1 + 1 < s2 for (_, e1), (s2, _) in itertools.pairwise(merged))


@given(st.binary(max_size=400))
def test_totality_on_arbitrary_bytes(data: bytes) -> None:
    try:
        flt, bad = parse_ip_filter(data)
    except DecodeError:
        return
    assert isinstance(flt, IPFilter)
    assert all(isinstance(b, BadLine) and 1 <= b.line <= data.count(b"\n") + 1 for b in bad)


@given(mutated(st.tuples(v4_ranges, v6_ranges).map(lambda t: format_lines(t[0], t[1], [0, 1]))))
def test_totality_on_mutated_lists(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        parse_ip_filter(data)


# ---------------------------------------------------------------- the bulk fast path


def _line_by_line(data: bytes) -> tuple[list[tuple[int, int]], list[int]]:
    """The reference: every line through the slow per-line parser (`ipaddress`)."""
    cols: tuple[list[int], list[int]] = ([], [])
    bad: list[BadLine] = []
    for number, line in enumerate(data.decode("utf-8", "replace").split("\n"), 1):
        ipfilter._slow_line(line, number, cols, [], bad)
    return IPFilter(v4=zip(*cols, strict=True)).ranges(4), [b.line for b in bad]


@given(mutated(st.tuples(v4_ranges, v6_ranges).map(lambda t: format_lines(t[0], t[1], [0, 1, 2]))))
def test_bulk_parse_agrees_with_the_line_by_line_parser(data: bytes) -> None:
    """The SWAR bulk path (and its fallback for bad octets) keeps every range and
    reports the same lines as parsing each line on its own."""
    if data[:2] == b"\x1f\x8b":
        return
    flt, bad = parse_ip_filter(data)
    ranges, bad_lines = _line_by_line(data)
    assert flt.ranges(4) == ranges
    assert [b.line for b in bad] == bad_lines


@pytest.mark.parametrize(
    "line",
    [
        "001.002.003.000 - 001.002.003.255 , 000 , Some ISP",
        "1.2.3.0 - 1.2.3.255 , 127 , x",
        "1.2.3.0-1.2.3.255 , 0",
        "1.2.3.0 - 1.2.3.255\r",
        "Some org: with colons:1.2.3.0-1.2.3.255",
    ],
)
def test_common_lines_take_the_bulk_path(line: str) -> None:
    """What keeps 500,000 lines under a second: usual lines never reach `ipaddress`."""
    [(emule, p2p, other)] = ipfilter._LINE_RE.findall(line)
    assert emule or p2p
    assert not other


def test_octet_above_255_among_good_lines_is_reported_and_the_rest_kept() -> None:
    data = b"".join(f"x:{i}.0.0.0-{i}.0.0.9\n".encode() for i in range(250, 260))
    flt, bad = parse_ip_filter(data)
    assert [b.line for b in bad] == [7, 8, 9, 10]
    assert {str(b).split(": ", 1)[1] for b in bad} == {"octet above 255"}
    assert len(flt) == 6
