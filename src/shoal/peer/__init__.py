"""Peer wire protocol (BEP 3, 6, 9, 10, 11): sans-IO codecs for the BitTorrent handshake,
framed messages and extension messages, plus the MSE handshake engine (`peer.mse`)."""

from __future__ import annotations

from .handshake import Handshake as Handshake
from .handshake import HandshakeParser as HandshakeParser
from .handshake import ReservedBits as ReservedBits
from .handshake import decode_handshake as decode_handshake
from .handshake import encode_handshake as encode_handshake
from .messages import FrameDecoder as FrameDecoder
from .messages import Message as Message
from .messages import MessageId as MessageId
from .messages import encode_message as encode_message
from .messages import encode_piece_header as encode_piece_header

__all__ = [
    "FrameDecoder",
    "Handshake",
    "HandshakeParser",
    "Message",
    "MessageId",
    "ReservedBits",
    "decode_handshake",
    "encode_handshake",
    "encode_message",
    "encode_piece_header",
]
