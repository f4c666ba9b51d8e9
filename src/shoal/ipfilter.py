"""IP filter lists: eMule ``ipfilter.dat`` and PeerGuardian P2P text, parsed once into
sorted, merged ranges so that "is this address blocked?" is one `bisect` (O(log n)).

Why pure: the list is remote-ish data (users download block lists from anywhere), so
the parser gets the same totality guarantee as every other parser: only `DecodeError`
escapes, and a bad line is reported with its line number and skipped rather than
failing the whole list. Reading the file (and reloading it) is the caller's business.

Formats, one range per line (``#`` and ``//`` start comments, blank lines are skipped):

* eMule: ``001.002.003.000 - 001.002.003.255 , 000 , description``. The second field
  is the access level; as in eMule and qBittorrent, a level above 127 means "allow" and
  the line is ignored. The level and description may be missing. Octets may carry
  leading zeros (they are decimal, not octal).
* PeerGuardian P2P: ``description:1.2.3.0-1.2.3.255``. The description may contain
  colons; the range is what follows the colon that leaves a valid range.

Both formats may carry IPv6 ranges (``::1 - ::ff , 000 , x`` / ``x:::1-::ff``). Data
starting with the gzip magic is decompressed first (bounded by `MAX_FILTER_BYTES`).

Speed (500,000 lines must load in well under a second): one regular expression runs
over the whole text and yields one match per line, with IPv4 octets captured; octets
are turned into integers through a table rather than `int()`, and ranges are packed
into single integers so that sorting compares ints, not tuples. Only lines the fast
expression does not recognise (comments, IPv6, odd spacing, errors) take the slow
path through `ipaddress`. `python tools/bench/ipfilter_bench.py` measures it.
"""

from __future__ import annotations

import bisect
import ipaddress
import itertools
import operator
import re
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, final

from .errors import DecodeError

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["BLOCK_LEVEL", "MAX_FILTER_BYTES", "BadLine", "IPFilter", "parse_ip_filter"]

#: eMule access levels up to this one block; higher levels allow (and are ignored).
BLOCK_LEVEL: Final = 127
#: Largest filter text accepted (after gzip); real lists are tens of MB.
MAX_FILTER_BYTES: Final = 256 * 1024 * 1024

