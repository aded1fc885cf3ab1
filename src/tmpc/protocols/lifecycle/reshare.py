"""Resharing: the same key under a new party set and/or threshold, as per-member machines.

A t-of-n wallet becomes a t'-of-n' wallet with the same group key (hence the same wallet id,
chain code and addresses): a chosen set ``D`` of at least ``t`` old parties (the *dealers*)
each deal a sharing of their part of the key to the ``n'`` new parties (the *receivers*); the
old shares become useless together with the new ones. The protocol is Desmedt and Jajodia's
redistribution (1997) with Feldman commitments, as in Wong, Wang and Wing, "Verifiable Secret
Redistribution for Threshold Sharing Schemes" (CMU-CS-02-114, 2002), whose point is that

    "new shareholders can verify the validity of their shares after redistribution between
    different threshold schemes."

Wong and Wing (CMU-CS-01-155) describe the construction: "We base our VSR protocol on Desmedt
and Jajodia's redistribution protocol for linear secret sharing schemes, which we specialize
for Shamir's scheme. We extend their redistribution protocol with Feldman's non-interactive
verifiable secret sharing scheme to ensure that a SUBSHARES-VALID condition is true after
redistribution", and they add a SHARES-VALID condition (the dealt values are the dealers' real
shares). In the words of A. Tomescu's summary ("How to reshare a secret", 2024, after Cachin,
Kursawe, Lysyanskaya and Strobl, CCS 2002):

    "Each old player t'-out-of-n' reshares their share with the new players. Let H denote an
    agreed-upon set of >= t old players who (re)shared correctly. Then, each new player's
    t'-out-of-n' share of s will be the Lagrange interpolation (w.r.t. H) across all the
    shares received from the old players."

tmpc fixes ``H = D`` before the session (the caller chooses the dealers; a faulty one aborts
the session with its name, and the caller runs again without it) and lets each dealer multiply
its share by its Lagrange coefficient ``λ_i`` (over the old ids of ``D``) *before* dealing, so
a new share is a plain sum and every dealer's constant term is publicly checkable against its
old verification share (``C_i0 = λ_i·X_i``: the SHARES-VALID condition, which also fixes the
key: ``Σ_i C_i0 = Σ_i λ_i·X_i = PK``).

Session members are the participant ids of the :class:`~tmpc.protocols.machine.RoundMachine`
(normally ``1..m``); the caller maps them to roles with ``dealers`` (member -> old party id)
and ``receivers`` (member -> new party id, every id ``1..n'`` present). A member may be both
(a party that continues) and every member is at least one of them. **Every member must be
given the same maps** (a node's session request carries them).

:class:`ReshareMachine` (two rounds, ``reshare``):

- **Round 1**, point to point. Dealer ``i`` computes ``w_i = λ_i·x_i``, picks ``g_i`` of
  degree ``t'-1`` with ``g_i(0) = w_i``, commits ``C_ik = g_ik·G`` (``k = 0..t'-1``) and sends
  every other member the commitment, followed, for a receiver ``j``, by ``g_i(id'(j))`` (its
  new id). :class:`~tmpc.protocols.machine.RoundMachine` expects one message from every peer
  in every round, so a member that does not deal sends an empty message (anything else names
  it).
- After round 1, every member checks every dealer's message: its exact length (a commitment
  of another degree names the dealer), that every point and the scalar decode, and
  ``C_i0 = λ_i·X_i`` (names the dealer); a receiver also checks its value against the
  commitment (Feldman; names the dealer). A receiver's new share is ``y_j = Σ_i g_i(id'(j))``;
  every member computes every new verification share ``Y'_m = Σ_i Σ_k m^k·C_ik``
  (:func:`new_verification_shares`), and a receiver checks ``y_j·G = Y'_j``.
- **Round 2**, broadcast: the transcript hash (:func:`reshare_transcript`: the context, the
  new threshold, every new host key and every dealer's commitment) and BIP340 signatures over
  :func:`certificate_message`: a dealer signs with its *old* host key (the wallet's key of its
  old id), a receiver with its *new* host key; a member that is both sends both signatures, in
  that order (with the same key for both roles unless ``new_hostseckey`` is given). A
  different transcript is a split view
  (:class:`~tmpc.protocols.machine.BroadcastMismatchError`; the node finds the sender from the
  signed envelopes), a bad signature or a message of the wrong length names its sender.

The signatures are the reshare's certificate, kept by the wallet record by role: old id ->
dealer signature, new id -> receiver signature (:class:`ReshareResult`). The old parties'
signatures authorise the move (anyone can compute ``λ_i·X_i``, so the constant terms alone
prove nothing); the new parties' signatures show that each of them holds a checked share.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tmpc.encoding import lp_join, tagged_hash
from tmpc.errors import DecodeError, FaultyParticipantError, ParameterError
from tmpc.group.base import Group, Point
from tmpc.group.secp256k1 import SECP256K1
from tmpc.primitives.bip340 import schnorr_sign, schnorr_verify
from tmpc.protocols.dkg.chilldkg import hostpubkey_gen
from tmpc.protocols.machine import (
    BroadcastMismatchError,
    Message,
    RandBytes,
    RoundMachine,
    transcript_hash,
)
from tmpc.sharing import (
    check_ids,
    eval_commitment,
    eval_polynomial,
    lagrange_coefficients,
    scalar_from,
)

__all__ = [
    "ReshareMachine",
    "ReshareResult",
    "certificate_message",
    "dealer_constants",
    "new_verification_shares",
    "reshare_context",
    "reshare_local",
    "reshare_transcript",
]

_ECHO_TAG = "tmpc/reshare/echo/v1"
_CERT_TAG = "tmpc/reshare/certificate/v1"
_SIG_LEN = 64
_TRANSCRIPT_LEN = 32
_HOST_PUBKEY_LEN = 33  # a host public key as wallet records keep it (compressed secp256k1)


def reshare_context(wallet_id: str, old_epoch: int, session_id: bytes) -> bytes:
    """The 32-byte context a reshare binds: the wallet, the epoch it starts from, its session
    id (32 bytes, never reused)."""
    return hashlib.sha256(
        lp_join([b"tmpc/reshare/context/v1", wallet_id.encode(), old_epoch.to_bytes(8, "big"),
                 session_id])
    ).digest()  # fmt: skip


def reshare_transcript(
    context: bytes,
    new_threshold: int,
    new_host_pubkeys: Mapping[int, bytes],
    commitments: Mapping[int, Sequence[Point]],
) -> bytes:
    """The 32-byte hash every member echoes and signs.

    It binds ``context`` (:func:`reshare_context`), the new threshold ``t'``, every new party's
    33-byte host key in new-id order (so the new party count ``n'`` too), and every dealer's
    commitment ``(C_0, ..., C_(t'-1))`` in old-id order (so the dealer set too)."""
    header = lp_join(
        [context, new_threshold.to_bytes(4, "big"), len(new_host_pubkeys).to_bytes(4, "big"),
         *(new_host_pubkeys[j] for j in sorted(new_host_pubkeys))]
    )  # fmt: skip
    ordered = {i: b"".join(c.encode() for c in commitments[i]) for i in sorted(commitments)}
    return transcript_hash(_ECHO_TAG, {0: header, **ordered})


def certificate_message(transcript: bytes) -> bytes:
    """The 32-byte message every member's host key signs: ``tagged_hash(tag, transcript)``
    (a tag of its own, so no refresh certificate reads as a reshare's)."""
    return tagged_hash(_CERT_TAG, transcript)


def dealer_constants(
    group: Group, verification_shares: Mapping[int, Point], dealers: Sequence[int]
) -> dict[int, Point]:
    """What each dealer's commitment must start with: ``λ_i·X_i`` for every old id ``i`` in
    ``dealers`` (``λ_i`` the Lagrange coefficient at 0 over ``dealers``, ``X_i`` the old
    verification share). Raises :class:`ParameterError` for bad or unknown ids."""
    ids = list(dealers)
    for i in ids:
        if i not in verification_shares:
            raise ParameterError(f"dealer {i} has no verification share")
    lam = lagrange_coefficients(group, ids)
    return {i: verification_shares[i] * lam[i] for i in ids}


def new_verification_shares(
    group: Group, commitments: Mapping[int, Sequence[Point]], parties: int
) -> dict[int, Point]:
    """Every new party's verification share ``Y'_m = Σ_i Σ_k m^k·C_ik`` for ``m = 1..parties``,
    from the dealers' commitments (summed term by term first: one evaluation per party).
    Raises :class:`ParameterError` if the commitments differ in length or are empty."""
    lengths = {len(c) for c in commitments.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise ParameterError("every dealer's commitment has t' terms")
    (k,) = lengths
    summed = [group.sum_points([c[j] for c in commitments.values()]) for j in range(k)]
    return {m: eval_commitment(group, summed, m) for m in range(1, parties + 1)}


@dataclass(frozen=True)
class ReshareResult:
    """One member's output of a reshare.

    ``secshare`` is this member's new secret share (not in :func:`repr`), or None for a member
    that only deals; ``identifier`` its new party id (None likewise) and ``dealer`` its old id
    (None for a member that only receives). The rest is public and the same at every member:
    the new threshold, every new party's verification share and 33-byte host key, every
    dealer's commitment (old id -> ``(C_0, ..., C_(t'-1))``), the transcript hash, and the
    certificate by role: ``dealer_certificate`` (old id -> BIP340 signature of its old host
    key) and ``receiver_certificate`` (new id -> signature of its new host key), both over
    :func:`certificate_message` of the transcript."""

    secshare: int | None = field(repr=False)
    identifier: int | None
    dealer: int | None
    threshold: int
    verification_shares: dict[int, Point]
    host_public_keys: dict[int, bytes]
    commitments: dict[int, tuple[Point, ...]]
    transcript: bytes
    dealer_certificate: dict[int, bytes]
    receiver_certificate: dict[int, bytes]


def _check_scalar(group: Group, x: object, what: str) -> int:
    if not isinstance(x, int) or isinstance(x, bool) or not 0 < x < group.order:
        raise ParameterError(f"{what} must be a scalar in [1, order-1]")
    return x


def _check_host_pubkey(key: object, what: str) -> bytes:
    if not isinstance(key, bytes) or len(key) != _HOST_PUBKEY_LEN:
        raise ParameterError(f"{what} is not a {_HOST_PUBKEY_LEN}-byte host public key")
    try:
        SECP256K1.decode_point(key)
    except DecodeError:
        raise ParameterError(f"{what} is not a valid host public key") from None
    return key


def _role_map(roles: object, what: str) -> dict[int, int]:
    if not isinstance(roles, Mapping):
        raise ParameterError(f"{what} must map members to party ids")
    out: dict[int, int] = {}
    for member, pid in roles.items():
        if any(not isinstance(x, int) or isinstance(x, bool) for x in (member, pid)):
            raise ParameterError(f"{what}: members and party ids are integers")
        out[member] = pid
    if len(set(out.values())) != len(out):
        raise ParameterError(f"{what}: a party id is given to two members")
    return out


class ReshareMachine(RoundMachine):
    """One member's side of a reshare (see the module docstring).

    Args:
        group: the wallet's group.
        me: this member's id.
        dealers: member -> old party id, exactly the dealer set ``D`` (at least ``threshold``).
        receivers: member -> new party id; the new ids are exactly ``1..n'``.
        threshold: the wallet's current threshold ``t``.
        verification_shares: old party id -> current verification share ``X_i`` (at least the
            dealers').
        group_public_key: the wallet's group key ``PK``.
        new_threshold: the new threshold ``t'`` (``1..n'``).
        host_pubkeys: old party id -> 33-byte host key (at least the dealers').
        new_host_pubkeys: new party id -> 33-byte host key, for every id ``1..n'`` (distinct).
        context: what the reshare is bound to (:func:`reshare_context`), 32 bytes.
        secshare: this member's current share, if it deals (secret); None otherwise.
        hostseckey: this member's 32-byte host secret key: its old one if it deals (it
            must match ``host_pubkeys``), else its new one.
        new_hostseckey: a member that deals and receives with a *new* host key passes it here
            (it must match ``new_host_pubkeys``); by default such a member keeps ``hostseckey``.
        rand: randomness source (``secrets.token_bytes`` if None).

    Raises:
        ParameterError: bad roles, ids, thresholds, keys or share; fewer than ``t`` dealers;
            dealers' verification shares that do not interpolate to ``group_public_key``; a
            share or host key that is not this member's.
    """

    protocol = "reshare"
    rounds = 2

    def __init__(
        self,
        group: Group,
        me: int,
        dealers: Mapping[int, int],
        receivers: Mapping[int, int],
        threshold: int,
        verification_shares: Mapping[int, Point],
        group_public_key: Point,
        new_threshold: int,
        host_pubkeys: Mapping[int, bytes],
        new_host_pubkeys: Mapping[int, bytes],
        context: bytes,
        *,
        secshare: int | None = None,
        hostseckey: bytes | None = None,
        new_hostseckey: bytes | None = None,
        rand: RandBytes | None = None,
    ) -> None:
        self._dealers = _role_map(dealers, "dealers")
        self._receivers = _role_map(receivers, "receivers")
        super().__init__(me, sorted(set(self._dealers) | set(self._receivers)))
        self._group = group
        g = group
        # The old side: t, D ⊆ old parties, |D| >= t.
        if not isinstance(threshold, int) or not 1 <= threshold <= len(verification_shares):
            raise ParameterError("the current threshold is out of range")
        old_ids = sorted(self._dealers.values())
        check_ids(g, old_ids)
        if len(old_ids) < threshold:
            raise ParameterError(
                f"a reshare needs at least {threshold} dealers (the current threshold); "
                f"{len(old_ids)} given"
            )
        self._lam = lagrange_coefficients(g, old_ids)
        self._constants = dealer_constants(g, verification_shares, old_ids)
        self._pk = group_public_key
        if g.sum_points(list(self._constants.values())) != group_public_key:
            raise ParameterError(
                "the dealers' verification shares do not interpolate to the group public key"
            )
        for i in old_ids:
            _check_host_pubkey(host_pubkeys.get(i), f"old party {i}'s host key")
        # The new side: ids 1..n', t' in 1..n', distinct host keys.
        n_new = len(new_host_pubkeys)
        if n_new < 1 or sorted(new_host_pubkeys) != list(range(1, n_new + 1)):
            raise ParameterError("new host keys are needed for the new party ids 1..n'")
        self._new_hosts = {
            j: _check_host_pubkey(new_host_pubkeys[j], f"new party {j}'s host key")
            for j in range(1, n_new + 1)
        }
        if len(set(self._new_hosts.values())) != n_new:
            raise ParameterError("two new parties have the same host key")
        if sorted(self._receivers.values()) != list(range(1, n_new + 1)):
            raise ParameterError("every new party id 1..n' needs exactly one receiving member")
        if not isinstance(new_threshold, int) or not 1 <= new_threshold <= n_new:
            raise ParameterError(f"the new threshold must be between 1 and {n_new}")
        self._t_new = new_threshold
        if not isinstance(context, bytes) or len(context) != 32:
            raise ParameterError("the reshare context is 32 bytes")
        self._context = context
        # This member's roles and keys.
        self._x: int | None = None
        self._dealer_key: bytes | None = None
        self._receiver_key: bytes | None = None
        if me in self._dealers:
            i = self._dealers[me]
            self._x = _check_scalar(g, secshare, "the secret share")
            if g.base_mul(self._x) != verification_shares[i]:
                raise ParameterError(f"the secret share is not old party {i}'s")
            if hostseckey is None or hostpubkey_gen(hostseckey) != host_pubkeys[i]:
                raise ParameterError(f"the host secret key is not old party {i}'s")
            self._dealer_key = hostseckey
        elif secshare is not None:
            raise ParameterError(f"member {me} does not deal: it takes no share")
        if me in self._receivers:
            j = self._receivers[me]
            key = new_hostseckey if new_hostseckey is not None else hostseckey
            if key is None or hostpubkey_gen(key) != self._new_hosts[j]:
                raise ParameterError(f"no host secret key of new party {j} is given")
            self._receiver_key = key
        elif new_hostseckey is not None:
            raise ParameterError(f"member {me} does not receive: it takes no new host key")
        self._old_hosts = {i: host_pubkeys[i] for i in old_ids}
        self._rand = rand or secrets.token_bytes
        self._coeffs: list[int] = []
        self._own_commitment: tuple[Point, ...] = ()
        self._own_value = 0
        self._newshare = 0
        self._new_vs: dict[int, Point] = {}
        self._commitments: dict[int, tuple[Point, ...]] = {}
        self._transcript = b""
        self._own_sigs = b""

    def __repr__(self) -> str:
        return f"<ReshareMachine of member {self.me}, round {self.round}>"

    @property
    def result(self) -> ReshareResult:
        """This member's :class:`ReshareResult` (raises before it is done)."""
        out = super().result
        assert isinstance(out, ReshareResult)
        return out

    def _scalar(self) -> int:
        return scalar_from(self._group, self._rand)

    # Round 1: every dealer shares its share ----------------------------------------------

    def _start(self) -> list[Message]:
        g = self._group
        if self._x is None:
            # Not a dealer: RoundMachine wants one message from every peer, so an empty one.
            return self._direct(dict.fromkeys(self.peers, b""))
        i = self._dealers[self.me]
        # "Each old player t'-out-of-n' reshares their share with the new players", here its
        # share times its Lagrange coefficient over H = D: g_i(0) = w_i = λ_i·x_i ...
        w = self._x * self._lam[i] % g.order
        # ... with a random g_i of degree t'-1, committed to as C_ik = g_ik·G (Feldman).
        self._coeffs = [w] + [self._scalar() for _ in range(self._t_new - 1)]
        self._own_commitment = tuple(g.base_mul(a) for a in self._coeffs)
        blob = b"".join(c.encode() for c in self._own_commitment)
        out: dict[int, bytes] = {}
        for p in self.peers:
            j = self._receivers.get(p)
            out[p] = (
                blob if j is None else blob + g.encode_scalar(eval_polynomial(g, self._coeffs, j))
            )
        if self.me in self._receivers:
            self._own_value = eval_polynomial(g, self._coeffs, self._receivers[self.me])
        self._coeffs = []  # the dealing is done; forget it
        return self._direct(out)

    # After round 1: SUBSHARES-VALID and SHARES-VALID, then the new shares ----------------

    def _parse(self, sender: int, raw: bytes) -> tuple[tuple[Point, ...], int | None]:
        g, t = self._group, self._t_new
        if sender not in self._dealers:
            if raw != b"":
                raise FaultyParticipantError(
                    f"member {sender} does not deal but sent a non-empty reshare message", sender
                )
            return (), None
        extra = g.scalar_len if self.me in self._receivers else 0
        if len(raw) != t * g.element_len + extra:
            body = len(raw) - extra
            if body > 0 and body % g.element_len == 0:
                raise FaultyParticipantError(
                    f"dealer {sender} sent a commitment of {body // g.element_len} terms, "
                    f"expected {t}",
                    sender,
                )
            raise FaultyParticipantError(
                f"dealer {sender} sent a reshare message of the wrong length", sender
            )
        try:
            commitment = tuple(
                g.decode_point(raw[k * g.element_len : (k + 1) * g.element_len]) for k in range(t)
            )
            value = g.decode_scalar(raw[t * g.element_len :]) if extra else None
        except DecodeError as exc:
            raise FaultyParticipantError(
                f"dealer {sender} sent a malformed reshare message: {exc}", sender
            ) from None
        return commitment, value

    def _on_round(self, r: int, payloads: dict[int, bytes]) -> list[Message]:
        if r == 1:
            return self._on_dealings(payloads)
        self._on_echoes(payloads)
        return []

    def _on_dealings(self, payloads: dict[int, bytes]) -> list[Message]:
        g = self._group
        me_new = self._receivers.get(self.me)
        commitments: dict[int, tuple[Point, ...]] = {}
        received: dict[int, int] = {}
        if self.me in self._dealers:
            commitments[self._dealers[self.me]] = self._own_commitment
            if me_new is not None:
                received[self._dealers[self.me]] = self._own_value
        for s in self.peers:
            commitment, value = self._parse(s, payloads[s])
            if s not in self._dealers:
                continue
            i = self._dealers[s]
            # SHARES-VALID: the dealt constant is the dealer's real share (times λ_i), so no
            # dealer can change the key: C_i0 = λ_i·X_i.
            if commitment[0] != self._constants[i]:
                raise FaultyParticipantError(
                    f"dealer {s} (old party {i}) dealt a value that is not its share", s
                )
            # SUBSHARES-VALID (Feldman): g_i(j)·G = Σ_k j^k·C_ik.
            if me_new is not None:
                assert value is not None
                if g.base_mul(value) != eval_commitment(g, commitment, me_new):
                    raise FaultyParticipantError(
                        f"dealer {s} sent a reshare value not on its commitment", s
                    )
                received[i] = value
            commitments[i] = commitment
        self._commitments = {i: commitments[i] for i in sorted(commitments)}
        # Σ_i C_i0 = PK: follows from every C_i0 = λ_i·X_i and Σ_i λ_i·X_i = PK (checked at
        # construction); checked again since it is what keeps the key.
        if g.sum_points([c[0] for c in commitments.values()]) != self._pk:  # pragma: no cover
            raise ParameterError("the dealt constants do not add up to the group public key")
        # "each new player's t'-out-of-n' share of s will be the Lagrange interpolation (w.r.t.
        # H) across all the shares received from the old players": λ_i is already applied,
        # so y_j = Σ_i g_i(j).
        self._new_vs = new_verification_shares(g, self._commitments, len(self._new_hosts))
        if me_new is not None:
            self._newshare = sum(received.values()) % g.order
            if g.base_mul(self._newshare) != self._new_vs[me_new]:  # pragma: no cover
                raise ParameterError("the new share does not match its verification share")
        self._x = None
        self._own_value = 0
        self._transcript = reshare_transcript(
            self._context, self._t_new, self._new_hosts, self._commitments
        )
        message = certificate_message(self._transcript)
        sigs = b""
        if self._dealer_key is not None:
            sigs += schnorr_sign(message, self._dealer_key, self._rand(32))
        if self._receiver_key is not None:
            sigs += schnorr_sign(message, self._receiver_key, self._rand(32))
        self._own_sigs = sigs
        return self._broadcast(self._transcript + sigs)

    # Round 2: echo and certificate --------------------------------------------------------

    def _on_echoes(self, payloads: dict[int, bytes]) -> None:
        message = certificate_message(self._transcript)
        dealer_cert: dict[int, bytes] = {}
        receiver_cert: dict[int, bytes] = {}
        for s in self.peers:
            self._take_echo(s, payloads[s], message, dealer_cert, receiver_cert)
        self._take_echo(
            self.me, self._transcript + self._own_sigs, None, dealer_cert, receiver_cert
        )
        me_new = self._receivers.get(self.me)
        self._finish(
            ReshareResult(
                secshare=self._newshare if me_new is not None else None,
                identifier=me_new,
                dealer=self._dealers.get(self.me),
                threshold=self._t_new,
                verification_shares=dict(self._new_vs),
                host_public_keys=dict(self._new_hosts),
                commitments=dict(self._commitments),
                transcript=self._transcript,
                dealer_certificate=dict(sorted(dealer_cert.items())),
                receiver_certificate=dict(sorted(receiver_cert.items())),
            )
        )
        self._newshare = 0

    def _take_echo(
        self,
        s: int,
        raw: bytes,
        message: bytes | None,
        dealer_cert: dict[int, bytes],
        receiver_cert: dict[int, bytes],
    ) -> None:
        """Check member ``s``'s echo and file its signatures by role (``message`` None: our
        own, not checked)."""
        roles = [
            (pid, keys, cert, side)
            for pid, keys, cert, side in (
                (self._dealers.get(s), self._old_hosts, dealer_cert, "old"),
                (self._receivers.get(s), self._new_hosts, receiver_cert, "new"),
            )
            if pid is not None
        ]
        if len(raw) != _TRANSCRIPT_LEN + _SIG_LEN * len(roles):
            raise FaultyParticipantError(f"member {s} sent a reshare echo of the wrong length", s)
        if raw[:_TRANSCRIPT_LEN] != self._transcript:
            raise BroadcastMismatchError(
                "reshare: the members saw different commitments (a split view)"
            )
        for k, (pid, keys, cert, side) in enumerate(roles):
            sig = raw[_TRANSCRIPT_LEN + k * _SIG_LEN : _TRANSCRIPT_LEN + (k + 1) * _SIG_LEN]
            if message is not None and not schnorr_verify(message, keys[pid][1:], sig):
                raise FaultyParticipantError(
                    f"member {s} signed the reshare transcript with a wrong signature "
                    f"(its {side} host key)",
                    s,
                )
            cert[pid] = sig


def reshare_local(
    group: Group,
    threshold: int,
    shares: Mapping[int, int],
    verification_shares: Mapping[int, Point],
    group_public_key: Point,
    new_threshold: int,
    context: bytes,
    *,
    hostseckeys: Mapping[int, bytes],
    new_hostseckeys: Mapping[int, bytes],
    host_pubkeys: Mapping[int, bytes] | None = None,
) -> dict[int, ReshareResult]:
    """Reshare in one process: one :class:`ReshareMachine` per member, driven by
    :func:`tmpc.local.run_machines` (the code path party nodes run).

    ``shares`` (old id -> share) are the dealers' (at least ``threshold`` of them) and
    ``hostseckeys`` their old host keys; ``new_hostseckeys`` (new id ``1..n'`` -> 32-byte key)
    the new parties'. A new party whose key is a dealer's host key is that dealer continuing
    (one member with both roles); every other dealer and new party is a member of its own.
    Members are numbered 1.. in that order: the dealers by old id, then the remaining new
    parties by new id. ``host_pubkeys`` (old id -> 33-byte key; default: derived from
    ``hostseckeys``) are the wallet's, which the dealers' keys must match.

    Returns member id -> :class:`ReshareResult` (each carries its member's old and new id).
    Raises what :class:`ReshareMachine` raises."""
    from tmpc.local import run_machines  # the driver sits above the protocol modules

    if set(hostseckeys) != set(shares):
        raise ParameterError("one host secret key per dealer is needed")
    old_ids = sorted(shares)
    if host_pubkeys is None:
        host_pubkeys = {i: hostpubkey_gen(hostseckeys[i]) for i in old_ids}
    new_hosts = {j: hostpubkey_gen(k) for j, k in new_hostseckeys.items()}
    dealers: dict[int, int] = {}
    receivers: dict[int, int] = {}
    member_keys: dict[int, bytes] = {}
    for m, i in enumerate(old_ids, start=1):
        dealers[m] = i
        member_keys[m] = hostseckeys[i]
    by_key = {k: m for m, k in member_keys.items()}
    for j in sorted(new_hostseckeys):
        m = by_key.pop(new_hostseckeys[j], 0)
        if m == 0:
            m = len(member_keys) + 1
            member_keys[m] = new_hostseckeys[j]
        receivers[m] = j
    machines = {
        m: ReshareMachine(
            group,
            m,
            dealers,
            receivers,
            threshold,
            verification_shares,
            group_public_key,
            new_threshold,
            host_pubkeys,
            new_hosts,
            context,
            secshare=shares[dealers[m]] if m in dealers else None,
            hostseckey=member_keys[m],
        )
        for m in sorted(member_keys)
    }
    out = run_machines(machines)
    return {m: r for m, r in out.items() if isinstance(r, ReshareResult)}
