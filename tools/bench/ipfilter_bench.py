"""How long loading a large block list takes, and one lookup.

Usage: python tools/bench/ipfilter_bench.py [--ranges N] [--format emule|p2p] [--gzip]
[--shuffled] [--pure]

It times `load_ip_filter_bytes` (what ``--ip-filter`` runs: the pure parser with the C
address parser ``inet_pton``); ``--pure`` times `parse_ip_filter` alone.

Generates N random IPv4 ranges (seeded) in the chosen format, in ascending order as
published lists are (``--shuffled``: random order, so the sort does real work; some
ranges overlap either way and are merged), then reports the best of
3 parse times (CPU time of this process, so a loaded machine inflates it less than wall
time would) and the mean cost of one `IPFilter.blocks` lookup. The issue's bar: 500,000
ranges load in under a second.
"""

from __future__ import annotations

import argparse
import gzip
import random
import time

from shoal.ipfilter import parse_ip_filter
from shoal.ipfilter_load import load_ip_filter_bytes


def _dotted(value: int, pad: bool) -> str:
    octets = [(value >> s) & 255 for s in (24, 16, 8, 0)]
    return ".".join(f"{o:03d}" if pad else str(o) for o in octets)


def make_list(n: int, fmt: str, rng: random.Random, *, shuffled: bool = True) -> bytes:
    ranges = []
    for _ in range(n):
        start = rng.getrandbits(32)
        ranges.append((start, min(start + rng.randrange(1, 1 << 12), (1 << 32) - 1)))
    if not shuffled:
        ranges.sort()
    lines = []
    for i, (start, end) in enumerate(ranges):
        if fmt == "emule":
            lines.append(f"{_dotted(start, True)} - {_dotted(end, True)} , 000 , Range {i}")
        else:
            lines.append(f"Some org {i}:{_dotted(start, False)}-{_dotted(end, False)}")
    return "\n".join(lines).encode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranges", type=int, default=500_000)
    ap.add_argument("--format", choices=["emule", "p2p"], default="emule")
    ap.add_argument("--gzip", action="store_true")
    ap.add_argument("--shuffled", action="store_true")
    ap.add_argument("--pure", action="store_true", help="parse_ip_filter without inet_pton")
    args = ap.parse_args()
    rng = random.Random(1)
    data = make_list(args.ranges, args.format, rng, shuffled=args.shuffled)
    if args.gzip:
        data = gzip.compress(data, compresslevel=6)
    load = parse_ip_filter if args.pure else load_ip_filter_bytes
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        flt, bad = load(data)
        best = min(best, time.process_time() - t0)
    assert not bad, bad[:3]
    probes = [_dotted(rng.getrandbits(32), False) for _ in range(100_000)]
    t0 = time.process_time()
    hits = sum(flt.blocks(p) for p in probes)
    per_lookup = (time.process_time() - t0) / len(probes)
    print(
        f"{args.ranges} {args.format} ranges{' (gzip)' if args.gzip else ''}"
        f"{', shuffled' if args.shuffled else ''}{', pure' if args.pure else ''}, "
        f"{len(data) / 1e6:.1f} MB: parse {best:.3f} s CPU (best of 3), "
        f"{len(flt)} merged ranges; lookup {per_lookup * 1e6:.2f} µs ({hits} hits / {len(probes)})"
    )


if __name__ == "__main__":
    main()
