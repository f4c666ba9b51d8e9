"""Strict binary bencode: one `DecodeError`, hard limits, canonical checks and raw spans.

Theory of operation
-------------------
Decoding is our own single-pass recursive-descent parser, because three things we
need cannot be had from ``bencodepy``'s decoder: (1) strictness — bencodepy leans
on Python's ``int()`` and so accepts ``i+3e``, ``i 3e``, ``i1_0e``, ``3 :abc`` and
duplicate dict keys; (2) the exact byte span of a value, which the info-hash must
be computed over even when a .torrent is not canonical; (3) decoding a prefix and
reporting where it ended (BEP 9 ``data`` messages carry raw bytes after the dict).
Tokens are matched by compiled regular expressions, so the grammar lives in two
patterns and the hot loop runs in C.

Encoding is delegated to ``bencodepy.encode`` after a cheap type check, so that only
the four bencode types (``int``, ``bytes``, ``list``, ``dict[bytes, ...]``) can be
written; ``bencodepy`` sorts dict keys, which makes every encoding canonical.

Limits: ``max_size`` bounds the input, ``max_depth`` the nesting (recursion), and
integers may have at most ``MAX_INT_DIGITS`` digits so that a hostile 10^6-digit
integer cannot cost quadratic ``int()`` time.
"""

from __future__ import annotations

import re
from typing import Final, TypeAlias

import bencodepy

from .errors import DecodeError

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_SIZE",
    "Bencoded",
    "decode",
    "decode_dict",
    "decode_prefix",
    "decode_with_span",
    "encode",
    "get_bytes",
    "get_dict",
    "get_int",
    "get_list",
    "is_canonical",
]

Bencoded: TypeAlias = "int | bytes | list[Bencoded] | dict[bytes, Bencoded]"

#: Nesting deeper than this is refused; real torrents and KRPC messages need < 10.
DEFAULT_MAX_DEPTH: Final = 64
#: Default input cap: large enough for a .torrent of a multi-TB torrent (~50 MB of
#: piece hashes at 4 MiB pieces would be 25 TB), small enough to bound memory.
DEFAULT_MAX_SIZE: Final = 64 * 1024 * 1024
#: 2**64 has 20 digits; 40 leaves headroom for odd but valid values and bounds ``int()``.
MAX_INT_DIGITS: Final = 40

# BEP 3: "Integers are represented by an 'i' followed by the number in base 10
# followed by an 'e'... i-0e is invalid. All encodings with a leading zero, such as
# i03e, are invalid, other than i0e."
_INT = re.compile(rb"i(-?(?:0|[1-9][0-9]{0,%d}))e" % (MAX_INT_DIGITS - 1))
_NEG_ZERO = b"-0"
# BEP 3: "Strings are length-prefixed base ten followed by a colon and the string."
# Lengths have no sign and no leading zeros; 19 digits is more than any input we take.
_STRLEN = re.compile(rb"(0|[1-9][0-9]{0,18}):")


