"""Solana transfers signed by a 3-of-5 ed25519 wallet, run by LiteSVM (solders' in-process SVM).

Every signature is checked by three verifiers besides tmpc: LiteSVM (signature verification,
system program, fees), ``Transaction.verify_with_results()`` and PyNaCl over the message bytes.
The one-byte-flipped copy of each transaction is rejected by all three.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import base58
import nacl.exceptions
import nacl.signing
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata
from solders.transaction_status import TransactionErrorFieldless

import tmpc.schemes.addresses
from tmpc import schemes
from tmpc.chains.solana import (
    MAX_LAMPORTS,
    SignedSolanaTx,
    sign_transfer,
    solana_address,
    transfer_message,
    transfer_message_v0,
)
from tmpc.chains.solana_check import TRANSFER_LAMPORTS, check_solana
from tmpc.errors import CryptoError, DecodeError, ParameterError

SYSTEM_PROGRAM = bytes(32)  # 11111111111111111111111111111111
AMOUNT = 12_345_678  # above the rent-exempt minimum (890 880 lamports) of a new account


class Wallet:
    """A 3-of-5 ed25519 wallet made by tmpc's DKG; ``signer(ids)`` signs with those parties."""

    def __init__(self) -> None:
        self.record, self.shares = schemes.keygen("ed25519", 3, 5)
        self.pk: bytes = self.record.public_key
        self.calls: list[bytes] = []

    def signer(self, ids: tuple[int, ...] = (0, 1, 2)) -> Callable[[bytes], bytes]:
        def sign(message: bytes) -> bytes:
            self.calls.append(message)
            return schemes.sign(self.record, [self.shares[i] for i in ids], message)

        return sign


@pytest.fixture(scope="module")
def wallet() -> Wallet:
    return Wallet()


@pytest.fixture(scope="module")
def other_wallet() -> Wallet:
    return Wallet()


def fresh_address() -> str:
    return str(Keypair().pubkey())


def flip(raw: bytes, index: int = 1, bit: int = 0) -> bytes:
    """``raw`` with one bit of byte ``index`` flipped (bytes 1..64 are the signature)."""
    return raw[:index] + bytes([raw[index] ^ (1 << bit)]) + raw[index + 1 :]


def parse(raw: bytes, versioned: bool) -> Any:
    return VersionedTransaction.from_bytes(raw) if versioned else Transaction.from_bytes(raw)


def message_of(raw: bytes, versioned: bool) -> bytes:
    tx = parse(raw, versioned)
    return bytes(to_bytes_versioned(tx.message) if versioned else tx.message_data())


def funded_svm(pk: bytes) -> tuple[LiteSVM, Pubkey]:
    svm = LiteSVM()
    assert svm.get_sigverify() is True
    cluster = Pubkey.from_bytes(pk)
    assert isinstance(svm.airdrop(cluster, 10**9), TransactionMetadata)
    return svm, cluster


def balance(svm: LiteSVM, key: Pubkey) -> int:
    return svm.get_balance(key) or 0


def assert_nacl_rejects(pk: bytes, message: bytes, signature: bytes) -> None:
    with pytest.raises(nacl.exceptions.BadSignatureError):
        nacl.signing.VerifyKey(pk).verify(message, signature)


# --- addresses --------------------------------------------------------------------------------


def test_address_is_base58_of_the_key_and_reuses_tmpc_addresses(wallet: Wallet) -> None:
    address = solana_address(wallet.pk)
    assert address == tmpc.schemes.addresses.solana_address(wallet.pk)
    assert address == str(Pubkey.from_bytes(wallet.pk))
    assert base58.b58decode(address) == wallet.pk
    assert 32 <= len(address) <= 44


@pytest.mark.parametrize("bad", [b"", bytes(31), bytes(33), "x" * 32], ids=["0", "31", "33", "str"])
def test_address_rejects_a_key_that_is_not_32_bytes(bad: Any) -> None:
    with pytest.raises(ParameterError):
        solana_address(bad)


# --- legacy and v0 transfers accepted by LiteSVM, flipped copies rejected ---------------------


