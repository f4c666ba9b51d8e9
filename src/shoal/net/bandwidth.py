"""The Trio side of `shoal.ratelimit.RateLimiter`: a timer task and rate-limited streams.

`BandwidthManager.serve` runs the limiter's timer (one task per client);
`acquire` asks for bytes and waits for the grant. `RateLimitedStream` wraps a peer
stream and charges every byte that crosses it:

* sends are charged *before* they go out, in chunks of at most `QUANTUM` bytes (so a
  large write cannot hold a whole bucket);
* receives are charged *after* the bytes arrive and before they are handed up: an
  idle connection holds no tokens, and a connection over its share simply reads
  again later, so TCP flow control slows the sender down. Over any window the bytes
  handed up exceed the limit by at most one receive and the bucket's burst.

Channels are plain tuples: `GLOBAL_DOWN` / `GLOBAL_UP` for the client-wide limits;
a per-torrent limit is one more channel in the chain.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Final, final

import trio

from ..ratelimit import RateLimiter

if TYPE_CHECKING:
    from collections.abc import Hashable, Sequence

__all__ = [
    "GLOBAL_DOWN",
    "GLOBAL_UP",
    "QUANTUM",
    "BandwidthManager",
    "RateLimitedStream",
    "add_channels",
    "torrent_channels",
]

GLOBAL_DOWN: Final = ("global", "down")
GLOBAL_UP: Final = ("global", "up")
#: Largest single charge: one 16 KiB block with its 13-byte header, and some slack.
QUANTUM: Final = 16 * 1024 + 64


@final
class BandwidthManager:
    """Drives a `RateLimiter` under Trio (see the module docstring)."""

    def __init__(self, limiter: RateLimiter | None = None) -> None:
        self.limiter = limiter or RateLimiter()
        self._events: dict[Hashable, trio.Event] = {}
        self._kick = trio.Event()
        self._ids = itertools.count()

    def set_rate(self, channel: Hashable, rate: float | None) -> None:
        """Limit `channel` (bytes/s; None: unlimited) from now on."""
        self.limiter.set_rate(channel, rate, trio.current_time())
        self._kick.set()

    async def acquire(self, consumer: Hashable, chain: Sequence[Hashable], amount: int) -> None:
        """Wait until `amount` bytes may cross on every channel of `chain`."""
        if self.limiter.request(consumer, chain, amount, trio.current_time()):
            return
        event = self._events[consumer] = trio.Event()
        self._kick.set()
        try:
            await event.wait()
        finally:
            if self._events.pop(consumer, None) is not None and not event.is_set():
                self.limiter.cancel(consumer)  # cancelled while waiting

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the limiter's timer forever (start it in the client's nursery)."""
        task_status.started()
        while True:
            kick = self._kick = trio.Event()
            timer = self.limiter.get_timer()
            if timer is None:
                await kick.wait()
                continue
            with trio.move_on_at(timer):
                await kick.wait()  # a new waiter or rate can move the timer earlier
            if trio.current_time() >= timer:
                self.limiter.handle_timer(trio.current_time())
            while (consumer := self.limiter.next_grant()) is not None:
                event = self._events.get(consumer)
                if event is not None:
                    event.set()

    def wrap(
        self,
        stream: trio.abc.Stream,
        *,
        down: Sequence[Hashable] = (GLOBAL_DOWN,),
        up: Sequence[Hashable] = (GLOBAL_UP,),
    ) -> RateLimitedStream:
        """`stream`, charged to the `down` and `up` channel chains."""
        return RateLimitedStream(stream, self, next(self._ids), down=tuple(down), up=tuple(up))


@final
class RateLimitedStream(trio.abc.Stream):
    """A stream whose bytes are paid for from a `BandwidthManager` (module docstring)."""

    def __init__(
        self,
        transport_stream: trio.abc.Stream,
        bandwidth: BandwidthManager,
        key: int,
        *,
        down: tuple[Hashable, ...],
        up: tuple[Hashable, ...],
    ) -> None:
        self.transport_stream = transport_stream
        self._bandwidth = bandwidth
        self._down_key = (key, "down")
        self._up_key = (key, "up")
        self.down = down
        self.up = up

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if not self._bandwidth.limiter.limited(self.up):
            await self.transport_stream.send_all(data)  # unlimited: one write, no chunks
            return
        view = memoryview(data)
        for start in range(0, len(view), QUANTUM):
            chunk = view[start : start + QUANTUM]
            await self._bandwidth.acquire(self._up_key, self.up, len(chunk))
            await self.transport_stream.send_all(chunk)

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport_stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if not self._bandwidth.limiter.limited(self.down):
            return await self.transport_stream.receive_some(max_bytes)  # as if unwrapped
        data = await self.transport_stream.receive_some(
            QUANTUM if max_bytes is None else min(max_bytes, QUANTUM)
        )
        if data:
            await self._bandwidth.acquire(self._down_key, self.down, len(data))
        return data

    async def aclose(self) -> None:
        self._bandwidth.limiter.cancel(self._down_key)
        self._bandwidth.limiter.cancel(self._up_key)
        await self.transport_stream.aclose()


def torrent_channels(info_hash: bytes) -> tuple[Hashable, Hashable]:
    """The (download, upload) channels of one torrent's limits."""
    return ("torrent", bytes(info_hash), "down"), ("torrent", bytes(info_hash), "up")


def add_channels(stream: trio.abc.Stream, *, down: Hashable, up: Hashable) -> bool:
    """Charge the `RateLimitedStream` under `stream` (through MSE and other wrappers'
    ``transport_stream``) to `down` / `up` too; False if there is none."""
    layer: object = stream
    for _ in range(8):  # a handful of wrappers at most; bounded anyway
        if isinstance(layer, RateLimitedStream):
            layer.down = (*layer.down, down)
            layer.up = (*layer.up, up)
            return True
        layer = getattr(layer, "transport_stream", None)
        if layer is None:
            break
    return False
