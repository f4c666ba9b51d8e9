"""Peer wire protocol (BEP 3, 6, 9, 10, 11): sans-IO codecs for the BitTorrent handshake,
framed messages and extension messages, plus the MSE handshake engine (`peer.mse`)."""

from __future__ import annotations

from .connection import ConnectionConfig as ConnectionConfig
from .connection import ConnectionState as ConnectionState
from .connection import PeerConnection as PeerConnection
from .extension import ExtendedHandshake as ExtendedHandshake
from .extension import PexMessage as PexMessage
from .extension import decode_extended_handshake as decode_extended_handshake
from .extension import decode_metadata_message as decode_metadata_message
from .extension import decode_pex as decode_pex
from .extension import encode_extended_handshake as encode_extended_handshake
from .extension import encode_metadata_message as encode_metadata_message
from .extension import encode_pex as encode_pex
from .fast import allowed_fast_set as allowed_fast_set
from .frames import FrameDecoder as FrameDecoder
from .handshake import Handshake as Handshake
from .handshake import HandshakeParser as HandshakeParser
from .handshake import ReservedBits as ReservedBits
from .handshake import decode_handshake as decode_handshake
from .handshake import encode_handshake as encode_handshake
from .messages import Message as Message
from .messages import MessageId as MessageId
from .messages import encode_message as encode_message
from .messages import encode_piece_header as encode_piece_header

__all__ = [
    "ConnectionConfig",
    "ConnectionState",
    "ExtendedHandshake",
    "FrameDecoder",
    "Handshake",
    "HandshakeParser",
    "Message",
    "MessageId",
    "PeerConnection",
    "PexMessage",
    "ReservedBits",
    "allowed_fast_set",
    "decode_extended_handshake",
    "decode_handshake",
    "decode_metadata_message",
    "decode_pex",
    "encode_extended_handshake",
    "encode_handshake",
    "encode_message",
    "encode_metadata_message",
    "encode_pex",
    "encode_piece_header",
]