@pytest.mark.parametrize("versioned", [False, True], ids=["legacy", "v0"])
@pytest.mark.parametrize("ids", [(0, 1, 2), (4, 2, 3)], ids=["signers123", "signers345"])
def test_cluster_signed_transfer_runs_on_litesvm(
    wallet: Wallet, versioned: bool, ids: tuple[int, ...]
) -> None:
    svm, cluster = funded_svm(wallet.pk)
    to = fresh_address()
    blockhash = svm.latest_blockhash()
    build = transfer_message_v0 if versioned else transfer_message
    message = build(wallet.pk, to, AMOUNT, blockhash)
    wallet.calls.clear()

    signed = sign_transfer(
        wallet.pk, to, AMOUNT, blockhash, wallet.signer(ids), versioned=versioned
    )

    # The cluster was asked exactly once, for exactly the message bytes (no digest).
    assert wallet.calls == [message]
    assert message_of(signed.raw, versioned) == message
    assert signed.raw[0] == 1 and signed.raw[65:] == message
    assert (message[0] == 0x80) is versioned
    signature = signed.raw[1:65]
    assert base58.b58decode(signed.signature_b58) == signature
    # Independent verifiers: PyNaCl over the message bytes, solders' signature check.
    nacl.signing.VerifyKey(wallet.pk).verify(message, signature)
    tx = parse(signed.raw, versioned)
    assert tx.verify_with_results() == [True]

    bad_raw = flip(signed.raw)
    assert parse(bad_raw, versioned).verify_with_results() == [False]
    assert_nacl_rejects(wallet.pk, message, bad_raw[1:65])

    # LiteSVM: the flipped copy first (so its rejection is not a duplicate check) ...
    to_key = Pubkey.from_string(to)
    before = balance(svm, cluster)
    bad = svm.send_transaction(parse(bad_raw, versioned))
    assert isinstance(bad, FailedTransactionMetadata)
    assert bad.err() == TransactionErrorFieldless.SignatureFailure
    assert (balance(svm, cluster), balance(svm, to_key)) == (before, 0)

    # ... then the true one: executed, under its own signature, lamports and fee moved.
    ok = svm.send_transaction(tx)
    assert isinstance(ok, TransactionMetadata), ok
    assert str(ok.signature()) == signed.signature_b58
    assert ok.fee() == 5000  # one signature at the default 5000 lamports
    assert balance(svm, to_key) == AMOUNT
    assert balance(svm, cluster) == before - AMOUNT - 5000
    assert svm.get_transaction(ok.signature()) is not None

    # A flipped copy after acceptance is still a signature failure, not "already processed".
    again = svm.send_transaction(parse(bad_raw, versioned))
    assert isinstance(again, FailedTransactionMetadata)
    assert again.err() == TransactionErrorFieldless.SignatureFailure
    replay = svm.send_transaction(tx)
    assert isinstance(replay, FailedTransactionMetadata)
    assert replay.err() == TransactionErrorFieldless.AlreadyProcessed


@pytest.fixture(scope="module")
def signed_pair(wallet: Wallet) -> tuple[LiteSVM, dict[bool, SignedSolanaTx]]:
    svm, _ = funded_svm(wallet.pk)
    to = fresh_address()
    txs = {
        v: sign_transfer(
            wallet.pk, to, AMOUNT, svm.latest_blockhash(), wallet.signer(), versioned=v
        )
        for v in (False, True)
    }
    return svm, txs


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(index=st.integers(1, 64), bit=st.integers(0, 7), versioned=st.booleans())
def test_any_flipped_signature_bit_is_a_signature_failure(
    signed_pair: tuple[LiteSVM, dict[bool, SignedSolanaTx]], index: int, bit: int, versioned: bool
) -> None:
    svm, txs = signed_pair
    bad_raw = flip(txs[versioned].raw, index, bit)
    bad_tx = parse(bad_raw, versioned)
    assert bad_tx.verify_with_results() == [False]
    result = svm.send_transaction(bad_tx)
    assert isinstance(result, FailedTransactionMetadata)
    assert result.err() == TransactionErrorFieldless.SignatureFailure


# --- encoding: hand-parsed layout, and byte-identical to solders' own single-key signing -----


