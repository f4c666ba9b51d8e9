"""MSE/PE (Message Stream Encryption) handshake engine and its RC4 stream pair, sans-IO.

Theory of operation
-------------------
Spec: "Message Stream Encryption protocol" (Ludde/uau/The_8472/Parg/Nolar), as kept
in Transmission's ``extras/encryption.txt``. A is the TCP initiator, B the receiver::

    1 A->B: Ya, PadA
    2 B->A: Yb, PadB
    3 A->B: HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
            ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
    4 B->A: ENCRYPT(VC, crypto_select, len(PadD), PadD), ENCRYPT2(payload)
    5 A->B: ENCRYPT2(payload)

`MSEHandshake` is one object per connection and role. Bytes go in through
`receive_data`, bytes to write come out of `data_to_send`, and the single
`HandshakeComplete` event comes out of `next_event`. After that the caller owns the
negotiated `cipher` (or none, for the plaintext method) and the already-decrypted
`trailing_data` that arrived behind the handshake.

States (`MSEState`), one buffer, one handler per (role, state) in `_HANDLERS`:

- ``WAIT_PUBKEY``: both sides wait for the peer's 96-byte DH key. B answers
  with Yb only after it has seen Ya (fail fast on port scanners); A has sent Ya
  from the constructor and sends step 3 as soon as it knows S.
- ``WAIT_SYNC``: the padding after a DH key has unknown length, so each side
  resynchronises on a marker: B on HASH('req1', S), A on ENCRYPT(VC). Padding is
  at most 512 bytes, so the marker must *start* within 512 bytes of the key; the
  scan is bounded by that window and fails once it is exceeded. This bound is what
  keeps garbage input O(1) in time and memory.
- ``WAIT_SKEY`` (B only): recover HASH('req2', SKEY) and find which torrent is meant.
- ``WAIT_HEADER`` / ``WAIT_PAD`` / ``WAIT_IA``: fixed-size encrypted fields, then
  the variable-length pad and (B only) the initial payload IA.
- ``DONE`` or ``ERROR``: terminal. Every protocol violation raises `HandshakeError`
  and moves to ``ERROR``; calling `receive_data` afterwards is a caller bug.

The engine never retries: if an encrypted dial fails, the caller reconnects
in plaintext (when its `EncryptionPolicy` allows it) with a fresh connection.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeAlias, final

from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
from cryptography.hazmat.primitives.ciphers import Cipher

from ..errors import HandshakeError, LocalProtocolError
from .mse_events import CryptoMethod, HandshakeComplete

if TYPE_CHECKING:
    import random

__all__ = [
    "DH_GENERATOR",
    "DH_PRIME",
    "CryptoMethod",
    "EncryptionPolicy",
    "HandshakeComplete",
    "MSEHandshake",
    "MSEState",
    "RC4Pair",
    "Role",
    "SKeyLookup",
    "mse_hash",
    "req2_hash",
]

# --- MSE spec, "DH Parameters": a 768-bit safe prime, generator 2. -------------------
DH_PRIME: Final = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22"
    "514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6"
    "F44C42E9A63A36210000000000090563",
    16,
)
DH_GENERATOR: Final = 2
#: "P, S, Ya and Yb are 768bits long" -- always sent as exactly 96 big-endian bytes.
KEY_LEN: Final = 96
#: "You should use a length of 160bits whenever possible."
PRIVATE_KEY_BITS: Final = 160
#: PadA..PadD: "a length of 0 to 512 bytes".
MAX_PAD: Final = 512
#: "VC ... is a String of 8 bytes set to 0x00."
VC: Final = bytes(8)
#: "The first 1024 bytes of the RC4 output are discarded."
RC4_DISCARD: Final = 1024
#: "len(X) specifies the length of X in 2 bytes", so IA is at most 65535 bytes.
MAX_IA: Final = 0xFFFF
_HASH_LEN: Final = 20


_KNOWN_METHODS: Final = CryptoMethod.PLAINTEXT | CryptoMethod.RC4


class Role(enum.Enum):
    INITIATOR = "initiator"  # "A", opened the TCP connection
    RECEIVER = "receiver"  # "B", accepted it


class MSEState(enum.Enum):
    WAIT_PUBKEY = enum.auto()
    WAIT_SYNC = enum.auto()
    WAIT_SKEY = enum.auto()
    WAIT_HEADER = enum.auto()
    WAIT_PAD = enum.auto()
    WAIT_IA = enum.auto()
    DONE = enum.auto()
    ERROR = enum.auto()


@final
@dataclass(frozen=True)
class EncryptionPolicy:
    """What we are willing to speak, as values (mechanism lives in the engine).

    Attributes:
        methods: MSE methods we provide (as A) or accept (as B).
        prefer: which method B picks when A provides several we accept.
        allow_unencrypted: accept/dial plain BitTorrent connections with no MSE at all.
    """

    methods: CryptoMethod = CryptoMethod.PLAINTEXT | CryptoMethod.RC4
    prefer: CryptoMethod = CryptoMethod.RC4
    allow_unencrypted: bool = True

    def __post_init__(self) -> None:
        if not self.methods or int(self.methods) & ~int(_KNOWN_METHODS):
            raise ValueError(f"methods must be a non-empty subset of {_KNOWN_METHODS!r}")
        if self.prefer not in (CryptoMethod.PLAINTEXT, CryptoMethod.RC4):
            raise ValueError("prefer must be a single method")

    def select(self, provided: int) -> CryptoMethod | None:
        """B's choice from A's crypto_provide; unknown bits are ignored, as the spec asks."""
        common = CryptoMethod(provided & self.methods & _KNOWN_METHODS)
        if self.prefer in common:
            return self.prefer
        for method in (CryptoMethod.RC4, CryptoMethod.PLAINTEXT):
            if method in common:
                return method
        return None


#: B's way to find the torrent: either every SKEY it serves (hashed on demand) or a
#: function from HASH('req2', SKEY) to the SKEY, so large servers can keep an index.
SKeyLookup: TypeAlias = Iterable[bytes] | Callable[[bytes], bytes | None]


def mse_hash(*parts: bytes) -> bytes:
    """HASH() of the spec: SHA-1 over the concatenation of its arguments."""
    h = hashlib.sha1()
    for part in parts:
        h.update(part)
    return h.digest()


def req2_hash(skey: bytes) -> bytes:
    """HASH('req2', SKEY): what a lookup-function `SKeyLookup` is keyed by."""
    return mse_hash(b"req2", skey)


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


@final
class RC4Pair:
    """The two RC4 streams of one side: ours for sending, the peer's for receiving.

    A sends with HASH('keyA', S, SKEY) and B with HASH('keyB', S, SKEY); each stream
    continues across ENCRYPT() calls and, for the RC4 method, over the payload.
    """

    __slots__ = ("_dec", "_enc")

    def __init__(self, send_key: bytes, receive_key: bytes) -> None:
        self._enc = Cipher(ARC4(send_key), mode=None).encryptor()
        self._dec = Cipher(ARC4(receive_key), mode=None).encryptor()  # RC4 is symmetric
        # Drop the first 1024 keystream bytes, the well-known weak start of RC4.
        self._enc.update(bytes(RC4_DISCARD))
        self._dec.update(bytes(RC4_DISCARD))

    @classmethod
    def for_role(cls, role: Role, secret: bytes, skey: bytes) -> RC4Pair:
        key_a = mse_hash(b"keyA", secret, skey)
        key_b = mse_hash(b"keyB", secret, skey)
        if role is Role.INITIATOR:
            return cls(key_a, key_b)
        return cls(key_b, key_a)

    def encrypt(self, data: bytes | bytearray | memoryview) -> bytes:
        return self._enc.update(data)

    def encrypt_into(self, data: bytes | bytearray | memoryview, out: bytearray) -> int:
        """Encrypt into a caller-owned buffer (no per-call allocation); returns the length."""
        return self._enc.update_into(data, out)

    def decrypt(self, data: bytes | bytearray | memoryview) -> bytes:
        return self._dec.update(data)


def _pubkey_bytes(value: int) -> bytes:
    return value.to_bytes(KEY_LEN, "big")


@final
class MSEHandshake:
    """One side of one MSE handshake. Build with `initiator` or `receiver`.

    After every `receive_data` (and after construction, for the initiator) call
    `data_to_send()` and write the result, then poll `next_event()`.

    Args:
        rng: entropy for the private key and PadA/PadB (the Trio layer passes
            ``random.SystemRandom()``; tests pass a seeded ``random.Random``).
        policy: the methods we provide (A) or accept (B) and B's preference.
        private_key: fixes Xa/Xb instead of drawing 160 bits (known-answer tests).
        pad_length: fixes len(PadA)/len(PadB) instead of drawing 0..512.

    Attributes:
        trailing_data: after completion, the payload bytes that arrived behind the
            handshake, already decrypted when the method is RC4.
    """

    def __init__(
        self,
        role: Role,
        *,
        rng: random.Random,
        policy: EncryptionPolicy,
        skey: bytes | None = None,
        skeys: SKeyLookup | None = None,
        initial_payload: bytes = b"",
        private_key: int | None = None,
        pad_length: int | None = None,
    ) -> None:
        if len(initial_payload) > MAX_IA:
            raise LocalProtocolError(f"IA is limited to {MAX_IA} bytes by its 2-byte length")
        if pad_length is not None and not 0 <= pad_length <= MAX_PAD:
            raise ValueError(f"pad_length must be in 0..{MAX_PAD}")
        if (skey is None) != (role is Role.RECEIVER) or (skeys is None) != (role is Role.INITIATOR):
            raise ValueError("the initiator needs `skey`, the receiver needs `skeys`")
        self.role: Final = role
        self.policy: Final = policy
        self._rng = rng
        self._skey = skey
        self._skeys = skeys
        self._ia = initial_payload
        if private_key is None:
            # Force the top bit so the exponent really is 160 bits long.
            private_key = rng.getrandbits(PRIVATE_KEY_BITS) | (1 << (PRIVATE_KEY_BITS - 1))
        self._x = private_key
        self._pad_length = pad_length
        self._state = MSEState.WAIT_PUBKEY
        self._buf = bytearray()
        self._out = bytearray()
        self._event: HandshakeComplete | None = None
        self._secret = b""
        self._marker = b""  # the resync pattern searched for in WAIT_SYNC
        self._rc4: RC4Pair | None = None
        self._method: CryptoMethod | None = None
        self._pad_len = 0
        self._ia_len = 0
        self.trailing_data = b""
        if role is Role.INITIATOR:
            self._out += self._public_key() + self._padding()

    @classmethod
    def initiator(
        cls,
        skey: bytes,
        *,
        rng: random.Random,
        policy: EncryptionPolicy | None = None,
        initial_payload: bytes = b"",
        private_key: int | None = None,
        pad_length: int | None = None,
    ) -> MSEHandshake:
        """Side A. `initial_payload` (IA, e.g. the BitTorrent handshake) rides in step 3."""
        return cls(
            Role.INITIATOR,
            rng=rng,
            policy=policy or EncryptionPolicy(),
            skey=skey,
            initial_payload=initial_payload,
            private_key=private_key,
            pad_length=pad_length,
        )

    @classmethod
    def receiver(
        cls,
        skeys: SKeyLookup,
        *,
        rng: random.Random,
        policy: EncryptionPolicy | None = None,
        private_key: int | None = None,
        pad_length: int | None = None,
    ) -> MSEHandshake:
        """Side B, serving every SKEY (info-hash) that `skeys` yields or resolves."""
        return cls(
            Role.RECEIVER,
            rng=rng,
            policy=policy or EncryptionPolicy(),
            skeys=skeys,
            private_key=private_key,
            pad_length=pad_length,
        )

    # ---- public surface ---------------------------------------------------------------

    @property
    def state(self) -> MSEState:
        return self._state

    @property
    def cipher(self) -> RC4Pair | None:
        """The RC4 streams to continue with, or None for the plaintext method.

        Raises:
            LocalProtocolError: the handshake has not completed.
        """
        if self._state is not MSEState.DONE:
            raise LocalProtocolError("the MSE handshake has not completed")
        return self._rc4 if self._method is CryptoMethod.RC4 else None

    def data_to_send(self) -> bytes:
        """Drain the bytes queued for the peer."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def next_event(self) -> HandshakeComplete | None:
        """The completion event, once; None while the handshake is still running."""
        event, self._event = self._event, None
        return event

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes from the peer; ``b""`` means EOF. Call `data_to_send()` afterwards.

        Raises:
            HandshakeError: the peer broke the protocol (or hung up early); anything
                else escaping from here is a bug.
            LocalProtocolError: called after the handshake finished or failed.
        """
        if self._state in (MSEState.DONE, MSEState.ERROR):
            raise LocalProtocolError(f"receive_data() in terminal state {self._state.name}")
        if not data:
            self._state = MSEState.ERROR
            raise HandshakeError(f"connection closed during MSE handshake ({self._where()})")
        self._buf += data
        try:
            # Run handlers until one needs more bytes; DONE has no handler.
            while (step := _HANDLERS.get((self.role, self._state))) is not None and step(self):
                pass
        except HandshakeError:
            self._state = MSEState.ERROR
            raise

    # ---- helpers ----------------------------------------------------------------------

    def _where(self) -> str:
        return f"{self.role.value} in {self._state.name}"

    def _fail(self, msg: str) -> HandshakeError:
        return HandshakeError(f"MSE {self._where()}: {msg}")

    def _public_key(self) -> bytes:
        return _pubkey_bytes(pow(DH_GENERATOR, self._x, DH_PRIME))

    def _padding(self) -> bytes:
        n = self._rng.randint(0, MAX_PAD) if self._pad_length is None else self._pad_length
        return self._rng.randbytes(n)

    def _take(self, n: int) -> bytes | None:
        """Pop exactly `n` buffered bytes, or None (consuming nothing) if not there yet."""
        if len(self._buf) < n:
            return None
        chunk = bytes(self._buf[:n])
        del self._buf[:n]
        return chunk

    def _decrypt(self, data: bytes) -> bytes:
        assert self._rc4 is not None
        return self._rc4.decrypt(data)

    def _encrypt(self, data: bytes) -> bytes:
        assert self._rc4 is not None
        return self._rc4.encrypt(data)

    def _read_pubkey(self) -> bool:
        raw = self._take(KEY_LEN)
        if raw is None:
            return False
        y = int.from_bytes(raw, "big")
        # 0, 1 and P-1 (and anything >= P) would force a guessable S.
        if not 1 < y < DH_PRIME - 1:
            raise self._fail("degenerate Diffie-Hellman public key")
        self._secret = _pubkey_bytes(pow(y, self._x, DH_PRIME))
        return True

    def _scan(self) -> bool:
        """Find `self._marker` starting within MAX_PAD bytes; consume through it.

        The buffer starts right after the peer's DH key, so the marker must lie
        wholly inside the first MAX_PAD + len(marker) bytes or the peer is lying.
        """
        window = MAX_PAD + len(self._marker)
        at = self._buf.find(self._marker, 0, window)
        if at >= 0:
            del self._buf[: at + len(self._marker)]
            return True
        if len(self._buf) >= window:
            raise self._fail(f"sync marker not within {MAX_PAD} bytes of padding")
        return False

    def _finish(self, initial_payload: bytes) -> bool:
        assert self._method is not None
        rest = bytes(self._buf)
        self._buf.clear()
        if self._method is CryptoMethod.RC4 and rest:
            rest = self._decrypt(rest)
        self.trailing_data = rest
        skey = self._skey
        assert skey is not None
        self._event = HandshakeComplete(self._method, skey, initial_payload)
        self._state = MSEState.DONE
        return True

    # ---- initiator (A) ----------------------------------------------------------------

    def _a_pubkey(self) -> bool:
        if not self._read_pubkey():
            return False
        assert self._skey is not None
        self._rc4 = RC4Pair.for_role(Role.INITIATOR, self._secret, self._skey)
        pad_c = b""  # spec: PadC "may be 0-length"; padding-only use must be zeros anyway
        self._out += mse_hash(b"req1", self._secret)
        self._out += _xor(req2_hash(self._skey), mse_hash(b"req3", self._secret))
        self._out += self._encrypt(
            VC
            + int(self.policy.methods).to_bytes(4, "big")
            + len(pad_c).to_bytes(2, "big")
            + pad_c
            + len(self._ia).to_bytes(2, "big")
            + self._ia
        )
        # B's ENCRYPT(VC) is B's keystream over eight zero bytes. Decrypting zeros
        # yields exactly that pattern and leaves our receive stream just past VC.
        self._marker = self._decrypt(VC)
        self._state = MSEState.WAIT_SYNC
        return True

    def _a_sync(self) -> bool:
        # Step 5 limit: VC must end within 96 + 512 + 8 = 616 bytes of B's stream.
        if not self._scan():
            return False
        self._state = MSEState.WAIT_HEADER
        return True

    def _a_header(self) -> bool:
        raw = self._take(6)
        if raw is None:
            return False
        plain = self._decrypt(raw)
        selected = int.from_bytes(plain[:4], "big") & _KNOWN_METHODS
        if selected not in (CryptoMethod.PLAINTEXT, CryptoMethod.RC4):
            raise self._fail(f"crypto_select must name one method, got {selected:#x}")
        if not selected & self.policy.methods:
            raise self._fail(f"peer selected {CryptoMethod(selected)!r}, which we did not provide")
        self._method = CryptoMethod(selected)
        self._pad_len = int.from_bytes(plain[4:6], "big")
        if self._pad_len > MAX_PAD:
            raise self._fail(f"PadD of {self._pad_len} bytes exceeds {MAX_PAD}")
        self._state = MSEState.WAIT_PAD
        return True

    def _a_pad(self) -> bool:
        raw = self._take(self._pad_len)
        if raw is None:
            return False
        self._decrypt(raw)  # PadD content is ignored, but it advances the stream
        return self._finish(b"")

    # ---- receiver (B) -----------------------------------------------------------------

    def _b_pubkey(self) -> bool:
        if not self._read_pubkey():
            return False
        self._out += self._public_key() + self._padding()
        self._marker = mse_hash(b"req1", self._secret)
        self._state = MSEState.WAIT_SYNC
        return True

    def _b_sync(self) -> bool:
        # Step 4 limit: HASH('req1', S) must end within 96 + 512 + 20 = 628 bytes.
        if not self._scan():
            return False
        self._state = MSEState.WAIT_SKEY
        return True

    def _b_skey(self) -> bool:
        raw = self._take(_HASH_LEN)
        if raw is None:
            return False
        wanted = _xor(raw, mse_hash(b"req3", self._secret))
        skey = self._lookup_skey(wanted)
        if skey is None:
            raise self._fail("SKEY hash matches no torrent we serve")
        self._skey = skey
        self._rc4 = RC4Pair.for_role(Role.RECEIVER, self._secret, skey)
        self._state = MSEState.WAIT_HEADER
        return True

    def _lookup_skey(self, wanted: bytes) -> bytes | None:
        if callable(self._skeys):
            return self._skeys(wanted)
        assert self._skeys is not None
        # Hash every candidate: the xor hides which one A meant, by design.
        return next((s for s in self._skeys if req2_hash(s) == wanted), None)

    def _b_header(self) -> bool:
        raw = self._take(len(VC) + 4 + 2)
        if raw is None:
            return False
        plain = self._decrypt(raw)
        if plain[:8] != VC:
            raise self._fail("VC did not decrypt to zeros")
        provided = int.from_bytes(plain[8:12], "big")
        method = self.policy.select(provided)
        if method is None:
            raise self._fail(f"no common crypto method (peer provides {provided:#x})")
        self._method = method
        self._pad_len = int.from_bytes(plain[12:14], "big")
        if self._pad_len > MAX_PAD:
            raise self._fail(f"PadC of {self._pad_len} bytes exceeds {MAX_PAD}")
        self._state = MSEState.WAIT_PAD
        return True

    def _b_pad(self) -> bool:
        raw = self._take(self._pad_len + 2)
        if raw is None:
            return False
        self._ia_len = int.from_bytes(self._decrypt(raw)[-2:], "big")
        self._state = MSEState.WAIT_IA
        return True

    def _b_ia(self) -> bool:
        raw = self._take(self._ia_len)
        if raw is None:
            return False
        initial_payload = self._decrypt(raw)
        assert self._method is not None
        pad_d = b""
        self._out += self._encrypt(
            VC + int(self._method).to_bytes(4, "big") + len(pad_d).to_bytes(2, "big") + pad_d
        )
        return self._finish(initial_payload)


#: The transition table: which handler consumes input in each (role, state). A
#: handler returns True when it advanced (so the loop tries the next state) and
#: False when it needs more bytes.
_HANDLERS: Final[dict[tuple[Role, MSEState], Callable[[MSEHandshake], bool]]] = {
    (Role.INITIATOR, MSEState.WAIT_PUBKEY): MSEHandshake._a_pubkey,
    (Role.INITIATOR, MSEState.WAIT_SYNC): MSEHandshake._a_sync,
    (Role.INITIATOR, MSEState.WAIT_HEADER): MSEHandshake._a_header,
    (Role.INITIATOR, MSEState.WAIT_PAD): MSEHandshake._a_pad,
    (Role.RECEIVER, MSEState.WAIT_PUBKEY): MSEHandshake._b_pubkey,
    (Role.RECEIVER, MSEState.WAIT_SYNC): MSEHandshake._b_sync,
    (Role.RECEIVER, MSEState.WAIT_SKEY): MSEHandshake._b_skey,
    (Role.RECEIVER, MSEState.WAIT_HEADER): MSEHandshake._b_header,
    (Role.RECEIVER, MSEState.WAIT_PAD): MSEHandshake._b_pad,
    (Role.RECEIVER, MSEState.WAIT_IA): MSEHandshake._b_ia,
}
