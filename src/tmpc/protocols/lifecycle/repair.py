"""Share repair: rebuild a lost party's Shamir share with ``t`` helpers, as per-party machines.

A party ``r`` that lost its share gets it back from ``t`` other parties of the wallet (the
helper set ``H``), without a dealer and without any helper learning it; the repaired share is
checked against ``r``'s public verification share ``X_r``, so the key, every address and every
other share stay as they are. This is the Enrollment Repair scheme of Laing and Stinson,
"A Survey and Refinement of Repairable Threshold Schemes" (J. Math. Cryptology 12, 2018;
eprint 2017/1155), as implemented by the Zcash Foundation's FROST (module
``frost_core::keys::repairable``, "Repairable Threshold Scheme (RTS)"). In the paper's
notation, with ``f`` the sharing polynomial, ``x_j = f(j)`` and ``λ_j^H(r)`` the Lagrange
coefficient of ``j`` over ``H`` evaluated at ``r`` (our paraphrase of the scheme):

    RTS step 1, at each helper j in H: compute ζ_j = λ_j^H(r)·x_j and split it into |H|
        random summands, ζ_j = Σ_{k in H} δ_jk; send δ_jk privately to helper k.
    RTS step 2, at each helper k: σ_k = Σ_{j in H} δ_jk; send σ_k privately to r.
    RTS step 3, at r: x_r = Σ_{k in H} σ_k  (= Σ_j λ_j^H(r)·f(j) = f(r)).

The paper and ZF FROST assume honest helpers. tmpc adds public points for attribution: each
helper publishes ``Δ_jk = δ_jk·G`` for every ``k``, so every member can check
``Σ_k Δ_jk == λ_j^H(r)·X_j`` (a helper that splits anything but ``λ_j^H(r)·x_j`` is named),
each helper ``k`` checks ``δ_jk·G == Δ_jk`` (a part off its point names its sender) and ``r``
checks ``σ_k·G == Σ_j Δ_jk`` (a bad partial sum names its sender).

tmpc's machine (:class:`RepairMachine`, two rounds, ``repair``; the session members are the
helpers and ``r``, with the wallet's Shamir ids as party ids):

- **Round 1**, point to point from each helper ``j``: to each other helper ``k`` the vector
  ``(Δ_jk)_{k in H}`` (``t`` points, in id order) followed by ``δ_jk``; to ``r`` the vector
  alone. ``r`` holds nothing to send, but :class:`~tmpc.protocols.machine.RoundMachine` needs
  one message from every peer in every round, so ``r`` broadcasts an **empty** payload, and a
  helper refuses any other (naming ``r``).
- After round 1 every member checks every vector (sum, and at a helper its own part); a helper
  computes ``σ_k``; every member hashes the transcript (the context, ``r``, ``H`` and every
  ``Δ`` vector, :func:`repair_transcript`).
- **Round 2**: every helper sends every member its echo of the transcript and, with host keys,
  its BIP340 signature over it; its message to ``r`` also carries ``σ_k``. ``r`` broadcasts its
  own echo (it signs nothing: its host key is usually lost with its share). A different echo is
  a split view (:class:`~tmpc.protocols.machine.BroadcastMismatchError`, unattributed: the node
  finds the equivocating sender from the signed envelopes); ``r`` compares the echoes before it
  checks any ``σ_k``, so a helper that showed ``r`` other ``Δ`` points than the other helpers
  cannot get an honest helper blamed. A bad signature names its signer. The helpers'
  signatures are the repair's certificate.
- Finally ``r`` computes ``x_r = Σ_k σ_k`` and checks ``x_r·G == X_r``.

Lengths, points (strict decoding: on the curve, in the subgroup, canonical, not the identity)
and scalars (below the order) of every received message are checked; a malformed message
names its sender. Culprits are party ids (1-based). All members must agree on whether host
keys are used (the message lengths differ).

**Why no helper learns x_r.** Helper ``j`` draws the ``t-1`` parts it sends, ``δ_jk`` for
``k != j``, uniformly at random and independently of its share, and keeps the remainder
``δ_jj = ζ_j - Σ_{k != j} δ_jk`` (ZF FROST gives the remainder to the last helper instead: any
``t-1`` of the parts are uniform either way). So the scalars a helper receives are fresh
randomness, whatever ``x_r`` is; ``σ_k`` goes to ``r`` only. A coalition ``C`` of fewer than
``t`` helpers sees, besides its own shares, parts that are uniform and independent of the
other helpers' shares, and points ``Δ`` that it could simulate from the public verification
shares alone (random points for the parts it does not hold, the last one fixed by the public
sum ``λ_j^H(r)·X_j``), so it learns nothing about ``x_r`` beyond the public ``X_r`` (under the
discrete-logarithm assumption for the points; unconditionally for the scalars).

**What it does not protect against.** ``t`` parties can always compute every share (they
interpolate ``f``); in particular all of ``H`` together, or ``r`` with ``t-1`` helpers (``r``'s
repaired share is its ``t``-th), can compute any helper's share from the repair transcript.
A dishonest helper can make the repair abort (it is named, or, for a split view, found from
the signed envelopes), but cannot make ``r`` accept a wrong share: ``x_r·G`` is checked
against ``X_r``. The wallet's verification shares must be right: every member checks that
``X_r`` is the interpolation of the helpers' ``X_j`` (a check a wrong threshold also fails).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tmpc.encoding import lp_join, tagged_hash
from tmpc.errors import DecodeError, FaultyParticipantError, ParameterError, ProtocolError
from tmpc.group.base import Group, Point
from tmpc.ids import MAX_PARTY_ID
from tmpc.primitives.bip340 import pubkey_gen, schnorr_sign, schnorr_verify
from tmpc.protocols.machine import (
    BroadcastMismatchError,
    Message,
    RandBytes,
    RoundMachine,
    transcript_hash,
)
from tmpc.sharing import check_ids, scalar_from

__all__ = [
    "RepairMachine",
    "RepairResult",
    "certificate_message",
    "repair_context",
    "repair_local",
    "repair_transcript",
]

_ECHO_TAG = "tmpc/repair/echo/v1"
_CERT_TAG = "tmpc/repair/certificate/v1"
_CONTEXT_TAG = b"tmpc/repair/context/v1"
_HASH_LEN = 32
_SIG_LEN = 64


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def certificate_message(transcript: bytes) -> bytes:
    """The 32-byte message each helper's host key signs: ``tagged_hash(tag, transcript)``."""
    return tagged_hash(_CERT_TAG, transcript)