class _Parser:
    """One decode call: input, limits and the optional span capture."""

    __slots__ = ("data", "end", "max_depth", "span", "span_key", "strict")

    def __init__(self, data: bytes, strict: bool, max_depth: int, span_key: bytes | None) -> None:
        self.data = data
        self.end = len(data)
        self.strict = strict
        self.max_depth = max_depth
        self.span_key = span_key
        self.span: tuple[int, int] | None = None

    def value(self, pos: int, depth: int) -> tuple[Bencoded, int]:
        data = self.data
        if pos >= self.end:
            raise DecodeError(f"truncated input at offset {pos}")
        c = data[pos]
        if c == 0x69:  # i
            m = _INT.match(data, pos)
            if m is None or m.group(1) == _NEG_ZERO:
                raise DecodeError(f"malformed integer at offset {pos}")
            return int(m.group(1)), m.end()
        if 0x30 <= c <= 0x39:
            return self.string(pos)
        if c == 0x6C:  # l
            return self.list(pos, depth)
        if c == 0x64:  # d
            return self.dict(pos, depth)
        raise DecodeError(f"unexpected byte {bytes([c])!r} at offset {pos}")

    def string(self, pos: int) -> tuple[bytes, int]:
        m = _STRLEN.match(self.data, pos)
        if m is None:
            raise DecodeError(f"malformed string length at offset {pos}")
        start = m.end()
        stop = start + int(m.group(1))
        if stop > self.end:
            raise DecodeError(f"string at offset {pos} runs past the end of input")
        return self.data[start:stop], stop

    def list(self, pos: int, depth: int) -> tuple[list[Bencoded], int]:
        if depth >= self.max_depth:
            raise DecodeError(f"nesting deeper than {self.max_depth} at offset {pos}")
        out: list[Bencoded] = []
        pos += 1
        data, end = self.data, self.end
        while True:
            if pos >= end:
                raise DecodeError("truncated list")
            if data[pos] == 0x65:  # e
                return out, pos + 1
            item, pos = self.value(pos, depth + 1)
            out.append(item)

    def dict(self, pos: int, depth: int) -> tuple[dict[bytes, Bencoded], int]:
        if depth >= self.max_depth:
            raise DecodeError(f"nesting deeper than {self.max_depth} at offset {pos}")
        out: dict[bytes, Bencoded] = {}
        pos += 1
        data, end = self.data, self.end
        prev: bytes | None = None
        capture = depth == 0 and self.span_key is not None
        while True:
            if pos >= end:
                raise DecodeError("truncated dict")
            c = data[pos]
            if c == 0x65:  # e
                return out, pos + 1
            if not 0x30 <= c <= 0x39:
                raise DecodeError(f"dict key at offset {pos} is not a string")
            key, pos = self.string(pos)
            # BEP 3: "Keys must be strings and appear in sorted order (sorted as raw
            # strings, not alphanumerics)." Duplicates are ambiguous and always refused.
            if key in out:
                raise DecodeError(f"duplicate dict key {key!r}")
            if self.strict and prev is not None and key < prev:
                raise DecodeError(f"dict key {key!r} out of sorted order")
            prev = key
            start = pos
            out[key], pos = self.value(pos, depth + 1)
            if capture and key == self.span_key:
                self.span = (start, pos)


def _check_size(data: bytes, max_size: int) -> None:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"bencode input must be bytes, not {type(data).__name__}")
    if len(data) > max_size:
        raise DecodeError(f"input of {len(data)} bytes exceeds the {max_size}-byte limit")


def decode_prefix(
    data: bytes,
    *,
    strict: bool = True,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_size: int = DEFAULT_MAX_SIZE,
) -> tuple[Bencoded, int]:
    """Decode one value at the start of `data`; return it and the offset just past it.

    For framings that put raw bytes after a bencoded dict (BEP 9 ``data`` messages).

    Raises:
        DecodeError: malformed, truncated, too deep or too large.
    """
    _check_size(data, max_size)
    data = bytes(data)
    try:
        return _Parser(data, strict, max_depth, None).value(0, 0)
    except RecursionError as exc:  # only reachable if max_depth exceeds the interpreter's
        raise DecodeError("nesting too deep") from exc


def decode(
    data: bytes,
    *,
    strict: bool = True,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_size: int = DEFAULT_MAX_SIZE,
) -> Bencoded:
    """Decode exactly one bencoded value occupying all of `data`.

    Args:
        strict: also require canonical dict key order (sorted, unique). Duplicate keys
            are refused in both modes; lenient mode exists for KRPC, where some clients
            send unsorted dicts.

    Raises:
        DecodeError: malformed, truncated, trailing bytes, too deep or too large.
    """
    value, end = decode_prefix(data, strict=strict, max_depth=max_depth, max_size=max_size)
    if end != len(data):
        raise DecodeError(f"{len(data) - end} trailing bytes after the value")
    return value


