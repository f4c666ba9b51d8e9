"""20-byte identifiers: length checks, hex/base32 parsing, XOR distance, injected randomness."""

from __future__ import annotations

import base64
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.errors import DecodeError
from shoal.ids import ID_LENGTH, InfoHash, NodeId, PeerId, distance, random_id

ids20 = st.binary(min_size=ID_LENGTH, max_size=ID_LENGTH)


@pytest.mark.parametrize("cls", [InfoHash, NodeId, PeerId])
@pytest.mark.parametrize("size", [0, 19, 21, 40])
def test_wrong_length_is_a_decode_error(cls: type[InfoHash], size: int) -> None:
    with pytest.raises(DecodeError, match="must be 20 bytes"):
        cls(b"\x01" * size)


def test_value_behaviour_is_that_of_bytes() -> None:
    raw = bytes(range(20))
    ih = InfoHash(raw)
    assert ih == raw
    assert hash(ih) == hash(raw)
    assert {raw: 1}[ih] == 1
    assert str(ih) == raw.hex()
    assert repr(ih) == f"InfoHash({raw.hex()!r})"
    assert int(ih) == int.from_bytes(raw, "big")


def test_known_base32_and_hex_forms() -> None:
    # BEP 9 allows the 32-character base32 form; it must name the same 20 bytes as the hex.
    hex_form = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
    ih = InfoHash.from_hex(hex_form)
    assert ih.to_base32() == "YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK"
    assert InfoHash.from_base32("yex6dqdlxisuvhoj6um3gnnkpqjwpkek") == ih
    assert base64.b32decode(ih.to_base32()) == bytes.fromhex(hex_form)
    assert InfoHash.from_hex(hex_form.upper()) == ih


@given(ids20)
def test_hex_and_base32_round_trip(raw: bytes) -> None:
    ih = InfoHash(raw)
    assert InfoHash.from_hex(ih.hex()) == ih
    assert InfoHash.from_hex(ih.hex().upper()) == ih
    assert InfoHash.from_base32(ih.to_base32()) == ih
    assert InfoHash.from_base32(ih.to_base32().lower()) == ih
    assert InfoHash.from_int(int(ih)) == ih
    assert type(NodeId.from_hex(ih.hex())) is NodeId


@pytest.mark.parametrize(
    "text",
    [
        "",
        "z" * 40,
        "0" * 39,
        "0" * 41,
        " " + "0" * 38 + " ",  # bytes.fromhex skips spaces: 19 bytes, still refused
        "0" * 38 + "é",
        "０" * 40,  # fullwidth digits
    ],
)
def test_bad_hex_is_a_decode_error(text: str) -> None:
    with pytest.raises(DecodeError):
        InfoHash.from_hex(text)


@pytest.mark.parametrize(
    "text",
    [
        "A" * 31,
        "A" * 33,
        "1" * 32,  # 0, 1, 8, 9 are not in the base32 alphabet
        "A" * 24 + "=" * 8,  # padding makes it shorter than 20 bytes
        "ß" * 32,  # upper() makes it 64 characters
        "é" * 32,
    ],
)
def test_bad_base32_is_a_decode_error(text: str) -> None:
    with pytest.raises(DecodeError):
        InfoHash.from_base32(text)


@given(st.text(max_size=50))
def test_text_parsers_are_total(text: str) -> None:
    for parse in (InfoHash.from_hex, InfoHash.from_base32):
        try:
            result = parse(text)
        except DecodeError:
            continue
        assert len(result) == ID_LENGTH


@given(st.text(alphabet="0123456789abcdefABCDEF \t\n", min_size=38, max_size=42))
def test_near_hex_is_parsed_or_refused_cleanly(text: str) -> None:
    # Accepted exactly when it is 40 hex digits: whitespace never sneaks through.
    if len(text) == 40 and not any(c.isspace() for c in text):
        assert InfoHash.from_hex(text).hex() == text.lower()
    else:
        with pytest.raises(DecodeError):
            InfoHash.from_hex(text)


def test_from_int_range() -> None:
    assert InfoHash.from_int(0) == bytes(20)
    assert InfoHash.from_int((1 << 160) - 1) == b"\xff" * 20
    for bad in (-1, 1 << 160):
        with pytest.raises(ValueError, match="160-bit"):
            InfoHash.from_int(bad)


@given(ids20, ids20, ids20)
def test_distance_is_a_metric_xor(a: bytes, b: bytes, c: bytes) -> None:
    assert distance(a, a) == 0
    assert distance(a, b) == distance(b, a)
    assert (distance(a, b) == 0) == (a == b)
    assert distance(a, c) == distance(a, b) ^ distance(b, c)  # XOR is its own inverse
    assert distance(a, c) <= distance(a, b) + distance(b, c)
    assert 0 <= distance(a, b) < 1 << 160


def test_random_id_comes_from_the_injected_generator() -> None:
    one = [random_id(random.Random(7)) for _ in range(2)]
    assert one[0] == one[1]
    assert len(one[0]) == ID_LENGTH
    assert random_id(random.Random(8)) != one[0]
    # Sanity: the generator's bits, big-endian, nothing else mixed in.
    assert one[0] == random.Random(7).getrandbits(160).to_bytes(20, "big")
