"""BEP 55 hole punching for one torrent: the relay, initiator and target decisions.

Theory of operation
-------------------
A peer behind a NAT or firewall cannot be dialled, but it can dial out. If a third
peer (the *relay*) is connected to both, it can introduce them: the *initiator* sends
the relay ``rendezvous(target)``; the relay sends ``connect(target)`` to the initiator
and ``connect(initiator)`` to the target; both then open a uTP connection to each
other at the same moment. Each side's outgoing SYN opens its own NAT for the other's
endpoint, so one of the two SYNs gets through (a *simultaneous open*).

`Holepunch` makes every decision; `HolepunchInputs`, a mixin of `TorrentEngine` (so
that the engine module stays about the swarm), feeds it and carries out what it
returns with the engine's peers, pool and commands:

* **Relay.** `relay(asker, target, peers, now)` returns the messages to send: two
  ``connect``\\ s, or one ``error`` with BEP 55's code: NoSuchPeer (port 0 or an
  unspecified/multicast address), NotConnected, NoSupport (the target did not
  advertise ut_holepunch), NoSelf (the asker named itself; libtorrent's reading of
  the code). A peer that did not advertise ut_holepunch is ignored ("MUST ignore").
  Each side is told the other's endpoint as seen by the relay: the connection's source
  address when it runs over uTP (the NAT mapping of the peer's uTP socket, which is
  what a hole punch needs), else its BEP 10 listen address.
* **Initiator.** PEX from a peer that supports ut_holepunch records it as a relay for
  every contact it flags 0x08 ("supports holepunch"). When a dial to such a contact
  fails, `rendezvous_for` picks a relay still connected; one attempt per target per
  `RENDEZVOUS_BACKOFF` s, doubled after each ``error``, and after `MAX_ERRORS` errors
  the target's relays are forgotten. A failed *hole-punch* dial never triggers another
  rendezvous (no loop).
* **Target (and initiator on connect).** `on_connect` says whether to dial the named
  endpoint over uTP: not when already connected to or dialling it, not when banned
  (BEP 55: "both of them MUST ignore the connect message silently"). While a punch
  dial is out, the address is in `punching`, and the engine resolves an inbound
  connection from it with the duplicate tie-break as if our dial had completed: both
  ends then keep the same one of the two connections.

Abuse bounds: every incoming ``rendezvous`` and ``connect`` spends a token of a
per-peer bucket (`RATE_BURST` tokens, one back every `RATE_REFILL` s); over the limit
the message is dropped silently. A relay could otherwise make us send floods of
messages, or a ``connect`` sender make us dial arbitrary addresses. The relay table is
capped at `MAX_TARGETS` contacts.

Pure: time comes in as ``now``; no I/O, no randomness.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol, final

from ..peer.extension import PexFlags
from ..peer.holepunch import (
    UT_HOLEPUNCH,
    HolepunchError,
    HolepunchMessage,
    HolepunchType,
    encode_holepunch,
)
from ..swarm.peer_pool import PeerSource
from . import commands as cmd

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from ..peer.extension import PexPeer
    from ..swarm.peer_pool import PeerPool
    from .peer import EnginePeer

__all__ = [
    "MAX_ERRORS",
    "MAX_TARGETS",
    "RATE_BURST",
    "RATE_REFILL",
    "RENDEZVOUS_BACKOFF",
    "Holepunch",
    "HolepunchInputs",
    "HolepunchStats",
    "punch_endpoint",
    "supports_holepunch",
]

Addr = tuple[str, int]

#: Holepunch messages a peer may send us in a burst, and seconds per token after that.
RATE_BURST: Final = 5
RATE_REFILL: Final = 10.0
#: Seconds between two rendezvous for one target (doubled per error received).
RENDEZVOUS_BACKOFF: Final = 60.0
#: A target whose relays answered this many errors is given up.
MAX_ERRORS: Final = 3
#: Contacts remembered with their relays (PEX may name 50 per message per peer).
MAX_TARGETS: Final = 1000


def supports_holepunch(peer: EnginePeer) -> bool:
    """Did the peer advertise ut_holepunch in its BEP 10 handshake?"""
    return peer.conn.peer_supports(UT_HOLEPUNCH)


def punch_endpoint(peer: EnginePeer) -> Addr:
    """Where the other side should send its SYNs to reach `peer` (module docstring)."""
    if peer.utp or peer.listen_addr is None:
        return peer.addr
    return peer.listen_addr


def _usable(addr: Addr) -> bool:
    try:
        ip = ipaddress.ip_address(addr[0])
    except ValueError:
        return False
    return 0 < addr[1] <= 0xFFFF and not ip.is_unspecified and not ip.is_multicast


@dataclass(slots=True)
class HolepunchStats:
    """Counters (`Holepunch.stats`)."""

    relayed: int = 0  #: rendezvous answered with two connects
    errors_sent: int = 0
    rendezvous_sent: int = 0
    errors_received: int = 0
    connects_received: int = 0
    punches: int = 0  #: uTP dials started because of a connect
    punch_failures: int = 0
    dropped: int = 0  #: messages ignored (rate limit, no support, not asked)


@final
class Holepunch:
    """BEP 55 state and decisions of one torrent (module docstring)."""

    def __init__(self) -> None:
        self._relays: dict[Addr, dict[int, None]] = {}  # target -> relay keys, in order
        self._next_try: dict[Addr, float] = {}
        self._errors: dict[Addr, int] = {}
        self._asked: dict[Addr, int] = {}  # target -> relay key of our last rendezvous
        self._tokens: dict[int, tuple[float, float]] = {}  # key -> (tokens, at)
        #: Addresses we are dialling because a relay said ``connect``.
        self.punching: set[Addr] = set()
        self.stats = HolepunchStats()

    # ---- rate limit ----------------------------------------------------------------

    def _allow(self, key: int, now: float) -> bool:
        tokens, at = self._tokens.get(key, (float(RATE_BURST), now))
        tokens = min(float(RATE_BURST), tokens + (now - at) / RATE_REFILL)
        if tokens < 1.0:
            self._tokens[key] = (tokens, now)
            self.stats.dropped += 1
            return False
        self._tokens[key] = (tokens - 1.0, now)
        return True

    # ---- one incoming message --------------------------------------------------------

    def receive(
        self,
        peer: EnginePeer,
        msg: HolepunchMessage,
        peers: Mapping[int, EnginePeer],
        now: float,
        *,
        can_dial: bool,
        busy: Callable[[Addr], bool],
    ) -> tuple[list[tuple[EnginePeer, HolepunchMessage]], Addr | None]:
        """A ``ut_holepunch`` message from `peer`: (messages to send, address to dial
        over uTP now or None). `busy(addr)`: connected to, dialling or banned it;
        `can_dial`: a connection slot is free and the torrent dials at all."""
        if msg.msg_type is HolepunchType.RENDEZVOUS:
            return self.relay(peer, msg.addr, list(peers.values()), now), None
        if msg.msg_type is HolepunchType.ERROR:
            self.on_error(peer, msg, now)
            return [], None
        punch = self.on_connect(peer, msg.addr, now, busy=not can_dial or busy(msg.addr))
        return [], msg.addr if punch else None

    # ---- relay ---------------------------------------------------------------------

    def relay(
        self, asker: EnginePeer, target: Addr, peers: Iterable[EnginePeer], now: float
    ) -> list[tuple[EnginePeer, HolepunchMessage]]:
        """Answer ``rendezvous(target)`` from `asker`: the messages to send, in order."""
        if not supports_holepunch(asker) or not self._allow(asker.key, now):
            if not supports_holepunch(asker):
                self.stats.dropped += 1
            return []
        code = HolepunchError.NONE
        found = None
        if not _usable(target):
            code = HolepunchError.NO_SUCH_PEER
        elif target in (asker.addr, asker.listen_addr):
            code = HolepunchError.NO_SELF
        else:
            found = next(
                (p for p in peers if p is not asker and target in (p.addr, p.listen_addr)), None
            )
            if found is None:
                code = HolepunchError.NOT_CONNECTED
            elif not supports_holepunch(found):
                code = HolepunchError.NO_SUPPORT
        if found is None or code:
            self.stats.errors_sent += 1
            # BEP 55: "The addr and addr_type fields in the error message MUST be the
            # same as in the rendezvous message."
            return [(asker, HolepunchMessage(HolepunchType.ERROR, target, code))]
        self.stats.relayed += 1
        return [
            (asker, HolepunchMessage(HolepunchType.CONNECT, target)),
            (found, HolepunchMessage(HolepunchType.CONNECT, punch_endpoint(asker))),
        ]

    # ---- initiator -----------------------------------------------------------------

    def learn(self, relay: EnginePeer, added: Iterable[PexPeer]) -> None:
        """PEX from `relay`: it is connected to each contact flagged "supports holepunch"."""
        if not supports_holepunch(relay):
            return
        for contact in added:
            if not contact.flags & PexFlags.HOLEPUNCH:
                continue
            relays = self._relays.get(contact.addr)
            if relays is None:
                if len(self._relays) >= MAX_TARGETS:
                    continue
                relays = self._relays[contact.addr] = {}
            relays[relay.key] = None

    def unlearn(self, relay_key: int, dropped: Iterable[Addr]) -> None:
        """PEX ``dropped`` from a relay: it is no longer connected to those."""
        for addr in dropped:
            relays = self._relays.get(addr)
            if relays is not None:
                relays.pop(relay_key, None)
                if not relays:
                    del self._relays[addr]

    def peer_left(self, key: int) -> None:
        """Connection `key` ended: it relays nothing any more."""
        self._tokens.pop(key, None)
        for addr in [a for a, relays in self._relays.items() if key in relays]:
            self.unlearn(key, (addr,))

    def rendezvous_for(
        self, addr: Addr, peers: Mapping[int, EnginePeer], now: float
    ) -> EnginePeer | None:
        """A dial to `addr` failed: the relay to send ``rendezvous(addr)`` to, if any."""
        if addr in self.punching:
            self.punching.discard(addr)  # the punch itself failed: no second round
            self.stats.punch_failures += 1
            return None
        if now < self._next_try.get(addr, float("-inf")):
            return None
        for key in self._relays.get(addr, ()):
            relay = peers.get(key)
            if relay is not None and supports_holepunch(relay):
                errors = self._errors.get(addr, 0)
                self._next_try[addr] = now + RENDEZVOUS_BACKOFF * 2**errors
                self._asked[addr] = key
                self._trim()
                self.stats.rendezvous_sent += 1
                return relay
        return None

    def on_error(self, relay: EnginePeer, msg: HolepunchMessage, now: float) -> None:
        """The relay could not introduce us: back off (or give the target up)."""
        addr = msg.addr
        if self._asked.get(addr) != relay.key:
            self.stats.dropped += 1  # not an answer to anything we asked
            return
        del self._asked[addr]
        self.stats.errors_received += 1
        errors = self._errors[addr] = self._errors.get(addr, 0) + 1
        self._trim()
        self._next_try[addr] = now + RENDEZVOUS_BACKOFF * 2**errors
        self.unlearn(relay.key, (addr,))  # this relay cannot help with it
        if errors >= MAX_ERRORS:
            self._relays.pop(addr, None)

    def _trim(self) -> None:
        """Keep the per-contact back-off records bounded (oldest first out)."""
        for table in (self._next_try, self._errors, self._asked):
            while len(table) > MAX_TARGETS:
                del table[next(iter(table))]

    def error_count(self, addr: Addr) -> int:
        return self._errors.get(addr, 0)

    # ---- target / initiator on connect ---------------------------------------------

    def on_connect(self, relay: EnginePeer, addr: Addr, now: float, *, busy: bool) -> bool:
        """``connect(addr)`` from `relay`: dial `addr` over uTP now?

        `busy`: we are connected to, dialling or banning `addr` (or cannot dial).
        """
        if not supports_holepunch(relay) or not self._allow(relay.key, now):
            if not supports_holepunch(relay):
                self.stats.dropped += 1
            return False
        self.stats.connects_received += 1
        self._asked.pop(addr, None)
        if busy or not _usable(addr) or addr in self.punching:
            return False
        self.punching.add(addr)
        self.stats.punches += 1
        return True

    def punch_connected(self, addr: Addr) -> None:
        """A connection to `addr` formed (either direction): the punch is over."""
        if addr in self.punching:
            self.punching.discard(addr)
        self._errors.pop(addr, None)
        self._next_try.pop(addr, None)


# ---- the engine side -----------------------------------------------------------------


class _Limits(Protocol):
    @property
    def max_peers(self) -> int: ...


class _Engine(Protocol):
    """What `HolepunchInputs` needs of the engine that mixes it in."""

    holepunch: Holepunch
    peers: dict[int, EnginePeer]
    pool: PeerPool
    _dialing: set[Addr]
    _commands: list[cmd.Command]
    _dirty: dict[int, None]

    @property
    def config(self) -> _Limits: ...

    def _connectable(self) -> bool: ...

    def _send_holepunch(self, peer: EnginePeer, msg: HolepunchMessage) -> None: ...

    def _connected_to(self, addr: Addr) -> bool: ...


class HolepunchInputs:
    """A mixin of `TorrentEngine` (which owns the state): carries out `Holepunch`'s
    decisions with the engine's peers, pool and command queue."""

    def _on_holepunch(self: _Engine, peer: EnginePeer, msg: HolepunchMessage, now: float) -> None:
        room = len(self.peers) + len(self._dialing) < self.config.max_peers

        def busy(addr: Addr) -> bool:
            return addr in self._dialing or self._connected_to(addr) or self.pool.is_banned(addr)

        replies, dial = self.holepunch.receive(
            peer, msg, self.peers, now, can_dial=room and self._connectable(), busy=busy
        )
        for to, out in replies:
            self._send_holepunch(to, out)
        if dial is not None and self.pool.mark_busy(dial, PeerSource.PEX):
            self._dialing.add(dial)
            self._commands.append(cmd.Dial(dial, utp=True))
        elif dial is not None:
            self.holepunch.punching.discard(dial)

    def _rendezvous(self: _Engine, addr: Addr, now: float) -> None:
        """A dial to `addr` failed: ask a relay to introduce us (BEP 55)."""
        if self._connected_to(addr):  # it dialled us meanwhile (the punch's other half)
            self.holepunch.punching.discard(addr)
            self.pool.mark_busy(addr, PeerSource.INCOMING)
            return
        relay = self.holepunch.rendezvous_for(addr, self.peers, now)
        if relay is not None:
            self._send_holepunch(relay, HolepunchMessage(HolepunchType.RENDEZVOUS, addr))

    def _send_holepunch(self: _Engine, peer: EnginePeer, msg: HolepunchMessage) -> None:
        peer.conn.send_extended(UT_HOLEPUNCH, encode_holepunch(msg))
        self._dirty[peer.key] = None

    def _connected_to(self: _Engine, addr: Addr) -> bool:
        return any(addr in (p.addr, p.listen_addr) for p in self.peers.values())
