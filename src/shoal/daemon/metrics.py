"""``/metrics``: Prometheus exposition through `prometheus_client`, read at scrape time.

A custom collector on a private `CollectorRegistry` (not the process-global one, so
two daemons in one test process do not collide) turns the daemon's current state into
metric families when Prometheus scrapes. Names and units follow Prometheus
conventions: ``_bytes_total`` counters, plain gauges, one ``shoal_torrent_state``
series per state with value 1 for the current one (the "state set" idiom).
Torrents are labelled by ``info_hash`` and ``name``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response
from starlette.routing import Route

from . import qbt

if TYPE_CHECKING:
    from collections.abc import Iterator

    from starlette.requests import Request

    from .auth import Authenticator
    from .state import Daemon

__all__ = ["DaemonCollector", "make_registry", "routes"]

_STATES: Final = ("downloading", "seeding", "paused", "checking", "metadata", "stalled", "error")


def _state_group(qbt_state: str) -> str:
    if qbt_state.startswith(("paused", "stopped")):
        return "paused"
    if qbt_state.startswith("checking"):
        return "checking"
    if qbt_state == "metaDL":
        return "metadata"
    if qbt_state.startswith("stalled"):
        return "stalled"
    if qbt_state in ("uploading", "forcedUP", "queuedUP"):
        return "seeding"
    if qbt_state in ("downloading", "forcedDL", "queuedDL"):
        return "downloading"
    return "error"


class DaemonCollector:
    """Collects the daemon's metrics on each scrape (prometheus_client's Collector protocol)."""

    def __init__(self, daemon: Daemon, auth: Authenticator) -> None:
        self._daemon = daemon
        self._auth = auth

    def collect(self) -> Iterator[Metric]:
        yield from self._torrent_metrics()
        yield from self._session_metrics()

    def _torrent_metrics(self) -> Iterator[Metric]:
        labels = ["info_hash", "name"]
        down = CounterMetricFamily(
            "shoal_torrent_downloaded_bytes", "Payload bytes downloaded", labels=labels
        )
        up = CounterMetricFamily(
            "shoal_torrent_uploaded_bytes", "Payload bytes uploaded", labels=labels
        )
        peers = GaugeMetricFamily("shoal_torrent_peers", "Connected peers", labels=labels)
        seeds = GaugeMetricFamily("shoal_torrent_seeds", "Connected seeds", labels=labels)
        progress = GaugeMetricFamily(
            "shoal_torrent_progress_ratio", "Verified fraction of the selected data", labels=labels
        )
        size = GaugeMetricFamily("shoal_torrent_size_bytes", "Selected size", labels=labels)
        state = GaugeMetricFamily(
            "shoal_torrent_state", "1 for the torrent's current state", labels=[*labels, "state"]
        )
        for view in self._daemon.views():
            info = qbt.torrent_info(view)
            lv = [view.row.hash, info["name"]]
            down.add_metric(lv, view.stats.downloaded_payload)
            up.add_metric(lv, view.stats.uploaded)
            peers.add_metric(lv, view.stats.peers)
            seeds.add_metric(lv, view.stats.seeds)
            progress.add_metric(lv, info["progress"])
            size.add_metric(lv, info["size"])
            current = _state_group(info["state"])
            for name in _STATES:
                state.add_metric([*lv, name], 1.0 if name == current else 0.0)
        yield from (down, up, peers, seeds, progress, size, state)

    def _session_metrics(self) -> Iterator[Metric]:
        daemon = self._daemon
        stats = daemon.client.statistics()
        yield GaugeMetricFamily("shoal_torrents", "Torrents in the session", value=stats.torrents)
        yield GaugeMetricFamily(
            "shoal_peer_connections", "Open peer connections", value=stats.peers
        )
        yield CounterMetricFamily(
            "shoal_incoming_connections_accepted",
            "Inbound peer connections accepted",
            value=stats.inbound_accepted,
        )
        yield CounterMetricFamily(
            "shoal_incoming_connections_refused",
            "Inbound peer connections refused",
            value=stats.inbound_refused,
        )
        yield CounterMetricFamily(
            "shoal_hash_failures",
            "Pieces that failed their SHA-1 check",
            value=daemon.hash_failures,
        )
        yield CounterMetricFamily(
            "shoal_peer_bans", "Peers banned for bad data or protocol", value=daemon.peer_bans
        )
        yield CounterMetricFamily(
            "shoal_webui_bans", "Addresses banned after failed logins", value=self._auth.bans
        )
        dht = daemon.client.dht
        nodes = queries = dropped = 0
        if dht is not None:
            dht_stats = dht.statistics()
            nodes = dht_stats.nodes  # the tables of every address family
            queries = sum(f.node.queries_received for f in dht_stats.families)
            dropped = sum(f.node.rate_limited + f.node.malformed for f in dht_stats.families)
        yield GaugeMetricFamily("shoal_dht_nodes", "Nodes in the DHT routing table", value=nodes)
        yield CounterMetricFamily(
            "shoal_dht_queries_received", "DHT queries received", value=queries
        )
        yield CounterMetricFamily(
            "shoal_dht_queries_dropped",
            "DHT datagrams dropped (rate limited or malformed)",
            value=dropped,
        )


def make_registry(daemon: Daemon, auth: Authenticator) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DaemonCollector(daemon, auth))
    return registry


async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


routes: Final = [Route("/metrics", metrics, methods=["GET"])]
