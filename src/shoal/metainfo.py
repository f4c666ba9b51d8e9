"""Metainfo (.torrent) and info-dict parsing, validation and path sanitising.

Theory of operation
-------------------
`parse_info` turns the bencoded ``info`` dict (from a .torrent or assembled from
BEP 9 ut_metadata pieces) into a frozen `InfoDict`; `parse_metainfo` does the same
for a whole .torrent and adds the optional top-level keys. The info-hash is SHA-1
of the ``info`` value's exact bytes as they appear in the input (BEP 3), captured
with `bencoding.decode_with_span`, so non-canonical torrents hash like everywhere
else.

Everything here treats its input as hostile: the only exception that escapes for
bad bytes is `DecodeError`. The full policy (piece-length bounds, text decoding,
which paths are refused and why) is in ``docs/metainfo.md``; the short version:

* piece length: a power of two in [16 KiB, 64 MiB];
* text: UTF-8, ``name.utf-8``/``path.utf-8`` preferred, bad bytes become U+FFFD;
* paths: every component is checked (no empty, ``.``, ``..``, separators, control
  characters, drive prefixes, > 255 UTF-8 bytes), exact duplicates and
  file-vs-directory clashes are refused, so joining any accepted ``FileEntry.path``
  onto a download directory stays inside it;
* BEP 47 pad files are recognised by ``attr`` containing ``p`` only;
* hybrid v1+v2 (BEP 52) torrents are read through their v1 keys; v2-only is refused.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Final

from .bencoding import Bencoded, decode_dict, decode_with_span, encode, get_bytes, get_int
from .errors import DecodeError
from .ids import InfoHash

__all__ = [
    "MAX_COMPONENT_BYTES",
    "MAX_FILES",
    "MAX_PIECE_LENGTH",
    "MIN_PIECE_LENGTH",
    "FileEntry",
    "InfoDict",
    "Metainfo",
    "build_metainfo",
    "check_component",
    "parse_info",
    "parse_metainfo",
]

# BEP 3: pieces are SHA-1 digests concatenated into ``pieces``.
HASH_LENGTH: Final = 20
#: Smallest accepted piece length. BEP 52 sets 16 KiB as the minimum and it is the
#: de-facto block size (BEP 3 requests of 2^14), so every piece but the last is a
#: whole number of blocks. Older torrents with smaller pieces are refused.
MIN_PIECE_LENGTH: Final = 16 * 1024
#: Largest accepted piece length: one piece is buffered whole for hashing, so this
#: bounds per-piece memory. libtorrent's own limit is 128 MiB; nothing real exceeds 64.
MAX_PIECE_LENGTH: Final = 64 * 1024 * 1024
#: File-count cap: bounds parse time and memory (each entry is a few hundred bytes of
#: Python objects); the largest real torrents have tens of thousands of files.
MAX_FILES: Final = 100_000
#: NAME_MAX on Linux, macOS and NTFS (in bytes/UTF-16 units); longer components are
#: refused rather than truncated, because truncation can create collisions and makes
#: our file names differ from other clients'.
MAX_COMPONENT_BYTES: Final = 255

# A Windows drive prefix ("C:", "c:foo"): joined on Windows it would leave the
# download dir, so it is refused on every platform for portable results.
_DRIVE = re.compile(r"[A-Za-z]:")
# C0 control characters including NUL: invalid on Windows, NUL ends C strings on POSIX.
_CONTROL = re.compile(r"[\x00-\x1f]")


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of the torrent, in torrent order."""

    path: tuple[str, ...]  # sanitised components relative to the download dir
    length: int
    offset: int  # offset of the file's first byte in the concatenated torrent data
    pad: bool = False  # BEP 47 pad file: counted in offsets, never written to disk


