"""Mainline DHT (BEP 5) as sans-IO pieces: the `DHTNode` engine, its events and the KRPC codec."""

from __future__ import annotations

from .compact import Addr as Addr
from .compact import NodeInfo as NodeInfo
from .events import AnnounceReceived as AnnounceReceived
from .events import AnnounceSent as AnnounceSent
from .events import BootstrapFinished as BootstrapFinished
from .events import DHTEvent as DHTEvent
from .events import ExternalAddressVoted as ExternalAddressVoted
from .events import LookupFinished as LookupFinished
from .events import NodeAdded as NodeAdded
from .events import PeersFound as PeersFound
from .events import QueryTimedOut as QueryTimedOut
from .krpc import KRPCDecodeError as KRPCDecodeError
from .krpc import Message as Message
from .krpc import decode_message as decode_message
from .krpc import encode_message as encode_message
from .node import DHTConfig as DHTConfig
from .node import DHTNode as DHTNode
from .node import DHTStats as DHTStats

__all__ = [
    "Addr",
    "AnnounceReceived",
    "AnnounceSent",
    "BootstrapFinished",
    "DHTConfig",
    "DHTEvent",
    "DHTNode",
    "DHTStats",
    "ExternalAddressVoted",
    "KRPCDecodeError",
    "LookupFinished",
    "Message",
    "NodeAdded",
    "PeersFound",
    "QueryTimedOut",
    "decode_message",
    "encode_message",
]
