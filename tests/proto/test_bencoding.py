"""Strict bencode: BEP 3 golden vectors, every known leniency hole, limits, spans, totality."""

from __future__ import annotations

import contextlib
import enum
import hashlib
import time
import tracemalloc
from typing import TYPE_CHECKING

import bencodepy
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from shoal.bencoding import (
    DEFAULT_MAX_DEPTH,
    MAX_INT_DIGITS,
    Bencoded,
    decode,
    decode_dict,
    decode_prefix,
    decode_with_span,
    encode,
    get_bytes,
    get_dict,
    get_int,
    get_list,
    is_canonical,
)
from shoal.errors import DecodeError
from shoal.ids import InfoHash, NodeId
from tests.strategies import bencoded_dicts, bencoded_values, encoded_values, mutated

if TYPE_CHECKING:
    from collections.abc import Callable

# ---- golden vectors: the examples in BEP 3, "bencoding" -------------------------------

BEP3_VECTORS: list[tuple[bytes, Bencoded]] = [
    (b"4:spam", b"spam"),
    (b"0:", b""),
    (b"i3e", 3),
    (b"i-3e", -3),
    (b"i0e", 0),
    (b"l4:spam4:eggse", [b"spam", b"eggs"]),
    (b"d3:cow3:moo4:spam4:eggse", {b"cow": b"moo", b"spam": b"eggs"}),
    (b"d4:spaml1:a1:bee", {b"spam": [b"a", b"b"]}),
]


@pytest.mark.parametrize(("raw", "value"), BEP3_VECTORS)
def test_bep3_examples_decode_and_encode(raw: bytes, value: Bencoded) -> None:
    assert decode(raw) == value
    assert encode(value) == raw
    assert is_canonical(raw)


def test_binary_strings_are_kept_as_bytes() -> None:
    raw = b"d2:id20:" + bytes(range(20)) + b"e"
    assert decode(raw) == {b"id": bytes(range(20))}


# ---- holes: inputs a lenient decoder (bencodepy, int()-based parsers) accepts ----------

