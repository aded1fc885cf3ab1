"""DKLs23 as steppable machines (tmpc.protocols.ecdsa.machine), driven by tmpc.local.

Honest runs: pairwise setup for 3 and 5 parties; presign + online sign and the one-session
path, 2-of-3 and 3-of-5, untweaked and tweaked; every signature checked independently with
libsecp256k1 through coincurve (DER verify with the raw digest, key recovery from the recovery
id, the tweaked key computed by coincurve), and low-s. Adversarial: blame of malformed,
misaddressed and mislabelled payloads, validation before any one-time state is consumed,
wrong-round and foreign messages, equivocation, reordering, duplicates, single use of
presignatures, and two concurrent sessions over one pairwise setup.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import pickle
import random
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import coincurve
import pytest
from coincurve.ecdsa import cdata_to_der, deserialize_compact

from tmpc.errors import (
    FaultyParticipantError,
    ParameterError,
    ProtocolError,
    StateError,
)
from tmpc.group import SECP256K1
from tmpc.group.base import Point
from tmpc.local import run_machines
from tmpc.protocols.ecdsa import machine as ecdsa_machine
from tmpc.protocols.ecdsa.dkls23 import EcdsaPairwise, Presignature, sign_share
from tmpc.protocols.ecdsa.errors import OTCheckError
from tmpc.protocols.ecdsa.machine import (
    BatchPresignMachine,
    EcdsaSignMachine,
    OnlineSignMachine,
    PairwiseSetupMachine,
    PresignMachine,
)
from tmpc.protocols.machine import Machine, Message
from tmpc.sharing import shamir_split

G = SECP256K1
N = G.order
TWEAK = int.from_bytes(hashlib.sha256(b"m/44'/60'/0'/0/7").digest(), "big") % N


@dataclass
class Wallet:
    """A dealt t-of-n key (the DKG is tested elsewhere) with a pairwise setup run by machines."""

    t: int
    n: int
    PK: Point
    shares: dict[int, int]
    pairwise: dict[int, EcdsaPairwise]


def setup_pairwise(ids: list[int]) -> dict[int, EcdsaPairwise]:
    sid = secrets.token_bytes(32)
    out = run_machines({i: PairwiseSetupMachine(i, ids, sid) for i in ids})
    assert all(isinstance(p, EcdsaPairwise) for p in out.values())
    return {i: p for i, p in out.items() if isinstance(p, EcdsaPairwise)}


def make_wallet(t: int, n: int) -> Wallet:
    x = G.random_scalar()
    ids = list(range(1, n + 1))
    return Wallet(t, n, G.base_mul(x), shamir_split(G, x, t, ids), setup_pairwise(ids))


@pytest.fixture(scope="module")
def w23() -> Wallet:
    return make_wallet(2, 3)


@pytest.fixture(scope="module")
def w35() -> Wallet:
    return make_wallet(3, 5)


def digest_of(text: bytes) -> bytes:
    return hashlib.sha256(text).digest()


def coincurve_key(pk: Point, tweak: int = 0) -> coincurve.PublicKey:
    """``PK + tweak*G`` computed by libsecp256k1 (coincurve), not by tmpc."""
    key = coincurve.PublicKey(pk.encode())
    return key.add(tweak.to_bytes(32, "big")) if tweak else key


def der_of(r: int, s: int) -> bytes:
    return bytes(cdata_to_der(deserialize_compact(r.to_bytes(32, "big") + s.to_bytes(32, "big"))))


def independent_verify(pk: Point, digest: bytes, sig: tuple[int, int, int], tweak: int = 0) -> None:
    """libsecp256k1 (coincurve) alone: tweaked key, strict DER verify, key recovery, low-s."""
    r, s, recid = sig
    assert 0 < r < N and 0 < s <= N // 2, "not a low-s signature"
    key = coincurve_key(pk, tweak)
    compact = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    der = der_of(r, s)
    assert key.verify(der, digest, hasher=None)
    assert not key.verify(der, digest_of(digest), hasher=None)
    rec = coincurve.PublicKey.from_signature_and_message(
        compact + bytes([recid]), digest, hasher=None
    )
    assert rec.format() == key.format()


def presign_machines(
    w: Wallet,
    signers: tuple[int, ...],
    *,
    tweak: int = 0,
    sid: bytes | None = None,
    pairwise: Mapping[int, EcdsaPairwise] | None = None,
) -> dict[int, Machine]:
    sid = sid or secrets.token_bytes(32)
    pw = pairwise or w.pairwise
    return {
        i: PresignMachine(i, w.shares[i], pw[i], signers, sid, w.PK, tweak=tweak, threshold=w.t)
        for i in signers
    }


def presign(w: Wallet, signers: tuple[int, ...], tweak: int = 0) -> dict[int, Presignature]:
    out = run_machines(presign_machines(w, signers, tweak=tweak))
    assert all(isinstance(p, Presignature) for p in out.values())
    return {i: p for i, p in out.items() if isinstance(p, Presignature)}


def sign_machines(
    presigs: Mapping[int, Presignature], digest: bytes, tweak: int | None = None
) -> dict[int, Machine]:
    return {i: OnlineSignMachine(p, digest, tweak=tweak) for i, p in presigs.items()}


def one_signature(results: Mapping[int, object]) -> tuple[int, int, int]:
    """Every party's result, which must be one and the same (r, s, recid)."""
    sigs = set(results.values())
    assert len(sigs) == 1, "parties disagree on the signature"
    (sig,) = sigs
    assert isinstance(sig, tuple)
    r, s, recid = sig
    return r, s, recid


