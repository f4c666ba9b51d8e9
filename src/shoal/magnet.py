"""BEP 9 magnet URIs (with BEP 53 ``so=``): parse to a `Magnet`, format back.

Theory of operation
-------------------
A magnet link is ``magnet:?`` followed by ``&``-separated ``key=value`` pairs, each
value percent-encoded (``+`` is a space, as in HTML forms and as libtorrent reads it).
We model only what a trackerless client acts on:

* ``xt=urn:btih:<hash>`` — mandatory, exactly one; 40 hex digits or 32 base32 (BEP 9),
  either case. A hybrid link may also carry ``xt=urn:btmh:`` (the v2 multihash, BEP 52);
  we ignore it when a ``btih`` is present and explain ourselves when it is the only one.
* ``dn`` — display name, UTF-8 after percent-decoding.
* ``tr`` — tracker URLs, repeatable, order kept (we do not announce, but we keep them so
  a link we re-emit loses nothing a user gave us).
* ``x.pe`` — peer addresses to fetch metadata from directly: ``host:port``,
  ``ipv4:port`` or ``[ipv6]:port`` (BEP 9). IPv6 is stored without brackets, compressed.
* ``so`` — BEP 53 "select only" file indices: ``0,2,4-6``, stored as inclusive ranges.

Everything else (``xl``, ``ws``, ``as``, ``kt``...) is ignored. Single-valued parameters
given twice are refused: there is no right answer to which one the sender meant.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final, final
from urllib.parse import quote, unquote_to_bytes

from .errors import DecodeError
from .ids import InfoHash

__all__ = ["MAX_MAGNET_LENGTH", "Magnet", "format_magnet", "parse_magnet"]

#: Longest URI we parse. Real links with dozens of trackers stay under 8 KiB; the cap
#: bounds the work a hostile clipboard or web page can make us do.
MAX_MAGNET_LENGTH: Final = 64 * 1024
#: BEP 53 file indices above this are refused; no torrent has a billion files, and the
#: cap keeps ``int()`` on attacker-chosen digit strings trivially cheap.
MAX_FILE_INDEX: Final = 10**9 - 1

_SCHEME = "magnet:?"
_BTIH = "urn:btih:"
_BTMH = "urn:btmh:"
_HEX40 = re.compile(r"[0-9A-Fa-f]{40}")
_BASE32 = re.compile(r"[A-Za-z2-7]{32}")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PORT = re.compile(r"[0-9]{1,5}")
_INDEX = re.compile(r"[0-9]{1,9}")
# RFC 1123 host names: LDH labels of 1..63 characters, no hyphen at either end.
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_DOTTED_DIGITS = re.compile(r"[0-9.]+")


@final
@dataclass(frozen=True, slots=True)
class Magnet:
    """What a magnet link tells us: the v1 info-hash plus optional hints.

    Constructing one by hand validates ports and ranges (``ValueError``); parsing an
    untrusted string goes through `parse_magnet`, which raises `DecodeError` instead.
    """

    info_hash: InfoHash
    display_name: str | None = None
    trackers: tuple[str, ...] = ()
    #: BEP 9 ``x.pe``: (host, port); IPv6 hosts without brackets.
    peers: tuple[tuple[str, int], ...] = ()
    #: BEP 53 ``so``: inclusive (first, last) file-index ranges; ``None`` means all files.
    select_only: tuple[tuple[int, int], ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.info_hash, InfoHash):
            raise TypeError("info_hash must be an InfoHash")
        for host, port in self.peers:
            if not host or not 1 <= port <= 65535:
                raise ValueError(f"bad peer address {host!r}:{port}")
        if self.select_only is not None:
            if not self.select_only:
                raise ValueError("select_only must be None (all files) or non-empty")
            for first, last in self.select_only:
                if not 0 <= first <= last <= MAX_FILE_INDEX:
                    raise ValueError(f"bad file-index range {first}-{last}")

    def __str__(self) -> str:
        return format_magnet(self)


def _show(text: str) -> str:
    """Quote untrusted text for an error message, cut so a 64 KiB link stays readable."""
    return repr(text) if len(text) <= 80 else repr(text[:77]) + "..."


def _unescape(value: str, what: str) -> str:
    """Percent-decode one value strictly: bad escapes and bad UTF-8 are errors."""
    if _BAD_ESCAPE.search(value):
        raise DecodeError(f"magnet {what}: malformed percent-escape in {_show(value)}")
    try:
        return unquote_to_bytes(value.replace("+", " ")).decode("utf-8")
    except UnicodeError as exc:
        raise DecodeError(f"magnet {what}: not valid UTF-8 after percent-decoding") from exc


def _escape(value: str, safe: str = "") -> str:
    # Everything but RFC 3986 unreserved characters is escaped, including "+", which
    # `_unescape` would otherwise read back as a space.
    return quote(value, safe=safe)


def _parse_info_hash(xt: str) -> InfoHash:
    text = xt[len(_BTIH) :]
    if _HEX40.fullmatch(text):
        return InfoHash(bytes.fromhex(text))
    if _BASE32.fullmatch(text):
        return InfoHash.from_base32(text)
    raise DecodeError(
        f"magnet xt: info-hash must be 40 hex digits or 32 base32 characters, got {_show(text)}"
    )


def _select_info_hash(xts: list[str]) -> InfoHash:
    btih = [x for x in xts if x[: len(_BTIH)].lower() == _BTIH]
    if len(btih) > 1:
        raise DecodeError("magnet has more than one xt=urn:btih: info-hash")
    if btih:
        return _parse_info_hash(btih[0])
    if any(x[: len(_BTMH)].lower() == _BTMH for x in xts):
        raise DecodeError(
            "magnet is BitTorrent v2-only (xt=urn:btmh:); shoal needs a v1 xt=urn:btih: info-hash"
        )
    if xts:
        raise DecodeError(f"magnet xt {_show(xts[0])} is not supported; expected urn:btih:")
    raise DecodeError("magnet has no xt=urn:btih: parameter")


def _parse_port(text: str, peer: str) -> int:
    if not _PORT.fullmatch(text) or not 1 <= int(text) <= 65535:
        raise DecodeError(f"magnet x.pe {_show(peer)}: port must be 1-65535")
    return int(text)


def _is_hostname(host: str) -> bool:
    labels = host.split(".")
    return len(host) <= 253 and all(_LABEL.fullmatch(label) for label in labels)


def _parse_peer(text: str) -> tuple[str, int]:
    """BEP 9 ``x.pe``: ``hostname:port``, ``ipv4-literal:port`` or ``[ipv6-literal]:port``."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise DecodeError(f"magnet x.pe {_show(text)}: expected [ipv6]:port")
        if "%" in host:  # a zone id names one of *our* interfaces; meaningless in a link
            raise DecodeError(f"magnet x.pe {_show(text)}: IPv6 zone ids are not allowed")
        try:
            return str(ipaddress.IPv6Address(host)), _parse_port(port, text)
        except ipaddress.AddressValueError as exc:
            raise DecodeError(f"magnet x.pe {_show(text)}: bad IPv6 address") from exc
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise DecodeError(f"magnet x.pe {_show(text)}: expected host:port")
    if ":" in host:
        raise DecodeError(f"magnet x.pe {_show(text)}: IPv6 addresses must be in [brackets]")
    if _DOTTED_DIGITS.fullmatch(host):
        try:
            ipaddress.IPv4Address(host)
        except ipaddress.AddressValueError as exc:
            raise DecodeError(f"magnet x.pe {_show(text)}: bad IPv4 address") from exc
    elif not _is_hostname(host):
        raise DecodeError(f"magnet x.pe {_show(text)}: bad host name")
    return host, _parse_port(port, text)


