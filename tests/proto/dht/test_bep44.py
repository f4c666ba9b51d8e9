"""BEP 44: the BEP's test vectors, signatures, put validation and the item store."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from shoal.bencoding import encode
from shoal.dht import bep44
from shoal.dht.bep44 import Item, ItemError, check_item
from shoal.dht.item_store import ItemStore, ItemStoreConfig

# BEP 44 "Test vectors". The BEP's private key is in the 64-byte expanded form of
# nightcracker's ed25519, which no RFC 8032 library imports, so the vectors check
# our buffer, targets and verification; signing is checked by round trip.
VALUE = b"12:Hello World!"
PUBLIC = bytes.fromhex("77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548")
SIG1 = bytes.fromhex(
    "305ac8aeb6c9c151fa120f120ea2cfb923564e11552d06a5d856091e5e853cff"
    "1260d3f39e4999684aa92eb73ffd136e6f4f3ecbfda0ce53a1608ecd7ae21f01"
)
SIG2 = bytes.fromhex(
    "6834284b6b24c3204eb2fea824d82f88883a3d95e8b4a21b8c0ded553d17d17d"
    "df9a8a7104b1258f30bed3787e6cb896fca78c58f8e03b5f18f14951a87d9a08"
)
SEED = bytes(range(32))


def test_vector_1_mutable() -> None:
    assert bep44.signing_buffer(VALUE, 1) == b"3:seqi1e1:v12:Hello World!"
    assert bep44.mutable_target(PUBLIC).hex() == "4a533d47ec9c7d95b1ad75f576cffc641853b750"
    assert bep44.verify(PUBLIC, SIG1, VALUE, 1)
    assert check_item(Item(VALUE, PUBLIC, b"", 1, SIG1)) is None


def test_vector_2_mutable_with_salt() -> None:
    buf = bep44.signing_buffer(VALUE, 1, b"foobar")
    assert buf == b"4:salt6:foobar3:seqi1e1:v12:Hello World!"
    target = bep44.mutable_target(PUBLIC, b"foobar")
    assert target.hex() == "411eba73b6f087ca51a3795d9c8c938d365e32c1"
    assert Item(VALUE, PUBLIC, b"foobar", 1, SIG2).target == target
    assert bep44.verify(PUBLIC, SIG2, VALUE, 1, b"foobar")
    assert not bep44.verify(PUBLIC, SIG2, VALUE, 1)  # the salt is signed
    assert not bep44.verify(PUBLIC, SIG1, VALUE, 2)  # so is the seq


def test_vector_3_immutable() -> None:
    assert Item(VALUE).target.hex() == "e5f96f6f38320f0f33959cb4d3d656452117aadb"


@given(st.binary(max_size=200), st.integers(0, bep44.MAX_SEQ), st.binary(max_size=64))
def test_sign_verify_round_trip(raw: bytes, seq: int, salt: bytes) -> None:
    value = encode(raw)
    item = bep44.make_mutable(SEED, value, seq, salt)
    assert check_item(item) is None
    assert item.target == bep44.mutable_target(bep44.public_key_of(SEED), salt)
    assert not bep44.verify(item.key or b"", item.sig, value + b"x", seq, salt)


def test_put_errors_carry_the_bep_codes() -> None:
    good = bep44.make_mutable(SEED, b"1:a", 5)
    assert check_item(Item(encode(b"x" * 996))) is None  # 1,000 bytes encoded
    assert check_item(Item(encode(b"x" * 997))) is ItemError.VALUE_TOO_BIG
    big_salt = Item(good.value, good.key, b"s" * 65, good.seq, good.sig)
    assert check_item(big_salt) is ItemError.SALT_TOO_BIG
    forged = Item(good.value, good.key, b"", 6, good.sig)
    assert check_item(forged) is ItemError.INVALID_SIGNATURE
    assert check_item(Item(good.value, b"short", b"", 5, good.sig)) is ItemError.INVALID_SIGNATURE
    assert check_item(Item(good.value, good.key, b"", -1, good.sig)) is ItemError.INVALID_SIGNATURE


def test_store_never_downgrades_and_checks_cas() -> None:
    store = ItemStore()
    v1 = bep44.make_mutable(SEED, b"2:v1", 1)
    v2 = bep44.make_mutable(SEED, b"2:v2", 2)
    assert store.put(v2, 0.0) is None
    assert store.put(v1, 1.0) is ItemError.SEQ_TOO_LOW
    assert store.put(bep44.make_mutable(SEED, b"2:xx", 2), 1.0) is ItemError.SEQ_TOO_LOW
    assert store.put(v2, 1.0) is None  # same seq and value: refresh
    v3 = bep44.make_mutable(SEED, b"2:v3", 3)
    assert store.put(v3, 2.0, cas=1) is ItemError.CAS_MISMATCH
    assert store.put(v3, 2.0, cas=2) is None
    assert store.get(v3.target, 2.0) == v3


def test_store_ignores_cas_when_empty_and_expires() -> None:
    store = ItemStore(ItemStoreConfig(ttl=10.0))
    item = bep44.make_mutable(SEED, b"1:a", 1)
    assert store.put(item, 0.0, cas=99) is None
    assert store.get(item.target, 9.0) == item
    assert store.get(item.target, 10.0) is None
    assert len(store) == 0


@functools.cache
def _signed(key: int, salt: bytes, seq: int) -> Item:
    """Signing costs ~50 us; the state machine reuses a small set of items."""
    return bep44.make_mutable(bytes([key]) * 32, encode(seq), seq, salt)


class ItemStoreMachine(RuleBasedStateMachine):
    """Against a model: caps hold, the newest seq wins, nothing outlives the ttl."""

    def __init__(self) -> None:
        super().__init__()
        self.config = ItemStoreConfig(max_items=4, ttl=100.0)
        self.store = ItemStore(self.config)
        self.now = 0.0
        self.model: dict[bytes, tuple[Item, float]] = {}  # target -> (item, stored at)

    def _drop_expired(self) -> None:
        self.model = {
            t: (i, at) for t, (i, at) in self.model.items() if at > self.now - self.config.ttl
        }

    @rule(value=st.binary(max_size=8))
    def put_immutable(self, value: bytes) -> None:
        item = Item(encode(value))
        assert self.store.put(item, self.now) is None
        self._drop_expired()
        self._store(item)

    def _store(self, item: Item) -> None:
        self.model.pop(item.target, None)
        if len(self.model) >= self.config.max_items:
            del self.model[next(iter(self.model))]  # the oldest goes, as in the store
        self.model[item.target] = (item, self.now)

    @rule(key=st.integers(0, 2), salt=st.sampled_from([b"", b"a"]), seq=st.integers(0, 5))
    def put_mutable(self, key: int, salt: bytes, seq: int) -> None:
        item = _signed(key, salt, seq)
        self._drop_expired()
        old = self.model.get(item.target)
        result = self.store.put(item, self.now)
        if old is not None and old[0].seq > seq:
            assert result is ItemError.SEQ_TOO_LOW
            return
        assert result is None
        self._store(item)

    @rule(dt=st.floats(0, 60))
    def tick(self, dt: float) -> None:
        self.now += dt

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def get(self, data: st.DataObject) -> None:
        target = data.draw(st.sampled_from(sorted(self.model)))
        self._drop_expired()
        want = self.model.get(target)
        assert self.store.get(target, self.now) == (None if want is None else want[0])

    @invariant()
    def capped(self) -> None:
        assert len(self.store) <= self.config.max_items


ItemStoreMachine.TestCase.settings = settings(stateful_step_count=25)  # CI time: 25 steps suffice
TestItemStore = ItemStoreMachine.TestCase


@pytest.mark.parametrize("seq", [0, 1, 2**63 - 1])
def test_signing_buffer_encodes_seq_as_bencoded_int(seq: int) -> None:
    assert bep44.signing_buffer(b"i1e", seq) == b"3:seq" + encode(seq) + b"1:vi1e"
