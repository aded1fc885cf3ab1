"""Share repair (tmpc.protocols.lifecycle.repair): rebuild a lost share with t helpers.

Honest runs for secp256k1 and Ed25519, 2-of-3, 3-of-5 and 4-of-7, every lost party and two
helper sets each: the repaired share is the original, every member agrees on the transcript,
and the helpers' certificate verifies with libsecp256k1 (coincurve). The repaired share signs
with the other shares for every scheme (checked by coincurve / PyNaCl). Adversarial: a part
off its published point, parts that do not add up to the helper's contribution, a bad partial
sum, malformed messages of every kind (each names its sender), a bad certificate signature, a
split view of the public parts (towards a helper and towards the lost party), what a helper
sees (fresh randomness, independent of the repaired share), and parameter errors.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import secrets
from collections.abc import Callable

import coincurve
import pytest

from tmpc import schemes
from tmpc.cli.demo import independent_verify
from tmpc.errors import FaultyParticipantError, ParameterError, ProtocolError
from tmpc.group import ED25519, SECP256K1
from tmpc.group.base import Group, Point
from tmpc.local import run_machines
from tmpc.primitives.bip340 import pubkey_gen
from tmpc.protocols.lifecycle.repair import (
    RepairMachine,
    RepairResult,
    certificate_message,
    repair_context,
    repair_local,
)
from tmpc.protocols.machine import BroadcastMismatchError, Machine, Message, RandBytes
from tmpc.sharing import shamir_split

GROUPS = pytest.mark.parametrize("group", [SECP256K1, ED25519], ids=["secp256k1", "ed25519"])


def ctx(lost: int) -> bytes:
    return repair_context("00" * 16, 0, lost, b"s" * 32)


def deal(group: Group, t: int, n: int) -> tuple[dict[int, int], dict[int, Point]]:
    shares = shamir_split(group, group.random_scalar(), t, list(range(1, n + 1)))
    return shares, {i: group.base_mul(s) for i, s in shares.items()}


def hosts(ids: tuple[int, ...]) -> dict[int, bytes]:
    return {i: secrets.token_bytes(32) for i in ids}


def machines(
    group: Group,
    t: int,
    shares: dict[int, int],
    vs: dict[int, Point],
    lost: int,
    helpers: tuple[int, ...],
    keys: dict[int, bytes] | None = None,
    rands: dict[int, RandBytes] | None = None,
) -> dict[int, Machine]:
    pubs = {j: pubkey_gen(k) for j, k in keys.items()} if keys is not None else None
    out: dict[int, Machine] = {
        j: RepairMachine(
            group, j, helpers, lost, t, vs, ctx(lost), secshare=shares[j],
            hostseckey=keys[j] if keys is not None else None, host_pubkeys=pubs,
            rand=rands[j] if rands is not None else None,
        )
        for j in helpers
    }  # fmt: skip
    out[lost] = RepairMachine(
        group, lost, helpers, lost, t, vs, ctx(lost), host_pubkeys=pubs,
        rand=rands[lost] if rands is not None else None,
    )  # fmt: skip
    return out


def helper_sets(lost: int, t: int, n: int) -> list[tuple[int, ...]]:
    """The ``t`` parties after ``lost`` (cyclically) and the ``t`` before it."""
    others = [(lost + k - 1) % n + 1 for k in range(1, n)]
    return [tuple(sorted(others[:t])), tuple(sorted(others[-t:]))]


# --- honest runs -----------------------------------------------------------------------------


@GROUPS
@pytest.mark.parametrize(("t", "n"), [(2, 3), (3, 5), (4, 7)], ids=["2of3", "3of5", "4of7"])
def test_every_lost_share_is_repaired(group: Group, t: int, n: int) -> None:
    shares, vs = deal(group, t, n)
    for lost in range(1, n + 1):
        for helpers in helper_sets(lost, t, n):
            result = repair_local(group, t, {j: shares[j] for j in helpers}, vs, lost, ctx(lost))
            assert result.secshare == shares[lost]
            assert group.base_mul(result.secshare) == vs[lost] == result.verification_share
            assert (result.lost, result.helpers, result.certificate) == (lost, helpers, {})
            assert str(shares[lost]) not in repr(result)


@GROUPS
@pytest.mark.parametrize(("t", "n"), [(2, 3), (3, 5), (4, 7)], ids=["2of3", "3of5", "4of7"])
def test_every_member_agrees_and_the_helpers_certify(group: Group, t: int, n: int) -> None:
    shares, vs = deal(group, t, n)
    lost = n  # the last party; helper_sets covers the others above
    helpers = helper_sets(lost, t, n)[0]
    keys = hosts(helpers)
    out = run_machines(machines(group, t, shares, vs, lost, helpers, keys))
    results = {i: r for i, r in out.items() if isinstance(r, RepairResult)}
    assert set(results) == {*helpers, lost}
    mine = results[lost]
    assert mine.secshare == shares[lost]
    for j in helpers:
        assert results[j].secshare is None  # a helper learns no share
        assert results[j].transcript == mine.transcript
        assert results[j].certificate == mine.certificate
        assert results[j].verification_share == vs[lost]
    # The certificate: every helper's host key signed the transcript (libsecp256k1 checks).
    assert set(mine.certificate) == set(helpers)
    for j, sig in mine.certificate.items():
        key = coincurve.PublicKeyXOnly(pubkey_gen(keys[j]))
        assert key.verify(sig, certificate_message(mine.transcript))
        assert not key.verify(sig, certificate_message(mine.transcript[::-1]))
    # A different context (another session, or another lost party) is another transcript.
    again = repair_local(
        group, t, {j: shares[j] for j in helpers}, vs, lost,
        repair_context("00" * 16, 0, lost, b"t" * 32),
    )  # fmt: skip
    assert again.secshare == shares[lost] and again.transcript != mine.transcript


@pytest.mark.parametrize(
    "scheme", ["schnorr-bip340", "ed25519", "frost-secp256k1", "ecdsa-secp256k1"]
)
def test_a_repaired_share_signs_with_the_other_shares(scheme: str) -> None:
    record, shares = schemes.keygen(scheme, 2, 3)
    group = schemes.get_scheme(scheme).group
    by_id = {s.identifier: s for s in shares}
    msg = hashlib.sha256(b"after a repair").digest()
    for lost in record.party_ids:
        helpers = [i for i in record.party_ids if i != lost]
        context = repair_context(record.wallet_id, record.epoch, lost, secrets.token_bytes(32))
        result = repair_local(
            group,
            record.threshold,
            {j: by_id[j].secshare for j in helpers},
            record.verification_shares,
            lost,
            context,
            hostseckeys={j: by_id[j].hostseckey for j in helpers},
        )
        assert result.secshare is not None
        assert result.secshare == by_id[lost].secshare
        old = by_id[lost]
        repaired = schemes.KeyShare(lost, result.secshare, old.hostseckey, old.pairwise)
        schemes.check_share(record, repaired)
        if schemes.get_scheme(scheme).dkls23:
            continue  # the pairwise DKLs23 material is redone separately (pairwise setup)
        signers = sorted([repaired, by_id[helpers[0]]], key=lambda s: s.identifier)
        sig = schemes.sign(record, signers, msg)
        assert independent_verify(scheme, record.public_key, msg, sig)


# --- what a helper sees ----------------------------------------------------------------------


def drbg(seed: bytes) -> RandBytes:
    counter = itertools.count()

    def rand(k: int) -> bytes:
        out = b""
        while len(out) < k:
            out += hashlib.sha256(seed + next(counter).to_bytes(8, "big")).digest()
        return out[:k]

    return rand


def parts_seen_by(
    group: Group, helper: int, run: dict[int, Machine]
) -> tuple[dict[int, bytes], RepairResult]:
    """Run the session; returns the scalar parts ``helper`` received in round 1 (by sender)
    and the lost party's result."""
    seen: dict[int, bytes] = {}

    def spy(msg: Message, recipient: int) -> Message:
        if recipient == helper and msg.round == 1 and msg.payload:
            seen[msg.sender] = msg.payload[-group.scalar_len :]
        return msg

    out = run_machines(run, tamper=spy)
    results = [r for r in out.values() if isinstance(r, RepairResult) and r.secshare is not None]
    return seen, results[0]


