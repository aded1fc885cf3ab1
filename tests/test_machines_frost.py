"""The per-party signing machines: FrostSignMachine (RFC 9591) and Bip445SignMachine (BIP445).

Keys come from a real ChillDKG run over DkgMachines. Every signature is checked by a verifier
that is not tmpc's: libsecp256k1's BIP340 verification (coincurve) for schnorr-bip340,
libsodium's Ed25519 verification (PyNaCl) for ed25519. No third-party library verifies
FROST(secp256k1, SHA-256) signatures, so frost-secp256k1 is checked with tmpc's
``frost.verify`` *and* with ``tmpc.cli.demo.independent_verify``, which evaluates the RFC 9591
equation with libsecp256k1's point operations instead of tmpc's group layer.

The adversarial tests change messages in flight (``run_machines``' ``tamper`` hook, or
:func:`drive`, which keeps going after a party fails and records every outcome) and assert
the error type, the exact culprits, and that no party outputs a wrong signature.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import coincurve
import pytest
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from tmpc.cli.demo import independent_verify
from tmpc.errors import (
    FaultyParticipantError,
    ParameterError,
    ProtocolError,
    StateError,
    TmpcError,
)
from tmpc.group import ED25519, SECP256K1, ed25519, secp256k1
from tmpc.group.base import Ciphersuite, Point
from tmpc.local import run_machines
from tmpc.protocols import bip445, dkg, frost, taproot
from tmpc.protocols.dkg.machine import DkgMachine
from tmpc.protocols.frost_machine import Bip445SignMachine, FrostSignMachine
from tmpc.protocols.machine import BroadcastMismatchError, Machine, Message, transcript_hash

SCHEMES = ["schnorr-bip340", "ed25519", "frost-secp256k1"]
schemes = pytest.mark.parametrize("scheme", SCHEMES)
N, T = 5, 3
MSG = hashlib.sha256(b"withdraw 1 BTC to bc1q...").digest()  # 32 bytes: a sighash

SignMachine = FrostSignMachine | Bip445SignMachine
Tamper = Callable[[Message, int], Message | None]


def det_random(seed: bytes) -> Callable[[int], bytes]:
    """A deterministic ``rand`` (tests only)."""
    counter = iter(range(1 << 30))
    return lambda k: hashlib.shake_256(seed + next(counter).to_bytes(4, "big")).digest(k)


# Keys --------------------------------------------------------------------------------------


@functools.cache
def _dkg(group_name: str) -> tuple[tuple[int, ...], Point, tuple[Point, ...]]:
    """A 3-of-5 key from ChillDKG over DkgMachines: (secret shares, key, public shares)."""
    group = SECP256K1 if group_name == SECP256K1.name else ED25519
    sks = [hashlib.sha256(b"frost-machines" + bytes([i])).digest() for i in range(N)]
    pks = [dkg.hostpubkey_gen(sk) for sk in sks]
    ms = {
        i: DkgMachine(
            group, sks[i - 1], pks, T, i, rand=det_random(group_name.encode() + b"%d" % i)
        )
        for i in range(1, N + 1)
    }
    run_machines(ms)
    outs = [ms[i].output for i in range(1, N + 1)]
    return tuple(o.secshare for o in outs), outs[0].threshold_pubkey, outs[0].pubshares


@dataclass(frozen=True)
class Wallet:
    """A scheme's key: secret shares and public shares by party id, and the tweaks."""

    scheme: str
    shares: dict[int, int]
    pk: Point
    vs: dict[int, Point]
    tweaks: tuple[tuple[bytes, bool], ...] = ()

    @property
    def suite(self) -> Ciphersuite:
        return ed25519 if self.scheme == "ed25519" else secp256k1

    @property
    def public_key(self) -> bytes:
        """What a verifier sees: the x-only tweaked key (BIP340) or the encoded key."""
        if self.scheme == "schnorr-bip340":
            ctx = bip445.TweakCtxInit(self.pk.encode())
            for tw, mode in self.tweaks:
                ctx = bip445.ApplyTweak(ctx, tw, mode)
            return bytes(bip445.GetXonlyPubkey(ctx))
        return self.pk.encode()


def wallet(scheme: str, tweaks: tuple[tuple[bytes, bool], ...] | None = None) -> Wallet:
    group = ED25519 if scheme == "ed25519" else SECP256K1
    shares, pk, pubshares = _dkg(group.name)
    if scheme == "schnorr-bip340" and tweaks is None:
        tweaks = tuple(taproot.taproot_tweaks_for(pk, None))  # key-path-only Taproot output
    return Wallet(
        scheme,
        {i + 1: s for i, s in enumerate(shares)},
        pk,
        {i + 1: p for i, p in enumerate(pubshares)},
        tweaks or (),
    )