def drive(
    machines: Mapping[int, Machine],
    *,
    rng: random.Random | None = None,
    duplicate: bool = False,
) -> dict[int, object]:
    """Like run_machines, but delivering in a random order and/or every message twice."""
    ids = sorted(machines)
    pending: list[tuple[int, Message]] = []

    def route(out: list[Message]) -> None:
        for msg in out:
            if msg.recipient is None:
                targets = [p for p in ids if p != msg.sender]
            else:
                targets = [msg.recipient]
            for r in targets:
                pending.extend([(r, msg)] * (2 if duplicate else 1))

    for i in ids:
        route(machines[i].start())
    while pending:
        r, msg = pending.pop(rng.randrange(len(pending)) if rng else 0)
        route(machines[r].receive(msg))
    assert all(m.done for m in machines.values())
    return {i: machines[i].result for i in ids}


def tamper_one(
    protocol_round: int, sender: int, change: Callable[[bytes], bytes], recipient: int | None = None
) -> Callable[[Message, int], Message]:
    """A run_machines tamper: ``change`` the payload of ``sender``'s round message (to one
    ``recipient`` or to all)."""

    def tamper(msg: Message, to: int) -> Message:
        if msg.round == protocol_round and msg.sender == sender and recipient in (None, to):
            return dataclasses.replace(msg, payload=change(msg.payload))
        return msg

    return tamper


def flip(data: bytes, pos: int) -> bytes:
    return data[:pos] + bytes([data[pos] ^ 1]) + data[pos + 1 :]


def put(data: bytes, pos: int, chunk: bytes) -> bytes:
    return data[:pos] + chunk + data[pos + len(chunk) :]


def assert_blames(exc: pytest.ExceptionInfo[ProtocolError], culprit: int) -> None:
    assert isinstance(exc.value, FaultyParticipantError), type(exc.value).__name__
    assert exc.value.culprits == (culprit,)


# --- honest runs ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", [3, 5])
def test_pairwise_setup_machines(n: int) -> None:
    ids = list(range(1, n + 1))
    pw = setup_pairwise(ids)
    for i in ids:
        assert pw[i].identifier == i
        assert pw[i].peers == tuple(j for j in ids if j != i)
        for j in pw[i].peers:
            # both ends of every pair hold the same seed and the two matching OT setups
            assert pw[i].zero_seeds[j] == pw[j].zero_seeds[i]
            assert pw[i].senders[j].setup_id == pw[j].receivers[i].setup_id
            assert pw[i].receivers[j].setup_id == pw[j].senders[i].setup_id
    seeds = {pw[i].zero_seeds[j] for i in ids for j in pw[i].peers}
    assert len(seeds) == n * (n - 1) // 2  # independent seeds per pair
    # the material works: a presignature over it signs
    x = G.random_scalar()
    w = Wallet(n, n, G.base_mul(x), shamir_split(G, x, n, ids), pw)
    digest = digest_of(b"setup works")
    presigs = presign(w, tuple(ids))
    independent_verify(w.PK, digest, one_signature(run_machines(sign_machines(presigs, digest))))


