"""MSE/PE handshake engine: known answers from the spec formulas, pairs, limits, fuzz."""

from __future__ import annotations

import hashlib
import itertools
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.errors import HandshakeError, LocalProtocolError
from shoal.peer import mse as mse_module
from shoal.peer.mse import (
    CryptoMethod,
    EncryptionPolicy,
    HandshakeComplete,
    MSEHandshake,
    MSEState,
    RC4Pair,
    Role,
    req2_hash,
)

if TYPE_CHECKING:
    from collections.abc import Callable

# Typed again from the spec text so that a typo in the module cannot hide here.
SPEC_P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879"
    "8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A3621"
    "0000000000090563",
    16,
)
XA = 0xA5A5A5A5_5A5A5A5A_01234567_89ABCDEF_FEDCBA98
XB = 0x8BADF00D_DEADBEEF_CAFEBABE_0BADC0DE_12345678
SKEY = bytes(range(20))
OTHER_SKEY = bytes(range(100, 120))
PLAIN, RC4 = CryptoMethod.PLAINTEXT, CryptoMethod.RC4
BOTH = PLAIN | RC4


def sha1(*parts: bytes) -> bytes:
    return hashlib.sha1(b"".join(parts)).digest()


def textbook_rc4(key: bytes, data: bytes, discard: int = 0) -> bytes:
    """RC4 straight from the textbook (KSA + PRGA), independent of `cryptography`."""
    s = list(range(256))
    j = 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) % 256
        s[i], s[j] = s[j], s[i]
    i = j = 0
    out = bytearray()
    for n in range(discard + len(data)):
        i = (i + 1) % 256
        j = (j + s[i]) % 256
        s[i], s[j] = s[j], s[i]
        k = s[(s[i] + s[j]) % 256]
        if n >= discard:
            out.append(data[n - discard] ^ k)
    return bytes(out)


def test_textbook_rc4_matches_published_vectors() -> None:
    # The classic vectors (Wikipedia, "RC4", Test vectors).
    assert textbook_rc4(b"Key", b"Plaintext").hex() == "bbf316e8d940af0ad3"
    assert textbook_rc4(b"Wiki", b"pedia").hex() == "1021bf0420"


# ---- known-answer tests -----------------------------------------------------------


def kat_pair(ia: bytes = b"IA!") -> tuple[MSEHandshake, MSEHandshake]:
    a = MSEHandshake.initiator(
        SKEY, rng=random.Random(1), private_key=XA, pad_length=0, initial_payload=ia
    )
    b = MSEHandshake.receiver([SKEY], rng=random.Random(2), private_key=XB, pad_length=0)
    return a, b


def test_known_answer_full_transcript() -> None:
    ya = pow(2, XA, SPEC_P).to_bytes(96, "big")
    yb = pow(2, XB, SPEC_P).to_bytes(96, "big")
    s = pow(pow(2, XB, SPEC_P), XA, SPEC_P).to_bytes(96, "big")
    assert s == pow(pow(2, XA, SPEC_P), XB, SPEC_P).to_bytes(96, "big")
    key_a, key_b = sha1(b"keyA", s, SKEY), sha1(b"keyB", s, SKEY)

    a, b = kat_pair(b"IA!")
    step1 = a.data_to_send()
    assert step1 == ya  # pad_length=0: exactly the key

    b.receive_data(step1)
    assert b.data_to_send() == yb

    a.receive_data(yb)
    step3 = a.data_to_send()
    plain3 = bytes(8) + (3).to_bytes(4, "big") + b"\x00\x00" + (3).to_bytes(2, "big") + b"IA!"
    expected3 = (
        sha1(b"req1", s)
        + bytes(x ^ y for x, y in zip(sha1(b"req2", SKEY), sha1(b"req3", s), strict=True))
        + textbook_rc4(key_a, plain3, discard=1024)
    )
    assert step3 == expected3

    b.receive_data(step3)
    step4 = b.data_to_send()
    # B prefers RC4 by default; PadD is empty.
    assert step4 == textbook_rc4(key_b, bytes(8) + (2).to_bytes(4, "big") + b"\x00\x00", 1024)
    assert b.next_event() == HandshakeComplete(RC4, SKEY, b"IA!")
    assert b.next_event() is None  # the event comes out once

    a.receive_data(step4)
    assert a.next_event() == HandshakeComplete(RC4, SKEY, b"")
    assert a.state is b.state is MSEState.DONE

    # The payload continues both keystreams where the handshake left them.
    ca, cb = a.cipher, b.cipher
    assert ca is not None
    assert cb is not None
    wire = ca.encrypt(b"hello")
    assert wire == textbook_rc4(key_a, plain3 + b"hello", 1024)[len(plain3) :]
    assert cb.decrypt(wire) == b"hello"
    back = cb.encrypt(b"world")
    assert back == textbook_rc4(key_b, bytes(14) + b"world", 1024)[14:]
    assert ca.decrypt(back) == b"world"


