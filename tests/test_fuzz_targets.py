"""One-argument totality properties for the engines and files that had no fuzz target.

Each test here takes a single ``bytes`` argument, so it is registered in tools/fuzz.py
(random-buffer driver) and driven by tools/fuzz/run.py (atheris, coverage-guided), and
its corpus files ``tests/corpus/<target>-*.bin`` are replayed by tests/proto/test_corpus.py.

Stream engines behind a cryptographic check (MSE) or a handshake (the peer wire) cannot
be reached by random bytes, so those targets read their input as a *mask* XORed onto
an honest transcript: the all-zero input is a valid session, and every flipped bit is a
corruption at that exact position. Bytes past the transcript are appended raw.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import random
import shutil
import tempfile
from functools import cache
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from shoal.errors import DecodeError, HandshakeError, RemoteProtocolError
from shoal.net.dht_service import load_state
from shoal.peer.connection import ConnectionState
from shoal.peer.mse import MSEHandshake, MSEState
from shoal.storage.resume import decode_resume

from .proto.peer.test_connection import drain, engine, opened, peer_stream
from .proto.peer.test_mse import SKEY

__all__ = [
    "test_dht_state_file_is_total",
    "test_mse_initiator_is_total",
    "test_mse_receiver_is_total",
    "test_peer_connection_is_total",
    "test_resume_file_is_total",
]


def xor_onto(honest: bytes, mask: bytes) -> bytes:
    """`honest` with `mask` XORed from the start; mask bytes past its end are appended."""
    head = bytes(a ^ b for a, b in zip(honest, mask, strict=False))
    return head + honest[len(head) :] + mask[len(honest) :]


def chunks(data: bytes, seed: int) -> list[bytes]:
    """Split `data` at a few positions derived from `seed` (engines must not care)."""
    rng = random.Random(seed)
    cuts = sorted(rng.randrange(len(data) + 1) for _ in range(rng.randrange(4)))
    bounds = [0, *cuts, len(data)]
    # Never an empty chunk: b"" means end of stream to a stream engine.
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


# ---- the peer wire: a PeerConnection fed bytes ---------------------------------------


@given(st.binary(max_size=2_000))
@example(b"")
@example(b"\x00" * 68 + b"\x00\x00\x00\x05\x04\x00\x00\x00\x09")
def test_peer_connection_is_total(data: bytes) -> None:
    """Target ``peer-connection``. Mode bit (first byte, low bit): 0 = raw bytes after
    a valid handshake; 1 = a mask over a seeder's whole stream (handshake included)."""
    if data[:1] and data[0] & 1:
        conn, stream = engine(), xor_onto(peer_stream(), data[1:])
        conn.set_metadata_size(1234)
    else:
        conn, stream = opened(), data[1:]
    try:
        for part in chunks(stream, len(data)):
            conn.receive_data(part, 1.0)
            drain(conn)
            conn.data_to_send()
        conn.receive_data(b"", 2.0)
        drain(conn)
    except RemoteProtocolError:  # HandshakeError is a subclass
        assert conn.state is ConnectionState.ERROR


# ---- MSE, both roles -----------------------------------------------------------------


@cache
def _transcripts() -> tuple[bytes, bytes]:
    """(what the initiator sends, what the receiver sends) in one honest handshake."""
    a = MSEHandshake.initiator(SKEY, rng=random.Random(1), initial_payload=b"IA" * 10)
    b = MSEHandshake.receiver([SKEY], rng=random.Random(2))
    sent_a = sent_b = b""
    for _ in range(8):  # a handshake is 4 legs; bounded anyway
        out_a = a.data_to_send()
        sent_a += out_a
        if out_a and b.state is not MSEState.DONE:
            b.receive_data(out_a)
        out_b = b.data_to_send()
        sent_b += out_b
        if out_b and a.state is not MSEState.DONE:
            a.receive_data(out_b)
        if not out_a and not out_b:
            break
    assert a.state is MSEState.DONE
    assert b.state is MSEState.DONE
    return sent_a, sent_b


def _mse_is_total(ours: MSEHandshake, stream: bytes, seed: int) -> None:
    try:
        for part in chunks(stream, seed):
            if ours.state is MSEState.DONE:
                break  # the rest is the next layer's (trailing_data)
            ours.receive_data(part)
            ours.data_to_send()
            while ours.next_event() is not None:
                pass
    except HandshakeError:
        assert ours.state is MSEState.ERROR


@given(st.binary(max_size=1_200))
@example(b"")
def test_mse_initiator_is_total(data: bytes) -> None:
    """Target ``mse-initiator``: our side A fed a mask over B's honest replies."""
    ours = MSEHandshake.initiator(SKEY, rng=random.Random(1), initial_payload=b"IA" * 10)
    _mse_is_total(ours, xor_onto(_transcripts()[1], data), len(data))


@given(st.binary(max_size=1_200))
@example(b"")
def test_mse_receiver_is_total(data: bytes) -> None:
    """Target ``mse-receiver``: our side B fed a mask over A's honest handshake."""
    ours = MSEHandshake.receiver([SKEY], rng=random.Random(2))
    _mse_is_total(ours, xor_onto(_transcripts()[0], data), len(data))


# ---- files a previous run wrote (maybe half-written, maybe not ours) -------------------


@given(st.binary(max_size=1_000))
def test_resume_file_is_total(data: bytes) -> None:
    """Target ``resume``: any file contents decode or raise `DecodeError`."""
    with contextlib.suppress(DecodeError):
        decode_resume(data)


@cache
def _scratch() -> Path:
    where = Path(tempfile.mkdtemp(prefix="shoal-fuzz-"))
    atexit.register(shutil.rmtree, where, True)
    return where / "dht.json"


@given(st.binary(max_size=1_000))
@example(b'{"version": 1, "node_id": "' + b"00" * 20 + b'", "nodes": []}')
def test_dht_state_file_is_total(data: bytes) -> None:
    """Target ``dht-state``: any file contents load or raise `DecodeError`."""
    path = _scratch()
    path.write_bytes(data)
    with contextlib.suppress(DecodeError):
        load_state(path)


def test_an_all_zero_mask_is_an_honest_session() -> None:
    # Guards the XOR-mask targets against being vacuous: with nothing flipped, both
    # MSE roles finish and the peer connection sees the whole seeder stream.
    a = MSEHandshake.initiator(SKEY, rng=random.Random(1), initial_payload=b"IA" * 10)
    _mse_is_total(a, xor_onto(_transcripts()[1], bytes(40)), 0)
    b = MSEHandshake.receiver([SKEY], rng=random.Random(2))
    _mse_is_total(b, xor_onto(_transcripts()[0], bytes(40)), 0)
    assert a.state is MSEState.DONE
    assert b.state is MSEState.DONE
    conn = engine()
    conn.receive_data(xor_onto(peer_stream(), bytes(10)), 0.0)
    assert conn.state is ConnectionState.OPEN
    assert len(drain(conn)) > 10