def repair_context(wallet_id: str, epoch: int, lost: int, session_id: bytes) -> bytes:
    """The 32-byte context a repair binds: wallet, its epoch, the lost party and the session.

    ``session_id`` is 32 bytes and **must not** be reused for another repair. Raises
    :class:`ParameterError` for a negative epoch, a bad party id or a session id of another
    length."""
    if not _is_int(epoch) or not 0 <= epoch < 2**64:
        raise ParameterError("the epoch is an integer from 0 to 2^64-1")
    if not _is_int(lost) or not 1 <= lost <= MAX_PARTY_ID:
        raise ParameterError(f"the lost party's id is an integer from 1 to {MAX_PARTY_ID}")
    if not isinstance(session_id, bytes) or len(session_id) != 32:
        raise ParameterError("a repair session id is 32 bytes")
    return hashlib.sha256(
        lp_join([_CONTEXT_TAG, wallet_id.encode(), epoch.to_bytes(8, "big"),
                 lost.to_bytes(4, "big"), session_id])
    ).digest()  # fmt: skip


def repair_transcript(
    context: bytes, lost: int, helpers: Sequence[int], deltas: Mapping[int, Sequence[Point]]
) -> bytes:
    """The 32-byte hash every member echoes and every helper signs: the context, the lost
    party, the helper set and every helper's public vector ``(Δ_jk)_k`` (helper -> ``t``
    points in helper-id order)."""
    header = context + lost.to_bytes(4, "big") + b"".join(h.to_bytes(4, "big") for h in helpers)
    vectors = {j: b"".join(p.encode() for p in deltas[j]) for j in helpers}
    return transcript_hash(_ECHO_TAG, {0: header, **vectors})


