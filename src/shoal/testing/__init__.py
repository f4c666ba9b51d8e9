"""Public test helpers (like ``trio.testing``); never imported by ``shoal`` itself.

`shoal.testing.simnet` is a pure, seeded discrete-event network that drives sans-IO
datagram engines (`shoal.dht.node.DHTNode` and friends) in virtual time;
`shoal.testing.dhtsim` builds whole DHT swarms on it (warm tables, dead nodes, probes).
"""

from __future__ import annotations

from .simnet import DatagramEngine as DatagramEngine
from .simnet import NetConfig as NetConfig
from .simnet import NetStats as NetStats
from .simnet import SimNet as SimNet
from .simnet import kademlia_contacts as kademlia_contacts

__all__ = ["DatagramEngine", "NetConfig", "NetStats", "SimNet", "kademlia_contacts"]