def machines_for(
    w: Wallet,
    signers: list[int],
    msg: bytes = MSG,
    *,
    shares: Mapping[int, int] | None = None,
    seed: bytes | None = None,
) -> dict[int, SignMachine]:
    """One machine per signer; ``shares`` overrides some secret shares."""
    secret = {**w.shares, **(shares or {})}
    out: dict[int, SignMachine] = {}
    for i in signers:
        rand = det_random(seed + bytes([i])) if seed is not None else None
        if w.scheme == "schnorr-bip340":
            out[i] = Bip445SignMachine(
                i, secret[i], w.pk, w.vs, signers, msg, min_signers=T, tweaks=w.tweaks, rand=rand
            )
        else:
            out[i] = FrostSignMachine(
                w.suite, i, secret[i], w.pk, w.vs, signers, msg, min_signers=T, rand=rand
            )
    return out


def verifies_independently(w: Wallet, msg: bytes, sig: bytes) -> bool:
    if w.scheme == "schnorr-bip340":
        return bool(coincurve.PublicKeyXOnly(w.public_key).verify(sig, msg))
    if w.scheme == "ed25519":
        try:
            VerifyKey(w.public_key).verify(msg, sig)
        except BadSignatureError:
            return False
        return True
    # frost-secp256k1: no third-party FROST(secp256k1) verifier exists; tmpc's verifier plus the
    # RFC 9591 equation evaluated with libsecp256k1 point operations (see the module docstring).
    return frost.verify(secp256k1, w.pk, msg, sig) and independent_verify(
        "frost-secp256k1", w.public_key, msg, sig
    )


def signature_of(ms: Mapping[int, SignMachine]) -> bytes:
    """The one signature every machine computed (they must agree)."""
    sigs = {m.signature for m in ms.values()}
    assert len(sigs) == 1
    return sigs.pop()


# A driver that keeps going after failures ---------------------------------------------------


def drive(
    machines: Mapping[int, Machine],
    *,
    pick: Callable[[int], int] = lambda n: 0,
    tamper: Tamper | None = None,
    duplicate: bool = False,
    outbox: Mapping[int, list[Message]] | None = None,
) -> dict[int, TmpcError]:
    """Deliver every message until none is left; returns each failed party's error.

    ``pick(k)`` chooses which of the ``k`` pending deliveries goes next (0: in order).
    ``duplicate`` delivers every message twice. A failed or finished party gets nothing more
    (a node closes the session). ``outbox``: the start() output of already started machines.
    """
    ids = sorted(machines)
    pending: list[tuple[int, Message]] = []
    errors: dict[int, TmpcError] = {}

    def route(out: list[Message]) -> None:
        for msg in out:
            targets = (
                [p for p in ids if p != msg.sender] if msg.recipient is None else [msg.recipient]
            )
            for r in targets:
                m = tamper(msg, r) if tamper is not None else msg
                if m is not None:
                    pending.extend([(r, m)] * (2 if duplicate else 1))

    for i in ids:
        route(outbox[i] if outbox is not None else machines[i].start())
    while pending:
        r, msg = pending.pop(pick(len(pending)))
        if r in errors or machines[r].done:
            continue
        try:
            route(machines[r].receive(msg))
        except TmpcError as e:
            errors[r] = e
    return errors


def replace_payload(sender: int, rnd: int, fn: Callable[[bytes, int], bytes]) -> Tamper:
    """A tamper hook rewriting ``sender``'s round-``rnd`` payload to each recipient."""

    def tamper(msg: Message, r: int) -> Message:
        if msg.sender == sender and msg.round == rnd:
            return Message(msg.round, msg.sender, msg.recipient, fn(msg.payload, r))
        return msg

    return tamper


def other_round1(w: Wallet, sender: int) -> bytes:
    """A second, valid round-1 payload of ``sender`` (fresh nonces)."""
    if w.scheme == "schnorr-bip340":
        return bip445.NonceGen()[1]
    return frost.commit(w.suite, sender, w.shares[sender])[1].to_bytes()


# Honest runs -------------------------------------------------------------------------------