@dataclass(frozen=True, slots=True)
class InfoDict:
    """A validated info dict. Build it with `parse_info`, not directly."""

    name: str
    piece_length: int
    piece_hashes: bytes
    files: tuple[FileEntry, ...]
    private: bool
    multi_file: bool
    raw: bytes  # exact bencoded bytes hashed into info_hash
    info_hash: InfoHash
    total_length: int
    num_pieces: int
    # File start offsets for bisect in `shoal.layout`; derived, so not compared.
    file_offsets: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "file_offsets", tuple(f.offset for f in self.files))

    def piece_hash(self, index: int) -> bytes:
        """The 20-byte SHA-1 of piece `index`; `IndexError` if out of range."""
        if not 0 <= index < self.num_pieces:
            raise IndexError(f"piece {index} out of range (0..{self.num_pieces - 1})")
        return self.piece_hashes[index * HASH_LENGTH : (index + 1) * HASH_LENGTH]

    def piece_size(self, index: int) -> int:
        """Length of piece `index` (only the last may be short); `IndexError` if out of range."""
        if not 0 <= index < self.num_pieces:
            raise IndexError(f"piece {index} out of range (0..{self.num_pieces - 1})")
        if index == self.num_pieces - 1:
            return self.total_length - index * self.piece_length
        return self.piece_length


@dataclass(frozen=True, slots=True)
class Metainfo:
    """A parsed .torrent file: the info dict plus optional top-level keys."""

    info: InfoDict
    announce: str | None
    announce_list: tuple[tuple[str, ...], ...]
    nodes: tuple[tuple[str, int], ...]  # BEP 5 bootstrap nodes
    comment: str | None
    created_by: str | None
    creation_date: int | None

    @property
    def info_hash(self) -> InfoHash:
        return self.info.info_hash


# ---- text and paths -----------------------------------------------------------------


def _text(raw: bytes) -> str:
    # Policy: UTF-8; undecodable bytes become U+FFFD so names stay readable and
    # deterministic (legacy ``encoding`` keys are ignored, as libtorrent does).
    return raw.decode("utf-8", errors="replace")


def _pick_text(d: dict[bytes, Bencoded], key: bytes, *, what: str) -> str:
    """`key` as text, preferring a well-typed ``key.utf-8`` variant when present."""
    alt = d.get(key + b".utf-8")
    if isinstance(alt, bytes):
        return _text(alt)
    return _text(get_bytes(d, key, what=what))


def check_component(name: str) -> str:
    """Return `name` if it is a safe single path component, else raise `DecodeError`.

    Refused: empty, only dots and spaces (``.``, ``..``, ``.. ``), ``/`` or ``\\``, C0
    controls (NUL included), a Windows drive prefix such as ``C:``, more than 255
    UTF-8 bytes. Windows reserved device names (``CON``, ``aux.c``) are legal on POSIX
    and occur in real torrents, so mapping them is left to a Windows storage backend.
    """
    # Windows drops trailing dots and spaces, so ".. " would act as ".." there: any
    # component made only of dots and spaces (including "", "." and "..") is refused.
    if not name.strip(". "):
        raise DecodeError(f"forbidden path component {name!r}")
    if "/" in name or "\\" in name:
        raise DecodeError(f"path separator inside component {name!r}")
    if _CONTROL.search(name):
        raise DecodeError(f"control character in path component {name!r}")
    if _DRIVE.match(name):
        raise DecodeError(f"drive prefix in path component {name!r}")
    if len(name.encode("utf-8", errors="surrogatepass")) > MAX_COMPONENT_BYTES:
        raise DecodeError(f"path component longer than {MAX_COMPONENT_BYTES} bytes")
    return name


def _file_path(entry: dict[bytes, Bencoded], index: int, seen: dict[bytes, str]) -> tuple[str, ...]:
    """Decode and check one file's path; `seen` memoises components (dirs repeat)."""
    raw = entry.get(b"path.utf-8")
    if not (isinstance(raw, list) and all(isinstance(c, bytes) for c in raw)):
        raw = entry.get(b"path")
    if not isinstance(raw, list):
        raise DecodeError(f"info.files[{index}]: 'path' must be a list")
    if not raw:
        raise DecodeError(f"info.files[{index}]: empty path")
    parts: list[str] = []
    for comp in raw:
        if not isinstance(comp, bytes):
            raise DecodeError(f"info.files[{index}]: path components must be strings")
        text = seen.get(comp)
        if text is None:
            text = seen[comp] = check_component(_text(comp))
        parts.append(text)
    return tuple(parts)


