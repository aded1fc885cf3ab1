"""Adversarial DKLs23 signers: every check of tmpc.protocols.ecdsa.dkls23 has a cheater.

Each test runs the real stack (real OT-based multiplication) with one cheating signer ``C``
whose messages are tampered with between rounds, and asserts the error type, that the error
names ``C`` exactly (so no honest signer is blamed), or, for the failures DKLs23 cannot
attribute, a ProtocolError with no culprits at all.
"""

from __future__ import annotations

import copy
import pickle
import secrets
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from tests.test_dkls23 import Wallet, digest_of, independent_verify, make_wallet
from tmpc.errors import (
    FaultyParticipantError,
    ParameterError,
    ProtocolError,
    StateError,
    TmpcError,
)
from tmpc.group import SECP256K1
from tmpc.protocols.ecdsa.dkls23 import (
    CommitmentCheckError,
    EcdsaPairwise,
    GammaCheckError,
    PairwiseSetupMsg2,
    Presignature,
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
    sign_with_presignatures,
)
from tmpc.protocols.ecdsa.errors import MulCheckError, OTCheckError, PairwiseCheckError

G = SECP256K1
N = G.order
SIGNERS = (1, 3, 4)
CHEATER = 3
HONEST = (1, 4)


@pytest.fixture
def w() -> Wallet:
    """A 3-of-5 key with a fresh pairwise setup among the signers for every test: a failed
    pairwise check is terminal for the pair, so material once cheated on is never reused."""
    return make_wallet(3, 5, list(SIGNERS))


class Run:
    """One presigning session, round by round, so a test can tamper between rounds.

    ``m1[s][r]`` / ``m2[s][r]`` is the message from ``s`` to ``r`` (typed or bytes).
    """

    def __init__(
        self,
        w: Wallet,
        signers: tuple[int, ...] = SIGNERS,
        shares: dict[int, int] | None = None,
        pairwise: dict[int, EcdsaPairwise] | None = None,
    ) -> None:
        self.w, self.signers = w, signers
        self.sid = secrets.token_bytes(32)
        shares = shares or w.shares
        pairwise = pairwise or w.pairwise
        self.st1: dict[int, PresignState1] = {}
        self.m1: dict[int, dict[int, Any]] = {}
        for i in signers:
            self.st1[i], m = presign_round1(i, shares[i], w.PK, pairwise[i], signers, self.sid)
            self.m1[i] = dict(m)
        self.st2: dict[int, PresignState2] = {}
        self.m2: dict[int, dict[int, Any]] = {}

    def inbox(self, msgs: dict[int, dict[int, Any]], i: int) -> dict[int, Any]:
        return {j: msgs[j][i] for j in self.signers if j != i}

    def round2(self) -> dict[int, TmpcError]:
        errors: dict[int, TmpcError] = {}
        for i in self.signers:
            try:
                self.st2[i], m = presign_round2(self.st1[i], self.inbox(self.m1, i))
                self.m2[i] = dict(m)
            except TmpcError as exc:
                errors[i] = exc
        return errors

    def round3(self) -> tuple[dict[int, Presignature], dict[int, TmpcError]]:
        presigs: dict[int, Presignature] = {}
        errors: dict[int, TmpcError] = {}
        for i in self.signers:
            try:
                presigs[i] = presign_round3(self.st2[i], self.inbox(self.m2, i))
            except TmpcError as exc:
                errors[i] = exc
        return presigs, errors


def assert_blames(
    errors: dict[int, TmpcError],
    cls: type[TmpcError],
    victims: tuple[int, ...] = HONEST,
    cheater: int = CHEATER,
) -> None:
    """Every victim aborted with ``cls`` naming exactly the cheater; no honest party blamed."""
    assert set(victims) <= set(errors), f"no abort at {set(victims) - set(errors)}"
    for i in victims:
        err = errors[i]
        assert isinstance(err, cls), f"party {i}: {type(err).__name__}: {err}"
        assert isinstance(err, ProtocolError)
        assert err.culprits == (cheater,), f"party {i} blamed {err.culprits}"
    for err in errors.values():
        assert isinstance(err, ProtocolError)
        assert not set(err.culprits) & set(HONEST), "an honest party was blamed"


def assert_unattributed(errors: dict[int, TmpcError], victims: tuple[int, ...] = HONEST) -> None:
    assert set(victims) <= set(errors)
    for i in victims:
        err = errors[i]
        assert type(err) is ProtocolError, f"party {i}: {type(err).__name__}: {err}"
        assert err.culprits == ()