CASES = [
    pytest.param("w23", (1, 3), 0, id="2of3"),
    pytest.param("w23", (2, 3), TWEAK, id="2of3-tweak"),
    pytest.param("w35", (1, 3, 5), 0, id="3of5"),
    pytest.param("w35", (2, 4, 5), TWEAK, id="3of5-tweak"),
]


@pytest.mark.parametrize(("wallet", "signers", "tweak"), CASES)
def test_presign_then_sign(
    wallet: str, signers: tuple[int, ...], tweak: int, request: pytest.FixtureRequest
) -> None:
    w: Wallet = request.getfixturevalue(wallet)
    presigs = presign(w, signers, tweak)
    assert {p.identifier for p in presigs.values()} == set(signers)
    assert len({(p.presig_id, p.R) for p in presigs.values()}) == 1
    assert all(p.tweak == tweak and not p.consumed for p in presigs.values())
    digest = digest_of(b"presign then sign " + bytes(signers))
    sig = one_signature(run_machines(sign_machines(presigs, digest)))
    independent_verify(w.PK, digest, sig, tweak)
    assert all(p.consumed for p in presigs.values())
    if tweak:  # the tweaked signature is not one of the untweaked key
        assert not coincurve_key(w.PK).verify(der_of(sig[0], sig[1]), digest, hasher=None)


@pytest.mark.parametrize(("wallet", "signers", "tweak"), CASES)
def test_presign_sign_one_session(
    wallet: str, signers: tuple[int, ...], tweak: int, request: pytest.FixtureRequest
) -> None:
    w: Wallet = request.getfixturevalue(wallet)
    sid = secrets.token_bytes(32)
    digest = digest_of(b"one session " + bytes(signers))
    machines: dict[int, Machine] = {
        i: EcdsaSignMachine(
            i, w.shares[i], w.pairwise[i], signers, sid, w.PK, digest, tweak=tweak, threshold=w.t
        )
        for i in signers
    }
    independent_verify(w.PK, digest, one_signature(run_machines(machines)), tweak)


def test_online_sign_with_explicit_tweak(w23: Wallet) -> None:
    presigs = presign(w23, (1, 2), TWEAK)
    digest = digest_of(b"explicit tweak")
    sig = one_signature(run_machines(sign_machines(presigs, digest, TWEAK)))
    independent_verify(w23.PK, digest, sig, TWEAK)


def test_unsorted_signers_are_sorted(w35: Wallet) -> None:
    sid = secrets.token_bytes(32)
    ms: dict[int, Machine] = {
        i: PresignMachine(i, w35.shares[i], w35.pairwise[i], [5, 1, 3], sid, w35.PK)
        for i in (1, 3, 5)
    }
    assert all(m.participants == (1, 3, 5) for m in ms.values())
    run_machines(ms)


def test_shuffled_delivery_still_completes(w35: Wallet) -> None:
    rng = random.Random(20240765)
    signers = (1, 2, 4)
    sid = secrets.token_bytes(32)
    digest = digest_of(b"shuffled")
    ms: dict[int, Machine] = {
        i: EcdsaSignMachine(i, w35.shares[i], w35.pairwise[i], signers, sid, w35.PK, digest)
        for i in signers
    }
    independent_verify(w35.PK, digest, one_signature(drive(ms, rng=rng)))
    setup_sid = secrets.token_bytes(32)
    setup = {i: PairwiseSetupMachine(i, [1, 2, 3], setup_sid) for i in (1, 2, 3)}
    got = drive(setup, rng=rng)
    pw = {i: p for i, p in got.items() if isinstance(p, EcdsaPairwise)}
    assert len(pw) == 3
    assert all(pw[i].zero_seeds[j] == pw[j].zero_seeds[i] for i in pw for j in pw if i != j)


def test_exact_duplicates_are_ignored(w35: Wallet) -> None:
    rng = random.Random(7)
    presigs_raw = drive(presign_machines(w35, (2, 3, 5)), rng=rng, duplicate=True)
    presigs = {i: p for i, p in presigs_raw.items() if isinstance(p, Presignature)}
    assert len(presigs) == 3
    digest = digest_of(b"duplicates")
    sig = one_signature(drive(sign_machines(presigs, digest), duplicate=True))
    independent_verify(w35.PK, digest, sig)


# --- single use ----------------------------------------------------------------------------


