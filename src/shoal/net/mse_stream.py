"""`MSEStream`: a `trio.abc.Stream` that speaks MSE/PE over another stream.

Theory of operation
-------------------
This is trio's ``SSLStream`` design applied to the sans-IO `MSEHandshake`:

- **One-shot handshake.** `do_handshake` runs the engine once: flush its output,
  read from the transport, feed the engine, repeat until `HandshakeComplete`.
  Concurrent callers wait for the first one; later calls return at once. The first
  `send_all` / `receive_some` triggers it implicitly.
- **State.** OK, BROKEN or CLOSED. RC4 is a stream cipher with no framing or
  resynchronisation, so once a handshake or a send has been interrupted (error *or*
  cancellation) we no longer know how much keystream the peer has consumed: the
  stream is BROKEN and every later call raises `trio.BrokenResourceError`. A
  cancelled ``receive_some`` is harmless, because nothing was read or decrypted.
- **Conflicts.** Two tasks in ``send_all`` (or ``receive_some``) at once raise
  `trio.BusyResourceError`, as every trio stream must. Internally the handshake
  may write to the transport from a ``receive_some`` caller while another task
  sits in ``wait_send_all_might_not_block``, so transport writes take an inner
  lock, again as ``SSLStream`` does.
- **Leftovers first.** The receiver's decrypted IA (normally the BitTorrent
  handshake) and any payload that arrived behind the handshake are served by
  ``receive_some`` before the transport is read again.
- **No extra copies on send.** RC4 output goes into one reusable buffer via
  ``update_into``; trio's `send_all` contract says the transport is done with the
  buffer when it returns, so reusing it for the next chunk is safe.
"""

from __future__ import annotations

import enum
import random
from typing import Final, final

import trio

from ..errors import NeedHandshakeError
from ..peer.mse import (
    CryptoMethod,
    EncryptionPolicy,
    HandshakeComplete,
    MSEHandshake,
    RC4Pair,
    SKeyLookup,
)
from ._conflict import ConflictDetector
from ._max_bytes import check_max_bytes

__all__ = ["MSEStream"]

#: Transport read size during the handshake: one read normally holds a whole step.
HANDSHAKE_RECEIVE_SIZE: Final = 65536
#: Largest plaintext encrypted per transport write; bounds the reusable buffer.
SEND_CHUNK: Final = 65536


class _State(enum.Enum):
    OK = "ok"
    BROKEN = "broken"
    CLOSED = "closed"


