"""UDP segmentation offload (Linux ``UDP_SEGMENT``): many datagrams, one system call.

uTP sends a window of equal-size DATA packets to one peer at a time. With
``UDP_SEGMENT`` the kernel takes them as one buffer and cuts it back into the same
datagrams, so the per-datagram system call (on loopback, most of a seeder's CPU)
is paid once per run of up to 64. The receiver sees ordinary datagrams; nothing on
the wire changes. Used by `shoal.net.utp_socket` for its own socket and by
`DHTService.send_datagrams` for the socket it shares with uTP.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Final

from ..errors import ShoalError

if TYPE_CHECKING:
    import socket

__all__ = ["GSO_MAX_SEGMENTS", "GsoRefused", "send_batch"]

Addr = tuple[str, int]

#: ``SOL_UDP`` / ``UDP_SEGMENT`` (Linux 4.18+; Python's socket module lacks the name).
_SOL_UDP: Final = 17
_UDP_SEGMENT: Final = 103
#: The kernel's limits for one segmented send: 64 segments, 64 KiB in all.
GSO_MAX_SEGMENTS: Final = 64
_GSO_MAX_BYTES: Final = 65000


class GsoRefused(ShoalError, OSError):
    """The kernel refused a segmented send: no GSO here. ``batch[unsent:]`` is unsent.
    An `OSError` too, so a caller that does not know GSO handles it as a refused send."""

    def __init__(self, unsent: int, cause: OSError) -> None:
        super().__init__(cause.errno, f"UDP_SEGMENT refused: {cause}")
        self.unsent = unsent


def _run_end(batch: list[tuple[bytes, Addr]], i: int) -> int:
    """End of the run that starts at `i`: same address, same size (a shorter last one
    ends it), within the kernel's limits."""
    first, addr = batch[i]
    size, total, j, n = len(first), len(first), i + 1, len(batch)
    while j < n and j - i < GSO_MAX_SEGMENTS:
        data, to = batch[j]
        if to != addr or len(data) > size or total + len(data) > _GSO_MAX_BYTES:
            break
        total += len(data)
        j += 1
        if len(data) < size:
            break
    return j


def send_batch(sock: socket.socket, batch: list[tuple[bytes, Addr]]) -> tuple[int, int]:
    """Send `batch` in order, each run (`_run_end`) as one segmented ``sendmsg``.

    Returns ``(done, errors)``: ``batch[:done]`` was handled, of which `errors`
    datagrams were refused (an ICMP error reported on this send: dropped, as UDP may).
    ``done < len(batch)`` means the socket buffer is full: wait until it is writable
    and send the rest. Raises `GsoRefused` when the first segmented send of the call is
    refused (no GSO: send ``batch[unsent:]`` with ``sendto``).
    """
    errors, segmented, i = 0, False, 0
    while i < len(batch):
        j = _run_end(batch, i)
        data, addr = batch[i]
        try:
            if j - i == 1:
                sock.sendto(data, addr)
            else:
                option = [(_SOL_UDP, _UDP_SEGMENT, len(data).to_bytes(2, sys.byteorder))]
                sock.sendmsg([b"".join(d for d, _ in batch[i:j])], option, 0, addr)
                segmented = True
        except BlockingIOError:
            return i, errors
        except OSError as exc:
            if j - i > 1 and not segmented:
                raise GsoRefused(i, exc) from exc
            errors += j - i
        i = j
    return i, errors
