"""SOCKS5 (RFC 1928) and its username/password auth (RFC 1929) as a sans-IO codec.

Why our own codec when `python-socks` does CONNECT for us (`net/socks.py` uses it):
python-socks has no UDP ASSOCIATE, and the DHT must go through the proxy too. UDP
ASSOCIATE needs the same greeting, auth and request/reply messages on a control TCP
connection, plus the UDP request header that wraps every datagram. All of it is
here, pure, so hypothesis can round-trip and fuzz it.

Host names stay names: an address that is not an IP literal is encoded as ATYP
DOMAINNAME, so the proxy resolves it and no DNS query leaves this machine
(the DHT routers are reached this way when proxied).

Every decoder of remote bytes raises only `DecodeError`. The stream decoders
(`decode_method_choice`, `decode_auth_reply`, `decode_reply`, `decode_request`)
return None while more bytes are needed, so the caller reads until they answer.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from dataclasses import dataclass
from typing import Final, final
from urllib.parse import unquote, urlsplit

from .errors import DecodeError

__all__ = [
    "VERSION",
    "AddressType",
    "AuthMethod",
    "Command",
    "ProxyURL",
    "Reply",
    "ReplyCode",
    "UDPDatagram",
    "accept_relayed",
    "decode_auth_reply",
    "decode_method_choice",
    "decode_reply",
    "decode_request",
    "decode_udp",
    "encode_auth_reply",
    "encode_greeting",
    "encode_reply",
    "encode_request",
    "encode_udp",
    "encode_userpass",
    "parse_proxy_url",
]

VERSION: Final = 5
_AUTH_VERSION: Final = 1  # RFC 1929 sub-negotiation version
MAX_FIELD: Final = 255  # user, password and domain names are length-prefixed by one byte


class AuthMethod(enum.IntEnum):
    NO_AUTH = 0x00
    USERNAME_PASSWORD = 0x02
    NO_ACCEPTABLE = 0xFF


class Command(enum.IntEnum):
    CONNECT = 0x01
    BIND = 0x02
    UDP_ASSOCIATE = 0x03


class AddressType(enum.IntEnum):
    IPV4 = 0x01
    DOMAIN = 0x03
    IPV6 = 0x04


class ReplyCode(enum.IntEnum):
    SUCCEEDED = 0x00
    GENERAL_FAILURE = 0x01
    NOT_ALLOWED = 0x02
    NETWORK_UNREACHABLE = 0x03
    HOST_UNREACHABLE = 0x04
    CONNECTION_REFUSED = 0x05
    TTL_EXPIRED = 0x06
    COMMAND_NOT_SUPPORTED = 0x07
    ADDRESS_TYPE_NOT_SUPPORTED = 0x08

    def describe(self) -> str:
        return self.name.lower().replace("_", " ")


@final
@dataclass(frozen=True, slots=True)
class ProxyURL:
    """A parsed ``socks5://[user:pass@]host:port``. `repr` hides the password."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:
        user = f"{self.username}:***@" if self.username is not None else ""
        return f"ProxyURL('socks5://{user}{_host_text(self.host)}:{self.port}')"

    def display(self) -> str:
        """``host:port`` for messages (never the credentials)."""
        return f"{_host_text(self.host)}:{self.port}"


