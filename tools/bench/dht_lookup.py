"""DHT lookup benchmark: shoal's lookup policy vs a libtorrent-like one, in simulation.

Usage: python tools/bench/dht_lookup.py [--nodes 10000] [--dead 0.55] [--loss 0.01]
           [--median-rtt 0.1] [--sigma 0.6] [--lookups 200] [--cold 40] [--seed 1] [--sweep]

Real `DHTNode` engines on `shoal.testing.simnet` (virtual time, nothing touches a socket).
A population of ``--nodes`` IDs of which ``--dead`` never answer; live nodes get warm
routing tables (k = 8 contacts per bucket from the whole population, dead included).
Link RTTs are log-normal with median ``--median-rtt`` and shape ``--sigma``; each
datagram is lost with probability ``--loss``.

Per sample: a fresh random info-hash, whose 8 closest live nodes store one peer; a fresh
read-only probe node runs ``get_peers``. *Warm*: the probe has a warm table too (with
RTTs it measured earlier). *Cold*: the probe has an empty table and one bootstrap address
(a random live node); its time includes the bootstrap lookup. Each policy runs on a swarm
built from the same seed, so both see the same nodes, tables, targets and link RTTs.

Rows: time to first peer (p50/p90/p99, seconds of virtual time), share of lookups that
found the peer, time to finish, queries per lookup, hops (seeds are hop 1) of the reply
that carried the first peer, hops to the deepest of the k closest responders, and how
many of the true 8 closest live nodes the lookup returned (result quality).
``--sweep`` also runs a grid of alpha / soft-timeout variants (how the defaults were chosen).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
import statistics
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shoal.dht.lookup import LookupConfig
from shoal.ids import random_id
from shoal.testing.dhtsim import ProbeResult, Swarm
from shoal.testing.simnet import NetConfig

if TYPE_CHECKING:
    from collections.abc import Callable

PEER = ("172.16.0.1", 6881)


@dataclass
class Series:
    results: list[ProbeResult]
    #: Per lookup: how many of the true k closest live nodes it returned.
    overlaps: list[int]

    def first_peer(self) -> list[float]:
        # Lookups that never found the peer count as infinitely slow, so that a policy
        # cannot look fast by giving up early.
        return sorted(r.first_peer if r.first_peer is not None else math.inf for r in self.results)

    def values(self, what: str) -> list[float]:
        out: list[float] = []
        for r in self.results:
            s = r.stats
            if what == "finished" and r.finished is not None:
                out.append(r.finished)
            elif what == "queries" and s is not None:
                out.append(s.queries_sent)
            elif what == "first_peer_hops" and s is not None and s.first_peer_hops is not None:
                out.append(s.first_peer_hops)
            elif what == "hops" and s is not None:
                out.append(s.hops)
        return out


def quantile(xs: list[float], q: float) -> float:
    if not xs:
        return math.nan
    xs = sorted(xs)
    return xs[min(len(xs) - 1, math.ceil(q * len(xs)) - 1)]


def run_policy(args: argparse.Namespace, config: LookupConfig, cold: bool) -> Series:
    net = NetConfig(median_rtt=args.median_rtt, rtt_sigma=args.sigma, loss=args.loss)
    swarm = Swarm(args.nodes, random.Random(args.seed), dead=args.dead, net_config=net)
    samples = random.Random(args.seed + 1)  # targets and bootstrap choices, same per policy
    live = swarm.live_indices()
    series = Series([], [])
    for _ in range(args.cold if cold else args.lookups):
        info_hash = random_id(samples)
        swarm.store_peers(info_hash, [PEER])
        bootstrap = swarm.addrs[samples.choice(live)] if cold else None
        result = swarm.run_get_peers(info_hash, config, bootstrap=bootstrap)
        series.results.append(result)
        series.overlaps.append(len(set(result.closest) & set(swarm.true_closest(info_hash))))
    return series


def fmt(x: float) -> str:
    if math.isinf(x):
        return "inf"
    return f"{x:.3f}" if abs(x) < 10 else f"{x:.1f}"


def table(title: str, columns: dict[str, Series]) -> None:
    names = list(columns)
    cols = list(columns.values())

    def row(label: str, metric: Callable[[Series], float]) -> tuple[str, list[float]]:
        return label, [metric(s) for s in cols]

    rows = [
        row("first peer p50 (s)", lambda s: quantile(s.first_peer(), 0.5)),
        row("first peer p90 (s)", lambda s: quantile(s.first_peer(), 0.9)),
        row("first peer p99 (s)", lambda s: quantile(s.first_peer(), 0.99)),
        row(
            "found peer (share)",
            lambda s: statistics.fmean(r.first_peer is not None for r in s.results),
        ),
        row("finish p50 (s)", lambda s: quantile(s.values("finished"), 0.5)),
        row("finish p90 (s)", lambda s: quantile(s.values("finished"), 0.9)),
        row("queries / lookup (mean)", lambda s: statistics.fmean(s.values("queries"))),
        row(
            "hops to first peer (mean)",
            lambda s: statistics.fmean(s.values("first_peer_hops") or [math.nan]),
        ),
        row("hops to k closest (mean)", lambda s: statistics.fmean(s.values("hops"))),
        row("true 8 closest found (mean)", lambda s: statistics.fmean(s.overlaps)),
    ]
    width = max(len(r[0]) for r in rows) + 2
    head = f"{title:<{width}}" + "".join(f"{n:>16}" for n in names)
    if len(names) == 2:
        head += f"{'ratio':>10}"
    print(head)
    print("-" * len(head))
    for label, vals in rows:
        line = f"{label:<{width}}" + "".join(f"{fmt(v):>16}" for v in vals)
        if len(names) == 2:
            a, b = vals
            line += f"{fmt(a / b) if b and not math.isinf(b) else '-':>10}"
        print(line)
    print()


def sweep_configs() -> dict[str, LookupConfig]:
    base = LookupConfig()
    grid: dict[str, LookupConfig] = {}
    for alpha in (3, 4, 5, 8):
        for soft in (0.3, 0.5, 1.0):
            grid[f"a{alpha} soft{soft}"] = dataclasses.replace(base, alpha=alpha, soft_timeout=soft)
    a = base.alpha
    grid[f"a{a} soft{base.soft_timeout} fixed"] = dataclasses.replace(base, adaptive=False)
    grid[f"a{a} factor2"] = dataclasses.replace(base, rtt_factor=2.0)
    grid[f"a{a} factor3"] = dataclasses.replace(base, rtt_factor=3.0)
    grid[f"a{a} patience0"] = dataclasses.replace(base, patience=0.0)
    grid[f"a{a} patience1"] = dataclasses.replace(base, patience=1.0)
    return grid


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=10_000)
    p.add_argument("--dead", type=float, default=0.55)
    p.add_argument("--loss", type=float, default=0.01)
    p.add_argument("--median-rtt", type=float, default=0.1)
    p.add_argument("--sigma", type=float, default=0.6)
    p.add_argument("--lookups", type=int, default=200)
    p.add_argument("--cold", type=int, default=40)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sweep", action="store_true")
    args = p.parse_args(argv)
    print(
        f"# {args.nodes} nodes, {args.dead:.0%} dead, loss {args.loss:.0%}, RTT log-normal "
        f"median {args.median_rtt * 1000:.0f} ms sigma {args.sigma}, seed {args.seed}; "
        f"{args.lookups} warm + {args.cold} cold lookups per policy"
    )
    policies = {"shoal": LookupConfig(), "libtorrent_like": LookupConfig.libtorrent_like()}
    started = time.perf_counter()
    warm = {name: run_policy(args, cfg, cold=False) for name, cfg in policies.items()}
    table("warm tables", warm)
    if args.cold:
        cold = {name: run_policy(args, cfg, cold=True) for name, cfg in policies.items()}
        table("cold start (1 bootstrap node)", cold)
    if args.sweep:
        configs = sweep_configs()
        for name, cfg in configs.items():
            series = run_policy(args, cfg, cold=False)
            fp = series.first_peer()
            queries = statistics.fmean(series.values("queries"))
            print(
                f"{name:<22} p50 {fmt(quantile(fp, 0.5))}  p90 {fmt(quantile(fp, 0.9))}  "
                f"p99 {fmt(quantile(fp, 0.99))}  queries {queries:.1f}  "
                f"finish p50 {fmt(quantile(series.values('finished'), 0.5))}"
            )
    print(f"# wall time {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
