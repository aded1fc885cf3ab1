"""Bitcoin Core's consensus code (libbitcoinkernel via pbk) judges the cluster's transactions.

Positive controls first: the BIPs' own fully signed transactions (BIP143's native P2WPKH
example, BIP341's key-path wallet vector) pass :func:`kernel_verify_input`, so a refusal below
means the kernel really refused. Then transactions signed by real 3-of-5 wallets are accepted,
their one-byte-flipped copies refused; and :func:`check_bitcoin` runs the whole regtest chain
(coinbase to the cluster, 100 blocks, spend in block 102) for both schemes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import coincurve
import pytest
from embit.ec import PrivateKey as EmbitPrivateKey
from embit.psbt import PSBT
from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput

import tmpc.chains.bitcoin_check as bitcoin_check
from tests.vectors import load_json
from tmpc import schemes
from tmpc.chains import bitcoin as btc
from tmpc.chains.addresses import hash160
from tmpc.chains.bitcoin_check import check_bitcoin, flip_signature_byte, kernel_verify_input
from tmpc.errors import DecodeError, ParameterError
from tmpc.group import SECP256K1
from tmpc.primitives.ecdsa_format import der_decode_strict, der_encode

N = SECP256K1.order
ECDSA = "ecdsa-secp256k1"
BIP340 = "schnorr-bip340"
PAYEE = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"


class Wallet:
    def __init__(self, scheme: str) -> None:
        self.scheme = scheme
        self.record, self.shares = schemes.keygen(scheme, 3, 5)
        self.pk: bytes = self.record.public_key
        self.spk = btc.wallet_script_pubkey(scheme, self.pk)

    def sign(self, digest: bytes) -> bytes:
        return schemes.sign(self.record, self.shares[2:], digest)  # parties 3, 4, 5

    def address(self) -> str:
        return btc.wallet_address(self.scheme, self.pk, "regtest")


@pytest.fixture(scope="module")
def wallets() -> dict[str, Wallet]:
    return {ECDSA: Wallet(ECDSA), BIP340: Wallet(BIP340)}


def two_input_spend(w: Wallet) -> btc.UnsignedSpend:
    utxos = [
        btc.Utxo("11" * 32, 0, 150_000, w.spk),
        btc.Utxo("22" * 32, 5, 80_000, w.spk),
    ]
    return btc.build_spend(utxos, [(PAYEE, 200_000)], 2_000, w.address(), network="regtest")


# --------------------------------------------------------------------------------------------
# Positive controls from the BIPs
# --------------------------------------------------------------------------------------------

# BIP143 "Native P2WPKH": the serialized signed transaction and the outputs it spends (input 0
# a P2PK of 6.25 BTC, input 1 the P2WPKH of 6 BTC).
BIP143_SIGNED = bytes.fromhex(
    "01000000000102fff7f7881a8099afa6940d42d1e7f6362bec38171ea3edf433541db4e4ad969f000000004948"
    "30450221008b9d1dc26ba6a9cb62127b02742fa9d754cd3bebf337f7a55d114c8e5cdd30be022040529b194b"
    "a3f9281a99f2b1c0a19c0489bc22ede944ccf4ecbab4cc618ef3ed01eeffffffef51e1b804cc89d182d27965"
    "5c3aa89e815b1b309fe287d9b2b55d57b90ec68a0100000000ffffffff02202cb206000000001976a9148280"
    "b37df378db99f66f85c95a783a76ac7a6d5988ac9093510d000000001976a9143bde42dbee7e4dbe6a21b2d5"
    "0ce2f0167faa815988ac000247304402203609e17b84f6a7d30c80bfa610b5b4542f32a8a0d5447a12fb1366"
    "d7f01cc44a0220573a954c4518331561406f90300e8f3358f51928d43c212a8caed02de67eebee0121025476"
    "c2e83188368da1ff3e292e7acafcdb3566bb0ad253f62fc70f07aeee635711000000"
)
BIP143_SPENT = [
    (
        625_000_000,
        bytes.fromhex("2103c9f4836b9a4f77fc0d81f7bcb01b7f1b35916864b9476c241ce9fc198bd25432ac"),
    ),
    (600_000_000, bytes.fromhex("00141d0f172a0ecb48aee1be1f2687d2963ae33f71a1")),
]


def test_kernel_accepts_bip143_example() -> None:
    assert kernel_verify_input(BIP143_SIGNED, BIP143_SPENT, 0)
    assert kernel_verify_input(BIP143_SIGNED, BIP143_SPENT, 1)
    # The amount is committed by BIP143: the wrong amount makes the signature invalid.
    wrong = [BIP143_SPENT[0], (600_000_001, BIP143_SPENT[1][1])]
    assert not kernel_verify_input(BIP143_SIGNED, wrong, 1)
    assert not kernel_verify_input(flip_signature_byte(BIP143_SIGNED, 1), BIP143_SPENT, 1)


def test_kernel_accepts_bip341_key_path_vector() -> None:
    kp = load_json("bip341/wallet-test-vectors.json")["keyPathSpending"][0]
    raw = bytes.fromhex(kp["auxiliary"]["fullySignedTx"])
    spent = [(u["amountSats"], bytes.fromhex(u["scriptPubKey"])) for u in kp["given"]["utxosSpent"]]
    for i in range(len(spent)):
        assert kernel_verify_input(raw, spent, i), i
    for case in kp["inputSpending"]:
        i = case["given"]["txinIndex"]
        assert not kernel_verify_input(flip_signature_byte(raw, i), spent, i)


def test_kernel_verify_input_parameters() -> None:
    with pytest.raises(ParameterError, match="every input"):
        kernel_verify_input(BIP143_SIGNED, BIP143_SPENT[:1], 0)
    with pytest.raises(ParameterError, match="index"):
        kernel_verify_input(BIP143_SIGNED, BIP143_SPENT, 2)
    with pytest.raises(ParameterError):
        kernel_verify_input(BIP143_SIGNED, [BIP143_SPENT[0], (-1, BIP143_SPENT[1][1])], 1)
    for bad in (b"", b"\x01\x02\x03", BIP143_SIGNED[:-10]):
        with pytest.raises(DecodeError):
            kernel_verify_input(bad, BIP143_SPENT, 0)
    with pytest.raises(ParameterError, match="no witness"):
        flip_signature_byte(BIP143_SIGNED, 0)  # a legacy scriptSig input


# --------------------------------------------------------------------------------------------
# The cluster's transactions
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "hash_type"),
    [(ECDSA, None), (BIP340, btc.SIGHASH_DEFAULT), (BIP340, btc.SIGHASH_ALL)],
)
def test_kernel_accepts_cluster_spend(
    wallets: dict[str, Wallet], scheme: str, hash_type: int | None
) -> None:
    w = wallets[scheme]
    spend = two_input_spend(w)
    signed = btc.sign_spend(spend, w.sign, w.pk, scheme, hash_type)
    spent = spend.spent_outputs
    tx = Transaction.parse(signed.raw)
    for i in range(2):
        sig = tx.vin[i].witness.items[0]
        digest = btc.spend_sighash(spend, i, hash_type)
        if scheme == ECDSA:
            r, s = der_decode_strict(sig[:-1])
            assert 0 < r < N and 0 < s <= N // 2
            assert coincurve.PublicKey(w.pk).verify(sig[:-1], digest, hasher=None)
        else:
            assert coincurve.PublicKeyXOnly(w.pk).verify(sig[:64], digest)
        assert kernel_verify_input(signed.raw, spent, i)
        flipped = flip_signature_byte(signed.raw, i)
        assert flipped != signed.raw and len(flipped) == len(signed.raw)
        assert Transaction.parse(flipped).txid().hex() == signed.txid  # same txid, other wtxid
        assert not kernel_verify_input(flipped, spent, i)
        assert kernel_verify_input(flipped, spent, 1 - i)  # the other input is untouched


def test_kernel_accepts_high_s_but_tmpc_refuses(wallets: dict[str, Wallet]) -> None:
    """Consensus accepts high-s ECDSA (nodes do not relay it): tmpc must refuse it itself."""
    w = wallets[ECDSA]
    spend = btc.build_spend(
        [btc.Utxo("33" * 32, 1, 50_000, w.spk)], [(PAYEE, 49_000)], 1_000, network="regtest"
    )
    signed = btc.sign_spend(spend, w.sign, w.pk, ECDSA)
    tx = Transaction.parse(signed.raw)
    sig, pk = tx.vin[0].witness.items
    r, s = der_decode_strict(sig[:-1])
    tx.vin[0].witness.items = [der_encode(r, N - s) + sig[-1:], pk]
    high_s_raw = tx.serialize()
    assert kernel_verify_input(high_s_raw, spend.spent_outputs, 0)

    def high_s_signer(digest: bytes) -> bytes:
        sig64 = w.sign(digest)
        s_ = int.from_bytes(sig64[32:], "big")
        return sig64[:32] + (N - s_).to_bytes(32, "big")

    with pytest.raises(ParameterError, match="high-s"):
        btc.sign_spend(spend, high_s_signer, w.pk, ECDSA)


def test_kernel_accepts_finalized_psbt_from_embit(wallets: dict[str, Wallet]) -> None:
    """A PSBT made and half signed by embit (its own P2WPKH key), completed by both tmpc
    wallets (P2WPKH and P2TR inputs), finalized by tmpc: every input passes the kernel."""
    e, t = wallets[ECDSA], wallets[BIP340]
    key = EmbitPrivateKey(b"\x05" * 32)
    embit_spk = b"\x00\x14" + hash160(key.sec())
    spent = [(30_000, embit_spk), (40_000, e.spk), (50_000, t.spk)]
    tx = Transaction(
        version=2,
        vin=[TransactionInput(bytes([i]) * 32, i) for i in (1, 2, 3)],
        vout=[TransactionOutput(119_000, Script(bytes.fromhex("0014") + bytes(20)))],
        locktime=0,
    )
    psbt = PSBT(tx, unknown={})
    for inp, (amount, spk) in zip(psbt.inputs, spent, strict=True):
        inp.unknown = {}
        inp.witness_utxo = TransactionOutput(amount, Script(spk))
    assert psbt.sign_with(key) == 1
    # The test built these witness UTXOs itself, so it vouches for their amounts.
    b64 = btc.sign_psbt(psbt.to_base64(), e.sign, e.pk, ECDSA, trust_witness_utxo=True)
    b64 = btc.sign_psbt(b64, t.sign, t.pk, BIP340)
    raw = btc.finalize_psbt(b64)
    for i in range(3):
        assert kernel_verify_input(raw, spent, i), i
        assert not kernel_verify_input(flip_signature_byte(raw, i), spent, i), i


# --------------------------------------------------------------------------------------------
# The regtest chain
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", [ECDSA, BIP340])
def test_check_bitcoin(wallets: dict[str, Wallet], scheme: str) -> None:
    w = wallets[scheme]
    calls: list[bytes] = []

    def signer(digest: bytes) -> bytes:
        calls.append(digest)
        return w.sign(digest)

    result = check_bitcoin(scheme, w.pk, signer)
    assert result.chain == "bitcoin" and result.scheme == scheme
    assert result.address == w.address()
    assert result.accepted and result.flipped_rejected and result.ok
    assert len(result.txid) == 64 and int(result.txid, 16) >= 0
    assert len(calls) == 1  # one input, one signature by the cluster
    assert "tip at height 102" in result.detail
    assert "block-script-verify-flag-failed" in result.detail
    if scheme == BIP340:
        assert "Invalid Schnorr signature" in result.detail
    assert "INVALID/CONSENSUS" in result.detail


def test_check_bitcoin_refusing_signers(wallets: dict[str, Wallet]) -> None:
    w = wallets[ECDSA]

    def high_s(digest: bytes) -> bytes:
        sig = w.sign(digest)
        return sig[:32] + (N - int.from_bytes(sig[32:], "big")).to_bytes(32, "big")

    result = check_bitcoin(ECDSA, w.pk, high_s)
    assert not result.accepted and not result.flipped_rejected and not result.ok
    assert "high-s" in result.detail
    other = wallets[BIP340]
    result = check_bitcoin(BIP340, other.pk, lambda d: bytes(64))
    assert not result.accepted and "signing refused" in result.detail


def test_check_bitcoin_reports_kernel_refusal(
    wallets: dict[str, Wallet], monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the transaction reaching the kernel is bad, check_bitcoin says so: here sign_spend
    is replaced by one that returns the flipped copy (so the "flipped" copy is the good one)."""
    w = wallets[BIP340]
    real_sign_spend = bitcoin_check.sign_spend

    def corrupting(*args: Any, **kwargs: Any) -> btc.SignedSpend:
        good = real_sign_spend(*args, **kwargs)
        return btc.SignedSpend(flip_signature_byte(good.raw, 0), good.txid)

    monkeypatch.setattr(bitcoin_check, "sign_spend", corrupting)
    result = check_bitcoin(BIP340, w.pk, w.sign)
    assert not result.accepted and not result.flipped_rejected
    # The good copy went in first as block 102, so the bad one is a losing sibling the kernel
    # stores without connecting; its script check fails on its own.
    assert "block 102: REFUSED" in result.detail
    assert "script check REFUSES the input" in result.detail
    assert "flipped signature: block ACCEPTED, script check ACCEPTS" in result.detail


def test_check_bitcoin_parameters(wallets: dict[str, Wallet]) -> None:
    w = wallets[ECDSA]
    never: Callable[[bytes], bytes] = lambda d: pytest.fail("must not sign")  # noqa: E731
    with pytest.raises(ParameterError, match="regtest"):
        check_bitcoin(ECDSA, w.pk, never, network="mainnet")
    with pytest.raises(ParameterError):
        check_bitcoin("ed25519", w.pk, never)
    with pytest.raises(DecodeError):
        check_bitcoin(BIP340, w.pk, never)  # a 33-byte key is not an x-only output key