def flip(data: bytes, pos: int) -> bytes:
    return data[:pos] + bytes([data[pos] ^ 1]) + data[pos + 1 :]


# --- honest baseline -----------------------------------------------------------------------


def test_harness_honest_run_signs(w: Wallet) -> None:
    run = Run(w)
    assert run.round2() == {}
    presigs, errors = run.round3()
    assert errors == {}
    digest = digest_of(b"baseline")
    independent_verify(w.PK, digest, *sign_with_presignatures(presigs, w.PK, digest))


# --- round 1 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cut", [0, 10, 95, 96], ids=["empty", "short", "no-mul-msg-1", "no-mul-msg"]
)
def test_round1_malformed_names_sender(w: Wallet, cut: int) -> None:
    run = Run(w)
    for i in HONEST:
        run.m1[CHEATER][i] = run.m1[CHEATER][i].to_bytes()[:cut]
    assert_blames(run.round2(), FaultyParticipantError)


def test_round1_misaddressed_names_sender(w: Wallet) -> None:
    run = Run(w)
    run.m1[CHEATER][1] = run.m1[CHEATER][4]  # the message meant for 4, sent to 1
    run.m1[CHEATER][4] = replace(run.m1[CHEATER][4], sender=1)  # posing as party 1
    assert_blames(run.round2(), FaultyParticipantError)


def test_round1_tampered_multiplication_message(w: Wallet) -> None:
    run = Run(w)
    for i in HONEST:
        m = run.m1[CHEATER][i]
        # the last byte is in the consistency-check values t~, which Alice always checks
        run.m1[CHEATER][i] = replace(m, mul_msg=flip(m.mul_msg, len(m.mul_msg) - 1))
    errors = run.round2()
    assert_blames(errors, FaultyParticipantError)
    assert all(isinstance(errors[i], OTCheckError) for i in HONEST)


def test_round1_bad_commitment(w: Wallet) -> None:
    # C commits to garbage towards party 1: R_C does not open it (attributed at 1), and
    # party 4, which got the real commitment, sees 1's echo differ (not attributable at 4)
    run = Run(w)
    run.m1[CHEATER][1] = replace(run.m1[CHEATER][1], commitment=secrets.token_bytes(32))
    assert run.round2() == {}
    _, errors = run.round3()
    assert_blames(errors, CommitmentCheckError, victims=(1,))
    assert_unattributed(errors, victims=(4,))


def test_inconsistent_broadcast_two_nonces(w: Wallet) -> None:
    """C runs two instances with different R_C, committing to one towards party 1 and to the
    other towards party 4, each consistent with its multiplications: every pairwise check
    passes, and only the echo of the commitments catches it (not attributable here)."""
    # the setup is fresh, so the cheater's copy of its pairwise material never ran a session
    twin = {CHEATER: EcdsaPairwise.from_bytes(w.pairwise[CHEATER].to_bytes())}
    run_a = Run(w)
    sid = run_a.sid
    st_b, m_b = presign_round1(CHEATER, w.shares[CHEATER], w.PK, twin[CHEATER], SIGNERS, sid)
    assert m_b[4].commitment != run_a.m1[CHEATER][4].commitment
    run_a.m1[CHEATER][4] = m_b[4]
    inbox_c = run_a.inbox(run_a.m1, CHEATER)
    assert run_a.round2() == {}
    _, m2_b = presign_round2(st_b, inbox_c)
    run_a.m2[CHEATER][4] = m2_b[4]
    _, errors = run_a.round3()
    assert_unattributed(errors)


# --- round 2 ---------------------------------------------------------------------------------


def _tamper2(w: Wallet, **changes: Any) -> dict[int, TmpcError]:
    run = Run(w)
    assert run.round2() == {}
    for i in HONEST:
        run.m2[CHEATER][i] = replace(run.m2[CHEATER][i], **changes)
    return run.round3()[1]


def test_round2_decommitment_wrong_R(w: Wallet) -> None:
    assert_blames(_tamper2(w, R=G.base_mul(G.random_scalar())), CommitmentCheckError)


def test_round2_decommitment_wrong_salt(w: Wallet) -> None:
    assert_blames(_tamper2(w, salt=secrets.token_bytes(32)), CommitmentCheckError)


