"""Resharing (tmpc.protocols.lifecycle.reshare) and the wallet history it extends.

Wallets of every scheme go 3-of-5 -> 2-of-3 and 2-of-3 -> 3-of-5 and keep their public key,
wallet id, chain code, addresses and xpub; the new shares sign (checked by libsecp256k1 and
libsodium); old shares of removed parties do not combine with new ones into a signature that
verifies; the record round-trips through wallet.json with every check.
Adversarial machines: a dealer whose constant term is not its share, a value off its
commitment, malformed messages, a commitment of another degree, a non-dealer that sends
something, a bad certificate signature, a split view, too few dealers.
Records: an edited reshare entry is refused; rehost entries parse when certified by a
threshold of other parties and are refused with too few, forged or self-made signatures;
wallet ids of epoch-0 and refreshed records are those of before reshares existed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
from collections.abc import Callable
from typing import Any

import coincurve
import pytest

from tmpc import schemes
from tmpc.chains.addresses import ethereum_address, p2wpkh_address
from tmpc.cli.demo import independent_verify
from tmpc.errors import (
    FaultyParticipantError,
    KeystoreError,
    ParameterError,
    ProtocolError,
    TmpcError,
)
from tmpc.group import ED25519, SECP256K1, ed25519, secp256k1
from tmpc.group.base import Group, Point
from tmpc.local import run_machines
from tmpc.primitives.bip340 import schnorr_sign
from tmpc.protocols import frost
from tmpc.protocols.dkg.chilldkg import hostpubkey_gen
from tmpc.protocols.lifecycle.reshare import (
    ReshareMachine,
    ReshareResult,
    certificate_message,
    reshare_context,
    reshare_local,
)
from tmpc.protocols.machine import BroadcastMismatchError, Message
from tmpc.schemes.addresses import wallet_address
from tmpc.sharing import (
    commit_polynomial,
    eval_polynomial,
    lagrange_coefficients,
    shamir_combine,
    shamir_split,
)

SCHEME_IDS = list(schemes.SCHEMES)
CONTEXT = reshare_context("00" * 16, 0, b"r" * 32)


def fresh_keys(ids: range | list[int]) -> dict[int, bytes]:
    return {i: secrets.token_bytes(32) for i in ids}


# --- one session with every kind of member -----------------------------------------------------
#
# Old wallet 3-of-4; dealers: old parties 1, 2, 3; new wallet 2-of-3. Members:
#   1: old 1 and new 1 (continues, same host key)   2: old 2 (deals only)
#   3: old 3 (deals only)                           4: new 2 (receives only)
#   5: new 3 (receives only)
DEALERS = {1: 1, 2: 2, 3: 3}
RECEIVERS = {1: 1, 4: 2, 5: 3}
T_OLD, N_OLD, T_NEW = 3, 4, 2


@dataclasses.dataclass
class Session:
    group: Group
    x: int
    shares: dict[int, int]
    vs: dict[int, Point]
    old_keys: dict[int, bytes]
    new_keys: dict[int, bytes]

    @property
    def pk(self) -> Point:
        return self.group.base_mul(self.x)

    def member_key(self, m: int) -> bytes:
        return self.old_keys[DEALERS[m]] if m in DEALERS else self.new_keys[RECEIVERS[m]]

    def machine(self, m: int, **kw: Any) -> ReshareMachine:
        args: dict[str, Any] = {
            "secshare": self.shares[DEALERS[m]] if m in DEALERS else None,
            "hostseckey": self.member_key(m),
        }
        args.update(kw)
        return ReshareMachine(
            self.group, m, DEALERS, RECEIVERS, T_OLD, self.vs, self.pk, T_NEW,
            {i: hostpubkey_gen(k) for i, k in self.old_keys.items()},
            {j: hostpubkey_gen(k) for j, k in self.new_keys.items()},
            CONTEXT, **args,
        )  # fmt: skip

    def machines(self) -> dict[int, ReshareMachine]:
        return {m: self.machine(m) for m in sorted(set(DEALERS) | set(RECEIVERS))}


def session(group: Group = SECP256K1) -> Session:
    x = group.random_scalar()
    shares = shamir_split(group, x, T_OLD, list(range(1, N_OLD + 1)))
    old_keys = fresh_keys(range(1, N_OLD + 1))
    new_keys = {1: old_keys[1], **fresh_keys([2, 3])}
    return Session(
        group, x, shares, {i: group.base_mul(s) for i, s in shares.items()}, old_keys, new_keys
    )


def results_of(out: dict[int, object]) -> dict[int, ReshareResult]:
    return {m: r for m, r in out.items() if isinstance(r, ReshareResult)}


@pytest.mark.parametrize("group", [SECP256K1, ED25519], ids=["secp256k1", "ed25519"])
def test_every_member_agrees_and_the_new_shares_share_the_key(group: Group) -> None:
    s = session(group)
    results = results_of(run_machines(s.machines()))
    first = results[1]
    for r in results.values():
        assert r.verification_shares == first.verification_shares
        assert r.transcript == first.transcript and r.commitments == first.commitments
        assert r.dealer_certificate == first.dealer_certificate
        assert r.receiver_certificate == first.receiver_certificate
    assert (results[2].secshare, results[2].identifier, results[2].dealer) == (None, None, 2)
    assert (results[4].identifier, results[4].dealer) == (2, None)
    new = {r.identifier: r.secshare for r in results.values() if r.identifier is not None}
    assert sorted(new) == [1, 2, 3]
    for j, y in new.items():
        assert y is not None and group.base_mul(y) == first.verification_shares[j]
    ys = {j: y for j, y in new.items() if y is not None}
    assert shamir_combine(group, {1: ys[1], 3: ys[3]}) == s.x
    assert shamir_combine(group, {2: ys[2], 3: ys[3]}) == s.x
    # Every commitment has t' terms and starts with λ_i·X_i.
    lam = lagrange_coefficients(group, [1, 2, 3])
    for i, c in first.commitments.items():
        assert len(c) == T_NEW and c[0] == s.vs[i] * lam[i]
    # The certificate, checked by libsecp256k1: old keys for dealers, new keys for receivers.
    msg = certificate_message(first.transcript)
    for i, sig in first.dealer_certificate.items():
        assert coincurve.PublicKeyXOnly(hostpubkey_gen(s.old_keys[i])[1:]).verify(sig, msg)
    for j, sig in first.receiver_certificate.items():
        assert coincurve.PublicKeyXOnly(hostpubkey_gen(s.new_keys[j])[1:]).verify(sig, msg)
    assert str(new[1]) not in repr(results[1])


# --- adversarial members -----------------------------------------------------------------------


def tamper(
    sender: int, r: int, change: Callable[[bytes, int], bytes], to: int | None = None
) -> Callable[[Message, int], Message]:
    def hook(msg: Message, recipient: int) -> Message:
        if msg.sender == sender and msg.round == r and (to is None or recipient == to):
            return dataclasses.replace(msg, payload=change(msg.payload, recipient))
        return msg

    return hook


def blame(s: Session, hook: Callable[[Message, int], Message]) -> ProtocolError:
    with pytest.raises(ProtocolError) as exc:
        run_machines(s.machines(), tamper=hook)
    return exc.value


def forged_dealing(s: Session, constant: int, terms: int) -> Callable[[bytes, int], bytes]:
    """Round-1 payloads of a consistent dealing of ``constant`` with ``terms`` coefficients."""
    g = s.group
    coeffs = [constant] + [g.random_scalar() for _ in range(terms - 1)]
    blob = b"".join(c.encode() for c in commit_polynomial(g, coeffs))

    def change(_payload: bytes, recipient: int) -> bytes:
        j = RECEIVERS.get(recipient)
        return blob if j is None else blob + g.encode_scalar(eval_polynomial(g, coeffs, j))

    return change


def test_a_dealer_that_deals_something_else_than_its_share_is_named() -> None:
    s = session()
    lam = lagrange_coefficients(s.group, [1, 2, 3])
    w = lam[2] * s.shares[2] % s.group.order
    # Feldman-consistent everywhere, but its constant is not λ_2·X_2: it would move the key.
    err = blame(s, tamper(2, 1, forged_dealing(s, w + 1, T_NEW)))
    assert isinstance(err, FaultyParticipantError) and err.culprits == (2,)
    assert "not its share" in str(err)
    # The same at a member that only deals (it checks constants too).
    err = blame(s, tamper(2, 1, forged_dealing(s, w + 1, T_NEW), to=3))
    assert err.culprits == (2,)


@pytest.mark.parametrize("terms", [T_NEW + 1, T_NEW - 1], ids=["higher", "lower"])
def test_a_commitment_of_another_degree_is_named(terms: int) -> None:
    s = session()
    lam = lagrange_coefficients(s.group, [1, 2, 3])
    w = lam[3] * s.shares[3] % s.group.order
    err = blame(s, tamper(3, 1, forged_dealing(s, w, terms)))
    assert err.culprits == (3,) and "terms" in str(err)


@pytest.mark.parametrize("group", [SECP256K1, ED25519], ids=["secp256k1", "ed25519"])
def test_a_value_off_its_commitment_names_its_dealer(group: Group) -> None:
    s = session(group)

    def bump(p: bytes, _r: int) -> bytes:
        k = group.decode_scalar(p[-group.scalar_len :])
        return p[: -group.scalar_len] + group.encode_scalar(k + 1)

    err = blame(s, tamper(2, 1, bump, to=4))
    assert err.culprits == (2,) and "not on its commitment" in str(err)


@pytest.mark.parametrize(
    ("sender", "to", "change"),
    [
        (2, 1, lambda p, r: p[:-1]),  # one byte short
        (2, 1, lambda p, r: p + b"\x00"),  # one byte long
        (2, 4, lambda p, r: b"\x05" + p[1:]),  # a point that does not decode
        (2, 4, lambda p, r: p[:-32] + b"\xff" * 32),  # a scalar >= the order
        (2, 3, lambda p, r: p[:-1]),  # short, at a member that only deals
        (1, 5, lambda p, r: p[:33] + bytes(33) + p[66:]),  # the identity is no commitment
        (4, 2, lambda p, r: b"\x00"),  # a member that does not deal sends something
    ],
    ids=["short", "long", "bad-point", "bad-scalar", "short-to-dealer", "zero-point", "non-dealer"],
)
def test_malformed_reshare_messages_name_the_sender(
    sender: int, to: int, change: Callable[[bytes, int], bytes]
) -> None:
    err = blame(session(), tamper(sender, 1, change, to=to))
    assert isinstance(err, FaultyParticipantError) and err.culprits == (sender,)


@pytest.mark.parametrize(
    ("sender", "change"),
    [
        (2, lambda p, r: p[:-1] + bytes([p[-1] ^ 1])),  # a dealer's signature
        (1, lambda p, r: p[:40] + bytes([p[40] ^ 1]) + p[41:]),  # a continuing party's old-key one
        (1, lambda p, r: p[:-1] + bytes([p[-1] ^ 1])),  # ... and its new-key one
        (5, lambda p, r: p[:-1] + bytes([p[-1] ^ 1])),  # a receiver's signature
        (4, lambda p, r: p + bytes(64)),  # an echo of the wrong length
    ],
    ids=["dealer", "continuing-old", "continuing-new", "receiver", "length"],
)
def test_a_bad_certificate_signature_names_its_signer(
    sender: int, change: Callable[[bytes, int], bytes]
) -> None:
    err = blame(session(), tamper(sender, 2, change))
    assert isinstance(err, FaultyParticipantError) and err.culprits == (sender,)


def test_a_split_view_of_the_commitments_is_caught() -> None:
    s = session()
    alt = s.machine(2)  # another, equally valid dealing of member 2
    alt_msgs = {m.recipient: m for m in alt.start()}

    def hook(msg: Message, recipient: int) -> Message:
        if msg.sender == 2 and msg.round == 1 and recipient == 4:
            return alt_msgs[4]
        return msg

    with pytest.raises(BroadcastMismatchError):
        run_machines(s.machines(), tamper=hook)


def test_parameters_are_checked() -> None:
    s = session()
    with pytest.raises(ParameterError, match="at least 3 dealers"):
        ReshareMachine(
            s.group, 1, {1: 1, 2: 2}, RECEIVERS, T_OLD, s.vs, s.pk, T_NEW, {}, {}, CONTEXT
        )
    with pytest.raises(ParameterError):
        s.machine(1, secshare=s.shares[2])  # not old party 1's share
    with pytest.raises(ParameterError):
        s.machine(2, hostseckey=s.old_keys[3])  # not old party 2's host key
    with pytest.raises(ParameterError):
        s.machine(4, hostseckey=s.new_keys[3])  # not new party 2's host key
    with pytest.raises(ParameterError):
        s.machine(4, secshare=s.shares[1])  # a receiver takes no share
    with pytest.raises(ParameterError):
        s.machine(1, new_hostseckey=s.new_keys[2])  # not new party 1's key
    with pytest.raises(ParameterError, match="interpolate"):
        bad = dict(s.vs)
        bad[3] = s.group.base_mul(7)
        dataclasses.replace(s, vs=bad, shares={**s.shares, 3: 7}).machine(1)
    with pytest.raises(ParameterError):
        ReshareMachine(
            s.group, 1, DEALERS, {1: 1, 4: 3}, T_OLD, s.vs, s.pk, T_NEW,
            {i: hostpubkey_gen(k) for i, k in s.old_keys.items()},
            {j: hostpubkey_gen(k) for j, k in s.new_keys.items()}, CONTEXT,
            secshare=s.shares[1], hostseckey=s.old_keys[1],
        )  # fmt: skip  # new id 2 has no receiver
    with pytest.raises(ParameterError):
        ReshareMachine(
            s.group, 1, DEALERS, RECEIVERS, T_OLD, s.vs, s.pk, 4,
            {i: hostpubkey_gen(k) for i, k in s.old_keys.items()},
            {j: hostpubkey_gen(k) for j, k in s.new_keys.items()}, CONTEXT,
            secshare=s.shares[1], hostseckey=s.old_keys[1],
        )  # fmt: skip  # t' > n'


# --- wallets: the identity outlives the party set ---------------------------------------------


def addresses(record: schemes.WalletRecord) -> list[str]:
    if schemes.get_scheme(record.scheme).dkls23:
        pk = record.public_key
        return [p2wpkh_address(pk), ethereum_address(pk), p2wpkh_address(
            schemes.public_key_at(record, "m/0/7"), "testnet")]  # fmt: skip
    if schemes.get_scheme(record.scheme).chains:
        return [wallet_address(record, "mainnet")[0]]
    return [record.public_key.hex()]


def roundtrip(record: schemes.WalletRecord) -> schemes.WalletRecord:
    return schemes.WalletRecord.from_json(json.loads(json.dumps(record.to_json())))


def reshare(
    record: schemes.WalletRecord,
    shares: list[schemes.KeyShare],
    dealers: list[int],
    t_new: int,
    n_new: int,
) -> tuple[schemes.WalletRecord, list[schemes.KeyShare], dict[int, bytes]]:
    """Reshare with the given old parties dealing; the first dealer continues as new party 1."""
    by_id = {s.identifier: s for s in shares}
    keys = {1: by_id[dealers[0]].hostseckey, **fresh_keys(range(2, n_new + 1))}
    new_record, new_shares = schemes.reshare_shares(
        record, [by_id[i] for i in dealers], t_new, keys
    )
    return new_record, new_shares, keys


DIRECTIONS = [(3, 5, [1, 3, 5], 2, 3), (2, 3, [2, 3], 3, 5)]


@pytest.mark.parametrize("scheme", SCHEME_IDS)
@pytest.mark.parametrize(
    ("t", "n", "dealers", "t_new", "n_new"), DIRECTIONS, ids=["3of5-to-2of3", "2of3-to-3of5"]
)
def test_a_reshared_wallet_keeps_its_identity_and_signs(
    scheme: str, t: int, n: int, dealers: list[int], t_new: int, n_new: int
) -> None:
    record, shares = schemes.keygen(scheme, t, n)
    new_record, new_shares, keys = reshare(record, shares, dealers, t_new, n_new)
    assert new_record.wallet_id == record.wallet_id
    assert new_record.public_key == record.public_key
    assert new_record.chain_code == record.chain_code
    assert addresses(new_record) == addresses(record)
    if schemes.get_scheme(scheme).bip32:
        assert schemes.wallet_xpub(new_record) == schemes.wallet_xpub(record)
    assert (new_record.threshold, new_record.parties, new_record.epoch) == (t_new, n_new, 1)
    assert new_record.host_public_keys == {j: hostpubkey_gen(k) for j, k in keys.items()}
    assert [s.identifier for s in new_shares] == list(range(1, n_new + 1))
    # The record proves the move: it round-trips through wallet.json with every check.
    assert roundtrip(new_record) == new_record
    entry = new_record.to_json()["history"][0]
    assert entry["kind"] == "reshare" and entry["dealers"] == dealers
    # Any t' new shares sign (checked outside tmpc), fewer do not.
    msg = hashlib.sha256(b"after the reshare").digest()
    for signers in (new_shares[:t_new], new_shares[-t_new:]):
        sig = schemes.sign(new_record, signers, msg)
        assert independent_verify(scheme, new_record.public_key, msg, sig)
        assert schemes.verify(scheme, new_record.public_key, msg, sig)
    with pytest.raises(ParameterError):
        schemes.sign(new_record, new_shares[: t_new - 1], msg)
    # The old shares are not this epoch's (even the continuing party's).
    for old in shares[: min(n, n_new)]:
        with pytest.raises(KeystoreError):
            schemes.check_share(new_record, old)
    # The history goes on: a refresh of the new parties, then a second reshare back.
    again_record, again_shares = schemes.refresh_shares(new_record, new_shares)
    back_record, back_shares, _ = reshare(
        again_record, again_shares, list(range(1, t_new + 1)), t, n
    )
    assert back_record.wallet_id == record.wallet_id and back_record.epoch == 3
    assert roundtrip(back_record) == back_record
    sig = schemes.sign(back_record, back_shares[:t], msg)
    assert independent_verify(scheme, record.public_key, msg, sig)


def frost_with_shares(suite: Any, shares: dict[int, int], pk: Point, msg: bytes) -> bytes:
    """RFC 9591 rounds one and two by each holder of ``shares``, and the aggregate ``(R, z)``
    formed without tmpc's final check (what a coordinator that does not verify would
    publish)."""
    g = suite.group
    commits = {i: frost.commit(suite, i, s) for i, s in sorted(shares.items())}
    clist = [commits[i][1] for i in sorted(commits)]
    z = sum(frost.sign(suite, i, shares[i], pk, commits[i][0], msg, clist) for i in commits)
    rho = frost.compute_binding_factors(suite, pk, clist, msg)
    R = frost.compute_group_commitment(suite, clist, rho)
    return R.encode() + g.encode_scalar(z % g.order)


@pytest.mark.parametrize("scheme", SCHEME_IDS)
def test_removed_parties_old_shares_never_combine_with_new_ones(scheme: str) -> None:
    record, shares = schemes.keygen(scheme, 3, 5)
    new_record, new_shares, _ = reshare(record, shares, [1, 3, 5], 2, 3)
    g = schemes.get_scheme(scheme).group
    old = {s.identifier: s.secshare for s in shares}
    new = {s.identifier: s.secshare for s in new_shares}
    msg = hashlib.sha256(b"old and new together").digest()
    # Parties 2 and 4 were removed (they did not even deal); 3 dealt and left.
    mixes = [{1: new[1], 4: old[4]}, {2: new[2], 3: old[3]}, {3: new[3], 2: old[2]}]
    for mixed in mixes:
        key = shamir_combine(g, mixed)  # test oracle: the key these shares interpolate to
        assert g.base_mul(key) != record.group_public_key
        if scheme in ("ed25519", "frost-secp256k1"):
            suite = ed25519 if scheme == "ed25519" else secp256k1
            sig = frost_with_shares(suite, mixed, record.group_public_key, msg)
            # libsodium (Ed25519) / libsecp256k1 points (RFC 9591) reject the aggregate.
            assert not independent_verify(scheme, record.public_key, msg, sig)
        else:
            # Threshold BIP340 and ECDSA signatures are signatures under the interpolated key:
            # libsecp256k1 signs with it, and rejects the result under the wallet's key.
            priv = coincurve.PrivateKey(key.to_bytes(32, "big"))
            if scheme == "schnorr-bip340":
                sig = priv.sign_schnorr(msg)
                assert coincurve.PublicKeyXOnly(priv.public_key.format()[1:]).verify(sig, msg)
            else:
                sig = priv.sign_recoverable(msg, hasher=None)[:64]
                assert independent_verify(scheme, priv.public_key.format(), msg, sig)
            assert not independent_verify(scheme, record.public_key, msg, sig)
    # The harness is right: with new shares only, the same aggregate verifies.
    if scheme in ("ed25519", "frost-secp256k1"):
        suite = ed25519 if scheme == "ed25519" else secp256k1
        sig = frost_with_shares(suite, {1: new[1], 3: new[3]}, record.group_public_key, msg)
        assert independent_verify(scheme, record.public_key, msg, sig)
    # And tmpc's own signers refuse the mix.
    with pytest.raises(TmpcError):
        schemes.sign(new_record, [new_shares[0], shares[2]], msg)


def test_too_few_dealers_and_bad_new_parties_are_refused() -> None:
    record, shares = schemes.keygen("ed25519", 3, 5)
    keys = fresh_keys(range(1, 4))
    with pytest.raises(ParameterError, match="at least 3"):
        schemes.reshare_shares(record, shares[:2], 2, keys)
    with pytest.raises(ParameterError):
        schemes.reshare_shares(record, [shares[0], shares[0], shares[1]], 2, keys)
    with pytest.raises(ParameterError):
        schemes.reshare_shares(record, shares[:3], 4, keys)  # t' > n'
    with pytest.raises(ParameterError):
        schemes.reshare_shares(record, shares[:3], 2, {1: keys[1], 3: keys[3]})  # ids 1..n'
    with pytest.raises(ParameterError):
        schemes.reshare_shares(record, shares[:3], 2, {1: keys[1], 2: keys[1], 3: keys[3]})
    with pytest.raises(ParameterError):
        schemes.reshare_shares(record, shares[:3], 2, keys, session_id=b"short")
    new_record, _, _ = reshare(record, shares, [1, 2, 3], 2, 3)
    with pytest.raises(KeystoreError):
        schemes.reshare_shares(new_record, shares[:3], 2, keys)  # the old epoch's shares


def test_every_member_builds_the_same_record() -> None:
    record, shares = schemes.keygen("frost-secp256k1", 2, 3)
    sid = b"\x01" * 32
    keys = fresh_keys(range(1, 4))
    results = reshare_local(
        SECP256K1, 2, {s.identifier: s.secshare for s in shares[:2]},
        record.verification_shares, record.group_public_key, 2,
        reshare_context(record.wallet_id, record.epoch, sid),
        hostseckeys={s.identifier: s.hostseckey for s in shares[:2]}, new_hostseckeys=keys,
        host_pubkeys=record.host_public_keys,
    )  # fmt: skip
    built = [schemes.reshared_record(record, sid, r) for r in results.values()]
    assert len(results) == 5 and all(b == built[0] for b in built)
    assert roundtrip(built[0]) == built[0]
    # A result under another session id does not certify this one.
    with pytest.raises(ParameterError):
        schemes.reshared_record(record, b"\x02" * 32, results[1])


def _reshared_doc() -> dict[str, Any]:
    record, shares = schemes.keygen("schnorr-bip340", 2, 3)
    refreshed, new_shares = schemes.refresh_shares(record, shares)
    new_record, _, _ = reshare(refreshed, new_shares, [1, 3], 3, 4)
    doc: dict[str, Any] = json.loads(json.dumps(new_record.to_json()))
    assert "kind" not in doc["history"][0]  # refreshes keep their format
    return doc


def _entry(d: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = d["history"][1]
    return entry


def _drop_dealer(d: dict[str, Any]) -> None:
    e = _entry(d)
    e["dealers"] = [1]
    e["commitments"].pop("3")
    e["certificate"]["dealers"].pop("3")


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: _entry(d)["certificate"]["dealers"].update(
            {"1": _entry(d)["certificate"]["dealers"]["3"]}
        ),
        lambda d: _entry(d)["certificate"]["receivers"].update(
            {"2": _entry(d)["certificate"]["receivers"]["3"]}
        ),
        lambda d: _entry(d)["certificate"]["receivers"].pop("4"),
        lambda d: _entry(d)["commitments"]["1"].__setitem__(0, _entry(d)["commitments"]["3"][0]),
        lambda d: _entry(d)["commitments"]["1"].__setitem__(1, _entry(d)["commitments"]["3"][1]),
        lambda d: _entry(d)["commitments"]["1"].pop(),
        lambda d: _entry(d).update({"threshold": 2}),
        lambda d: _entry(d).update({"parties": 5}),
        lambda d: _entry(d)["host_public_keys"].update({"2": hostpubkey_gen(b"\x07" * 32).hex()}),
        lambda d: _entry(d).update({"dealers": [1, 2]}),
        lambda d: _entry(d).update({"session": "11" * 32}),
        lambda d: _entry(d).pop("kind"),
        lambda d: _entry(d).update({"kind": "rekey"}),
        _drop_dealer,
        lambda d: d.update({"threshold": 2}),
        lambda d: d["host_public_keys"].update({"1": d["host_public_keys"]["2"]}),
    ],
    ids=[
        "dealer-signature", "receiver-signature", "receiver-missing", "constant-term",
        "commitment", "degree", "threshold", "parties", "host-key", "dealers", "session",
        "kind-dropped", "kind-unknown", "too-few-dealers", "record-threshold", "record-host",
    ],
)  # fmt: skip
def test_an_edited_reshare_history_is_refused(edit: Callable[[dict[str, Any]], object]) -> None:
    doc = _reshared_doc()
    schemes.WalletRecord.from_json(doc)
    edit(doc)
    with pytest.raises(KeystoreError):
        schemes.WalletRecord.from_json(doc)


# --- rehost: a new host key for a party --------------------------------------------------------


def rehost_cert(
    record: schemes.WalletRecord,
    shares: list[schemes.KeyShare],
    party: int,
    key: bytes,
    signers: list[int],
) -> dict[int, bytes]:
    by_id = {s.identifier: s for s in shares}
    msg = schemes.rehost_message(record, party, key)
    return {i: schnorr_sign(msg, by_id[i].hostseckey) for i in signers}


def test_a_certified_rehost_parses_and_the_party_signs_with_its_new_key() -> None:
    record, shares = schemes.keygen("frost-secp256k1", 2, 4)
    seckey = secrets.token_bytes(32)
    new_key = hostpubkey_gen(seckey)
    cert = rehost_cert(record, shares, 3, new_key, [1, 4])
    # libsecp256k1 agrees with the certificate.
    msg = schemes.rehost_message(record, 3, new_key)
    assert coincurve.PublicKeyXOnly(record.host_public_keys[1][1:]).verify(cert[1], msg)
    rehosted = schemes.rehosted_record(record, 3, new_key, cert)
    assert rehosted.epoch == 1 and rehosted.host_public_keys[3] == new_key
    assert rehosted.verification_shares == record.verification_shares
    assert rehosted.wallet_id == record.wallet_id and rehosted.public_key == record.public_key
    doc = json.loads(json.dumps(rehosted.to_json()))
    assert doc["history"][0]["kind"] == "rehost"
    assert schemes.WalletRecord.from_json(doc) == rehosted
    # The party keeps its share; its new host key signs the next refresh's certificate.
    moved = [dataclasses.replace(s, hostseckey=seckey) if s.identifier == 3 else s for s in shares]
    refreshed, new_shares = schemes.refresh_shares(rehosted, moved)
    assert roundtrip(refreshed) == refreshed and refreshed.wallet_id == record.wallet_id
    with pytest.raises(KeystoreError):  # the old host key no longer is party 3's
        schemes.refresh_shares(rehosted, shares)
    # ... and the next reshare's, as a dealer.
    resh, resh_shares, _ = reshare(refreshed, new_shares, [3, 1], 2, 3)
    assert roundtrip(resh) == resh
    sig = schemes.sign(resh, resh_shares[1:], b"m" * 32)
    assert independent_verify("frost-secp256k1", record.public_key, b"m" * 32, sig)


def test_a_rehost_needs_threshold_other_parties() -> None:
    record, shares = schemes.keygen("ed25519", 3, 4)
    new_key = hostpubkey_gen(secrets.token_bytes(32))
    with pytest.raises(ParameterError, match="fewer than the threshold"):
        schemes.rehosted_record(record, 2, new_key, rehost_cert(record, shares, 2, new_key, [1, 3]))
    with pytest.raises(ParameterError, match="its own"):  # the party itself does not count
        schemes.rehosted_record(
            record, 2, new_key, rehost_cert(record, shares, 2, new_key, [1, 2, 3])
        )
    forged = rehost_cert(record, shares, 2, new_key, [1, 3, 4])
    forged[4] = schnorr_sign(schemes.rehost_message(record, 2, new_key), b"\x05" * 32)
    with pytest.raises(ParameterError, match="does not verify"):
        schemes.rehosted_record(record, 2, new_key, forged)
    other = rehost_cert(record, shares, 1, new_key, [1, 3, 4])  # signed for another party
    with pytest.raises(ParameterError, match="does not verify"):
        schemes.rehosted_record(record, 2, new_key, other)
    with pytest.raises(ParameterError, match="already"):
        key = record.host_public_keys[1]
        schemes.rehosted_record(record, 2, key, rehost_cert(record, shares, 2, key, [1, 3, 4]))
    with pytest.raises(ParameterError):
        schemes.rehosted_record(
            record, 5, new_key, rehost_cert(record, shares, 5, new_key, [1, 3, 4])
        )


@pytest.mark.parametrize(
    "edit",
    [
        lambda e: e["certificate"].pop("4"),  # two signatures left, threshold 3
        lambda e: e["certificate"].update({"4": e["certificate"]["1"]}),  # forged
        lambda e: e.update({"party": 1}),  # the certificate is for party 2
        lambda e: e.update({"host_public_key": hostpubkey_gen(b"\x09" * 32).hex()}),
    ],
    ids=["too-few", "forged", "party", "key"],
)
def test_an_edited_rehost_entry_is_refused(edit: Callable[[dict[str, Any]], object]) -> None:
    record, shares = schemes.keygen("ecdsa-secp256k1", 3, 4)
    new_key = hostpubkey_gen(secrets.token_bytes(32))
    rehosted = schemes.rehosted_record(
        record, 2, new_key, rehost_cert(record, shares, 2, new_key, [1, 3, 4])
    )
    doc = json.loads(json.dumps(rehosted.to_json()))
    schemes.WalletRecord.from_json(doc)
    entry = doc["history"][0]
    edit(entry)
    # The record's host keys follow the edited entry, so only its certificate can refuse it.
    hosts = {str(i): k.hex() for i, k in record.host_public_keys.items()}
    hosts[str(entry["party"])] = entry["host_public_key"]
    doc["host_public_keys"] = hosts
    with pytest.raises(KeystoreError):
        schemes.WalletRecord.from_json(doc)


# --- wallet ids do not move -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "expected"),
    [
        ("frost-secp256k1", "7cc1abec1df47ddbfaea57e58d569e54"),
        ("ed25519", "372e779fdaee745361574aa6c09c477e"),
        ("schnorr-bip340", "595013cf6bf8698fd0d792ffd36303a5"),
    ],
)
def test_wallet_ids_are_those_of_before_reshares(scheme: str, expected: str) -> None:
    """Ids computed by the code before reshares existed, for a fixed epoch-0 record and a
    refreshed one (the id binds the DKG's values only)."""
    g = schemes.get_scheme(scheme).group
    vs = {i: g.base_mul(1000 + i) for i in (1, 2, 3)}
    hosts = {i: hostpubkey_gen(bytes([i]) * 32) for i in (1, 2, 3)}
    root = b"\x07" * 32 if scheme == "schnorr-bip340" else None
    pk = g.base_mul(999)
    r0 = schemes.WalletRecord(scheme, 2, 3, pk, vs, hosts, b"recovery", taproot_merkle_root=root)
    r1 = schemes.WalletRecord(
        scheme, 2, 3, pk, {i: g.base_mul(2000 + i) for i in (1, 2, 3)}, hosts, b"recovery",
        taproot_merkle_root=root, epoch=1, history=(schemes.Rotation(b"s" * 32, {}, {}),),
        genesis_shares=vs,
    )  # fmt: skip
    assert r0.wallet_id == r1.wallet_id == expected
    assert r1.genesis_threshold == 2 and r1.genesis_hosts == hosts
    # A reshared record must say what its DKG was.
    entry = schemes.Reshare(b"s" * 32, {}, 2, {}, {}, {})
    with pytest.raises(ParameterError):
        schemes.WalletRecord(
            scheme, 2, 3, pk, vs, hosts, b"recovery", taproot_merkle_root=root, epoch=1,
            history=(entry,), genesis_shares=vs,
        )  # fmt: skip
