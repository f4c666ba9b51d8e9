"""The hot KRPC queries parsed straight from their bytes, without the bencode walk.

Theory of operation
-------------------
Nearly every query a DHT node serves is a ping, find_node, get_peers or
announce_peer, and canonical clients (libtorrent, shoal, most others) send them in
one byte shape: ``a`` holds only the method's own keys in sorted order, then come
``q``, ``t``, an optional ``v`` and ``y``. `parse_hot_query` matches exactly that
shape with two precompiled regular expressions and returns the fields as a plain
tuple; anything else, valid or not, is None and takes the general decoder
(`shoal.dht.krpc.decode_message`), which also says what is wrong with it.

The rule that makes this safe: a byte string this module accepts decodes, on the
general path, to the same message (tests check it on generated and mutated input).
So ``want``, ``ro``, ``scrape``, ``seed``, unknown keys, unsorted dicts and
oversized strings are never accepted here; they are rare and the general path is
right for them.

Two users: `krpc.decode_message` builds its dataclasses from the tuple, and the
serving fast path (`fast_serving`) answers from it without building any.
"""

from __future__ import annotations

import re
from typing import Final, TypeAlias

__all__ = [
    "ANNOUNCE",
    "FIND_NODE",
    "GET",
    "GET_PEERS",
    "PING",
    "SAMPLE",
    "HotQuery",
    "parse_hot_query",
]

PING: Final = 0
FIND_NODE: Final = 1
GET_PEERS: Final = 2
ANNOUNCE: Final = 3
#: BEP 44 ``get`` without ``seq``, BEP 51 ``sample_infohashes``: shaped like find_node.
GET: Final = 4
SAMPLE: Final = 5

#: (method, node_id, target/info_hash (b"" for ping), t, version or None, port, token,
#: flag); port and token only mean something for ANNOUNCE; flag is ``implied_port``
#: for ANNOUNCE and BEP 33 ``scrape`` for GET_PEERS.
HotQuery: TypeAlias = tuple[int, bytes, bytes, bytes, bytes | None, int, bytes, bool]

# The shape of nearly every query, as canonical clients send it: "a" holds only the
# method's own keys, then come "q", "t", an optional "v" and "y". Announces have one more
# string (the token) before "q", so they are matched up to it and then continued.
_QUERY: Final = re.compile(
    rb"d1:ad2:id20:(.{20})(?:(6:target|9:info_hash)20:(.{20}))?(6:scrapei1e)?e"
    rb"1:q(4:ping|9:find_node|9:get_peers|3:get|17:sample_infohashes)1:t([1-9]?[0-9]):",
    re.DOTALL,
)
_ANNOUNCE: Final = re.compile(
    rb"d1:ad2:id20:(.{20})(12:implied_porti1e)?9:info_hash20:(.{20})"
    rb"4:porti(0|[1-9][0-9]{0,4})e5:token([1-9]?[0-9]):",
    re.DOTALL,
)
_ANNOUNCE_Q: Final = re.compile(rb"e1:q13:announce_peer1:t([1-9]?[0-9]):")
_VERSION: Final = re.compile(rb"1:v([1-9]?[0-9]):")
_END: Final = b"1:y1:qe"
# Which key each method must carry (ping: none).
_METHODS: Final = {
    b"4:ping": (PING, None),
    b"9:find_node": (FIND_NODE, b"6:target"),
    b"9:get_peers": (GET_PEERS, b"9:info_hash"),
    b"3:get": (GET, b"6:target"),
    b"17:sample_infohashes": (SAMPLE, b"6:target"),
}


def _tail(data: bytes, pos: int, t_length: int) -> tuple[bytes, bytes | None] | None:
    """``t``, then an optional ``v``, then the end of the message: (t, version) or None."""
    t = data[pos : pos + t_length]
    if len(t) != t_length:
        return None
    pos += t_length
    version = None
    v = _VERSION.match(data, pos)
    if v is not None:
        start = v.end()
        length = int(v.group(1))
        version = data[start : start + length]
        if len(version) != length:
            return None
        pos = start + length
    if data[pos:] != _END:
        return None
    return t, version


def parse_hot_query(data: bytes) -> HotQuery | None:
    """The fields of a canonical ping/find_node/get_peers/announce_peer, or None.

    None means "take the general path", never "malformed": this function does not
    judge, it only recognises. It never raises.
    """
    m = _QUERY.match(data)
    if m is None:
        return _parse_announce(data)
    node_id, key_name, key, scrape, name, t_length = m.groups()
    method, expected = _METHODS[name]
    if key_name != expected or (scrape is not None and method != GET_PEERS):
        return None
    # `_tail`, inlined for the common case: no ``v`` (the shortest shape).
    pos = m.end()
    length = int(t_length)
    if len(data) == pos + length + 7 and data.endswith(_END):
        t, version = data[pos : pos + length], None
    else:
        tail = _tail(data, pos, length)
        if tail is None:
            return None
        t, version = tail
    return method, node_id, key or b"", t, version, 0, b"", scrape is not None


def _parse_announce(data: bytes) -> HotQuery | None:
    m = _ANNOUNCE.match(data)
    if m is None:
        return None
    start = m.end()
    length = int(m.group(5))
    token = data[start : start + length]
    if len(token) != length:
        return None
    q = _ANNOUNCE_Q.match(data, start + length)
    if q is None:
        return None
    tail = _tail(data, q.end(), int(q.group(1)))
    port, implied = int(m.group(4)), m.group(2) is not None
    if tail is None or port > 0xFFFF or (port == 0 and not implied):
        return None  # the general path says what is wrong
    return ANNOUNCE, m.group(1), m.group(3), tail[0], tail[1], port, token, implied
