"""Pure (sans-IO) swarm decisions of one torrent, extracted from the Trio driver.

Each module is one decision with its own property tests: smart ban (`smart_ban`), which
of two connections to one peer survives (`duplicates`), BEP 11 PEX deltas (`pex`), the
quick unchoke (`unchoke`), the BEP 9 metadata-fetch driver (`metadata_fetch`) and the
client-wide send budget (`send_budget`). None
reads a clock or draws randomness of its own; the Trio layer (``torrent.py``,
``_torrent_data.py``) calls them with ``now`` and acts on what they return.
"""

from .duplicates import ConnectionFacts as ConnectionFacts
from .duplicates import keeps_new_connection as keeps_new_connection
from .metadata_fetch import MetadataFetch as MetadataFetch
from .pex import PexTracker as PexTracker
from .send_budget import SendBudget as SendBudget
from .smart_ban import Ban as Ban
from .smart_ban import SmartBan as SmartBan
from .unchoke import quick_unchoke as quick_unchoke

__all__ = [
    "Ban",
    "ConnectionFacts",
    "MetadataFetch",
    "PexTracker",
    "SendBudget",
    "SmartBan",
    "keeps_new_connection",
    "quick_unchoke",
]