@settings(max_examples=25, deadline=None)
@given(
    lamports=st.integers(1, MAX_LAMPORTS),
    to=st.binary(min_size=32, max_size=32),
    blockhash=st.binary(min_size=32, max_size=32),
)
def test_transfer_message_layout(lamports: int, to: bytes, blockhash: bytes) -> None:
    payer = bytes(Keypair().pubkey())
    to_b58 = base58.b58encode(to).decode()
    assume(to != SYSTEM_PROGRAM)  # the system program would appear once, not twice
    legacy = transfer_message(payer, to_b58, lamports, blockhash)
    # header: 1 signature, 0 read-only signed, 1 read-only unsigned (the system program)
    keys = payer + to + SYSTEM_PROGRAM
    ix = bytes([1, 2, 2, 0, 1, 12]) + (2).to_bytes(4, "little") + lamports.to_bytes(8, "little")
    assert legacy == bytes([1, 0, 1, 3]) + keys + blockhash + ix
    v0 = transfer_message_v0(payer, to_b58, lamports, blockhash)
    assert v0 == b"\x80" + legacy + b"\x00"  # version 0, no address-table lookups


@pytest.mark.parametrize("versioned", [False, True], ids=["legacy", "v0"])
def test_same_bytes_as_solders_signing_with_a_keypair(versioned: bool) -> None:
    kp = Keypair()
    to = Keypair().pubkey()
    blockhash = Hash.new_unique()
    ix = transfer(TransferParams(from_pubkey=kp.pubkey(), to_pubkey=to, lamports=AMOUNT))
    if versioned:
        expected = bytes(
            VersionedTransaction(MessageV0.try_compile(kp.pubkey(), [ix], [], blockhash), [kp])
        )
    else:
        expected = bytes(Transaction.new_signed_with_payer([ix], kp.pubkey(), [kp], blockhash))
    signed = sign_transfer(
        bytes(kp.pubkey()),
        str(to),
        AMOUNT,
        blockhash,
        lambda m: bytes(kp.sign_message(m)),
        versioned=versioned,
    )
    assert signed.raw == expected


def test_blockhash_forms_agree(wallet: Wallet) -> None:
    h = Hash.new_unique()
    to = fresh_address()
    forms: list[Any] = [h, str(h), bytes(h), bytearray(bytes(h))]
    messages = {transfer_message(wallet.pk, to, AMOUNT, form) for form in forms}
    assert len(messages) == 1


def test_largest_amount_and_off_curve_recipient_are_accepted(wallet: Wallet) -> None:
    pda, _ = Pubkey.find_program_address([b"tmpc"], Pubkey.default())
    assert not pda.is_on_curve()  # programs' accounts can receive SOL
    message = transfer_message(wallet.pk, str(pda), MAX_LAMPORTS, Hash.new_unique())
    assert message.endswith(MAX_LAMPORTS.to_bytes(8, "little"))


# --- input validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "lamports", [0, -1, MAX_LAMPORTS + 1, True, 1.5, "1"], ids=["0", "-1", "2^64", "bool", "f", "s"]
)
def test_lamports_out_of_range(wallet: Wallet, lamports: Any) -> None:
    with pytest.raises(ParameterError):
        transfer_message(wallet.pk, fresh_address(), lamports, Hash.new_unique())
    with pytest.raises(ParameterError):
        sign_transfer(wallet.pk, fresh_address(), lamports, Hash.new_unique(), wallet.signer())