MALFORMED = {
    "plus sign": b"i+3e",
    "space in int": b"i 3e",
    "underscore in int": b"i1_0e",
    "space in length": b"3 :abc",
    "leading zero int": b"i03e",
    "negative zero": b"i-0e",
    "empty int": b"ie",
    "bare minus": b"i-e",
    "double minus": b"i--1e",
    "unterminated int": b"i12",
    "leading zero length": b"03:abc",
    "negative length": b"-1:a",
    "length with plus": b"+1:a",
    "missing colon": b"3abc",
    "short string": b"5:abc",
    "leading zero length in list": b"l03:abce",
    "short string in list": b"l5:abce",
    "short key": b"d5:abe",
    "leading zero length in value": b"d1:a03:abce",
    "short string value": b"d1:a5:abce",
    "duplicate keys": b"d1:ai1e1:ai2ee",
    "duplicate keys unsorted": b"d1:bi1e1:ai2e1:bi3ee",
    "int key": b"di1ei2ee",
    "list key": b"dle1:ae",
    "dict key": b"ddei1ee",
    "key without value": b"d1:ae",
    "unterminated list": b"l4:spam",
    "unterminated dict": b"d1:a1:b",
    "trailing bytes": b"i1ex",
    "two values": b"0:0:",
    "empty input": b"",
    "unknown type": b"x",
    "non-ascii digit": "i\u0663e".encode(),
    "fullwidth digit length": "\uff13:abc".encode(),
    "uppercase marker": b"I1E",
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
@pytest.mark.parametrize("strict", [True, False])
def test_malformed_input_is_refused(raw: bytes, strict: bool) -> None:
    with pytest.raises(DecodeError):
        decode(raw, strict=strict)


def test_bencodepy_accepts_holes_we_close() -> None:
    # Why we do not delegate decoding: the reference library takes these.
    assert bencodepy.decode(b"i+3e") == 3
    assert bencodepy.decode(b"i 3e") == 3
    assert bencodepy.decode(b"i1_0e") == 10


def test_unsorted_keys_refused_only_when_strict() -> None:
    raw = b"d1:bi1e1:ai2ee"
    with pytest.raises(DecodeError, match="sorted"):
        decode(raw)
    assert decode(raw, strict=False) == {b"a": 2, b"b": 1}
    assert not is_canonical(raw)


def test_keys_sort_as_raw_bytes_not_text() -> None:
    # b"Z" (0x5a) < b"a" (0x61) < b"\xff": byte order, whatever a locale would say.
    raw = b"d1:Zi1e1:ai2e1:\xffi3ee"
    assert decode(raw) == {b"Z": 1, b"a": 2, b"\xff": 3}
    assert encode(decode(raw)) == raw
    with pytest.raises(DecodeError):
        decode(b"d1:ai2e1:Zi1ee")


def test_nested_dicts_checked_for_order_and_duplicates() -> None:
    with pytest.raises(DecodeError, match="sorted"):
        decode(b"d1:ad1:bi1e1:ai2eee")
    with pytest.raises(DecodeError, match="duplicate"):
        decode(b"d1:ad1:ai1e1:ai2eee", strict=False)


def test_error_messages_name_the_offset() -> None:
    with pytest.raises(DecodeError, match="offset 4"):
        decode(b"l1:ai03ee")


def test_decode_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        decode(b"i03e")


# ---- limits ---------------------------------------------------------------------------


def _fast(fn: Callable[[], object], limit: float = 1.0) -> float:
    """Run `fn` expecting DecodeError; return the seconds it took."""
    t0 = time.perf_counter()
    with pytest.raises(DecodeError):
        fn()
    elapsed = time.perf_counter() - t0
    assert elapsed < limit, f"took {elapsed:.3f}s"
    return elapsed


def _peak_alloc(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError):
            fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("opener", [b"l", b"d1:a"])
def test_deep_nesting_is_refused_fast(opener: bytes) -> None:
    raw = opener * 100_000
    _fast(lambda: decode(raw))
    assert _peak_alloc(lambda: decode(raw)) < 256 * 1024
    # Even with the depth limit raised past the interpreter's recursion limit.
    _fast(lambda: decode(raw, max_depth=10**6))


def test_depth_limit_is_exact() -> None:
    ok = b"l" * DEFAULT_MAX_DEPTH + b"e" * DEFAULT_MAX_DEPTH
    assert encode(decode(ok)) == ok
    too_deep = b"l" + ok + b"e"
    with pytest.raises(DecodeError, match="nesting"):
        decode(too_deep)
    assert decode(too_deep, max_depth=DEFAULT_MAX_DEPTH + 1) is not None
    assert decode(b"li1ee", max_depth=1) == [1]
    with pytest.raises(DecodeError):
        decode(b"llee", max_depth=1)


def test_encode_refuses_what_decode_would_refuse_as_too_deep() -> None:
    value: Bencoded = []
    for _ in range(DEFAULT_MAX_DEPTH):
        value = [value]
    with pytest.raises(ValueError, match="nested"):
        encode(value)


def test_huge_declared_string_length_allocates_nothing() -> None:
    raw = b"99999999999999:x"
    _fast(lambda: decode(raw))
    assert _peak_alloc(lambda: decode(raw)) < 64 * 1024
    # 20+ digit lengths are refused by the grammar before any int() conversion.
    _fast(lambda: decode(b"9" * 100_000 + b":x"))


def test_huge_integers_refused_in_bounded_time_and_memory() -> None:
    assert decode(b"i%de" % 2**64) == 2**64
    biggest = 10**MAX_INT_DIGITS - 1
    assert decode(b"i%de" % biggest) == biggest
    assert decode(b"i%de" % -biggest) == -biggest
    with pytest.raises(DecodeError, match=f"over {MAX_INT_DIGITS} digits"):
        decode(b"i%de" % (biggest + 1))
    with pytest.raises(DecodeError, match="malformed integer"):
        decode(b"i%d" % biggest)
    raw = b"i" + b"7" * 1_000_000 + b"e"
    _fast(lambda: decode(raw))
    assert _peak_alloc(lambda: decode(raw)) < 64 * 1024


def test_many_small_items_decode_in_linear_time() -> None:
    raw = b"l" + b"i1e" * 200_000 + b"e"
    t0 = time.perf_counter()
    value = decode(raw)
    assert isinstance(value, list)
    assert len(value) == 200_000
    assert time.perf_counter() - t0 < 2.0


def test_max_size() -> None:
    assert decode(b"4:spam", max_size=6) == b"spam"
    with pytest.raises(DecodeError, match="limit"):
        decode(b"4:spam", max_size=5)
    with pytest.raises(DecodeError, match="limit"):
        decode_prefix(b"4:spam", max_size=5)
    with pytest.raises(DecodeError, match="limit"):
        decode_with_span(b"d1:a0:e", b"a", max_size=5)


def test_accepts_bytes_like_and_refuses_text() -> None:
    assert decode(bytearray(b"i7e")) == 7
    assert decode(memoryview(b"xi7e")[1:]) == 7
    with pytest.raises(TypeError):
        decode("i7e")  # type: ignore[arg-type]


# ---- prefix and span ------------------------------------------------------------------


def test_decode_prefix_reports_end_offset() -> None:
    head = b"d8:msg_typei1e5:piecei0ee"
    raw = head + b"\x00\x01raw metadata piece"
    value, end = decode_prefix(raw)
    assert value == {b"msg_type": 1, b"piece": 0}
    assert end == len(head)
    assert raw[end:] == b"\x00\x01raw metadata piece"
    assert decode_prefix(b"i-12e") == (-12, 5)
    assert decode_prefix(b"0:tail") == (b"", 2)
    with pytest.raises(DecodeError):
        decode(raw)


@pytest.mark.parametrize("raw", [b"", b"d", b"d1:a", b"l", b"4:spa"])
def test_decode_prefix_refuses_truncation(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_prefix(raw)


CANONICAL_TORRENT = (
    b"d8:announce4:none4:info"
    b"d6:lengthi5e4:name1:x12:piece lengthi16384e6:pieces20:" + bytes(20) + b"e"  # sorted
    b"e"
)


def test_span_of_canonical_info_matches_reencoding() -> None:
    meta, span = decode_with_span(CANONICAL_TORRENT, b"info")
    assert span is not None
    assert span == encode(meta[b"info"])
    assert CANONICAL_TORRENT.index(span) > 0


def test_span_is_raw_bytes_for_non_canonical_info() -> None:
    # "name" before "length": unsorted, as some old torrent makers wrote it.
    info = b"d4:name1:x6:lengthi5e12:piece lengthi16384e6:pieces20:" + bytes(20) + b"e"
    raw = b"d8:announce4:none4:info" + info + b"e"
    meta, span = decode_with_span(raw, b"info")
    assert span == info
    assert hashlib.sha1(span).digest() != hashlib.sha1(encode(meta[b"info"])).digest()
    with pytest.raises(DecodeError):
        decode_with_span(raw, b"info", strict=True)


def test_span_only_looks_at_top_level_and_may_be_missing() -> None:
    raw = b"d1:ad4:infoi1eee"
    meta, span = decode_with_span(raw, b"info")
    assert meta == {b"a": {b"info": 1}}
    assert span is None


def test_span_of_string_and_int_values() -> None:
    raw = b"d4:infoi-7e4:name3:abce"
    assert decode_with_span(raw, b"info")[1] == b"i-7e"
    assert decode_with_span(raw, b"name")[1] == b"3:abc"


@pytest.mark.parametrize("raw", [b"le", b"i1e", b"d4:infodee0:"])
def test_span_requires_a_single_top_level_dict(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_with_span(raw, b"info")


def test_decode_dict() -> None:
    assert decode_dict(b"de") == {}
    with pytest.raises(DecodeError, match="not a dict"):
        decode_dict(b"le")


# ---- encoding -------------------------------------------------------------------------


class _Code(enum.IntEnum):
    GENERIC = 201


def test_encode_accepts_subclasses_as_their_base_type() -> None:
    ih = InfoHash(bytes(range(20)))
    value = {NodeId(b"\x01" * 20): _Code.GENERIC, b"h": ih}
    assert encode(value) == b"d20:" + b"\x01" * 20 + b"i201e1:h20:" + bytes(range(20)) + b"e"


@pytest.mark.parametrize(
    "value",
    [True, "text", 1.5, None, (1, 2), {b"a": False}, [b"x", "y"], {"key": 1}, {1: 1}],
    ids=repr,
)
def test_encode_refuses_non_bencode_types(value: object) -> None:
    with pytest.raises(TypeError):
        encode(value)  # type: ignore[arg-type]


def test_encode_sorts_keys() -> None:
    assert encode({b"b": 1, b"a": 2, b"": 3}) == b"d0:i3e1:ai2e1:bi1ee"


def test_typed_accessors() -> None:
    d = decode_dict(b"d1:ad1:xi1ee1:bl1:ye1:ci5e1:d3:abce")
    assert get_dict(d, b"a") == {b"x": 1}
    assert get_list(d, b"b") == [b"y"]
    assert get_int(d, b"c") == 5
    assert get_bytes(d, b"d") == b"abc"
    for getter in (get_dict, get_list, get_int, get_bytes):
        with pytest.raises(DecodeError, match="missing"):
            getter(d, b"missing", what="missing")
    with pytest.raises(DecodeError, match="'d' must be an integer"):
        get_int(d, b"d")


# ---- properties -----------------------------------------------------------------------


@given(bencoded_values())
def test_round_trip(value: Bencoded) -> None:
    raw = encode(value)
    assert decode(raw) == value
    assert decode(raw, strict=False) == value
    assert decode_prefix(raw + b"e") == (value, len(raw))


@given(encoded_values())
def test_canonical_bytes_reencode_identically(raw: bytes) -> None:
    assert encode(decode(raw)) == raw
    assert is_canonical(raw)


@given(bencoded_values())
def test_agrees_with_bencodepy_on_canonical_data(value: Bencoded) -> None:
    raw = encode(value)
    assert bencodepy.encode(value) == raw
    assert bencodepy.decode(raw) == value


@given(bencoded_dicts(), st.binary(max_size=12), bencoded_values(max_leaves=5))
def test_span_is_the_canonical_encoding_of_the_value(
    d: dict[bytes, Bencoded], key: bytes, v: Bencoded
) -> None:
    d[key] = v
    meta, span = decode_with_span(encode(d), key)
    assert meta == d
    assert span == encode(v)


def _only_decode_errors(data: bytes) -> None:
    for strict in (True, False):
        try:
            value = decode(data, strict=strict)
        except DecodeError:
            continue
        # Whatever is accepted must be a real value that survives re-encoding.
        assert decode(encode(value)) == value
        if strict:
            assert encode(value) == data
    try:
        _, end = decode_prefix(data)
        assert 0 < end <= len(data)
    except DecodeError:
        pass
    with contextlib.suppress(DecodeError):
        decode_with_span(data, b"info")


@given(st.binary(max_size=512) | mutated(encoded_values()))
@example(b"d1:ai1e1:ai2ee")
@example(b"l" * 2000)
@example(b"i" + b"1" * 100 + b"e")
def test_decode_is_total(data: bytes) -> None:
    """Totality: any bytes decode or raise DecodeError; never another exception.

    This is the `bencode` target of tools/fuzz.py, so it takes one `bytes` argument.
    """
    _only_decode_errors(data)
