"""DKLs23 threshold ECDSA as steppable per-party machines (:mod:`tmpc.protocols.machine`).

Each machine is one party's side of one session of :mod:`tmpc.protocols.ecdsa.dkls23`,
with the bookkeeping of :class:`~tmpc.protocols.machine.RoundMachine` (ordering, duplicates,
equivocation, misaddressed or foreign messages). Party ids are the Shamir identifiers
``1..n`` (DKLs23 numbers parties the same way), so every ``culprits`` tuple holds them.

- :class:`PairwiseSetupMachine` (``dkls23-setup``, 3 rounds): this party's
  :class:`~tmpc.protocols.ecdsa.dkls23.EcdsaPairwise`;
- :class:`PresignMachine` (``dkls23-presign``, 2 rounds, the paper's rounds 1-2): this
  signer's single-use :class:`~tmpc.protocols.ecdsa.dkls23.Presignature`;
- :class:`BatchPresignMachine` (``dkls23-presign-batch``, 2 rounds): ``count`` presignatures
  in one session, each presigning with its own session id, their messages carried together;
- :class:`OnlineSignMachine` (``dkls23-sign``, 1 round, the paper's round 3):
  ``(r, s, recovery_id)``;
- :class:`EcdsaSignMachine` (``dkls23-presign-sign``, 3 rounds, the paper's rounds 1-3):
  ``(r, s, recovery_id)``.

Setup and presigning messages are point to point (each payload is the ``to_bytes()`` of the
per-recipient message of :mod:`~tmpc.protocols.ecdsa.dkls23`); signature shares are
broadcasts (128 bytes).

Three rules every machine here keeps:

- **Validation before consumption.** The round functions of ``dkls23`` consume their
  one-time state (and mark multiplication sessions used) before they parse what they were
  handed. A machine therefore parses and checks every peer's payload of a round first:
  the message decodes strictly, is addressed from its sender to this party, and the
  multiplication message inside it has the right length and, where it holds points or
  scalars, decodes (points on the curve and not the identity, scalars below ``n``). Only
  then is the round function called, with the typed messages.
  A payload that fails raises :class:`~tmpc.errors.FaultyParticipantError` naming its sender.
- **No shared mutable pairwise state.** Presigning mutates the long-lived multiplication
  objects of :class:`EcdsaPairwise`: every multiplication session id is added to the record of
  used ids of :class:`~tmpc.protocols.ecdsa.multiply.MulSender` /
  :class:`~tmpc.protocols.ecdsa.multiply.MulReceiver`, and a failed pairwise check sets their
  ``failed`` flag. A presigning machine therefore never touches the object it is given: at
  construction it takes a private copy of the material for its co-signers (the used-id record
  and the ``failed`` flag included), so concurrent sessions over one stored setup never share a
  mutable object, and the caller's object is unchanged.
  What the copy cannot do is tell the caller's object, or another machine, which session id it
  used: session ids **must** be fresh, and the driver **must** record each one in the
  single-use ledger (:meth:`tmpc.state.ledger.Ledger.use_sessions`) before :meth:`start`, as
  :mod:`tmpc.local.ecdsa` does. Likewise a
  :class:`~tmpc.protocols.ecdsa.errors.PairwiseCheckError` marks only the copy: the caller
  **must** deny-list the culprit (ledger and store) and redo that pair's setup.
- **Single use.** A presignature is consumed by :meth:`OnlineSignMachine.start` before its
  share exists; machines refuse copying and pickling (they hold one-time secrets).

The step comments follow the numbering of Protocol 3.6 of eprint 2023/765 and use the wording
of :mod:`~tmpc.protocols.ecdsa.dkls23`, whose functions implement the steps.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import NoReturn, TypeVar, cast

import numpy as np

from tmpc.encoding import ct_equal, tagged_hash
from tmpc.errors import (
    DecodeError,
    FaultyParticipantError,
    ParameterError,
    StateError,
)
from tmpc.group import SECP256K1
from tmpc.group.base import Point
from tmpc.protocols.ecdsa.dkls23 import (
    MIN_SESSION_ID_LEN,
    EcdsaPairwise,
    PairwiseSetupMsg1,
    PairwiseSetupMsg2,
    PairwiseSetupMsg3,
    PairwiseSetupState,
    Presignature,
    PresignatureInfo,
    PresignRound1Msg,
    PresignRound2Msg,
    PresignState1,
    PresignState2,
    SignatureShare,
    combine_signature_shares,
    pairwise_setup_finish,
    pairwise_setup_round1,
    pairwise_setup_round2,
    pairwise_setup_round3,
    presign_round1,
    presign_round2,
    presign_round3,
    sign_share,
)
from tmpc.protocols.ecdsa.multiply import SENDER_MSG_LEN, L
from tmpc.protocols.ecdsa.ot import KAPPA, VsotChoices, VsotOpening, VsotPublicKey
from tmpc.protocols.ecdsa.ote import OteExtendMsg
from tmpc.protocols.machine import Message, RandBytes, RoundMachine

__all__ = [
    "MAX_BATCH",
    "BatchPresignMachine",
    "EcdsaSignMachine",
    "OnlineSignMachine",
    "PairwiseSetupMachine",
    "PresignMachine",
]

N = SECP256K1.order
_N_FIRST_BYTE = N >> 248

M = TypeVar("M")

_Signature = tuple[int, int, int]

#: Most presignatures one :class:`BatchPresignMachine` makes (its round-2 message to each peer
#: is about 54 KB per presignature, so 32 keep it under 2 MB).
MAX_BATCH = 32


# --------------------------------------------------------------------------------------------
# Parsing at the boundary: every check that needs no secret, before any state is consumed
# --------------------------------------------------------------------------------------------


def _parse(sender: int, what: str, decode: Callable[[bytes], M], raw: bytes) -> M:
    """Decode ``raw`` received from ``sender``; a decode error names the sender."""
    try:
        return decode(raw)
    except (DecodeError, ParameterError) as exc:
        # ParameterError: a message dataclass whose __post_init__ refused a decoded field
        raise FaultyParticipantError(
            f"party {sender} sent a malformed {what} message: {exc}", sender
        ) from None


def _route(sender: int, me: int, msg_sender: int, msg_receiver: int, what: str) -> None:
    """The ids inside a message must be its transport sender and this party."""
    if msg_sender != sender or msg_receiver != me:
        raise FaultyParticipantError(
            f"party {sender} sent a {what} message labelled {msg_sender} -> {msg_receiver}",
            sender,
        )


def _check_scalars(sender: int, what: str, data: bytes) -> None:
    """Every 32-byte big-endian word of ``data`` is below ``n`` (``len(data)`` is checked)."""
    if len(data) % 32:
        raise FaultyParticipantError(f"party {sender} sent a {what} of wrong length", sender)
    # n's first byte is 0xFF, so a word whose first byte is below it is below n: only the words
    # starting with 0xFF (about one in 256) are compared in full. (A message carries about 1250
    # words; comparing each as an integer cost about 2 ms of every presigning session.)
    first = np.frombuffer(data, np.uint8)[::32]
    for w in np.flatnonzero(first == _N_FIRST_BYTE).tolist():
        k = 32 * w
        if int.from_bytes(data[k : k + 32], "big") >= N:
            raise FaultyParticipantError(
                f"party {sender} sent a {what} with a value not below the group order", sender
            )


def _parse_setup1(sender: int, me: int, raw: bytes) -> PairwiseSetupMsg1:
    """Setup round 1 from ``sender``: seed commitment and Bob's VSOT public key."""
    msg = _parse(sender, "setup round 1", PairwiseSetupMsg1.from_bytes, raw)
    _route(sender, me, msg.sender, msg.receiver, "setup round 1")
    # Bob's VSOT public key: 97 bytes, B a valid non-identity point
    _parse(sender, "setup round 1 multiplication", VsotPublicKey.from_bytes, msg.mul_msg)
    return msg


