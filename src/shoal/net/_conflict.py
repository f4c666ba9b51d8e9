"""A tiny conflict detector: two tasks in the same half of a stream is a caller bug."""

from __future__ import annotations

from typing import TYPE_CHECKING, final

import trio

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["ConflictDetector"]


@final
class ConflictDetector:
    """Raise `trio.BusyResourceError` when a second task enters while one is inside.

    Used as ``with detector:``. Trio's own streams do the same (their detector is
    private), because interleaved ``send_all`` calls would corrupt a byte stream and
    interleaved ``receive_some`` calls would split it unpredictably.
    """

    __slots__ = ("_held", "_msg")

    def __init__(self, msg: str) -> None:
        self._msg = msg
        self._held = False

    def __enter__(self) -> None:
        if self._held:
            raise trio.BusyResourceError(self._msg)
        self._held = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._held = False