def test_presignature_signs_once(w23: Wallet) -> None:
    presigs = presign(w23, (1, 3))
    digest = digest_of(b"once")
    # two machines made over one presignature before either started: only one may sign
    first = OnlineSignMachine(presigs[1], digest)
    second = OnlineSignMachine(presigs[1], digest_of(b"twice"))
    first.start()
    with pytest.raises(StateError):
        second.start()
    with pytest.raises(StateError):  # and a used one is refused at construction
        OnlineSignMachine(presigs[1], digest)
    with pytest.raises(StateError):
        sign_share(presigs[1], w23.PK, digest)


def test_wrong_tweak_or_digest_refused_before_use(w23: Wallet) -> None:
    presigs = presign(w23, (1, 2), TWEAK)
    with pytest.raises(ParameterError):
        OnlineSignMachine(presigs[1], digest_of(b"x"), tweak=0)
    with pytest.raises(ParameterError):
        OnlineSignMachine(presigs[1], b"\x00" * 31)
    assert not presigs[1].consumed


def test_machines_are_not_copied_and_keep_secrets_out_of_repr(w23: Wallet) -> None:
    m = PresignMachine(1, w23.shares[1], w23.pairwise[1], (1, 2), secrets.token_bytes(32), w23.PK)
    for attempt in (copy.copy, copy.deepcopy, pickle.dumps):
        with pytest.raises(StateError):
            attempt(m)
    text = repr(m)
    assert str(w23.shares[1]) not in text and f"{w23.shares[1]:x}" not in text
    m.start()
    assert str(w23.shares[1]) not in repr(m)


# --- concurrent sessions over one pairwise setup -----------------------------------------------


def test_concurrent_presign_sessions_share_no_mutable_pairwise(w35: Wallet) -> None:
    signers = (1, 2, 5)
    blobs = {i: w35.pairwise[i].to_bytes() for i in signers}
    # one object per party, parsed once from its stored bytes, handed to both sessions
    shared = {i: EcdsaPairwise.from_bytes(blobs[i]) for i in signers}
    sessions = [presign_machines(w35, signers, pairwise=shared) for _ in range(2)]
    queues: list[list[tuple[int, Message]]] = [[], []]

    def route(k: int, out: list[Message]) -> None:
        for msg in out:
            assert msg.recipient is not None  # presigning is point to point
            queues[k].append((msg.recipient, msg))

    for k, ms in enumerate(sessions):
        for i in signers:
            route(k, ms[i].start())
    # interleave: one delivery of session 0, then one of session 1, and so on
    while queues[0] or queues[1]:
        for k in (0, 1):
            if queues[k]:
                r, msg = queues[k].pop(0)
                route(k, sessions[k][r].receive(msg))
    results = []
    for ms in sessions:
        assert all(m.done for m in ms.values())
        results.append({i: m.result for i, m in ms.items()})
    # neither session touched the shared objects: their used-session records are unchanged
    assert {i: shared[i].to_bytes() for i in signers} == blobs
    presigs = [{i: p for i, p in res.items() if isinstance(p, Presignature)} for res in results]
    assert presigs[0][1].R != presigs[1][1].R
    for k, ps in enumerate(presigs):
        digest = digest_of(b"concurrent %d" % k)
        independent_verify(w35.PK, digest, one_signature(run_machines(sign_machines(ps, digest))))


def test_failed_pairwise_check_leaves_caller_object_untouched(w35: Wallet) -> None:
    # A tampered OT-extension message parses but fails the consistency check: the pair's
    # terminal OTCheckError names the sender, and the caller (not the machine) deny-lists.
    shared = {i: EcdsaPairwise.from_bytes(w35.pairwise[i].to_bytes()) for i in (1, 2, 3)}
    before = {i: p.to_bytes() for i, p in shared.items()}
    ms = presign_machines(w35, (1, 2, 3), pairwise=shared)
    with pytest.raises(OTCheckError) as ei:
        run_machines(ms, tamper=tamper_one(1, 3, lambda b: flip(b, 96 + 5000), recipient=1))
    assert ei.value.culprits == (3,)
    assert {i: p.to_bytes() for i, p in shared.items()} == before


# --- blame -----------------------------------------------------------------------------------


SHARE_TAMPERS = [
    pytest.param(lambda b: b[:100], id="truncated"),
    pytest.param(lambda b: b + b"\x00", id="trailing-byte"),
    pytest.param(lambda b: flip(b, 3), id="other-presignature"),
    pytest.param(lambda b: put(b, 32, (2).to_bytes(32, "big")), id="labelled-as-2"),
    pytest.param(lambda b: put(b, 96, b"\xff" * 32), id="w-not-below-n"),
    pytest.param(lambda b: put(b, 32, b"\x00" * 32), id="sender-zero"),
]