def test_round2_wrong_gamma_u(w: Wallet) -> None:
    assert_blames(_tamper2(w, gamma_u=G.base_mul(G.random_scalar())), GammaCheckError)


def test_round2_wrong_gamma_v(w: Wallet) -> None:
    assert_blames(_tamper2(w, gamma_v=G.base_mul(G.random_scalar())), GammaCheckError)


def test_round2_wrong_pk(w: Wallet) -> None:
    assert_blames(_tamper2(w, pk=G.base_mul(G.random_scalar())), GammaCheckError)


def test_round2_pk_shifted_by_generator(w: Wallet) -> None:
    # pk_C + G with everything else honest: the Gamma^v check catches it before the sum check
    run = Run(w)
    assert run.round2() == {}
    for i in HONEST:
        m = run.m2[CHEATER][i]
        run.m2[CHEATER][i] = replace(m, pk=m.pk + G.generator())
    assert_blames(run.round3()[1], GammaCheckError)


@pytest.mark.parametrize(
    ("pos", "cls"),
    [(-160, MulCheckError), (-1, GammaCheckError)],
    ids=["correlations-mul-check", "input-adjustment-gamma-check"],
)
def test_round2_tampered_multiplication_message(
    w: Wallet, pos: int, cls: type[PairwiseCheckError]
) -> None:
    # Alice's reply is tau || H(r) || u (2 x 32) || gamma_A (2 x 32): a byte of H(r) fails
    # Bob's multiplication check; a byte of her input adjustment gamma_A is a different
    # input, which the multiplication cannot see but the Gamma checks of DKLs23 catch
    run = Run(w)
    assert run.round2() == {}
    for i in HONEST:
        m = run.m2[CHEATER][i]
        run.m2[CHEATER][i] = replace(m, mul_msg=flip(m.mul_msg, pos % len(m.mul_msg)))
    errors = run.round3()[1]
    assert_blames(errors, cls)


def test_pair_refused_after_failed_multiplication_check(w: Wallet) -> None:
    run = Run(w)
    assert run.round2() == {}
    for i in HONEST:
        m = run.m2[CHEATER][i]
        run.m2[CHEATER][i] = replace(m, mul_msg=flip(m.mul_msg, len(m.mul_msg) - 160))
    assert_blames(run.round3()[1], MulCheckError)
    # terminal: the next session with the cheater is refused before any secret-dependent
    # work, also after the pairwise material went through storage
    stored = EcdsaPairwise.from_bytes(w.pairwise[1].to_bytes())
    for pw in (w.pairwise[1], stored):
        with pytest.raises(PairwiseCheckError) as ei:
            presign_round1(1, w.shares[1], w.PK, pw, SIGNERS, secrets.token_bytes(32))
        assert ei.value.culprits == (CHEATER,)


@pytest.mark.parametrize("where", ["R-identity-prefix", "pk-off-curve", "psi-too-big"])
def test_round2_malformed_names_sender(w: Wallet, where: str) -> None:
    run = Run(w)
    assert run.round2() == {}
    for i in HONEST:
        data = run.m2[CHEATER][i].to_bytes()
        if where == "R-identity-prefix":
            data = data[:64] + b"\x00" * 33 + data[97:]
        elif where == "pk-off-curve":
            data = data[:129] + b"\x02" + b"\xff" * 32 + data[162:]
        else:
            data = data[:228] + N.to_bytes(32, "big") + data[260:]
        run.m2[CHEATER][i] = data
    assert_blames(run.round3()[1], FaultyParticipantError)


def test_round2_consistent_wrong_key_share_is_not_attributable(w: Wallet) -> None:
    # C uses x_C + 1 consistently (multiplication, pk_C, Gamma^v all agree): every pairwise
    # check passes, and only sum pk_j != PK fails, which no party can attribute
    shares = dict(w.shares)
    shares[CHEATER] = (shares[CHEATER] + 1) % N
    run = Run(w, shares=shares)
    assert run.round2() == {}
    assert_unattributed(run.round3()[1])


def test_round2_lying_echo_is_not_attributable(w: Wallet) -> None:
    errors = _tamper2(w, echo=secrets.token_bytes(32))
    assert_unattributed(errors)