def _parse_setup2(sender: int, me: int, raw: bytes) -> PairwiseSetupMsg2:
    """Setup round 2 from ``sender``: seed contribution and Alice's VSOT choice points."""
    msg = _parse(sender, "setup round 2", PairwiseSetupMsg2.from_bytes, raw)
    _route(sender, me, msg.sender, msg.receiver, "setup round 2")
    # Alice's VSOT choice points: KAPPA valid non-identity points
    _parse(
        sender,
        "setup round 2 multiplication",
        lambda b: VsotChoices.from_bytes(b, KAPPA),
        msg.mul_msg,
    )
    return msg


def _parse_setup3(sender: int, me: int, raw: bytes) -> PairwiseSetupMsg3:
    """Setup round 3 from ``sender``: Bob's VSOT opening."""
    msg = _parse(sender, "setup round 3", PairwiseSetupMsg3.from_bytes, raw)
    _route(sender, me, msg.sender, msg.receiver, "setup round 3")
    # Bob's VSOT opening: KAPPA pairs of 32-byte hashes
    _parse(
        sender,
        "setup round 3 multiplication",
        lambda b: VsotOpening.from_bytes(b, KAPPA),
        msg.mul_msg,
    )
    return msg


def _parse_presign1(sender: int, me: int, raw: bytes) -> PresignRound1Msg:
    """Presigning round 1 from ``sender``: R commitment and Bob's OT-extension message."""
    msg = _parse(sender, "presign round 1", PresignRound1Msg.from_bytes, raw)
    _route(sender, me, msg.sender, msg.receiver, "presign round 1")
    # Bob's OT-extension message: exactly OteExtendMsg.LEN bytes
    _parse(sender, "presign round 1 multiplication", OteExtendMsg.from_bytes, msg.mul_msg)
    return msg


