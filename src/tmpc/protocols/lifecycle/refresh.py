"""Share refresh (proactive rotation): new shares of the same key, as per-party machines.

Every party of a wallet deals a random sharing of **zero** and adds what it receives to its
share; the key, and every address, stay; the old shares become useless together with the new
ones. This is the share-renewal protocol of Herzberg, Jarecki, Krawczyk and Yung, "Proactive
Secret Sharing Or: How to Cope With Perpetual Leakage" (CRYPTO 1995), §3.2, with Feldman
commitments (the PSS paper's verifiable variant) and the checks of tmpc's DKG:

    PSS §3.2, share renewal, at each party i:
      (1) "pick t-1 random numbers {d_im} ... define δ_i(z) = d_i1 z + ... + d_i(t-1) z^(t-1)"
          (so δ_i(0) = 0);
      (2) "compute u_ij = δ_i(j) ... and broadcast ε_im = g^(d_im)";
          send u_ij privately to each party j;
      (3) "after receiving u_ji, verify g^(u_ji) = Π_m (ε_jm)^(i^m)"; accuse j otherwise;
      (4) "update the share: x_i^(new) = x_i^(old) + Σ_j u_ji".

tmpc's machine (:class:`RefreshMachine`, two rounds, ``refresh``):

- **Round 1**, point to point: to each peer ``j`` the dealer's commitment
  ``(ε_i1, ..., ε_i(t-1))`` followed by ``u_ij``. The commitment has exactly ``t-1`` terms
  (no constant term: it is the identity by construction), so a dealer can neither change the
  key nor raise the threshold.
- After round 1, every share is checked against its dealer's commitment (step 3; a bad one
  names its dealer), the new share is computed (step 4), and the new verification share of
  *every* party is computed from the public commitments
  (``X_m^(new) = X_m + Σ_i Σ_k m^k ε_ik``); this party checks its new share against its own.
- **Round 2**, broadcast: an echo of the round-1 transcript (all commitments, bound to the
  ``context``), and, with host keys, this party's BIP340 signature over it. A different echo
  is a split view (:class:`~tmpc.protocols.machine.BroadcastMismatchError`: the node finds
  the sender from the signed envelopes); a bad signature names its signer. The signatures
  are the refresh's certificate: every party confirmed the same transcript, hence the same
  new verification shares.

The result (:class:`RefreshResult`) holds the new secret share, every party's new
verification share, the transcript hash and the certificate. A refresh needs every party:
one left out would keep a share of the old polynomial only. Resharing to another party set
or threshold is a different protocol.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tmpc.encoding import lp_join, tagged_hash
from tmpc.errors import DecodeError, FaultyParticipantError, ParameterError
from tmpc.group.base import Group, Point
from tmpc.primitives.bip340 import pubkey_gen, schnorr_sign, schnorr_verify
from tmpc.protocols.machine import (
    BroadcastMismatchError,
    Message,
    RandBytes,
    RoundMachine,
    transcript_hash,
)
from tmpc.sharing import eval_commitment, eval_polynomial, scalar_from

__all__ = [
    "RefreshMachine",
    "RefreshResult",
    "certificate_message",
    "next_verification_shares",
    "refresh_context",
    "refresh_local",
    "refresh_transcript",
]

_ECHO_TAG = "tmpc/refresh/echo/v1"
_CERT_TAG = "tmpc/refresh/certificate/v1"
_SIG_LEN = 64


def certificate_message(transcript: bytes) -> bytes:
    """The 32-byte message each party's host key signs: ``tagged_hash(tag, transcript)``."""
    return tagged_hash(_CERT_TAG, transcript)


def refresh_context(wallet_id: str, old_epoch: int, session_id: bytes) -> bytes:
    """The context a refresh binds: wallet, the epoch it starts from, and its session id."""
    return hashlib.sha256(
        lp_join([b"tmpc/refresh/context/v1", wallet_id.encode(), old_epoch.to_bytes(8, "big"),
                 session_id])
    ).digest()  # fmt: skip


def next_verification_shares(
    group: Group,
    verification_shares: Mapping[int, Point],
    commitments: Mapping[int, Sequence[Point]],
) -> dict[int, Point]:
    """Every party's verification share after a refresh with ``commitments`` (dealer ->
    ``(ε_1, ..., ε_(t-1))``): ``X_m + Σ_i Σ_k m^k ε_ik``, with the commitments summed term by
    term first (one evaluation per party, not one per dealer)."""
    lengths = {len(c) for c in commitments.values()}
    if len(lengths) != 1:
        raise ParameterError("every dealer's commitment has t-1 terms")
    (k,) = lengths
    summed = [group.sum_points([c[j] for c in commitments.values()]) for j in range(k)]
    return {
        m: x + eval_commitment(group, [group.identity(), *summed], m)
        for m, x in verification_shares.items()
    }


def refresh_transcript(context: bytes, commitments: Mapping[int, Sequence[Point]]) -> bytes:
    """The hash every party echoes and signs: the context and every dealer's commitment."""
    ordered = {i: b"".join(c.encode() for c in commitments[i]) for i in sorted(commitments)}
    return transcript_hash(_ECHO_TAG, {0: context, **ordered})