def test_round2_bad_psi_fails_at_signing_not_attributable(w: Wallet) -> None:
    run = Run(w)
    assert run.round2() == {}
    for i in HONEST:
        m = run.m2[CHEATER][i]
        run.m2[CHEATER][i] = replace(m, psi=(m.psi + 1) % N)
    presigs, errors = run.round3()
    assert errors == {}  # psi is not committed to: nothing to check in round 3
    with pytest.raises(ProtocolError) as ei:
        sign_with_presignatures(presigs, w.PK, digest_of(b"bad psi"))
    assert type(ei.value) is ProtocolError and ei.value.culprits == ()
    assert all(p.consumed for p in presigs.values())  # consumed, never output


def test_round2_missing_and_extra_messages(w: Wallet) -> None:
    run = Run(w)
    assert run.round2() == {}
    inbox = run.inbox(run.m2, 1)
    del inbox[CHEATER]
    with pytest.raises(ParameterError):
        presign_round3(run.st2[1], inbox)
    run = Run(w)
    inbox1 = run.inbox(run.m1, 1)
    inbox1[5] = inbox1[CHEATER]
    with pytest.raises(ParameterError):
        presign_round2(run.st1[1], inbox1)


def test_round_states_are_single_use_and_secret(w: Wallet) -> None:
    run = Run(w)
    for dup in (copy.copy, copy.deepcopy, pickle.dumps):
        with pytest.raises(StateError):
            dup(run.st1[1])
    assert run.round2() == {}
    with pytest.raises(StateError):
        presign_round2(run.st1[1], run.inbox(run.m1, 1))
    presign_round3(run.st2[1], run.inbox(run.m2, 1))
    with pytest.raises(StateError):
        presign_round3(run.st2[1], run.inbox(run.m2, 1))


def test_multiplication_session_reuse_raises(w: Wallet) -> None:
    run = Run(w)
    with pytest.raises(StateError):
        presign_round1(1, w.shares[1], w.PK, w.pairwise[1], SIGNERS, run.sid)


# --- online round ----------------------------------------------------------------------------


def _online_shares(w: Wallet, digest: bytes) -> tuple[Presignature, dict[int, Any]]:
    run = Run(w)
    assert run.round2() == {}
    presigs, errors = run.round3()
    assert errors == {}
    return presigs[1], {i: sign_share(p, w.PK, digest) for i, p in presigs.items()}


def test_online_wrong_w_is_not_attributable(w: Wallet) -> None:
    digest = digest_of(b"online")
    p, shares = _online_shares(w, digest)
    shares[CHEATER] = replace(shares[CHEATER], w=(shares[CHEATER].w + 1) % N)
    with pytest.raises(ProtocolError) as ei:
        combine_signature_shares(p.info, digest, shares)
    assert type(ei.value) is ProtocolError and ei.value.culprits == ()


def test_online_wrong_u_is_not_attributable(w: Wallet) -> None:
    digest = digest_of(b"online u")
    p, shares = _online_shares(w, digest)
    shares[CHEATER] = replace(shares[CHEATER], u=(shares[CHEATER].u + 1) % N)
    with pytest.raises(ProtocolError) as ei:
        combine_signature_shares(p.info, digest, shares)
    assert type(ei.value) is ProtocolError and ei.value.culprits == ()


def test_online_share_for_other_digest_is_not_attributable(w: Wallet) -> None:
    p, shares = _online_shares(w, digest_of(b"one"))
    with pytest.raises(ProtocolError) as ei:
        combine_signature_shares(p.info, digest_of(b"two"), shares)
    assert ei.value.culprits == ()


@pytest.mark.parametrize(
    "tamper",
    [
        lambda s: s.to_bytes()[:127],
        lambda s: s.to_bytes()[:64] + N.to_bytes(32, "big") + s.to_bytes()[96:],
        lambda s: replace(s, presig_id=secrets.token_bytes(32)),
        lambda s: replace(s, sender=1),
    ],
    ids=["truncated", "u-too-big", "other-presignature", "posing-as-1"],
)
def test_online_malformed_share_names_sender(
    w: Wallet, tamper: Callable[[SignatureShare], Any]
) -> None:
    digest = digest_of(b"online malformed")
    p, shares = _online_shares(w, digest)
    shares[CHEATER] = tamper(shares[CHEATER])
    with pytest.raises(FaultyParticipantError) as ei:
        combine_signature_shares(p.info, digest, shares)
    assert ei.value.culprits == (CHEATER,)


# --- pairwise setup --------------------------------------------------------------------------