#: Alice's multiplication reply (multiply.py): ``tau || H(r) (32) || u (32) || gamma (32*L)``,
#: every word but ``H(r)`` a scalar below ``n``.
_MUL_TAIL = 32 * (1 + L)
_MUL_TAU = SENDER_MSG_LEN - 32 - _MUL_TAIL


def _parse_presign2(sender: int, me: int, raw: bytes) -> PresignRound2Msg:
    """Presigning round 2 from ``sender``: decommitment, pk, Gammas, psi, echo, Alice's
    multiplication reply (its length and every scalar checked here, before Bob's keep-state
    is consumed by ``run_phase2``)."""
    msg = _parse(sender, "presign round 2", PresignRound2Msg.from_bytes, raw)
    _route(sender, me, msg.sender, msg.receiver, "presign round 2")
    mul = msg.mul_msg
    if len(mul) != SENDER_MSG_LEN:
        raise FaultyParticipantError(
            f"party {sender} sent a multiplication reply of {len(mul)} bytes, not {SENDER_MSG_LEN}",
            sender,
        )
    _check_scalars(sender, "multiplication reply", mul[:_MUL_TAU])
    _check_scalars(sender, "multiplication reply", mul[_MUL_TAU + 32 :])
    return msg


def _parse_share(sender: int, info: PresignatureInfo, raw: bytes) -> SignatureShare:
    """A signature share from ``sender``: well formed, its own, of this presignature."""
    share = _parse(sender, "signature share", SignatureShare.from_bytes, raw)
    if share.sender != sender:
        raise FaultyParticipantError(
            f"party {sender} sent a signature share labelled as party {share.sender}'s", sender
        )
    if not ct_equal(share.presig_id, info.presig_id):
        raise FaultyParticipantError(
            f"party {sender} sent a signature share of another presignature", sender
        )
    return share


# --------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------


def _private_pairwise(pairwise: EcdsaPairwise, me: int, peers: tuple[int, ...]) -> EcdsaPairwise:
    """A private copy of ``me``'s material with ``peers`` (``private_copy`` of each
    multiplication object: what the storage encoding would carry, without the round trip).

    The multiplication objects record used session ids (and a failed check) in place, so a
    machine works on its own copy and never mutates an object another session can hold. The
    copy costs no more than the record of used session ids it carries (the storage round trip
    sorted and re-parsed that record, which grew with every session).
    """
    if not isinstance(pairwise, EcdsaPairwise) or pairwise.identifier != me:
        raise ParameterError(f"pairwise material does not belong to party {me}")
    missing = [j for j in peers if j not in pairwise.zero_seeds]
    if missing:
        raise ParameterError(f"party {me} has no pairwise setup with {missing}")
    return EcdsaPairwise(
        me,
        {j: bytes(pairwise.zero_seeds[j]) for j in peers},
        {j: pairwise.senders[j].private_copy() for j in peers},
        {j: pairwise.receivers[j].private_copy() for j in peers},
    )


def _check_session_id(session_id: object) -> bytes:
    """The session id as given, if it is bytes of at least the minimum length."""
    if not isinstance(session_id, bytes) or len(session_id) < MIN_SESSION_ID_LEN:
        raise ParameterError(f"session id must be bytes of at least {MIN_SESSION_ID_LEN}")
    return session_id


def _check_digest(digest: object) -> bytes:
    """The 32-byte message hash as ``bytes``."""
    if not isinstance(digest, bytes | bytearray) or len(digest) != 32:
        raise ParameterError("digest must be exactly 32 bytes")
    return bytes(digest)


def _check_presign_params(
    secshare: object,
    public_key: object,
    tweak: object,
    threshold: object,
    signers: tuple[int, ...],
) -> None:
    """Fail at construction on what ``presign_round1`` would refuse at start."""
    if not isinstance(secshare, int) or isinstance(secshare, bool) or not 0 < secshare < N:
        raise ParameterError("the secret share must be an integer in [1, n-1]")
    if not isinstance(public_key, Point) or public_key.group is not SECP256K1:
        raise ParameterError("the public key must be a secp256k1 point")
    if public_key.is_identity():
        raise ParameterError("the public key must not be the identity")
    if not isinstance(tweak, int) or isinstance(tweak, bool) or not 0 <= tweak < N:
        raise ParameterError("tweak must be an integer in [0, n-1]")
    if threshold is not None:
        if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 1:
            raise ParameterError("threshold must be a positive integer")
        if len(signers) < threshold:
            raise ParameterError(f"{len(signers)} signers cannot sign for threshold {threshold}")


