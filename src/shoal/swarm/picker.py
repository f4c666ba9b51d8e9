"""`Picker`: which blocks to request from which peer (rarest first, priorities, endgame).

Theory of operation
-------------------
The picker is pure policy: peers' piece sets and request outcomes go in as method
calls, `Block` requests come out. It never sees bytes on the wire or a clock.

Order. A peer is offered blocks by the deterministic chain (as in anacrolix's
request-strategy order): **priority** (higher first; 0 = never) → **partial pieces
first** (a piece with blocks already requested or received, so pieces complete and
can be verified and shared sooner) → **rarest availability** (BEP 3, "rarest first":
fewest connected peers have it) → a **random tie-break** from the injected rng. In
sequential mode availability and the random draw are dropped and the chain is
priority → lowest index, partial or not, which is what streaming playback wants.

Representation. Piece sets are Python ints used as bitsets in the wire layout
(``int.from_bytes(bitfield, "big")``: piece ``i`` is bit ``L - 1 - i`` for
``L = 8 * ceil(n / 8)``), so "lowest index in a set" is ``L - x.bit_length()``, O(1).
Availability is kept per piece (``_avail``) and also as bucket bitsets
(``_buckets[a]`` = pieces that exactly ``a`` non-seed peers have). Picking a fresh
piece for a peer is then a few whole-set ANDs that run in C: ``peer & fresh &
level & bucket[a]`` for increasing ``a`` until one is non-empty, and a random start
point inside it. A ``have`` moves one bit between adjacent buckets; a whole bitfield
(or a peer leaving) moves sets bucket by bucket, O(buckets) big-int operations. Peers
with every piece (``have_all`` or a full bitfield) are only counted in ``_seeds``: they
add the same amount to every piece, which changes no order.

Endgame. Outside endgame a block is given to at most one peer. Once no wanted piece
has a free block left (every remaining block is requested or received), blocks in
flight are offered again to other peers, up to ``endgame_max_owners`` requests per
block, fewest owners first. The first arrival wins: `block_received` returns the
other (peer, block) requests to ``cancel`` (BEP 3, "cancel": "generally only sent
towards the end of a download, during what's called 'endgame mode'").

Layout. The availability input (`peer_has`, `peer_bitfield`, `peer_have_all`,
`peer_have_none`) and the bucket bookkeeping live in `swarm.availability`, a mixin of
`Picker`; this module holds the picking and the request outcomes.

Errors. Methods fed by remote input (`peer_has`, `block_received`) raise only
`RemoteProtocolError`; a wrong-sized `Bitfield` or an out-of-range local call is a
caller bug and raises `ValueError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, final

from ..errors import RemoteProtocolError
from .availability import P, PeerPieces, PieceAvailability
from .bitfield import Bitfield
from .blocks import BLOCK_SIZE, Block, PieceBlocks
from .priorities import DEFAULT_PRIORITY, MAX_PRIORITY

if TYPE_CHECKING:
    import random
    from collections.abc import Iterable, Sequence

__all__ = ["Picker", "PickerStatistics"]

# In endgame, at most this many peers hold a request for the same block: enough to
# route around one or two slow peers without spending the whole swarm's bandwidth
# on the last few blocks.
DEFAULT_ENDGAME_MAX_OWNERS: Final = 3


def _bits_from_flags(flags: bytes, padded_len: int) -> int:
    """Bitset (wire layout) of the positions where `flags` holds b"1"."""
    if not flags:
        return 0
    return int(flags + b"0" * (padded_len - len(flags)), 2)


@final
@dataclass(frozen=True, slots=True)
class PickerStatistics:
    """A snapshot of download progress (trio-style ``statistics()``)."""

    pieces_left: int  #: wanted pieces not yet verified
    bytes_left: int  #: their size in bytes
    partial_pieces: int  #: pieces with blocks requested or received
    peers: int  #: peers with known piece sets, seeds included
    seeds: int
    in_endgame: bool


@final
class Picker(PieceAvailability[P]):
    """Block selection for one torrent; `P` is any hashable peer handle."""

    def __init__(
        self,
        num_pieces: int,
        piece_length: int,
        total_length: int,
        rng: random.Random,
        *,
        have: Bitfield | None = None,
        priorities: Sequence[int] | None = None,
        sequential: bool = False,
        endgame_max_owners: int = DEFAULT_ENDGAME_MAX_OWNERS,
    ) -> None:
        if piece_length <= 0 or total_length < 0 or num_pieces != -(-total_length // piece_length):
            raise ValueError(f"{num_pieces} pieces of {piece_length} do not hold {total_length}")
        if endgame_max_owners < 1:
            raise ValueError("endgame_max_owners must be at least 1")
        self.num_pieces = num_pieces
        self.piece_length = piece_length
        self.total_length = total_length
        self.sequential = sequential
        self.endgame_max_owners = endgame_max_owners
        self._rng = rng
        self._nbytes = (num_pieces + 7) // 8
        self._L = 8 * self._nbytes
        self._all = _bits_from_flags(b"1" * num_pieces, self._L)
        self._have = have.copy() if have is not None else Bitfield(num_pieces)
        if self._have.num_pieces != num_pieces:
            raise ValueError("have bitfield has the wrong number of pieces")
        self._avail = [0] * num_pieces  # non-seed peers having each piece
        self._buckets = [self._all]  # _buckets[a]: pieces with _avail == a
        self._fresh_in = [0]  # _fresh_in[a]: how many fresh pieces _buckets[a] holds
        self._seeds = 0
        self._peers: dict[P, PeerPieces[P]] = {}
        self._partials: dict[int, PieceBlocks[P]] = {}
        self._open: set[int] = set()  # partial, wanted, with a free block
        self._tiebreak: dict[int, float] = {}  # random tie-break of each partial piece
        self._prio = bytearray([DEFAULT_PRIORITY]) * num_pieces
        self._set_all_priorities(priorities if priorities is not None else self._prio)

    # ---- geometry ----------------------------------------------------------------

    def piece_size(self, index: int) -> int:
        """Bytes in piece `index` (the last piece may be short)."""
        if index == self.num_pieces - 1:
            return self.total_length - index * self.piece_length
        return self.piece_length

    # ---- priorities --------------------------------------------------------------

    def _set_all_priorities(self, priorities: Sequence[int]) -> None:
        if len(priorities) != self.num_pieces:
            raise ValueError("one priority per piece")
        if any(not 0 <= p <= MAX_PRIORITY for p in priorities):
            raise ValueError(f"priorities must be in 0..{MAX_PRIORITY}")
        self._prio = bytearray(priorities)
        self._levels: dict[int, int] = {}
        for level in set(self._prio) - {0}:
            table = bytes(48 + (b == level) for b in range(256))
            self._levels[level] = _bits_from_flags(bytes(self._prio.translate(table)), self._L)
        self._recompute_wanted()

    def _recompute_wanted(self) -> None:
        wanted = 0
        for mask in self._levels.values():
            wanted |= mask
        have = int.from_bytes(self._have.to_bytes(), "big")
        partial = 0
        for i in self._partials:
            partial |= self._bit(i)
        self._needed = wanted & ~have  # what `interesting` tests peers against
        self._fresh = wanted & ~have & ~partial
        self._is_fresh = bytearray(self.num_pieces)
        for i in Bitfield.from_bytes(self._fresh.to_bytes(self._nbytes, "big"), self.num_pieces):
            self._is_fresh[i] = 1
        self._count_fresh()
        self._left_pieces = (wanted & ~have).bit_count()
        left_bytes = self._left_pieces * self.piece_length
        last = self.num_pieces - 1
        if last >= 0 and self._prio[last] and not self._have.test(last):
            left_bytes -= self.piece_length - self.piece_size(last)
        self._left_bytes = left_bytes
        self._open = {i for i, pb in self._partials.items() if self._prio[i] and pb.has_free()}

    def set_priorities(self, priorities: Sequence[int]) -> None:
        """Replace every piece priority (0 = skip ... 7); see `file_piece_priorities`.

        Requests already handed out for pieces now at 0 stay valid; no new ones follow.
        """
        self._set_all_priorities(priorities)

    def set_piece_priority(self, index: int, priority: int) -> None:
        """Change one piece's priority (cheaper than `set_priorities` for a few pieces)."""
        if not 0 <= priority <= MAX_PRIORITY:
            raise ValueError(f"priority {priority} outside 0..{MAX_PRIORITY}")
        self._check_local(index)
        old = self._prio[index]
        if old == priority:
            return
        bit = self._bit(index)
        self._prio[index] = priority
        if old:
            self._levels[old] ^= bit
            if not self._levels[old]:
                del self._levels[old]
        if priority:
            self._levels[priority] = self._levels.get(priority, 0) | bit
        if not self._have.test(index) and (old == 0) != (priority == 0):
            self._needed ^= bit
            sign = 1 if priority else -1
            self._left_pieces += sign
            self._left_bytes += sign * self.piece_size(index)
        self._refresh(index)

    def priority(self, index: int) -> int:
        """Piece `index`'s priority, 0 (skip) .. 7."""
        return self._prio[index]

    def _check_local(self, index: int) -> None:
        if not 0 <= index < self.num_pieces:
            raise ValueError(f"piece {index} out of range 0..{self.num_pieces - 1}")

    # ---- peers -------------------------------------------------------------------

    def peer_left(self, peer: P) -> list[Block]:
        """`peer` disconnected: drop its pieces from availability, free its requests."""
        info = self._peers.get(peer)
        if info is None:
            return []
        released = self.peer_choked(peer)
        self._forget_pieces(info)
        del self._peers[peer]
        return released

    # ---- partial-piece bookkeeping -----------------------------------------------

    def _refresh(self, index: int) -> None:
        """Re-derive `index`'s fresh/open/partial membership after any change to it."""
        pb = self._partials.get(index)
        if pb is not None and pb.is_idle():
            del self._partials[index]
            del self._tiebreak[index]
            pb = None
        fresh = pb is None and self._wanted(index)
        if fresh != self._is_fresh[index]:  # big-int update only on a real change
            self._is_fresh[index] = fresh
            self._fresh ^= self._bit(index)
            self._fresh_in[self._avail[index]] += 1 if fresh else -1
        if pb is not None and self._prio[index] and pb.has_free():
            self._open.add(index)
        else:
            self._open.discard(index)

    def _partial(self, index: int) -> PieceBlocks[P]:
        pb = self._partials.get(index)
        if pb is None:
            pb = self._partials[index] = PieceBlocks(index, self.piece_size(index))
            self._tiebreak[index] = self._rng.random()
        return pb

    def _key(self, index: int) -> tuple[int, float, float]:
        if self.sequential:
            return (-self._prio[index], index, 0.0)
        return (-self._prio[index], self._avail[index], self._tiebreak[index])

    # ---- picking -----------------------------------------------------------------

    def pick_blocks(self, peer: P, count: int) -> list[Block]:
        """Up to `count` new requests to send to `peer`, best first (see module docstring).

        The blocks are recorded as requested by `peer`; report their fate with
        `block_received`, `block_rejected`, `request_timed_out` or `peer_choked`.
        """
        info = self._peers.get(peer)
        if info is None or count <= 0:
            return []
        out: list[Block] = []
        open_by_level: dict[int, list[int]] = {}
        for i in self._open:
            if info.has(i):
                open_by_level.setdefault(self._prio[i], []).append(i)
        levels = sorted(open_by_level.keys() | self._levels.keys(), reverse=True)
        for level in levels:
            partials = open_by_level.get(level, [])
            if self.sequential:
                self._pick_sequential(peer, info, level, partials, count, out)
            else:
                for i in sorted(partials, key=self._key):
                    self._take(peer, info, self._partials[i], count, out)
                self._pick_fresh(peer, info, level, count, out)
            if len(out) >= count:
                return out
        if self._fresh == 0 and not self._open and self._left_pieces:
            self._pick_endgame(peer, info, count, out)
        return out

    def pick_blocks_in(self, peer: P, pieces: Iterable[int], count: int) -> list[Block]:
        """Like `pick_blocks`, but only from `pieces` (BEP 6 allowed-fast while choked).

        Partial pieces come first, then the rest in index order; no endgame duplicates.
        """
        info = self._peers.get(peer)
        if info is None or count <= 0:
            return []
        out: list[Block] = []
        usable = [i for i in pieces if 0 <= i < self.num_pieces and info.has(i) and self._wanted(i)]
        usable.sort(key=lambda i: (i not in self._partials, i))
        for i in usable:
            if len(out) >= count:
                break
            self._take(peer, info, self._partial(i), count, out)
        return out

    def _take(
        self, peer: P, info: PeerPieces[P], pb: PieceBlocks[P], count: int, out: list[Block]
    ) -> None:
        for n in pb.free_blocks(count - len(out)):
            pb.request(n, peer)
            info.requests.add((pb.index, n))
            out.append(pb.block(n))
        self._refresh(pb.index)

    def _candidates(self, info: PeerPieces[P], level: int) -> int:
        cand = info.as_int(self._all) & self._fresh
        if len(self._levels) > 1:
            cand &= self._levels.get(level, 0)
        return cand

    def _pick_fresh(
        self, peer: P, info: PeerPieces[P], level: int, count: int, out: list[Block]
    ) -> None:
        cand = self._candidates(info, level)
        L = self._L
        for bucket, fresh_in in zip(self._buckets, self._fresh_in, strict=True):
            if len(out) >= count or not cand:
                return
            if not fresh_in:  # skipped without a big-int operation
                continue
            rarest = cand & bucket
            while rarest and len(out) < count:
                # Random tie-break: the first piece at or after a random start index.
                start = L - self._rng.randrange(self.num_pieces)
                after = rarest ^ (rarest >> start << start)  # indices >= the start
                index = L - (after or rarest).bit_length()
                bit = self._bit(index)
                rarest ^= bit
                cand ^= bit
                self._take(peer, info, self._partial(index), count, out)

    def _pick_sequential(
        self,
        peer: P,
        info: PeerPieces[P],
        level: int,
        partials: list[int],
        count: int,
        out: list[Block],
    ) -> None:
        cand = self._candidates(info, level)
        for i in partials:
            cand |= self._bit(i)
        while cand and len(out) < count:
            index = self._L - cand.bit_length()
            cand ^= self._bit(index)
            self._take(peer, info, self._partial(index), count, out)

    def _pick_endgame(self, peer: P, info: PeerPieces[P], count: int, out: list[Block]) -> None:
        pieces = [
            i
            for i, pb in self._partials.items()
            if self._prio[i] and info.has(i) and not pb.is_complete()
        ]
        for i in sorted(pieces, key=self._key):
            pb = self._partials[i]
            for n in pb.endgame_blocks(peer, self.endgame_max_owners, count - len(out)):
                pb.request(n, peer)
                info.requests.add((i, n))
                out.append(pb.block(n))
            if len(out) >= count:
                return

    def in_endgame(self) -> bool:
        """Is every remaining wanted block requested or received?"""
        return self._fresh == 0 and not self._open and self._left_pieces > 0

    # ---- request outcomes --------------------------------------------------------

    def _locate(self, block: Block) -> tuple[PieceBlocks[P], int] | None:
        pb = self._partials.get(block.index)
        if pb is None:
            return None
        n = pb.block_number(block)
        return None if n is None else (pb, n)

    def block_received(self, peer: P, block: Block) -> list[tuple[P, Block]]:
        """A BEP 3 ``piece`` message delivered `block` from `peer`.

        Unrequested but valid blocks of wanted pieces are kept; duplicates are ignored.
        Call `piece_complete` afterwards to learn whether the piece is ready to hash.

        Returns:
            The other ``(peer, block)`` requests for this block, to be ``cancel``led.

        Raises:
            RemoteProtocolError: `block` is not a block of this torrent's 16 KiB grid.
        """
        index, begin, length = block.index, block.begin, block.length
        if not 0 <= index < self.num_pieces:
            raise RemoteProtocolError(f"block for piece {index} of {self.num_pieces}")
        # Once per block, so written out: one dict lookup finds the piece, and the
        # common case (a block we asked for, of a wanted partial piece) changes none of
        # the piece's fresh/open/partial memberships, so `_refresh` is skipped.
        pb = self._partials.get(index)
        size = self.piece_size(index) if pb is None else pb.size
        n, rem = divmod(begin, BLOCK_SIZE)
        if rem or not 0 <= begin < size or length != min(BLOCK_SIZE, size - begin):
            raise RemoteProtocolError(f"block {begin}+{length} not on the grid of piece {index}")
        info = self._peers.get(peer)
        if info is not None:
            info.requests.discard((index, n))
        if not self._wanted(index):
            if pb is not None:  # wanted no more, but requests were out: just unbook this one
                pb.release(n, peer)
                self._refresh(index)
            return []
        requested = pb is not None and pb.requested >> n & 1
        if pb is None:
            pb = self._partial(index)
        others = pb.receive(n, peer)
        if others is None:
            pb.release(n, peer)
            self._refresh(index)
            return []
        if not requested:
            self._refresh(index)  # an unrequested block: the piece may have left "open"
        if not others:
            return []
        for other in others:
            other_info = self._peers.get(other)
            if other_info is not None:
                other_info.requests.discard((index, n))
        return [(other, block) for other in others]

    def piece_complete(self, index: int) -> bool:
        """Has every block of `index` arrived, so it can be hash-checked?"""
        pb = self._partials.get(index)
        return pb is not None and pb.is_complete()

    def _release(self, peer: P, block: Block) -> bool:
        info = self._peers.get(peer)
        found = self._locate(block)
        if found is None:
            return False
        pb, n = found
        if info is not None:
            info.requests.discard((block.index, n))
        released = pb.release(n, peer)
        self._refresh(block.index)
        return released

    def block_rejected(self, peer: P, block: Block) -> bool:
        """BEP 6 ``reject_request``: `block` goes back to the pool. False if not outstanding."""
        return self._release(peer, block)

    def request_timed_out(self, peer: P, block: Block) -> bool:
        """`peer` was too slow with `block`: let other peers have it.

        A late arrival from `peer` is still accepted by `block_received`.
        """
        return self._release(peer, block)

    def peer_choked(self, peer: P) -> list[Block]:
        """`peer` choked us (BEP 3: requests are then discarded): free all its requests."""
        info = self._peers.get(peer)
        if info is None:
            return []
        released: list[Block] = []
        for index, n in sorted(info.requests):
            pb = self._partials[index]
            pb.release(n, peer)
            released.append(pb.block(n))
            self._refresh(index)
        info.requests.clear()
        return released

    def outstanding(self, peer: P) -> int:
        """Number of requests booked to `peer`."""
        info = self._peers.get(peer)
        return 0 if info is None else len(info.requests)

    # ---- verification ------------------------------------------------------------

    def piece_verified(self, index: int) -> list[tuple[P, Block]]:
        """Piece `index` passed its hash check (or was found on disk): we have it.

        Returns:
            Requests still out for the piece (possible if it was verified from another
            source while blocks were in flight), to be ``cancel``led.
        """
        self._check_local(index)
        if self._have.test(index):
            return []
        cancels: list[tuple[P, Block]] = []
        pb = self._partials.pop(index, None)
        if pb is not None:
            del self._tiebreak[index]
            for n, owners in sorted(pb.owners.items()):
                for owner in owners:
                    self._peers[owner].requests.discard((index, n))
                    cancels.append((owner, pb.block(n)))
        if self._prio[index]:
            self._left_pieces -= 1
            self._left_bytes -= self.piece_size(index)
            self._needed ^= self._bit(index)
        self._have.set(index)
        self._refresh(index)
        return cancels

    def piece_failed(self, index: int) -> set[P]:
        """Piece `index` failed its hash check: re-download it all.

        Returns:
            The peers that sent any of its blocks, for the caller to penalise.
        """
        self._check_local(index)
        pb = self._partials.get(index)
        if pb is None:
            return set()
        contributors = pb.reset()
        self._refresh(index)
        return contributors

    # ---- progress ----------------------------------------------------------------

    def have(self) -> Bitfield:
        """A copy of our verified pieces (for our own ``bitfield`` message)."""
        return self._have.copy()

    def has_piece(self, index: int) -> bool:
        """Have we verified piece `index`?"""
        return self._have.test(index)

    def is_complete(self) -> bool:
        """Is every wanted piece verified?"""
        return self._left_pieces == 0

    def wanted_left(self) -> int:
        """Bytes of wanted pieces not yet verified."""
        return self._left_bytes

    def interesting(self, peer: P) -> bool:
        """Does `peer` have a wanted piece we lack (should we be ``interested``)?"""
        info = self._peers.get(peer)
        if info is None:
            return False
        return bool(info.as_int(self._all) & self._needed)

    def statistics(self) -> PickerStatistics:
        """Progress counters for logs and UIs."""
        return PickerStatistics(
            pieces_left=self._left_pieces,
            bytes_left=self._left_bytes,
            partial_pieces=len(self._partials),
            peers=len(self._peers),
            seeds=self._seeds,
            in_endgame=self.in_endgame(),
        )

    def partial_pieces(self) -> Iterable[int]:
        """Pieces with blocks requested or received but not yet verified."""
        return self._partials.keys()
