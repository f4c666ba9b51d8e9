"""shoal: a trackerless BitTorrent client and library on Trio."""

from ._version import __version__ as __version__
from .errors import DecodeError as DecodeError
from .errors import HandshakeError as HandshakeError
from .errors import LocalProtocolError as LocalProtocolError
from .errors import MetadataError as MetadataError
from .errors import NeedHandshakeError as NeedHandshakeError
from .errors import ProtocolError as ProtocolError
from .errors import RemoteProtocolError as RemoteProtocolError
from .errors import ShoalError as ShoalError
from .errors import StorageError as StorageError
from .ids import InfoHash as InfoHash

__all__ = [
    "DecodeError",
    "HandshakeError",
    "InfoHash",
    "LocalProtocolError",
    "MetadataError",
    "NeedHandshakeError",
    "ProtocolError",
    "RemoteProtocolError",
    "ShoalError",
    "StorageError",
    "__version__",
]