def _sorted_ids(ids: Sequence[int], what: str) -> tuple[int, ...]:
    """``ids`` sorted (RoundMachine checks that they are distinct positive integers)."""
    if isinstance(ids, bytes | str) or not isinstance(ids, Sequence):
        raise ParameterError(f"{what} must be a sequence of party ids")
    try:
        return tuple(sorted(ids))
    except TypeError:
        raise ParameterError(f"{what} must be integers") from None


class _NoCopy:
    """Machines here hold one-time secrets: copying or pickling one could use them twice."""

    def _refuse(self, *args: object) -> NoReturn:
        raise StateError(f"{type(self).__name__} holds one-time secrets: no copy or pickle")

    __copy__ = _refuse
    __deepcopy__ = _refuse
    __reduce_ex__ = _refuse
    __reduce__ = _refuse


class _Presigner:
    """One signer's presigning rounds (Protocol 3.6 steps 4-9), shared by two machines."""

    def __init__(
        self,
        me: int,
        secshare: int,
        pairwise: EcdsaPairwise,
        signers: tuple[int, ...],
        session_id: bytes,
        public_key: Point,
        tweak: int,
        threshold: int | None,
        rand: RandBytes,
    ) -> None:
        _check_presign_params(secshare, public_key, tweak, threshold, signers)
        self.me = me
        self.signers = signers
        self.peers = tuple(j for j in signers if j != me)
        self.session_id = _check_session_id(session_id)
        self.public_key = public_key
        self.tweak = tweak
        self.threshold = threshold
        self.rand = rand
        self._secshare = secshare
        self._pairwise: EcdsaPairwise | None = _private_pairwise(pairwise, me, self.peers)
        self._st1: PresignState1 | None = None
        self._st2: PresignState2 | None = None

    def round1(self) -> dict[int, bytes]:
        """Steps 4-6: this signer's round-1 message to each peer."""
        pw, x = self._pairwise, self._secshare
        if pw is None:
            raise StateError("presigning was started before")
        self._pairwise, self._secshare = None, 0
        # Step 5: "sample the instance key r_i and the inversion mask phi_i; R_i = r_i * G"
        # Step 6 (commit): one salted commitment to R_i for all peers, bound to the session
        # Step 6 (multiply): start F_RVOLE as Bob in the instance (Alice = j, Bob = i)
        # F_Zero: "zeta_i with sum over P of zeta_i = 0", fresh for this session context
        self._st1, out = presign_round1(
            self.me,
            x,
            self.public_key,
            pw,
            self.signers,
            self.session_id,
            threshold=self.threshold,
            tweak=self.tweak,
            rand=self.rand,
        )
        return {j: out[j].to_bytes() for j in self.peers}

    def round2(self, payloads: dict[int, bytes]) -> dict[int, bytes]:
        """Step 7: every round-1 payload parsed first, then this signer's round-2 messages."""
        st, self._st1 = self._st1, None
        if st is None:
            raise StateError("presigning round 2 out of order")
        msgs = {j: _parse_presign1(j, self.me, payloads[j]) for j in self.peers}
        # Step 7: "sk_i = Lagrange(P, i, 0) * p(i) + zeta_i and pk_i = sk_i * G"
        # Step 7 (multiply): F_RVOLE as Alice with inputs (r_i, sk_i) towards j
        # Step 7: "Gamma^u_{i,j} = c^u_{i,j} * G, Gamma^v_{i,j} = c^v_{i,j} * G,
        # psi_{i,j} = phi_i - chi_{i,j}"; decommit R_i; send pk_i
        self._st2, out = presign_round2(st, msgs, rand=self.rand)
        return {j: out[j].to_bytes() for j in self.peers}

    def round3(self, payloads: dict[int, bytes]) -> Presignature:
        """Steps 8-9: every round-2 payload parsed first, then the checks and the shares."""
        st, self._st2 = self._st2, None
        if st is None:
            raise StateError("presigning round 3 out of order")
        msgs = {j: _parse_presign2(j, self.me, payloads[j]) for j in self.peers}
        # Step 8: "verify that R_j opens the commitment of j"; finish F_RVOLE as Bob;
        # "chi_{i,j} * R_j = Gamma^u_{j,i} + d^u_{i,j} * G" and the same for pk_j;
        # "sum over j in P of pk_j = pk"
        # Step 9: "R = sum over j in P of R_j";
        # "u_i = r_i * (phi_i + sum psi_{j,i}) + sum (c^u_{i,j} + d^u_{i,j})", v_i with sk_i
        return presign_round3(st, msgs)

    def drop(self) -> None:
        """Forget every secret (after a failure)."""
        self._pairwise, self._secshare, self._st1, self._st2 = None, 0, None, None


