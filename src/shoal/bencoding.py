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

Encoding is our own too: ``bencodepy.encode`` dispatches on ``type(x)`` and so raises
``KeyError`` on ``InfoHash``/``NodeId`` (bytes subclasses) and ``IntEnum`` codes, and it
silently accepts ``str``, ``bool`` and tuples. Ours writes only the four bencode types
(subclasses included), sorts dict keys, and so every encoding is canonical. bencodepy
remains the differential oracle in the tests.

Limits: ``max_size`` bounds the input, ``max_depth`` the nesting (recursion), and
integers may have at most ``MAX_INT_DIGITS`` digits so that a hostile 10^6-digit
integer cannot cost quadratic ``int()`` time.
"""

from __future__ import annotations

import re
from typing import Final, TypeAlias

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
    "raw_value",
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
# Only consulted after _INT failed, to say *why*: at least MAX_INT_DIGITS + 1 digits.
_LONG_INT = re.compile(rb"i-?[1-9][0-9]{%d}" % MAX_INT_DIGITS)
# BEP 3: "Strings are length-prefixed base ten followed by a colon and the string."
# Lengths have no sign and no leading zeros; 19 digits is more than any input we take.
_STRLEN = re.compile(rb"(0|[1-9][0-9]{0,18}):")


class _Parser:
    """One decode call: input, limits and the optional span capture.

    Strings are by far the most common token (dict keys, ids, tokens, paths), so the
    list and dict loops parse them inline instead of going through `value`; that, not
    cleverness elsewhere, is what puts this decoder ahead of bencodepy's on KRPC.
    """

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
        if 0x30 <= c <= 0x39:
            return self.string(pos)
        if c == 0x69:  # i
            m = _INT.match(data, pos)
            if m is None or m.group(1) == _NEG_ZERO:
                if _LONG_INT.match(data, pos):
                    raise DecodeError(f"integer at offset {pos} has over {MAX_INT_DIGITS} digits")
                raise DecodeError(f"malformed integer at offset {pos}")
            return int(m.group(1)), m.end()
        if c == 0x64:  # d
            return self.dict(pos, depth)
        if c == 0x6C:  # l
            return self.list(pos, depth)
        raise DecodeError(f"unexpected byte {bytes([c])!r} at offset {pos}")

    def string(self, pos: int) -> tuple[bytes, int]:
        m = _STRLEN.match(self.data, pos)
        if m is None:
            raise DecodeError(f"malformed string length at offset {pos}")
        start = m.end()
        # Checked before slicing: a declared length of 10^18 costs nothing.
        stop = start + int(m.group(1))
        if stop > self.end:
            raise DecodeError(f"string at offset {pos} runs past the end of input")
        return self.data[start:stop], stop

    def list(self, pos: int, depth: int) -> tuple[list[Bencoded], int]:
        if depth >= self.max_depth:
            raise DecodeError(f"nesting deeper than {self.max_depth} at offset {pos}")
        out: list[Bencoded] = []
        append = out.append
        pos += 1
        data, end = self.data, self.end
        while pos < end:
            c = data[pos]
            if c == 0x65:  # e
                return out, pos + 1
            if 0x30 <= c <= 0x39:  # inline string fast path
                m = _STRLEN.match(data, pos)
                if m is None:
                    raise DecodeError(f"malformed string length at offset {pos}")
                start = m.end()
                pos = start + int(m.group(1))
                if pos > end:
                    raise DecodeError(f"string at offset {start} runs past the end of input")
                append(data[start:pos])
            else:
                item, pos = self.value(pos, depth + 1)
                append(item)
        raise DecodeError("truncated list")

    def dict(self, pos: int, depth: int) -> tuple[dict[bytes, Bencoded], int]:
        if depth >= self.max_depth:
            raise DecodeError(f"nesting deeper than {self.max_depth} at offset {pos}")
        out: dict[bytes, Bencoded] = {}
        pos += 1
        data, end, strict = self.data, self.end, self.strict
        prev = b""
        capture = depth == 0 and self.span_key is not None
        while pos < end:
            if data[pos] == 0x65:  # e
                return out, pos + 1
            m = _STRLEN.match(data, pos)
            if m is None:
                raise DecodeError(f"dict key at offset {pos} is not a string")
            start = m.end()
            pos = start + int(m.group(1))
            if pos > end:
                raise DecodeError(f"dict key at offset {start} runs past the end of input")
            key = data[start:pos]
            # BEP 3: "Keys must be strings and appear in sorted order (sorted as raw
            # strings, not alphanumerics)." Duplicates are ambiguous (which one did the
            # sender mean?) and are refused in both modes.
            if key in out:
                raise DecodeError(f"duplicate dict key {key!r}")
            if strict and key < prev:
                raise DecodeError(f"dict key {key!r} out of sorted order")
            prev = key
            start = pos
            if pos < end and 0x30 <= data[pos] <= 0x39:  # inline string fast path
                m = _STRLEN.match(data, pos)
                if m is None:
                    raise DecodeError(f"malformed string length at offset {pos}")
                vstart = m.end()
                pos = vstart + int(m.group(1))
                if pos > end:
                    raise DecodeError(f"string at offset {start} runs past the end of input")
                out[key] = data[vstart:pos]
            else:
                out[key], pos = self.value(pos, depth + 1)
            if capture and key == self.span_key:
                self.span = (start, pos)
        raise DecodeError("truncated dict")

    def member(self, pos: int, key: bytes, depth: int, *, last: bool) -> tuple[int, int] | None:
        """The (start, end) offsets of `key`'s value in the dict at `pos`, if any.

        Unless it is the `last` key of a path, the value is not parsed (end = start):
        the caller descends into it, and parsing it here too would double the cost.
        """
        data, end = self.data, self.end
        if pos >= end or data[pos] != 0x64:  # d
            return None
        pos += 1
        while pos < end and data[pos] != 0x65:  # e
            name, pos = self.string(pos)
            start = pos
            if name == key and not last:
                return start, start
            m = _STRLEN.match(data, pos)  # strings skipped inline: most members are
            if m is not None:
                pos = m.end() + int(m.group(1))
                if pos > end:
                    raise DecodeError(f"string at offset {start} runs past the end of input")
            else:
                _, pos = self.value(pos, depth + 1)
            if name == key:
                return start, pos
        if pos >= end:
            raise DecodeError("truncated dict")
        return None


def _parse(
    data: object, strict: bool, max_depth: int, max_size: int, span_key: bytes | None
) -> tuple[_Parser, Bencoded, int]:
    if not isinstance(data, bytes):
        if not isinstance(data, (bytearray, memoryview)):
            raise TypeError(f"bencode input must be bytes, not {type(data).__name__}")
        data = bytes(data)
    if len(data) > max_size:
        raise DecodeError(f"input of {len(data)} bytes exceeds the {max_size}-byte limit")
    parser = _Parser(data, strict, max_depth, span_key)
    try:
        value, end = parser.value(0, 0)
    except RecursionError as exc:  # only reachable if max_depth exceeds the interpreter's
        raise DecodeError("nesting too deep") from exc
    return parser, value, end


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
    _, value, end = _parse(data, strict, max_depth, max_size, None)
    return value, end


def decode(
    data: bytes,
    *,
    strict: bool = True,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_size: int = DEFAULT_MAX_SIZE,
) -> Bencoded:
    """Decode exactly one bencoded value occupying all of `data`.

    Args:
        strict: also require canonical dict key order (sorted). Duplicate keys are
            refused in both modes; lenient mode exists for KRPC, where some clients
            send unsorted dicts, and for hashing non-canonical .torrent files.

    Raises:
        DecodeError: malformed, truncated, trailing bytes, too deep or too large.
    """
    parser, value, end = _parse(data, strict, max_depth, max_size, None)
    if end != parser.end:
        raise DecodeError(f"{parser.end - end} trailing bytes after the value")
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
    The span is ``None`` when the top-level dict has no `key`.

    Raises:
        DecodeError: as `decode`, or the top-level value is not a dict.
    """
    parser, value, end = _parse(data, strict, max_depth, max_size, key)
    if end != parser.end:
        raise DecodeError(f"{parser.end - end} trailing bytes after the value")
    if not isinstance(value, dict):
        raise DecodeError("top-level value is not a dict")
    span = None if parser.span is None else parser.data[parser.span[0] : parser.span[1]]
    return value, span


