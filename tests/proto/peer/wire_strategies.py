"""Hypothesis strategies for peer-wire messages and stream cuts (shared by the peer tests)."""

from __future__ import annotations

import itertools

from hypothesis import strategies as st

from shoal.peer.messages import (
    BLOCK_SIZE,
    AllowedFast,
    BitfieldMessage,
    Cancel,
    Choke,
    Extended,
    Have,
    HaveAll,
    HaveNone,
    Interested,
    KeepAlive,
    Message,
    NotInterested,
    Piece,
    Port,
    Reject,
    Request,
    Suggest,
    Unchoke,
)

U32 = st.integers(0, 2**32 - 1)


def wire_messages(num_pieces: int | None = None) -> st.SearchStrategy[Message]:
    """Every message type, valid for a decoder with default limits and `num_pieces`."""
    index = U32 if num_pieces is None else st.integers(0, max(num_pieces - 1, 0))
    if num_pieces is None:
        bitfield = st.binary(max_size=64)
    else:
        nbytes = (num_pieces + 7) // 8
        spare = 8 * nbytes - num_pieces
        bitfield = st.binary(min_size=nbytes, max_size=nbytes).map(
            lambda b: b[:-1] + bytes([b[-1] & (0xFF << spare) & 0xFF]) if b else b
        )
    return st.one_of(
        st.sampled_from(
            [KeepAlive(), Choke(), Unchoke(), Interested(), NotInterested(), HaveAll(), HaveNone()]
        ),
        st.builds(Have, index),
        st.builds(BitfieldMessage, bitfield),
        st.builds(Request, index, U32, st.integers(0, BLOCK_SIZE)),
        st.builds(Piece, index, U32, st.binary(max_size=2 * 1024)),
        st.builds(Cancel, index, U32, U32),
        st.builds(Reject, index, U32, U32),
        st.builds(Port, st.integers(0, 65535)),
        st.builds(Suggest, index),
        st.builds(AllowedFast, index),
        st.builds(Extended, st.integers(0, 255), st.binary(max_size=256)),
    )


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    """`data` cut at the given offsets (clamped, sorted, duplicates give empty parts dropped)."""
    points = sorted({min(max(c, 0), len(data)) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]