@dataclass(frozen=True)
class RefreshResult:
    """One party's output of a refresh.

    ``secshare`` is secret (not in :func:`repr`); the rest is public and the same at every
    party: the new verification shares, the transcript hash, and ``certificate`` (party id ->
    BIP340 signature of its host key over the transcript; empty without host keys)."""

    secshare: int = field(repr=False)
    verification_shares: dict[int, Point]
    transcript: bytes
    certificate: dict[int, bytes]
    #: Every dealer's commitment ``(ε_1, ..., ε_(t-1))`` (what a wallet record keeps).
    commitments: dict[int, tuple[Point, ...]] = field(default_factory=dict)


def _check_scalar(group: Group, x: object, what: str) -> int:
    if not isinstance(x, int) or isinstance(x, bool) or not 0 < x < group.order:
        raise ParameterError(f"{what} must be a scalar in [1, order-1]")
    return x


class RefreshMachine(RoundMachine):
    """One party's side of a share refresh (see the module docstring).

    Args:
        group: the wallet's group.
        me: this party's id (1-based Shamir identifier).
        participants: every party of the wallet (all must take part).
        secshare: this party's current share (secret).
        threshold: the wallet's threshold ``t``.
        verification_shares: every party's current verification share ``X_m``.
        context: what the refresh is bound to (:func:`refresh_context`).
        hostseckey: this party's 32-byte host key, to sign the transcript (None: no
            certificate, for one-process use where every party is local).
        host_pubkeys: every party's 32-byte x-only host key (with ``hostseckey``).
        rand: randomness source (``secrets.token_bytes`` if None).

    Raises:
        ParameterError: bad ids, share, threshold, verification shares or host keys; or a share
            that does not match this party's verification share.
    """

    protocol = "refresh"
    rounds = 2

    def __init__(
        self,
        group: Group,
        me: int,
        participants: Sequence[int],
        secshare: int,
        threshold: int,
        verification_shares: Mapping[int, Point],
        context: bytes,
        *,
        hostseckey: bytes | None = None,
        host_pubkeys: Mapping[int, bytes] | None = None,
        rand: RandBytes | None = None,
    ) -> None:
        super().__init__(me, sorted(participants))
        self._group = group
        n = len(self.participants)
        if not isinstance(threshold, int) or not 1 <= threshold <= n:
            raise ParameterError(f"threshold must be between 1 and {n}")
        self._t = threshold
        self._x = _check_scalar(group, secshare, "the secret share")
        if set(verification_shares) != set(self.participants):
            raise ParameterError("one verification share per party is needed")
        self._vs = dict(verification_shares)
        if group.base_mul(self._x) != self._vs[me]:
            raise ParameterError(f"the secret share is not party {me}'s")
        if not isinstance(context, bytes) or len(context) != 32:
            raise ParameterError("the refresh context is 32 bytes")
        self._context = context
        if (hostseckey is None) != (host_pubkeys is None):
            raise ParameterError("give the host secret key and every host public key, or neither")
        if host_pubkeys is not None:
            if set(host_pubkeys) != set(self.participants):
                raise ParameterError("one host public key per party is needed")
            assert hostseckey is not None
            if pubkey_gen(hostseckey) != host_pubkeys[me]:
                raise ParameterError(f"the host secret key is not party {me}'s")
        self._hostseckey = hostseckey
        self._hosts = dict(host_pubkeys) if host_pubkeys is not None else None
        self._rand = rand or secrets.token_bytes
        self._coeffs: list[int] = []
        self._own_commitment: list[Point] = []
        self._new: dict[int, Point] = {}
        self._newshare = 0
        self._transcript = b""
        self._own_sig = b""
        self._commitments: dict[int, tuple[Point, ...]] = {}

    def __repr__(self) -> str:
        return f"<RefreshMachine of {self.me}, round {self.round}>"

    @property
    def result(self) -> RefreshResult:
        """This party's :class:`RefreshResult` (raises before it is done)."""
        out = super().result
        assert isinstance(out, RefreshResult)
        return out

    # PSS §3.2 (1)-(2) ---------------------------------------------------------------------

    def _scalar(self) -> int:
        return scalar_from(self._group, self._rand)

    def _start(self) -> list[Message]:
        g = self._group
        # (1) "pick t-1 random numbers {d_im}": δ_i(z) = d_i1 z + ... + d_i(t-1) z^(t-1)
        self._coeffs = [0] + [self._scalar() for _ in range(self._t - 1)]
        # (2) "broadcast ε_im = g^(d_im)", m = 1..t-1 (ε_i0 is the identity: δ_i(0) = 0)
        self._own_commitment = [g.base_mul(d) for d in self._coeffs[1:]]
        blob = b"".join(c.encode() for c in self._own_commitment)
        # (2) "u_ij = δ_i(j)", sent privately to each party j
        return self._direct(
            {j: blob + g.encode_scalar(eval_polynomial(g, self._coeffs, j)) for j in self.peers}
        )

    # PSS §3.2 (3)-(4) ---------------------------------------------------------------------

    def _parse(self, sender: int, raw: bytes) -> tuple[list[Point], int]:
        g, k = self._group, self._t - 1
        if len(raw) != k * g.element_len + g.scalar_len:
            raise FaultyParticipantError(
                f"party {sender} sent a refresh message of the wrong length", sender
            )
        try:
            commitment = [
                g.decode_point(raw[m * g.element_len : (m + 1) * g.element_len]) for m in range(k)
            ]
            share = g.decode_scalar(raw[k * g.element_len :])
        except DecodeError as exc:
            raise FaultyParticipantError(
                f"party {sender} sent a malformed refresh message: {exc}", sender
            ) from None
        return commitment, share

    def _on_round(self, r: int, payloads: dict[int, bytes]) -> list[Message]:
        if r == 1:
            return self._on_shares(payloads)
        self._on_echoes(payloads)
        return []

    def _on_shares(self, payloads: dict[int, bytes]) -> list[Message]:
        g = self._group
        commitments = {self.me: self._own_commitment}
        received = {self.me: eval_polynomial(g, self._coeffs, self.me)}
        for j in self.peers:
            commitment, share = self._parse(j, payloads[j])
            # (3) "verify g^(u_ji) = Π_m (ε_jm)^(i^m)"; accuse j otherwise
            if g.base_mul(share) != eval_commitment(g, [g.identity(), *commitment], self.me):
                raise FaultyParticipantError(
                    f"party {j} sent a refresh share not on its commitment", j
                )
            commitments[j] = commitment
            received[j] = share
        self._coeffs = []  # the dealing is done; forget it
        # (4) "x_i^(new) = x_i^(old) + Σ_j u_ji"
        self._newshare = (self._x + sum(received.values())) % g.order
        # Every party's new verification share from the public commitments:
        # X_m^(new) = X_m * Π_i Π_k (ε_ik)^(m^k)  (additively: X_m + Σ_i δ_i(m) * G)
        self._new = next_verification_shares(g, self._vs, commitments)
        self._commitments = {i: tuple(commitments[i]) for i in sorted(commitments)}
        if g.base_mul(self._newshare) != self._new[self.me]:  # pragma: no cover - (3) holds
            raise ParameterError("the new share does not match its verification share")
        self._transcript = refresh_transcript(self._context, commitments)
        if self._hostseckey is not None:
            self._own_sig = schnorr_sign(
                certificate_message(self._transcript), self._hostseckey, self._rand(32)
            )
        return self._broadcast(self._transcript + self._own_sig)

    def _on_echoes(self, payloads: dict[int, bytes]) -> None:
        certificate: dict[int, bytes] = {}
        want = len(self._transcript) + (_SIG_LEN if self._hosts is not None else 0)
        for j in self.peers:
            raw = payloads[j]
            if len(raw) != want:
                raise FaultyParticipantError(
                    f"party {j} sent a refresh echo of the wrong length", j
                )
            if raw[: len(self._transcript)] != self._transcript:
                raise BroadcastMismatchError(
                    "refresh: the parties saw different commitments (a split view)"
                )
            if self._hosts is not None:
                sig = raw[len(self._transcript) :]
                if not schnorr_verify(certificate_message(self._transcript), self._hosts[j], sig):
                    raise FaultyParticipantError(
                        f"party {j} signed the refresh transcript with a wrong signature", j
                    )
                certificate[j] = sig
        if self._hostseckey is not None:
            certificate[self.me] = self._own_sig
        self._finish(
            RefreshResult(
                secshare=self._newshare,
                verification_shares=dict(self._new),
                transcript=self._transcript,
                certificate=certificate,
                commitments=self._commitments,
            )
        )
        self._x = self._newshare = 0


def refresh_local(
    group: Group,
    threshold: int,
    shares: Mapping[int, int],
    verification_shares: Mapping[int, Point],
    context: bytes,
    *,
    hostseckeys: Mapping[int, bytes] | None = None,
) -> dict[int, RefreshResult]:
    """Refresh every party's share in one process: one :class:`RefreshMachine` per party,
    driven by :func:`tmpc.local.run_machines` (the code path party nodes run).

    ``shares`` must hold every party's share (a refresh needs all of them);
    ``hostseckeys`` (optional) makes each party sign the transcript. Returns party id ->
    :class:`RefreshResult` (all with the same verification shares and transcript)."""
    from tmpc.local import run_machines  # the driver sits above the protocol modules

    ids = sorted(shares)
    hosts = None
    if hostseckeys is not None:
        hosts = {i: pubkey_gen(hostseckeys[i]) for i in ids}
    machines = {
        i: RefreshMachine(
            group,
            i,
            ids,
            shares[i],
            threshold,
            verification_shares,
            context,
            hostseckey=hostseckeys[i] if hostseckeys is not None else None,
            host_pubkeys=hosts,
        )
        for i in ids
    }
    out = run_machines(machines)
    return {i: r for i, r in out.items() if isinstance(r, RefreshResult)}