def raw_value(
    data: bytes,
    path: tuple[bytes, ...],
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_size: int = DEFAULT_MAX_SIZE,
) -> bytes | None:
    """The exact bytes of the value at `path` (dict keys from the top-level dict down).

    BEP 44 signs and hashes a value *as it was sent* (``a.v`` of a put, ``r.v`` of a
    get reply), and a decode/re-encode round trip is not an identity for a lenient
    input (unsorted dict keys get sorted). Only the dicts along `path` are walked,
    each once; the members passed on the way are skipped (strings inline, anything
    else with the ordinary lenient parser). None when a key along `path` is absent or
    the value it names is not a dict where the path goes on.

    Raises:
        DecodeError: malformed input (up to the value found).
    """
    parser, pos = _Parser(bytes(data), False, max_depth, None), 0
    if len(parser.data) > max_size:
        raise DecodeError(f"input of {len(parser.data)} bytes exceeds the {max_size}-byte limit")
    for depth, want in enumerate(path):
        last = depth == len(path) - 1
        found = parser.member(pos, want, depth, last=last)
        if found is None:
            return None
        start, stop = found
        if last:
            return parser.data[start:stop]
        pos = start
    return None


def is_canonical(data: bytes) -> bool:
    """True if `data` decodes strictly and re-encodes to the same bytes."""
    try:
        return encode(decode(data, strict=True)) == data
    except DecodeError:
        return False


def _encode_into(value: object, out: list[bytes], depth: int) -> None:
    # isinstance, not type(): InfoHash/NodeId (bytes subclasses) and IntEnum error codes
    # must encode as their base type. bool is refused: True is not a bencode integer.
    if isinstance(value, bytes):
        out += (b"%d:" % len(value), value)
    elif isinstance(value, int) and not isinstance(value, bool):
        out.append(b"i%de" % value)
    elif isinstance(value, dict | list):
        if depth >= DEFAULT_MAX_DEPTH:
            raise ValueError(f"value nested deeper than {DEFAULT_MAX_DEPTH} levels")
        if isinstance(value, list):
            out.append(b"l")
            for item in value:
                _encode_into(item, out, depth + 1)
        else:
            out.append(b"d")
            for k in value:
                if not isinstance(k, bytes):
                    raise TypeError(f"dict keys must be bytes, not {type(k).__name__}")
            # BEP 3: keys sorted as raw strings; bytes order is exactly that.
            for k in sorted(value):
                out += (b"%d:" % len(k), k)
                _encode_into(value[k], out, depth + 1)
        out.append(b"e")
    else:
        raise TypeError(f"cannot bencode {type(value).__name__}")


def encode(value: Bencoded) -> bytes:
    """Canonical bencoding of `value` (dict keys sorted).

    Subclasses of the four types (``InfoHash``, ``IntEnum``) encode as their base type.

    Raises:
        TypeError: `value` holds something other than int, bytes, list or bytes-keyed dict.
        ValueError: nested deeper than `DEFAULT_MAX_DEPTH` (what `decode` would refuse).
    """
    out: list[bytes] = []
    _encode_into(value, out, 0)
    return b"".join(out)


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