def _lagrange_at(group: Group, ids: Sequence[int], i: int, x: int) -> int:
    """``λ_i(x) = Π_{m != i} (x - m) / (i - m)``: the Lagrange coefficient of ``i`` over
    ``ids``, evaluated at ``x`` (so ``f(x) = Σ_i λ_i(x)·f(i)`` for ``deg f < len(ids)``)."""
    q = group.order
    num, den = 1, 1
    for m in ids:
        if m == i:
            continue
        num = num * (x - m) % q
        den = den * (i - m) % q
    return num * pow(den, -1, q) % q


@dataclass(frozen=True)
class RepairResult:
    """One member's output of a repair.

    ``secshare`` is the repaired share ``x_r`` at the lost party and None at a helper (secret;
    not in :func:`repr`). The rest is public and the same at every member: the lost party's id,
    the helper set, its verification share ``X_r`` (which ``x_r`` matches), the transcript hash
    and ``certificate`` (helper id -> BIP340 signature of its host key over
    :func:`certificate_message` of the transcript; empty without host keys)."""

    lost: int
    helpers: tuple[int, ...]
    secshare: int | None = field(repr=False)
    verification_share: Point
    transcript: bytes
    certificate: dict[int, bytes]


class RepairMachine(RoundMachine):
    """One member's side of a share repair (see the module docstring).

    The session's participants are ``helpers`` and ``lost``.

    Args:
        group: the wallet's group.
        me: this member's id (a helper's or the lost party's Shamir id).
        helpers: the helper set ``H``: exactly ``threshold`` of the wallet's parties, not
            ``lost``.
        lost: the id of the party whose share is rebuilt.
        threshold: the wallet's threshold ``t``.
        verification_shares: every wallet party's verification share ``X_m``.
        context: the 32 bytes the repair is bound to (:func:`repair_context`).
        secshare: this helper's share (secret); None at the lost party.
        hostseckey: a helper's 32-byte host key, to sign the transcript (None: no certificate;
            always None at the lost party, which signs nothing).
        host_pubkeys: every helper's 32-byte x-only host key (other entries are ignored);
            given at every member when the helpers sign, at none otherwise.
        rand: randomness source (``secrets.token_bytes`` if None).

    Raises:
        ParameterError: unknown ids, a helper set of another size than ``threshold``, ``lost``
            in the helper set, verification shares that are not a degree ``t-1`` sharing over
            ``H`` and ``lost``, a bad context, a share that is not this helper's (or one given
            to the lost party), or bad host keys.
    """

    protocol = "repair"
    rounds = 2

    def __init__(
        self,
        group: Group,
        me: int,
        helpers: Sequence[int],
        lost: int,
        threshold: int,
        verification_shares: Mapping[int, Point],
        context: bytes,
        *,
        secshare: int | None = None,
        hostseckey: bytes | None = None,
        host_pubkeys: Mapping[int, bytes] | None = None,
        rand: RandBytes | None = None,
    ) -> None:
        vs, hs = _check_session(group, helpers, lost, threshold, verification_shares)
        super().__init__(me, sorted((*hs, lost)))
        self._group = group
        self._helpers = hs
        self._lost = lost
        self._t = threshold
        self._vs = vs
        if not isinstance(context, bytes) or len(context) != 32:
            raise ParameterError("the repair context is 32 bytes")
        self._context = context
        self._is_helper = me != lost
        self._x = 0
        if self._is_helper:
            if (
                not isinstance(secshare, int)
                or isinstance(secshare, bool)
                or not 0 < secshare < group.order
            ):
                raise ParameterError("a helper's secret share is a scalar in [1, order-1]")
            if group.base_mul(secshare) != vs[me]:
                raise ParameterError(f"the secret share is not party {me}'s")
            self._x = secshare
        elif secshare is not None:
            raise ParameterError(f"party {lost} is the one repaired: it has no share to give")
        self._hosts = _check_hosts(hs, me, self._is_helper, hostseckey, host_pubkeys)
        self._hostseckey = hostseckey
        self._rand = rand or secrets.token_bytes
        # λ_j^H(r) for every helper: every member checks every helper's public sum.
        self._lam = {j: _lagrange_at(group, hs, j, lost) for j in hs}
        self._parts: dict[int, int] = {}  # δ_(me)k, a helper's own split (secret)
        self._deltas: dict[int, tuple[Point, ...]] = {}  # j -> (Δ_jk)_k, public
        self._sigma = 0  # σ_(me) at a helper (secret)
        self._transcript = b""
        self._own_sig = b""

    def __repr__(self) -> str:
        role = "lost party" if not self._is_helper else "helper"
        return f"<RepairMachine of {self.me} ({role}), repairing {self._lost}, round {self.round}>"

    @property
    def result(self) -> RepairResult:
        """This member's :class:`RepairResult` (raises before it is done)."""
        out = super().result
        assert isinstance(out, RepairResult)
        return out

    @property
    def _sig_len(self) -> int:
        return _SIG_LEN if self._hosts is not None else 0

    def _scalar(self) -> int:
        return scalar_from(self._group, self._rand)

    # RTS step 1 -------------------------------------------------------------------------------

    def _start(self) -> list[Message]:
        if not self._is_helper:
            # The lost party holds nothing; RoundMachine wants one message per peer per round,
            # so it sends an empty placeholder (helpers accept nothing else).
            return self._broadcast(b"")
        g, me, q = self._group, self.me, self._group.order
        # RTS step 1 (ZF FROST `compute_lagrange_coefficient`):
        # > computes `zeta_i` such that f(participant) is the sum of all `zeta_i * share_i`
        # > for each `i` in `helpers`.
        # (ZF's zeta_i is the coefficient; here ζ_j = λ_j^H(r)·x_j is the product.)
        zeta = self._lam[me] * self._x % q
        # RTS step 1 (ZF FROST `repair_share_step_1`):
        # > Generates the "delta" values from `helper_i` to help `participant` recover their
        # > share
        # The parts sent away are fresh randomness; this helper keeps the remainder, which is
        # redrawn in the (probability 1/q) case that it is 0 (Δ must not be the identity).
        while True:
            parts = {k: self._scalar() for k in self._helpers if k != me}
            own = (zeta - sum(parts.values())) % q
            if own:
                break
        parts[me] = own
        self._parts = parts
        deltas = tuple(g.base_mul(parts[k]) for k in self._helpers)
        self._deltas[me] = deltas
        blob = b"".join(d.encode() for d in deltas)
        # Communication round (ZF FROST):
        # > `helper_i` sends 1 `delta_j` to all other helpers (j)
        # Each part goes with the public vector Δ_j; the lost party gets the vector alone.
        out = {k: blob + g.encode_scalar(parts[k]) for k in self._helpers if k != me}
        out[self._lost] = blob
        return self._direct(out)

    # Receiving ---------------------------------------------------------------------------------

    def _parse_deltas(self, sender: int, raw: bytes) -> tuple[Point, ...]:
        g = self._group
        n = g.element_len
        try:
            return tuple(g.decode_point(raw[i * n : (i + 1) * n]) for i in range(self._t))
        except DecodeError:
            raise FaultyParticipantError(
                f"repair: party {sender} sent a malformed point in its round-1 message", sender
            ) from None

    def _check_sum(self, j: int, deltas: Sequence[Point]) -> None:
        # Attribution (tmpc): Σ_k Δ_jk must be λ_j^H(r)·X_j, the public image of ζ_j.
        if self._group.sum_points(list(deltas)) != self._vs[j] * self._lam[j]:
            raise FaultyParticipantError(
                f"repair: party {j}'s parts do not add up to its share's contribution", j
            )

    def _on_round(self, r: int, payloads: dict[int, bytes]) -> list[Message]:
        if r == 1:
            return self._on_parts(payloads) if self._is_helper else self._on_vectors(payloads)
        if self._is_helper:
            self._on_echoes(payloads)
        else:
            self._on_sigmas(payloads)
        return []

    # RTS step 2, at a helper ------------------------------------------------------------------

    def _on_parts(self, payloads: dict[int, bytes]) -> list[Message]:
        g, me = self._group, self.me
        if payloads[self._lost] != b"":
            raise FaultyParticipantError(
                f"repair: party {self._lost} (repaired) sent a non-empty round-1 message",
                self._lost,
            )
        want = self._t * g.element_len + g.scalar_len
        received = {me: self._parts[me]}
        idx = self._helpers.index(me)
        for j in self._helpers:
            if j == me:
                continue
            raw = payloads[j]
            if len(raw) != want:
                raise FaultyParticipantError(
                    f"repair: party {j} sent a round-1 message of the wrong length", j
                )
            deltas = self._parse_deltas(j, raw[: -g.scalar_len])
            try:
                part = g.decode_scalar(raw[-g.scalar_len :])
            except DecodeError:
                raise FaultyParticipantError(
                    f"repair: party {j} sent a malformed scalar in its round-1 message", j
                ) from None
            # Attribution (tmpc): the part j sent us is the one it published, δ_jk·G == Δ_jk.
            if g.base_mul(part) != deltas[idx]:
                raise FaultyParticipantError(
                    f"repair: party {j} sent a part that is not its published point", j
                )
            self._check_sum(j, deltas)
            self._deltas[j] = deltas
            received[j] = part
        # RTS step 2 (ZF FROST `repair_share_step_2`):
        # > `sigma` is the sum of all received `delta` and the `delta_i` generated for
        # > `helper_i`.
        self._sigma = sum(received.values()) % g.order
        self._parts = {}
        self._x = 0  # the split is done; this session needs the share no more
        self._transcript = repair_transcript(self._context, self._lost, self._helpers, self._deltas)
        if self._hostseckey is not None:
            self._own_sig = schnorr_sign(
                certificate_message(self._transcript), self._hostseckey, self._rand(32)
            )
        echo = self._transcript + self._own_sig
        # Communication round (ZF FROST):
        # > `helper_j` sends 1 `sigma_j` to the `participant` repairing their share.
        out = {k: echo for k in self._helpers if k != me}
        out[self._lost] = echo + g.encode_scalar(self._sigma)
        self._sigma = 0
        return self._direct(out)

    def _check_echoes(self, echoes: dict[int, bytes]) -> dict[int, bytes]:
        """Compare every echo (transcript hash, then a signature from a helper) with ours;
        returns the helpers' signatures (the certificate)."""
        for raw in echoes.values():
            if raw[:_HASH_LEN] != self._transcript:
                raise BroadcastMismatchError(
                    "repair: the members saw different public parts (a split view)"
                )
        certificate: dict[int, bytes] = {}
        if self._hosts is not None:
            message = certificate_message(self._transcript)
            for j, raw in echoes.items():
                if j == self._lost:
                    continue
                sig = raw[_HASH_LEN:]
                if not schnorr_verify(message, self._hosts[j], sig):
                    raise FaultyParticipantError(
                        f"repair: party {j} signed the repair transcript with a wrong signature",
                        j,
                    )
                certificate[j] = sig
            if self._is_helper:
                certificate[self.me] = self._own_sig
        return dict(sorted(certificate.items()))

    def _on_echoes(self, payloads: dict[int, bytes]) -> None:
        for p, raw in payloads.items():
            want = _HASH_LEN + (0 if p == self._lost else self._sig_len)
            if len(raw) != want:
                raise FaultyParticipantError(
                    f"repair: party {p} sent a round-2 message of the wrong length", p
                )
        certificate = self._check_echoes(payloads)
        self._finish(self._result_with(None, certificate))

    # RTS step 3, at the lost party -----------------------------------------------------------

    def _on_vectors(self, payloads: dict[int, bytes]) -> list[Message]:
        want = self._t * self._group.element_len
        for j in self._helpers:
            raw = payloads[j]
            if len(raw) != want:
                raise FaultyParticipantError(
                    f"repair: party {j} sent a round-1 message of the wrong length", j
                )
            deltas = self._parse_deltas(j, raw)
            self._check_sum(j, deltas)
            self._deltas[j] = deltas
        self._transcript = repair_transcript(self._context, self._lost, self._helpers, self._deltas)
        return self._broadcast(self._transcript)

    def _on_sigmas(self, payloads: dict[int, bytes]) -> None:
        g = self._group
        want = _HASH_LEN + self._sig_len + g.scalar_len
        sigmas: dict[int, int] = {}
        for k in self._helpers:
            raw = payloads[k]
            if len(raw) != want:
                raise FaultyParticipantError(
                    f"repair: party {k} sent a round-2 message of the wrong length", k
                )
            try:
                sigmas[k] = g.decode_scalar(raw[-g.scalar_len :])
            except DecodeError:
                raise FaultyParticipantError(
                    f"repair: party {k} sent a malformed scalar in its round-2 message", k
                ) from None
        # Echoes first: with a split view the σ_k below would be checked against points the
        # helper never saw, and an honest helper could be blamed.
        certificate = self._check_echoes({k: payloads[k][: -g.scalar_len] for k in self._helpers})
        idx = {k: i for i, k in enumerate(self._helpers)}
        for k in self._helpers:
            # Attribution (tmpc): σ_k·G == Σ_j Δ_jk.
            expected = g.sum_points([self._deltas[j][idx[k]] for j in self._helpers])
            if g.base_mul(sigmas[k]) != expected:
                raise FaultyParticipantError(
                    f"repair: party {k} sent a partial sum that is not on the public parts", k
                )
        # RTS step 3 (ZF FROST `repair_share_step_3`):
        # > The `participant` sums all `sigma_j` received to compute the `share`.
        share = sum(sigmas.values()) % g.order
        sigmas.clear()
        if g.base_mul(share) != self._vs[self._lost]:  # pragma: no cover - the checks above
            # Σ_k σ_k·G = Σ_j λ_j^H(r)·X_j, which __init__ checked to be X_r.
            raise ProtocolError("repair: the repaired share does not match its verification share")
        self._finish(self._result_with(share, certificate))

    def _result_with(self, share: int | None, certificate: dict[int, bytes]) -> RepairResult:
        return RepairResult(
            lost=self._lost,
            helpers=self._helpers,
            secshare=share,
            verification_share=self._vs[self._lost],
            transcript=self._transcript,
            certificate=certificate,
        )


