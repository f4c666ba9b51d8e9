"""Storage: verify-then-write piece buffers, file and memory backends, recheck and resume.

The download engine uses `Storage` (implemented by `FileStorage` and `MemoryStorage`);
`load_resume`/`save_resume`/`ResumeSaver` decide which pieces survive a restart;
`check_existing` rehashes data already on disk. Layout and the durability policy are
described in docs/storage.md.
"""

from __future__ import annotations

from .base import DEFAULT_MAX_BUFFER_BYTES as DEFAULT_MAX_BUFFER_BYTES
from .base import BufferedStorage as BufferedStorage
from .base import PieceBuffer as PieceBuffer
from .base import Storage as Storage
from .base import StorageFactory as StorageFactory
from .base import StorageStatistics as StorageStatistics
from .base import WriteResult as WriteResult
from .files import FileStorage as FileStorage
from .memory import MemoryStorage as MemoryStorage
from .resume import ResumeResult as ResumeResult
from .resume import ResumeSaver as ResumeSaver
from .resume import load_resume as load_resume
from .resume import resume_path as resume_path
from .resume import save_resume as save_resume
from .verify import check_existing as check_existing

__all__ = [
    "DEFAULT_MAX_BUFFER_BYTES",
    "BufferedStorage",
    "FileStorage",
    "MemoryStorage",
    "PieceBuffer",
    "ResumeResult",
    "ResumeSaver",
    "Storage",
    "StorageFactory",
    "StorageStatistics",
    "WriteResult",
    "check_existing",
    "load_resume",
    "resume_path",
    "save_resume",
]