@GROUPS
def test_a_helper_receives_fresh_randomness_independent_of_the_lost_share(group: Group) -> None:
    t, n, lost, helpers = 3, 5, 5, (1, 2, 3)
    # Two wallets with different shares for everybody, the lost party included.
    shares_a, vs_a = deal(group, t, n)
    shares_b, vs_b = deal(group, t, n)
    assert shares_a[lost] != shares_b[lost]

    def fixed() -> dict[int, RandBytes]:
        return {i: drbg(bytes([i])) for i in (*helpers, lost)}

    seen_a, res_a = parts_seen_by(group, 1, machines(group, t, shares_a, vs_a, lost, helpers,
                                                     rands=fixed()))  # fmt: skip
    seen_b, res_b = parts_seen_by(group, 1, machines(group, t, shares_b, vs_b, lost, helpers,
                                                     rands=fixed()))  # fmt: skip
    assert (res_a.secshare, res_b.secshare) == (shares_a[lost], shares_b[lost])
    # With the same randomness, helper 1 receives byte-identical parts from helpers 2 and 3
    # although every share differs: what it receives does not depend on the shares at all.
    assert set(seen_a) == {2, 3}
    assert seen_a == seen_b
    # With fresh randomness, the same wallet gives other parts every run, and the same share.
    seen_c, res_c = parts_seen_by(group, 1, machines(group, t, shares_a, vs_a, lost, helpers))
    seen_d, res_d = parts_seen_by(group, 1, machines(group, t, shares_a, vs_a, lost, helpers))
    assert res_c.secshare == res_d.secshare == shares_a[lost]
    assert all(seen_c[j] != seen_d[j] and seen_c[j] != seen_a[j] for j in (2, 3))
    # No received part is the lost share, nor a helper's share.
    values = {group.decode_scalar(p) for p in (*seen_c.values(), *seen_d.values())}
    assert not values & {shares_a[i] for i in range(1, n + 1)}


