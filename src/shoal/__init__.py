"""shoal: a trackerless BitTorrent client and library on Trio."""

from typing import TYPE_CHECKING

from ._version import __version__ as __version__
from .config import ClientConfig as ClientConfig
from .config import EncryptionMode as EncryptionMode
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
from .magnet import Magnet as Magnet
from .metainfo import Metainfo as Metainfo

if TYPE_CHECKING:
    from .client import Client as Client
    from .client import open_client as open_client
    from .torrent import Torrent as Torrent
    from .torrent import TorrentStats as TorrentStats

# The Trio engine (and with it shoal.net) is imported on first use, so that
# `import shoal` stays cheap for users of the pure codecs.
_LAZY = {
    "Client": "client",
    "open_client": "client",
    "Torrent": "torrent",
    "TorrentStats": "torrent",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shoal' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "Client",
    "ClientConfig",
    "DecodeError",
    "EncryptionMode",
    "HandshakeError",
    "InfoHash",
    "LocalProtocolError",
    "Magnet",
    "MetadataError",
    "Metainfo",
    "NeedHandshakeError",
    "ProtocolError",
    "RemoteProtocolError",
    "ShoalError",
    "StorageError",
    "Torrent",
    "TorrentStats",
    "__version__",
    "open_client",
]
