"""KRPC extension messages: BEP 44 ``get``/``put``, BEP 51 ``sample_infohashes``, and the
extra response fields of BEP 33, 44 and 51.

Theory of operation
-------------------
`dht/krpc.py` owns the BEP 5 messages and the datagram framing; it calls into this
module for the three extension queries and for the response keys they add, so each
extension's wire format sits in one place and ``krpc.py`` stays small.

Values (``v``) are kept in their bencoded form (`bytes`), since BEP 44 hashes and
signs the encoding. The decoder keeps a received ``v`` as the exact bytes of the
datagram (`bencoding.raw_value`), never re-encoded: a value sent with unsorted dict
keys (valid bencode to a lenient reader) is verified, stored and served as sent, as
the signature and the immutable target cover those bytes. Sizes and
signatures are *not* checked while decoding: a put with a 1,001-byte value must be
answered with BEP 44's 205, not with a 203 "malformed", so `dht/bep44.py` judges them.

Encoding writes dicts from already-encoded members in sorted key order
(`raw_dict`), so an encoded ``v`` is embedded as is and the output stays canonical.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeAlias, final

from ..bencoding import Bencoded, decode, encode, get_bytes, get_int, raw_value
from ..errors import DecodeError
from .compact import NODE_ID_LENGTH

__all__ = [
    "BLOOM_SIZE",
    "ExtQuery",
    "GetQuery",
    "PutQuery",
    "ResponseExt",
    "SampleInfohashesQuery",
    "decode_ext_query",
    "decode_response_ext",
    "encode_query_args",
    "encode_response_ext",
    "raw_dict",
    "response_ext_dict",
]

#: BEP 33: "Each field must be 256 bytes in size".
BLOOM_SIZE: Final = 256
_RESPONSE_KEYS: Final = frozenset(
    (b"v", b"k", b"seq", b"sig", b"BFsd", b"BFpe", b"samples", b"interval", b"num")
)


@final
@dataclass(frozen=True, slots=True)
class GetQuery:
    """BEP 44 ``get``: the item stored under `target` (only if newer than `seq`)."""

    t: bytes
    node_id: bytes
    target: bytes
    seq: int | None = None
    want: tuple[bytes, ...] = ()
    read_only: bool = False
    version: bytes | None = None

    method = b"get"


@final
@dataclass(frozen=True, slots=True)
class PutQuery:
    """BEP 44 ``put``: store an item; `key` is None for an immutable one."""

    t: bytes
    node_id: bytes
    token: bytes
    value: bytes  # bencoded
    key: bytes | None = None
    salt: bytes = b""
    seq: int = 0
    sig: bytes = b""
    cas: int | None = None
    read_only: bool = False
    version: bytes | None = None

    method = b"put"


@final
@dataclass(frozen=True, slots=True)
class SampleInfohashesQuery:
    """BEP 51 ``sample_infohashes``: some info-hashes you store, and nodes near `target`."""

    t: bytes
    node_id: bytes
    target: bytes
    want: tuple[bytes, ...] = ()
    read_only: bool = False
    version: bytes | None = None

    method = b"sample_infohashes"


ExtQuery: TypeAlias = GetQuery | PutQuery | SampleInfohashesQuery


@final
@dataclass(frozen=True, slots=True)
class ResponseExt:
    """Extension keys of a response's ``r`` dict; None means absent."""

    value: bytes | None = None  # BEP 44 ``v``, bencoded
    key: bytes | None = None  # BEP 44 ``k``
    seq: int | None = None
    sig: bytes | None = None
    bf_seeds: bytes | None = None  # BEP 33 ``BFsd``
    bf_peers: bytes | None = None  # BEP 33 ``BFpe``
    samples: tuple[bytes, ...] | None = None  # BEP 51
    interval: int | None = None
    num: int | None = None


# ---- decoding ---------------------------------------------------------------------------


def _id20(args: dict[bytes, Bencoded], key: bytes, what: str) -> bytes:
    value = get_bytes(args, key, what=what)
    if len(value) != NODE_ID_LENGTH:
        raise DecodeError(f"{what}: {key.decode()!r} must be 20 bytes")
    return value


def _opt_int(d: dict[bytes, Bencoded], key: bytes, what: str) -> int | None:
    return None if key not in d else get_int(d, key, what=what)


def _opt_bytes(d: dict[bytes, Bencoded], key: bytes, what: str) -> bytes | None:
    return None if key not in d else get_bytes(d, key, what=what)


def _value(d: dict[bytes, Bencoded], what: str, data: bytes | None, parent: bytes) -> bytes:
    """``v`` as the bytes it was sent as (``data[parent][v]``); `data` None: re-encoded."""
    if b"v" not in d:
        raise DecodeError(f"{what}: missing 'v'")
    raw = None if data is None else raw_value(data, (parent, b"v"))
    return encode(d[b"v"]) if raw is None else raw


