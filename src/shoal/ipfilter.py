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

Speed (500,000 lines should load in under a second): a list in which every line is a
blocking IPv4 range of one format, as published lists are, takes the clean path
(`_clean_v4`): lines are cut by slices (eMule: `_emule_columns`, which then copies the
digits by column) or `str.rpartition` (P2P), validated in bulk, and all converted at
once (`_bulk_ranges`: no Python work per octet), then merged with whole-list
operations. Anything else (comments after the header, IPv6, allowing levels, errors)
goes through the general `_parse_text`: one regular expression over the whole text,
one match per line, and only the lines it does not take go one by one through
`ipaddress`. Both give the same result (`tests/proto/test_ipfilter_load.py`).
`shoal.ipfilter_load` adds ``inet_pton`` for unpadded addresses.
`python tools/bench/ipfilter_bench.py` measures it.
"""

from __future__ import annotations

import array
import bisect
import contextlib
import ipaddress
import itertools
import operator
import re
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeAlias, final

from .errors import DecodeError

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["BLOCK_LEVEL", "MAX_FILTER_BYTES", "BadLine", "IPFilter", "PackV4", "parse_ip_filter"]

#: Dotted-quad texts -> their 4-byte big-endian forms, joined; None if one is not a
#: plain decimal quad (see `parse_ip_filter`).
PackV4: TypeAlias = Callable[[list[str]], bytes | None]
#: eMule access levels up to this one block; higher levels allow (and are ignored).
BLOCK_LEVEL: Final = 127
#: Largest filter text accepted (after gzip); real lists are tens of MB.
MAX_FILTER_BYTES: Final = 256 * 1024 * 1024

_V4_MAX: Final = (1 << 32) - 1
_V6_MAX: Final = (1 << 128) - 1
# Possessive quantifiers (``*+``, ``{1,3}+``) where backtracking can never help: they
# take a quarter off the expression's time.
_QUAD: Final = r"\d{1,3}+\.\d{1,3}+\.\d{1,3}+\.\d{1,3}+"
_SP: Final = r"[ \t]*+"
_RANGE: Final = rf"({_QUAD}{_SP}-{_SP}{_QUAD})"
#: eMule access levels 0..127 (leading zeros allowed): the ones that block.
_BLOCKING_LEVEL: Final = r"0*(?:1[01]\d|12[0-7]|[1-9]?\d)"
# One match per line: (eMule range, P2P range, anything else). Only the range text is
# captured, whole: octets are converted in bulk afterwards (see `_bulk_ranges`). The
# P2P description must backtrack: it ends at the colon that leaves a valid range.
_LINE_RE: Final = re.compile(
    rf"^(?:{_SP}{_RANGE}{_SP}(?:,{_SP}{_BLOCKING_LEVEL}{_SP}(?:,[^\n]*+)?)?\r?"
    rf"|[^\n]*:{_SP}{_RANGE}{_SP}\r?"
    r"|([^\n]*+))$",
    re.ASCII | re.MULTILINE,
)
# Zero-padding of 1- and 2-digit octets in the dot-separated octet text of `_bulk_ranges`:
# the replacement is a literal, so `re.sub` runs without calling back into Python.
_PAD1: Final = re.compile(r"\.(?=\d\.)")
_PAD2: Final = re.compile(r"\.(?=\d\d\.)")
# Decimal octet text (leading zeros allowed, at most 3 digits) -> value; >255 is absent.
_OCTETS: Final[dict[str, int]] = {
    f"{v:0{w}d}": v for v in range(256) for w in (1, 2, 3) if len(f"{v:0{w}d}") == w
}
# The same, pre-shifted into each octet's place: a dotted quad is four lookups and ORs.
_LITTLE_ENDIAN: Final = sys.byteorder == "little"
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


def parse_ip_filter(data: bytes, *, pack: PackV4 | None = None) -> tuple[IPFilter, list[BadLine]]:
    """Parse an eMule or P2P filter list (gzip allowed): the filter and the skipped lines.

    `pack`, if given, turns dotted-quad texts (decimal, no leading zeros) into their
    4-byte big-endian forms at once, or returns None if one is not such a text; it
    only makes loading faster (`shoal.ipfilter_load` passes ``socket.inet_pton``,
    which this pure module may not import), never changes the result.

    Raises:
        DecodeError: the gzip stream is corrupt or the text exceeds `MAX_FILTER_BYTES`.
        Bad lines never raise; they are returned.
    """
    text = _text(data)
    fast = _clean_v4(text, pack)
    if fast is not None:
        return IPFilter._from_merged(_merge_v4(*fast, ascending=True), ([], [])), []
    return _parse_text(text, pack)


def _parse_text(text: str, pack: PackV4 | None = None) -> tuple[IPFilter, list[BadLine]]:
    """The general parse: any mix of formats, IPv6, comments, bad lines."""
    lines = _LINE_RE.findall(text)
    ranges = [emule or p2p for emule, p2p, _ in lines if emule or p2p]
    bad: list[BadLine] = []
    v4 = _bulk_ranges(ranges, pack)
    if v4 is None:  # an octet above 255 or a backwards range: find it line by line
        v4 = [], []
        numbered = ((n, e or p) for n, (e, p, _) in enumerate(lines, 1) if e or p)
        for number, text in numbered:
            _one_range(text, number, v4, bad)
    v6: list[tuple[int, int]] = []
    if len(ranges) < len(lines):  # comments, blank lines, IPv6, odd spacing, errors
        for number, (emule, p2p, other) in enumerate(lines, 1):
            if not (emule or p2p):
                _slow_line(other, number, v4, v6, bad)
        bad.sort(key=_LINE)
    return IPFilter._from_merged(_merge_v4(*v4), _merge(v6)), bad


# The clean path (`_clean_v4`): lines are cut by slices and `str.rpartition` (C, no
# regular expression over the descriptions); only the range texts are checked, in bulk.
_THIRD: Final = operator.itemgetter(2)
_DIGITS_TO_ZERO: Final = bytes.maketrans(b"0123456789", b"0" * 10)
_RANGES_RE: Final = re.compile(rf"(?:{_SP}{_RANGE}{_SP}\n)*+", re.ASCII)
_EMULE_HEAD_RE: Final = re.compile(rf"{_SP}{_RANGE}{_SP},{_SP}(\d++){_SP},", re.ASCII)
_LEVEL_DIGITS_RE: Final = re.compile(_BLOCKING_LEVEL, re.ASCII)


def _clean_v4(text: str, pack: PackV4 | None = None) -> _Columns | None:
    """The IPv4 ranges of a list in which every line is a blocking IPv4 range of one
    format (after a header of comments and blank lines), else None: the general
    `_parse_text` then reads it line by line, with line numbers for bad lines.

    Why: running the line expression over 500,000 lines (descriptions included) was
    a third of the load time. Here each line is cut in C (eMule: `_emule_ranges`; P2P:
    the range after the last colon), and the range texts are validated all at once: when they all
    have the same shape (the digits' places; a published list usually does), the
    shape of one is checked and the rest compared as bytes; otherwise one
    `fullmatch` over them all. Stricter than `_parse_text` (anything unusual returns
    None), never looser: `test_clean_path_agrees_with_the_general_parser`.
    """
    lines = text.replace("\r\n", "\n").split("\n") if "\r" in text else text.split("\n")
    first, last = 0, len(lines)
    while first < last and _header(lines[first]):
        first += 1
    while last > first and not lines[last - 1].strip():
        last -= 1
    body = lines[first:last]
    if not body:
        return None
    if "," in body[0]:
        return _emule_columns(body, pack)
    # PeerGuardian P2P: the range is after the last colon.
    ranges = list(map(_THIRD, map(str.rpartition, body, itertools.repeat(":"))))
    return _checked_ranges(ranges, pack)


def _emule_columns(body: list[str], pack: PackV4 | None) -> _Columns | None:
    """The ranges of eMule lines that all begin alike: the same characters up to the
    comma after the access level, but for the digits (``ddd.ddd.ddd.ddd -
    ddd.ddd.ddd.ddd , ddd ,`` in a published ``ipfilter.dat``), with one blocking
    level; else None.

    Each line's beginning is one slice (the descriptions are never read); the first
    is checked by the line expression, the others are compared with it by shape. The
    digits then sit in fixed columns: with three-digit octets, each digit column is
    copied by one stride slice into the 4-byte lanes that `_swar` reads, so there is
    no per-line object after the slicing.
    """
    first = body[0]
    width = first.find(",", first.find(",") + 1) + 1
    head = _EMULE_HEAD_RE.fullmatch(first, 0, width) if width else None
    if head is None:
        return None
    heads = list(map(operator.itemgetter(slice(0, width)), body))
    joined = "".join(heads)
    if not joined.isascii():
        return None
    raw = joined.encode("ascii")
    shape = raw.translate(_DIGITS_TO_ZERO)
    count = len(body)
    if shape != shape[:width] * count:
        return None
    if not all(map(operator.le, heads, itertools.islice(heads, 1, None))):
        # Same shape: text order is numeric order (by start), and sorting the heads
        # is cheaper than sorting 64-bit integers after the conversion.
        heads.sort()
        raw = "".join(heads).encode("ascii")
    level = range(*head.span(2))
    if any(raw[at::width] != raw[at : at + 1] * count for at in level):
        return None  # more than one access level: the general parser sorts them out
    if not _LEVEL_DIGITS_RE.fullmatch(first, *head.span(2)):
        return None
    digits = [at for at in range(*head.span(1)) if shape[at] == ord("0")]
    if len(digits) != 24:  # some octet has fewer than three digits
        ranges = list(map(operator.itemgetter(slice(*head.span(1))), body))
        return _checked_ranges(ranges, pack)
    lanes = bytearray(32 * count)
    for i, at in enumerate(digits):
        octet, place = divmod(i, 3)
        lanes[4 * octet + place :: 32] = raw[at::width]
    records = _swar(bytes(lanes))
    return None if records is None else _from_records(records)


def _header(line: str) -> bool:
    """A comment or blank line that `_parse_text` skips too (a colon could make the
    P2P expression take a "comment" as a range: such a line ends the header)."""
    stripped = line.strip()
    return not stripped or (stripped.startswith(("#", "//")) and ":" not in line)


def _checked_ranges(ranges: list[str], pack: PackV4 | None) -> _Columns | None:
    """`_bulk_ranges` of range texts once they are all known to be ``a.b.c.d - e.f.g.h``."""
    joined = "\n".join(ranges) + "\n"
    if not joined.isascii():
        return None
    shape = joined.encode("ascii").translate(_DIGITS_TO_ZERO)
    width = len(ranges[0]) + 1
    uniform = shape == shape[:width] * len(ranges)
    if not _RANGES_RE.fullmatch(joined, 0, width if uniform else len(joined)):
        return None
    if uniform and not all(map(operator.le, ranges, itertools.islice(ranges, 1, None))):
        # Same shape: the digits sit in the same places, so text order is numeric
        # order, and sorting the texts is cheaper than sorting 64-bit integers.
        ranges = sorted(ranges)
    return _bulk_ranges(ranges, pack)


_LINE: Final = operator.attrgetter("line")
_Columns = tuple[list[int], list[int]]  # IPv4 (starts, ends)


def _bulk_ranges(ranges: list[str], pack: PackV4 | None = None) -> _Columns | None:
    """(starts, ends) of ``a.b.c.d - e.f.g.h`` texts; None if an octet is above 255 or
    a range runs backwards (the caller then finds the line and reports it).

    Why this shape: per-octet Python work (4 million `int()` or dict lookups for a
    500,000-line list) was most of the load time. Here every step is one C-level pass
    over all the ranges at once. The octets are zero-padded to three digits by two
    `re.sub` with literal replacements (if they are not already: eMule lists usually
    are), so each octet is the four bytes ``ddd.``. Read as one big integer, shifts,
    masks (an ASCII digit's low four bits are its value) and small multiplications
    (SWAR, with a Python big integer as the register) put each octet's value in the
    low 16 bits of its own 4-byte lane. The low byte of every lane, taken with a
    stride-4 slice, is the ranges as big-endian 32-bit words: start, end, start, end.
    Octets without leading zeros (P2P lists) go to `pack` first when there is one
    (`ipfilter_load`: the C address parser, faster than the padding).
    """
    if not ranges:
        return [], []
    records = _records(ranges, pack)
    return None if records is None else _from_records(records)


def _from_records(records: bytes) -> _Columns | None:
    """(starts, ends), ascending, of big-endian (start, end) records; None if one runs
    backwards."""
    flat = _big_endian_words("I", records)
    starts, ends = flat[0::2], flat[1::2]
    if any(map(operator.gt, starts, ends)):
        return None
    if not all(map(operator.le, starts, itertools.islice(starts, 1, None))):
        # Not published in order: sort the 64-bit (start, end) records as plain ints.
        # Back to big-endian bytes, then to columns (cheaper than a shift per range).
        packed = _big_endian_words("Q", records)
        packed.sort()
        words = array.array("Q", packed)
        if _LITTLE_ENDIAN:
            words.byteswap()
        flat = _big_endian_words("I", words.tobytes())
        starts, ends = flat[0::2], flat[1::2]
    return starts, ends


def _records(ranges: list[str], pack: PackV4 | None) -> bytes | None:
    """The ranges as big-endian 32-bit words (start, end, start, end, ...)."""
    dashed = "-".join(ranges).replace(" - ", "-")
    if " " in dashed or "\t" in dashed:  # spacing other than " - "
        dashed = dashed.replace(" ", "").replace("\t", "")
    if len(dashed) + 1 != 32 * len(ranges) and pack is not None:
        records = pack(dashed.split("-"))
        if records is not None:
            return records
    joined = dashed.replace("-", ".") + "."
    if len(joined) != 32 * len(ranges):  # not all octets have three digits yet
        joined = _PAD2.sub(".0", _PAD1.sub(".00", f".{joined}"))[1:]
    return _swar(joined.encode("ascii"))


def _swar(octets: bytes) -> bytes | None:
    """Octets written as 3 digits in 4-byte lanes (the 4th byte is ignored) -> one byte
    each; None if one is above 255 (see `_bulk_ranges`)."""
    count = len(octets) // 4
    digits = int.from_bytes(octets, "big")
    low = int.from_bytes(b"\0\0\0\x0f" * count, "big")  # ASCII digit & 0x0f = its value
    values = ((digits >> 24) & low) * 100 + ((digits >> 16) & low) * 10 + ((digits >> 8) & low)
    lanes = values.to_bytes(4 * count, "big")
    if lanes[2::4].strip(b"\0"):
        return None  # a value above 255 reached the lane's second byte
    return lanes[3::4]


def _big_endian_words(typecode: str, data: bytes) -> list[int]:
    words = array.array(typecode, data)
    if _LITTLE_ENDIAN:
        words.byteswap()
    return words.tolist()


def _one_range(text: str, number: int, v4: _Columns, bad: list[BadLine]) -> None:
    """One ``a.b.c.d - e.f.g.h`` text the fast expression took: kept, or a `BadLine`."""
    first, _, last = text.partition("-")
    o24, o16, o8, o0 = _SHIFTED
    a, b = first.strip().split("."), last.strip().split(".")
    try:
        start = o24[a[0]] | o16[a[1]] | o8[a[2]] | o0[a[3]]
        end = o24[b[0]] | o16[b[1]] | o8[b[2]] | o0[b[3]]
    except KeyError:
        bad.append(BadLine(number, "octet above 255"))
        return
    if start > end:
        bad.append(BadLine(number, "range start after its end"))
    else:
        v4[0].append(start)
        v4[1].append(end)


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


def _merge_v4(starts: list[int], ends: list[int], *, ascending: bool = False) -> _Columns:
    """`_merge` for IPv4 columns, written as whole-list operations (`map`, `accumulate`,
    `compress` run in C) rather than a Python loop, which was half the load time.

    The ranges from `_bulk_ranges` are already sorted; lines of the slow path (or of a
    list with errors) are appended after them, so the columns are sorted again here
    unless the starts ascend (equal starts in any order merge the same; `ascending`:
    the caller knows they do, as `_from_records` sorts them). A range starts
    a new merged range when it begins past 1 + the largest end so far.
    """
    if not starts:
        return [], []
    if not ascending and not all(map(operator.le, starts, itertools.islice(starts, 1, None))):
        pairs = sorted(zip(starts, ends, strict=True))
        starts, ends = [s for s, _ in pairs], [e for _, e in pairs]
    reach = list(itertools.accumulate(ends, max))
    fresh = [True, *map(operator.gt, itertools.islice(starts, 1, None), map(_PLUS_ONE, reach))]
    last = fresh[1:]
    last.append(True)  # a merged range ends where the next one is fresh
    return list(itertools.compress(starts, fresh)), list(itertools.compress(reach, last))


_PLUS_ONE: Final = (1).__add__


def _slow_line(
    line: str, number: int, v4: _Columns, v6: list[tuple[int, int]], bad: list[BadLine]
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
        v4[0].append(int(start))
        v4[1].append(int(end))
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
    # the first colon after which an address of the end's version follows, as the
    # line expression does (``d: 1::0.0.0.0-0.0.0.1`` is IPv4 from ``0.0.0.0``), else
    # the first after which any address follows (a range that mixes versions).
    first = None
    at = left.find(":")
    while at != -1:
        with contextlib.suppress(ValueError):
            start = _ip(left[at + 1 :])
            if start.version == end.version:
                return start, end, True
            if first is None:
                first = start
        at = left.find(":", at + 1)
    if first is None:
        raise ValueError("no valid range start after a ':'")
    return first, end, True


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