class _Signer:
    """One signer's online step (Protocol 3.6 step 10), shared by two machines."""

    def __init__(self, me: int, digest: bytes, tweak: int | None) -> None:
        self.me = me
        self.digest = _check_digest(digest)
        self.tweak = tweak
        self._own: SignatureShare | None = None
        self._info: PresignatureInfo | None = None

    def check(self, info: PresignatureInfo) -> int:
        """Check digest and tweak against ``info`` before anything is consumed.

        Returns the tweak to sign with (the presignature's)."""
        if self.tweak is None:
            tweak = info.tweak
        elif self.tweak != info.tweak:
            raise ParameterError(
                "the presignature was made for another key derivation (tweak); it signs only "
                "for the BIP32 path it was made for"
            )
        else:
            tweak = self.tweak
        # The digest was checked at construction and the tweak is the presignature's own, so
        # both are valid: nothing else to check before the presignature is consumed.
        return tweak

    def share(self, presig: Presignature) -> bytes:
        """Consume ``presig`` and return this signer's 128-byte share."""
        tweak = self.check(presig.info)
        self._info = presig.info
        # Step 10: "w_i = H(m) * phi_i + r_x * v_i" after the Groth-Shoup re-randomisation
        # u_i' = u_i + delta*phi_i and the tweak v_i' = v_i + e*phi_i (dkls23.sign_share);
        # the presignature is consumed before the share exists
        self._own = sign_share(presig, presig.public_key, self.digest, tweak=tweak)
        return self._own.to_bytes()

    def combine(self, payloads: dict[int, bytes]) -> _Signature:
        """Every share parsed and checked first, then combined and verified."""
        own, info = self._own, self._info
        if own is None or info is None:
            raise StateError("signature shares combined before this signer's share exists")
        shares: dict[int, SignatureShare | bytes] = {self.me: own}
        for j, raw in payloads.items():
            shares[j] = _parse_share(j, info, raw)
        # Step 10: "s = sum w_j / sum u_j"; low-s; verified with libsecp256k1
        return combine_signature_shares(info, self.digest, shares, tweak=info.tweak)


# --------------------------------------------------------------------------------------------
# Machines
# --------------------------------------------------------------------------------------------


class PairwiseSetupMachine(_NoCopy, RoundMachine):
    """The DKLs23 pairwise setup of one party with every other participant.

    Round ``r`` carries :func:`~tmpc.protocols.ecdsa.dkls23.pairwise_setup_round1` ..
    ``round3``'s per-recipient message (``PairwiseSetupMsg{r}.to_bytes()``: about 0.2, 4.3 and
    8.3 KB per peer); after round 3, :func:`~tmpc.protocols.ecdsa.dkls23.pairwise_setup_finish`
    gives :attr:`result`. To redo one pair, run it with ``participants=[i, j]`` and merge the
    result with :meth:`EcdsaPairwise.merged`.

    Args:
        me: this party's id.
        participants: every party of the setup (sorted, distinct, at least two).
        session_id: fresh, agreed by all (at least 16 bytes); **must not** be reused.
        rand: randomness source (``secrets.token_bytes`` if None).

    Raises:
        ParameterError: bad ids or session id.
    """

    protocol = "dkls23-setup"
    rounds = 3

    def __init__(
        self,
        me: int,
        participants: Sequence[int],
        session_id: bytes,
        *,
        rand: RandBytes | None = None,
    ) -> None:
        super().__init__(me, participants)
        if len(self.participants) < 2:
            raise ParameterError("pairwise setup needs at least two parties")
        if any(i >= N for i in self.participants):
            raise ParameterError("party ids must be below the group order")
        self._session_id = _check_session_id(session_id)
        self._rand: RandBytes = rand or secrets.token_bytes
        self._state: PairwiseSetupState | None = None

    def __repr__(self) -> str:
        return f"<PairwiseSetupMachine of {self.me}, round {self.round}>"

    @property
    def result(self) -> EcdsaPairwise:
        """This party's pairwise material (raises :class:`StateError` before it is done)."""
        return cast(EcdsaPairwise, super().result)

    def _start(self) -> list[Message]:
        # Setup round 1 (F_Zero commit; multiplication setup message 1, Bob -> Alice):
        # "each party samples a seed contribution and commits to it"; Bob sends his VSOT
        # public key and proof of knowledge in the instance (Alice = j, Bob = i)
        self._state, out = pairwise_setup_round1(
            self.me, self.peers, self._session_id, rand=self._rand
        )
        return self._direct({j: out[j].to_bytes() for j in self.peers})

    def _take_state(self) -> PairwiseSetupState:
        st, self._state = self._state, None
        if st is None:
            raise StateError(f"{self.protocol}: no state for this round")
        return st

    def _on_round(self, r: int, payloads: dict[int, bytes]) -> list[Message]:
        me = self.me
        if r == 1:
            m1 = {j: _parse_setup1(j, me, payloads[j]) for j in self.peers}
            # Setup round 2 (F_Zero decommit; multiplication setup message 2, Alice -> Bob):
            # "after all commitments are received, reveal the seeds"; Alice checks Bob's
            # proof and encodes her Delta in the instance (Alice = i, Bob = j)
            self._state, out2 = pairwise_setup_round2(self._take_state(), m1, rand=self._rand)
            return self._direct({j: out2[j].to_bytes() for j in self.peers})
        if r == 2:
            m2 = {j: _parse_setup2(j, me, payloads[j]) for j in self.peers}
            # Setup round 3 (F_Zero check; multiplication setup message 3, Bob -> Alice):
            # each seed contribution must open its commitment; Bob's pads become his seeds
            # and he sends the VSOT opening
            self._state, out3 = pairwise_setup_round3(self._take_state(), m2)
            return self._direct({j: out3[j].to_bytes() for j in self.peers})
        m3 = {j: _parse_setup3(j, me, payloads[j]) for j in self.peers}
        # Setup finish (multiplication setup step 4, Alice, local): Alice checks Bob's
        # opening, her pads become her seeds; seed_ij combines both contributions
        self._finish(pairwise_setup_finish(self._take_state(), m3))
        return []