_V4_MAX: Final = (1 << 32) - 1
_V6_MAX: Final = (1 << 128) - 1
_OCTET: Final = r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})"
_SP: Final = r"[ \t]*"
# One match per line: an eMule IPv4 line, a P2P IPv4 line, or anything else (group 18).
_LINE_RE: Final = re.compile(
    rf"^(?:{_SP}{_OCTET}{_SP}-{_SP}{_OCTET}{_SP}(?:,{_SP}(\d+){_SP}(?:,[^\n]*)?)?\r?"
    rf"|[^\n]*:{_SP}{_OCTET}{_SP}-{_SP}{_OCTET}{_SP}\r?"
    r"|([^\n]*))$",
    re.ASCII | re.MULTILINE,
)
# Decimal octet text (leading zeros allowed, at most 3 digits) -> value; >255 is absent.
_OCTETS: Final[dict[str, int]] = {
    f"{v:0{w}d}": v for v in range(256) for w in (1, 2, 3) if len(f"{v:0{w}d}") == w
}
# The same, pre-shifted into each octet's place: a dotted quad is four lookups and ORs.
_SHIFTED: Final = tuple({k: v << shift for k, v in _OCTETS.items()} for shift in (24, 16, 8, 0))


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that was skipped: its 1-based number and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def _merge(ranges: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Sorted, disjoint, non-adjacent (starts, ends) from inclusive ranges in any order."""
    ranges.sort()
    starts: list[int] = []
    ends: list[int] = []
    for start, end in ranges:
        if ends and start <= ends[-1] + 1:
            if end > ends[-1]:
                ends[-1] = end
        else:
            starts.append(start)
            ends.append(end)
    return starts, ends


def _hit(starts: list[int], ends: list[int], value: int) -> bool:
    i = bisect.bisect_right(starts, value) - 1
    return i >= 0 and value <= ends[i]


@final
class IPFilter:
    """An immutable set of blocked IPv4 and IPv6 ranges.

    Built from inclusive integer ranges; overlapping and adjacent ranges are merged,
    so `len()` counts disjoint ranges and a lookup is one binary search.
    """

    __slots__ = ("_v4", "_v6")

    def __init__(
        self, v4: Iterable[tuple[int, int]] = (), v6: Iterable[tuple[int, int]] = ()
    ) -> None:
        self._v4 = _merge(_checked(v4, _V4_MAX))
        self._v6 = _merge(_checked(v6, _V6_MAX))

    @classmethod
    def _from_merged(
        cls, v4: tuple[list[int], list[int]], v6: tuple[list[int], list[int]]
    ) -> IPFilter:
        self = cls.__new__(cls)
        self._v4 = v4
        self._v6 = v6
        return self

    def __len__(self) -> int:
        return len(self._v4[0]) + len(self._v6[0])

    def __repr__(self) -> str:
        return f"<IPFilter {len(self._v4[0])} IPv4 and {len(self._v6[0])} IPv6 ranges>"

    def ranges(self, version: int) -> list[tuple[int, int]]:
        """The merged inclusive ranges of one IP version (4 or 6), ascending."""
        starts, ends = self._v4 if version == 4 else self._v6
        return list(zip(starts, ends, strict=True))

    def blocks(self, ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        """Is `ip` inside a blocked range? Text that is not an IP address is not blocked
        (a host name cannot be judged before resolution, and we never resolve here).
        An IPv4-mapped IPv6 address is judged by the IPv4 list."""
        if isinstance(ip, str):
            parts = ip.split(".")
            if len(parts) == 4 and ":" not in ip:  # the common case, without ipaddress
                o24, o16, o8, o0 = _SHIFTED
                try:
                    value = o24[parts[0]] | o16[parts[1]] | o8[parts[2]] | o0[parts[3]]
                except KeyError:
                    return False
                return _hit(*self._v4, value)
            try:
                ip = ipaddress.ip_address(ip.partition("%")[0])
            except ValueError:
                return False
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.ipv4_mapped is not None:
                return _hit(*self._v4, int(ip.ipv4_mapped))
            return _hit(*self._v6, int(ip))
        return _hit(*self._v4, int(ip))


def _checked(ranges: Iterable[tuple[int, int]], top: int) -> list[tuple[int, int]]:
    out = []
    for start, end in ranges:
        if not 0 <= start <= end <= top:
            raise ValueError(f"bad range {start}..{end}")
        out.append((start, end))
    return out


def parse_ip_filter(data: bytes) -> tuple[IPFilter, list[BadLine]]:
    """Parse an eMule or P2P filter list (gzip allowed): the filter and the skipped lines.

    Raises:
        DecodeError: the gzip stream is corrupt or the text exceeds `MAX_FILTER_BYTES`.
        Bad lines never raise; they are returned.
    """
    text = _text(data)
    packed: list[int] = []  # IPv4: start << 32 | end, so sorting compares plain ints
    v6: list[tuple[int, int]] = []
    bad: list[BadLine] = []
    o24, o16, o8, o0 = _SHIFTED
    for number, g in enumerate(_LINE_RE.findall(text), 1):
        if g[0] or g[9]:
            i = 0 if g[0] else 9
            if i == 0 and g[8] and int(g[8]) > BLOCK_LEVEL:
                continue
            try:
                start = o24[g[i]] | o16[g[i + 1]] | o8[g[i + 2]] | o0[g[i + 3]]
                end = o24[g[i + 4]] | o16[g[i + 5]] | o8[g[i + 6]] | o0[g[i + 7]]
            except KeyError:
                bad.append(BadLine(number, "octet above 255"))
                continue
            if start > end:
                bad.append(BadLine(number, "range start after its end"))
            else:
                packed.append((start << 32) | end)
        else:
            _slow_line(g[17], number, packed, v6, bad)
    return IPFilter._from_merged(_merge_packed(packed), _merge(v6)), bad


def _text(data: bytes) -> str:
    if data[:2] == b"\x1f\x8b":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = inflater.decompress(data, MAX_FILTER_BYTES + 1)
        except zlib.error as exc:
            raise DecodeError(f"corrupt gzip data: {exc}") from None
        if not inflater.eof and not inflater.unconsumed_tail:
            raise DecodeError("truncated gzip data")
    if len(data) > MAX_FILTER_BYTES:
        raise DecodeError(f"filter list larger than {MAX_FILTER_BYTES} bytes")
    return data.decode("utf-8", "replace")


def _merge_packed(packed: list[int]) -> tuple[list[int], list[int]]:
    """`_merge` for IPv4 ranges packed as ``start << 32 | end``.

    Written as whole-list operations (`map`, `accumulate`, `compress` run in C) rather
    than a Python loop: this is half the load time of a 500,000-line list otherwise.
    A range starts a new merged range when it begins past 1 + the largest end so far.
    """
    packed.sort()
    starts = list(map(operator.rshift, packed, itertools.repeat(32)))
    ends = list(map(operator.and_, packed, itertools.repeat(_V4_MAX)))
    if not starts:
        return [], []
    reach = list(itertools.accumulate(ends, max))
    fresh = [True, *map(operator.gt, starts[1:], map((1).__add__, reach))]
    firsts = list(itertools.compress(range(len(starts)), fresh))
    merged_ends = [reach[i - 1] for i in firsts[1:]]
    merged_ends.append(reach[-1])
    return list(itertools.compress(starts, fresh)), merged_ends


def _slow_line(
    line: str, number: int, v4: list[int], v6: list[tuple[int, int]], bad: list[BadLine]
) -> None:
    """Comments, blank lines, IPv6 and anything the fast expression did not take."""
    line = line.strip()
    if not line or line.startswith(("#", "//")):
        return
    try:
        parsed = _parse_emule(line) or _parse_p2p(line)
    except ValueError as exc:
        bad.append(BadLine(number, str(exc)))
        return
    if parsed is None:
        bad.append(BadLine(number, "neither an eMule nor a P2P range"))
        return
    start, end, blocked = parsed
    if not blocked:
        return
    if start.version != end.version:
        bad.append(BadLine(number, "range mixes IPv4 and IPv6"))
    elif int(start) > int(end):
        bad.append(BadLine(number, "range start after its end"))
    elif start.version == 4:
        v4.append((int(start) << 32) | int(end))
    else:
        v6.append((int(start), int(end)))


_Parsed = tuple[
    ipaddress.IPv4Address | ipaddress.IPv6Address,
    ipaddress.IPv4Address | ipaddress.IPv6Address,
    bool,
]


def _parse_emule(line: str) -> _Parsed | None:
    head, _, tail = line.partition(",")
    first, dash, last = head.partition("-")
    if not dash:
        return None
    try:
        start, end = _ip(first), _ip(last)
    except ValueError:
        return None  # maybe a P2P line whose description has a comma
    level = tail.partition(",")[0].strip()
    if level and not (level.isascii() and level.isdigit()):
        raise ValueError(f"access level {level[:20]!r} is not a number")
    return start, end, not level or int(level) <= BLOCK_LEVEL


def _parse_p2p(line: str) -> _Parsed | None:
    left, dash, last = line.rpartition("-")
    if not dash:
        return None
    end = _ip(last)
    # The description may contain colons (and an IPv6 start begins with some): take
    # the first colon after which a valid address follows.
    at = left.find(":")
    while at != -1:
        try:
            return _ip(left[at + 1 :]), end, True
        except ValueError:
            at = left.find(":", at + 1)
    raise ValueError("no valid range start after a ':'")


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address; IPv4 octets may have leading zeros (decimal, as the lists write them)."""
    text = text.strip()
    if ":" not in text:
        parts = text.split(".")
        values = [_OCTETS.get(p) for p in parts]
        if len(parts) != 4 or None in values:
            raise ValueError(f"{text[:45]!r} is not an IPv4 address")
        return ipaddress.IPv4Address(bytes(v for v in values if v is not None))
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        raise ValueError(f"{text[:45]!r} is not an IP address") from None
