"""Run ``python -m shoal`` as a Trio child process for the ``shoal dht`` tests."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

SHOAL = [sys.executable, "-m", "shoal"]


async def read_json_lines(stream: trio.abc.ReceiveStream, count: int) -> list[dict[str, Any]]:
    """The first `count` ``--json`` records (fewer if the stream ends first)."""
    buf = b""
    while buf.count(b"\n") < count:
        chunk = await stream.receive_some()
        if not chunk:
            break
        buf += chunk
    return [json.loads(line) for line in buf.splitlines()[:count]]


@asynccontextmanager
async def shoal_process(args: list[str]) -> AsyncIterator[trio.Process]:
    """``python -m shoal ARGS`` with piped output; killed on the way out if still running."""
    proc = await trio.lowlevel.open_process(
        [*SHOAL, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