class _Presigning(_NoCopy, RoundMachine):
    """What :class:`PresignMachine` and :class:`EcdsaSignMachine` share: the presigner
    (on a private copy of the pairwise material), its session id, and round 1."""

    def __init__(
        self,
        me: int,
        secshare: int,
        pairwise: EcdsaPairwise,
        signers: Sequence[int],
        session_id: bytes,
        public_key: Point,
        tweak: int,
        threshold: int | None,
        rand: RandBytes | None,
    ) -> None:
        super().__init__(me, _sorted_ids(signers, "signers"))
        self._core = _Presigner(
            me,
            secshare,
            pairwise,
            self.participants,
            session_id,
            public_key,
            tweak,
            threshold,
            rand or secrets.token_bytes,
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self.me}, round {self.round}>"

    @property
    def session_id(self) -> bytes:
        """The session id (what the driver records in the single-use ledger)."""
        return self._core.session_id

    def _start(self) -> list[Message]:
        try:
            return self._direct(self._core.round1())
        except BaseException:
            self._core.drop()
            raise


class PresignMachine(_Presigning):
    """One signer's DKLs23 presigning (Protocol 3.6 steps 4-9): two rounds, point to point.

    Round 1 carries ``PresignRound1Msg.to_bytes()`` (about 13.4 KB per peer), round 2
    ``PresignRound2Msg.to_bytes()`` (about 53.7 KB per peer); after round 2 the local checks
    and shares (steps 8-9, :func:`~tmpc.protocols.ecdsa.dkls23.presign_round3`) give
    :attr:`result`, this signer's single-use :class:`Presignature`.

    The machine works on a private copy of ``pairwise`` (see the module docstring): the
    caller's object is never mutated, so any number of sessions may be built from it.

    Args:
        me: this signer's id; must be in ``signers``.
        secshare: ``x_i``, this signer's Shamir share of the key (secret).
        pairwise: this signer's pairwise material; must cover every other signer.
        signers: the signer set (any order; sorted here).
        session_id: fresh, agreed by the signers (at least 16 bytes); **must not** be reused
            with the same pairwise setup (record it in the single-use ledger before start).
        public_key: ``PK``, the untweaked group key.
        tweak: the additive key tweak (BIP32 path) the presignature is for, and the only one
            it can be finished for.
        threshold: the key's threshold; fewer signers are refused.
        rand: randomness source (``secrets.token_bytes`` if None).

    Raises:
        ParameterError: bad ids, signer set, share, key, tweak, threshold, session id or
            pairwise material (at once; ``presign_round1`` checks them again at :meth:`start`).
    """

    protocol = "dkls23-presign"
    rounds = 2

    def __init__(
        self,
        me: int,
        secshare: int,
        pairwise: EcdsaPairwise,
        signers: Sequence[int],
        session_id: bytes,
        public_key: Point,
        *,
        tweak: int = 0,
        threshold: int | None = None,
        rand: RandBytes | None = None,
    ) -> None:
        super().__init__(
            me, secshare, pairwise, signers, session_id, public_key, tweak, threshold, rand
        )

    @property
    def result(self) -> Presignature:
        """This signer's presignature (raises :class:`StateError` before it is done)."""
        return cast(Presignature, super().result)

    def _on_round(self, r: int, payloads: dict[int, bytes]) -> list[Message]:
        try:
            if r == 1:
                return self._direct(self._core.round2(payloads))
            self._finish(self._core.round3(payloads))
            return []
        except BaseException:
            self._core.drop()
            raise