def test_rc4pair_first_bytes_after_discard() -> None:
    key_a, key_b = b"A" * 20, b"B" * 20
    pair = RC4Pair(key_a, key_b)
    assert pair.encrypt(bytes(32)) == textbook_rc4(key_a, bytes(32), discard=1024)
    assert pair.decrypt(bytes(32)) == textbook_rc4(key_b, bytes(32), discard=1024)
    buf = bytearray(16)
    assert pair.encrypt_into(bytes(16), buf) == 16
    assert bytes(buf) == textbook_rc4(key_a, bytes(48), discard=1024)[32:]


def test_for_role_swaps_keys() -> None:
    s = bytes(96)
    a = RC4Pair.for_role(Role.INITIATOR, s, SKEY)
    b = RC4Pair.for_role(Role.RECEIVER, s, SKEY)
    assert b.decrypt(a.encrypt(b"x" * 50)) == b"x" * 50
    assert a.decrypt(b.encrypt(b"y" * 50)) == b"y" * 50


def test_req2_hash() -> None:
    assert req2_hash(SKEY) == sha1(b"req2", SKEY)


# ---- two engines against each other -----------------------------------------------


@dataclass
class Outcome:
    a_event: HandshakeComplete
    b_event: HandshakeComplete
    a_to_b: bytes
    b_to_a: bytes


def run_pair(a: MSEHandshake, b: MSEHandshake, a_extra: bytes = b"") -> Outcome:
    """Shuttle bytes until both finish; `a_extra` is appended to A's step 3."""
    a_to_b = bytearray()
    b_to_a = bytearray()
    out = a.data_to_send()
    a_to_b += out
    b.receive_data(out)
    for _ in range(3):  # the handshake has 4 messages; bounded on purpose
        out = b.data_to_send()
        b_to_a += out
        if out:
            a.receive_data(out)
        out = a.data_to_send()
        if out and a_extra and a.state is MSEState.WAIT_SYNC:
            out, a_extra = out + a_extra, b""
        a_to_b += out
        if out:
            b.receive_data(out)
    a_event, b_event = a.next_event(), b.next_event()
    assert a_event is not None
    assert b_event is not None
    return Outcome(a_event, b_event, bytes(a_to_b), bytes(b_to_a))


def make_pair(
    seed: int = 0,
    *,
    a_policy: EncryptionPolicy | None = None,
    b_policy: EncryptionPolicy | None = None,
    ia: bytes = b"",
    a_pad: int | None = None,
    b_pad: int | None = None,
    skeys: list[bytes] | None = None,
) -> tuple[MSEHandshake, MSEHandshake]:
    a = MSEHandshake.initiator(
        SKEY, rng=random.Random(seed), policy=a_policy, initial_payload=ia, pad_length=a_pad
    )
    b = MSEHandshake.receiver(
        [SKEY] if skeys is None else skeys,
        rng=random.Random(seed + 1),
        policy=b_policy,
        pad_length=b_pad,
    )
    return a, b