def _check_session(
    group: Group,
    helpers: Sequence[int],
    lost: int,
    threshold: int,
    verification_shares: Mapping[int, Point],
) -> tuple[dict[int, Point], tuple[int, ...]]:
    """Check the public parameters every member must agree on; returns the verification
    shares and the sorted helper set."""
    if not isinstance(verification_shares, Mapping):
        raise ParameterError("verification shares are a mapping of party id to point")
    vs = dict(verification_shares)
    check_ids(group, list(vs))
    for i, point in vs.items():
        if i > MAX_PARTY_ID:
            raise ParameterError(f"party ids are at most {MAX_PARTY_ID}")
        if not isinstance(point, Point) or point.group is not group or point.is_identity():
            raise ParameterError(f"party {i}'s verification share is not a point of the group")
    n = len(vs)
    if not _is_int(threshold) or not 1 <= threshold <= n:
        raise ParameterError(f"threshold must be between 1 and {n}")
    hs = tuple(helpers)
    if not all(_is_int(j) for j in hs) or not _is_int(lost):
        raise ParameterError("party ids are integers")
    if len(set(hs)) != len(hs):
        raise ParameterError("a helper is listed twice")
    if len(hs) != threshold:
        raise ParameterError(f"a repair needs exactly {threshold} helpers, {len(hs)} given")
    for j in (*hs, lost):
        if j not in vs:
            raise ParameterError(f"party {j} is not a party of this wallet")
    if lost in hs:
        raise ParameterError(f"party {lost} cannot help repair its own share")
    hs = tuple(sorted(hs))
    # The helpers' public shares must interpolate to X_r (so the repaired share will match):
    # Σ_j λ_j^H(r)·X_j == X_r holds for a degree t-1 sharing and fails for a wrong threshold.
    image = group.sum_points([vs[j] * _lagrange_at(group, hs, j, lost) for j in hs])
    if image != vs[lost]:
        raise ParameterError(
            "the verification shares are not a sharing of this threshold over the helpers and "
            f"party {lost}"
        )
    return vs, hs