@schemes
@pytest.mark.parametrize("signers", [[1, 2, 3], [2, 4, 5], [1, 2, 3, 4, 5]])
def test_sign_and_verify_independently(scheme: str, signers: list[int]) -> None:
    w = wallet(scheme)
    ms = machines_for(w, signers)
    results = run_machines(ms)
    sig = signature_of(ms)
    assert set(results.values()) == {sig}
    assert len(sig) == (65 if scheme == "frost-secp256k1" else 64)
    assert verifies_independently(w, MSG, sig)
    assert not verifies_independently(w, bytes(32), sig)
    assert all(m.nonce_used for m in ms.values())


def test_bip445_signature_is_under_the_taproot_output_key() -> None:
    w = wallet("schnorr-bip340")
    output_key, _parity = taproot.taproot_output_key(w.pk, None)
    assert w.public_key == output_key
    ms = machines_for(w, [1, 3, 5])
    run_machines(ms)
    assert all(
        m.xonly_pubkey == output_key for m in ms.values() if isinstance(m, Bip445SignMachine)
    )
    assert coincurve.PublicKeyXOnly(output_key).verify(signature_of(ms), MSG)


def test_bip445_bip32_then_taproot_tweak() -> None:
    base = wallet("schnorr-bip340")
    t = int.from_bytes(hashlib.sha256(b"bip32 child").digest(), "big") % SECP256K1.order
    child = base.pk + SECP256K1.base_mul(t)
    tweaks = ((t.to_bytes(32, "big"), False), *taproot.taproot_tweaks_for(child, None))
    w = wallet("schnorr-bip340", tweaks)
    assert w.public_key == taproot.taproot_output_key(child, None)[0]
    ms = machines_for(w, [2, 3, 4])
    run_machines(ms)
    assert verifies_independently(w, MSG, signature_of(ms))


@schemes
def test_deterministic_given_rand(scheme: str) -> None:
    w = wallet(scheme)
    a, b = machines_for(w, [1, 2, 4], seed=b"r"), machines_for(w, [1, 2, 4], seed=b"r")
    run_machines(a)
    run_machines(b)
    assert signature_of(a) == signature_of(b)
    c = machines_for(w, [1, 2, 4], seed=b"other")
    run_machines(c)
    assert signature_of(c) != signature_of(a)
    assert verifies_independently(w, MSG, signature_of(c))


@schemes
@pytest.mark.parametrize("order", ["reversed", "shuffled-1", "shuffled-2"])
def test_reordered_delivery_completes(scheme: str, order: str) -> None:
    w = wallet(scheme)
    ms = machines_for(w, [1, 3, 4, 5])
    rng = random.Random(order)
    pick = (lambda n: n - 1) if order == "reversed" else rng.randrange
    assert drive(ms, pick=pick) == {}
    assert verifies_independently(w, MSG, signature_of(ms))


@schemes
def test_exact_duplicates_are_ignored(scheme: str) -> None:
    w = wallet(scheme)
    ms = machines_for(w, [1, 2, 3])
    assert drive(ms, duplicate=True, pick=random.Random(1).randrange) == {}
    assert verifies_independently(w, MSG, signature_of(ms))


# Misbehaving signers -----------------------------------------------------------------------


def _bump(scheme: str, share: bytes) -> bytes:
    """A share plus one, still a canonical scalar (so only verification can catch it)."""
    order = ED25519.order if scheme == "ed25519" else SECP256K1.order
    byteorder = "little" if scheme == "ed25519" else "big"
    z = (int.from_bytes(share, byteorder) + 1) % order
    return z.to_bytes(32, byteorder)


@schemes
@pytest.mark.parametrize("kind", ["wrong", "not-a-scalar"])
def test_corrupted_signature_share_names_its_sender(scheme: str, kind: str) -> None:
    w = wallet(scheme)
    ms = machines_for(w, [1, 2, 4])

    def corrupt(p: bytes, _r: int) -> bytes:
        share, echo = p[:32], p[32:]
        return (_bump(scheme, share) if kind == "wrong" else b"\xff" * 32) + echo

    with pytest.raises(FaultyParticipantError) as ei:
        run_machines(ms, tamper=replace_payload(2, 2, corrupt))
    assert ei.value.culprits == (2,)
    # Every honest signer blames exactly party 2 and outputs nothing.
    ms = machines_for(w, [1, 2, 4])
    errors = drive(ms, tamper=replace_payload(2, 2, corrupt))
    for i in (1, 4):
        assert isinstance(errors[i], FaultyParticipantError)
        assert errors[i].culprits == (2,)
        assert not ms[i].done