def _check_collisions(files: tuple[FileEntry, ...]) -> None:
    """Refuse exact duplicate paths and a file that is also another file's directory.

    Case-insensitive clashes are allowed: real torrents (the Linux kernel sources)
    contain ``xt_TCPMSS.c`` next to ``xt_tcpmss.c``. Pad files are never written,
    so they take no part (libtorrent emits several ``.pad/<n>`` with equal sizes).
    """
    paths: set[tuple[str, ...]] = set()
    dirs: set[tuple[str, ...]] = set()
    for f in files:
        if f.pad:
            continue
        if f.path in paths:
            raise DecodeError(f"duplicate file path {'/'.join(f.path)!r}")
        paths.add(f.path)
        dirs.update(f.path[:i] for i in range(1, len(f.path)))
    clash = paths & dirs
    if clash:
        raise DecodeError(f"path is both a file and a directory: {'/'.join(min(clash))!r}")


# ---- info dict ----------------------------------------------------------------------


def _piece_length(d: dict[bytes, Bencoded]) -> int:
    n = get_int(d, b"piece length", what="info")
    if n < MIN_PIECE_LENGTH or n > MAX_PIECE_LENGTH or n & (n - 1):
        raise DecodeError(
            f"piece length {n} is not a power of two in [{MIN_PIECE_LENGTH}, {MAX_PIECE_LENGTH}]"
        )
    return n


def _is_pad(entry: dict[bytes, Bencoded]) -> bool:
    # BEP 47: "attr" is a string of flag characters; "p" marks a pad file. A ".pad/"
    # path alone does not: a regular file may have that name. Other flags ("x", "h",
    # "l") are ignored; a symlink entry is stored as a plain file (links never made).
    attr = entry.get(b"attr", b"")
    if not isinstance(attr, bytes):
        raise DecodeError("'attr' must be a string")
    return b"p" in attr


def _multi_files(d: dict[bytes, Bencoded], name: str) -> tuple[FileEntry, ...]:
    raw = d[b"files"]
    if not isinstance(raw, list):
        raise DecodeError("info: 'files' must be a list")
    if not raw:
        raise DecodeError("info: 'files' is empty")
    if len(raw) > MAX_FILES:
        raise DecodeError(f"info: more than {MAX_FILES} files")
    out: list[FileEntry] = []
    seen: dict[bytes, str] = {}
    offset = 0
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise DecodeError(f"info.files[{i}] must be a dict")
        length = get_int(entry, b"length", what=f"info.files[{i}]")
        if length < 0:
            raise DecodeError(f"info.files[{i}]: negative length")
        path = (name, *_file_path(entry, i, seen))
        out.append(FileEntry(path, length, offset, _is_pad(entry)))
        offset += length
    files = tuple(out)
    _check_collisions(files)
    return files