@final
class MSEStream(trio.abc.Stream):
    """An encrypted (or header-obfuscated) stream over `transport_stream`.

    Build with `initiator` or `receiver`, or wrap a prepared `MSEHandshake`.
    Handshake failures raise `HandshakeError` from `do_handshake` (or from the
    first send/receive); transport failures raise trio's own errors.
    """

    def __init__(
        self,
        transport_stream: trio.abc.Stream,
        handshake: MSEHandshake,
        *,
        initial_data: bytes = b"",
    ) -> None:
        self.transport_stream: Final = transport_stream
        self._engine = handshake
        self._initial_data = initial_data
        self._state = _State.OK
        self._handshake_started = False
        self._handshake_finished = trio.Event()
        self._event: HandshakeComplete | None = None
        self._cipher: RC4Pair | None = None
        self._leftover = bytearray()
        self._send_buf = bytearray()
        self._inner_send_lock = trio.Lock()
        self._send_conflict = ConflictDetector("another task is sending on this MSEStream")
        self._receive_conflict = ConflictDetector("another task is receiving on this MSEStream")

    @classmethod
    def initiator(
        cls,
        transport_stream: trio.abc.Stream,
        skey: bytes,
        *,
        policy: EncryptionPolicy | None = None,
        initial_payload: bytes = b"",
        rng: random.Random | None = None,
    ) -> MSEStream:
        """Side A for torrent `skey`; `initial_payload` (IA) rides in the handshake."""
        engine = MSEHandshake.initiator(
            skey,
            rng=rng or random.SystemRandom(),
            policy=policy,
            initial_payload=initial_payload,
        )
        return cls(transport_stream, engine)

    @classmethod
    def receiver(
        cls,
        transport_stream: trio.abc.Stream,
        skeys: SKeyLookup,
        *,
        policy: EncryptionPolicy | None = None,
        initial_data: bytes = b"",
        rng: random.Random | None = None,
    ) -> MSEStream:
        """Side B. `initial_data` is what a sniffer already read off the transport."""
        engine = MSEHandshake.receiver(skeys, rng=rng or random.SystemRandom(), policy=policy)
        return cls(transport_stream, engine, initial_data=initial_data)

    # ---- handshake results ------------------------------------------------------------

    def _completed(self) -> HandshakeComplete:
        if self._event is None:
            raise NeedHandshakeError("call do_handshake() first")
        return self._event

    @property
    def crypto_method(self) -> CryptoMethod:
        """The negotiated method. Raises `NeedHandshakeError` before the handshake."""
        return self._completed().method

    @property
    def skey(self) -> bytes:
        """The shared SKEY (the torrent's info-hash). Raises `NeedHandshakeError` early."""
        return self._completed().skey

    # ---- state ------------------------------------------------------------------------

    def _check_status(self) -> None:
        if self._state is _State.BROKEN:
            raise trio.BrokenResourceError("MSEStream is broken")
        if self._state is _State.CLOSED:
            raise trio.ClosedResourceError("MSEStream is closed")

    def _mark_broken(self) -> None:
        # A concurrent aclose() makes transport calls fail; that stays CLOSED.
        if self._state is _State.OK:
            self._state = _State.BROKEN

    async def do_handshake(self) -> None:
        """Run the MSE handshake if nobody has yet; idempotent and safe to call concurrently.

        Raises:
            HandshakeError: the peer broke the protocol (the stream is then BROKEN).
            trio.BrokenResourceError: the transport or an earlier attempt failed.
            trio.ClosedResourceError: the stream was closed.
        """
        self._check_status()
        if self._handshake_started:
            await self._handshake_finished.wait()  # a checkpoint even when already set
            self._check_status()
            return
        self._handshake_started = True
        try:
            await self._drive_handshake()
        except BaseException:
            # Interrupted half-way, for whatever reason: the two RC4 streams and the
            # peer's view of them can no longer be trusted to line up.
            self._mark_broken()
            raise
        finally:
            self._handshake_finished.set()

    async def _drive_handshake(self) -> None:
        engine = self._engine
        if self._initial_data:
            engine.receive_data(self._initial_data)
        while True:
            out = engine.data_to_send()
            if out:
                async with self._inner_send_lock:
                    await self.transport_stream.send_all(out)
            event = engine.next_event()
            if event is not None:
                break
            engine.receive_data(await self.transport_stream.receive_some(HANDSHAKE_RECEIVE_SIZE))
        self._cipher = engine.cipher
        self._leftover += event.initial_payload
        self._leftover += engine.trailing_data
        self._event = event

    # ---- trio.abc.Stream --------------------------------------------------------------

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        with self._send_conflict:
            self._check_status()
            if self._event is None:  # hot path skips the handshake's extra checkpoint
                await self.do_handshake()
            try:
                if self._cipher is None:  # plaintext method: pass straight through
                    await self.transport_stream.send_all(data)
                else:
                    await self._send_encrypted(self._cipher, memoryview(data).cast("B"))
            except BaseException:
                # Keystream is spent on bytes the peer may never see: out of sync.
                self._mark_broken()
                raise

    async def _send_encrypted(self, cipher: RC4Pair, view: memoryview) -> None:
        if not view:
            await self.transport_stream.send_all(b"")  # still a checkpoint, still checks
            return
        need = min(len(view), SEND_CHUNK)
        if len(self._send_buf) < need:
            self._send_buf = bytearray(need)  # grows at most to SEND_CHUNK, then reused
        for start in range(0, len(view), SEND_CHUNK):
            n = cipher.encrypt_into(view[start : start + SEND_CHUNK], self._send_buf)
            with memoryview(self._send_buf) as out:
                await self.transport_stream.send_all(out[:n])

    async def wait_send_all_might_not_block(self) -> None:
        with self._send_conflict:
            self._check_status()
            # The handshake may be writing from a receive_some() caller; wait our turn
            # rather than making the transport raise BusyResourceError at our caller.
            async with self._inner_send_lock:
                await self.transport_stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        max_bytes = check_max_bytes(max_bytes)
        with self._receive_conflict:
            self._check_status()
            if self._event is None:
                await self.do_handshake()
            if self._leftover:
                await trio.lowlevel.checkpoint()  # every receive_some is a checkpoint
                n = len(self._leftover) if max_bytes is None else max_bytes
                chunk = bytes(self._leftover[:n])
                del self._leftover[:n]
                return chunk
            try:
                data = await self.transport_stream.receive_some(max_bytes)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._mark_broken()
                raise
            # Cancellation above is harmless: nothing was read, so nothing to decrypt.
            if self._cipher is None or not data:
                return data
            return self._cipher.decrypt(data)

    async def aclose(self) -> None:
        if self._state is _State.CLOSED:
            await trio.lowlevel.checkpoint()
            return
        self._state = _State.CLOSED
        # MSE has no closing handshake: closing the transport is the whole story.
        await self.transport_stream.aclose()