def batch_session_ids(session_id: bytes, count: int) -> list[bytes]:
    """The ``count`` presigning session ids of a batch session: ``H(session id || k)``.

    Each is fresh when ``session_id`` is, and every one **must** be recorded in the
    single-use ledger before the batch starts."""
    _check_session_id(session_id)
    return [
        tagged_hash("tmpc/dkls23/presign-batch", session_id + k.to_bytes(4, "big"))
        for k in range(count)
    ]


def _split_batch(sender: int, count: int, raw: bytes) -> list[bytes]:
    """The ``count`` length-prefixed parts of a batch payload; anything else names ``sender``."""
    parts: list[bytes] = []
    pos = 0
    while pos < len(raw) and len(parts) < count:
        if pos + 4 > len(raw):
            break
        n = int.from_bytes(raw[pos : pos + 4], "big")
        pos += 4
        if pos + n > len(raw):
            break
        parts.append(raw[pos : pos + n])
        pos += n
    if len(parts) != count or pos != len(raw):
        raise FaultyParticipantError(
            f"party {sender} sent a malformed presigning batch (expected {count} parts)", sender
        )
    return parts


class BatchPresignMachine(_NoCopy, RoundMachine):
    """``count`` DKLs23 presignatures of one signer set in one session (Protocol 3.6 steps
    4-9, run ``count`` times side by side): two rounds, point to point.

    Presignature ``k`` runs under its own session id (:func:`batch_session_ids`) on its own
    private copy of the pairwise material, exactly as a :class:`PresignMachine` would; a
    round's message to a peer is the ``count`` messages for it, each prefixed with its 4-byte
    length. Every peer's payload is split first; each presigner then parses its parts before it
    consumes its own state. A payload that does not split into ``count`` parts, or any part
    that fails to parse, names its sender and fails the whole batch (nothing of the round is
    sent). :attr:`result` is the list of this signer's
    presignatures, in batch order (the k-th has the same ``presig_id`` at every signer).

    Args:
        count: how many presignatures (1 to :data:`MAX_BATCH`).
        session_id: the batch session's id (fresh, agreed by the signers).
        me, secshare, pairwise, signers, public_key, tweak, threshold, rand: as for
            :class:`PresignMachine`.

    Raises:
        ParameterError: a bad count, or what :class:`PresignMachine` refuses.
    """

    protocol = "dkls23-presign-batch"
    rounds = 2

    def __init__(
        self,
        me: int,
        secshare: int,
        pairwise: EcdsaPairwise,
        signers: Sequence[int],
        session_id: bytes,
        public_key: Point,
        count: int,
        *,
        tweak: int = 0,
        threshold: int | None = None,
        rand: RandBytes | None = None,
    ) -> None:
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_BATCH:
            raise ParameterError(f"a presigning batch makes 1 to {MAX_BATCH} presignatures")
        super().__init__(me, _sorted_ids(signers, "signers"))
        self._count = count
        self._cores = [
            _Presigner(
                me,
                secshare,
                pairwise,
                self.participants,
                sid,
                public_key,
                tweak,
                threshold,
                rand or secrets.token_bytes,
            )
            for sid in batch_session_ids(session_id, count)
        ]

    def __repr__(self) -> str:
        return (
            f"<BatchPresignMachine of {self.me}, {self._count} presignatures, round {self.round}>"
        )

    @property
    def session_ids(self) -> list[bytes]:
        """The presigning session ids (what the driver records in the single-use ledger)."""
        return [c.session_id for c in self._cores]

    @property
    def result(self) -> list[Presignature]:
        """This signer's presignatures (raises :class:`StateError` before it is done)."""
        return cast(list[Presignature], super().result)

    def _join(self, outs: list[dict[int, bytes]]) -> dict[int, bytes]:
        return {j: b"".join(len(o[j]).to_bytes(4, "big") + o[j] for o in outs) for j in self.peers}

    def _drop(self) -> None:
        for c in self._cores:
            c.drop()

    def _start(self) -> list[Message]:
        try:
            return self._direct(self._join([c.round1() for c in self._cores]))
        except BaseException:
            self._drop()
            raise

    def _on_round(self, r: int, payloads: dict[int, bytes]) -> list[Message]:
        try:
            split = {j: _split_batch(j, self._count, payloads[j]) for j in self.peers}
            per_core = [{j: split[j][k] for j in self.peers} for k in range(self._count)]
            # Each presigner parses its parts before it consumes its own state (the module's
            # first rule); a bad part fails the whole batch before any message leaves.
            if r == 1:
                return self._direct(
                    self._join([c.round2(p) for c, p in zip(self._cores, per_core, strict=True)])
                )
            self._finish([c.round3(p) for c, p in zip(self._cores, per_core, strict=True)])
            return []
        except BaseException:
            self._drop()
            raise


