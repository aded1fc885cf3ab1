"""The per-party surface every protocol offers: a steppable machine over messages.

A :class:`Machine` is one party's side of one protocol session. It does no I/O: the driver
(:mod:`tmpc.local` with every party in one process, or a node over the network) calls
:meth:`Machine.start` once, hands it every message addressed to it with
:meth:`Machine.receive`, and sends whatever the two return. When :attr:`Machine.done` is
true, :attr:`Machine.result` holds the output. Randomness is a constructor argument
(``rand(k)`` returns ``k`` random bytes), so a machine is deterministic given it.

:class:`RoundMachine` implements the bookkeeping once for protocols made of numbered rounds
in which every other participant sends this party exactly one message per round (a broadcast
or a message addressed to it):

- a message from a non-participant, from itself, addressed to another party, or for a round
  the protocol does not have raises :class:`~tmpc.errors.ProtocolError` naming the sender;
- an identical copy of a message already received is dropped (transports re-send);
  a *different* second message for the same round is equivocation and names the sender;
- messages of a later round are buffered until the earlier rounds are complete, so
  reordering by the network changes nothing;
- when round ``r`` is complete, :meth:`RoundMachine._on_round` gets every participant's
  payload for it and returns the next round's messages (or sets the result).

Public round state: :meth:`RoundMachine.public_state` returns a :class:`PublicState`, which
serialises to JSON and back: the protocol, the parties, the current round, every broadcast
payload sent or received so far and, for point-to-point messages, only who has sent one. It
holds nothing secret (point-to-point payloads may carry encrypted or pairwise secrets, so
their content is never in it), and it cannot rebuild a machine: one-time secret state (a
nonce, presigning state) exists once, in memory, and a machine that lost it is never restored
(a node marks such a session lost).

Party ids are the Shamir identifiers ``1..n`` everywhere at this level; a machine over a
protocol that numbers parties from 0 (ChillDKG, BIP445 blame) converts at its edge, so every
``culprits`` tuple a machine raises holds 1-based party ids.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tmpc.errors import ParameterError, ProtocolError, StateError
from tmpc.ids import MAX_PARTY_ID

__all__ = [
    "BroadcastMismatchError",
    "Machine",
    "Message",
    "PublicState",
    "RandBytes",
    "RoundMachine",
    "transcript_hash",
]

RandBytes = Callable[[int], bytes]

#: Largest payload a machine accepts in one message (a 255-party ChillDKG round-1 message on
#: secp256k1 is about 16 KiB; DKLs23 setup messages are the largest, about 1.1 MiB).
MAX_PAYLOAD = 8 << 20


class BroadcastMismatchError(ProtocolError):
    """Parties saw different versions of one round's broadcasts (an echo check failed).

    A machine alone cannot tell who equivocated, so ``culprits`` is empty; the node finds
    the sender by comparing the signed envelopes its peers received (each is signed by its
    sender, so two different ones for one round prove the equivocation)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ())


@dataclass(frozen=True, slots=True)
class Message:
    """One protocol message of a session.

    ``round`` is the protocol's round number (1-based, as in its spec), ``sender`` and
    ``recipient`` are party ids (``recipient`` None: a broadcast to every other participant),
    ``payload`` the protocol's own encoding of the round's message. Session, wallet and
    protocol are bound by the envelope that carries it (:mod:`tmpc.wire`).
    """

    round: int
    sender: int
    recipient: int | None
    payload: bytes

    def __repr__(self) -> str:  # payloads may be large; never print them
        to = "all" if self.recipient is None else str(self.recipient)
        return f"Message(round={self.round}, {self.sender}->{to}, {len(self.payload)} bytes)"


