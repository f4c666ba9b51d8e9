"""Why `Bitfield` is bytearray-backed: per-operation cost against a plain ``int`` bitset.

Usage: python tools/bench/bitfield.py [--pieces N]

Times `Bitfield.set`/`test` (the per-``have`` and per-picker-candidate operations), the
same operations on an ``int`` (the obvious alternative), and the whole-field operations
`Bitfield` implements (iterate, count, ``&``). Best of 5 repeats.
"""

from __future__ import annotations

import argparse
import random
import timeit

from shoal.swarm import Bitfield


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pieces", type=int, default=100_000)
    n = ap.parse_args().pieces
    rng = random.Random(1)
    idx = [rng.randrange(n) for _ in range(10_000)]
    bf = Bitfield(n)
    other = Bitfield.from_indices(n, idx)
    box = [0]

    def bf_set() -> None:
        for i in idx:
            bf.set(i)

    def bf_test() -> None:
        for i in idx:
            bf.test(i)

    def int_set() -> None:
        v = box[0]
        for i in idx:
            v |= 1 << (n - 1 - i)
        box[0] = v

    def int_test() -> None:
        v = box[0]
        for i in idx:
            _ = (v >> (n - 1 - i)) & 1

    per_op = {"Bitfield.set": bf_set, "Bitfield.test": bf_test, "int set": int_set}
    per_op["int test"] = int_test
    for name, fn in per_op.items():
        best = min(timeit.repeat(fn, number=1, repeat=5)) / len(idx)
        print(f"{name:>16}: {best * 1e9:7.0f} ns/op   ({n} pieces)")
    full = Bitfield.all(n)
    whole = {
        "iterate all set": lambda: sum(1 for _ in full),
        "count": full.count,
        "a & b": lambda: full & other,
        "from_bytes": lambda: Bitfield.from_bytes(full.to_bytes(), n),
    }
    for name, fn in whole.items():
        best = min(timeit.repeat(fn, number=1, repeat=5))
        print(f"{name:>16}: {best * 1e6:7.0f} µs")


if __name__ == "__main__":
    main()