def _parse_select_only(text: str) -> tuple[tuple[int, int], ...]:
    """BEP 53: comma-separated zero-based file indices; ``a-b`` is an inclusive range."""
    ranges: list[tuple[int, int]] = []
    for item in text.split(","):
        first, dash, last = item.partition("-")
        if not _INDEX.fullmatch(first) or (dash and not _INDEX.fullmatch(last)):
            raise DecodeError(
                f"magnet so={_show(text)}: {_show(item)} is not an index or a-b range"
            )
        lo, hi = int(first), int(last) if dash else int(first)
        if lo > hi:
            raise DecodeError(f"magnet so={_show(text)}: range {_show(item)} runs backwards")
        ranges.append((lo, hi))
    return tuple(ranges)


def _pairs(query: str) -> list[tuple[str, str]]:
    out = []
    for part in query.split("&"):
        if part:  # tolerate "&&" and a trailing "&", as browsers do
            key, _, value = part.partition("=")
            out.append((key.lower(), value))
    return out


def parse_magnet(uri: str) -> Magnet:
    """Parse a BEP 9 magnet URI.

    Raises:
        DecodeError: not a magnet link; no, several or only unsupported ``xt``; a bad
            info-hash, peer address, ``so`` list, percent-escape or UTF-8 sequence.
    """
    uri = uri.strip()
    if len(uri) > MAX_MAGNET_LENGTH:
        raise DecodeError(f"magnet link longer than {MAX_MAGNET_LENGTH} characters")
    if uri[: len(_SCHEME)].lower() != _SCHEME:  # RFC 3986: schemes are case-insensitive
        raise DecodeError("not a magnet link: expected it to start with 'magnet:?'")
    xts: list[str] = []
    dn: str | None = None
    trackers: list[str] = []
    peers: list[tuple[str, int]] = []
    so: tuple[tuple[int, int], ...] | None = None
    for key, raw in _pairs(uri[len(_SCHEME) :]):
        # "xt.1", "tr.2": the numbered form from the original magnet draft.
        base = key.split(".", 1)[0] if key[:3] in ("xt.", "tr.") else key
        if base == "xt":
            xts.append(_unescape(raw, "xt"))
        elif base == "tr":
            trackers.append(_unescape(raw, "tr"))
        elif key == "dn":
            if dn is not None:
                raise DecodeError("magnet has more than one dn parameter")
            dn = _unescape(raw, "dn")
        elif key == "x.pe":
            peers.append(_parse_peer(_unescape(raw, "x.pe")))
        elif key == "so":
            if so is not None:
                raise DecodeError("magnet has more than one so parameter")
            so = _parse_select_only(_unescape(raw, "so"))
    return Magnet(_select_info_hash(xts), dn, tuple(trackers), tuple(peers), so)


def _format_peer(host: str, port: int) -> str:
    text = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return _escape(text, safe=":")


def format_magnet(m: Magnet) -> str:
    """The canonical magnet URI for `m`: hex info-hash, then dn, tr, x.pe and so."""
    parts = [f"xt={_BTIH}{m.info_hash.hex()}"]
    if m.display_name is not None:
        parts.append(f"dn={_escape(m.display_name)}")
    parts.extend(f"tr={_escape(tr)}" for tr in m.trackers)
    parts.extend(f"x.pe={_format_peer(host, port)}" for host, port in m.peers)
    if m.select_only is not None:
        items = (str(a) if a == b else f"{a}-{b}" for a, b in m.select_only)
        parts.append("so=" + ",".join(items))
    return _SCHEME + "&".join(parts)