def _check_hosts(
    helpers: tuple[int, ...],
    me: int,
    is_helper: bool,
    hostseckey: bytes | None,
    host_pubkeys: Mapping[int, bytes] | None,
) -> dict[int, bytes] | None:
    if not is_helper and hostseckey is not None:
        raise ParameterError("the lost party signs nothing: give it no host secret key")
    if is_helper and (hostseckey is None) != (host_pubkeys is None):
        raise ParameterError("give the host secret key and every helper's host key, or neither")
    if host_pubkeys is None:
        return None
    hosts: dict[int, bytes] = {}
    for j in helpers:
        key = host_pubkeys.get(j)
        if not isinstance(key, bytes) or len(key) != 32:
            raise ParameterError(f"helper {j}'s 32-byte x-only host key is missing")
        hosts[j] = key
    if hostseckey is not None:
        if not isinstance(hostseckey, bytes) or len(hostseckey) != 32:
            raise ParameterError("a host secret key is 32 bytes")
        if pubkey_gen(hostseckey) != hosts[me]:
            raise ParameterError(f"the host secret key is not party {me}'s")
    return hosts


def repair_local(
    group: Group,
    threshold: int,
    helper_shares: Mapping[int, int],
    verification_shares: Mapping[int, Point],
    lost: int,
    context: bytes,
    *,
    hostseckeys: Mapping[int, bytes] | None = None,
) -> RepairResult:
    """Repair party ``lost``'s share in one process: one :class:`RepairMachine` per helper and
    one for ``lost``, driven by :func:`tmpc.local.run_machines` (the code path nodes run).

    ``helper_shares`` maps each helper (exactly ``threshold`` of the wallet's parties, not
    ``lost``) to its share; ``verification_shares`` holds every party's; ``context`` is 32
    bytes (:func:`repair_context`); ``hostseckeys`` (optional, one per helper) makes the
    helpers sign the transcript. Returns the lost party's :class:`RepairResult`, whose
    ``secshare`` is the repaired share (checked against ``verification_shares[lost]``).

    Raises :class:`ParameterError` for bad parameters (see :class:`RepairMachine`) and
    :class:`~tmpc.errors.ProtocolError` naming a misbehaving member.
    """
    from tmpc.local import run_machines  # the driver sits above the protocol modules

    if not all(_is_int(j) for j in helper_shares):
        raise ParameterError("party ids are integers")
    helpers = sorted(helper_shares)
    hosts = None
    if hostseckeys is not None:
        if set(hostseckeys) != set(helpers):
            raise ParameterError("one host secret key per helper is needed")
        hosts = {j: pubkey_gen(hostseckeys[j]) for j in helpers}
    machines: dict[int, RepairMachine] = {
        j: RepairMachine(
            group,
            j,
            helpers,
            lost,
            threshold,
            verification_shares,
            context,
            secshare=helper_shares[j],
            hostseckey=hostseckeys[j] if hostseckeys is not None else None,
            host_pubkeys=hosts,
        )
        for j in helpers
    }
    machines[lost] = RepairMachine(
        group, lost, helpers, lost, threshold, verification_shares, context, host_pubkeys=hosts
    )
    run_machines(machines)
    return machines[lost].result
