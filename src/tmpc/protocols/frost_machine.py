"""FROST signing as steppable per-party machines, peer to peer, without a coordinator.

Two machines over the same two rounds of broadcasts:

- :class:`FrostSignMachine`: FROST of RFC 9591 over any ciphersuite
  (:mod:`tmpc.protocols.frost`), signatures ``SerializeElement(R) || SerializeScalar(z)``;
- :class:`Bip445SignMachine`: FROST for BIP340 with tweaking, the BIP445 draft
  (:mod:`tmpc.protocols.bip445`), 64-byte BIP340 signatures.

Both run the protocol as RFC 9591 §7.5 ("Removing the Coordinator Role") describes it:

    > Every signer begins by performing commit() as is done in the setting where a
    > Coordinator is used. However, instead of sending the commitment to the Coordinator,
    > every signer instead will publish this commitment to every other signer. Then, in the
    > second round, signers will already have sufficient information to perform signing.
    > They will directly perform sign(). All signers will then publish their signature shares
    > to one another. After having received all signature shares from all other signers, each
    > signer will then perform verify_signature_share and then aggregate directly.

and as the BIP445 draft allows ("Alternatively, the protocol can be run without any
coordinator, with each signer sending its contributions to every other signer"). The same
section of RFC 9591 warns that a signer who sends different commitments to different peers
("split the view") makes the signature invalid. So the round-2 message carries, after the
signature share, an *echo*: :func:`~tmpc.protocols.machine.transcript_hash` of the round-1
broadcasts as the sender saw them (its own included). A party whose echo differs raises
:class:`~tmpc.protocols.machine.BroadcastMismatchError` before any share is checked, so a split
view never blames an honest signer and never yields a signature.

Wire format (both rounds are broadcasts):

================  ==========================================  ================================
round             FrostSignMachine                             Bip445SignMachine
================  ==========================================  ================================
1                 ``SigningCommitments.to_bytes()``            ``pubnonce`` (66 bytes)
                  (``Ns + 2*Ne`` bytes)
2                 ``SerializeScalar(z_i) || echo``             ``psig || echo`` (32 + 32 bytes)
                  (``Ns + 32`` bytes)
================  ==========================================  ================================

Single use. The secret nonces live in the library's single-use holders
(:class:`~tmpc.protocols.frost.SigningNonces`, :class:`~tmpc.protocols.bip445.SecNonce`); the
machine never copies them. Every peer payload of round 1 is parsed and validated before the
function that consumes the nonce runs, so a malformed message aborts the session without using
the nonce; once used, the nonce is gone (:attr:`FrostSignMachine.nonce_used`).

Party ids are Shamir identifiers ``1..2^32 - 1`` (:mod:`tmpc.ids`) throughout; BIP445's
0-based ``id`` is converted at this module's edge (``id = x - 1``), so every ``culprits`` tuple
holds party ids.
"""

from __future__ import annotations

import secrets
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import ClassVar

from tmpc.errors import (
    CryptoError,
    FaultyParticipantError,
    InputError,
    ParameterError,
    StateError,
)
from tmpc.group.base import Ciphersuite, Group, Point
from tmpc.group.secp256k1 import SECP256K1
from tmpc.ids import from_index, party_ids, to_index
from tmpc.primitives.bip340 import schnorr_verify
from tmpc.protocols import bip445, frost
from tmpc.protocols.machine import (
    BroadcastMismatchError,
    Message,
    RandBytes,
    RoundMachine,
    transcript_hash,
)
from tmpc.sharing import check_ids

__all__ = ["Bip445SignMachine", "FrostSignMachine"]

#: Length of the echo appended to every round-2 message (a SHA-256 transcript hash).
ECHO_LEN = 32

#: BIP445 identifiers are below 2^32, so Shamir identifiers are at most 2^32.
_MAX_BIP445_X = 2**32


def _names(ids: Sequence[int]) -> str:
    return ", ".join(str(i) for i in ids)


def _check_point(group: Group, p: object, what: str) -> Point:
    if not isinstance(p, Point) or p.group is not group:
        raise ParameterError(f"{what} is not a point of {group.name}")
    if p.is_identity():
        raise ParameterError(f"{what} is the identity element")
    return p