@pytest.mark.parametrize(
    ("a_methods", "b_methods", "prefer", "expected"),
    [
        (BOTH, BOTH, RC4, RC4),
        (BOTH, BOTH, PLAIN, PLAIN),
        (RC4, BOTH, PLAIN, RC4),
        (PLAIN, BOTH, RC4, PLAIN),
        (BOTH, PLAIN, PLAIN, PLAIN),
        (BOTH, RC4, RC4, RC4),
    ],
)
def test_method_negotiation(
    a_methods: CryptoMethod, b_methods: CryptoMethod, prefer: CryptoMethod, expected: CryptoMethod
) -> None:
    a, b = make_pair(
        a_policy=EncryptionPolicy(methods=a_methods),
        b_policy=EncryptionPolicy(methods=b_methods, prefer=prefer),
        ia=b"\x13BitTorrent protocol",
    )
    res = run_pair(a, b)
    assert res.a_event.method is res.b_event.method is expected
    assert res.b_event.initial_payload == b"\x13BitTorrent protocol"
    assert (a.cipher is None) == (expected is PLAIN)


@pytest.mark.parametrize(("a_methods", "b_methods"), [(RC4, PLAIN), (PLAIN, RC4)])
def test_no_common_method_fails_at_receiver(
    a_methods: CryptoMethod, b_methods: CryptoMethod
) -> None:
    a, b = make_pair(
        a_policy=EncryptionPolicy(methods=a_methods),
        b_policy=EncryptionPolicy(methods=b_methods, prefer=b_methods),
    )
    with pytest.raises(HandshakeError, match="no common crypto method"):
        run_pair(a, b)
    assert b.state is MSEState.ERROR


@pytest.mark.parametrize("a_pad", [0, 512])
@pytest.mark.parametrize("b_pad", [0, 512])
def test_padding_extremes(a_pad: int, b_pad: int) -> None:
    a, b = make_pair(a_pad=a_pad, b_pad=b_pad, ia=b"x" * 68)
    res = run_pair(a, b)
    assert res.b_event.initial_payload == b"x" * 68
    assert len(res.b_to_a) == 96 + b_pad + 8 + 4 + 2


def test_receiver_finds_skey_among_many_and_by_lookup_function() -> None:
    many = [bytes([i]) * 20 for i in range(50)] + [SKEY]
    a, b = make_pair(skeys=many)
    assert run_pair(a, b).b_event.skey == SKEY

    index = {req2_hash(k): k for k in many}
    a = MSEHandshake.initiator(SKEY, rng=random.Random(5))
    b = MSEHandshake.receiver(index.get, rng=random.Random(6))
    assert run_pair(a, b).b_event.skey == SKEY


def test_wrong_skey_is_refused() -> None:
    a, b = make_pair(skeys=[OTHER_SKEY])
    with pytest.raises(HandshakeError, match="SKEY"):
        run_pair(a, b)


def test_trailing_data_after_handshake_is_decrypted() -> None:
    # A pipelines payload right behind IA (legal once IA is sent); B must hand it on.
    a, b = make_pair(ia=b"hs")
    a_to_b = a.data_to_send()
    b.receive_data(a_to_b)
    a.receive_data(b.data_to_send())
    step3 = a.data_to_send()
    cipher = a._rc4  # the stream is already keyed; payload continues it
    assert cipher is not None
    b.receive_data(step3 + cipher.encrypt(b"bitfield..."))
    assert b.trailing_data == b"bitfield..."
    event = b.next_event()
    assert event is not None
    assert event.initial_payload == b"hs"


def test_trailing_data_plaintext_method_is_raw() -> None:
    a, b = make_pair(a_policy=EncryptionPolicy(methods=PLAIN))
    b.receive_data(a.data_to_send())
    a.receive_data(b.data_to_send())
    b.receive_data(a.data_to_send())
    a.receive_data(b.data_to_send() + b"raw payload")
    assert a.next_event() == HandshakeComplete(PLAIN, SKEY, b"")
    assert a.trailing_data == b"raw payload"
    assert a.cipher is None


# ---- hand-crafted bad peers -------------------------------------------------------


def b_side_secret(a: MSEHandshake) -> tuple[bytes, bytes]:
    """Play a scripted B with private key XB: return (Yb, S)."""
    ya = int.from_bytes(a.data_to_send()[:96], "big")
    yb = pow(2, XB, SPEC_P).to_bytes(96, "big")
    return yb, pow(ya, XB, SPEC_P).to_bytes(96, "big")