def test_a_helper_keeps_no_secret_in_its_public_state_or_repr() -> None:
    group, t, n, lost, helpers = SECP256K1, 2, 3, 3, (1, 2)
    shares, vs = deal(group, t, n)
    run = machines(group, t, shares, vs, lost, helpers, hosts(helpers))
    out = run_machines(run)
    state = str(run[1].public_state().to_json()) + repr(run[1]) + repr(out[1]) + repr(out[lost])
    for s in shares.values():
        assert str(s) not in state and group.encode_scalar(s).hex() not in state


# --- adversarial -----------------------------------------------------------------------------

T, N, LOST, HELPERS = 3, 4, 4, (1, 2, 3)


def tamper(
    sender: int, to: int | None, r: int, change: Callable[[bytes], bytes]
) -> Callable[[Message, int], Message]:
    """Change ``sender``'s round-``r`` message to ``to`` (None: to every recipient)."""

    def hook(msg: Message, recipient: int) -> Message:
        if msg.sender == sender and (to is None or recipient == to) and msg.round == r:
            return dataclasses.replace(msg, payload=change(msg.payload))
        return msg

    return hook


def failure(group: Group, hook: Callable[[Message, int], Message]) -> ProtocolError:
    shares, vs = deal(group, T, N)
    with pytest.raises(ProtocolError) as exc:
        run_machines(machines(group, T, shares, vs, LOST, HELPERS, hosts(HELPERS)), tamper=hook)
    return exc.value


@GROUPS
def test_a_part_off_its_published_point_names_its_sender(group: Group) -> None:
    def bump(p: bytes) -> bytes:
        k = group.decode_scalar(p[-group.scalar_len :])
        return p[: -group.scalar_len] + group.encode_scalar(k + 1)

    err = failure(group, tamper(2, 1, 1, bump))
    assert isinstance(err, FaultyParticipantError) and err.culprits == (2,)