@schemes
@pytest.mark.parametrize("kind", ["truncated", "bad-point", "empty"])
def test_malformed_round1_payload_names_its_sender(scheme: str, kind: str) -> None:
    w = wallet(scheme)
    ms = machines_for(w, [1, 3, 5])

    def malform(p: bytes, _r: int) -> bytes:
        if kind == "truncated":
            return p[:-1]
        if kind == "empty":
            return b""
        # The first element (hiding commitment / R1) replaced by bytes that are no point.
        start = 0 if scheme == "schnorr-bip340" else 32
        size = 33 if scheme != "ed25519" else 32
        junk = b"\x05" + b"\xff" * (size - 1) if scheme != "ed25519" else b"\xff" * 32
        return p[:start] + junk + p[start + size :]

    errors = drive(ms, tamper=replace_payload(3, 1, malform))
    for i in (1, 5):
        err = errors[i]
        assert isinstance(err, FaultyParticipantError), err
        assert err.culprits == (3,)
        # Parsed before signing: the nonce was never used, and the session is over.
        assert not ms[i].nonce_used
        with pytest.raises(StateError):
            ms[i].receive(Message(2, 3, None, b"\x00" * 64))


@schemes
def test_two_different_round1_messages_name_the_sender(scheme: str) -> None:
    w = wallet(scheme)
    ms = machines_for(w, [1, 2, 3])
    out = {i: ms[i].start() for i in ms}
    first = out[2][0]
    assert ms[1].receive(first) == []
    assert ms[1].receive(first) == []  # an identical copy is dropped
    second = Message(1, 2, None, other_round1(w, 2))
    with pytest.raises(ProtocolError) as ei:
        ms[1].receive(second)
    assert ei.value.culprits == (2,)
    assert not ms[1].nonce_used


@schemes
@pytest.mark.parametrize("lying_echo", [False, True])
def test_split_view_is_a_broadcast_mismatch_and_never_a_signature(
    scheme: str, lying_echo: bool
) -> None:
    """Party 3 sends party 1 other (valid) round-1 values than party 2.

    With ``lying_echo`` party 3 also tailors its echo to each recipient's view; the honest
    parties still catch it from each other's echoes."""
    w = wallet(scheme)
    ms = machines_for(w, [1, 2, 3])
    alt = other_round1(w, 3)
    views: dict[int, dict[int, bytes]] = {i: {} for i in ms}
    tag = ms[1].echo_tag

    def tamper(msg: Message, r: int) -> Message:
        if msg.round == 1:
            views[msg.sender][msg.sender] = msg.payload
            payload = alt if (msg.sender, r) == (3, 1) else msg.payload
            views[r][msg.sender] = payload
            return Message(1, msg.sender, None, payload)
        if lying_echo and msg.sender == 3:
            echo = transcript_hash(tag, views[r])
            return Message(2, 3, None, msg.payload[:32] + echo)
        return msg

    errors = drive(ms, tamper=tamper)
    for i in (1, 2):
        assert isinstance(errors[i], BroadcastMismatchError), errors[i]
        assert errors[i].culprits == ()
    assert not any(m.done for m in ms.values())
    with pytest.raises(BroadcastMismatchError):
        run_machines(machines_for(w, [1, 2, 3]), tamper=tamper)


@schemes
def test_routing_errors_name_the_sender_and_do_not_end_the_session(scheme: str) -> None:
    w = wallet(scheme)
    ms = machines_for(w, [1, 2, 4])
    out = {i: ms[i].start() for i in ms}
    good = out[2][0]
    m1 = ms[1]
    for bad, culprits in [
        (Message(1, 3, None, good.payload), (3,)),  # party 3 is not a signer here
        (Message(1, 9, None, good.payload), (9,)),  # not a party at all
        (Message(1, 1, None, good.payload), (1,)),  # "from" itself
        (Message(3, 2, None, good.payload), (2,)),  # a round the protocol does not have
        (Message(0, 2, None, good.payload), (2,)),
        (Message(1, 2, 4, good.payload), (2,)),  # addressed to another party
    ]:
        with pytest.raises(ProtocolError) as ei:
            m1.receive(bad)
        assert ei.value.culprits == culprits
    assert drive(ms, outbox=out) == {}
    assert verifies_independently(w, MSG, signature_of(ms))


