"""BEP 44 items: targets, the signing buffer, ed25519 signatures and put validation.

Theory of operation
-------------------
An *immutable* item is a bencoded value stored under the SHA-1 of its encoding. A
*mutable* item is stored under SHA-1(public key + salt) and carries a sequence number
and an ed25519 signature over the BEP's exact buffer::

    [4:salt<len>:<salt>]3:seqi<seq>e1:v<encoded value>

(the salt part only when the salt is non-empty). Values are handled in their encoded
form throughout, because the signature and the immutable target are over bytes, and
decoding then re-encoding is not an identity for every encoder. Our KRPC decoder
keeps ``v`` as the exact bytes of the datagram (see `dht/krpc_ext.py`), so a value
another client sent with unsorted dict keys verifies, and is stored and served as sent.

Validation of a ``put`` returns the BEP's error code rather than raising: the caller
answers with it. Keys are 32-byte raw ed25519 public keys and 32-byte private seeds
(RFC 8032); the ``cryptography`` package does the curve arithmetic.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "MAX_SALT",
    "MAX_SEQ",
    "MAX_VALUE",
    "REPUT_INTERVAL",
    "Item",
    "ItemError",
    "check_item",
    "immutable_target",
    "make_mutable",
    "mutable_target",
    "public_key_of",
    "sign",
    "signing_buffer",
    "verify",
]

#: BEP 44: storing nodes "MAY reject put requests where the bencoded form of v is
#: longer than 1000 bytes"; we do, and so never build one.
MAX_VALUE: Final = 1000
#: BEP 44: "The salt string MUST NOT be longer than 64 bytes."
MAX_SALT: Final = 64
#: BEP 44: "The sequence number SHOULD not exceed MAX_INT64"; negatives are refused too.
MAX_SEQ: Final = 0x7FFF_FFFF_FFFF_FFFF
#: BEP 44 "Expiration": items "MAY expire in 2 hours"; to keep them alive "they SHOULD
#: be re-announced once an hour". Seconds between re-puts (`DHT.keep_item`).
REPUT_INTERVAL: Final = 3600.0
KEY_LENGTH: Final = 32
SIG_LENGTH: Final = 64


class ItemError(enum.IntEnum):
    """BEP 44 "Errors" (plus BEP 5's 203 for a put without a valid token)."""

    BAD_TOKEN = 203
    VALUE_TOO_BIG = 205
    INVALID_SIGNATURE = 206
    SALT_TOO_BIG = 207
    CAS_MISMATCH = 301
    SEQ_TOO_LOW = 302


@dataclass(frozen=True, slots=True)
class Item:
    """One stored or fetched item. `value` is the bencoded ``v``.

    Immutable when `key` is None (then `seq`, `sig` and `salt` are unused).
    """

    value: bytes
    key: bytes | None = None
    salt: bytes = b""
    seq: int = 0
    sig: bytes = b""

    @property
    def mutable(self) -> bool:
        return self.key is not None

    @property
    def target(self) -> bytes:
        if self.key is None:
            return immutable_target(self.value)
        return mutable_target(self.key, self.salt)


def immutable_target(value: bytes) -> bytes:
    """SHA-1 of the encoded value (BEP 44 "Immutable Items")."""
    return hashlib.sha1(value).digest()


def mutable_target(public_key: bytes, salt: bytes = b"") -> bytes:
    """SHA-1 of the public key concatenated with the salt (BEP 44 "Mutable Items")."""
    return hashlib.sha1(public_key + salt).digest()


def signing_buffer(value: bytes, seq: int, salt: bytes = b"") -> bytes:
    """The exact bytes a mutable item's signature covers (BEP 44 "Signature Verification").

    Built by concatenation, never by encoding a dict, as the BEP asks: no parser or
    serializer quirk can then move bytes between the sequence number and the value.
    """
    head = b"4:salt%d:%s" % (len(salt), salt) if salt else b""
    return head + b"3:seqi%de1:v" % seq + value


def sign(seed: bytes, value: bytes, seq: int, salt: bytes = b"") -> bytes:
    """Sign a mutable item with the 32-byte ed25519 private seed."""
    return Ed25519PrivateKey.from_private_bytes(seed).sign(signing_buffer(value, seq, salt))


def public_key_of(seed: bytes) -> bytes:
    """The 32-byte raw public key of a 32-byte private seed."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def verify(public_key: bytes, sig: bytes, value: bytes, seq: int, salt: bytes = b"") -> bool:
    """Whether `sig` is `public_key`'s signature of the item (False for malformed keys)."""
    if len(public_key) != KEY_LENGTH or len(sig) != SIG_LENGTH:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(sig, signing_buffer(value, seq, salt))
    except (InvalidSignature, ValueError):
        return False
    return True


def make_mutable(seed: bytes, value: bytes, seq: int, salt: bytes = b"") -> Item:
    """A signed mutable item (the caller checks sizes with `check_item`)."""
    return Item(value, public_key_of(seed), salt, seq, sign(seed, value, seq, salt))


def check_item(item: Item) -> ItemError | None:
    """Validate an item arriving in a ``put``: the BEP's error code, or None if valid.

    Order follows the cost: sizes first, the signature (an ed25519 verification,
    tens of microseconds) last.
    """
    if len(item.value) > MAX_VALUE:
        return ItemError.VALUE_TOO_BIG
    if item.key is None:
        return None
    if len(item.salt) > MAX_SALT:
        return ItemError.SALT_TOO_BIG
    if not 0 <= item.seq <= MAX_SEQ:
        return ItemError.INVALID_SIGNATURE  # no signature can make it storable
    if not verify(item.key, item.sig, item.value, item.seq, item.salt):
        return ItemError.INVALID_SIGNATURE
    return None
