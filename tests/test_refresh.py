"""Share refresh (tmpc.protocols.lifecycle.refresh): new shares of the same key.

Honest runs for secp256k1 (FROST, BIP445) and Ed25519, 3-of-5 and 2-of-3: the key is
unchanged, every party agrees on the new verification shares and the transcript, the host-key
certificate verifies with libsecp256k1 (coincurve), the new shares sign (checked by coincurve,
PyNaCl, libsecp256k1 ECDSA), and old and new shares never combine into a signature.
Adversarial: a share off its commitment, a commitment of the wrong length, a malformed
scalar, a split view of the commitments, and a bad certificate signature.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
from collections.abc import Callable

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
from tmpc.primitives.bip340 import pubkey_gen
from tmpc.protocols import bip445, frost
from tmpc.protocols.ecdsa import dkls23
from tmpc.protocols.lifecycle.refresh import (
    RefreshMachine,
    RefreshResult,
    certificate_message,
    refresh_context,
    refresh_local,
)
from tmpc.protocols.machine import BroadcastMismatchError, Machine, Message
from tmpc.schemes.addresses import wallet_address
from tmpc.sharing import shamir_combine, shamir_split

CONTEXT = refresh_context("00" * 16, 0, b"s" * 32)


def deal(group: Group, t: int, n: int) -> tuple[int, dict[int, int], dict[int, Point]]:
    x = group.random_scalar()
    shares = shamir_split(group, x, t, list(range(1, n + 1)))
    return x, shares, {i: group.base_mul(s) for i, s in shares.items()}


def hosts(n: int) -> dict[int, bytes]:
    return {i: secrets.token_bytes(32) for i in range(1, n + 1)}


def machines(
    group: Group, t: int, shares: dict[int, int], vs: dict[int, Point], keys: dict[int, bytes]
) -> dict[int, Machine]:
    pubs = {i: pubkey_gen(k) for i, k in keys.items()}
    return {
        i: RefreshMachine(
            group, i, sorted(shares), shares[i], t, vs, CONTEXT, hostseckey=keys[i],
            host_pubkeys=pubs,
        )
        for i in shares
    }  # fmt: skip


def agreed(results: dict[int, RefreshResult]) -> RefreshResult:
    first = next(iter(results.values()))
    for r in results.values():
        assert r.verification_shares == first.verification_shares
        assert r.transcript == first.transcript and r.certificate == first.certificate
    return first


@pytest.mark.parametrize(
    ("group", "t", "n"), [(SECP256K1, 3, 5), (ED25519, 3, 5), (SECP256K1, 2, 3)]
)
def test_refresh_keeps_the_key_and_every_party_agrees(group: Group, t: int, n: int) -> None:
    x, shares, vs = deal(group, t, n)
    keys = hosts(n)
    out = run_machines(machines(group, t, shares, vs, keys))
    results = {i: r for i, r in out.items() if isinstance(r, RefreshResult)}
    common = agreed(results)
    new = {i: r.secshare for i, r in results.items()}
    assert all(new[i] != shares[i] for i in new), "every share changed"
    for i, s in new.items():
        assert group.base_mul(s) == common.verification_shares[i]
    # Any t new shares give the same key (Lagrange at 0).
    assert shamir_combine(group, {i: new[i] for i in list(new)[:t]}) == x
    assert shamir_combine(group, {i: new[i] for i in list(new)[-t:]}) == x
    # The certificate: every party's host key signed the transcript (libsecp256k1 checks).
    assert set(common.certificate) == set(shares)
    for i, sig in common.certificate.items():
        key = coincurve.PublicKeyXOnly(pubkey_gen(keys[i]))
        assert key.verify(sig, certificate_message(common.transcript))
        assert not key.verify(sig, certificate_message(common.transcript[::-1]))
    assert str(common.secshare) not in repr(common)


@pytest.mark.parametrize("scheme", ["frost-secp256k1", "ed25519"])
def test_new_shares_sign_and_old_and_new_never_combine(scheme: str) -> None:
    suite = secp256k1 if scheme == "frost-secp256k1" else ed25519
    group = suite.group
    x, shares, vs = deal(group, 3, 5)
    pk = group.base_mul(x)
    results = refresh_local(group, 3, shares, vs, CONTEXT, hostseckeys=hosts(5))
    new = {i: r.secshare for i, r in results.items()}
    new_vs = agreed(results).verification_shares
    msg = b"after the refresh"
    signers = {i: new[i] for i in (1, 3, 5)}
    sig = frost.sign_local(suite, signers, pk, msg, verifying_shares=new_vs, min_signers=3)
    assert independent_verify(scheme, pk.encode(), msg, sig)
    # Old and new shares together: not a sharing of the key, and no signature comes out.
    mixed = {1: shares[1], 3: new[3], 5: new[5]}
    assert shamir_combine(group, mixed) != x
    with pytest.raises(TmpcError, match="does not"):  # the aggregate does not verify
        frost.sign_local(suite, mixed, pk, msg, min_signers=3)


def test_bip445_signs_with_refreshed_shares() -> None:
    x, shares, vs = deal(SECP256K1, 2, 3)
    pk = SECP256K1.base_mul(x)
    results = refresh_local(SECP256K1, 2, shares, vs, CONTEXT)
    new = {i: r.secshare for i, r in results.items()}
    new_vs = agreed(results).verification_shares
    msg = hashlib.sha256(b"taproot after refresh").digest()
    sig = bip445.sign_local({1: new[1], 3: new[3]}, new_vs, pk, msg, min_signers=2)
    # BIP340 verification by libsecp256k1 under the (unchanged) x-only key.
    assert coincurve.PublicKeyXOnly(pk.encode()[1:]).verify(sig, msg)


def test_ecdsa_refresh_with_a_new_pairwise_setup_signs() -> None:
    x, shares, vs = deal(SECP256K1, 3, 5)
    pk = SECP256K1.base_mul(x)
    results = refresh_local(SECP256K1, 3, shares, vs, CONTEXT)
    new = {i: r.secshare for i, r in results.items()}
    pairwise = dkls23.pairwise_setup_local(list(new), secrets.token_bytes(32))
    digest = hashlib.sha256(b"ecdsa after refresh").digest()
    r, s, recid = dkls23.sign_local(new, pk, pairwise, [2, 4, 5], digest, threshold=3)
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert independent_verify("ecdsa-secp256k1", pk.encode(), digest, sig)
    assert (
        coincurve.PublicKey.from_signature_and_message(
            sig + bytes([recid]), digest, hasher=None
        ).format()
        == pk.encode()
    )


# --- adversarial -----------------------------------------------------------------------------


def tamper(
    sender: int, to: int, r: int, change: Callable[[bytes], bytes]
) -> Callable[..., Message]:
    def hook(msg: Message, recipient: int) -> Message:
        if msg.sender == sender and recipient == to and msg.round == r:
            return dataclasses.replace(msg, payload=change(msg.payload))
        return msg

    return hook


def culprits(group: Group, change: Callable[[bytes], bytes], r: int = 1) -> tuple[int, ...]:
    _, shares, vs = deal(group, 3, 4)
    with pytest.raises(ProtocolError) as exc:
        run_machines(machines(group, 3, shares, vs, hosts(4)), tamper=tamper(2, 1, r, change))
    return exc.value.culprits


@pytest.mark.parametrize("group", [SECP256K1, ED25519])
def test_a_share_off_its_commitment_names_its_dealer(group: Group) -> None:
    def bump(p: bytes) -> bytes:
        k = group.decode_scalar(p[-group.scalar_len :])
        return p[: -group.scalar_len] + group.encode_scalar(k + 1)

    assert culprits(group, bump) == (2,)


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p[33:],  # one commitment term too few
        lambda p: p[:33] + p,  # one too many
        lambda p: p[:-32] + b"\xff" * 32,  # a scalar >= the order
        lambda p: b"\x05" + p[1:],  # a point that does not decode
    ],
    ids=["short-commitment", "long-commitment", "bad-scalar", "bad-point"],
)
def test_malformed_refresh_messages_name_the_sender(change: Callable[[bytes], bytes]) -> None:
    assert culprits(SECP256K1, change) == (2,)


def test_a_bad_certificate_signature_names_its_signer() -> None:
    assert culprits(SECP256K1, lambda p: p[:-1] + bytes([p[-1] ^ 1]), r=2) == (2,)


def test_a_split_view_of_the_commitments_is_caught_unattributed() -> None:
    group, t = SECP256K1, 3
    _, shares, vs = deal(group, t, 4)
    keys = hosts(4)
    alt = machines(group, t, shares, vs, keys)[3]  # another, equally valid dealing of party 3
    alt_msgs = {m.recipient: m for m in alt.start()}

    def hook(msg: Message, recipient: int) -> Message:
        if msg.sender == 3 and msg.round == 1 and recipient == 1:
            return alt_msgs[1]
        return msg

    with pytest.raises(BroadcastMismatchError):
        run_machines(machines(group, t, shares, vs, keys), tamper=hook)


def test_parameters_are_checked() -> None:
    _, shares, vs = deal(SECP256K1, 2, 3)
    with pytest.raises(ParameterError):
        RefreshMachine(SECP256K1, 1, [1, 2, 3], shares[2], 2, vs, CONTEXT)  # not 1's share
    with pytest.raises(ParameterError):
        RefreshMachine(SECP256K1, 1, [1, 2, 3], shares[1], 4, vs, CONTEXT)
    with pytest.raises(ParameterError):
        RefreshMachine(SECP256K1, 1, [1, 2, 3], shares[1], 2, vs, b"short")
    with pytest.raises(ParameterError):
        RefreshMachine(SECP256K1, 1, [1, 2, 3], shares[1], 2, vs, CONTEXT, hostseckey=b"k" * 32)
    assert isinstance(FaultyParticipantError("x", 1), ProtocolError)


# --- wallets: the identity outlives the shares ----------------------------------------------


def addresses(record: schemes.WalletRecord) -> list[str]:
    if schemes.get_scheme(record.scheme).dkls23:
        pk = record.public_key
        return [p2wpkh_address(pk), ethereum_address(pk), p2wpkh_address(
            schemes.public_key_at(record, "m/0/7"), "testnet")]  # fmt: skip
    if schemes.get_scheme(record.scheme).chains:
        return [wallet_address(record, "mainnet")[0]]
    return [record.public_key.hex()]


@pytest.mark.parametrize("scheme", list(schemes.SCHEMES))
def test_a_refreshed_wallet_keeps_its_identity_and_signs(scheme: str) -> None:
    record, shares = schemes.keygen(scheme, 2, 3)
    new_record, new_shares = schemes.refresh_shares(record, shares)
    again_record, again_shares = schemes.refresh_shares(new_record, new_shares)
    for rec in (new_record, again_record):
        assert rec.wallet_id == record.wallet_id
        assert rec.public_key == record.public_key
        assert rec.chain_code == record.chain_code
        assert addresses(rec) == addresses(record)
    if schemes.get_scheme(scheme).bip32:
        assert schemes.wallet_xpub(again_record) == schemes.wallet_xpub(record)
    assert (new_record.epoch, again_record.epoch) == (1, 2)
    # The record proves its epochs: it round-trips through wallet.json with every check.
    doc = json.loads(json.dumps(again_record.to_json()))
    assert schemes.WalletRecord.from_json(doc) == again_record
    # The new shares sign (checked outside tmpc); the old ones are not this epoch's.
    msg = hashlib.sha256(b"after two refreshes").digest()
    sig = schemes.sign(again_record, again_shares[1:], msg)
    assert independent_verify(scheme, again_record.public_key, msg, sig)
    with pytest.raises(KeystoreError):
        schemes.check_share(again_record, shares[0])
    with pytest.raises(KeystoreError):
        schemes.check_share(again_record, new_shares[0])


def test_a_refresh_needs_every_party_and_current_shares() -> None:
    record, shares = schemes.keygen("ed25519", 2, 3)
    with pytest.raises(ParameterError):
        schemes.refresh_shares(record, shares[:2])
    new_record, _ = schemes.refresh_shares(record, shares)
    with pytest.raises(KeystoreError):
        schemes.refresh_shares(new_record, shares)  # the old epoch's shares


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["history"][0]["certificate"].update(
            {"2": d["history"][0]["certificate"]["2"][:-2] + "00"}
        ),
        lambda d: d["history"][0]["commitments"].update({"1": d["history"][0]["commitments"]["2"]}),
        lambda d: d["history"][0].update({"session": "11" * 32}),
        lambda d: d.update({"epoch": 2}),
        lambda d: d["verification_shares"].update({"1": d["verification_shares"]["2"]}),
        lambda d: d.pop("history"),
    ],
    ids=["signature", "commitment", "session", "epoch", "share", "history-dropped"],
)
def test_an_edited_refresh_history_is_refused(edit: Callable[[dict[str, object]], object]) -> None:
    record, shares = schemes.keygen("schnorr-bip340", 2, 3)
    new_record, _ = schemes.refresh_shares(record, shares)
    doc = json.loads(json.dumps(new_record.to_json()))
    edit(doc)
    with pytest.raises(KeystoreError):
        schemes.WalletRecord.from_json(doc)
