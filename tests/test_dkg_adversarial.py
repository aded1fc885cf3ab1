"""Adversarial DKG runs: every check rejects, names the right party, blames no honest one,
and no key is output. Both target groups wherever the attack applies to both.

``run_session`` is the step-by-step harness: it runs all participants and the coordinator as
``run_dkg`` does (investigation included), but lets a test rewrite any message in flight and
records, per party, the output or the error instead of stopping at the first error.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tmpc.errors import (
    FaultyCoordinatorError,
    FaultyParticipantError,
    ParameterError,
    ProtocolError,
    TmpcError,
)
from tmpc.group import ED25519, SECP256K1, Group
from tmpc.protocols import dkg
from tmpc.protocols.dkg import chilldkg, encpedpop, simplpedpop
from tmpc.protocols.dkg.suite import suite_for
from tmpc.sharing import check_ids

GROUPS = [pytest.param(SECP256K1, id="secp256k1"), pytest.param(ED25519, id="ed25519")]

Hook = Callable[[int, bytes], bytes]


def _same(_: int, m: bytes) -> bytes:
    return m


def det_random(seed: bytes) -> Callable[[int], bytes]:
    counter = iter(range(1 << 30))
    return lambda k: hashlib.shake_256(seed + next(counter).to_bytes(4, "big")).digest(k)


def hostkeys(n: int, tag: bytes = b"") -> list[bytes]:
    return [hashlib.sha256(b"adv" + tag + bytes([i])).digest() for i in range(n)]


@dataclass
class Run:
    """What every party ended with: a DKGOutput, a TmpcError, or None (never finished)."""

    params: dkg.SessionParams
    hostseckeys: list[bytes]
    pmsgs1: list[bytes]
    participants: list[object] = field(default_factory=list)
    coordinator: object = None

    def error(self, i: int) -> TmpcError:
        out = self.participants[i]
        assert isinstance(out, TmpcError), out
        return out


def run_session(
    group: Group,
    n: int,
    t: int,
    *,
    seed: bytes = b"s",
    hostseckeys: Sequence[bytes] | None = None,
    pmsg1: Hook = _same,
    cmsg1: Hook = _same,
    pmsg2: Hook = _same,
    cmsg2: Hook = _same,
    coordinator_forwards_bad_cert: bool = False,
) -> Run:
    """Run one session; ``pmsg1(i, m)`` rewrites what the coordinator gets from ``i``,
    ``cmsg1(i, m)`` what participant ``i`` gets, and so on."""
    rand = det_random(seed)
    sks = list(hostseckeys) if hostseckeys is not None else hostkeys(n)
    params = dkg.SessionParams(tuple(dkg.hostpubkey_gen(sk) for sk in sks), t, group)
    states1, sent = [], []
    for sk in sks:
        s1, m1 = dkg.participant_step1(sk, params, rand(32))
        states1.append(s1)
        sent.append(m1)
    received = [pmsg1(i, m) for i, m in enumerate(sent)]
    run = Run(params, sks, received, [None] * n)
    try:
        cstate, c1 = dkg.coordinator_step1(received, params)
    except TmpcError as e:
        run.coordinator = e
        return run
    states2, pmsgs2 = {}, {}
    for i, sk in enumerate(sks):
        try:
            s2, m2 = dkg.participant_step2(sk, states1[i], cmsg1(i, c1), rand(32))
        except dkg.UnknownFaultyParticipantOrCoordinatorError as e:
            cinv = dkg.coordinator_investigate(received, params)[i]
            try:
                dkg.participant_investigate(e, cinv)
            except TmpcError as e2:
                run.participants[i] = e2
        except TmpcError as e:
            run.participants[i] = e
        else:
            states2[i] = s2
            pmsgs2[i] = pmsg2(i, m2)
    if len(pmsgs2) < n:
        return run  # the coordinator never gets every signature: nobody finishes
    try:
        c2, out, _ = dkg.coordinator_finalize(cstate, [pmsgs2[i] for i in range(n)])
        run.coordinator = out
    except TmpcError as e:
        run.coordinator = e
        if not coordinator_forwards_bad_cert:
            return run
        c2 = b"".join(pmsgs2[i] for i in range(n))
    for i, s2 in states2.items():
        try:
            run.participants[i], _ = dkg.participant_finalize(s2, cmsg2(i, c2))
        except TmpcError as e:
            run.participants[i] = e
    return run


def assert_no_key(run: Run, *, coordinator: bool = True) -> None:
    """No participant output a key, nor (unless ``coordinator=False``) the coordinator."""
    assert not any(isinstance(p, dkg.DKGOutput) for p in run.participants), run.participants
    if coordinator:
        assert not isinstance(run.coordinator, dkg.DKGOutput)


def assert_blames(
    run: Run, honest: Sequence[int], err_type: type[TmpcError], culprits: tuple[int, ...]
) -> None:
    """Every honest participant raised ``err_type`` naming exactly ``culprits``."""
    for i in honest:
        err = run.error(i)
        assert isinstance(err, err_type), (i, err)
        assert isinstance(err, ProtocolError)
        assert err.culprits == culprits
        assert not set(err.culprits) & (set(honest) - set(culprits))


def assert_no_secret_in_errors(run: Run) -> None:
    """No host secret key appears in an error's text or repr."""
    outs = [*run.participants, run.coordinator]
    texts = [str(e) + repr(e) for e in outs if isinstance(e, TmpcError)]
    for sk in run.hostseckeys:
        for text in texts:
            assert sk.hex() not in text.lower()
            assert str(int.from_bytes(sk, "big")) not in text


