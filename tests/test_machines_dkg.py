"""ChillDKG as per-party machines (DkgMachine), peer to peer, over both target groups.

- Honest runs over ``tmpc.local.run_machines`` give every party the same key; the key signs
  (FROST / BIP445 machines) and the signatures pass independent verifiers; the outputs are
  byte for byte those of ``run_dkg`` given the same randomness, so the machine is ChillDKG.
- Misbehaving parties are named by their 1-based party id (ChillDKG's indices are 0-based):
  a bad encrypted share names its dealer after the investigation, a malformed or invalid
  contribution names its sender, a split view is a BroadcastMismatchError that blames nobody.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Callable

import coincurve
import pytest
from nacl.signing import VerifyKey

from tests.test_machines_frost import det_random, drive, replace_payload
from tmpc.errors import FaultyParticipantError, ParameterError, ProtocolError, StateError
from tmpc.group import ED25519, SECP256K1, Group, ed25519, secp256k1
from tmpc.local import run_machines
from tmpc.protocols import dkg, frost, taproot
from tmpc.protocols.dkg import chilldkg
from tmpc.protocols.dkg.machine import DkgMachine
from tmpc.protocols.frost_machine import Bip445SignMachine, FrostSignMachine
from tmpc.protocols.machine import BroadcastMismatchError, Message

GROUPS = [pytest.param(SECP256K1, id="secp256k1"), pytest.param(ED25519, id="ed25519")]
groups = pytest.mark.parametrize("group", GROUPS)
N, T = 5, 3


def hostkeys(n: int = N, tag: bytes = b"") -> list[bytes]:
    return [hashlib.sha256(b"dkg-machines" + tag + bytes([i])).digest() for i in range(n)]


def machines(
    group: Group, n: int = N, t: int = T, *, seed: bytes = b"s"
) -> tuple[dict[int, DkgMachine], list[bytes]]:
    sks = hostkeys(n)
    pks = [dkg.hostpubkey_gen(sk) for sk in sks]
    ms = {
        i: DkgMachine(group, sks[i - 1], pks, t, i, rand=det_random(seed + bytes([i])))
        for i in range(1, n + 1)
    }
    return ms, sks


def assert_same_key(group: Group, ms: dict[int, DkgMachine], sks: list[bytes]) -> None:
    outs = {i: m.output for i, m in ms.items()}
    first = outs[1]
    for i, o in outs.items():
        assert (o.index, o.identifier) == (i - 1, i)
        assert o.threshold_pubkey == first.threshold_pubkey
        assert o.pubshares == first.pubshares
        assert o.recovery_data == first.recovery_data
        assert o.threshold == T
        assert group.base_mul(o.secshare) == o.pubshares[i - 1]
        # The recovery data restores exactly this output.
        assert dkg.recover(group, sks[i - 1], o.recovery_data) == o


# Honest runs -------------------------------------------------------------------------------


@groups
def test_run_machines_gives_a_key_that_signs(group: Group) -> None:
    ms, sks = machines(group)
    results = run_machines(ms)
    assert all(results[i] is ms[i].output for i in ms)
    assert_same_key(group, ms, sks)
    out = {i: m.output for i, m in ms.items()}
    pk = out[1].threshold_pubkey
    vs = {i + 1: p for i, p in enumerate(out[1].pubshares)}
    msg = hashlib.sha256(b"first spend").digest()
    signers = [1, 3, 5]
    suite = ed25519 if group is ED25519 else secp256k1
    fm = {
        i: FrostSignMachine(suite, i, out[i].secshare, pk, vs, signers, msg, min_signers=T)
        for i in signers
    }
    run_machines(fm)
    sig = fm[1].signature
    if group is ED25519:
        VerifyKey(pk.encode()).verify(msg, sig)  # libsodium; raises if invalid
    else:
        assert frost.verify(secp256k1, pk, msg, sig)
        tweaks = taproot.taproot_tweaks_for(pk, None)
        bm = {
            i: Bip445SignMachine(
                i, out[i].secshare, pk, vs, signers, msg, min_signers=T, tweaks=tweaks
            )
            for i in signers
        }
        run_machines(bm)
        output_key = taproot.taproot_output_key(pk, None)[0]
        assert coincurve.PublicKeyXOnly(output_key).verify(bm[1].signature, msg)


@groups
def test_outputs_equal_run_dkg_given_the_same_randomness(group: Group) -> None:
    sks = hostkeys()
    pks = [dkg.hostpubkey_gen(sk) for sk in sks]
    step1 = [hashlib.sha256(b"r1" + bytes([i])).digest() for i in range(N)]
    step2 = [hashlib.sha256(b"r2" + bytes([i])).digest() for i in range(N)]
    # run_dkg draws participant_step1's randomness for every party, then step2's.
    seq = iter(step1 + step2)
    expected = dkg.run_dkg(group, sks, T, random=lambda k: next(seq))

    def rand_for(i: int) -> Callable[[int], bytes]:
        it = iter([step1[i - 1], step2[i - 1]])
        return lambda k: next(it)

    ms = {i: DkgMachine(group, sks[i - 1], pks, T, i, rand=rand_for(i)) for i in range(1, N + 1)}
    run_machines(ms)
    assert [ms[i].output for i in range(1, N + 1)] == expected


@groups
@pytest.mark.parametrize("order", ["reversed", "shuffled", "duplicated"])
def test_reordered_and_duplicated_delivery_completes(group: Group, order: str) -> None:
    ms, _ = machines(group, 4, 2)
    if order == "reversed":
        errors = drive(ms, pick=lambda n: n - 1)
    elif order == "shuffled":
        errors = drive(ms, pick=random.Random(7).randrange)
    else:
        errors = drive(ms, duplicate=True, pick=random.Random(8).randrange)
    assert errors == {}
    outs = [m.output for m in ms.values()]
    assert len({o.recovery_data for o in outs}) == 1


def test_single_party_session() -> None:
    ms, _ = machines(SECP256K1, 1, 1)
    run_machines(ms)
    o = ms[1].output
    assert SECP256K1.base_mul(o.secshare) == o.threshold_pubkey


# Misbehaving parties -----------------------------------------------------------------------


def _with_enc_share(group: Group, pmsg1: bytes, recipient: int, delta: int) -> bytes:
    """``pmsg1`` with the encrypted share for 0-based ``recipient`` changed by ``delta``."""
    p = chilldkg.ParticipantMsg1.from_bytes(pmsg1, group=group, t=T, n=N).enc_pmsg
    shares = list(p.enc_shares)
    shares[recipient] = (shares[recipient] + delta) % group.order
    return dataclasses.replace(p, enc_shares=tuple(shares)).to_bytes()


def _with_pop(group: Group, pmsg1: bytes, pop: bytes) -> bytes:
    p = chilldkg.ParticipantMsg1.from_bytes(pmsg1, group=group, t=T, n=N).enc_pmsg
    return dataclasses.replace(p, simpl_pmsg=dataclasses.replace(p.simpl_pmsg, pop=pop)).to_bytes()


@groups
@pytest.mark.parametrize(("dealer", "victim"), [(2, 1), (3, 4), (1, 5)])
def test_bad_encrypted_share_names_its_dealer(group: Group, dealer: int, victim: int) -> None:
    """The dealer broadcasts the same pmsg1 to everyone, with a wrong share for the victim."""
    tamper = replace_payload(dealer, 1, lambda p, r: _with_enc_share(group, p, victim - 1, 1))
    ms, _ = machines(group)
    with pytest.raises(FaultyParticipantError) as ei:
        run_machines(ms, tamper=tamper)
    assert ei.value.culprits == (dealer,)  # a 1-based party id, after the investigation
    ms, _ = machines(group)
    errors = drive(ms, tamper=tamper)
    assert set(errors) == {victim}
    assert errors[victim].culprits == (dealer,)
    assert not any(m.done for m in ms.values())  # nobody outputs a key


@groups
@pytest.mark.parametrize("kind", ["truncated", "bad-point", "bad-pop"])
def test_invalid_pmsg1_names_its_sender(group: Group, kind: str) -> None:
    sender = 1  # index 0 in ChillDKG: the conversion must not blame "party 0"
    size = 33 if group is SECP256K1 else 32

    def malform(p: bytes, _r: int) -> bytes:
        if kind == "truncated":
            return p[:-1]
        if kind == "bad-point":
            junk = b"\x05" + b"\xff" * 32 if group is SECP256K1 else b"\xff" * 32
            return junk + p[size:]
        return _with_pop(group, p, bytes(len(_pop_of(group, p))))

    ms, _ = machines(group)
    errors = drive(ms, tamper=replace_payload(sender, 1, malform))
    assert set(errors) == {2, 3, 4, 5}
    for err in errors.values():
        assert isinstance(err, FaultyParticipantError), err
        assert err.culprits == (sender,)
    assert not any(m.done for m in ms.values())


def _pop_of(group: Group, pmsg1: bytes) -> bytes:
    return chilldkg.ParticipantMsg1.from_bytes(pmsg1, group=group, t=T, n=N).enc_pmsg.simpl_pmsg.pop


@groups
@pytest.mark.parametrize("kind", ["bad-signature", "wrong-length"])
def test_invalid_pmsg2_names_its_sender(group: Group, kind: str) -> None:
    sender = 4

    def malform(p: bytes, _r: int) -> bytes:
        if kind == "wrong-length":
            return p[:63] + p[64:]
        sig = bytearray(p[:64])
        sig[40] ^= 1
        return bytes(sig) + p[64:]

    ms, _ = machines(group)
    errors = drive(ms, tamper=replace_payload(sender, 2, malform))
    assert set(errors) == {1, 2, 3, 5}
    for err in errors.values():
        assert isinstance(err, FaultyParticipantError), err
        assert err.culprits == (sender,)
    assert not any(ms[i].done for i in errors)


@groups
def test_split_view_of_pmsg1_is_a_broadcast_mismatch(group: Group) -> None:
    """Party 3 sends party 1 another valid pmsg1 than the rest: without the echo, CertEq
    would make the others blame an honest party; with it, nobody is blamed."""
    sks = hostkeys()
    params = dkg.SessionParams(tuple(dkg.hostpubkey_gen(sk) for sk in sks), T, group)
    _, alt = dkg.participant_step1(sks[2], params, hashlib.sha256(b"alt").digest())
    tamper = replace_payload(3, 1, lambda p, r: alt if r == 1 else p)
    ms, _ = machines(group)
    errors = drive(ms, tamper=tamper)
    assert set(errors) == set(ms)
    for err in errors.values():
        assert isinstance(err, BroadcastMismatchError)
        assert err.culprits == ()
    assert not any(m.done for m in ms.values())


@groups
def test_routing_errors_and_state(group: Group) -> None:
    ms, _ = machines(group, 3, 2)
    out = {i: ms[i].start() for i in ms}
    pmsg1 = out[2][0]
    for bad, culprits in [
        (Message(1, 7, None, pmsg1.payload), (7,)),
        (Message(3, 2, None, pmsg1.payload), (2,)),
        (Message(1, 2, 3, pmsg1.payload), (2,)),
    ]:
        with pytest.raises(ProtocolError) as ei:
            ms[1].receive(bad)
        assert ei.value.culprits == culprits
    with pytest.raises(ProtocolError) as ei:
        ms[1].receive(Message(1, 2, None, pmsg1.payload))
        ms[1].receive(Message(1, 2, None, pmsg1.payload[:-1] + bytes([pmsg1.payload[-1] ^ 1])))
    assert ei.value.culprits == (2,)  # two different round-1 messages
    ms, _ = machines(group, 3, 2)
    out = {i: ms[i].start() for i in ms}
    assert drive(ms, outbox=out) == {}
    with pytest.raises(StateError):
        ms[1].receive(out[2][0])
    with pytest.raises(StateError):
        ms[1].start()


def test_bad_parameters_are_refused() -> None:
    sks = hostkeys(3)
    pks = [dkg.hostpubkey_gen(sk) for sk in sks]
    with pytest.raises(dkg.HostSeckeyError):
        DkgMachine(SECP256K1, sks[0], pks, 2, 2)  # party 2's slot, party 1's key
    for me in (0, 4, True):
        with pytest.raises(ParameterError):
            DkgMachine(SECP256K1, sks[0], pks, 2, me)
    with pytest.raises(dkg.ThresholdOrCountError):
        DkgMachine(SECP256K1, sks[0], pks, 4, 1)
    with pytest.raises(dkg.DuplicateHostPubkeyError):
        DkgMachine(SECP256K1, sks[0], [pks[0], pks[0], pks[2]], 2, 1)
    with pytest.raises(ParameterError):
        DkgMachine(SECP256K1, sks[0], pks, 2, 1, rand=b"not callable")  # type: ignore[arg-type]


def test_host_secret_keys_never_in_reprs_or_errors() -> None:
    ms, sks = machines(SECP256K1)
    texts = [repr(m) for m in ms.values()]
    tamper = replace_payload(2, 1, lambda p, r: _with_enc_share(SECP256K1, p, 0, 1))
    errors = drive(ms, tamper=tamper)
    texts += [str(e) + repr(e) for e in errors.values()]
    ms, _ = machines(SECP256K1)
    run_machines(ms)
    texts += [repr(m) + repr(m.output) for m in ms.values()]
    blob = "\n".join(texts).lower()
    for sk in sks:
        assert sk.hex() not in blob
    for m in ms.values():
        assert str(m.output.secshare) not in blob


@groups
def test_threshold_one_key_signs_with_a_single_signer(group: Group) -> None:
    ms, _ = machines(group, 3, 1)
    run_machines(ms)
    out = {i: m.output for i, m in ms.items()}
    pk = out[1].threshold_pubkey
    vs = {i + 1: p for i, p in enumerate(out[1].pubshares)}
    msg = hashlib.sha256(b"t = 1").digest()
    suite = ed25519 if group is ED25519 else secp256k1
    fm = {2: FrostSignMachine(suite, 2, out[2].secshare, pk, vs, [2], msg, min_signers=1)}
    run_machines(fm)
    if group is ED25519:
        VerifyKey(pk.encode()).verify(msg, fm[2].signature)
    else:
        assert frost.verify(secp256k1, pk, msg, fm[2].signature)
        tweaks = taproot.taproot_tweaks_for(pk, None)
        bm = {
            3: Bip445SignMachine(3, out[3].secshare, pk, vs, [3], msg, min_signers=1, tweaks=tweaks)
        }
        run_machines(bm)
        output_key = taproot.taproot_output_key(pk, None)[0]
        assert coincurve.PublicKeyXOnly(output_key).verify(bm[3].signature, msg)
