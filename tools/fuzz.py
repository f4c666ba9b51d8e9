"""Long-running fuzz driver over shoal's hypothesis totality tests.

Usage:
    python tools/fuzz.py TARGET [--seconds N] [--seed S] [--slow-ms MS]
    python tools/fuzz.py --list

Each target is an ordinary ``@given`` test taking exactly one ``bytes`` or ``str``
argument (the untrusted input). The driver feeds it random buffers through
``test.hypothesis.fuzz_one_input``, so the very property pytest checks in CI is what
runs here for hours. Every input that fails (any exception escapes the test) or runs
longer than ``--slow-ms`` is written to ``tests/corpus/<target>-<sha1[:12]>.bin``;
tests/proto/test_corpus.py replays every such file on each test run, so a finding
becomes a regression test the moment it is committed.

Adding a target is one line in `TARGETS` below.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import importlib
import os
import random
import sys
import time
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "corpus"
if str(ROOT) not in sys.path:  # so "tests.proto..." imports work when run as a script
    sys.path.insert(0, str(ROOT))

#: name -> "module:function" of a one-argument hypothesis totality test.
TARGETS: dict[str, str] = {
    "bencode": "tests.proto.test_bencoding:test_decode_is_total",
    "magnet": "tests.proto.test_magnet:test_parse_is_total",
    "wire": "tests.proto.peer.test_messages:test_wire_decoder_is_total",
    "extension": "tests.proto.peer.test_extension:test_extension_decoders_are_total",
    "holepunch": "tests.proto.peer.test_holepunch:test_decode_is_total",
    "krpc": "tests.proto.dht.test_krpc:test_arbitrary_bytes_only_raise_decode_error",
    "compact": "tests.proto.dht.test_compact:test_decoders_are_total",
    "dht-node": "tests.proto.dht.test_node:test_receive_datagram_is_total",
    "metainfo": "tests.proto.test_metainfo:test_arbitrary_bytes_only_decode_error",
    "ids": "tests.proto.test_ids:test_text_parsers_are_total",
    "peer-connection": "tests.test_fuzz_targets:test_peer_connection_is_total",
    "mse-initiator": "tests.test_fuzz_targets:test_mse_initiator_is_total",
    "mse-receiver": "tests.test_fuzz_targets:test_mse_receiver_is_total",
    "resume": "tests.test_fuzz_targets:test_resume_file_is_total",
    "dht-state": "tests.test_fuzz_targets:test_dht_state_file_is_total",
    "ipfilter": "tests.proto.test_ipfilter:test_totality_on_arbitrary_bytes",
    "socks5": "tests.proto.test_socks5:test_every_decoder_is_total",
}

#: Upper bound on one random buffer; hypothesis reads its choices from it, and inputs
#: the targets build stay small (their strategies cap sizes).
MAX_BUFFER = 8192


@dataclass(frozen=True)
class Target:
    """A loaded target: the test, its argument, and how its input maps to file bytes."""

    name: str
    test: Any  # a hypothesis-wrapped test function
    param: str
    kind: type[bytes] | type[str]

    def to_file(self, value: bytes | str) -> bytes:
        # surrogatepass: mutated text may hold lone surrogates; they must survive the file.
        return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")

    def from_file(self, data: bytes) -> bytes | str:
        return data if self.kind is bytes else data.decode("utf-8", "surrogatepass")

    def check(self, data: bytes) -> None:
        """Run the property once on a corpus input, bypassing hypothesis."""
        self.test.hypothesis.inner_test(**{self.param: self.from_file(data)})


def load_target(name: str) -> Target:
    """Import `TARGETS[name]` and work out its single input argument."""
    module_name, _, func_name = TARGETS[name].partition(":")
    test = getattr(importlib.import_module(module_name), func_name)
    hints = typing.get_type_hints(test.hypothesis.inner_test)
    hints.pop("return", None)
    if len(hints) != 1 or next(iter(hints.values())) not in (bytes, str):
        raise TypeError(f"fuzz target {TARGETS[name]} must take one bytes or str argument")
    [(param, kind)] = hints.items()
    return Target(name, test, param, kind)


def corpus_path(target: str, data: bytes, corpus: Path = CORPUS) -> Path:
    return corpus / f"{target}-{hashlib.sha1(data).hexdigest()[:12]}.bin"


def save(target: Target, value: bytes | str, corpus: Path) -> Path:
    data = target.to_file(value)
    path = corpus_path(target.name, data, corpus)
    corpus.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _recorder(test: Any) -> dict[str, Any]:
    """Wrap the test's inner function (once) to record the input it was last called with.

    So a failure can be saved as the decoder's input rather than as hypothesis's internal
    choice buffer. Installed once per test because ``fuzz_one_input`` caches the inner
    function it first sees; `wraps` keeps the database key hypothesis derives from the
    test's source equal to the real test's.
    """
    handle = test.hypothesis
    last: dict[str, Any] | None = getattr(handle.inner_test, "shoal_fuzz_last", None)
    if last is None:
        inner = handle.inner_test
        record: dict[str, Any] = {}

        @functools.wraps(inner)
        def recording(*args: Any, **kwargs: Any) -> Any:
            record.clear()
            record.update(kwargs)
            return inner(*args, **kwargs)

        recording.shoal_fuzz_last = record  # type: ignore[attr-defined]
        handle.inner_test = recording
        last = record
    return last


def _replay_ms(target: Target, value: bytes | str) -> float:
    started = time.perf_counter()
    with contextlib.suppress(Exception):  # a failure would have been caught already
        target.check(target.to_file(value))
    return (time.perf_counter() - started) * 1000


def fuzz(
    target: Target, *, seconds: float, seed: int, slow_ms: float, corpus: Path
) -> tuple[int, list[Path]]:
    """Run `target` on random buffers for `seconds`; return (runs, files written)."""
    last = _recorder(target.test)
    run_one = target.test.hypothesis.fuzz_one_input
    rng = random.Random(seed)
    written: list[Path] = []
    runs = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        buffer = rng.randbytes(rng.choice((16, 64, 256, 1024, MAX_BUFFER)))
        last.clear()
        started = time.perf_counter()
        failure: BaseException | None = None
        try:
            run_one(buffer)
        except Exception as exc:  # the property failed: that is a finding
            failure = exc
        elapsed_ms = (time.perf_counter() - started) * 1000
        runs += 1
        if failure is None and elapsed_ms > slow_ms and target.param in last:
            # On a shared machine one slow run is often just a scheduler stall or a GC
            # pause: keep the input only if replaying it alone is slow too.
            elapsed_ms = min(elapsed_ms, _replay_ms(target, last[target.param]))
        if (failure is not None or elapsed_ms > slow_ms) and target.param in last:
            path = save(target, last[target.param], corpus)
            if path not in written:
                written.append(path)
                why = repr(failure) if failure else f"slow: {elapsed_ms:.0f} ms"
                print(f"{target.name}: {why} -> {path}", file=sys.stderr)
    return runs, written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", nargs="?", choices=sorted(TARGETS))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=None, help="default: random, printed")
    parser.add_argument("--slow-ms", type=float, default=1000.0)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--list", action="store_true", help="list targets and exit")
    args = parser.parse_args(argv)
    if args.list or args.target is None:
        for name, where in sorted(TARGETS.items()):
            print(f"{name:10} {where}")
        return 0 if args.list else 2
    # The "fuzz" profile from tests/conftest.py (no deadline, no health checks) must be
    # loaded before the test module is imported: @given binds settings at decoration.
    os.environ["HYPOTHESIS_PROFILE"] = "fuzz"
    importlib.import_module("tests.conftest")
    target = load_target(args.target)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(f"fuzzing {args.target} for {args.seconds:g}s, seed {seed}", file=sys.stderr)
    runs, written = fuzz(
        target, seconds=args.seconds, seed=seed, slow_ms=args.slow_ms, corpus=args.corpus
    )
    print(f"{runs} runs, {len(written)} new corpus files", file=sys.stderr)
    return 1 if written else 0


if __name__ == "__main__":
    sys.exit(main())
