"""ChillDKG as a steppable per-party machine, peer to peer, without a separate coordinator.

ChillDKG (:mod:`tmpc.protocols.dkg.chilldkg`) is written for participants that talk to one
untrusted coordinator. The draft allows running it without one:

    > If there is no dedicated coordinator, one of the participants can act as the
    > coordinator.

:class:`DkgMachine` goes one step further: every participant broadcasts its messages to every
other participant and runs the coordinator's steps itself. The coordinator's steps are
deterministic functions of the participants' messages, so every honest party that saw the same
messages computes the same ``cmsg1`` and ``cmsg2``. Trusting one's own coordinator costs
nothing, since the draft never trusts it anyway:

    > A faulty coordinator can force the DKG to fail but cannot negatively affect the
    > security of the DKG.

Message flow (two rounds of broadcasts)::

    round 1: pmsg1                                   (participant_step1)
             -> coordinator_step1 over all n pmsg1   (each party locally)
             -> participant_step2
    round 2: pmsg2 || echo                           (echo = hash of round 1 as seen here)
             -> coordinator_finalize over all n pmsg2 (each party locally)
             -> participant_finalize -> DKGResult

The echo is tmpc's addition. Without a coordinator a participant could send different
``pmsg1`` to different peers; CertEq would still make the session fail, but
``coordinator_finalize`` would then blame whichever *honest* peer's signature does not match
this party's transcript. Comparing the echo first turns that case into a
:class:`~tmpc.protocols.machine.BroadcastMismatchError` (nobody blamed here; the node finds
the equivocator from the signed envelopes), so, over authenticated channels, a ``culprits``
tuple from this machine names a party that really sent something invalid.

Party ids are 1-based (``me``, ``culprits``); ChillDKG's participant indices are 0-based and
are converted at this module's edge: party ``x`` is ChillDKG participant ``x - 1``, and ``x``
is the Shamir x-coordinate of its share.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import ClassVar

from tmpc.errors import (
    FaultyParticipantError,
    ParameterError,
    ProtocolError,
    StateError,
)
from tmpc.group.base import Group
from tmpc.ids import from_index, to_index
from tmpc.protocols.dkg import chilldkg
from tmpc.protocols.dkg.exceptions import (
    HostSeckeyError,
    UnknownFaultyParticipantOrCoordinatorError,
)
from tmpc.protocols.dkg.runner import DKGResult
from tmpc.protocols.machine import (
    BroadcastMismatchError,
    Message,
    RandBytes,
    RoundMachine,
    transcript_hash,
)

__all__ = ["DkgMachine"]

#: Length of the echo appended to the round-2 message (a SHA-256 transcript hash).
ECHO_LEN = 32


def _blame(err: ProtocolError) -> ProtocolError:
    """``err`` (culprits as ChillDKG's 0-based indices) with 1-based party ids."""
    if err.culprits:
        xs = tuple(from_index(i) for i in err.culprits)
        names = ", ".join(str(x) for x in xs)
        return FaultyParticipantError(f"chilldkg: {err} (party {names})", xs)
    # A coordinator fault: every party is its own coordinator, so no peer is to blame.
    return ProtocolError(f"chilldkg: {err}")


class DkgMachine(RoundMachine):
    """One participant of a ChillDKG session, run peer to peer (see the module docstring).

    Args:
        group: the target group of the shares (``tmpc.group.SECP256K1`` or ``ED25519``).
        hostseckey: this participant's 32-byte host secret key; **must** be kept after the
            session (with the recovery data it restores the output).
        hostpubkeys: the 33-byte host public keys of all ``n`` participants, in the session's
            order (party ``x`` is ``hostpubkeys[x - 1]``). Every party **must** hold authentic
            copies (compare :func:`~tmpc.protocols.dkg.chilldkg.params_hash` out of band).
        t: the threshold, ``1 <= t <= n``.
        me: this party's id, ``1..n``.
        rand: ``rand(k)`` returns ``k`` fresh random bytes (default
            :func:`secrets.token_bytes`); it supplies ``participant_step1``'s ``random`` and
            ``participant_step2``'s ``aux_rand``.

    Participants are ``1..n``. The :attr:`result` (and :attr:`output`) is this party's
    :class:`~tmpc.protocols.dkg.runner.DKGResult`, as :func:`~tmpc.protocols.dkg.run_dkg`
    returns it.

    Raises (constructor): :class:`~tmpc.errors.ParameterError` for a bad ``me``, threshold or
    host key list (the ChillDKG subclasses :class:`~tmpc.protocols.dkg.SessionParamsError`,
    :class:`~tmpc.protocols.dkg.HostSeckeyError`). While running:
    :class:`~tmpc.errors.FaultyParticipantError` naming (1-based) every party whose message
    does not parse, whose contribution is invalid, or who dealt this party an invalid share
    (after the investigation); :class:`~tmpc.protocols.machine.BroadcastMismatchError` if
    another party saw different round-1 messages; the
    :class:`~tmpc.protocols.machine.RoundMachine` errors for misrouted messages.
    """

    protocol: ClassVar[str] = "chilldkg"
    rounds: ClassVar[int] = 2
    refuse_after_done: ClassVar[bool] = True
    #: Tag of the echo: ``transcript_hash(echo_tag, round-1 payloads)`` (part of the wire
    #: format).
    echo_tag: ClassVar[str] = "tmpc/chilldkg/round1"

    def __init__(
        self,
        group: Group,
        hostseckey: bytes,
        hostpubkeys: Sequence[bytes],
        t: int,
        me: int,
        *,
        rand: RandBytes | None = None,
    ) -> None:
        keys = tuple(hostpubkeys)
        n = len(keys)
        if not isinstance(me, int) or isinstance(me, bool) or not 1 <= me <= n:
            raise ParameterError(f"chilldkg: party id must be in 1..{n}")
        if rand is not None and not callable(rand):
            raise ParameterError("chilldkg: rand must be a callable returning random bytes")
        super().__init__(me, range(1, n + 1))
        params = chilldkg.SessionParams(keys, t, group)
        chilldkg.params_validate(params)
        if chilldkg.hostpubkey_gen(hostseckey) != params.hostpubkeys[me - 1]:
            raise HostSeckeyError(f"host secret key does not match party {me}'s host public key")
        self._params = params
        self._hostseckey = bytes(hostseckey)
        self._rand: RandBytes = rand if rand is not None else secrets.token_bytes
        self._index = to_index(me)
        self._state1: chilldkg.ParticipantState1 | None = None
        self._pmsg1 = b""
        self._cstate: chilldkg.CoordinatorState | None = None
        self._state2: chilldkg.ParticipantState2 | None = None
        self._pmsg2 = b""
        self._echo = b""

    def __repr__(self) -> str:
        p = self._params
        return f"DkgMachine(me={self.me}, n={p.n}, t={p.t}, {p.group.name}, round={self.round})"

    @property
    def params(self) -> chilldkg.SessionParams:
        """The session parameters (host public keys, threshold, group)."""
        return self._params

    @property
    def output(self) -> DKGResult:
        """The typed :attr:`result`; raises :class:`~tmpc.errors.StateError` before done."""
        out = self.result
        if not isinstance(out, DKGResult):
            raise StateError("chilldkg: no output")
        return out

    def start(self) -> list[Message]:
        """Begin the session; returns the round-1 broadcast (see :meth:`RoundMachine.start`)."""
        if self.round == 0:
            self._open_inbox(1)
        return super().start()

    def _open_inbox(self, r: int) -> None:
        # RoundMachine._drain deletes round r's inbox once the round is processed, but the
        # inbox only exists after a message of round r arrived: with no peers (n = 1) it never
        # does. An empty one changes nothing otherwise.
        self._inbox.setdefault(r, {})

    # Round 1 ----------------------------------------------------------------------------------

    def _start(self) -> list[Message]:
        # ChillDKG, Overview of a ChillDKG Session:
        # > The participant invokes participant_step1 and sends the returned pmsg1 to the
        # > coordinator.
        # Every party is a coordinator here, so pmsg1 goes to every party.
        self._state1, self._pmsg1 = chilldkg.participant_step1(
            self._hostseckey, self._params, self._rand(32)
        )
        return self._broadcast(self._pmsg1)

    def _on_round(self, r: int, payloads: dict[int, bytes]) -> list[Message]:
        if r == 1:
            self._open_inbox(2)
            return self._round1(payloads)
        self._round2(payloads)
        return []

    def _round1(self, payloads: dict[int, bytes]) -> list[Message]:
        params = self._params
        # Lengths first, for every peer (cheap); coordinator_step1 then decodes every point and
        # blames the sender of the first message that does not parse.
        size = chilldkg.ParticipantMsg1.len_bytes(params.group, params.t, params.n)
        bad = [p for p in self.peers if len(payloads[p]) != size]
        if bad:
            names = ", ".join(str(p) for p in bad)
            raise FaultyParticipantError(
                f"chilldkg: malformed pmsg1 from party {names}", tuple(bad)
            )
        seen = {**payloads, self.me: self._pmsg1}
        pmsgs1 = [seen[x] for x in self.participants]
        # > The coordinator invokes coordinator_step1 and sends the returned cmsg1 to the
        # > participant.
        try:
            self._cstate, cmsg1 = chilldkg.coordinator_step1(pmsgs1, params)
        except ProtocolError as e:
            raise _blame(e) from None
        state1, self._state1 = self._state1, None
        if state1 is None:
            raise StateError("chilldkg: participant_step1 state missing")
        # > The participant invokes participant_step2 and sends the returned pmsg2 to the
        # > coordinator.
        try:
            self._state2, self._pmsg2 = chilldkg.participant_step2(
                self._hostseckey, state1, cmsg1, self._rand(32)
            )
        except UnknownFaultyParticipantOrCoordinatorError as e:
            # > The aborting participant can ask the coordinator for an auxiliary
            # > investigation message (generated via the coordinator_investigate function),
            # > which will allow the participant to blame a specific other participant (via
            # > the participant_investigate function).
            cinv = chilldkg.coordinator_investigate(pmsgs1, params)[self._index]
            try:
                chilldkg.participant_investigate(e, cinv)
            except ProtocolError as e2:
                raise _blame(e2) from None
        except ProtocolError as e:
            raise _blame(e) from None
        # The host secret key is not needed any more here (the caller keeps it for recovery).
        self._hostseckey = b""
        # Echo (tmpc): the round-1 broadcasts as this party saw them, its own included.
        self._echo = transcript_hash(self.echo_tag, seen)
        return self._broadcast(self._pmsg2 + self._echo)

    # Round 2 ----------------------------------------------------------------------------------

    def _round2(self, payloads: dict[int, bytes]) -> None:
        sig_len = chilldkg.CERT_SIG_LEN
        bad = [p for p in self.peers if len(payloads[p]) != sig_len + ECHO_LEN]
        if bad:
            names = ", ".join(str(p) for p in bad)
            raise FaultyParticipantError(
                f"chilldkg: malformed pmsg2 from party {names}", tuple(bad)
            )
        differ = [p for p in self.peers if payloads[p][sig_len:] != self._echo]
        if differ:
            names = ", ".join(str(p) for p in differ)
            raise BroadcastMismatchError(
                f"chilldkg: party {names} saw other round-1 messages than party {self.me}"
            )
        seen = {p: payloads[p][:sig_len] for p in self.peers}
        seen[self.me] = self._pmsg2
        pmsgs2 = [seen[x] for x in self.participants]
        cstate, state2 = self._cstate, self._state2
        if cstate is None or state2 is None:
            raise StateError("chilldkg: round-1 state missing")
        self._cstate = self._state2 = None
        # > The coordinator invokes coordinator_finalize and sends the returned cmsg2 to the
        # > participant.
        try:
            cmsg2, _, _ = chilldkg.coordinator_finalize(cstate, pmsgs2)
        except ProtocolError as e:
            raise _blame(e) from None
        # > The participant invokes participant_finalize, which ends the second phase.
        try:
            output, recovery_data = chilldkg.participant_finalize(state2, cmsg2)
        except ProtocolError as e:
            raise _blame(e) from None
        if output.secshare is None:
            raise StateError("chilldkg: a participant output has a secret share")
        self._finish(
            DKGResult(
                self._index,
                self.me,
                output.secshare,
                output.threshold_pubkey,
                output.pubshares,
                recovery_data,
            )
        )
