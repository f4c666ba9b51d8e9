"""BEP 6 allowed-fast set: the canonical pieces a choked peer may still request from us.

BEP 6 fixes the algorithm so that every seed offers a given peer the *same* pieces ("if
two peers offer k pieces fast it will be the same k"), which lets a starting peer
finish those pieces from several seeds at once. The peer is identified by the top
three octets of its IPv4 address (step 1, "to prevent a user that obtains more than
one IP address on the same network from obtaining more than one allowed fast set").
BEP 6 has "no provisions for IPv6", so IPv6 peers get no allowed-fast set.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import ipaddress

__all__ = ["DEFAULT_ALLOWED_FAST", "allowed_fast_set"]

#: BEP 6: "We currently set k to 10, but peers are free to change this number".
DEFAULT_ALLOWED_FAST: Final = 10


def allowed_fast_set(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
    info_hash: bytes,
    num_pieces: int,
    k: int = DEFAULT_ALLOWED_FAST,
) -> list[int]:
    """The first `k` allowed-fast piece indices for the peer at `ip`, in BEP 6 order.

    Returns fewer than `k` only when the torrent has fewer pieces, and none for IPv6.
    """
    if ip.version != 4 or num_pieces <= 0:
        return []
    k = min(k, num_pieces)
    x = (int(ip) & 0xFFFFFF00).to_bytes(4, "big") + bytes(info_hash)  # steps (1), (2)
    out: list[int] = []
    seen: set[int] = set()
    while len(out) < k:
        x = hashlib.sha1(x).digest()  # step (3)
        for i in range(5):  # steps (4)-(9)
            if len(out) >= k:
                break
            index = int.from_bytes(x[4 * i : 4 * i + 4], "big") % num_pieces
            if index not in seen:
                seen.add(index)
                out.append(index)
    return out