def _check_common(
    group: Group,
    me: int,
    secshare: int,
    group_public_key: Point,
    verifying_shares: Mapping[int, Point],
    signers: Sequence[int],
    msg: bytes,
    min_signers: int,
    rand: RandBytes | None,
    protocol: str,
) -> tuple[list[int], dict[int, Point], bytes]:
    """The input checks both machines share; returns sorted signers, their shares, msg."""
    if isinstance(signers, str | bytes) or not isinstance(signers, Sequence):
        raise ParameterError(f"{protocol}: signers must be a sequence of party ids")
    check_ids(group, list(signers))
    # RFC 9591 allows any non-zero scalar as an identifier; a machine's party ids are below
    # 2^32 (the echo's transcript hash encodes them in 4 bytes).
    party_ids(signers)
    ids = sorted(signers)
    if not isinstance(min_signers, int) or isinstance(min_signers, bool) or min_signers < 1:
        raise ParameterError(f"{protocol}: min_signers must be a positive integer")
    if len(ids) < min_signers:
        raise ParameterError(
            f"{protocol}: {len(ids)} signers take part, fewer than the threshold {min_signers}"
        )
    if not isinstance(secshare, int) or isinstance(secshare, bool):
        raise ParameterError(f"{protocol}: the secret share must be an integer")
    if not 0 < secshare < group.order:
        raise ParameterError(f"{protocol}: the secret share is not in [1, order - 1]")
    _check_point(group, group_public_key, "group public key")
    if not isinstance(verifying_shares, Mapping):
        raise ParameterError(f"{protocol}: verifying_shares must map party ids to points")
    vs: dict[int, Point] = {}
    for i in ids:
        if i not in verifying_shares:
            raise ParameterError(f"{protocol}: no verifying share for party {i}")
        vs[i] = _check_point(group, verifying_shares[i], f"verifying share of party {i}")
    if not isinstance(msg, bytes | bytearray):
        raise ParameterError(f"{protocol}: the message must be bytes")
    if rand is not None and not callable(rand):
        raise ParameterError(f"{protocol}: rand must be a callable returning random bytes")
    if not isinstance(me, int) or isinstance(me, bool) or me not in ids:
        raise ParameterError(f"{protocol}: party {me} is not a signer of this session")
    return ids, vs, bytes(msg)


class _EchoSigningMachine(RoundMachine):
    """Bookkeeping shared by the two signing machines: echo of round 1, done state."""

    rounds: ClassVar[int] = 2
    refuse_after_done: ClassVar[bool] = True
    #: Tag of the echo: ``transcript_hash(echo_tag, round-1 payloads)`` (part of the wire
    #: format).
    echo_tag: ClassVar[str]
    #: Length of the signature share in the round-2 message.
    _share_len: int

    def __init__(self, me: int, participants: Sequence[int]) -> None:
        super().__init__(me, participants)
        self._own1 = b""
        self._echo = b""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(me={self.me}, signers={self.participants}, round={self.round})"
        )

    @property
    def signature(self) -> bytes:
        """The typed :attr:`result`; raises :class:`~tmpc.errors.StateError` before done."""
        sig = self.result
        if not isinstance(sig, bytes):
            raise StateError(f"{self.protocol}: no signature")
        return sig

    def _set_echo(self, payloads: dict[int, bytes]) -> None:
        self._echo = transcript_hash(self.echo_tag, {**payloads, self.me: self._own1})

    def _split_round2(self, payloads: dict[int, bytes]) -> dict[int, bytes]:
        """Check every round-2 message's length and echo; return the peers' shares (bytes).

        A wrong length blames its sender; a different echo raises
        :class:`BroadcastMismatchError` before any share is looked at.
        """
        n = self._share_len
        bad = [p for p in self.peers if len(payloads[p]) != n + ECHO_LEN]
        if bad:
            raise FaultyParticipantError(
                f"{self.protocol}: malformed round-2 message from party {_names(bad)}", tuple(bad)
            )
        differ = [p for p in self.peers if payloads[p][n:] != self._echo]
        if differ:
            raise BroadcastMismatchError(
                f"{self.protocol}: party {_names(differ)} saw other round-1 broadcasts than "
                f"party {self.me}"
            )
        return {p: payloads[p][:n] for p in self.peers}

    def start(self) -> list[Message]:
        """Begin the session; returns the round-1 broadcast (see :meth:`RoundMachine.start`)."""
        if self.round == 0:
            self._open_inbox(1)
        return super().start()

    def _open_inbox(self, r: int) -> None:
        # RoundMachine._drain deletes round r's inbox once the round is processed, but the
        # inbox only exists after a message of round r arrived: with no peers (one signer,
        # t = 1) it never does. An empty one changes nothing otherwise.
        self._inbox.setdefault(r, {})

    def _on_round(self, r: int, payloads: dict[int, bytes]) -> list[Message]:
        if r == 1:
            self._open_inbox(2)
            return self._round1(payloads)
        self._round2(payloads)
        return []

    @abstractmethod
    def _round1(self, payloads: dict[int, bytes]) -> list[Message]:
        """Round 1 complete: every peer's round-1 payload; returns the round-2 broadcast."""

    @abstractmethod
    def _round2(self, payloads: dict[int, bytes]) -> None:
        """Round 2 complete: every peer's round-2 payload; finishes with the signature."""