@pytest.mark.parametrize("change", SHARE_TAMPERS)
def test_corrupted_signature_share_names_its_sender(
    w35: Wallet, change: Callable[[bytes], bytes]
) -> None:
    presigs = presign(w35, (1, 3, 4))
    with pytest.raises(ProtocolError) as ei:
        run_machines(
            sign_machines(presigs, digest_of(b"bad share")), tamper=tamper_one(1, 3, change)
        )
    assert_blames(ei, 3)


def test_wrong_share_value_fails_unattributed(w23: Wallet) -> None:
    # A well-formed share with a wrong w: DKLs23 commits to nothing w_i can be checked
    # against, so the signature fails to verify and nobody is named.
    presigs = presign(w23, (1, 2))

    def bump_w(b: bytes) -> bytes:
        return b[:96] + ((int.from_bytes(b[96:], "big") + 1) % N).to_bytes(32, "big")

    with pytest.raises(ProtocolError) as ei:
        run_machines(sign_machines(presigs, digest_of(b"w+1")), tamper=tamper_one(1, 2, bump_w))
    assert ei.value.culprits == ()
    assert not isinstance(ei.value, FaultyParticipantError)


PRESIGN_TAMPERS = [
    pytest.param(1, lambda b: b"", id="r1-empty"),
    pytest.param(1, lambda b: b[:95], id="r1-header-cut"),
    pytest.param(1, lambda b: b[:96], id="r1-no-mul-msg"),
    pytest.param(1, lambda b: b[:-1], id="r1-mul-msg-cut"),
    pytest.param(1, lambda b: b + b"\x00", id="r1-trailing"),
    pytest.param(1, lambda b: put(b, 0, (2).to_bytes(32, "big")), id="r1-posing-as-2"),
    pytest.param(1, lambda b: put(b, 32, (3).to_bytes(32, "big")), id="r1-addressed-to-3"),
    pytest.param(1, lambda b: put(b, 0, b"\xff" * 32), id="r1-sender-not-id"),
    pytest.param(2, lambda b: b[: 64 + 100], id="r2-header-cut"),
    pytest.param(2, lambda b: b[:-32], id="r2-mul-reply-cut"),
    pytest.param(2, lambda b: put(b, 64, b"\x05"), id="r2-R-not-a-point"),
    pytest.param(2, lambda b: put(b, 64 + 33 + 32 + 33 * 3, b"\xff" * 32), id="r2-psi-too-big"),
    pytest.param(2, lambda b: put(b, len(b) - 32, b"\xff" * 32), id="r2-gamma-too-big"),
    pytest.param(2, lambda b: put(b, 292, b"\xff" * 32), id="r2-tau-too-big"),
    pytest.param(2, lambda b: put(b, 32, (1).to_bytes(32, "big")), id="r2-addressed-to-1"),
]