def _info_from_dict(d: dict[bytes, Bencoded], raw: bytes) -> InfoDict:
    if b"pieces" not in d and (b"file tree" in d or b"meta version" in d):
        raise DecodeError("v2-only torrent (BEP 52): no v1 'pieces', not supported")
    name = check_component(_pick_text(d, b"name", what="info"))
    piece_length = _piece_length(d)
    pieces = get_bytes(d, b"pieces", what="info")
    if len(pieces) % HASH_LENGTH:
        raise DecodeError(f"info: 'pieces' length {len(pieces)} is not a multiple of 20")
    if (b"files" in d) == (b"length" in d):
        raise DecodeError("info: exactly one of 'files' and 'length' is required")
    if b"files" in d:
        files = _multi_files(d, name)
    else:
        length = get_int(d, b"length", what="info")
        if length < 0:
            raise DecodeError("info: negative length")
        files = (FileEntry((name,), length, 0),)
    total = files[-1].offset + files[-1].length
    if total <= 0:
        raise DecodeError("info: torrent has no data")
    num_pieces = -(-total // piece_length)
    if len(pieces) != HASH_LENGTH * num_pieces:
        raise DecodeError(
            f"info: {len(pieces) // HASH_LENGTH} piece hashes for {num_pieces} pieces"
        )
    # BEP 27: "private=1"; any other integer means public.
    private = d.get(b"private", 0)
    if not isinstance(private, int):
        raise DecodeError("info: 'private' must be an integer")
    return InfoDict(
        name=name,
        piece_length=piece_length,
        piece_hashes=pieces,
        files=files,
        private=private == 1,
        multi_file=b"files" in d,
        raw=raw,
        info_hash=InfoHash(hashlib.sha1(raw).digest()),
        total_length=total,
        num_pieces=num_pieces,
    )


def parse_info(raw: bytes) -> InfoDict:
    """Parse and validate a bencoded info dict (also a BEP 9 metadata payload).

    Key order is not enforced: the info-hash is over `raw` as given.

    Raises:
        DecodeError: malformed bencode or any violation of the policy above.
    """
    raw = bytes(raw)
    return _info_from_dict(decode_dict(raw, strict=False), raw)


# ---- whole .torrent -----------------------------------------------------------------


def _opt_text(d: dict[bytes, Bencoded], key: bytes) -> str | None:
    # Optional, non-security keys of the wrong type are ignored rather than fatal.
    for k in (key + b".utf-8", key):
        v = d.get(k)
        if isinstance(v, bytes):
            return _text(v)
    return None


def _announce_list(v: Bencoded | None) -> tuple[tuple[str, ...], ...]:
    # BEP 12: a list of tiers, each a list of URLs; malformed entries are skipped.
    if not isinstance(v, list):
        return ()
    tiers = (
        tuple(_text(u) for u in tier if isinstance(u, bytes))
        for tier in v
        if isinstance(tier, list)
    )
    return tuple(t for t in tiers if t)


def _nodes(v: Bencoded | None) -> tuple[tuple[str, int], ...]:
    # BEP 5: "nodes = [["<host>", <port>], ["<host>", <port>], ...]"; bad pairs skipped.
    if not isinstance(v, list):
        return ()
    out: list[tuple[str, int]] = []
    for item in v:
        if isinstance(item, list) and len(item) == 2:
            host, port = item
            if isinstance(host, bytes) and host and isinstance(port, int) and 0 < port < 65536:
                out.append((_text(host), port))
    return tuple(out)


def parse_metainfo(data: bytes) -> Metainfo:
    """Parse a .torrent file.

    Raises:
        DecodeError: malformed bencode, no ``info`` dict, or an invalid info dict.
    """
    top, raw_info = decode_with_span(data, b"info")
    info = top.get(b"info")
    if raw_info is None or not isinstance(info, dict):
        raise DecodeError("metainfo: 'info' must be a dict")
    date = top.get(b"creation date")
    return Metainfo(
        info=_info_from_dict(info, raw_info),
        announce=_opt_text(top, b"announce"),
        announce_list=_announce_list(top.get(b"announce-list")),
        nodes=_nodes(top.get(b"nodes")),
        comment=_opt_text(top, b"comment"),
        created_by=_opt_text(top, b"created by"),
        creation_date=date if isinstance(date, int) else None,
    )


def build_metainfo(
    info_raw: bytes,
    *,
    comment: str | None = None,
    created_by: str | None = None,
    creation_date: int | None = None,
    nodes: tuple[tuple[str, int], ...] | list[tuple[str, int]] = (),
) -> bytes:
    """Wrap a bencoded info dict into a .torrent, keeping `info_raw` byte-for-byte.

    Raises:
        DecodeError: `info_raw` is not a valid info dict.
    """
    parse_info(info_raw)
    fields: dict[bytes, bytes] = {b"info": bytes(info_raw)}
    if comment is not None:
        fields[b"comment"] = encode(comment.encode("utf-8"))
    if created_by is not None:
        fields[b"created by"] = encode(created_by.encode("utf-8"))
    if creation_date is not None:
        fields[b"creation date"] = encode(creation_date)
    if nodes:
        fields[b"nodes"] = encode([[h.encode("utf-8"), p] for h, p in nodes])
    # Keys sorted bytewise (BEP 3) with the info value spliced in verbatim.
    body = b"".join(encode(k) + fields[k] for k in sorted(fields))
    return b"d" + body + b"e"