def scripted_step4(select: int, pad_d: int = 0, vc: bytes = bytes(8)) -> tuple[MSEHandshake, bytes]:
    a = MSEHandshake.initiator(
        SKEY, rng=random.Random(3), pad_length=0, policy=EncryptionPolicy(methods=RC4)
    )
    yb, s = b_side_secret(a)
    a.receive_data(yb)
    plain = vc + select.to_bytes(4, "big") + pad_d.to_bytes(2, "big")
    return a, textbook_rc4(sha1(b"keyB", s, SKEY), plain, discard=1024)


@pytest.mark.parametrize(
    ("select", "match"),
    [(0x01, "did not provide"), (0x03, "one method"), (0x00, "one method"), (0x04, "one method")],
)
def test_initiator_rejects_bad_select(select: int, match: str) -> None:
    a, step4 = scripted_step4(select)
    with pytest.raises(HandshakeError, match=match):
        a.receive_data(step4)


def test_initiator_ignores_unknown_select_bits() -> None:
    a, step4 = scripted_step4(0xF0_00_00_02)
    a.receive_data(step4)
    assert a.state is MSEState.DONE


def test_initiator_rejects_oversized_pad_d() -> None:
    a, step4 = scripted_step4(0x02, pad_d=513)
    with pytest.raises(HandshakeError, match="PadD"):
        a.receive_data(step4)


def test_initiator_needs_vc_within_window() -> None:
    a, step4 = scripted_step4(0x02, vc=b"\x01" * 8)  # wrong VC never matches
    with pytest.raises(HandshakeError, match="sync marker"):
        a.receive_data(step4 + bytes(600))


def scripted_step3(plain_header: bytes, *, garbage_before: int = 0) -> tuple[MSEHandshake, bytes]:
    """A receiver already past step 2 and a step 3 built from the spec with `plain_header`."""
    b = MSEHandshake.receiver([SKEY], rng=random.Random(4), pad_length=0)
    ya = pow(2, XA, SPEC_P).to_bytes(96, "big")
    b.receive_data(ya + bytes(garbage_before))
    yb = int.from_bytes(b.data_to_send()[:96], "big")
    s = pow(yb, XA, SPEC_P).to_bytes(96, "big")
    xored = bytes(x ^ y for x, y in zip(sha1(b"req2", SKEY), sha1(b"req3", s), strict=True))
    enc = textbook_rc4(sha1(b"keyA", s, SKEY), plain_header, discard=1024)
    return b, sha1(b"req1", s) + xored + enc


def test_receiver_rejects_bad_vc() -> None:
    b, step3 = scripted_step3(b"\x00" * 7 + b"\x01" + b"\x00\x00\x00\x02\x00\x00\x00\x00")
    with pytest.raises(HandshakeError, match="VC"):
        b.receive_data(step3)


def test_receiver_rejects_oversized_pad_c() -> None:
    b, step3 = scripted_step3(bytes(8) + b"\x00\x00\x00\x02" + (513).to_bytes(2, "big"))
    with pytest.raises(HandshakeError, match="PadC"):
        b.receive_data(step3)


def test_receiver_rejects_zero_provide() -> None:
    b, step3 = scripted_step3(bytes(8) + bytes(4) + bytes(4))
    with pytest.raises(HandshakeError, match="no common"):
        b.receive_data(step3)


def test_receiver_accepts_max_pad_c_and_pad_a() -> None:
    pad_c = bytes(512)
    header = bytes(8) + b"\x00\x00\x00\x03" + (512).to_bytes(2, "big") + pad_c + b"\x00\x02"
    b, step3 = scripted_step3(header + b"ok", garbage_before=512)
    b.receive_data(step3)
    event = b.next_event()
    assert event is not None
    assert event.initial_payload == b"ok"


def test_receiver_sync_marker_one_byte_too_late() -> None:
    b, step3 = scripted_step3(bytes(16), garbage_before=513)
    with pytest.raises(HandshakeError, match="sync marker"):
        b.receive_data(step3)