@pytest.mark.parametrize(("rnd", "change"), PRESIGN_TAMPERS)
def test_malformed_presign_payload_names_sender_before_state_is_used(
    w35: Wallet, rnd: int, change: Callable[[bytes], bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Party 5's message to party 2 is bad. Party 2 must name 5 without calling the round
    # function that would consume its one-time state (and mark multiplication sessions).
    round_fn = "presign_round2" if rnd == 1 else "presign_round3"
    calls: list[int] = []
    real = getattr(ecdsa_machine, round_fn)

    def spy(state: Any, received: Mapping[int, Any], **kw: Any) -> Any:
        calls.append(state.identifier)
        return real(state, received, **kw)

    monkeypatch.setattr(ecdsa_machine, round_fn, spy)
    ms = presign_machines(w35, (2, 3, 5))
    with pytest.raises(ProtocolError) as ei:
        run_machines(ms, tamper=tamper_one(rnd, 5, change, recipient=2))
    assert_blames(ei, 5)
    assert 2 not in calls
    victim = ms[2]
    assert isinstance(victim, PresignMachine)
    assert victim.missing() == ()  # it failed on a complete round, not for lack of messages
    with pytest.raises(StateError):  # and stays failed
        ms[2].receive(Message(rnd, 3, 2, b""))


SETUP_TAMPERS = [
    pytest.param(1, lambda b: b[:-1], id="r1-cut"),
    pytest.param(1, lambda b: put(b, 96, b"\x07"), id="r1-B-not-a-point"),
    pytest.param(2, lambda b: b[:-33], id="r2-cut"),
    pytest.param(2, lambda b: put(b, 96 + 33 * 5, b"\x04"), id="r2-A-not-a-point"),
    pytest.param(3, lambda b: b[:-1], id="r3-cut"),
    pytest.param(3, lambda b: put(b, 0, (1).to_bytes(32, "big")), id="r3-posing-as-1"),
]


@pytest.mark.parametrize(("rnd", "change"), SETUP_TAMPERS)
def test_malformed_setup_payload_names_sender_before_state_is_used(
    rnd: int, change: Callable[[bytes], bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    fns = {1: "pairwise_setup_round2", 2: "pairwise_setup_round3", 3: "pairwise_setup_finish"}
    calls: list[int] = []
    real = getattr(ecdsa_machine, fns[rnd])

    def spy(state: Any, received: Mapping[int, Any], **kw: Any) -> Any:
        calls.append(state.identifier)
        return real(state, received, **kw)

    monkeypatch.setattr(ecdsa_machine, fns[rnd], spy)
    sid = secrets.token_bytes(32)
    ms: dict[int, Machine] = {i: PairwiseSetupMachine(i, [1, 2, 3], sid) for i in (1, 2, 3)}
    with pytest.raises(ProtocolError) as ei:
        run_machines(ms, tamper=tamper_one(rnd, 2, change, recipient=3))
    assert_blames(ei, 2)
    assert 3 not in calls


# --- routing: wrong round, foreign sender, equivocation ---------------------------------------


def started(w: Wallet, signers: tuple[int, ...]) -> tuple[dict[int, Machine], list[Message]]:
    ms = presign_machines(w, signers)
    out = [m for i in signers for m in ms[i].start()]
    return ms, out


def test_wrong_round_message_names_sender(w35: Wallet) -> None:
    ms, out = started(w35, (1, 2, 3))
    msg = next(m for m in out if m.sender == 2 and m.recipient == 1)
    with pytest.raises(ProtocolError) as ei:
        ms[1].receive(dataclasses.replace(msg, round=3))
    assert ei.value.culprits == (2,)
    on = OnlineSignMachine(presign(w35, (1, 2, 3))[1], digest_of(b"r"))
    on.start()
    with pytest.raises(ProtocolError) as ei:
        on.receive(Message(2, 3, None, b"\x00" * 128))
    assert ei.value.culprits == (3,)


def test_non_participant_message_names_it(w35: Wallet) -> None:
    ms, out = started(w35, (1, 2, 3))
    msg = next(m for m in out if m.sender == 2 and m.recipient == 1)
    with pytest.raises(ProtocolError) as ei:
        ms[1].receive(dataclasses.replace(msg, sender=4))  # in the wallet, not the session
    assert ei.value.culprits == (4,)
    ms2, out2 = started(w35, (1, 2, 3))
    to_other = next(m for m in out2 if m.sender == 2 and m.recipient == 3)
    with pytest.raises(ProtocolError) as ei:
        ms2[1].receive(to_other)  # addressed to party 3
    assert ei.value.culprits == (2,)


def test_two_different_messages_for_one_round_name_the_sender(w35: Wallet) -> None:
    ms, out = started(w35, (1, 2, 3))
    msg = next(m for m in out if m.sender == 3 and m.recipient == 1)
    assert ms[1].receive(msg) == []
    assert ms[1].receive(msg) == []  # an exact copy is dropped
    with pytest.raises(ProtocolError) as ei:
        ms[1].receive(dataclasses.replace(msg, payload=flip(msg.payload, 200)))
    assert ei.value.culprits == (3,)


# --- parameters --------------------------------------------------------------------------------


def test_bad_parameters_refused_at_construction(w35: Wallet) -> None:
    sid = secrets.token_bytes(32)
    pw, x = w35.pairwise, w35.shares
    with pytest.raises(ParameterError):  # short session id
        PresignMachine(1, x[1], pw[1], (1, 2, 3), b"short", w35.PK)
    with pytest.raises(ParameterError):  # another party's material
        PresignMachine(1, x[1], pw[2], (1, 2, 3), sid, w35.PK)
    with pytest.raises(ParameterError):  # not a signer
        PresignMachine(4, x[4], pw[4], (1, 2, 3), sid, w35.PK)
    with pytest.raises(ParameterError):  # duplicate signer
        PresignMachine(1, x[1], pw[1], (1, 2, 2), sid, w35.PK)
    with pytest.raises(ParameterError):
        EcdsaSignMachine(1, x[1], pw[1], (1, 2, 3), sid, w35.PK, b"\x01" * 33)
    with pytest.raises(ParameterError):
        PairwiseSetupMachine(1, [1], sid)
    with pytest.raises(ParameterError):
        PairwiseSetupMachine(1, [1, 2], b"\x00" * 15)
    with pytest.raises(ParameterError):  # fewer signers than the threshold
        PresignMachine(1, x[1], pw[1], (1, 2), sid, w35.PK, threshold=3)
    with pytest.raises(ParameterError):
        PresignMachine(1, 0, pw[1], (1, 2, 3), sid, w35.PK)
    with pytest.raises(ParameterError):
        PresignMachine(1, x[1], pw[1], (1, 2, 3), sid, w35.PK, tweak=N)
    with pytest.raises(ParameterError):
        PresignMachine(1, x[1], pw[1], (1, 2, 3), sid, G.identity())


def test_missing_pairwise_with_a_signer(w35: Wallet) -> None:
    only_12 = setup_pairwise([1, 2])
    with pytest.raises(ParameterError):
        PresignMachine(1, w35.shares[1], only_12[1], (1, 2, 3), secrets.token_bytes(32), w35.PK)


def test_dropped_message_stalls_without_blame(w23: Wallet) -> None:
    ms = presign_machines(w23, (1, 2))
    with pytest.raises(StateError):
        run_machines(ms, tamper=lambda msg, to: None if msg.sender == 2 else msg)


# --- presigning batches ---------------------------------------------------------------------


def batch_machines(
    w: Wallet, signers: tuple[int, ...], count: int, *, tweak: int = 0, sid: bytes | None = None
) -> dict[int, Machine]:
    sid = sid or secrets.token_bytes(32)
    return {
        i: BatchPresignMachine(
            i, w.shares[i], w.pairwise[i], signers, sid, w.PK, count, tweak=tweak, threshold=w.t
        )
        for i in signers
    }


def test_batch_presignatures_each_sign_once_and_verify(w35: Wallet) -> None:
    signers = (1, 3, 5)
    out = run_machines(batch_machines(w35, signers, 4, tweak=TWEAK))
    batches = {i: out[i] for i in signers}
    assert all(isinstance(b, list) and len(b) == 4 for b in batches.values())
    ids = [p.presig_id for p in batches[1]]  # type: ignore[attr-defined]
    assert len(set(ids)) == 4, "every presignature of a batch is distinct"
    for k in range(4):
        presigs = {i: batches[i][k] for i in signers}  # type: ignore[index]
        assert {p.presig_id for p in presigs.values()} == {ids[k]}
        digest = digest_of(b"batch %d" % k)
        sig = one_signature(run_machines(sign_machines(presigs, digest, TWEAK)))
        independent_verify(w35.PK, digest, sig, TWEAK)
        with pytest.raises(StateError):
            OnlineSignMachine(presigs[1], digest)  # consumed


def test_batch_session_ids_are_distinct_and_bound_to_the_session() -> None:
    a = ecdsa_machine.batch_session_ids(b"s" * 32, 3)
    b = ecdsa_machine.batch_session_ids(b"t" * 32, 3)
    assert len(set(a + b)) == 6


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p[:-1],  # truncated: the last part is short
        lambda p: p + b"\x00",  # trailing bytes
        lambda p: p[: int.from_bytes(p[:4], "big") + 4],  # one part only
        lambda p: flip(p, 40),  # a corrupted part
    ],
    ids=["truncated", "trailing", "missing-part", "corrupt-part"],
)
@pytest.mark.parametrize("protocol_round", [1, 2])
def test_malformed_batch_names_its_sender(
    w23: Wallet, change: Callable[[bytes], bytes], protocol_round: int
) -> None:
    with pytest.raises(ProtocolError) as exc:
        run_machines(
            batch_machines(w23, (1, 2), 3), tamper=tamper_one(protocol_round, 2, change, 1)
        )
    assert_blames(exc, 2)


def test_batch_count_is_bounded(w23: Wallet) -> None:
    for bad in (0, ecdsa_machine.MAX_BATCH + 1):
        with pytest.raises(ParameterError):
            batch_machines(w23, (1, 2), bad)