class FrostSignMachine(_EchoSigningMachine):
    """One signer of a FROST signing session (RFC 9591), peer to peer.

    Args:
        suite: the ciphersuite (``tmpc.group.secp256k1`` or ``tmpc.group.ed25519``).
        me: this signer's identifier.
        secshare: this signer's key share ``sk_i``.
        group_public_key: the group public key ``PK``.
        verifying_shares: identifier -> ``PK_i``, for at least every signer.
        signers: the identifiers of every signer of this session, this one included (any
            order; the machine's participants are them sorted).
        msg: the message to sign.
        min_signers: the threshold ``t``; fewer signers raise
            :class:`~tmpc.errors.ParameterError`.
        rand: ``rand(32)`` returns 32 fresh random bytes (default
            :func:`secrets.token_bytes`); it supplies the ``random_bytes(32)`` of both
            ``nonce_generate`` calls. It **must not** repeat or be predictable.

    The :attr:`result` (and :attr:`signature`) is the aggregate signature, verified under
    ``group_public_key``: 65 bytes on secp256k1, 64 on ed25519.

    Raises (constructor): :class:`~tmpc.errors.ParameterError` for any bad argument. While
    running: :class:`~tmpc.errors.FaultyParticipantError` naming every signer whose
    commitments or signature share are malformed, or whose share fails
    ``verify_signature_share``; :class:`~tmpc.protocols.machine.BroadcastMismatchError` on a
    split view of round 1; the :class:`~tmpc.protocols.machine.RoundMachine` errors for
    misrouted messages.
    """

    protocol: ClassVar[str] = "frost-sign"
    echo_tag: ClassVar[str] = "tmpc/frost-sign/round1"

    def __init__(
        self,
        suite: Ciphersuite,
        me: int,
        secshare: int,
        group_public_key: Point,
        verifying_shares: Mapping[int, Point],
        signers: Sequence[int],
        msg: bytes,
        *,
        min_signers: int,
        rand: RandBytes | None = None,
    ) -> None:
        if not isinstance(suite, Ciphersuite):
            raise ParameterError("frost-sign: suite must be an RFC 9591 ciphersuite")
        group = suite.group
        ids, vs, message = _check_common(
            group,
            me,
            secshare,
            group_public_key,
            verifying_shares,
            signers,
            msg,
            min_signers,
            rand,
            self.protocol,
        )
        super().__init__(me, ids)
        self._suite = suite
        self._secshare = secshare
        self._pk = group_public_key
        self._vs = vs
        self._msg = message
        self._min_signers = min_signers
        self._rand: RandBytes = rand if rand is not None else secrets.token_bytes
        self._share_len = group.scalar_len
        self._nonces: frost.SigningNonces | None = None
        self._commitment_list: list[frost.SigningCommitments] = []
        self._own_share = 0

    @property
    def nonce_used(self) -> bool:
        """True once this signer's nonces were consumed by ``sign`` (they never sign again)."""
        return self._nonces is not None and self._nonces.consumed

    def _start(self) -> list[Message]:
        # Round one, RFC 9591 §5.1 commit:
        # > hiding_nonce = nonce_generate(sk_i)
        # > binding_nonce = nonce_generate(sk_i)
        # > hiding_nonce_commitment = G.ScalarBaseMult(hiding_nonce)
        # > binding_nonce_commitment = G.ScalarBaseMult(binding_nonce)
        self._nonces, comm = frost.commit(
            self._suite,
            self.me,
            self._secshare,
            hiding_randomness=self._rand(frost.NONCE_RANDOMNESS_LEN),
            binding_randomness=self._rand(frost.NONCE_RANDOMNESS_LEN),
        )
        # RFC 9591 §7.5: "every signer instead will publish this commitment to every other
        # signer."
        self._own1 = comm.to_bytes()
        return self._broadcast(self._own1)

    def _round1(self, payloads: dict[int, bytes]) -> list[Message]:
        nonces = self._nonces
        if nonces is None:
            raise StateError("frost-sign: round one has not run")
        # Every commitment is decoded (strictly, and bound to its sender's identifier) before
        # the nonces are touched; all malformed ones are named at once.
        comms = {self.me: nonces.commitments}
        bad = []
        for p in self.peers:
            try:
                comms[p] = frost.decode_commitments(self._suite, p, payloads[p])
            except FaultyParticipantError:
                bad.append(p)
        if bad:
            raise FaultyParticipantError(
                f"frost-sign: malformed commitments from party {_names(bad)}", tuple(bad)
            )
        # RFC 9591 §4.3: "This list MUST be sorted in ascending order by identifier."
        self._commitment_list = [comms[i] for i in self.participants]
        self._set_echo(payloads)
        # Round two, RFC 9591 §5.2 sign (it consumes the nonces):
        # > sig_share = hiding_nonce + (binding_nonce * binding_factor) +
        # >     (lambda_i * sk_i * challenge)
        self._own_share = frost.sign(
            self._suite,
            self.me,
            self._secshare,
            self._pk,
            nonces,
            self._msg,
            self._commitment_list,
            min_signers=self._min_signers,
        )
        # RFC 9591 §7.5: "All signers will then publish their signature shares to one another."
        share = frost.encode_signature_share(self._suite, self._own_share)
        return self._broadcast(share + self._echo)

    def _round2(self, payloads: dict[int, bytes]) -> None:
        shares: dict[int, int | bytes] = dict(self._split_round2(payloads))
        shares[self.me] = self._own_share
        # RFC 9591 §7.5: "each signer will then perform verify_signature_share and then
        # aggregate directly." The aggregate is checked first (§5.3: "SHOULD verify this
        # signature using the group public key"): one verification instead of one per signer
        # when everyone is honest. If it fails, every share is verified against its verifying
        # share (§5.3: "the Coordinator MAY verify each signature share individually to
        # identify and act on misbehaving participants"; §5.4), naming every bad signer.
        # (Two colluders shifting value between their shares still yield a valid signature,
        # which is then accepted: nothing is lost.)
        try:
            sig = frost.aggregate(
                self._suite,
                self._commitment_list,
                self._msg,
                self._pk,
                shares,
                None,
                min_signers=self._min_signers,
            )
        except CryptoError:
            sig = frost.aggregate(
                self._suite,
                self._commitment_list,
                self._msg,
                self._pk,
                shares,
                self._vs,
                min_signers=self._min_signers,
            )
        self._own_share = 0
        self._finish(sig)


