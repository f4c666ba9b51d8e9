"""KRPC messages (BEP 5) as frozen dataclasses, with a strict decoder and canonical encoder.

Theory of operation
-------------------
A KRPC datagram is one bencoded dict: ``t`` (transaction id, echoed by the
responder), ``y`` (``q`` query / ``r`` response / ``e`` error) and a body. We
decode in two steps: lenient bencode (some clients send unsorted dicts, so
``strict=False``), then a typed walk that ignores unknown keys but refuses known
keys of the wrong type or length (a 19-byte node id is malformed, not "close
enough").

Every failure raises `KRPCDecodeError`, a `DecodeError`. When the datagram was a
query whose ``t`` we could read, the error also says which KRPC error code the
sender is owed (203 "Protocol Error" for bad arguments, 204 "Method Unknown"),
so the node engine can answer without re-parsing. The decoder never decides
*whether* to answer: that is policy (rate limits, read-only mode).

Extensions kept in the data model: ``nodes6`` and ``want`` (BEP 32), ``ip``
(BEP 42, the requester's address as the responder saw it), ``ro`` (BEP 43) and
``v`` (client version, BEP 5 "KRPC Protocol" / widely deployed).

Size: a KRPC message must fit one UDP datagram. Replies we build stay well under
1,472 bytes (the IPv4 Ethernet payload); we accept up to `MAX_DATAGRAM` bytes so
that BEP 44-sized messages from other clients still parse, and refuse more.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from typing import Final, TypeAlias, final

from ..bencoding import Bencoded, decode_dict, encode, get_bytes, get_dict, get_int, get_list
from ..errors import DecodeError
from .compact import (
    NODE_ID_LENGTH,
    Addr,
    NodeInfo,
    decode_nodes,
    decode_nodes6,
    decode_peer,
    encode_nodes,
    encode_nodes6,
    encode_peer,
    ip_packed,
)
from .krpc_ext import (
    ExtQuery,
    GetQuery,
    PutQuery,
    ResponseExt,
    SampleInfohashesQuery,
    decode_ext_query,
    decode_response_ext,
    encode_query_args,
    encode_response_ext,
    raw_dict,
    response_ext_dict,
)
from .krpc_fast import ANNOUNCE, FIND_NODE, GET, GET_PEERS, PING, HotQuery, parse_hot_query

__all__ = [
    "MAX_DATAGRAM",
    "AnnouncePeerQuery",
    "Error",
    "ErrorCode",
    "FindNodeQuery",
    "GetPeersQuery",
    "GetQuery",
    "KRPCDecodeError",
    "Message",
    "PingQuery",
    "PutQuery",
    "Query",
    "Response",
    "ResponseExt",
    "SampleInfohashesQuery",
    "decode_message",
    "encode_message",
    "encode_response_capped",
]

#: Largest datagram we parse. Real KRPC traffic is < 1,500 bytes; 2,048 leaves room
#: for BEP 44 ``put`` messages (1,000-byte values plus keys and signatures).
MAX_DATAGRAM: Final = 2048
# KRPC messages are two or three dicts deep; anything deeper is hostile.
_MAX_DEPTH: Final = 8


class ErrorCode(enum.IntEnum):
    """BEP 5 "Errors" table. Other codes (e.g. BEP 44's 205–207) decode as plain ints."""

    GENERIC = 201
    SERVER = 202
    PROTOCOL = 203  # malformed packet, invalid arguments, or bad token
    METHOD_UNKNOWN = 204


@final
@dataclass(frozen=True, slots=True)
class PingQuery:
    """BEP 5 ``ping``: are you alive? (the reply carries only the id)."""

    t: bytes
    node_id: bytes
    read_only: bool = False
    version: bytes | None = None

    method = b"ping"


@final
@dataclass(frozen=True, slots=True)
class FindNodeQuery:
    """BEP 5 ``find_node``: the 8 closest contacts you know to `target`."""

    t: bytes
    node_id: bytes
    target: bytes
    want: tuple[bytes, ...] = ()  # BEP 32: b"n4" / b"n6"
    read_only: bool = False
    version: bytes | None = None

    method = b"find_node"


@final
@dataclass(frozen=True, slots=True)
class GetPeersQuery:
    """BEP 5 ``get_peers``: peers for `info_hash`, else closer nodes; plus a token."""

    t: bytes
    node_id: bytes
    info_hash: bytes
    want: tuple[bytes, ...] = ()
    read_only: bool = False
    version: bytes | None = None
    #: BEP 33: ask for the ``BFsd``/``BFpe`` bloom filters; prefer non-seeds in ``values``.
    scrape: bool = False
    noseed: bool = False

    method = b"get_peers"


@final
@dataclass(frozen=True, slots=True)
class AnnouncePeerQuery:
    """BEP 5 ``announce_peer``: store our peer address for `info_hash` (needs a token)."""

    t: bytes
    node_id: bytes
    info_hash: bytes
    port: int
    token: bytes
    implied_port: bool = False  # BEP 5: use the UDP source port instead of `port`
    read_only: bool = False
    version: bytes | None = None
    seed: bool = False  # BEP 33: the announcer is seeding

    method = b"announce_peer"


@final
@dataclass(frozen=True, slots=True)
class Response:
    """``y=r``: the reply to any query; which fields matter depends on the query."""

    t: bytes
    node_id: bytes
    nodes: tuple[NodeInfo, ...] = ()
    nodes6: tuple[NodeInfo, ...] = ()
    values: tuple[Addr, ...] = ()
    token: bytes | None = None
    ip: Addr | None = None  # BEP 42: the requester's address as seen by the responder
    version: bytes | None = None
    #: BEP 33/44/51 keys of ``r`` (see `dht/krpc_ext.py`).
    ext: ResponseExt | None = None


@final
@dataclass(frozen=True, slots=True)
class Error:
    """``y=e``: a query failed; `code` is usually an `ErrorCode`."""

    t: bytes
    code: int
    message: str
    version: bytes | None = None


Query: TypeAlias = PingQuery | FindNodeQuery | GetPeersQuery | AnnouncePeerQuery | ExtQuery
Message: TypeAlias = Query | Response | Error


class KRPCDecodeError(DecodeError):
    """A datagram that is not a valid KRPC message.

    Attributes:
        t: the transaction id, if it could be read.
        reply_code: the `ErrorCode` the sender is owed (only for queries with a readable
            ``t``); ``None`` means drop silently.
    """

    def __init__(self, msg: str, *, t: bytes | None = None, reply_code: int | None = None):
        super().__init__(msg)
        self.t = t
        self.reply_code = reply_code

    @property
    def reply(self) -> Error | None:
        """The error message to send back, or ``None`` when nothing is owed."""
        if self.t is None or self.reply_code is None:
            return None
        return Error(self.t, self.reply_code, str(self))


# ---- decoding ---------------------------------------------------------------------------


def _id20(d: dict[bytes, Bencoded], key: bytes, what: str) -> bytes:
    value = get_bytes(d, key, what=what)
    if len(value) != NODE_ID_LENGTH:
        raise DecodeError(f"{what}: {key.decode()!r} must be 20 bytes, got {len(value)}")
    return value


def _opt_bytes(d: dict[bytes, Bencoded], key: bytes, what: str) -> bytes | None:
    return None if key not in d else get_bytes(d, key, what=what)


def _want(args: dict[bytes, Bencoded]) -> tuple[bytes, ...]:
    if b"want" not in args:
        return ()
    items = get_list(args, b"want", what="query")
    if not all(isinstance(w, bytes) for w in items):
        raise DecodeError("query: 'want' must be a list of strings")
    return tuple(w for w in items if isinstance(w, bytes))


def _flag(args: dict[bytes, Bencoded], key: bytes) -> bool:
    return key in args and get_int(args, key) != 0


def _port(value: int) -> int:
    if not 0 <= value <= 0xFFFF:
        raise DecodeError(f"port {value} out of range")
    return value


def _decode_query(d: dict[bytes, Bencoded], t: bytes, version: bytes | None, data: bytes) -> Query:
    method = get_bytes(d, b"q", what="query")
    args = get_dict(d, b"a", what="query")
    node_id = _id20(args, b"id", "query")
    # BEP 43: "ro": 1 in the top-level dict marks a read-only node.
    read_only = b"ro" in d and get_int(d, b"ro", what="query") != 0
    if method == b"ping":
        return PingQuery(t, node_id, read_only, version)
    if method == b"find_node":
        target = _id20(args, b"target", "find_node")
        return FindNodeQuery(t, node_id, target, _want(args), read_only, version)
    if method == b"get_peers":
        info_hash = _id20(args, b"info_hash", "get_peers")
        scrape = _flag(args, b"scrape")
        noseed = _flag(args, b"noseed")
        return GetPeersQuery(t, node_id, info_hash, _want(args), read_only, version, scrape, noseed)
    if method == b"announce_peer":
        info_hash = _id20(args, b"info_hash", "announce_peer")
        port = _port(get_int(args, b"port", what="announce_peer"))
        token = get_bytes(args, b"token", what="announce_peer")
        implied = _flag(args, b"implied_port")
        if port == 0 and not implied:
            raise DecodeError("announce_peer: port 0 without implied_port")
        seed = _flag(args, b"seed")
        return AnnouncePeerQuery(
            t, node_id, info_hash, port, token, implied, read_only, version, seed
        )
    ext = decode_ext_query(method, args, t, node_id, _want(args), read_only, version, data)
    if ext is not None:
        return ext
    raise KRPCDecodeError(
        f"Method Unknown: {method[:32]!r}", t=t, reply_code=ErrorCode.METHOD_UNKNOWN
    )


def _decode_values(r: dict[bytes, Bencoded]) -> tuple[Addr, ...]:
    if b"values" not in r:
        return ()
    out: list[Addr] = []
    for item in get_list(r, b"values", what="response"):
        if not isinstance(item, bytes):
            raise DecodeError("response: 'values' must be a list of strings")
        out.append(decode_peer(item))
    return tuple(out)


def _decode_response(
    d: dict[bytes, Bencoded], t: bytes, version: bytes | None, data: bytes
) -> Response:
    r = get_dict(d, b"r", what="response")
    nodes = _opt_bytes(r, b"nodes", "response")
    nodes6 = _opt_bytes(r, b"nodes6", "response")
    ip = _opt_bytes(d, b"ip", "response")
    return Response(
        t,
        _id20(r, b"id", "response"),
        nodes=() if nodes is None else tuple(decode_nodes(nodes)),
        nodes6=() if nodes6 is None else tuple(decode_nodes6(nodes6)),
        values=_decode_values(r),
        token=_opt_bytes(r, b"token", "response"),
        ip=None if ip is None else decode_peer(ip),
        version=version,
        ext=decode_response_ext(r, data),
    )


def _decode_error(d: dict[bytes, Bencoded], t: bytes, version: bytes | None) -> Error:
    e = get_list(d, b"e", what="error")
    if len(e) < 2 or not isinstance(e[0], int) or not isinstance(e[1], bytes):
        raise DecodeError("error: 'e' must be [code, message]")
    return Error(t, e[0], e[1].decode("utf-8", errors="replace"), version)


def _decode_query_fast(data: bytes) -> Query | None:
    """The common queries without the general decoder, or None to take the general path.

    `krpc_fast.parse_hot_query` accepts only byte strings the general path decodes to
    the same message (a test checks this on generated and mutated input).
    """
    hot = parse_hot_query(data)
    return None if hot is None else hot_query_message(hot)


def hot_query_message(hot: HotQuery) -> Query:
    """The message of a `krpc_fast.parse_hot_query` result."""
    method, node_id, key, t, version, port, token, flag = hot
    if method == GET_PEERS:
        return GetPeersQuery(t, node_id, key, (), False, version, flag)
    if method == FIND_NODE:
        return FindNodeQuery(t, node_id, key, (), False, version)
    if method == PING:
        return PingQuery(t, node_id, False, version)
    if method == ANNOUNCE:
        return AnnouncePeerQuery(t, node_id, key, port, token, flag, False, version)
    if method == GET:
        return GetQuery(t=t, node_id=node_id, target=key, version=version)
    return SampleInfohashesQuery(t=t, node_id=node_id, target=key, version=version)


def decode_message(data: bytes) -> Message:
    """Parse one KRPC datagram.

    Raises:
        KRPCDecodeError: anything malformed (and only that); see its ``reply``.
    """
    if len(data) > MAX_DATAGRAM:
        raise KRPCDecodeError(f"datagram of {len(data)} bytes exceeds {MAX_DATAGRAM}")
    if type(data) is bytes and (fast := _decode_query_fast(data)) is not None:
        return fast
    return _decode_general(data)


def _decode_general(data: bytes) -> Message:
    """`decode_message` for every input: bencode, then the typed walk."""
    try:
        d = decode_dict(data, strict=False, max_depth=_MAX_DEPTH, max_size=MAX_DATAGRAM)
    except DecodeError as exc:
        raise KRPCDecodeError(f"not a bencoded dict: {exc}") from exc
    t = d.get(b"t")
    if not isinstance(t, bytes):
        raise KRPCDecodeError("missing transaction id 't'")
    y = d.get(b"y")
    try:
        version = _opt_bytes(d, b"v", "message")
        if y == b"q":
            return _decode_query(d, t, version, data)
        if y == b"r":
            return _decode_response(d, t, version, data)
        if y == b"e":
            return _decode_error(d, t, version)
    except KRPCDecodeError:
        raise
    except DecodeError as exc:
        code = ErrorCode.PROTOCOL if y == b"q" else None
        raise KRPCDecodeError(f"Protocol Error: {exc}", t=t, reply_code=code) from exc
    raise KRPCDecodeError(f"unknown message type {y!r}", t=t)


# ---- encoding ---------------------------------------------------------------------------


def _query_args(
    msg: PingQuery | FindNodeQuery | GetPeersQuery | AnnouncePeerQuery,
) -> dict[bytes, Bencoded]:
    args: dict[bytes, Bencoded] = {b"id": msg.node_id}
    if isinstance(msg, FindNodeQuery):
        args[b"target"] = msg.target
    elif isinstance(msg, (GetPeersQuery, AnnouncePeerQuery)):
        args[b"info_hash"] = msg.info_hash
    if isinstance(msg, (FindNodeQuery, GetPeersQuery)) and msg.want:
        args[b"want"] = list(msg.want)
    if isinstance(msg, GetPeersQuery):
        if msg.scrape:
            args[b"scrape"] = 1
        if msg.noseed:
            args[b"noseed"] = 1
    if isinstance(msg, AnnouncePeerQuery):
        args[b"port"] = msg.port
        args[b"token"] = msg.token
        if msg.implied_port:
            args[b"implied_port"] = 1
        if msg.seed:
            args[b"seed"] = 1
    return args


def _response_body(msg: Response) -> dict[bytes, Bencoded]:
    r: dict[bytes, Bencoded] = {b"id": msg.node_id}
    if msg.nodes:
        r[b"nodes"] = encode_nodes(msg.nodes)
    if msg.nodes6:
        r[b"nodes6"] = encode_nodes6(msg.nodes6)
    if msg.values:
        r[b"values"] = [encode_peer(a) for a in msg.values]
    if msg.token is not None:
        r[b"token"] = msg.token
    return r


def _bstr(value: bytes) -> bytes:
    return b"%d:%s" % (len(value), value)


def _response_halves(msg: Response) -> tuple[bytes, bytes]:
    """The canonical encoding of `msg` without ``values``, split where they would go.

    Written out rather than built as a dict: every answered query ends here, and the
    generic walk (dict, sort, dispatch per value) cost more than the rest of the answer.
    Keys appear in sorted order (``ip``, ``r``, ``t``, ``v``, ``y``; in ``r``: ``id``,
    ``nodes``, ``nodes6``, ``token``, ``values``), so the bytes are exactly the
    canonical encoding; a test checks this against the generic encoder.
    """
    head = [b"d"]
    if msg.ip is not None:
        head += (b"2:ip", _bstr(encode_peer(msg.ip)))
    head += (b"1:rd2:id", _bstr(msg.node_id))
    if msg.nodes:
        head += (b"5:nodes", _bstr(encode_nodes(msg.nodes)))
    if msg.nodes6:
        head += (b"6:nodes6", _bstr(encode_nodes6(msg.nodes6)))
    if msg.token is not None:
        head += (b"5:token", _bstr(msg.token))
    tail = b"e1:t" + _bstr(msg.t)
    if msg.version is not None:
        tail += b"1:v" + _bstr(msg.version)
    return b"".join(head), tail + b"1:y1:re"


@functools.lru_cache(maxsize=32_768)
def _encode_value(addr: Addr) -> bytes:
    """One bencoded ``values`` item.

    Up to 50 per get_peers reply, listing the same stored peers reply after reply, so
    the result is cached (32k entries, about 4 MB; the peer store holds at most 100k).
    """
    ip, port = addr
    packed = ip_packed(ip)
    if len(packed) == 4 and 0 <= port <= 0xFFFF:
        return b"6:" + packed + port.to_bytes(2, "big")
    return _bstr(encode_peer(addr))


def _encode_response(msg: Response) -> bytes:
    if msg.ext is not None:
        return _encode_response_ext(msg, list(map(_encode_value, msg.values)))
    head, tail = _response_halves(msg)
    if not msg.values:
        return head + tail
    return b"".join((head, b"6:valuesl", *map(_encode_value, msg.values), b"e", tail))


def encode_response_capped(msg: Response, max_size: int) -> bytes:
    """`encode_message(msg)` keeping only the leading ``values`` that fit in `max_size`.

    For anti-amplification caps on get_peers replies, without encoding the reply twice
    to learn its size. Without room for any value the ``values`` key is left out; the
    rest of the reply is sent even if it alone exceeds `max_size`.
    """
    if msg.ext is not None:
        base = len(_encode_response_ext(msg, []))
    else:
        head, tail = _response_halves(msg)
        base = len(head) + len(tail)
    # 10 = len(b"6:values") + the list's "l" and "e".
    room = max_size - base - 10
    encoded = list(map(_encode_value, msg.values))
    if sum(map(len, encoded)) > room:  # rare: only small queries with big swarms
        kept = 0
        for value in encoded:
            room -= len(value)
            if room < 0:
                break
            kept += 1
        del encoded[kept:]
    if msg.ext is not None:
        return _encode_response_ext(msg, encoded)
    if not encoded:
        return head + tail
    return b"".join((head, b"6:valuesl", *encoded, b"e", tail))


def _encode_response_ext(msg: Response, values: list[bytes]) -> bytes:
    """A response with extension keys, built from encoded members (``v`` stays verbatim)."""
    assert msg.ext is not None
    r = {key: encode(value) for key, value in _response_body(msg).items() if key != b"values"}
    if values:
        r[b"values"] = b"".join((b"l", *values, b"e"))
    r |= encode_response_ext(msg.ext)
    top = {b"r": raw_dict(r), b"t": encode(msg.t), b"y": b"1:r"}
    if msg.ip is not None:
        top[b"ip"] = encode(encode_peer(msg.ip))
    if msg.version is not None:
        top[b"v"] = encode(msg.version)
    return raw_dict(top)


def encode_message(msg: Message) -> bytes:
    """Canonical bencoding (sorted keys) of `msg`; empty optional fields are omitted.

    Raises:
        ValueError: a field cannot be represented (bad address, wrong-length node id).
    """
    if isinstance(msg, Response):
        return _encode_response(msg)
    return _encode_generic(msg)


def _encode_generic(msg: Message) -> bytes:
    """The reference encoder (bencode of a dict); responses use it in tests only."""
    d: dict[bytes, Bencoded] = {b"t": msg.t}
    if isinstance(msg, Response):
        d[b"y"] = b"r"
        body = _response_body(msg)
        if msg.ext is not None:
            body |= response_ext_dict(msg.ext)
        d[b"r"] = body
        if msg.ip is not None:
            d[b"ip"] = encode_peer(msg.ip)
    elif isinstance(msg, Error):
        d[b"y"] = b"e"
        d[b"e"] = [msg.code, msg.message.encode()]
    elif isinstance(msg, (GetQuery, PutQuery, SampleInfohashesQuery)):
        return _encode_ext_query(msg)
    else:
        d[b"y"] = b"q"
        d[b"q"] = msg.method
        d[b"a"] = _query_args(msg)
        if msg.read_only:
            d[b"ro"] = 1
    if msg.version is not None:
        d[b"v"] = msg.version
    return encode(d)


def _encode_ext_query(msg: ExtQuery) -> bytes:
    top = {
        b"a": raw_dict(encode_query_args(msg)),
        b"q": encode(msg.method),
        b"t": encode(msg.t),
        b"y": b"1:q",
    }
    if msg.read_only:
        top[b"ro"] = b"i1e"
    if msg.version is not None:
        top[b"v"] = encode(msg.version)
    return raw_dict(top)