@dataclass(frozen=True)
class PublicState:
    """The public round state of one party's machine (see the module docstring).

    ``broadcasts[r][i]`` is party ``i``'s round-``r`` broadcast payload (this party's own
    included); ``arrived[r]`` lists the peers whose round-``r`` message (broadcast or
    point to point) has arrived, for the rounds not processed yet."""

    protocol: str
    me: int
    participants: tuple[int, ...]
    round: int
    done: bool
    failed: bool
    broadcasts: dict[int, dict[int, bytes]] = field(default_factory=dict)
    arrived: dict[int, tuple[int, ...]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """As a JSON object (payloads in hex, rounds and ids as strings in the maps)."""
        return {
            "protocol": self.protocol,
            "me": self.me,
            "participants": list(self.participants),
            "round": self.round,
            "done": self.done,
            "failed": self.failed,
            "broadcasts": {
                str(r): {str(i): p.hex() for i, p in sorted(by.items())}
                for r, by in sorted(self.broadcasts.items())
            },
            "arrived": {str(r): list(ids) for r, ids in sorted(self.arrived.items())},
        }

    @classmethod
    def from_json(cls, doc: Any) -> PublicState:
        """Parse :meth:`to_json`'s output; raises :class:`ParameterError` if malformed."""
        try:
            return cls(
                protocol=str(doc["protocol"]),
                me=int(doc["me"]),
                participants=tuple(int(i) for i in doc["participants"]),
                round=int(doc["round"]),
                done=bool(doc["done"]),
                failed=bool(doc["failed"]),
                broadcasts={
                    int(r): {int(i): bytes.fromhex(p) for i, p in by.items()}
                    for r, by in doc["broadcasts"].items()
                },
                arrived={int(r): tuple(int(i) for i in ids) for r, ids in doc["arrived"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ParameterError("not a machine's public state") from None


class Machine(ABC):
    """One party's side of one protocol session (see the module docstring)."""

    #: Protocol name, bound into envelopes (e.g. ``"frost-sign"``).
    protocol: ClassVar[str]

    @abstractmethod
    def start(self) -> list[Message]:
        """Begin the session; returns the first round's messages. Call once."""

    @abstractmethod
    def receive(self, msg: Message) -> list[Message]:
        """Take one message addressed to this party; returns the messages to send now.

        Raises :class:`~tmpc.errors.ProtocolError` naming the sender of an invalid message,
        and :class:`~tmpc.errors.StateError` once the machine failed (a machine may drop, or
        refuse with :class:`~tmpc.errors.StateError`, a message arriving after it is done)."""

    @property
    @abstractmethod
    def done(self) -> bool:
        """True once :attr:`result` is available."""

    @property
    @abstractmethod
    def result(self) -> object:
        """The protocol's output; raises :class:`~tmpc.errors.StateError` before it is done."""

    @property
    @abstractmethod
    def me(self) -> int:
        """This party's id."""

    @property
    @abstractmethod
    def participants(self) -> tuple[int, ...]:
        """The ids of every party of this session, sorted, this one included."""


class RoundMachine(Machine):
    """A :class:`Machine` over numbered rounds, one message per peer per round.

    Subclasses set :attr:`protocol` and :attr:`rounds`, implement :meth:`_start` (returns the
    round-1 messages) and :meth:`_on_round` (gets round ``r``'s payloads, one per other
    participant, and returns round ``r+1``'s messages; after the last round it calls
    :meth:`_finish`). Any :class:`~tmpc.errors.TmpcError` a hook raises fails the machine:
    later calls raise :class:`~tmpc.errors.StateError`.
    """

    #: Number of rounds in which this party receives messages.
    rounds: ClassVar[int]
    #: Whether a message arriving after the machine is done raises :class:`StateError`
    #: (True) or is dropped as a late copy (False).
    refuse_after_done: ClassVar[bool] = False

    def __init__(self, me: int, participants: Sequence[int]) -> None:
        ids = tuple(participants)
        if len(set(ids)) != len(ids) or ids != tuple(sorted(ids)):
            raise ParameterError("participants must be distinct and sorted")
        if any(
            not isinstance(i, int) or isinstance(i, bool) or not 1 <= i <= MAX_PARTY_ID for i in ids
        ):
            raise ParameterError(f"participant ids are integers from 1 to {MAX_PARTY_ID}")
        if me not in ids:
            raise ParameterError(f"party {me} is not a participant of this session")
        self._me = me
        self._participants = ids
        self._peers = tuple(i for i in ids if i != me)
        self._round = 0  # the round whose messages we are collecting; 0 before start()
        self._inbox: dict[int, dict[int, bytes]] = {}
        self._broadcasts: dict[int, dict[int, bytes]] = {}
        self._result: object = None
        self._done = False
        self._failed = False

    @property
    def me(self) -> int:
        """This party's id."""
        return self._me

    @property
    def participants(self) -> tuple[int, ...]:
        """Every party of the session, sorted."""
        return self._participants

    @property
    def peers(self) -> tuple[int, ...]:
        """Every other party of the session, sorted."""
        return self._peers

    @property
    def round(self) -> int:
        """The round whose messages this party is waiting for (0 before start)."""
        return self._round

    @property
    def done(self) -> bool:
        """True once :attr:`result` is available."""
        return self._done

    @property
    def result(self) -> object:
        """The protocol's output; raises :class:`StateError` before it is done."""
        if not self._done:
            raise StateError(f"{self.protocol}: the session is not finished")
        return self._result

    def public_state(self) -> PublicState:
        """This party's public round state (see :class:`PublicState`)."""
        return PublicState(
            protocol=self.protocol,
            me=self._me,
            participants=self._participants,
            round=self._round,
            done=self._done,
            failed=self._failed,
            broadcasts={r: dict(by) for r, by in self._broadcasts.items()},
            arrived={r: tuple(sorted(box)) for r, box in self._inbox.items()},
        )

    def _record_sent(self, out: list[Message]) -> list[Message]:
        for msg in out:
            if msg.recipient is None:
                self._broadcasts.setdefault(msg.round, {})[msg.sender] = msg.payload
        return out

    def missing(self) -> tuple[int, ...]:
        """The peers whose message for the current round has not arrived (for timeouts)."""
        if self._done or self._round == 0:
            return ()
        got = self._inbox.get(self._round, {})
        return tuple(p for p in self._peers if p not in got)

    def _finish(self, result: object) -> None:
        self._result = result
        self._done = True

    def _check_live(self) -> None:
        if self._failed:
            raise StateError(f"{self.protocol}: the session has failed")
        if self._done:
            raise StateError(f"{self.protocol}: the session is finished")

    def start(self) -> list[Message]:
        """Begin the session; returns the round-1 messages."""
        if self._round != 0 or self._failed:
            raise StateError(f"{self.protocol}: start() called twice")
        try:
            out = self._start()
        except BaseException:
            self._failed = True
            raise
        self._round = 1
        return self._record_sent(out + self._drain())

    def receive(self, msg: Message) -> list[Message]:
        """Take one message; returns what to send now (see the class docstring)."""
        if self._failed:
            raise StateError(f"{self.protocol}: the session has failed")
        if self._done and self.refuse_after_done:
            raise StateError(f"{self.protocol}: the session is finished")
        s = msg.sender
        if s not in self._peers:
            # The envelope layer only delivers messages from cluster members, so a sender
            # outside the session is a member that sent where it should not.
            culprits = (s,) if isinstance(s, int) and s >= 1 else ()
            raise ProtocolError(
                f"{self.protocol}: message from a party not in this session", culprits
            )
        if msg.recipient is not None and msg.recipient != self._me:
            raise ProtocolError(f"{self.protocol}: party {s} sent a message not meant for us", (s,))
        if not isinstance(msg.round, int) or not 1 <= msg.round <= self.rounds:
            raise ProtocolError(f"{self.protocol}: party {s} sent a message for no round", (s,))
        if not isinstance(msg.payload, bytes) or len(msg.payload) > MAX_PAYLOAD:
            raise ProtocolError(f"{self.protocol}: party {s} sent an oversized payload", (s,))
        if self._done or msg.round < self._round:
            # A late duplicate of a round already processed: identical copies are harmless.
            return []
        box = self._inbox.setdefault(msg.round, {})
        prior = box.get(s)
        if prior is not None:
            if prior == msg.payload:
                return []
            raise ProtocolError(
                f"{self.protocol}: party {s} sent two different messages for round {msg.round}",
                (s,),
            )
        box[s] = msg.payload
        if msg.recipient is None:
            self._broadcasts.setdefault(msg.round, {})[s] = msg.payload
        if self._round == 0:
            return []  # buffered until start()
        return self._record_sent(self._drain())

    def _drain(self) -> list[Message]:
        out: list[Message] = []
        while not self._done:
            box = self._inbox.get(self._round, {})
            if len(box) < len(self._peers):
                break
            r = self._round
            payloads = {p: box[p] for p in self._peers}
            try:
                out.extend(self._on_round(r, payloads))
            except BaseException:
                self._failed = True
                raise
            self._inbox.pop(r, None)
            self._round = r + 1
            if r == self.rounds and not self._done:
                self._failed = True
                raise StateError(f"{self.protocol}: the last round produced no result")
        return out

    def _broadcast(self, payload: bytes) -> list[Message]:
        """Round ``self.round + 1``'s (or round 1's before start) broadcast of ``payload``."""
        return [Message(self._round + 1, self._me, None, payload)]

    def _direct(self, payloads: dict[int, bytes]) -> list[Message]:
        """The next round's point-to-point messages, one per peer."""
        if set(payloads) != set(self._peers):
            raise ParameterError("one message per peer")
        return [Message(self._round + 1, self._me, p, payloads[p]) for p in self._peers]

    @abstractmethod
    def _start(self) -> list[Message]:
        """Round-1 messages (use :meth:`_broadcast` / :meth:`_direct`)."""

    @abstractmethod
    def _on_round(self, r: int, payloads: dict[int, bytes]) -> list[Message]:
        """Process round ``r`` (payload of every peer); return round ``r+1``'s messages."""


def transcript_hash(tag: str, payloads: dict[int, bytes]) -> bytes:
    """SHA-256 over ``tag`` and every ``(party id, payload)`` pair in id order, length-prefixed.

    Machines put it into their next round to check that every party saw the same broadcast
    (echo), since a sender could send different "broadcasts" to different peers."""
    h = hashlib.sha256()
    h.update(len(tag).to_bytes(2, "big") + tag.encode())
    for p in sorted(payloads):
        h.update(p.to_bytes(4, "big") + len(payloads[p]).to_bytes(4, "big") + payloads[p])
    return h.digest()
