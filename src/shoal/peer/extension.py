"""Extension protocol payloads: BEP 10 handshake, BEP 9 ut_metadata, BEP 11 ut_pex.

Theory of operation
-------------------
These codecs work on the *payload* of an `Extended` wire message (the bytes after the
extended message id); framing and the frame-size limit belong to `FrameDecoder`. Every
payload is a bencoded dict, decoded leniently (``strict=False``: key order is not
enforced, as several clients send unsorted dicts; duplicate keys are still refused).
Known keys are type-checked and range-checked and a violation raises `DecodeError`;
unknown keys are ignored, as BEP 10 asks ("Any unknown names should be ignored"), and
the extended handshake keeps them in `extra` so that it re-encodes losslessly.

Extension names (``m`` keys) are text in practice but bytes on the wire; they are
decoded with ``surrogateescape`` so that a non-UTF-8 name still round-trips exactly.

Why ``MAX_METADATA_SIZE`` is 8 MiB: the info dict is dominated by 20 bytes of SHA-1 per
piece, so 8 MiB describes about 400,000 pieces (a 100 GiB torrent at 256 KiB pieces, or
1.6 TiB at 4 MiB). Torrent makers aim for a few thousand pieces, so real metadata is
far smaller, while an attacker's ``metadata_size`` would otherwise make us allocate
and request up to 2 GiB. Callers that know better pass ``max_metadata_size``.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field
from typing import Final, TypeAlias, final

from ..bencoding import Bencoded, decode_dict, decode_prefix, encode, get_int
from ..errors import DecodeError

__all__ = [
    "EXTENDED_HANDSHAKE_ID",
    "MAX_METADATA_SIZE",
    "METADATA_PIECE_SIZE",
    "UT_METADATA",
    "UT_PEX",
    "Addr",
    "ExtendedHandshake",
    "MetadataData",
    "MetadataMessage",
    "MetadataReject",
    "MetadataRequest",
    "PexFlags",
    "PexMessage",
    "PexPeer",
    "decode_extended_handshake",
    "decode_metadata_message",
    "decode_pex",
    "encode_extended_handshake",
    "encode_metadata_message",
    "encode_pex",
    "metadata_piece_count",
]

# BEP 10: "If the ID is 0, the message is a handshake message".
EXTENDED_HANDSHAKE_ID: Final = 0
UT_METADATA: Final = "ut_metadata"
UT_PEX: Final = "ut_pex"
# BEP 9: "The metadata is handled in blocks of 16KiB (16384 Bytes)."
METADATA_PIECE_SIZE: Final = 16 * 1024
#: Largest ``metadata_size`` / ``total_size`` accepted by default (module docstring).
MAX_METADATA_SIZE: Final = 8 * 1024 * 1024

Addr: TypeAlias = tuple[str, int]

_KNOWN_HANDSHAKE_KEYS: Final = frozenset(
    {b"m", b"v", b"p", b"reqq", b"metadata_size", b"yourip", b"e"}
)


def _check_range(value: int, lo: int, hi: int, what: str) -> int:
    if not lo <= value <= hi:
        raise DecodeError(f"{what} = {value} is outside {lo}..{hi}")
    return value


# ---- BEP 10 extended handshake -----------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class ExtendedHandshake:
    """The BEP 10 handshake dict. ``None`` means "not sent"; `extra` holds unknown keys.

    Attributes:
        m: extension name → the id the *sender* wants to receive it as (0 = disabled).
        v: client name and version.
        p: the sender's TCP listen port.
        reqq: how many outstanding requests the sender queues without dropping.
        metadata_size: BEP 9 size of the info dict in bytes.
        yourip: the address the sender sees us as.
        e: the sender prefers encrypted connections (MSE).
    """

    m: dict[str, int] = field(default_factory=dict)
    v: str | None = None
    p: int | None = None
    reqq: int | None = None
    metadata_size: int | None = None
    yourip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    e: bool | None = None
    extra: dict[bytes, Bencoded] = field(default_factory=dict)


def encode_extended_handshake(hs: ExtendedHandshake) -> bytes:
    """The bencoded payload of an extended message with id `EXTENDED_HANDSHAKE_ID`.

    Raises:
        ValueError: a field is out of its wire range; `extra` shadows a known key.
    """
    if _KNOWN_HANDSHAKE_KEYS & hs.extra.keys():
        raise ValueError("extra may not contain keys this class models")
    out: dict[bytes, Bencoded] = dict(hs.extra)
    for ext_id in hs.m.values():
        if not 0 <= ext_id <= 255:
            raise ValueError(f"extension id {ext_id} does not fit in a byte")
    out[b"m"] = {k.encode("utf-8", "surrogateescape"): v for k, v in hs.m.items()}
    if hs.v is not None:
        out[b"v"] = hs.v.encode()
    if hs.p is not None:
        out[b"p"] = hs.p
    if hs.reqq is not None:
        out[b"reqq"] = hs.reqq
    if hs.metadata_size is not None:
        out[b"metadata_size"] = hs.metadata_size
    if hs.yourip is not None:
        out[b"yourip"] = hs.yourip.packed
    if hs.e is not None:
        out[b"e"] = int(hs.e)
    return encode(out)


def decode_extended_handshake(
    payload: bytes, *, max_metadata_size: int = MAX_METADATA_SIZE
) -> ExtendedHandshake:
    """Parse an extended handshake payload.

    Raises:
        DecodeError: not a bencoded dict, or a known key has the wrong type or range
            (including ``metadata_size`` above `max_metadata_size`).
    """
    d = decode_dict(payload, strict=False)
    what = "extended handshake"
    m: dict[str, int] = {}
    if b"m" in d:
        raw_m = d[b"m"]
        if not isinstance(raw_m, dict):
            raise DecodeError(f"{what}: 'm' must be a dict")
        for name, ext_id in raw_m.items():
            if not isinstance(ext_id, int):
                raise DecodeError(f"{what}: id of {name!r} must be an integer")
            # BEP 10: the id is sent as the single "extended message ID" byte.
            m[name.decode("utf-8", "surrogateescape")] = _check_range(ext_id, 0, 255, "id")
    return ExtendedHandshake(
        m=m,
        v=_get_bytes(d, b"v", what).decode("utf-8", "replace") if b"v" in d else None,
        p=_optional_int(d, b"p", 0, 65535),
        reqq=_optional_int(d, b"reqq", 0, 1 << 31),
        metadata_size=_optional_int(d, b"metadata_size", 1, max_metadata_size),
        yourip=_decode_ip(_get_bytes(d, b"yourip", what)) if b"yourip" in d else None,
        e=get_int(d, b"e", what=what) != 0 if b"e" in d else None,
        extra={k: val for k, val in d.items() if k not in _KNOWN_HANDSHAKE_KEYS},
    )


def _optional_int(d: dict[bytes, Bencoded], key: bytes, lo: int, hi: int) -> int | None:
    if key not in d:
        return None
    return _check_range(get_int(d, key, what="extended handshake"), lo, hi, key.decode())


def _get_bytes(d: dict[bytes, Bencoded], key: bytes, what: str) -> bytes:
    value = d[key]
    if not isinstance(value, bytes):
        raise DecodeError(f"{what}: {key.decode()!r} must be a string")
    return value


def _decode_ip(packed: bytes) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    # BEP 10: "This may be either an IPv4 (4 bytes) or an IPv6 (16 bytes) address."
    if len(packed) == 4:
        return ipaddress.IPv4Address(packed)
    if len(packed) == 16:
        return ipaddress.IPv6Address(packed)
    raise DecodeError(f"compact IP address of {len(packed)} bytes (expected 4 or 16)")


# ---- BEP 9 ut_metadata ---------------------------------------------------------------


class MetadataMessageType(enum.IntEnum):
    """BEP 9 ``msg_type`` values."""

    REQUEST = 0
    DATA = 1
    REJECT = 2


@final
@dataclass(frozen=True, slots=True)
class MetadataRequest:
    """Ask for metadata piece `piece`."""

    piece: int


@final
@dataclass(frozen=True, slots=True)
class MetadataData:
    """Metadata piece `piece` of a `total_size`-byte info dict."""

    piece: int
    total_size: int
    data: bytes


@final
@dataclass(frozen=True, slots=True)
class MetadataReject:
    """The sender will not serve piece `piece` (BEP 9: it may not have the metadata)."""

    piece: int


MetadataMessage: TypeAlias = MetadataRequest | MetadataData | MetadataReject
_METADATA_TYPES: Final = frozenset(t.value for t in MetadataMessageType)


def metadata_piece_count(total_size: int) -> int:
    """Number of 16 KiB metadata pieces for an info dict of `total_size` bytes."""
    return -(-total_size // METADATA_PIECE_SIZE)


def _expected_piece_length(piece: int, total_size: int) -> int:
    # BEP 9: "If it is not the last piece of the metadata, it MUST be 16kiB."
    return min(METADATA_PIECE_SIZE, total_size - piece * METADATA_PIECE_SIZE)


def encode_metadata_message(msg: MetadataMessage) -> bytes:
    """The payload of a ut_metadata extended message (dict, plus the block for data)."""
    match msg:
        case MetadataRequest(piece):
            return encode({b"msg_type": MetadataMessageType.REQUEST.value, b"piece": piece})
        case MetadataReject(piece):
            return encode({b"msg_type": MetadataMessageType.REJECT.value, b"piece": piece})
        case MetadataData(piece, total_size, data):
            head: dict[bytes, Bencoded] = {
                b"msg_type": MetadataMessageType.DATA.value,
                b"piece": piece,
                b"total_size": total_size,
            }
            # BEP 9: "The metadata piece is appended to the bencoded dictionary".
            return encode(head) + data
    raise TypeError(f"not a ut_metadata message: {msg!r}")


def decode_metadata_message(
    payload: bytes, *, max_metadata_size: int = MAX_METADATA_SIZE
) -> MetadataMessage | None:
    """Parse a ut_metadata payload; ``None`` for an unknown ``msg_type``.

    BEP 9: "an unrecognized message ID MUST be ignored", hence ``None`` rather than an
    error. A data message must have the exact length BEP 9 prescribes for its piece.

    Raises:
        DecodeError: malformed dict, missing or ill-typed keys, out-of-range piece or
            total_size, wrong data length, or bytes after a request/reject dict.
    """
    what = "ut_metadata"
    value, end = decode_prefix(payload, strict=False)
    if not isinstance(value, dict):
        raise DecodeError(f"{what}: payload is not a dict")
    msg_type = get_int(value, b"msg_type", what=what)
    if msg_type not in _METADATA_TYPES:
        return None
    piece = get_int(value, b"piece", what=what)
    if msg_type == MetadataMessageType.DATA:
        total_size = get_int(value, b"total_size", what=what)
        _check_range(total_size, 1, max_metadata_size, "total_size")
        _check_range(piece, 0, metadata_piece_count(total_size) - 1, "piece")
        data = payload[end:]
        if len(data) != _expected_piece_length(piece, total_size):
            raise DecodeError(f"{what}: piece {piece} carries {len(data)} bytes")
        return MetadataData(piece, total_size, bytes(data))
    if end != len(payload):
        raise DecodeError(f"{what}: {len(payload) - end} bytes after the dict")
    _check_range(piece, 0, metadata_piece_count(max_metadata_size) - 1, "piece")
    if msg_type == MetadataMessageType.REQUEST:
        return MetadataRequest(piece)
    return MetadataReject(piece)


# ---- BEP 11 ut_pex -------------------------------------------------------------------


class PexFlags(enum.IntFlag):
    """BEP 11 per-peer flags (one byte per ``added``/``added6`` contact)."""

    NONE = 0
    #: "prefers encryption, as indicated by ``e`` field in extension handshake"
    PREFERS_ENCRYPTION = 0x01
    #: "seed/upload_only"
    SEED = 0x02
    #: "supports uTP"
    UTP = 0x04
    #: "peer indicated ``ut_holepunch`` support in extension handshake"
    HOLEPUNCH = 0x08
    #: "outgoing connection, peer is reachable"
    REACHABLE = 0x10


@final
@dataclass(frozen=True, slots=True)
class PexPeer:
    """A contact from ``added``/``added6`` with its flags."""

    addr: Addr
    flags: PexFlags = PexFlags.NONE


@final
@dataclass(frozen=True, slots=True)
class PexMessage:
    """One ut_pex message. IPv4 contacts go in `added`/`dropped`, IPv6 in the ``6`` fields."""

    added: tuple[PexPeer, ...] = ()
    dropped: tuple[Addr, ...] = ()
    added6: tuple[PexPeer, ...] = ()
    dropped6: tuple[Addr, ...] = ()


def _pack_addrs(addrs: tuple[Addr, ...], version: int) -> bytes:
    out = bytearray()
    for host, port in addrs:
        ip = ipaddress.ip_address(host)
        if ip.version != version:
            raise ValueError(f"{host} is not an IPv{version} address")
        out += ip.packed + port.to_bytes(2, "big")
    return bytes(out)


def _unpack_addrs(data: bytes, version: int, key: str) -> list[Addr]:
    iplen = 4 if version == 4 else 16
    size = iplen + 2
    if len(data) % size:
        raise DecodeError(f"ut_pex: {key!r} length {len(data)} is not a multiple of {size}")
    make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    return [
        (make(data[i : i + iplen]).compressed, int.from_bytes(data[i + iplen : i + size], "big"))
        for i in range(0, len(data), size)
    ]


def encode_pex(msg: PexMessage) -> bytes:
    """The bencoded payload of a ut_pex message (flags always sent with added peers).

    Raises:
        ValueError: an address is of the wrong family or a port is out of range.
    """
    out: dict[bytes, Bencoded] = {}
    for key, peers, version in ((b"added", msg.added, 4), (b"added6", msg.added6, 6)):
        if peers:
            out[key] = _pack_addrs(tuple(p.addr for p in peers), version)
            out[key + b".f"] = bytes(int(p.flags) for p in peers)
    for key, addrs, version in ((b"dropped", msg.dropped, 4), (b"dropped6", msg.dropped6, 6)):
        if addrs:
            out[key] = _pack_addrs(addrs, version)
    return encode(out)


def _decode_added(d: dict[bytes, Bencoded], key: bytes, version: int) -> tuple[PexPeer, ...]:
    if key not in d:
        return ()
    addrs = _unpack_addrs(_get_bytes(d, key, "ut_pex"), version, key.decode())
    flags_key = key + b".f"
    if flags_key not in d:
        return tuple(PexPeer(a) for a in addrs)
    flags = _get_bytes(d, flags_key, "ut_pex")
    # BEP 11: "1 byte per added IPv4 peer"
    if len(flags) != len(addrs):
        raise DecodeError(f"ut_pex: {len(flags)} flag bytes for {len(addrs)} peers")
    return tuple(PexPeer(a, PexFlags(f)) for a, f in zip(addrs, flags, strict=True))


def _decode_dropped(d: dict[bytes, Bencoded], key: bytes, version: int) -> tuple[Addr, ...]:
    if key not in d:
        return ()
    return tuple(_unpack_addrs(_get_bytes(d, key, "ut_pex"), version, key.decode()))


def decode_pex(payload: bytes) -> PexMessage:
    """Parse a ut_pex payload. Addresses are untrusted: BEP 11 warns they may be bogus.

    Raises:
        DecodeError: not a dict, wrong types, compact lists of the wrong length, or a
            flags string whose length differs from its peer list.
    """
    d = decode_dict(payload, strict=False)
    return PexMessage(
        added=_decode_added(d, b"added", 4),
        dropped=_decode_dropped(d, b"dropped", 4),
        added6=_decode_added(d, b"added6", 6),
        dropped6=_decode_dropped(d, b"dropped6", 6),
    )