def decode_dict(
    data: bytes,
    *,
    strict: bool = True,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_size: int = DEFAULT_MAX_SIZE,
) -> dict[bytes, Bencoded]:
    """Like `decode`, but the value must be a dict.

    Raises:
        DecodeError: as `decode`, or the top-level value is not a dict.
    """
    value = decode(data, strict=strict, max_depth=max_depth, max_size=max_size)
    if not isinstance(value, dict):
        raise DecodeError("top-level value is not a dict")
    return value


def decode_with_span(
    data: bytes,
    key: bytes,
    *,
    strict: bool = False,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_size: int = DEFAULT_MAX_SIZE,
) -> tuple[dict[bytes, Bencoded], bytes | None]:
    """Decode a top-level dict and return the exact raw bytes of its `key` value.

    The info-hash is SHA-1 of the ``info`` value *as it appears in the file*, so a
    non-canonical .torrent must still hash to what other clients compute. Lenient by
    default for that reason; check canonical form separately with `is_canonical`.

    Raises:
        DecodeError: as `decode`, or the top-level value is not a dict.
    """
    _check_size(data, max_size)
    data = bytes(data)
    parser = _Parser(data, strict, max_depth, key)
    try:
        value, end = parser.value(0, 0)
    except RecursionError as exc:
        raise DecodeError("nesting too deep") from exc
    if end != len(data):
        raise DecodeError(f"{len(data) - end} trailing bytes after the value")
    if not isinstance(value, dict):
        raise DecodeError("top-level value is not a dict")
    span = None if parser.span is None else data[parser.span[0] : parser.span[1]]
    return value, span


def is_canonical(data: bytes) -> bool:
    """True if `data` decodes strictly and re-encodes to the same bytes."""
    try:
        return encode(decode(data, strict=True)) == data
    except DecodeError:
        return False


def _check_encodable(value: object, depth: int = 0) -> None:
    if depth > DEFAULT_MAX_DEPTH:
        raise ValueError("value nested too deeply to encode")
    if isinstance(value, bool) or not isinstance(value, (int, bytes, list, dict)):
        raise TypeError(f"cannot bencode {type(value).__name__}")
    if isinstance(value, list):
        for item in value:
            _check_encodable(item, depth + 1)
    elif isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, bytes):
                raise TypeError(f"dict keys must be bytes, not {type(k).__name__}")
            _check_encodable(v, depth + 1)


def encode(value: Bencoded) -> bytes:
    """Canonical bencoding of `value` (dict keys sorted).

    Raises:
        TypeError: `value` holds something other than int, bytes, list or bytes-keyed dict.
    """
    _check_encodable(value)
    out: bytes = bencodepy.encode(value)
    return out


# ---- typed accessors: narrow untrusted decoded values without cast() ------------------


def get_int(d: dict[bytes, Bencoded], key: bytes, *, what: str = "") -> int:
    """`d[key]` as an int; `DecodeError` if missing or of another type."""
    v = d.get(key)
    if not isinstance(v, int):
        raise DecodeError(f"{what or 'dict'}: {key.decode(errors='replace')!r} must be an integer")
    return v


def get_bytes(d: dict[bytes, Bencoded], key: bytes, *, what: str = "") -> bytes:
    """`d[key]` as bytes; `DecodeError` if missing or of another type."""
    v = d.get(key)
    if not isinstance(v, bytes):
        raise DecodeError(f"{what or 'dict'}: {key.decode(errors='replace')!r} must be a string")
    return v


def get_list(d: dict[bytes, Bencoded], key: bytes, *, what: str = "") -> list[Bencoded]:
    """`d[key]` as a list; `DecodeError` if missing or of another type."""
    v = d.get(key)
    if not isinstance(v, list):
        raise DecodeError(f"{what or 'dict'}: {key.decode(errors='replace')!r} must be a list")
    return v


def get_dict(d: dict[bytes, Bencoded], key: bytes, *, what: str = "") -> dict[bytes, Bencoded]:
    """`d[key]` as a dict; `DecodeError` if missing or of another type."""
    v = d.get(key)
    if not isinstance(v, dict):
        raise DecodeError(f"{what or 'dict'}: {key.decode(errors='replace')!r} must be a dict")
    return v