@GROUPS
@pytest.mark.parametrize("to", [None, LOST], ids=["everyone", "lost-party-only"])
def test_parts_that_do_not_add_up_name_the_helper(group: Group, to: int | None) -> None:
    """Helper 2 publishes Δ_21 + G and gives helper 1 δ_21 + 1: consistent to helper 1, but
    its parts add up to λ·x_2 + 1, not λ·x_2. Every member (the lost party alone, too) sees
    that Σ_k Δ_2k != λ_2·X_2."""
    el, sl = group.element_len, group.scalar_len

    def hook(msg: Message, recipient: int) -> Message:
        if msg.sender != 2 or msg.round != 1 or (to is not None and recipient != to):
            return msg
        p = msg.payload
        payload = (group.decode_point(p[:el]) + group.generator()).encode() + p[el:]
        if recipient == 1:  # helper 1's part moves with its point (Δ_21 comes first)
            payload = payload[:-sl] + group.encode_scalar(group.decode_scalar(p[-sl:]) + 1)
        return dataclasses.replace(msg, payload=payload)

    err = failure(group, hook)
    assert isinstance(err, FaultyParticipantError) and err.culprits == (2,)


@GROUPS
def test_a_bad_partial_sum_names_its_sender(group: Group) -> None:
    def bump(p: bytes) -> bytes:
        k = group.decode_scalar(p[-group.scalar_len :])
        return p[: -group.scalar_len] + group.encode_scalar(k + 1)

    err = failure(group, tamper(2, LOST, 2, bump))
    assert isinstance(err, FaultyParticipantError) and err.culprits == (2,)


def bad_point(group: Group) -> bytes:
    # secp256k1: no such prefix; ed25519: y = 2^255 - 1 is not canonical.
    return b"\x05" + b"\x00" * 32 if group is SECP256K1 else b"\xff" * 32


MALFORMED: list[tuple[str, int, int, int, Callable[[Group, bytes], bytes]]] = [
    # (id, sender, recipient, round, change)
    ("r1-helper-short", 2, 1, 1, lambda g, p: p[:-1]),
    ("r1-helper-long", 2, 1, 1, lambda g, p: p + b"\x00"),
    ("r1-helper-bad-point", 2, 1, 1, lambda g, p: bad_point(g) + p[g.element_len :]),
    ("r1-helper-bad-scalar", 2, 1, 1, lambda g, p: p[: -g.scalar_len] + b"\xff" * g.scalar_len),
    ("r1-to-lost-short", 2, LOST, 1, lambda g, p: p[:-1]),
    ("r1-to-lost-with-scalar", 2, LOST, 1, lambda g, p: p + g.encode_scalar(1)),
    ("r1-to-lost-bad-point", 2, LOST, 1, lambda g, p: p[: -g.element_len] + bad_point(g)),
    ("r1-from-lost-not-empty", LOST, 1, 1, lambda g, p: b"\x00"),
    ("r2-helper-short", 2, 1, 2, lambda g, p: p[:-1]),
    ("r2-helper-bad-signature", 2, 1, 2, lambda g, p: p[:-1] + bytes([p[-1] ^ 1])),
    ("r2-to-lost-short", 2, LOST, 2, lambda g, p: p[:-1]),
    ("r2-to-lost-bad-scalar", 2, LOST, 2, lambda g, p: p[: -g.scalar_len] + b"\xff" * 32),
    ("r2-to-lost-bad-signature", 2, LOST, 2, lambda g, p: p[:40] + bytes([p[40] ^ 1]) + p[41:]),
    ("r2-from-lost-long", LOST, 1, 2, lambda g, p: p + b"\x00"),
]