@pytest.mark.parametrize(
    ("to", "error"),
    [
        ("", DecodeError),
        ("0" * 44, DecodeError),  # '0' is not a base58 digit
        ("1" * 44, DecodeError),  # 44 zero bytes
        ("1" * 31, DecodeError),  # 31 zero bytes
        (base58.b58encode(bytes(range(1, 34))).decode(), DecodeError),  # 33 bytes
        (bytes(32), ParameterError),
        (None, ParameterError),
    ],
    ids=["empty", "not-b58", "44-bytes", "31-bytes", "33-bytes", "bytes", "none"],
)
def test_bad_recipient(wallet: Wallet, to: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        transfer_message_v0(wallet.pk, to, AMOUNT, Hash.new_unique())


def test_bad_sender_key(wallet: Wallet) -> None:
    to = fresh_address()
    for bad in (wallet.pk[:31], wallet.pk + b"\x00", solana_address(wallet.pk), None):
        with pytest.raises(ParameterError):
            transfer_message(bad, to, AMOUNT, Hash.new_unique())  # type: ignore[arg-type]
    pda, _ = Pubkey.find_program_address([b"tmpc"], Pubkey.default())
    with pytest.raises(DecodeError):  # nobody holds a key for an off-curve address
        transfer_message(bytes(pda), to, AMOUNT, Hash.new_unique())


@pytest.mark.parametrize(
    ("blockhash", "error"),
    [
        (bytes(31), DecodeError),
        ("O" * 44, DecodeError),
        ("1" * 44, DecodeError),
        (7, ParameterError),
    ],
    ids=["31-bytes", "not-b58", "44-bytes", "int"],
)
def test_bad_blockhash(wallet: Wallet, blockhash: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        transfer_message(wallet.pk, fresh_address(), AMOUNT, blockhash)


BAD_SIGNERS: dict[str, Callable[[Wallet, Wallet], Callable[[bytes], Any]]] = {
    "short": lambda w, o: lambda m: w.signer()(m)[:63],
    "not-bytes": lambda w, o: lambda m: list(w.signer()(m)),
    "flipped": lambda w, o: lambda m: flip(w.signer()(m), 0),
    "other-message": lambda w, o: lambda m: w.signer()(m + b"\x00"),
    "other-wallet": lambda w, o: o.signer(),
}


@pytest.mark.parametrize("versioned", [False, True], ids=["legacy", "v0"])
@pytest.mark.parametrize("name", list(BAD_SIGNERS))
def test_signer_output_is_checked_before_it_reaches_the_wire(
    wallet: Wallet, other_wallet: Wallet, name: str, versioned: bool
) -> None:
    to = fresh_address()
    h = Hash.new_unique()
    with pytest.raises(CryptoError):
        sign_transfer(
            wallet.pk, to, AMOUNT, h, BAD_SIGNERS[name](wallet, other_wallet), versioned=versioned
        )
    # The same inputs with the true signer work, so the failure above is the signer's.
    signed = sign_transfer(wallet.pk, to, AMOUNT, h, wallet.signer(), versioned=versioned)
    assert parse(signed.raw, versioned).verify_with_results() == [True]


def test_chain_modules_do_not_load_the_wallet_layer() -> None:
    code = (
        "import sys, tmpc.chains.solana, tmpc.chains.solana_check; "
        "assert 'tmpc.schemes' not in sys.modules, 'wallet layer imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- check_solana: the scenario used by `tmpc testnet-check` and `make demo` ----------------


def test_check_solana_accepts_the_cluster(wallet: Wallet) -> None:
    result = check_solana(wallet.pk, wallet.signer((1, 3, 4)))
    assert result.chain == "solana" and result.scheme == "ed25519"
    assert result.address == solana_address(wallet.pk)
    assert result.accepted is True
    assert result.flipped_rejected is True
    assert result.ok is True
    assert len(base58.b58decode(result.txid)) == 64
    assert result.detail.count("SignatureFailure") == 2  # legacy and v0
    assert "legacy: accepted" in result.detail and "v0: accepted" in result.detail


def test_check_solana_fails_for_a_signer_of_another_wallet(
    wallet: Wallet, other_wallet: Wallet
) -> None:
    result = check_solana(wallet.pk, other_wallet.signer())
    assert result.accepted is False
    assert result.flipped_rejected is False
    assert result.ok is False
    assert result.txid == ""


def test_check_solana_amount_is_rent_exempt() -> None:
    assert LiteSVM().minimum_balance_for_rent_exemption(0) < TRANSFER_LAMPORTS


def test_check_solana_rejects_bad_keys(wallet: Wallet) -> None:
    with pytest.raises(ParameterError):
        check_solana(wallet.pk[:31], wallet.signer())
    pda, _ = Pubkey.find_program_address([b"tmpc"], Pubkey.default())
    with pytest.raises(DecodeError):
        check_solana(bytes(pda), wallet.signer())
