"""Check-then-mark races: two threads, one paused between the check and the mark.

A one-time secret (FROST nonces, a BIP445 secnonce, a DKLs23 presignature) must give one
signature share at most, whatever the scheduling. Each test pauses the first thread right
after its "unused" check passed and before it marks the secret used, lets a second thread
try the same secret, then resumes the first. With the lock the second thread waits and then
finds the secret used; the control test removes the lock and shows that the harness really
does put both threads past the check (so the tests above it cannot pass vacuously).
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import coincurve
import pytest

from tests.test_bip445_adversarial import coordinator, make_key, start_session
from tests.test_dkls23 import Wallet, digest_of, independent_verify
from tests.test_dkls23 import make_wallet as make_ecdsa
from tests.test_frost_adversarial import SUITES, make_wallet, round_one
from tests.test_frost_vectors import independent_verify as frost_independent_verify
from tmpc.errors import StateError
from tmpc.group.base import Ciphersuite
from tmpc.protocols import bip445, frost
from tmpc.protocols.ecdsa import dkls23
from tmpc.secret import OneTime

PAUSE_S = 0.3


def race(
    mp: pytest.MonkeyPatch, owner: type, check: str, attempt: Callable[[str], Any]
) -> tuple[list[tuple[str, Any]], int]:
    """Run ``attempt`` in two threads; the first pauses inside ``owner.check`` after it passed.

    Returns the outcomes (``("ok", value)`` or ``("refused", error)``) and how many threads
    got past the check.
    """
    original = getattr(owner, check)
    first_inside, release = threading.Event(), threading.Event()
    passed: list[str] = []
    guard = threading.Lock()

    def paused_check(self: object) -> None:
        original(self)  # raises if already used
        with guard:
            passed.append(threading.current_thread().name)
            first = len(passed) == 1
        if first:
            first_inside.set()
            release.wait(5)  # between the check and the mark

    outcomes: list[tuple[str, Any]] = []

    def run(tag: str) -> None:
        try:
            outcomes.append(("ok", attempt(tag)))
        except StateError as err:
            outcomes.append(("refused", err))
        except Exception as err:  # recorded, and asserted on by the callers
            outcomes.append(("error", err))

    mp.setattr(owner, check, paused_check)
    t1 = threading.Thread(target=run, args=("first",), name="first")
    t2 = threading.Thread(target=run, args=("second",), name="second")
    t1.start()
    assert first_inside.wait(5)
    t2.start()
    time.sleep(PAUSE_S)  # the second thread now waits for the lock (or, unlocked, passes)
    release.set()
    t1.join(10)
    t2.join(10)
    assert not t1.is_alive() and not t2.is_alive()
    return outcomes, len(passed)


def one_share_at_most(outcomes: list[tuple[str, Any]]) -> Any:
    kinds = sorted(k for k, _ in outcomes)
    assert kinds == ["ok", "refused"], outcomes
    refused = next(v for k, v in outcomes if k == "refused")
    assert "already used" in str(refused)
    return next(v for k, v in outcomes if k == "ok")


@pytest.mark.parametrize("suite", SUITES, ids=["secp256k1", "ed25519"])
def test_frost_nonces_race(suite: Ciphersuite, monkeypatch: pytest.MonkeyPatch) -> None:
    w = make_wallet(suite)
    r = round_one(w, [1, 2, 3])
    msgs = {"first": b"pay alice", "second": b"pay mallory"}

    def attempt(tag: str) -> tuple[str, int]:
        return tag, frost.sign(suite, 1, w.shares[1], w.PK, r.nonces[1], msgs[tag], r.clist)

    outcomes, passed = race(monkeypatch, OneTime, "_check_unused", attempt)
    assert passed == 1
    tag, share = one_share_at_most(outcomes)
    # the one share is a real share: with the other signers' shares, for the winning
    # thread's message, it makes a signature an independent verifier accepts
    monkeypatch.undo()
    msg = msgs[tag]
    shares = {1: share}
    for i in (2, 3):
        shares[i] = frost.sign(suite, i, w.shares[i], w.PK, r.nonces[i], msg, r.clist)
    sig = frost.aggregate(suite, r.clist, msg, w.PK, shares, w.verifying)
    assert frost_independent_verify(suite, w.PK, msg, sig)


def test_bip445_secnonce_race(monkeypatch: pytest.MonkeyPatch) -> None:
    key = make_key(3, 5)
    s = start_session(key, [1, 2, 3], secrets.token_bytes(32))

    def attempt(tag: str) -> bytes:
        return bip445.Sign(s.secnonces[0], s.secshares[0], s.ctx.ids[0], s.session)

    outcomes, passed = race(monkeypatch, bip445.SecNonce, "_check_unused", attempt)
    assert passed == 1
    psig = one_share_at_most(outcomes)
    monkeypatch.undo()
    others = [
        bip445.Sign(sn, d, my_id, s.session)
        for sn, d, my_id in zip(s.secnonces[1:], s.secshares[1:], s.ctx.ids[1:], strict=True)
    ]
    sig = coordinator(s, [psig, *others])
    assert coincurve.PublicKeyXOnly(key.output_key()).verify(sig, s.msg)


def test_presignature_race(monkeypatch: pytest.MonkeyPatch) -> None:
    w35: Wallet = make_ecdsa(3, 5)
    presigs = dkls23.presign_local(w35.shares, w35.PK, w35.pairwise, [1, 2, 3])
    digests = {"first": digest_of(b"pay alice"), "second": digest_of(b"pay mallory")}

    def attempt(tag: str) -> tuple[str, dkls23.SignatureShare]:
        return tag, dkls23.sign_share(presigs[1], w35.PK, digests[tag])

    outcomes, passed = race(monkeypatch, OneTime, "_check_unused", attempt)
    assert passed == 1
    tag, share = one_share_at_most(outcomes)
    monkeypatch.undo()
    digest = digests[tag]
    shares = {1: share, **{i: dkls23.sign_share(presigs[i], w35.PK, digest) for i in (2, 3)}}
    sig = dkls23.combine_signature_shares(presigs[1].info, digest, shares)
    independent_verify(w35.PK, digest, *sig)


def test_control_without_the_lock_both_threads_pass_the_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The harness does pause between check and mark: unlocked, both threads get through."""
    holder = OneTime((5, 7), "test secret")
    holder._lock = contextlib.nullcontext()  # type: ignore[assignment]
    outcomes, passed = race(monkeypatch, OneTime, "_check_unused", lambda tag: holder.take())
    assert passed == 2
    assert [k for k, _ in outcomes].count("ok") >= 1
    # and with the lock, on the same harness, only one does
    locked = OneTime((5, 7), "test secret")
    outcomes, passed = race(monkeypatch, OneTime, "_check_unused", lambda tag: locked.take())
    assert passed == 1
    assert one_share_at_most(outcomes) == (5, 7)


@pytest.mark.parametrize("suite", SUITES, ids=["secp256k1", "ed25519"])
def test_dataclass_replace_of_frost_nonces_shares_the_single_use(suite: Ciphersuite) -> None:
    """``dataclasses.replace`` makes no second live set of nonces (the holder is shared)."""
    w = make_wallet(suite)
    r = round_one(w, [1, 2, 3])
    twin = dataclasses.replace(r.nonces[1])
    shares = {
        i: frost.sign(suite, i, w.shares[i], w.PK, r.nonces[i], b"pay alice", r.clist)
        for i in (1, 2, 3)
    }
    sig = frost.aggregate(suite, r.clist, b"pay alice", w.PK, shares, w.verifying)
    assert frost_independent_verify(suite, w.PK, b"pay alice", sig)
    assert twin.consumed
    with pytest.raises(StateError):
        frost.sign(suite, 1, w.shares[1], w.PK, twin, b"pay mallory", r.clist)