class Bip445SignMachine(_EchoSigningMachine):
    """One signer of a FROST-for-BIP340 signing session (the BIP445 draft), peer to peer.

    Args:
        me: this signer's Shamir identifier (the draft's ``id`` is ``me - 1``).
        secshare: this signer's secret share (an int in ``[1, ord)``).
        group_public_key: the untweaked threshold public key (secp256k1).
        verifying_shares: Shamir identifier -> public share, for at least every signer; the
            draft's ``n`` is taken as the largest identifier given (as in
            :func:`~tmpc.protocols.bip445.sign_local`).
        signers: the identifiers of every signer, this one included (any order).
        msg: the message (32 bytes for a Bitcoin sighash; any length is accepted).
        min_signers: the threshold ``t``.
        tweaks: ``(32-byte tweak, is_xonly)`` pairs applied in order, e.g.
            :func:`tmpc.protocols.taproot.taproot_tweaks_for`.
        rand: ``rand(32)`` returns 32 fresh random bytes (default
            :func:`secrets.token_bytes`); it is ``NonceGen``'s ``rand'``. It **must not**
            repeat or be predictable.

    The :attr:`result` (and :attr:`signature`) is the 64-byte BIP340 signature, verified
    under the x-only tweaked key (:attr:`xonly_pubkey`).

    Raises (constructor): :class:`~tmpc.errors.ParameterError` /
    :class:`~tmpc.errors.DecodeError` for bad arguments, a signer set whose public shares do
    not interpolate to the key ("The provided key material is incorrect."), bad tweaks, or a
    secret share that is not this signer's (BIP445 ``Sign`` refuses it too). While running:
    :class:`~tmpc.errors.FaultyParticipantError` naming every signer whose public nonce or
    partial signature is invalid; :class:`~tmpc.protocols.machine.BroadcastMismatchError` on a
    split view of round 1; the :class:`~tmpc.protocols.machine.RoundMachine` errors for
    misrouted messages.
    """

    protocol: ClassVar[str] = "bip445-sign"
    echo_tag: ClassVar[str] = "tmpc/bip445-sign/round1"

    def __init__(
        self,
        me: int,
        secshare: int,
        group_public_key: Point,
        verifying_shares: Mapping[int, Point],
        signers: Sequence[int],
        msg: bytes,
        *,
        min_signers: int,
        tweaks: Sequence[tuple[bytes, bool]] = (),
        rand: RandBytes | None = None,
    ) -> None:
        ids, vs, message = _check_common(
            SECP256K1,
            me,
            secshare,
            group_public_key,
            verifying_shares,
            signers,
            msg,
            min_signers,
            rand,
            self.protocol,
        )
        for x in verifying_shares:
            if not isinstance(x, int) or isinstance(x, bool) or not 1 <= x <= _MAX_BIP445_X:
                raise ParameterError(f"bip445-sign: party id {x!r} is not in [1, 2^32]")
        super().__init__(me, ids)
        if SECP256K1.base_mul(secshare) != vs[me]:
            raise ParameterError(f"bip445-sign: the secret share is not party {me}'s")
        tw: list[bytes] = []
        modes: list[bool] = []
        for item in tweaks:
            try:
                tweak, mode = item
            except (TypeError, ValueError):
                raise ParameterError(
                    "bip445-sign: tweaks are (32-byte tweak, is_xonly) pairs"
                ) from None
            tw.append(tweak)
            modes.append(mode)
        try:
            thresh_pk = group_public_key.encode()
            pubshares = [vs[x].encode() for x in ids]
        except InputError:
            raise ParameterError("bip445-sign: a public key is the point at infinity") from None
        # BIP445, General Signing Flow: "The signing participants information is stored in a
        # Signers Context data structure. The threshold public key may optionally be tweaked
        # by initializing a Tweak Context at this stage."
        self._signers_ctx = bip445.SignersContext(
            max(verifying_shares), min_signers, [to_index(x) for x in ids], pubshares, thresh_pk
        )
        bip445.ValidateSignersCtx(self._signers_ctx)
        tweak_ctx = bip445.TweakCtxInit(thresh_pk)
        for tweak, mode in zip(tw, modes, strict=True):
            tweak_ctx = bip445.ApplyTweak(tweak_ctx, tweak, mode)
        self._xonly = bytes(bip445.GetXonlyPubkey(tweak_ctx))
        self._tweaks = tw
        self._modes = modes
        self._secshare = secshare.to_bytes(32, "big")
        self._pubshare = vs[me].encode()
        self._msg = message
        self._rand: RandBytes = rand if rand is not None else secrets.token_bytes
        self._share_len = 32
        self._secnonce: bip445.SecNonce | None = None
        self._pubnonces: dict[int, bytes] = {}
        self._session: bip445.SessionContext | None = None
        self._own_psig = b""

    @property
    def xonly_pubkey(self) -> bytes:
        """The 32-byte x-only tweaked key the signature verifies under (BIP340)."""
        return self._xonly

    @property
    def nonce_used(self) -> bool:
        """True once this signer's secret nonce was consumed by ``Sign`` (it never signs
        again)."""
        return self._secnonce is not None and self._secnonce.used

    def _start(self) -> list[Message]:
        # BIP445, General Signing Flow, first communication round:
        # > Signers begin the signing session by running NonceGen to compute their secnonce
        # > and pubnonce.
        # NonceGen with rand' = rand(32) and every optional argument known (secshare,
        # pubshare, tweaked x-only key, message).
        self._secnonce, pubnonce = bip445.NonceGenInternal(
            self._rand(32), self._secshare, self._pubshare, self._xonly, self._msg, None
        )
        self._own1 = pubnonce
        return self._broadcast(pubnonce)

    def _round1(self, payloads: dict[int, bytes]) -> list[Message]:
        secnonce = self._secnonce
        if secnonce is None:
            raise StateError("bip445-sign: NonceGen has not run")
        self._pubnonces = {**payloads, self.me: self._own1}
        ordered = [self._pubnonces[x] for x in self.participants]
        # > Each signer sends their pubnonce to the coordinator, who aggregates them using
        # > NonceAgg to produce an aggregate nonce
        # Here every signer aggregates; NonceAgg decodes every pubnonce (66 bytes, two valid
        # points) and names every invalid one before Sign can consume the secnonce.
        try:
            aggnonce = bip445.NonceAgg(ordered, [to_index(x) for x in self.participants])
        except bip445.InvalidContributionError as err:
            xs = tuple(from_index(i) for i in err.culprits)
            raise FaultyParticipantError(
                f"bip445-sign: invalid pubnonce from party {_names(xs)}", xs
            ) from None
        self._set_echo(payloads)
        # > Let session_ctx = (signers_ctx, aggnonce, v, tweak_1..v, is_xonly_t_1..v, m)
        self._session = bip445.SessionContext(
            self._signers_ctx, aggnonce, self._tweaks, self._modes, self._msg
        )
        # Second communication round:
        # > Every signer computes a partial signature by running Sign with their long-term
        # > secret share, secnonce and the session context.
        self._own_psig = bip445.Sign(secnonce, self._secshare, to_index(self.me), self._session)
        return self._broadcast(self._own_psig + self._echo)

    def _round2(self, payloads: dict[int, bytes]) -> None:
        session = self._session
        if session is None:
            raise StateError("bip445-sign: round one has not run")
        psigs = self._split_round2(payloads)
        psigs[self.me] = self._own_psig
        pubshares = dict(zip(self.participants, self._signers_ctx.pubshares, strict=True))
        # > each signer sends their partial signature to the coordinator, who runs
        # > PartialSigAgg to produce the final signature.
        # > If all parties behaved honestly, the result passes BIP340 verification.
        # So the one aggregate is checked first (one verification instead of one per signer
        # when everyone is honest); only if it fails are the partial signatures verified, as
        # BIP445 says, "using the algorithm PartialSigVerify" (its internal form, on the
        # session computed once), which names every bad signer.
        try:
            sig: bytes | None = bip445.PartialSigAgg([psigs[x] for x in self.participants], session)
        except FaultyParticipantError:
            sig = None  # a partial signature out of range: found and named below
        if sig is not None and schnorr_verify(self._msg, self._xonly, sig):
            self._finish(sig)
            return
        bad = [
            x
            for x in self.participants
            if not bip445.PartialSigVerifyInternal(
                psigs[x], to_index(x), self._pubnonces[x], pubshares[x], session
            )
        ]
        if bad:
            raise FaultyParticipantError(
                f"bip445-sign: invalid partial signature from party {_names(bad)}", tuple(bad)
            )
        raise CryptoError("bip445-sign: the aggregate signature does not verify")