@GROUPS
@pytest.mark.parametrize(
    ("sender", "to", "r", "change"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_messages_name_the_sender(
    group: Group, sender: int, to: int, r: int, change: Callable[[Group, bytes], bytes]
) -> None:
    err = failure(group, tamper(sender, to, r, lambda p: change(group, p)))
    assert isinstance(err, FaultyParticipantError) and err.culprits == (sender,)


@GROUPS
@pytest.mark.parametrize("victim", [1, LOST], ids=["to-a-helper", "to-the-lost-party"])
def test_a_split_view_of_the_public_parts_is_caught_unattributed(group: Group, victim: int) -> None:
    """Helper 3 shows ``victim`` another, equally valid split of its contribution. Nobody can
    tell from its own view (every check passes); the echoes differ. Towards the lost party,
    no honest helper is blamed for a partial sum that is off the points the lost party saw."""
    shares, vs = deal(group, T, N)
    keys = hosts(HELPERS)
    alt = machines(group, T, shares, vs, LOST, HELPERS, keys)[3]
    alt_msgs = {m.recipient: m for m in alt.start()}

    def hook(msg: Message, recipient: int) -> Message:
        if msg.sender == 3 and msg.round == 1 and recipient == victim:
            return alt_msgs[victim]
        return msg

    with pytest.raises(BroadcastMismatchError) as exc:
        run_machines(machines(group, T, shares, vs, LOST, HELPERS, keys), tamper=hook)
    assert exc.value.culprits == ()


# --- parameters ------------------------------------------------------------------------------


def test_parameters_are_checked() -> None:
    g = SECP256K1
    shares, vs = deal(g, 3, 5)
    c = ctx(5)

    def helper(**kw: object) -> None:
        args: dict[str, object] = {
            "me": 1, "helpers": (1, 2, 3), "lost": 5, "threshold": 3, "verification_shares": vs,
            "context": c, "secshare": shares[1],
        }  # fmt: skip
        args.update(kw)
        RepairMachine(g, **args)  # type: ignore[arg-type]

    helper()  # the baseline is fine
    bad: list[dict[str, object]] = [
        {"helpers": (1, 2)},  # fewer helpers than the threshold
        {"helpers": (1, 2, 3, 4)},  # more
        {"helpers": (1, 2, 5)},  # the lost party among the helpers
        {"helpers": (1, 2, 9)},  # not a party of the wallet
        {"helpers": (1, 1, 2)},  # listed twice
        {"helpers": (1, 2, "3")},  # not an integer
        {"lost": 9},  # not a party of the wallet
        {"lost": True},
        {"threshold": 2, "helpers": (1, 2)},  # a wrong threshold: X_5 is not interpolated
        {"threshold": 6},
        {"secshare": shares[2]},  # not party 1's share
        {"secshare": None},  # a helper must give its share
        {"secshare": g.order},
        {"me": 4},  # not a member of this session
        {"context": b"short"},
        {"hostseckey": b"k" * 32},  # without the helpers' host keys
        {"verification_shares": {**vs, 4: ED25519.base_mul(1)}},  # a point of another group
        {"verification_shares": {**vs, 5: vs[4]}},  # X_5 is not the interpolation
        {"verification_shares": {i: vs[i] for i in (1, 2, 3)}},  # X_5 is unknown
    ]
    for kw in bad:
        with pytest.raises(ParameterError):
            helper(**kw)
            pytest.fail(f"accepted {kw}")
    with pytest.raises(ParameterError):  # the lost party holds no share
        RepairMachine(g, 5, (1, 2, 3), 5, 3, vs, c, secshare=shares[5])
    with pytest.raises(ParameterError):  # and signs nothing
        RepairMachine(g, 5, (1, 2, 3), 5, 3, vs, c, hostseckey=b"k" * 32)
    keys = hosts((1, 2, 3))
    pubs = {j: pubkey_gen(k) for j, k in keys.items()}
    with pytest.raises(ParameterError):  # another helper's host key
        helper(hostseckey=keys[2], host_pubkeys=pubs)
    with pytest.raises(ParameterError):  # a helper's host key missing
        helper(hostseckey=keys[1], host_pubkeys={1: pubs[1], 2: pubs[2]})
    with pytest.raises(ParameterError):
        repair_local(g, 3, {j: shares[j] for j in (1, 2)}, vs, 5, c)
    with pytest.raises(ParameterError):
        repair_local(g, 3, {j: shares[j] for j in (1, 2, 3)}, vs, 5, c, hostseckeys={1: keys[1]})
    with pytest.raises(ParameterError):
        repair_context("00" * 16, 0, 5, b"short")
    with pytest.raises(ParameterError):
        repair_context("00" * 16, -1, 5, b"s" * 32)
    with pytest.raises(ParameterError):
        repair_context("00" * 16, 0, 0, b"s" * 32)
    assert len(repair_context("00" * 16, 0, 5, b"s" * 32)) == 32