def decode_ext_query(
    method: bytes,
    args: dict[bytes, Bencoded],
    t: bytes,
    node_id: bytes,
    want: tuple[bytes, ...],
    read_only: bool,
    version: bytes | None,
    data: bytes | None = None,
) -> ExtQuery | None:
    """The extension query `method` names, or None if it is not one of ours.

    `data` is the whole datagram: a put's ``v`` is taken from it verbatim.

    Raises:
        DecodeError: a known method with missing or mistyped arguments.
    """
    if method == b"get":
        target = _id20(args, b"target", "get")
        return GetQuery(t, node_id, target, _opt_int(args, b"seq", "get"), want, read_only, version)
    if method == b"sample_infohashes":
        target = _id20(args, b"target", "sample_infohashes")
        return SampleInfohashesQuery(t, node_id, target, want, read_only, version)
    if method != b"put":
        return None
    token = get_bytes(args, b"token", what="put")
    value = _value(args, "put", data, b"a")
    key = _opt_bytes(args, b"k", "put")
    cas = _opt_int(args, b"cas", "put")
    if key is None:
        return PutQuery(t, node_id, token, value, read_only=read_only, version=version)
    seq = get_int(args, b"seq", what="put")
    sig = get_bytes(args, b"sig", what="put")
    salt = _opt_bytes(args, b"salt", "put") or b""
    return PutQuery(t, node_id, token, value, key, salt, seq, sig, cas, read_only, version)


def decode_response_ext(r: dict[bytes, Bencoded], data: bytes | None = None) -> ResponseExt | None:
    """The extension keys of a response's ``r`` dict, or None when it has none.

    `data` is the whole datagram: ``v`` is taken from it verbatim.

    Raises:
        DecodeError: a known key of the wrong type (or a filter of the wrong size).
    """
    if _RESPONSE_KEYS.isdisjoint(r):
        return None
    samples = _opt_bytes(r, b"samples", "response")
    if samples is not None and len(samples) % NODE_ID_LENGTH:
        raise DecodeError("response: 'samples' is not a multiple of 20 bytes")
    blooms = [_opt_bytes(r, key, "response") for key in (b"BFsd", b"BFpe")]
    if any(b is not None and len(b) != BLOOM_SIZE for b in blooms):
        raise DecodeError("response: bloom filters must be 256 bytes")
    return ResponseExt(
        value=None if b"v" not in r else _value(r, "response", data, b"r"),
        key=_opt_bytes(r, b"k", "response"),
        seq=_opt_int(r, b"seq", "response"),
        sig=_opt_bytes(r, b"sig", "response"),
        bf_seeds=blooms[0],
        bf_peers=blooms[1],
        samples=None
        if samples is None
        else tuple(samples[i : i + 20] for i in range(0, len(samples), 20)),
        interval=_opt_int(r, b"interval", "response"),
        num=_opt_int(r, b"num", "response"),
    )


# ---- encoding ---------------------------------------------------------------------------


def raw_dict(members: dict[bytes, bytes]) -> bytes:
    """A bencoded dict from already-encoded values, keys in canonical (sorted) order."""
    parts = [b"d"]
    for key in sorted(members):
        parts += (b"%d:" % len(key), key, members[key])
    parts.append(b"e")
    return b"".join(parts)


def encode_query_args(msg: ExtQuery) -> dict[bytes, bytes]:
    """The encoded members of the query's ``a`` dict."""
    args: dict[bytes, bytes] = {b"id": encode(msg.node_id)}
    if isinstance(msg, PutQuery):
        args[b"token"] = encode(msg.token)
        args[b"v"] = msg.value
        if msg.key is not None:
            args[b"k"] = encode(msg.key)
            args[b"seq"] = encode(msg.seq)
            args[b"sig"] = encode(msg.sig)
            if msg.salt:
                args[b"salt"] = encode(msg.salt)
            if msg.cas is not None:
                args[b"cas"] = encode(msg.cas)
        return args
    args[b"target"] = encode(msg.target)
    if isinstance(msg, GetQuery) and msg.seq is not None:
        args[b"seq"] = encode(msg.seq)
    if msg.want:
        args[b"want"] = encode(list(msg.want))
    return args


def encode_response_ext(ext: ResponseExt) -> dict[bytes, bytes]:
    """The encoded extension members of a response's ``r`` dict."""
    out: dict[bytes, bytes] = {}
    if ext.value is not None:
        out[b"v"] = ext.value
    for key, field in ((b"k", ext.key), (b"sig", ext.sig), (b"BFsd", ext.bf_seeds)):
        if field is not None:
            out[key] = encode(field)
    if ext.bf_peers is not None:
        out[b"BFpe"] = encode(ext.bf_peers)
    for key, number in ((b"seq", ext.seq), (b"interval", ext.interval), (b"num", ext.num)):
        if number is not None:
            out[key] = encode(number)
    if ext.samples is not None:
        out[b"samples"] = encode(b"".join(ext.samples))
    return out


def response_ext_dict(ext: ResponseExt) -> dict[bytes, Bencoded]:
    """The extension members as plain values: the reference encoder's input (tests)."""
    return {key: decode(value) for key, value in encode_response_ext(ext).items()}