# Rewriting messages ---------------------------------------------------------------------


def parse1(group: Group, m: bytes, t: int, n: int) -> encpedpop.ParticipantMsg:
    return dkg.ParticipantMsg1.from_bytes(m, group=group, t=t, n=n).enc_pmsg


def with_enc_share(group: Group, m: bytes, t: int, n: int, recipient: int, delta: int) -> bytes:
    p = parse1(group, m, t, n)
    shares = list(p.enc_shares)
    shares[recipient] = (shares[recipient] + delta) % group.order
    return dataclasses.replace(p, enc_shares=tuple(shares)).to_bytes()


def with_simpl(group: Group, m: bytes, t: int, n: int, **changes: Any) -> bytes:
    p = parse1(group, m, t, n)
    simpl = dataclasses.replace(p.simpl_pmsg, **changes)
    return dataclasses.replace(p, simpl_pmsg=simpl).to_bytes()


def honest_pmsgs1(group: Group, n: int, t: int, seed: bytes) -> list[bytes]:
    sks = hostkeys(n)
    params = dkg.SessionParams(tuple(dkg.hostpubkey_gen(sk) for sk in sks), t, group)
    rand = det_random(seed)
    return [dkg.participant_step1(sk, params, rand(32))[1] for sk in sks]


# 1. A bad VSS share ---------------------------------------------------------------------


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize(("dealer", "victim"), [(1, 0), (2, 3), (0, 4)])
def test_bad_share_blames_its_dealer_after_investigation(
    group: Group, dealer: int, victim: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    n, t = 5, 3

    def tamper(i: int, m: bytes) -> bytes:
        return with_enc_share(group, m, t, n, victim, 1) if i == dealer else m

    run = run_session(group, n, t, pmsg1=tamper)
    # The victim investigates and names the dealer (FaultyParticipantOrCoordinatorError is a
    # FaultyParticipantError); the others saw valid shares but never get a certificate.
    assert_blames(run, [victim], FaultyParticipantError, (dealer,))
    assert isinstance(run.error(victim), dkg.FaultyParticipantOrCoordinatorError)
    assert all(run.participants[i] is None for i in range(n) if i != victim)
    assert run.coordinator is None
    assert_no_key(run)
    assert_no_secret_in_errors(run)
    # run_dkg (one DkgMachine per participant) ends the same way, naming the dealer by its
    # 1-based party id (ChillDKG participant index + 1), as every culprit outside ChillDKG is.
    original = chilldkg.participant_step1

    def dealing(
        sk: bytes, params: dkg.SessionParams, rnd: bytes
    ) -> tuple[dkg.ParticipantState1, bytes]:
        state, m = original(sk, params, rnd)
        return state, tamper(state.participant_id, m)

    monkeypatch.setattr(chilldkg, "participant_step1", dealing)
    with pytest.raises(FaultyParticipantError) as info:
        dkg.run_dkg(group, hostkeys(n), t)
    assert info.value.culprits == (dealer + 1,)


def test_coordinator_tampering_with_a_share_is_blamed_on_the_coordinator() -> None:
    """If the coordinator alters the summed encrypted share, the victim names the coordinator."""
    group, n, t = SECP256K1, 3, 2

    def tamper(i: int, m: bytes) -> bytes:
        if i != 0:
            return m
        c = dkg.CoordinatorMsg1.from_bytes(m, group=group, t=t, n=n)
        shares = list(c.enc_secshares)
        shares[0] = (shares[0] + 5) % group.order
        return dataclasses.replace(c, enc_secshares=tuple(shares)).to_bytes()

    run = run_session(group, n, t, cmsg1=tamper)
    assert_blames(run, [0], FaultyCoordinatorError, ())
    assert_no_key(run)


# 2. Rogue keys and replayed proofs of possession ----------------------------------------


@pytest.mark.parametrize("group", GROUPS)
def test_rogue_key_negating_another_commitment(group: Group) -> None:
    n, t, rogue, victim = 4, 2, 2, 0
    pm = honest_pmsgs1(group, n, t, b"s")
    victim_com0 = parse1(group, pm[victim], t, n).simpl_pmsg.com[0]

    def tamper(i: int, m: bytes) -> bytes:
        if i != rogue:
            return m
        com = list(parse1(group, m, t, n).simpl_pmsg.com)
        com[0] = -victim_com0  # keeps its own (now invalid) pop
        return with_simpl(group, m, t, n, com=tuple(com))

    run = run_session(group, n, t, pmsg1=tamper)
    honest = [i for i in range(n) if i != rogue]
    assert_blames(run, honest, dkg.FaultyParticipantOrCoordinatorError, (rogue,))
    assert "proof-of-knowledge" in str(run.error(victim))
    assert_no_key(run)


@pytest.mark.parametrize("group", GROUPS)
def test_rogue_key_cancelling_all_other_commitments(group: Group) -> None:
    """The classic rogue-key attack: com_rogue = x*G - sum(others) makes the key x*G."""
    n, t, rogue = 3, 2, 1
    pm = honest_pmsgs1(group, n, t, b"s")
    others = [parse1(group, pm[i], t, n).simpl_pmsg.com[0] for i in range(n) if i != rogue]
    target = group.base_mul(12345) - group.sum_points(others)

    def tamper(i: int, m: bytes) -> bytes:
        if i != rogue:
            return m
        com = list(parse1(group, m, t, n).simpl_pmsg.com)
        com[0] = target
        return with_simpl(group, m, t, n, com=tuple(com))

    run = run_session(group, n, t, pmsg1=tamper)
    assert_blames(run, [0, 2], dkg.FaultyParticipantOrCoordinatorError, (rogue,))
    assert_no_key(run)


@pytest.mark.parametrize("group", GROUPS)
def test_cancelling_to_the_identity_is_caught_by_the_coordinator(group: Group) -> None:
    """With n = 2 the rogue's commitment can make the sum the identity; the coordinator then
    checks the pops and names the rogue."""
    n, t, rogue = 2, 1, 1
    pm = honest_pmsgs1(group, n, t, b"s")
    other = parse1(group, pm[0], t, n).simpl_pmsg.com[0]

    def tamper(i: int, m: bytes) -> bytes:
        return with_simpl(group, m, t, n, com=(-other,)) if i == rogue else m

    run = run_session(group, n, t, pmsg1=tamper)
    err = run.coordinator
    assert type(err) is FaultyParticipantError and err.culprits == (rogue,)
    assert_no_key(run)


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("source", ["other participant", "other session", "other's message"])
def test_replayed_pop_is_rejected(group: Group, source: str) -> None:
    n, t, cheat, other = 3, 2, 2, 1
    this = honest_pmsgs1(group, n, t, b"s")
    earlier = honest_pmsgs1(group, n, t, b"an earlier session")

    def tamper(i: int, m: bytes) -> bytes:
        if i != cheat:
            return m
        if source == "other participant":  # another participant's pop, own commitment
            return with_simpl(group, m, t, n, pop=parse1(group, this[other], t, n).simpl_pmsg.pop)
        if source == "other session":  # its own pop from an earlier session
            return with_simpl(
                group, m, t, n, pop=parse1(group, earlier[cheat], t, n).simpl_pmsg.pop
            )
        # another participant's whole commitment and pop
        return with_simpl(
            group,
            m,
            t,
            n,
            com=parse1(group, this[other], t, n).simpl_pmsg.com,
            pop=parse1(group, this[other], t, n).simpl_pmsg.pop,
        )

    run = run_session(group, n, t, pmsg1=tamper)
    honest = [i for i in range(n) if i != cheat]
    assert_blames(run, honest, dkg.FaultyParticipantOrCoordinatorError, (cheat,))
    assert "proof-of-knowledge" in str(run.error(0))
    assert_no_key(run)


# 3. Threshold raise by a longer commitment -----------------------------------------------


def _longer_commitment_pmsg1(group: Group, n: int, t: int, dealer: int) -> bytes:
    """A pmsg1 whose polynomial has t+1 coefficients, with a valid pop and encrypted shares
    that all lie on it (built from the library's own steps)."""
    suite = suite_for(group)
    sks = hostkeys(n)
    hostpubkeys = tuple(dkg.hostpubkey_gen(sk) for sk in sks)
    points = chilldkg.params_validate(dkg.SessionParams(hostpubkeys, t, group))
    ctx = encpedpop.serialize_enc_context(t, hostpubkeys)
    _, simpl, shares = simplpedpop.participant_step1(
        suite, b"\x07" * 32, t + 1, n, dealer, b"\x08" * 32, ctx
    )
    secnonce = 99
    pubnonce = SECP256K1.base_mul(secnonce).encode()
    pads = encpedpop.encaps_multi(
        suite, secnonce, pubnonce, sks[dealer], hostpubkeys, points, ctx, dealer
    )
    enc = tuple((s + p) % group.order for s, p in zip(shares, pads, strict=True))
    msg = encpedpop.ParticipantMsg(suite, simpl, pubnonce, enc)
    assert len(simpl.com) == t + 1
    return msg.to_bytes()


@pytest.mark.parametrize("group", GROUPS)
def test_commitment_longer_than_t_is_rejected_naming_the_dealer(group: Group) -> None:
    n, t, dealer = 4, 2, 3
    longer = _longer_commitment_pmsg1(group, n, t, dealer)
    run = run_session(group, n, t, pmsg1=lambda i, m: longer if i == dealer else m)
    err = run.coordinator
    assert type(err) is FaultyParticipantError and err.culprits == (dealer,)
    assert_no_key(run)
    # The same at the typed layer, where lengths are not fixed by the wire format.
    suite = suite_for(group)
    pm = [
        dkg.ParticipantMsg1.from_bytes(m, group=group, t=t, n=n).enc_pmsg.simpl_pmsg
        for m in honest_pmsgs1(group, n, t, b"s")
    ]
    pm[dealer] = encpedpop.ParticipantMsg.from_bytes(suite, longer, t=t + 1, n=n).simpl_pmsg
    with pytest.raises(FaultyParticipantError) as info:
        simplpedpop.coordinator_step(suite, pm, t, n, b"")
    assert info.value.culprits == (dealer,)


# 4. Short, empty and long lists of each kind ---------------------------------------------


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("kind", ["commitment", "enc_shares"])
@pytest.mark.parametrize("length", ["empty", "short", "long"])
def test_participant_lists_of_wrong_length(group: Group, kind: str, length: str) -> None:
    n, t, cheat = 4, 3, 1
    suite = suite_for(group)
    pm = [parse1(group, m, t, n) for m in honest_pmsgs1(group, n, t, b"s")]
    p = pm[cheat]
    items: list[Any] = list(p.simpl_pmsg.com if kind == "commitment" else p.enc_shares)
    items = {"empty": [], "short": items[:-1], "long": [*items, items[-1]]}[length]
    if kind == "commitment":
        pm[cheat] = dataclasses.replace(
            p, simpl_pmsg=dataclasses.replace(p.simpl_pmsg, com=tuple(items))
        )
    else:
        pm[cheat] = dataclasses.replace(p, enc_shares=tuple(items))
    # Typed layer: the coordinator checks the lengths before any use.
    with pytest.raises(FaultyParticipantError) as info:
        encpedpop.coordinator_step(suite, pm, t, hostpubs(n))
    assert info.value.culprits == (cheat,)
    # Wire layer: the serialized message has the wrong length and is blamed on its sender.
    bad = pm[cheat].to_bytes()
    run = run_session(group, n, t, pmsg1=lambda i, m: bad if i == cheat else m)
    assert type(run.coordinator) is FaultyParticipantError
    assert run.coordinator.culprits == (cheat,)
    assert_no_key(run)


def cut(items: list[Any], length: str) -> tuple[Any, ...]:
    """The list emptied, shortened by one, or lengthened by one."""
    return tuple({"empty": [], "short": items[:-1], "long": [*items, items[-1]]}[length])


def hostpubs(n: int) -> list[bytes]:
    return [dkg.hostpubkey_gen(sk) for sk in hostkeys(n)]


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize(
    "kind", ["coms_to_secrets", "sum_coms_to_nonconst_terms", "pops", "pubnonces"]
)
@pytest.mark.parametrize("length", ["empty", "short", "long"])
def test_coordinator_lists_of_wrong_length(group: Group, kind: str, length: str) -> None:
    """A typed cmsg with a list of the wrong length is the coordinator's fault."""
    n, t = 3, 2
    sks = hostkeys(n)
    params = dkg.SessionParams(tuple(hostpubs(n)), t, group)
    rand = det_random(b"x")
    s1, m1 = zip(*(dkg.participant_step1(sk, params, rand(32)) for sk in sks), strict=True)
    _, c1 = dkg.coordinator_step1(list(m1), params)
    cmsg = dkg.CoordinatorMsg1.from_bytes(c1, group=group, t=t, n=n).enc_cmsg
    if kind == "pubnonces":
        cmsg = dataclasses.replace(cmsg, pubnonces=cut(list(cmsg.pubnonces), length))
    else:
        # every list is non-empty here (t - 1 == 1)
        simpl = cmsg.simpl_cmsg
        changes: dict[str, Any] = {kind: cut(list(getattr(simpl, kind)), length)}
        changed = dataclasses.replace(simpl, **changes)
        cmsg = dataclasses.replace(cmsg, simpl_cmsg=changed)
    enc_state = s1[0].enc_state
    with pytest.raises(FaultyCoordinatorError) as info:
        encpedpop.participant_step2(enc_state, sks[0], cmsg, 0)
    assert info.value.culprits == ()


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("cut", [0, 1, 32, 64, -1])
def test_cmsg1_and_cmsg2_of_wrong_length(group: Group, cut: int) -> None:
    """Truncated or extended broadcasts (missing shares, signatures) blame the coordinator."""
    n, t = 3, 2

    def bad(_: int, m: bytes) -> bytes:
        return m + b"\x00" if cut == -1 else m[: len(m) - cut] if cut else b""

    run1 = run_session(group, n, t, cmsg1=bad)
    assert_blames(run1, range(n), FaultyCoordinatorError, ())
    assert_no_key(run1)
    # cmsg2 is corrupted after the coordinator finished: the coordinator deems the session
    # successful (draft semantics), no participant does.
    run2 = run_session(group, n, t, cmsg2=bad)
    assert_blames(run2, range(n), FaultyCoordinatorError, ())
    assert_no_key(run2, coordinator=False)


@pytest.mark.parametrize("group", GROUPS)
def test_pmsgs2_lists_and_signatures(group: Group) -> None:
    n, t = 3, 2
    # A participant's empty, short or invalid signature is blamed on it by the coordinator.
    for bad_sig in (b"", b"\x01" * 63, b"\x01" * 65, bytes(64)):

        def replace_sig(i: int, m: bytes, sig: bytes = bad_sig) -> bytes:
            return sig if i == 2 else m

        run = run_session(group, n, t, pmsg2=replace_sig)
        assert type(run.coordinator) is FaultyParticipantError
        assert run.coordinator.culprits == (2,)
        assert_no_key(run)
    # A list of the wrong length is the caller's mistake: nobody is blamed.
    sks = hostkeys(n)
    params = dkg.SessionParams(tuple(hostpubs(n)), t, group)
    rand = det_random(b"y")
    s1, m1 = zip(*(dkg.participant_step1(sk, params, rand(32)) for sk in sks), strict=True)
    cstate, c1 = dkg.coordinator_step1(list(m1), params)
    sigs = [dkg.participant_step2(sk, s, c1, rand(32))[1] for sk, s in zip(sks, s1, strict=True)]
    for wrong in ([], sigs[:2], [*sigs, sigs[0]]):
        with pytest.raises(ParameterError):
            dkg.coordinator_finalize(cstate, wrong)
    for wrong in ([], list(m1[:2]), [*m1, m1[0]]):
        with pytest.raises(ParameterError):
            dkg.coordinator_step1(wrong, params)


def test_investigation_message_of_wrong_length_blames_the_coordinator() -> None:
    group, n, t = SECP256K1, 3, 2
    sks = hostkeys(n)
    params = dkg.SessionParams(tuple(hostpubs(n)), t, group)
    rand = det_random(b"z")
    s1, m1 = zip(*(dkg.participant_step1(sk, params, rand(32)) for sk in sks), strict=True)
    received = list(m1)
    received[1] = with_enc_share(group, received[1], t, n, 0, 1)
    _, c1 = dkg.coordinator_step1(received, params)
    with pytest.raises(dkg.UnknownFaultyParticipantOrCoordinatorError) as info:
        dkg.participant_step2(sks[0], s1[0], c1, rand(32))
    cinv = dkg.coordinator_investigate(received, params)[0]
    for bad in (b"", cinv[:-1], cinv + b"\x00", cinv[:32] + b"\xff" * 32 + cinv[64:]):
        with pytest.raises(FaultyCoordinatorError) as e2:
            dkg.participant_investigate(info.value, bad)
        assert e2.value.culprits == ()
    with pytest.raises(dkg.FaultyParticipantOrCoordinatorError) as e3:
        dkg.participant_investigate(info.value, cinv)
    assert e3.value.culprits == (1,)


# 5. Broadcast equivocation ---------------------------------------------------------------


@pytest.mark.parametrize("group", GROUPS)
def test_equivocating_coordinator(group: Group) -> None:
    """The coordinator sends participants 0 and 2 each a different cmsg1.

    Each variant is valid for its receiver (only another participant's encrypted share
    differs), so every participant completes step 2, but they sign different transcripts.
    Draft semantics: CertEq catches it. The coordinator's own ``coordinator_finalize``
    cannot tell who was given what and names the first participant whose signature does not
    match the transcript it holds (here 0); forwarding the mixed signatures anyway makes
    every participant raise FaultyCoordinatorError naming no participant. Nobody outputs a
    key.
    """
    n, t = 4, 2

    def equivocate(i: int, m: bytes) -> bytes:
        if i not in (0, 2):
            return m
        c = dkg.CoordinatorMsg1.from_bytes(m, group=group, t=t, n=n)
        shares = list(c.enc_secshares)
        other = 2 if i == 0 else 0
        shares[other] = (shares[other] + 1) % group.order
        return dataclasses.replace(c, enc_secshares=tuple(shares)).to_bytes()

    run = run_session(group, n, t, cmsg1=equivocate, coordinator_forwards_bad_cert=True)
    assert type(run.coordinator) is FaultyParticipantError
    assert run.coordinator.culprits == (0,)
    assert_blames(run, range(n), FaultyCoordinatorError, ())
    assert_no_key(run)


def test_coordinator_forging_the_certificate_is_caught() -> None:
    group, n, t = SECP256K1, 3, 2

    def forge(i: int, m: bytes) -> bytes:
        return m[:-1] + bytes([m[-1] ^ 1])

    run = run_session(group, n, t, cmsg2=forge)
    assert_blames(run, range(n), FaultyCoordinatorError, ())
    assert_no_key(run, coordinator=False)


# 6. Replay from another session ---------------------------------------------------------


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("change", ["t", "n", "hostpubkeys"])
def test_pmsg1_from_another_session_is_rejected_naming_its_sender(
    group: Group, change: str
) -> None:
    """A pmsg1 recorded in a session with other parameters, fed into this one.

    Other t or n: the length differs and the coordinator names the sender. Other host keys
    (same t, n): on secp256k1 the draft's pop binds only the index, so the message gets to
    the participants, whose shares then decrypt wrongly and the investigation names the
    sender; on Ed25519 the pop binds the parameters and fails at once.
    """
    n, t, sender = 4, 2, 1
    if change == "t":
        old_sks, old_t = hostkeys(n), t + 1
    elif change == "n":
        old_sks, old_t = hostkeys(n + 1), t
    else:
        old_sks, old_t = [*hostkeys(n)[:3], hashlib.sha256(b"someone else").digest()], t
    old_params = dkg.SessionParams(tuple(dkg.hostpubkey_gen(sk) for sk in old_sks), old_t, group)
    _, recorded = dkg.participant_step1(old_sks[sender], old_params, b"\x42" * 32)

    run = run_session(group, n, t, pmsg1=lambda i, m: recorded if i == sender else m)
    assert_no_key(run)
    if change in ("t", "n"):
        assert type(run.coordinator) is FaultyParticipantError
        assert run.coordinator.culprits == (sender,)
        return
    assert run.coordinator is None  # participants aborted before signing
    honest = [i for i in range(n) if i != sender]
    assert_blames(run, honest, dkg.FaultyParticipantOrCoordinatorError, (sender,))
    expected = "proof-of-knowledge" if group is ED25519 else "partial secshare"
    assert expected in str(run.error(0))


@pytest.mark.parametrize("group", GROUPS)
def test_replaying_a_participants_own_earlier_message(group: Group) -> None:
    """The coordinator replays participant 1's pmsg1 of an earlier session with the same
    parameters: the message is consistent, but participant 1 sees its commitment replaced
    and names the coordinator; without its signature nobody gets a certificate."""
    n, t = 3, 2
    earlier = honest_pmsgs1(group, n, t, b"earlier")
    run = run_session(group, n, t, pmsg1=lambda i, m: earlier[1] if i == 1 else m)
    err = run.error(1)
    assert type(err) is FaultyCoordinatorError and err.culprits == ()
    assert run.participants[0] is None and run.participants[2] is None
    assert_no_key(run)


# 7. Invalid points in participant messages ----------------------------------------------


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("what", ["pubnonce", "identity com0", "off-curve com1", "big share"])
def test_invalid_elements_in_pmsg1_name_the_sender(group: Group, what: str) -> None:
    n, t, cheat = 3, 2, 2
    suite = suite_for(group)
    m_len = suite.point_len

    def tamper(i: int, m: bytes) -> bytes:
        if i != cheat:
            return m
        b = bytearray(m)
        if what == "pubnonce":
            start = simplpedpop.ParticipantMsg.len_bytes(suite, t)
            b[start : start + 33] = b"\x02" + b"\xff" * 32
        elif what == "identity com0":
            b[:m_len] = suite.identity_encoding
        elif what == "off-curve com1":
            # x >= p (secp256k1) / y >= p (ed25519): not canonical, rejected
            b[m_len : 2 * m_len] = b"\x02" + b"\xff" * 32 if m_len == 33 else b"\xff" * 32
        else:
            b[-32:] = b"\xff" * 32
        return bytes(b)

    run = run_session(group, n, t, pmsg1=tamper)
    assert type(run.coordinator) is FaultyParticipantError
    assert run.coordinator.culprits == (cheat,)
    assert_no_key(run)


# 8. Fuzzing every parser and every step that takes bytes ---------------------------------


FUZZ = settings(max_examples=60, deadline=None)


@pytest.mark.parametrize("group", GROUPS)
@FUZZ
@given(
    data=st.binary(max_size=700),
    t=st.integers(min_value=0, max_value=4),
    n=st.integers(min_value=0, max_value=4),
)
def test_parsers_raise_only_decode_errors(group: Group, data: bytes, t: int, n: int) -> None:
    suite = suite_for(group)
    parsers: list[Callable[[], object]] = [
        lambda: dkg.ParticipantMsg1.from_bytes(data, group=group, t=t, n=n),
        lambda: dkg.ParticipantMsg2.from_bytes(data),
        lambda: dkg.CoordinatorMsg1.from_bytes(data, group=group, t=t, n=n),
        lambda: dkg.CoordinatorMsg2.from_bytes(data, n=n),
        lambda: dkg.CoordinatorInvestigationMsg.from_bytes(data, group=group, n=n),
        lambda: simplpedpop.ParticipantMsg.from_bytes(suite, data, t=t),
        lambda: simplpedpop.CoordinatorMsg.from_bytes(suite, data, t=max(t, 1), n=n),
        lambda: encpedpop.CoordinatorMsg.from_bytes(suite, data, t=max(t, 1), n=n),
        lambda: chilldkg.deserialize_recovery_data(suite, data),
    ]
    for parse in parsers:
        try:
            parse()
        except TmpcError:
            pass


@dataclass
class Finished:
    """An honest 2-of-3 session, stopped at each step, to fuzz the later steps against."""

    group: Group
    sks: list[bytes]
    params: dkg.SessionParams
    states1: list[dkg.ParticipantState1]
    pmsgs1: list[bytes]
    cmsg1: bytes
    state2: dkg.ParticipantState2
    cstate: dkg.CoordinatorState
    recovery: bytes


@pytest.fixture(scope="module", params=GROUPS)
def session(request: pytest.FixtureRequest) -> Finished:
    group: Group = request.param
    n, t = 3, 2
    sks = hostkeys(n)
    params = dkg.SessionParams(tuple(hostpubs(n)), t, group)
    rand = det_random(b"fuzz")
    steps = [dkg.participant_step1(sk, params, rand(32)) for sk in sks]
    states1, pmsgs1 = [s for s, _ in steps], [m for _, m in steps]
    cstate, cmsg1 = dkg.coordinator_step1(pmsgs1, params)
    state2, _ = dkg.participant_step2(sks[0], states1[0], cmsg1, rand(32))
    res = dkg.run_dkg(group, sks, t, random=det_random(b"fuzz2"))
    return Finished(
        group, sks, params, states1, pmsgs1, cmsg1, state2, cstate, res[0].recovery_data
    )


def _flip(data: bytes, pos: int, byte: int) -> bytes:
    if not data:
        return bytes([byte])
    pos %= len(data)
    return data[:pos] + bytes([byte]) + data[pos + 1 :]


@FUZZ
@given(pos=st.integers(min_value=0), byte=st.integers(0, 255), cut=st.integers(0, 3))
def test_steps_on_mutated_bytes_raise_only_tmpc_errors(
    session: Finished, pos: int, byte: int, cut: int
) -> None:
    s = session

    def mutate(b: bytes) -> bytes:
        b = _flip(b, pos, byte)
        return b[: len(b) - cut] if cut else b

    bad_m1 = list(s.pmsgs1)
    bad_m1[pos % 3] = mutate(bad_m1[pos % 3])
    steps: list[Callable[[], object]] = [
        lambda: dkg.coordinator_step1(bad_m1, s.params),
        lambda: dkg.participant_step2(s.sks[0], s.states1[0], mutate(s.cmsg1), b"\x01" * 32),
        lambda: dkg.participant_finalize(s.state2, mutate(bytes(192))),
        lambda: dkg.coordinator_finalize(s.cstate, [mutate(bytes(64))] * 3),
        lambda: dkg.recover(s.group, s.sks[0], mutate(s.recovery)),
        lambda: dkg.recover(s.group, None, mutate(s.recovery)),
    ]
    for step in steps:
        try:
            step()
        except TmpcError as e:
            # Whoever is blamed is a participant index or nobody: never an invented party.
            if isinstance(e, ProtocolError):
                assert all(0 <= c < 3 for c in e.culprits)


# 9. Party identifiers --------------------------------------------------------------------


@pytest.mark.parametrize("group", GROUPS)
def test_party_ids_zero_or_equal_modulo_the_order_are_rejected(group: Group) -> None:
    q = group.order
    for ids in ([0, 1, 2], [1, q], [1, 2 * q], [3, 3 + q], [1, 2, 2], [-1, 1]):
        with pytest.raises(ParameterError):
            check_ids(group, ids)
    check_ids(group, [1, 2, 3])  # the DKG's identifiers 1..n are fine


@pytest.mark.parametrize("group", GROUPS)
def test_bad_session_parameters_blame_nobody(group: Group) -> None:
    sks = hostkeys(3)
    pks = tuple(hostpubs(3))
    for t in (0, 4):
        with pytest.raises(dkg.ThresholdOrCountError):
            dkg.run_dkg(group, sks, t)
    with pytest.raises(dkg.DuplicateHostPubkeyError):
        dkg.params_validate(dkg.SessionParams((pks[0], pks[1], pks[0]), 2, group))
    with pytest.raises(dkg.RandomnessError):
        dkg.participant_step1(sks[0], dkg.SessionParams(pks, 2, group), bytes(32))
    with pytest.raises(dkg.HostSeckeyError):
        dkg.participant_step1(
            hostkeys(1, b"stranger")[0], dkg.SessionParams(pks, 2, group), b"\x01" * 32
        )


@pytest.mark.parametrize("group", GROUPS)
def test_recovery_data_is_bound_to_its_group_and_certificate(group: Group) -> None:
    sks = hostkeys(3)
    results = dkg.run_dkg(group, sks, 2, random=det_random(b"rec"))
    data = results[1].recovery_data
    assert dkg.recover(group, sks[1], data) == results[1]
    other = ED25519 if group is SECP256K1 else SECP256K1
    with pytest.raises(dkg.RecoveryDataError):
        dkg.recover(other, sks[1], data)
    # Any changed byte before the certificate breaks a signature; in it, too.
    for pos in (0, 5, len(data) - 64 * 3 - 1, len(data) - 1):
        bad = data[:pos] + bytes([data[pos] ^ 1]) + data[pos + 1 :]
        with pytest.raises(dkg.RecoveryDataError):
            dkg.recover(group, None, bad)
    with pytest.raises(dkg.HostSeckeyError):
        dkg.recover(group, hostkeys(1, b"stranger")[0], data)


@pytest.mark.parametrize("group", GROUPS)
def test_single_participant(group: Group) -> None:
    (r,) = dkg.run_dkg(group, hostkeys(1), 1, random=det_random(b"one"))
    assert r.pubshares == (r.threshold_pubkey,)
    assert group.base_mul(r.secshare) == r.threshold_pubkey
