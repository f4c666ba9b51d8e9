"""announce_peer write tokens (BEP 5, "get_peers" / "announce_peer").

Theory of operation
-------------------
A token proves that the announcer recently received a get_peers reply at the IP
it now announces from, so nobody can sign up a third party's address. BEP 5
leaves the scheme to the implementation and describes BitTorrent's: SHA-1 over
the IP and a secret "that changes every five minutes", accepting tokens "up to
ten minutes old". We keep two secrets (current and previous), rotate whenever
`now` passes the rotation deadline, and also bind the token to the info-hash so
a token for one torrent cannot announce another.

Time is passed in; secrets come from an injected source so tests are scripted
and the Trio layer can pass ``secrets.token_bytes``.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from typing import TYPE_CHECKING, Final

from .compact import ip_packed

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ROTATE_INTERVAL", "SECRET_LENGTH", "TOKEN_LENGTH", "TokenManager"]

#: BEP 5: "a secret that changes every five minutes".
ROTATE_INTERVAL: Final = 300.0
SECRET_LENGTH: Final = 16
#: 8 bytes of SHA-1 is far beyond what can be guessed in ten minutes of UDP.
TOKEN_LENGTH: Final = 8


class TokenManager:
    """Issues and checks tokens; a token stays valid for 5–10 minutes.

    Args:
        secret_source: a ``random.Random`` (tests) or a ``Callable[[int], bytes]`` such
            as ``secrets.token_bytes`` (production) giving fresh secret bytes.
        now: the current time; the first rotation is due `interval` later.
    """

    def __init__(
        self,
        secret_source: random.Random | Callable[[int], bytes],
        now: float,
        *,
        interval: float = ROTATE_INTERVAL,
    ) -> None:
        if isinstance(secret_source, random.Random):
            self._new_secret: Callable[[int], bytes] = secret_source.randbytes
        else:
            self._new_secret = secret_source
        self._interval = interval
        self._current = self._new_secret(SECRET_LENGTH)
        self._previous = self._new_secret(SECRET_LENGTH)
        self._rotate_at = now + interval

    def _rotate(self, now: float) -> None:
        # After two or more missed intervals both secrets must be fresh, so loop at
        # most twice and then re-anchor instead of replaying every missed interval.
        for _ in range(2):
            if now < self._rotate_at:
                return
            self._previous, self._current = self._current, self._new_secret(SECRET_LENGTH)
            self._rotate_at += self._interval
        if now >= self._rotate_at:
            self._rotate_at = now + self._interval

    @staticmethod
    def _digest(secret: bytes, ip: str, info_hash: bytes) -> bytes:
        return hashlib.sha1(ip_packed(ip) + info_hash + secret).digest()[:TOKEN_LENGTH]

    def issue(self, ip: str, info_hash: bytes, now: float) -> bytes:
        """The token to put in a get_peers reply to `ip` about `info_hash`."""
        if now >= self._rotate_at:  # `_rotate`'s own test, first: once per query
            self._rotate(now)
        data = ip_packed(ip) + info_hash + self._current
        return hashlib.sha1(data).digest()[:TOKEN_LENGTH]

    def validate(self, token: bytes, ip: str, info_hash: bytes, now: float) -> bool:
        """True if `token` was issued to `ip` for `info_hash` under a live secret."""
        self._rotate(now)
        # compare_digest: do not leak how many leading bytes matched.
        return any(
            hmac.compare_digest(token, self._digest(secret, ip, info_hash))
            for secret in (self._current, self._previous)
        )

    def get_timer(self) -> float:
        """When the next rotation is due (rotation also happens lazily on use)."""
        return self._rotate_at
