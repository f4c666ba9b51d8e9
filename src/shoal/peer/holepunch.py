"""BEP 55 ``ut_holepunch`` extended message payload codec.

Theory of operation
-------------------
The payload (after the BEP 10 extended header) is binary, not bencoded::

    msg_type (1 byte)   0 rendezvous, 1 connect, 2 error
    addr_type (1 byte)  0 IPv4, 1 IPv6
    addr (6 or 18)      compact endpoint: IP then big-endian port
    err_code (4 bytes)  big-endian; 0 in non-error messages

We always encode the four ``err_code`` bytes, as the BEP says. libtorrent 2.1 (the
implementation the BEP was written from) writes ``err_code`` only in error messages,
so a rendezvous or connect may end right after the port: the decoder accepts both
lengths and nothing else. Decoding is strict otherwise: an unknown ``msg_type`` or
``addr_type``, a truncated endpoint, trailing bytes, an error message without its code
or a non-error message with a non-zero code raise `DecodeError` (libtorrent ignores
such messages; we drop the connection, as for every malformed extension payload).

Error codes are kept as plain ``int`` so an unknown future code still decodes;
`HolepunchError` names the four the BEP defines. Whether an endpoint is usable (port
0, an unspecified address) is the relay's decision, not the codec's: BEP 55 answers
those with ``NoSuchPeer``.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from typing import Final, TypeAlias, final

from ..errors import DecodeError

__all__ = [
    "UT_HOLEPUNCH",
    "Addr",
    "HolepunchError",
    "HolepunchMessage",
    "HolepunchType",
    "decode_holepunch",
    "encode_holepunch",
]

#: The BEP 10 ``m`` name of the extension.
UT_HOLEPUNCH: Final = "ut_holepunch"

Addr: TypeAlias = tuple[str, int]

_V4: Final = 0
_V6: Final = 1


class HolepunchType(enum.IntEnum):
    """BEP 55 ``msg_type``."""

    RENDEZVOUS = 0  #: ask the relay to introduce us to ``addr``
    CONNECT = 1  #: from the relay: open a uTP connection to ``addr`` now
    ERROR = 2  #: from the relay: the rendezvous for ``addr`` cannot be done


class HolepunchError(enum.IntEnum):
    """BEP 55 ``err_code`` values (0 means no error)."""

    NONE = 0
    NO_SUCH_PEER = 1  #: the endpoint is invalid
    NOT_CONNECTED = 2  #: the relay is not connected to the target
    NO_SUPPORT = 3  #: the target did not advertise ut_holepunch
    NO_SELF = 4  #: the endpoint belongs to the relay (or is the asker itself)


@final
@dataclass(frozen=True, slots=True)
class HolepunchMessage:
    """One ``ut_holepunch`` message. `addr` is ``(ip, port)`` with a compressed IP."""

    msg_type: HolepunchType
    addr: Addr
    error: int = 0


def encode_holepunch(msg: HolepunchMessage) -> bytes:
    """The payload of a ``ut_holepunch`` extended message (always with ``err_code``).

    Raises:
        ValueError: the host is not an IP address, the port or the error code is out
            of range, or a non-error message carries an error code.
    """
    host, port = msg.addr
    ip = ipaddress.ip_address(host)
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port {port} out of range")
    if not 0 <= msg.error <= 0xFFFFFFFF:
        raise ValueError(f"error code {msg.error} out of range")
    if msg.error and msg.msg_type is not HolepunchType.ERROR:
        raise ValueError("only error messages carry an error code")
    addr_type = _V4 if ip.version == 4 else _V6
    return (
        bytes((int(msg.msg_type), addr_type))
        + ip.packed
        + port.to_bytes(2, "big")
        + msg.error.to_bytes(4, "big")
    )


def decode_holepunch(payload: bytes | bytearray | memoryview) -> HolepunchMessage:
    """Parse a ``ut_holepunch`` payload (module docstring for the accepted forms).

    Raises:
        DecodeError: any deviation from the layout above.
    """
    data = bytes(payload)
    if len(data) < 2:
        raise DecodeError(f"ut_holepunch: {len(data)} bytes, need at least 2")
    raw_type, addr_type = data[0], data[1]
    if raw_type not in HolepunchType._value2member_map_:
        raise DecodeError(f"ut_holepunch: unknown msg_type {raw_type}")
    msg_type = HolepunchType(raw_type)
    if addr_type == _V4:
        ip_len = 4
    elif addr_type == _V6:
        ip_len = 16
    else:
        raise DecodeError(f"ut_holepunch: unknown addr_type {addr_type}")
    end = 2 + ip_len + 2
    rest = len(data) - end
    if rest < 0:
        raise DecodeError(f"ut_holepunch: endpoint truncated ({len(data)} bytes)")
    if rest not in (0, 4) or (rest == 0 and msg_type is HolepunchType.ERROR):
        raise DecodeError(f"ut_holepunch: {rest} bytes after the endpoint")
    raw_ip = data[2 : 2 + ip_len]
    ip = ipaddress.IPv4Address(raw_ip) if ip_len == 4 else ipaddress.IPv6Address(raw_ip)
    port = int.from_bytes(data[2 + ip_len : end], "big")
    error = int.from_bytes(data[end:], "big") if rest else 0
    if error and msg_type is not HolepunchType.ERROR:
        raise DecodeError(f"ut_holepunch: error code {error} in a {msg_type.name} message")
    return HolepunchMessage(msg_type, (ip.compressed, port), error)