@pytest.mark.parametrize("y", [0, 1, SPEC_P - 1, SPEC_P, (1 << 768) - 1])
@pytest.mark.parametrize("role", [Role.INITIATOR, Role.RECEIVER])
def test_degenerate_public_keys(y: int, role: Role) -> None:
    engine = make_pair()[0 if role is Role.INITIATOR else 1]
    with pytest.raises(HandshakeError, match="degenerate"):
        engine.receive_data(y.to_bytes(96, "big"))


def test_eof_and_terminal_states() -> None:
    a, b = make_pair()
    b.receive_data(a.data_to_send()[:50])
    with pytest.raises(HandshakeError, match="closed"):
        b.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        b.receive_data(b"more")
    a, b = make_pair()
    run_pair(a, b)
    with pytest.raises(LocalProtocolError):
        a.receive_data(b"x")


def test_local_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        MSEHandshake.initiator(SKEY, rng=random.Random(0), initial_payload=bytes(65536))
    with pytest.raises(LocalProtocolError):
        _ = make_pair()[0].cipher
    with pytest.raises(ValueError):
        MSEHandshake.initiator(SKEY, rng=random.Random(0), pad_length=513)
    with pytest.raises(ValueError):
        MSEHandshake(Role.RECEIVER, rng=random.Random(0), policy=EncryptionPolicy(), skey=SKEY)
    with pytest.raises(ValueError):
        EncryptionPolicy(methods=CryptoMethod(0))
    with pytest.raises(ValueError):
        EncryptionPolicy(methods=CryptoMethod(4))
    with pytest.raises(ValueError):
        EncryptionPolicy(prefer=BOTH)


def test_private_key_is_160_bits_from_rng() -> None:
    a1 = MSEHandshake.initiator(SKEY, rng=random.Random(9))
    a2 = MSEHandshake.initiator(SKEY, rng=random.Random(9))
    a3 = MSEHandshake.initiator(SKEY, rng=random.Random(10))
    assert a1.data_to_send() == a2.data_to_send() != a3.data_to_send()
    assert a1._x.bit_length() == 160


# ---- hypothesis -------------------------------------------------------------------


def transcript(seed: int, ia: bytes, extra: bytes) -> tuple[Outcome, bytes]:
    a, b = make_pair(seed, ia=ia)
    res = run_pair(a, b, a_extra=extra)
    return res, b.trailing_data


def feed_chunked(engine: MSEHandshake, data: bytes, cuts: list[int]) -> bytes:
    out = bytearray(engine.data_to_send())
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for lo, hi in itertools.pairwise(points):
        if hi > lo:
            engine.receive_data(data[lo:hi])
            out += engine.data_to_send()
    return bytes(out)


@settings(max_examples=40)
@given(
    seed=st.integers(0, 2**32),
    ia=st.binary(max_size=100),
    cuts=st.lists(st.integers(0, 5000), max_size=30),
)
def test_any_chunking_gives_identical_result(seed: int, ia: bytes, cuts: list[int]) -> None:
    res, _ = transcript(seed, ia, b"")
    # A fresh B with the same seed, fed A's bytes in arbitrary pieces, says the same.
    _, b = make_pair(seed, ia=ia)
    assert feed_chunked(b, res.a_to_b, cuts) == res.b_to_a
    assert b.next_event() == res.b_event
    # And a fresh A fed B's bytes in pieces.
    a, _ = make_pair(seed, ia=ia)
    assert feed_chunked(a, res.b_to_a, cuts) == res.a_to_b
    assert a.next_event() == res.a_event


@settings(max_examples=60)
@given(data=st.binary(min_size=1, max_size=1500), role=st.sampled_from(Role))
def test_arbitrary_bytes_raise_only_handshake_error(data: bytes, role: Role) -> None:
    engine = make_pair()[0 if role is Role.INITIATOR else 1]
    try:
        engine.receive_data(data)
    except HandshakeError:
        assert engine.state is MSEState.ERROR
        return
    # Surviving garbage never gets past the sync scan, and only while within the window.
    assert engine.state in (MSEState.WAIT_PUBKEY, MSEState.WAIT_SYNC)
    assert len(data) < 96 + 512 + 20


