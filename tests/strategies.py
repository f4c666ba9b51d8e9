"""Shared hypothesis strategies: bencode values and byte-level mutation of valid encodings.

`bencoded_values()` generates exactly what `shoal.bencoding.decode` can return (ints within
the digit limit, bytes, lists, bytes-keyed dicts), so round-trip properties hold without
filtering. `mutated()` turns any strategy of valid encodings into "almost valid" inputs,
which reach much deeper into a parser than uniformly random bytes do.
"""

from __future__ import annotations

from hypothesis import strategies as st

from shoal.bencoding import MAX_INT_DIGITS, Bencoded, encode

__all__ = ["bencoded_dicts", "bencoded_values", "encoded_values", "mutated"]

_INT_BOUND = 10**MAX_INT_DIGITS - 1


def bencoded_values(*, max_leaves: int = 20, max_bytes: int = 64) -> st.SearchStrategy[Bencoded]:
    """Any decodable bencode value: int, bytes, list or dict with bytes keys."""
    leaves: st.SearchStrategy[Bencoded] = st.one_of(
        st.integers(min_value=-_INT_BOUND, max_value=_INT_BOUND),
        st.binary(max_size=max_bytes),
    )

    def extend(children: st.SearchStrategy[Bencoded]) -> st.SearchStrategy[Bencoded]:
        return st.one_of(
            st.lists(children, max_size=6),
            st.dictionaries(st.binary(max_size=12), children, max_size=6),
        )

    return st.recursive(leaves, extend, max_leaves=max_leaves)


def bencoded_dicts(*, max_leaves: int = 20) -> st.SearchStrategy[dict[bytes, Bencoded]]:
    """Top-level dicts, the shape of every KRPC message and .torrent file."""
    return st.dictionaries(st.binary(max_size=12), bencoded_values(max_leaves=max_leaves))


def encoded_values(*, max_leaves: int = 20) -> st.SearchStrategy[bytes]:
    """Canonical encodings of `bencoded_values()`."""
    return bencoded_values(max_leaves=max_leaves).map(encode)


_OPS = ("flip", "set", "insert", "delete", "truncate", "duplicate")
# Bencode framing bytes plus URI delimiters, so one mutator serves bencode and magnet.
_STRUCTURAL = (b"i", b"e", b"l", b"d", b":", b"-", b"0", b"9", b"%", b"&", b"=", b"[", b"]")


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes], *, max_edits: int = 4) -> bytes:
    """A value of `base` with 1..max_edits byte-level edits applied.

    Edits: flip one bit, overwrite a byte, insert bytes, delete a range, truncate,
    duplicate a slice. Inserted bytes favour bencode's structural characters so that
    edits produce plausible-but-wrong framing rather than instant garbage.
    """
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(1, max_edits))):
        op = draw(st.sampled_from(_OPS))
        n = len(data)
        if op == "insert" or n == 0:
            at = draw(st.integers(0, n))
            chunk = draw(st.binary(min_size=1, max_size=4) | st.sampled_from(_STRUCTURAL))
            data[at:at] = chunk
            continue
        at = draw(st.integers(0, n - 1))
        if op == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[at] = draw(st.integers(0, 255))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[at:]
        else:  # duplicate
            data[at:at] = data[at : at + draw(st.integers(1, 16))]
    return bytes(data)
