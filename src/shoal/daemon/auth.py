"""Web API authentication: PBKDF2 password hashes, SID sessions, bans, CSRF checks.

As qBittorrent does it (and its defaults): ``auth/login`` takes ``username`` and
``password`` and answers ``Ok.`` with a ``SID`` cookie or ``Fails.``; after
`MAX_FAILURES` failed logins an address is banned for `BAN_SECONDS`, and every
request from it gets 403. Sessions expire after `SESSION_SECONDS` of inactivity and
their number is bounded (the oldest is dropped), so nobody can grow our memory by
logging in in a loop.

The password is never stored: only ``pbkdf2_sha512$iterations$salt$hash`` (base64),
compared in constant time. CSRF: a state-changing request whose ``Origin`` or
``Referer`` names another host than the one it was sent to is refused, and the
``Host`` header must be an IP literal, ``localhost`` or a configured name, which
stops DNS-rebinding pages from reaching a daemon bound to 127.0.0.1.

Time is a parameter (``now``) so the ban and expiry rules are tested without sleeping.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final, final
from urllib.parse import urlsplit

__all__ = [
    "BAN_SECONDS",
    "MAX_FAILURES",
    "SESSION_SECONDS",
    "Authenticator",
    "hash_password",
    "host_allowed",
    "same_origin",
    "verify_password",
]

MAX_FAILURES: Final = 5
BAN_SECONDS: Final = 3600.0
SESSION_SECONDS: Final = 3600.0
MAX_SESSIONS: Final = 1024
_ITERATIONS: Final = 100_000


def hash_password(
    password: str, *, salt: bytes | None = None, iterations: int = _ITERATIONS
) -> str:
    """``pbkdf2_sha512$<iterations>$<salt b64>$<hash b64>`` for `password`."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    b64 = base64.b64encode
    return f"pbkdf2_sha512${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches a `hash_password` string (False if it is malformed)."""
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha512":
            return False
        expected = base64.b64decode(digest, validate=True)
        got = hashlib.pbkdf2_hmac(
            "sha512", password.encode(), base64.b64decode(salt, validate=True), int(iterations)
        )
    except ValueError:
        return False
    return hmac.compare_digest(got, expected)


def _hostname(host: str) -> str:
    """``[::1]:8080`` → ``::1``; ``example:80`` → ``example``."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def host_allowed(host: str | None, names: frozenset[str]) -> bool:
    """The ``Host`` header is an IP literal, ``localhost`` or one of `names` (DNS rebinding)."""
    if not host:
        return False
    name = _hostname(host).lower()
    if name == "localhost" or name in names or "*" in names:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def same_origin(host: str | None, origin: str | None, referer: str | None) -> bool:
    """``Origin`` and ``Referer``, when sent, name the host the request was sent to."""
    for value in (origin, referer):
        if value is None:
            continue
        if value == "null":
            return False
        netloc = urlsplit(value).netloc
        if not netloc or host is None or netloc.lower() != host.lower():
            return False
    return True


@dataclass
class _Failures:
    count: int = 0
    banned_until: float = 0.0


@final
@dataclass
class Authenticator:
    """Credentials, live sessions and per-address failure counts."""

    username: str
    password_hash: str
    bypass_localhost: bool = False
    _sessions: OrderedDict[str, float] = field(default_factory=OrderedDict)
    _failures: dict[str, _Failures] = field(default_factory=dict)
    bans: int = 0  # addresses banned so far (for /metrics)

    def banned(self, ip: str, now: float) -> bool:
        entry = self._failures.get(ip)
        return entry is not None and entry.banned_until > now

    def login(self, ip: str, username: str, password: str, now: float) -> str | None:
        """A new SID, or None (and one more failure for `ip`) if the credentials are wrong."""
        ok = username == self.username and verify_password(password, self.password_hash)
        if not ok:
            entry = self._failures.setdefault(ip, _Failures())
            entry.count += 1
            if entry.count >= MAX_FAILURES:
                entry.banned_until = now + BAN_SECONDS
                entry.count = 0
                self.bans += 1
            if len(self._failures) > 4 * MAX_SESSIONS:  # forget the oldest unbanned
                for key in [k for k, v in self._failures.items() if v.banned_until <= now]:
                    del self._failures[key]
            return None
        self._failures.pop(ip, None)
        sid = secrets.token_urlsafe(24)
        self._sessions[sid] = now
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return sid

    def logout(self, sid: str | None) -> None:
        if sid is not None:
            self._sessions.pop(sid, None)

    def authorized(self, sid: str | None, ip: str, now: float) -> bool:
        """A live session (refreshed), or localhost with the bypass enabled."""
        if self.bypass_localhost and _is_loopback(ip):
            return True
        if sid is None:
            return False
        seen = self._sessions.get(sid)
        if seen is None or now - seen > SESSION_SECONDS:
            self._sessions.pop(sid, None)
            return False
        self._sessions[sid] = now
        self._sessions.move_to_end(sid)
        return True


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False