class Setup:
    def __init__(self, ids: tuple[int, ...] = (1, 2, 3)) -> None:
        self.ids = ids
        self.sid = secrets.token_bytes(32)
        self.st: dict[int, Any] = {}
        self.m: dict[int, dict[int, Any]] = {}
        for i in ids:
            self.st[i], m = pairwise_setup_round1(i, [j for j in ids if j != i], self.sid)
            self.m[i] = dict(m)

    def step(self, fn: Callable[..., Any], last: bool = False) -> dict[int, TmpcError]:
        errors: dict[int, TmpcError] = {}
        new_m: dict[int, dict[int, Any]] = {}
        for i in self.ids:
            inbox = {j: self.m[j][i] for j in self.ids if j != i}
            try:
                if last:
                    self.st[i] = fn(self.st[i], inbox)
                else:
                    self.st[i], m = fn(self.st[i], inbox)
                    new_m[i] = dict(m)
            except TmpcError as exc:
                errors[i] = exc
        self.m = new_m
        return errors


def _setup_blames(errors: dict[int, TmpcError], cls: type[TmpcError], cheater: int) -> None:
    honest = [i for i in (1, 2, 3) if i != cheater]
    for i in honest:
        assert isinstance(errors.get(i), cls), f"party {i}: {errors.get(i)!r}"
        assert errors[i].culprits == (cheater,)  # type: ignore[attr-defined]


def test_setup_honest_and_state_single_use() -> None:
    s = Setup()
    assert s.step(pairwise_setup_round2) == {}
    assert s.step(pairwise_setup_round3) == {}
    st3 = dict(s.st)
    assert s.step(pairwise_setup_finish, last=True) == {}
    assert all(isinstance(p, EcdsaPairwise) for p in s.st.values())
    with pytest.raises(StateError):
        pairwise_setup_finish(st3[1], {})


def test_setup_bad_seed_decommitment() -> None:
    s = Setup()
    assert s.step(pairwise_setup_round2) == {}
    for i in (1, 3):
        m = s.m[2][i]
        s.m[2][i] = PairwiseSetupMsg2(m.sender, m.receiver, secrets.token_bytes(32), m.mul_msg)
    _setup_blames(s.step(pairwise_setup_round3), CommitmentCheckError, 2)


_SETUP_STEPS: list[Callable[..., Any]] = [
    pairwise_setup_round2,
    pairwise_setup_round3,
    pairwise_setup_finish,
]


@pytest.mark.parametrize("rnd", [1, 3], ids=["proof-of-knowledge", "opening"])
def test_setup_tampered_multiplication_setup(rnd: int) -> None:
    # Bob's base-OT messages (setup rounds 1 and 3) are checked by Alice: the proof of
    # knowledge of b and the opening of the pads. (Alice's round-2 message has no check at
    # Bob's side in the three-message VSOT of ot.py; a wrong one corrupts only her own
    # correlations, which Bob's multiplication check rejects at first use: tested in OT's
    # tests and in test_pair_refused_after_failed_multiplication_check above.)
    s = Setup()
    for k in range(rnd - 1):
        assert s.step(_SETUP_STEPS[k]) == {}
    for i in (1, 3):
        m = s.m[2][i]
        # the opening has both hashes H(rho^0_k), H(rho^1_k) per OT and Alice can only check
        # the one of her choice bit: flip both of OT k = 64
        mul_msg = flip(m.mul_msg, 48) if rnd == 1 else flip(flip(m.mul_msg, 64 * 64), 64 * 64 + 32)
        s.m[2][i] = replace(m, mul_msg=mul_msg)
    errors = s.step(_SETUP_STEPS[rnd - 1], last=rnd == 3)
    _setup_blames(errors, OTCheckError, 2)


@pytest.mark.parametrize("rnd", [1, 2, 3])
def test_setup_truncated_multiplication_setup_names_sender(rnd: int) -> None:
    s = Setup()
    for k in range(rnd - 1):
        assert s.step(_SETUP_STEPS[k]) == {}
    for i in (1, 3):
        m = s.m[2][i]
        s.m[2][i] = replace(m, mul_msg=m.mul_msg[:-1])
    errors = s.step(_SETUP_STEPS[rnd - 1], last=rnd == 3)
    _setup_blames(errors, FaultyParticipantError, 2)


def test_setup_malformed_names_sender() -> None:
    s = Setup()
    for i in (1, 3):
        s.m[2][i] = s.m[2][i].to_bytes()[:40]
    _setup_blames(s.step(pairwise_setup_round2), FaultyParticipantError, 2)