def _host_text(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def parse_proxy_url(url: str) -> ProxyURL:
    """Parse ``socks5://[user:pass@]HOST:PORT`` (``socks5h://`` is the same here:
    we always let the proxy resolve names).

    Raises:
        DecodeError: not a socks5 URL, no port, or a field longer than 255 bytes.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise DecodeError(f"bad proxy URL: {exc}") from None
    if parts.scheme.lower() not in ("socks5", "socks5h"):
        raise DecodeError("proxy URL must start with socks5:// (only SOCKS5 is supported)")
    host = parts.hostname
    if not host or port is None or port == 0:
        raise DecodeError("proxy URL needs a host and a port: socks5://HOST:PORT")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise DecodeError("proxy URL has a path, query or fragment")
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    if (user is None) != (password is None):
        raise DecodeError("proxy URL needs both a user name and a password, or neither")
    for field in (user, password, host):
        if field is not None and not 0 < len(field.encode()) <= MAX_FIELD:
            raise DecodeError("proxy host, user name and password must be 1..255 bytes")
    return ProxyURL(host, port, user, password)


# ---------------------------------------------------------------- addresses


def _encode_addr(host: str, port: int) -> bytes:
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port {port} out of range")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        name = host.encode("idna") if not host.isascii() else host.encode()
        if not 0 < len(name) <= MAX_FIELD:
            raise ValueError("domain name must be 1..255 bytes") from None
        return bytes([AddressType.DOMAIN, len(name)]) + name + struct.pack(">H", port)
    atyp = AddressType.IPV4 if ip.version == 4 else AddressType.IPV6
    return bytes([atyp]) + ip.packed + struct.pack(">H", port)


def _decode_addr(buf: bytes, at: int) -> tuple[str, int, int] | None:
    """(host, port, end) of the address starting at `at`, or None if incomplete."""
    if len(buf) < at + 1:
        return None
    atyp = buf[at]
    if atyp == AddressType.IPV4:
        size, start = 4, at + 1
    elif atyp == AddressType.IPV6:
        size, start = 16, at + 1
    elif atyp == AddressType.DOMAIN:
        if len(buf) < at + 2:
            return None
        size, start = buf[at + 1], at + 2
        if size == 0:
            raise DecodeError("empty domain name")
    else:
        raise DecodeError(f"unknown address type {atyp}")
    end = start + size + 2
    if len(buf) < end:
        return None
    raw = buf[start : start + size]
    if atyp == AddressType.DOMAIN:
        try:
            host = raw.decode("ascii")
        except UnicodeDecodeError:
            raise DecodeError("domain name is not ASCII") from None
    else:
        host = str(ipaddress.ip_address(raw))
    (port,) = struct.unpack_from(">H", buf, start + size)
    return host, port, end


# ---------------------------------------------------------------- greeting and auth


def encode_greeting(methods: list[AuthMethod]) -> bytes:
    """Client hello: the auth methods we offer."""
    if not 0 < len(methods) <= MAX_FIELD:
        raise ValueError("offer 1..255 methods")
    return bytes([VERSION, len(methods), *methods])


def decode_method_choice(buf: bytes) -> int | None:
    """The server's chosen method (an int: it may be one we do not know), or None."""
    if len(buf) < 2:
        return None
    if buf[0] != VERSION:
        raise DecodeError(f"not a SOCKS5 server (version byte {buf[0]})")
    return buf[1]


def encode_userpass(username: str, password: str) -> bytes:
    """RFC 1929 username/password request."""
    user, pw = username.encode(), password.encode()
    if not (0 < len(user) <= MAX_FIELD and 0 < len(pw) <= MAX_FIELD):
        raise ValueError("user name and password must be 1..255 bytes")
    return bytes([_AUTH_VERSION, len(user)]) + user + bytes([len(pw)]) + pw


def encode_auth_reply(ok: bool) -> bytes:
    return bytes([_AUTH_VERSION, 0 if ok else 1])


def decode_auth_reply(buf: bytes) -> bool | None:
    """True if the server accepted our credentials, or None if incomplete."""
    if len(buf) < 2:
        return None
    if buf[0] != _AUTH_VERSION:
        raise DecodeError(f"bad username/password reply version {buf[0]}")
    return buf[1] == 0


# ---------------------------------------------------------------- request and reply


@final
@dataclass(frozen=True, slots=True)
class Reply:
    """A server reply: its code (an int, as servers send codes RFC 1928 lacks) and
    BND.ADDR / BND.PORT (for UDP ASSOCIATE: where to send datagrams)."""

    code: int
    host: str
    port: int

    def error(self) -> str | None:
        """None on success, else what the code means."""
        if self.code == ReplyCode.SUCCEEDED:
            return None
        try:
            return ReplyCode(self.code).describe()
        except ValueError:
            return f"unknown reply code {self.code}"


def encode_request(command: Command, host: str, port: int) -> bytes:
    """CONNECT / BIND / UDP ASSOCIATE request for `host:port` (names stay names)."""
    return bytes([VERSION, command, 0]) + _encode_addr(host, port)


def decode_request(buf: bytes) -> tuple[int, str, int, int] | None:
    """(command, host, port, bytes used) of a client request, or None (server side:
    tests and tools use it; shoal itself is only a client)."""
    return _decode_message(buf, "request")


def encode_reply(code: int, host: str, port: int) -> bytes:
    return bytes([VERSION, code, 0]) + _encode_addr(host, port)


def decode_reply(buf: bytes) -> tuple[Reply, int] | None:
    """The server's reply and the bytes it used, or None if incomplete."""
    got = _decode_message(buf, "reply")
    if got is None:
        return None
    code, host, port, end = got
    return Reply(code, host, port), end


def _decode_message(buf: bytes, what: str) -> tuple[int, str, int, int] | None:
    if len(buf) < 3:
        return None
    if buf[0] != VERSION:
        raise DecodeError(f"SOCKS5 {what} with version {buf[0]}")
    if buf[2] != 0:
        raise DecodeError(f"SOCKS5 {what} with a non-zero reserved byte")
    addr = _decode_addr(buf, 3)
    if addr is None:
        return None
    host, port, end = addr
    return buf[1], host, port, end


# ---------------------------------------------------------------- UDP encapsulation


@final
@dataclass(frozen=True, slots=True)
class UDPDatagram:
    """One datagram relayed by the proxy: the far end's address and the payload."""

    host: str
    port: int
    data: bytes
    frag: int = 0


def encode_udp(host: str, port: int, data: bytes, *, frag: int = 0) -> bytes:
    """Wrap `data` for DST.ADDR:DST.PORT in the UDP request header (RFC 1928 §7)."""
    if not 0 <= frag <= 0xFF:
        raise ValueError("frag is one byte")
    return b"\x00\x00" + bytes([frag]) + _encode_addr(host, port) + data


def decode_udp(datagram: bytes) -> UDPDatagram:
    """Unwrap a relayed datagram.

    Raises:
        DecodeError: truncated header, non-zero reserved bytes or a bad address.
        (Fragments decode with their `frag`; callers drop frag != 0, as we never
        reassemble: RFC 1928 makes reassembly optional.)
    """
    if len(datagram) < 4:
        raise DecodeError("SOCKS5 UDP datagram shorter than its header")
    if datagram[0] or datagram[1]:
        raise DecodeError("SOCKS5 UDP header with non-zero reserved bytes")
    addr = _decode_addr(datagram, 3)
    if addr is None:
        raise DecodeError("SOCKS5 UDP datagram truncated in its address")
    host, port, end = addr
    return UDPDatagram(host, port, datagram[end:], datagram[2])


def accept_relayed(
    datagram: bytes, src: tuple[str, int], relay: tuple[str, int] | None
) -> UDPDatagram | None:
    """The datagram to deliver from what arrived on an associated socket, or None to drop
    it: only the relay may talk to that socket, and we never reassemble fragments
    (RFC 1928 makes reassembly optional), so a stranger, a bad header or a fragment is
    dropped, never delivered or answered."""
    if relay is None or (src[0], src[1]) != relay:
        return None
    try:
        dgram = decode_udp(datagram)
    except DecodeError:
        return None
    return None if dgram.frag else dgram