class OnlineSignMachine(_NoCopy, RoundMachine):
    """One signer's online step (Protocol 3.6 step 10): one broadcast round.

    :meth:`start` consumes the presignature and broadcasts this signer's 128-byte
    :class:`SignatureShare`; when every other signer's share is in, they are combined and the
    signature verified (libsecp256k1) into :attr:`result` ``(r, s, recovery_id)``, low-s,
    valid under ``PK + tweak*G`` over ``digest``. ``me`` and the participants are the
    presignature's signer and signer set.

    Args:
        presignature: this signer's unused presignature (consumed by :meth:`start`).
        digest: the 32-byte message hash (the same at every signer).
        tweak: the presignature's tweak, or None for it; any other is refused.

    Raises:
        StateError: the presignature is used (at once, or at :meth:`start` if another
            machine used it in between).
        ParameterError: bad digest, or a tweak the presignature was not made for.

    A share that is malformed, of another presignature or labelled with another sender raises
    :class:`~tmpc.errors.FaultyParticipantError` naming its sender. A well-formed share with a
    wrong value makes the signature fail to verify: :class:`~tmpc.errors.ProtocolError` with no
    culprits, because DKLs23 commits to no per-signer value that ``u_i`` or ``w_i`` could be
    checked against.
    """

    protocol = "dkls23-sign"
    rounds = 1

    def __init__(
        self, presignature: Presignature, digest: bytes, *, tweak: int | None = None
    ) -> None:
        if not isinstance(presignature, Presignature):
            raise ParameterError("not a presignature")
        if presignature.consumed:
            raise StateError("presignature already used: a presignature signs at most once")
        super().__init__(presignature.identifier, presignature.signers)
        self._signer = _Signer(self.me, digest, tweak)
        self._signer.check(presignature.info)
        self._presig: Presignature | None = presignature

    def __repr__(self) -> str:
        return f"<OnlineSignMachine of {self.me}, round {self.round}>"

    @property
    def result(self) -> _Signature:
        """``(r, s, recovery_id)`` (raises :class:`StateError` before it is done)."""
        return cast(_Signature, super().result)

    def _start(self) -> list[Message]:
        presig, self._presig = self._presig, None
        if presig is None:
            raise StateError(f"{self.protocol}: no presignature")
        return self._broadcast(self._signer.share(presig))

    def _on_round(self, r: int, payloads: dict[int, bytes]) -> list[Message]:
        self._finish(self._signer.combine(payloads))
        return []


class EcdsaSignMachine(_Presigning):
    """Presigning and the online step in one session: the path without a pooled presignature.

    Rounds 1 and 2 are those of :class:`PresignMachine`; the presignature made after round 2
    is consumed at once for ``digest`` and this signer's share broadcast as round 3, whose
    shares are combined into :attr:`result` ``(r, s, recovery_id)`` as in
    :class:`OnlineSignMachine`.

    Args:
        me, secshare, pairwise, signers, session_id, public_key, tweak, threshold, rand: as
            for :class:`PresignMachine` (``pairwise`` is copied, never mutated).
        digest: the 32-byte message hash (the same at every signer).

    Raises:
        what :class:`PresignMachine` and :class:`OnlineSignMachine` raise.
    """

    protocol = "dkls23-presign-sign"
    rounds = 3

    def __init__(
        self,
        me: int,
        secshare: int,
        pairwise: EcdsaPairwise,
        signers: Sequence[int],
        session_id: bytes,
        public_key: Point,
        digest: bytes,
        *,
        tweak: int = 0,
        threshold: int | None = None,
        rand: RandBytes | None = None,
    ) -> None:
        self._signer = _Signer(me, digest, tweak)
        super().__init__(
            me, secshare, pairwise, signers, session_id, public_key, tweak, threshold, rand
        )

    @property
    def result(self) -> _Signature:
        """``(r, s, recovery_id)`` (raises :class:`StateError` before it is done)."""
        return cast(_Signature, super().result)

    def _on_round(self, r: int, payloads: dict[int, bytes]) -> list[Message]:
        if r == 3:
            self._finish(self._signer.combine(payloads))
            return []
        try:
            if r == 1:
                return self._direct(self._core.round2(payloads))
            presig = self._core.round3(payloads)
        except BaseException:
            self._core.drop()
            raise
        return self._broadcast(self._signer.share(presig))
