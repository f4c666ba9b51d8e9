"""The ``max_bytes`` argument of ``receive_some``, checked as trio's own streams check it.

Why a module: every `trio.abc.Stream` wrapper of ours (`MSEStream`, `PrefixedStream`)
takes the argument from callers it cannot trust to pass a positive int, and must refuse
a bad one the same way, before touching the stream.
"""

from __future__ import annotations

import operator

__all__ = ["check_max_bytes"]


def check_max_bytes(max_bytes: int | None) -> int | None:
    """`max_bytes` as an int (``None`` stays ``None``: "whatever is there").

    Raises:
        TypeError: not an integer (``operator.index`` refuses it).
        ValueError: below 1.
    """
    if max_bytes is None:
        return None
    max_bytes = operator.index(max_bytes)
    if max_bytes < 1:
        raise ValueError("max_bytes must be >= 1")
    return max_bytes