@pytest.mark.parametrize("scheme", ["ed25519", "frost-secp256k1"])
def test_frost_share_of_another_wallet_is_named(scheme: str) -> None:
    w = wallet(scheme)
    foreign = {2: (w.shares[2] * 7 + 1) % w.suite.group.order}
    ms = machines_for(w, [1, 2, 3], shares=foreign)
    errors = drive(ms)
    assert set(errors) == {1, 2, 3}
    for err in errors.values():
        assert isinstance(err, FaultyParticipantError)
        assert err.culprits == (2,)


def test_bip445_share_of_another_wallet_is_refused_by_its_signer() -> None:
    w = wallet("schnorr-bip340")
    with pytest.raises(ParameterError):
        machines_for(w, [1, 2, 3], shares={2: w.shares[2] + 1})


# State -------------------------------------------------------------------------------------


@schemes
def test_receive_after_done_and_second_start_raise_state_error(scheme: str) -> None:
    w = wallet(scheme)
    ms = machines_for(w, [1, 2, 3])
    out = {i: ms[i].start() for i in ms}
    late = out[2][0]
    assert drive(ms, outbox=out) == {}
    assert ms[1].done
    with pytest.raises(StateError):
        ms[1].receive(late)
    with pytest.raises(StateError):
        ms[1].start()
    fresh = machines_for(w, [1, 2, 3])[1]
    with pytest.raises(StateError):
        _ = fresh.result


@schemes
def test_a_nonce_is_never_usable_twice(scheme: str) -> None:
    w = wallet(scheme)
    ms = machines_for(w, [1, 2, 3])
    run_machines(ms)
    m = ms[1]
    assert m.nonce_used
    if isinstance(m, FrostSignMachine):
        nonces = m._nonces  # the single-use holder the machine signed with
        assert nonces is not None and nonces.consumed
        with pytest.raises(StateError):
            frost.sign(w.suite, 1, w.shares[1], w.pk, nonces, b"again", m._commitment_list)
        with pytest.raises(StateError):
            copy.deepcopy(nonces)
    else:
        secnonce = m._secnonce
        assert secnonce is not None and secnonce.used
        assert m._session is not None
        with pytest.raises(StateError):
            bip445.Sign(secnonce, w.shares[1].to_bytes(32, "big"), 0, m._session)
        assert secnonce.dangerous_to_bytes() == bytes(64)  # wiped
        with pytest.raises(StateError):
            copy.copy(secnonce)


# Parameters and secrets --------------------------------------------------------------------


def _ctor(w: Wallet, **kw: Any) -> SignMachine:
    args: dict[str, Any] = {
        "me": 1,
        "secshare": w.shares[1],
        "group_public_key": w.pk,
        "verifying_shares": w.vs,
        "signers": [1, 2, 3],
        "msg": MSG,
        "min_signers": T,
    }
    args.update(kw)
    if w.scheme == "schnorr-bip340":
        return Bip445SignMachine(**args)
    return FrostSignMachine(w.suite, **args)


@schemes
@pytest.mark.parametrize(
    "bad",
    [
        {"me": 4},  # not a signer
        {"me": True},
        {"signers": [1, 2]},  # fewer than t
        {"signers": [1, 2, 2, 3]},  # a signer twice
        {"signers": [0, 1, 2, 3]},  # identifier zero
        {"min_signers": 0},
        {"secshare": 0},
        {"verifying_shares": {1: None, 2: None, 3: None}},
        {"msg": "text"},
        {"rand": b"not callable"},
    ],
)
def test_bad_parameters_are_refused(scheme: str, bad: dict[str, Any]) -> None:
    w = wallet(scheme)
    with pytest.raises(ParameterError):
        _ctor(w, **bad)


@schemes
def test_missing_verifying_share_is_refused(scheme: str) -> None:
    w = wallet(scheme)
    with pytest.raises(ParameterError):
        _ctor(w, verifying_shares={i: p for i, p in w.vs.items() if i != 3})


@schemes
def test_secrets_never_in_reprs_or_errors(scheme: str) -> None:
    w = wallet(scheme)
    ms = machines_for(w, [1, 2, 3])
    texts = [repr(m) for m in ms.values()]
    errors = drive(ms, tamper=replace_payload(2, 2, lambda p, r: _bump(scheme, p[:32]) + p[32:]))
    texts += [str(e) + repr(e) for e in errors.values()]
    texts += [repr(m) for m in ms.values()]
    blob = "\n".join(texts)
    for s in w.shares.values():
        for needle in (str(s), s.to_bytes(32, "big").hex(), s.to_bytes(32, "little").hex()):
            assert needle not in blob