@settings(max_examples=60)
@given(
    seed=st.integers(0, 1000),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), min_size=1),
    cut=st.integers(0, 10_000),
)
def test_mutated_transcripts_raise_only_handshake_error(
    seed: int, flips: list[tuple[int, int]], cut: int
) -> None:
    res, _ = transcript(seed, b"\x13BitTorrent protocol" + bytes(48), b"")
    data = bytearray(res.a_to_b)
    for pos, mask in flips:
        data[pos % len(data)] ^= mask
    data = data[: cut % (len(data) + 1)] if cut % 3 == 0 else data
    _, b = make_pair(seed)
    try:
        for i in range(0, len(data), 97):
            if b.state is MSEState.DONE:
                # A flip that shortens the handshake (a padding length) ends it early;
                # what follows belongs to the next layer, which is not under test here.
                break
            b.receive_data(bytes(data[i : i + 97]))
    except HandshakeError:
        assert b.state is MSEState.ERROR
        return
    if b.state is MSEState.DONE:  # e.g. only IA bytes were flipped: still a valid handshake
        event = b.next_event()
        assert event is not None
        assert event.skey == SKEY


def test_garbage_fails_within_the_spec_window() -> None:
    rng = random.Random(7)
    b = make_pair()[1]
    b.receive_data(rng.randbytes(96 + 512 + 19))  # one short: still scanning
    assert b.state is MSEState.WAIT_SYNC
    with pytest.raises(HandshakeError, match="sync marker"):
        b.receive_data(b"\x00")


def scripted_initiator() -> MSEHandshake:
    return MSEHandshake.initiator(
        SKEY, rng=random.Random(3), pad_length=0, policy=EncryptionPolicy(methods=RC4)
    )


def walk(role: Role) -> tuple[Callable[[], MSEHandshake], bytes]:
    """A fresh-engine factory and a valid transcript of what its peer sends.

    For A the peer is the scripted B of `scripted_step4` with a 5-byte PadD, because
    our own B sends an empty PadD and A would pass through WAIT_PAD in one step.
    """
    if role is Role.INITIATOR:
        yb, s = b_side_secret(scripted_initiator())
        plain = bytes(8) + (2).to_bytes(4, "big") + (5).to_bytes(2, "big") + bytes(5)
        return scripted_initiator, yb + textbook_rc4(sha1(b"keyB", s, SKEY), plain, 1024)
    a_to_b = run_pair(*make_pair(11, ia=b"IA", a_pad=3)).a_to_b
    return lambda: make_pair(11, ia=b"IA", a_pad=3)[1], a_to_b


def states_visited(role: Role) -> list[MSEState]:
    """Feed one side its peer's valid transcript byte by byte, recording each state."""
    factory, incoming = walk(role)
    engine = factory()
    seen = [engine.state]
    for i in range(len(incoming)):
        engine.receive_data(incoming[i : i + 1])
        if engine.state is not seen[-1]:
            seen.append(engine.state)
    return seen


@pytest.mark.parametrize(
    ("role", "path"),
    [
        (Role.INITIATOR, ["WAIT_PUBKEY", "WAIT_SYNC", "WAIT_HEADER", "WAIT_PAD", "DONE"]),
        (
            Role.RECEIVER,
            ["WAIT_PUBKEY", "WAIT_SYNC", "WAIT_SKEY", "WAIT_HEADER", "WAIT_PAD", "WAIT_IA", "DONE"],
        ),
    ],
)
def test_every_state_in_the_table_is_visited_in_order(role: Role, path: list[str]) -> None:
    assert [s.name for s in states_visited(role)] == path
    assert {s for r, s in mse_module._HANDLERS if r is role} == {
        MSEState[name] for name in path[:-1]
    }


@pytest.mark.parametrize("role", list(Role))
def test_eof_in_every_non_terminal_state_is_a_handshake_error(role: Role) -> None:
    factory, incoming = walk(role)
    checked: set[MSEState] = set()
    for cut in range(len(incoming)):
        engine = factory()
        if cut:
            engine.receive_data(incoming[:cut])
        if engine.state in checked:
            continue
        checked.add(engine.state)
        with pytest.raises(HandshakeError):
            engine.receive_data(b"")
        assert engine.state is MSEState.ERROR
    assert checked == {s for r, s in mse_module._HANDLERS if r is role}
