"""Bitcoin: addresses, spends, BIP143 / BIP341 sighashes, witnesses and PSBTs (tmpc.chains.bitcoin).

Independent checks used here: the BIPs' own vectors (BIP173/BIP350 addresses, BIP341 wallet
vectors, BIP143's native P2WPKH example), embit for parsing what tmpc serialises and for
making PSBTs from outside, tmpc's older address helpers (a second bech32 implementation), and
coincurve (libsecp256k1) for every signature. Acceptance by Bitcoin Core's consensus code is in
tests/test_bitcoin_kernel.py.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import coincurve
import pytest
from embit import bech32 as embit_bech32
from embit.ec import PrivateKey as EmbitPrivateKey
from embit.psbt import PSBT
from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.vectors import load_json
from tmpc import schemes
from tmpc.chains import bitcoin as btc
from tmpc.chains.addresses import hash160, p2wpkh_address
from tmpc.errors import CryptoError, DecodeError, ParameterError
from tmpc.group import SECP256K1
from tmpc.primitives.ecdsa_format import compact, der_decode_strict
from tmpc.protocols.taproot import taproot_address

N = SECP256K1.order
ECDSA = "ecdsa-secp256k1"
BIP340 = "schnorr-bip340"
NETWORKS = ("mainnet", "testnet", "signet", "regtest")
BIP341 = load_json("bip341/wallet-test-vectors.json")
KEYPATH = BIP341["keyPathSpending"][0]
G33 = bytes.fromhex("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")


class Wallet:
    """A 3-of-5 wallet made by tmpc's DKG; ``signer()`` signs with parties 1..3."""

    def __init__(self, scheme: str) -> None:
        self.scheme = scheme
        self.record, self.shares = schemes.keygen(scheme, 3, 5)
        self.pk: bytes = self.record.public_key
        self.spk = btc.wallet_script_pubkey(scheme, self.pk)
        self.calls = 0

    def signer(self) -> Callable[[bytes], bytes]:
        def sign(digest: bytes) -> bytes:
            self.calls += 1
            return schemes.sign(self.record, self.shares[:3], digest)

        return sign

    def address(self, network: str = "regtest") -> str:
        return btc.wallet_address(self.scheme, self.pk, network)


@pytest.fixture(scope="module")
def ecdsa_wallet() -> Wallet:
    return Wallet(ECDSA)


@pytest.fixture(scope="module")
def bip340_wallet() -> Wallet:
    return Wallet(BIP340)


def single_key_ecdsa_signer(secret: bytes) -> Callable[[bytes], bytes]:
    """An ordinary one-key ECDSA signer (libsecp256k1, low-s), for negative tests."""
    key = coincurve.PrivateKey(secret)

    def sign(digest: bytes) -> bytes:
        r, s = der_decode_strict(key.sign(digest, hasher=None))
        return compact(r, s)

    return sign


def txid_hex(n: int) -> str:
    return bytes([n]).hex() * 32


def utxos_for(w: Wallet, amounts: list[int]) -> list[btc.Utxo]:
    return [btc.Utxo(txid_hex(i + 1), i, a, w.spk) for i, a in enumerate(amounts)]


PAYEE = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"  # HASH160(G) on regtest
PAYEE_SPK = bytes.fromhex("0014751e76e8199196d454941c45d1b3a323f1433bd6")


# --------------------------------------------------------------------------------------------
# Addresses
# --------------------------------------------------------------------------------------------


def test_payee_constant_is_hash160_of_g() -> None:
    assert btc.address_to_script_pubkey(PAYEE, "regtest") == PAYEE_SPK
    assert hash160(G33) == PAYEE_SPK[2:]


@pytest.mark.parametrize(
    ("network", "expected"),
    [
        # BIP173 "Examples": the P2WPKH address of key 0279BE66...1798 on mainnet and testnet.
        ("mainnet", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"),
        ("testnet", "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx"),
        ("signet", "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx"),
    ],
)
def test_bip173_p2wpkh_example(network: str, expected: str) -> None:
    assert btc.wallet_address(ECDSA, G33, network) == expected
    assert btc.address_to_script_pubkey(expected, network) == PAYEE_SPK


# BIP350 "Test vectors for v0-v16 native segregated witness addresses" (valid ones); the v0
# entries are BIP173's.
BIP350_VALID = [
    ("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", "0014751e76e8199196d454941c45d1b3a323f1433bd6"),
    (
        "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
        "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262",
    ),
    (
        "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
        "5128751e76e8199196d454941c45d1b3a323f1433bd6751e76e8199196d454941c45d1b3a323f1433bd6",
    ),
    ("BC1SW50QGDZ25J", "6002751e"),
    ("bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs", "5210751e76e8199196d454941c45d1b3a323"),
    (
        "tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy",
        "0020000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
    ),
    (
        "tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c",
        "5120000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
    ),
    (
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
        "512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
    ),
]

# BIP350's invalid list, plus BIP173's invalid list, plus BIP173's *valid* v1+ examples, which
# use the bech32 checksum and are invalid since BIP350.
INVALID_ADDRESSES = [
    "tc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq5zuyut",
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd",
    "tb1z0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqglt7rf",
    "BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL",
    "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh",
    "tb1q0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq24jc47",
    "bc1p38j9r5y49hruaue7wxjce0updqjuyyx0kh56v8s25huc6995vvpql3jow4",
    "BC130XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ7ZWS8R",
    "bc1pw5dgrnzv",
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v8n0nx0muaewav253zgeav",
    "BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P",
    "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq47Zagq",
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v07qwwzcrf",
    "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vpggkg4j",
    "bc1gmk9yu",
    # BIP173 invalid
    "tc1qw508d6qejxtdg4y5r3zarvary0c5xw7kg3g4ty",
    "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5",
    "BC13W508D6QEJXTDG4Y5R3ZARVARY0C5XW7KN40WF2",
    "bc1rw5uspcuh",
    "bc10w508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kw5rljs90",
    "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sL5k7",
    "bc1zw508d6qejxtdg4y5r3zarvaryvqyzf3du",
    "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3pjxtptv",
    # BIP173's v1+ examples (bech32 checksum): invalid under BIP350
    "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7k7grplx",
    "BC1SW50QA3JX3S",
    "bc1zw508d6qejxtdg4y5r3zarvaryvg6kdaj",
    # legacy base58 (P2PKH of G), not a segwit address
    "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH",
    "",
]


def network_of(address: str) -> str:
    return "mainnet" if address.lower().startswith("bc1") else "testnet"


@pytest.mark.parametrize(
    ("address", "spk_hex"), BIP350_VALID, ids=[a[:14] for a, _ in BIP350_VALID]
)
def test_bip350_valid_addresses(address: str, spk_hex: str) -> None:
    network = network_of(address)
    spk = btc.address_to_script_pubkey(address, network)
    assert spk.hex() == spk_hex
    assert btc.script_pubkey_to_address(spk, network) == address.lower()


@pytest.mark.parametrize("address", INVALID_ADDRESSES, ids=range(len(INVALID_ADDRESSES)))
def test_invalid_addresses_rejected(address: str) -> None:
    for network in ("mainnet", "testnet"):
        with pytest.raises(DecodeError):
            btc.address_to_script_pubkey(address, network)


def test_address_network_checked() -> None:
    regtest = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
    assert btc.address_to_script_pubkey(regtest, "regtest") == PAYEE_SPK
    for network in ("mainnet", "testnet", "signet"):
        with pytest.raises(DecodeError, match="another network"):
            btc.address_to_script_pubkey(regtest, network)
    with pytest.raises(ParameterError, match="unknown network"):
        btc.address_to_script_pubkey(regtest, "bitcoin")
    with pytest.raises(ParameterError, match="unknown network"):
        btc.wallet_address(ECDSA, G33, "testnet3")
    with pytest.raises(DecodeError):
        btc.address_to_script_pubkey(b"bc1q...", "mainnet")  # type: ignore[arg-type]


SPK_CASES = BIP341["scriptPubKey"]


@pytest.mark.parametrize("case", SPK_CASES, ids=range(len(SPK_CASES)))
def test_bip341_output_key_addresses(case: dict[str, Any]) -> None:
    q = bytes.fromhex(case["intermediary"]["tweakedPubkey"])
    assert btc.wallet_script_pubkey(BIP340, q).hex() == case["expected"]["scriptPubKey"]
    assert btc.wallet_address(BIP340, q, "mainnet") == case["expected"]["bip350Address"]
    assert (
        btc.address_to_script_pubkey(case["expected"]["bip350Address"]).hex()
        == (case["expected"]["scriptPubKey"])
    )


@pytest.mark.parametrize("network", NETWORKS)
def test_wallet_addresses_match_second_implementation(
    network: str, ecdsa_wallet: Wallet, bip340_wallet: Wallet
) -> None:
    # tmpc's older helpers use the ``bech32`` package plus their own BIP350 constant.
    a = btc.wallet_address(ECDSA, ecdsa_wallet.pk, network)
    assert a == p2wpkh_address(ecdsa_wallet.pk, network)
    t = btc.wallet_address(BIP340, bip340_wallet.pk, network)
    assert t == taproot_address(bip340_wallet.pk, network)
    prefix = {"mainnet": "bc1", "testnet": "tb1", "signet": "tb1", "regtest": "bcrt1"}[network]
    assert a.startswith(prefix + "q") and len(a) == len(prefix) + 39
    assert t.startswith(prefix + "p") and len(t) == len(prefix) + 59
    assert btc.address_to_script_pubkey(a, network) == ecdsa_wallet.spk
    assert btc.address_to_script_pubkey(t, network) == b"\x51\x20" + bip340_wallet.pk


def off_curve_x() -> bytes:
    for x in range(1, 100):
        candidate = x.to_bytes(32, "big")
        try:
            coincurve.PublicKeyXOnly(candidate)
        except ValueError:
            return candidate
    raise AssertionError("no off-curve x below 100")


def test_bad_wallet_keys_rejected() -> None:
    uncompressed = coincurve.PublicKey(G33).format(False)
    for bad in (G33[1:], uncompressed, b"\x02" + b"\x00" * 32, b"\x04" + G33[1:], "02" * 33):
        with pytest.raises(DecodeError):
            btc.wallet_address(ECDSA, bad)  # type: ignore[arg-type]
    for bad in (G33, off_curve_x(), b"\x00" * 31):
        with pytest.raises(DecodeError):
            btc.wallet_address(BIP340, bad)
    with pytest.raises(ParameterError, match="not 'ed25519'"):
        btc.wallet_address("ed25519", G33[1:])


def test_dust_thresholds() -> None:
    # Bitcoin Core's well-known values at the default dust relay fee (3000 sat/kvB).
    assert btc.dust_threshold(PAYEE_SPK) == 294
    assert btc.dust_threshold(b"\x51\x20" + G33[1:]) == 330
    assert btc.dust_threshold(b"\x00\x20" + bytes(32)) == 330
    assert btc.dust_threshold(b"\x76\xa9\x14" + bytes(20) + b"\x88\xac") == 546
    assert btc.dust_threshold(b"\xa9\x14" + bytes(20) + b"\x87") == 540


# --------------------------------------------------------------------------------------------
# build_spend
# --------------------------------------------------------------------------------------------


def test_build_spend_with_change(ecdsa_wallet: Wallet) -> None:
    utxos = utxos_for(ecdsa_wallet, [70_000, 50_000])
    spend = btc.build_spend(
        utxos, [(PAYEE, 100_000)], 1_000, ecdsa_wallet.address(), network="regtest"
    )
    assert spend.outputs[0] == btc.TxOutput(100_000, PAYEE_SPK)
    assert spend.change_index == 1
    assert spend.outputs[1] == btc.TxOutput(19_000, ecdsa_wallet.spk)
    assert spend.fee_sat == 1_000
    assert spend.input_amount_sat == 120_000 == spend.output_amount_sat + spend.fee_sat
    # embit reads back exactly what was built.
    tx = Transaction.parse(spend.to_bytes())
    assert tx.version == 2 and tx.locktime == 0
    assert [(i.txid.hex(), i.vout, i.sequence) for i in tx.vin] == [
        (txid_hex(1), 0, 0xFFFFFFFD),
        (txid_hex(2), 1, 0xFFFFFFFD),
    ]
    assert [(o.value, o.script_pubkey.data) for o in tx.vout] == [
        (100_000, PAYEE_SPK),
        (19_000, ecdsa_wallet.spk),
    ]
    assert tx.txid().hex() == spend.txid


def test_build_spend_change_at_dust_boundary(ecdsa_wallet: Wallet) -> None:
    utxos = utxos_for(ecdsa_wallet, [100_000])
    change = ecdsa_wallet.address()
    at_dust = btc.build_spend(utxos, [(PAYEE, 98_706)], 1_000, change, network="regtest")
    assert at_dust.change_index == 1 and at_dust.outputs[1].amount_sat == 294
    below = btc.build_spend(utxos, [(PAYEE, 98_707)], 1_000, change, network="regtest")
    assert below.change_index is None and len(below.outputs) == 1
    assert below.fee_sat == 1_293  # the dust change went to the fee
    exact = btc.build_spend(utxos, [(PAYEE, 99_000)], 1_000, network="regtest")
    assert exact.fee_sat == 1_000 and exact.change_index is None


def test_build_spend_negative(ecdsa_wallet: Wallet) -> None:
    u = utxos_for(ecdsa_wallet, [100_000])
    change = ecdsa_wallet.address()

    def build(utxos: Any = u, outputs: Any = ((PAYEE, 50_000),), fee: Any = 1_000, **kw: Any):
        return btc.build_spend(utxos, list(outputs), fee, change, network="regtest", **kw)

    cases: list[tuple[Callable[[], Any], str]] = [
        (lambda: build(utxos=[]), "at least one input"),
        (lambda: build(utxos=[u[0], u[0]]), "outpoint is spent twice"),
        (
            lambda: build(
                utxos=[btc.Utxo(txid_hex(9), 0, 10**6, b"\x76\xa9\x14" + bytes(20) + b"\x88\xac")]
            ),
            "only P2WPKH and P2TR",
        ),
        (lambda: build(utxos=["not a utxo"]), "not a Utxo"),
        (lambda: build(outputs=[(PAYEE, 293)]), "dust"),
        (lambda: build(outputs=[(PAYEE, -1)]), "between"),
        (lambda: build(outputs=[(PAYEE, 1.5)]), "integer"),
        (lambda: build(outputs=[(PAYEE, True)]), "integer"),
        (lambda: build(outputs=[(PAYEE, btc.MAX_MONEY + 1)]), "between"),
        (lambda: build(outputs=[PAYEE]), "pair"),
        (lambda: build(fee=-1), "the fee"),
        (lambda: build(fee=10.0), "the fee"),
        (lambda: build(outputs=[(PAYEE, 99_001)]), "do not cover"),
        (lambda: build(outputs=[(PAYEE, 50_000)] * 2, fee=1), "do not cover"),
        (
            lambda: build(
                utxos=[btc.Utxo(txid_hex(i), 0, btc.MAX_MONEY, ecdsa_wallet.spk) for i in (1, 2)]
            ),
            "sum of the inputs",
        ),
        (
            lambda: btc.build_spend(u, [(PAYEE, 50_000)], 1_000, network="regtest"),
            "give a change address",
        ),
        # BIP350 v2 address (valid) and v1 with a 40-byte program: anyone could spend them.
        (
            lambda: btc.build_spend(
                u,
                [("bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs", 50_000)],
                1_000,
                "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
            ),
            "not defined by any soft fork",
        ),
        (
            lambda: build(outputs=[(embit_bech32.encode("bcrt", 1, off_curve_x()), 50_000)]),
            "not on the curve",
        ),
        (lambda: btc.build_spend(u, [], 1_000, network="regtest"), "give a change address"),
        (lambda: build(outputs=[], fee=99_800), "no output"),
    ]
    for fn, message in cases:
        with pytest.raises(ParameterError, match=message):
            fn()
    with pytest.raises(DecodeError, match="another network"):
        btc.build_spend(
            u,
            [("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", 50_000)],
            1,
            change,
            network="regtest",
        )
    with pytest.raises(ParameterError, match="unknown network"):
        btc.build_spend(u, [(PAYEE, 50_000)], 1_000, change, network="main")


def test_utxo_validation(ecdsa_wallet: Wallet) -> None:
    with pytest.raises(DecodeError):
        btc.Utxo("ab" * 31, 0, 1, ecdsa_wallet.spk)
    with pytest.raises(DecodeError):
        btc.Utxo("zz" * 32, 0, 1, ecdsa_wallet.spk)
    with pytest.raises(DecodeError):
        btc.Utxo("ab" * 32, 0, 1, "0014")  # type: ignore[arg-type]
    for vout in (-1, 2**32, True):
        with pytest.raises(ParameterError):
            btc.Utxo("ab" * 32, vout, 1, ecdsa_wallet.spk)
    for amount in (0, -5, btc.MAX_MONEY + 1, 1.0):
        with pytest.raises(ParameterError):
            btc.Utxo("ab" * 32, 0, amount, ecdsa_wallet.spk)  # type: ignore[arg-type]
    assert btc.Utxo("AB" * 32, 0, 1, ecdsa_wallet.spk).txid == "ab" * 32


P2WPKH_SPK = b"\x00\x14" + bytes(range(20))


@settings(max_examples=60, deadline=None)
@given(
    inputs=st.lists(st.integers(1, 3 * 10**8), min_size=1, max_size=3),
    outputs=st.lists(st.integers(0, 3 * 10**8), max_size=3),
    fee=st.integers(0, 10**6),
)
def test_build_spend_property(inputs: list[int], outputs: list[int], fee: int) -> None:
    utxos = [btc.Utxo(txid_hex(i + 1), 0, a, P2WPKH_SPK) for i, a in enumerate(inputs)]
    try:
        spend = btc.build_spend(utxos, [(PAYEE, a) for a in outputs], fee, PAYEE, network="regtest")
    except ParameterError:
        change = sum(inputs) - sum(outputs) - fee
        assert change < 0 or any(a < 294 for a in outputs) or (not outputs and change < 294)
        return
    # Value is conserved; the fee is at least what was asked, more only by dust change.
    assert spend.input_amount_sat == spend.output_amount_sat + spend.fee_sat
    assert fee <= spend.fee_sat < fee + 294
    assert all(o.amount_sat >= 294 for o in spend.outputs)
    assert [o.amount_sat for o in spend.outputs[: len(outputs)]] == outputs


# --------------------------------------------------------------------------------------------
# Sighashes against the BIPs' vectors
# --------------------------------------------------------------------------------------------

# BIP143 "Native P2WPKH" example (https://github.com/bitcoin/bips/blob/master/bip-0143.mediawiki):
# the unsigned transaction, the second input's P2WPKH scriptPubKey (6 BTC), its keys, the
# sigHash with nHashType 1 and the signature the BIP lists.
BIP143_UNSIGNED = bytes.fromhex(
    "0100000002fff7f7881a8099afa6940d42d1e7f6362bec38171ea3edf433541db4e4ad969f0000000000eef"
    "fffffef51e1b804cc89d182d279655c3aa89e815b1b309fe287d9b2b55d57b90ec68a0100000000ffffffff"
    "02202cb206000000001976a9148280b37df378db99f66f85c95a783a76ac7a6d5988ac9093510d0000000019"
    "76a9143bde42dbee7e4dbe6a21b2d50ce2f0167faa815988ac11000000"
)
BIP143_SPK = bytes.fromhex("00141d0f172a0ecb48aee1be1f2687d2963ae33f71a1")
BIP143_AMOUNT = 600_000_000
BIP143_PRIVKEY = bytes.fromhex("619c335025c7f4012e556c2a58b2506e30b8511b53ade95ea316fd8c3286feb9")
BIP143_PUBKEY = bytes.fromhex("025476c2e83188368da1ff3e292e7acafcdb3566bb0ad253f62fc70f07aeee6357")
BIP143_SIGHASH = "c37af31116d1b27caf68aae9e3ac82f1477929014d5b917657d0eb49478cb670"
BIP143_SIGNATURE = bytes.fromhex(
    "304402203609e17b84f6a7d30c80bfa610b5b4542f32a8a0d5447a12fb1366d7f01cc44a0220573a954c45"
    "18331561406f90300e8f3358f51928d43c212a8caed02de67eebee"
)


def test_bip143_native_p2wpkh_vector() -> None:
    digest = btc.bip143_sighash(BIP143_UNSIGNED, 1, BIP143_SPK, BIP143_AMOUNT, btc.SIGHASH_ALL)
    assert digest.hex() == BIP143_SIGHASH
    assert hash160(BIP143_PUBKEY) == BIP143_SPK[2:]
    # The BIP's signature verifies over our digest, and libsecp256k1's RFC 6979 signature with
    # the BIP's key is that very signature.
    assert coincurve.PublicKey(BIP143_PUBKEY).verify(BIP143_SIGNATURE, digest, hasher=None)
    assert coincurve.PrivateKey(BIP143_PRIVKEY).sign(digest, hasher=None) == BIP143_SIGNATURE


def test_bip143_sighash_negative() -> None:
    with pytest.raises(ParameterError, match="only SIGHASH_ALL"):
        btc.bip143_sighash(BIP143_UNSIGNED, 1, BIP143_SPK, BIP143_AMOUNT, 0x81)
    with pytest.raises(ParameterError, match="only SIGHASH_ALL"):
        btc.bip143_sighash(BIP143_UNSIGNED, 1, BIP143_SPK, BIP143_AMOUNT, 0x00)
    with pytest.raises(ParameterError, match="index"):
        btc.bip143_sighash(BIP143_UNSIGNED, 2, BIP143_SPK, BIP143_AMOUNT)
    with pytest.raises(ParameterError, match="P2WPKH"):
        btc.bip143_sighash(BIP143_UNSIGNED, 1, b"\x51\x20" + bytes(32), BIP143_AMOUNT)
    with pytest.raises(ParameterError):
        btc.bip143_sighash(BIP143_UNSIGNED, 1, BIP143_SPK, -1)
    with pytest.raises(DecodeError):
        btc.bip143_sighash(BIP143_UNSIGNED[:-1], 1, BIP143_SPK, BIP143_AMOUNT)
    with pytest.raises(DecodeError):
        btc.bip143_sighash(BIP143_UNSIGNED + b"\x00", 1, BIP143_SPK, BIP143_AMOUNT)


KP_TX = bytes.fromhex(KEYPATH["given"]["rawUnsignedTx"])
KP_SPENT = [
    (u["amountSats"], bytes.fromhex(u["scriptPubKey"])) for u in KEYPATH["given"]["utxosSpent"]
]
KP_INPUTS = KEYPATH["inputSpending"]


@pytest.mark.parametrize(
    "case",
    KP_INPUTS,
    ids=[f"in{c['given']['txinIndex']}-ht{c['given']['hashType']}" for c in KP_INPUTS],
)
def test_bip341_key_path_sighash_vectors(case: dict[str, Any]) -> None:
    index, hash_type = case["given"]["txinIndex"], case["given"]["hashType"]
    expected = bytes.fromhex(case["intermediary"]["sigHash"])
    if hash_type in (0x00, 0x01, 0x02):
        digest = btc.bip341_sighash(KP_TX, index, KP_SPENT, hash_type)
        assert digest == expected
        # The vector's own witness signature verifies over our digest (libsecp256k1).
        sig = bytes.fromhex(case["expected"]["witness"][0])
        q = KP_SPENT[index][1][2:]
        assert coincurve.PublicKeyXOnly(q).verify(sig[:64], digest)
        assert (len(sig) == 64) == (hash_type == 0)
    else:
        # SIGHASH_SINGLE / ANYONECANPAY: embit 0.8.0 computes another value (this test fails,
        # and the support can be widened, once embit is fixed); tmpc refuses these types.
        tx = Transaction.parse(KP_TX)
        scripts = [Script(spk) for _, spk in KP_SPENT]
        embit_value = tx.sighash_taproot(
            index, scripts, [a for a, _ in KP_SPENT], sighash=hash_type
        )
        assert embit_value != expected
        with pytest.raises(ParameterError, match="not supported"):
            btc.bip341_sighash(KP_TX, index, KP_SPENT, hash_type)


def test_bip341_sighash_negative() -> None:
    with pytest.raises(ParameterError, match="every input"):
        btc.bip341_sighash(KP_TX, 0, KP_SPENT[:-1])
    with pytest.raises(ParameterError, match="P2TR"):
        btc.bip341_sighash(KP_TX, 2, KP_SPENT)  # input 2 spends a P2PKH output
    with pytest.raises(ParameterError, match="not a BIP341 hash type"):
        btc.bip341_sighash(KP_TX, 0, KP_SPENT, 0x04)
    with pytest.raises(ParameterError, match="not a BIP341 hash type"):
        btc.bip341_sighash(KP_TX, 0, KP_SPENT, 0x80)
    with pytest.raises(ParameterError, match="index"):
        btc.bip341_sighash(KP_TX, len(KP_SPENT), KP_SPENT)
    bad_amount = [(btc.MAX_MONEY + 1, KP_SPENT[0][1]), *KP_SPENT[1:]]
    with pytest.raises(ParameterError, match="amount"):
        btc.bip341_sighash(KP_TX, 0, bad_amount)
    # The digest commits to every spent amount and script: change one, the digest changes.
    base = btc.bip341_sighash(KP_TX, 0, KP_SPENT)
    other = [KP_SPENT[0], (KP_SPENT[1][0] + 1, KP_SPENT[1][1]), *KP_SPENT[2:]]
    assert btc.bip341_sighash(KP_TX, 0, other) != base


# --------------------------------------------------------------------------------------------
# Signing with real 3-of-5 wallets
# --------------------------------------------------------------------------------------------


def check_p2wpkh_witness(raw: bytes, spend: btc.UnsignedSpend, pk: bytes) -> None:
    tx = Transaction.parse(raw)
    assert tx.txid().hex() == spend.txid
    for i in range(len(spend.inputs)):
        sig, key = tx.vin[i].witness.items
        assert key == pk and sig[-1] == btc.SIGHASH_ALL
        r, s = der_decode_strict(sig[:-1])
        assert 0 < r < N and 0 < s <= N // 2  # low-s (BIP146)
        digest = btc.bip143_sighash(
            raw, i, spend.inputs[i].script_pubkey, spend.inputs[i].amount_sat
        )
        assert coincurve.PublicKey(pk).verify(sig[:-1], digest, hasher=None)


def test_sign_spend_p2wpkh_3_of_5(ecdsa_wallet: Wallet) -> None:
    utxos = utxos_for(ecdsa_wallet, [70_000, 50_000])
    spend = btc.build_spend(
        utxos, [(PAYEE, 100_000)], 1_000, ecdsa_wallet.address(), network="regtest"
    )
    before = ecdsa_wallet.calls
    signed = btc.sign_spend(spend, ecdsa_wallet.signer(), ecdsa_wallet.pk, ECDSA)
    assert ecdsa_wallet.calls - before == 2  # one signature per input
    assert signed.txid == spend.txid
    check_p2wpkh_witness(signed.raw, spend, ecdsa_wallet.pk)


@pytest.mark.parametrize("hash_type", [None, btc.SIGHASH_DEFAULT, btc.SIGHASH_ALL])
def test_sign_spend_p2tr_3_of_5(bip340_wallet: Wallet, hash_type: int | None) -> None:
    utxos = utxos_for(bip340_wallet, [70_000, 50_000])
    spend = btc.build_spend(
        utxos, [(PAYEE, 100_000)], 1_000, bip340_wallet.address(), network="regtest"
    )
    signed = btc.sign_spend(spend, bip340_wallet.signer(), bip340_wallet.pk, BIP340, hash_type)
    tx = Transaction.parse(signed.raw)
    assert tx.txid().hex() == signed.txid == spend.txid
    effective = btc.SIGHASH_DEFAULT if hash_type is None else hash_type
    for i in range(2):
        (sig,) = tx.vin[i].witness.items
        if effective == btc.SIGHASH_DEFAULT:
            assert len(sig) == 64
        else:
            assert len(sig) == 65 and sig[64] == 0x01
        digest = btc.bip341_sighash(signed.raw, i, spend.spent_outputs, effective)
        assert digest == btc.spend_sighash(spend, i, hash_type)
        assert coincurve.PublicKeyXOnly(bip340_wallet.pk).verify(sig[:64], digest)


def test_sign_spend_negative(ecdsa_wallet: Wallet, bip340_wallet: Wallet) -> None:
    utxos = utxos_for(ecdsa_wallet, [100_000])
    spend = btc.build_spend(utxos, [(PAYEE, 99_000)], 1_000, network="regtest")
    other = single_key_ecdsa_signer(b"\x01" * 32)
    calls: list[bytes] = []

    def counting(sig_fn: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
        def f(d: bytes) -> bytes:
            calls.append(d)
            return sig_fn(d)

        return f

    # Not the wallet's input: refused before the cluster is asked.
    with pytest.raises(ParameterError, match="does not spend this wallet"):
        btc.sign_spend(spend, counting(other), bip340_wallet.pk, BIP340)
    mixed = btc.build_spend(
        [utxos[0], btc.Utxo(txid_hex(7), 0, 5_000, bip340_wallet.spk)],
        [(PAYEE, 104_000)],
        1_000,
        network="regtest",
    )
    with pytest.raises(ParameterError, match="input 1 does not spend"):
        btc.sign_spend(mixed, counting(other), ecdsa_wallet.pk, ECDSA)
    for bad_type in (btc.SIGHASH_DEFAULT, 0x02, 0x81):
        with pytest.raises(ParameterError, match="sighash"):
            btc.sign_spend(spend, counting(other), ecdsa_wallet.pk, ECDSA, bad_type)
    assert calls == []

    # A signer answering with someone else's signature: it does not verify.
    with pytest.raises(CryptoError):
        btc.sign_spend(spend, other, ecdsa_wallet.pk, ECDSA)

    # The cluster's own signature with s negated (high-s): refused, nodes would not relay it.
    good = ecdsa_wallet.signer()

    def high_s(d: bytes) -> bytes:
        sig = good(d)
        r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
        assert s <= N // 2
        return r.to_bytes(32, "big") + (N - s).to_bytes(32, "big")

    with pytest.raises(ParameterError, match="high-s"):
        btc.sign_spend(spend, high_s, ecdsa_wallet.pk, ECDSA)
    with pytest.raises(ParameterError, match="64-byte"):
        btc.sign_spend(spend, lambda d: good(d) + b"\x01", ecdsa_wallet.pk, ECDSA)

    def flipped(d: bytes) -> bytes:
        sig = bytearray(good(d))
        sig[10] ^= 1
        return bytes(sig)

    with pytest.raises(CryptoError):
        btc.sign_spend(spend, flipped, ecdsa_wallet.pk, ECDSA)

    # Schnorr: a signature by the internal (untweaked) key must not pass for the output key.
    t_spend = btc.build_spend(
        utxos_for(bip340_wallet, [100_000]), [(PAYEE, 99_000)], 1_000, network="regtest"
    )
    with pytest.raises(CryptoError):
        btc.sign_spend(t_spend, lambda d: bytes(64), bip340_wallet.pk, BIP340)
    with pytest.raises(ParameterError, match="sighash"):
        btc.sign_spend(t_spend, bip340_wallet.signer(), bip340_wallet.pk, BIP340, 0x02)
    with pytest.raises(DecodeError):
        btc.sign_spend(spend, good, ecdsa_wallet.pk[1:], ECDSA)
    with pytest.raises(ParameterError, match="UnsignedSpend"):
        btc.sign_spend("spend", good, ecdsa_wallet.pk, ECDSA)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# PSBT (BIP174 / BIP371)
# --------------------------------------------------------------------------------------------


def test_spend_to_psbt_parsed_by_embit(ecdsa_wallet: Wallet, bip340_wallet: Wallet) -> None:
    utxos = [
        utxos_for(ecdsa_wallet, [60_000])[0],
        btc.Utxo(txid_hex(9), 3, 40_000, bip340_wallet.spk),
    ]
    spend = btc.build_spend(
        utxos, [(PAYEE, 90_000)], 500, bip340_wallet.address(), network="regtest"
    )
    b64 = btc.spend_to_psbt(spend)
    raw = base64.b64decode(b64)
    assert raw.startswith(b"psbt\xff")
    psbt = PSBT.parse(raw)
    assert psbt.tx.serialize() == spend.to_bytes()
    assert [(i.witness_utxo.value, i.witness_utxo.script_pubkey.data) for i in psbt.inputs] == [
        (60_000, ecdsa_wallet.spk),
        (40_000, bip340_wallet.spk),
    ]
    assert psbt.fee() == spend.fee_sat == 500
    assert psbt.serialize() == raw  # embit writes back the same bytes
    # Each scope has its own unknown-field map (embit's constructors share a default dict).
    assert len({id(i.unknown) for i in psbt.inputs}) == 2


def test_psbt_sign_and_finalize_two_wallets(ecdsa_wallet: Wallet, bip340_wallet: Wallet) -> None:
    utxos = [
        utxos_for(ecdsa_wallet, [60_000])[0],
        btc.Utxo(txid_hex(9), 3, 40_000, bip340_wallet.spk),
    ]
    spend = btc.build_spend(
        utxos, [(PAYEE, 90_000)], 500, bip340_wallet.address(), network="regtest"
    )
    b64 = btc.spend_to_psbt(spend)
    # CVE-2020-14199: a P2WPKH input's amount is unproven without the previous transaction.
    with pytest.raises(ParameterError, match="NON_WITNESS_UTXO"):
        btc.sign_psbt(b64, ecdsa_wallet.signer(), ecdsa_wallet.pk, ECDSA)
    signed_ecdsa = btc.sign_psbt(
        b64, ecdsa_wallet.signer(), ecdsa_wallet.pk, ECDSA, trust_witness_utxo=True
    )
    with pytest.raises(ParameterError, match="input 1 has no Taproot key-path signature"):
        btc.finalize_psbt(signed_ecdsa)
    b64 = signed_ecdsa
    b64 = btc.sign_psbt(b64, bip340_wallet.signer(), bip340_wallet.pk, BIP340)
    psbt = PSBT.from_base64(b64)
    # BIP174 PSBT_IN_PARTIAL_SIG for the P2WPKH input; BIP371 PSBT_IN_TAP_KEY_SIG (0x13) for
    # the P2TR input, which embit keeps as an unknown field and writes back unchanged.
    ((pub, partial),) = psbt.inputs[0].partial_sigs.items()
    assert pub.sec() == ecdsa_wallet.pk and partial[-1] == 0x01
    assert psbt.inputs[1].partial_sigs == {}
    key_sig = psbt.inputs[1].unknown[b"\x13"]
    assert len(key_sig) == 64
    assert psbt.serialize() == base64.b64decode(b64)
    raw = btc.finalize_psbt(b64)
    tx = Transaction.parse(raw)
    assert tx.txid().hex() == spend.txid
    assert tx.vin[0].witness.items == [partial, ecdsa_wallet.pk]
    assert tx.vin[1].witness.items == [key_sig]
    d0 = btc.bip143_sighash(raw, 0, ecdsa_wallet.spk, 60_000)
    d1 = btc.bip341_sighash(raw, 1, spend.spent_outputs)
    assert coincurve.PublicKey(ecdsa_wallet.pk).verify(partial[:-1], d0, hasher=None)
    assert coincurve.PublicKeyXOnly(bip340_wallet.pk).verify(key_sig, d1)


def embit_made_psbt(
    bip340_wallet: Wallet, sighash_type: int | None
) -> tuple[str, EmbitPrivateKey, list[tuple[int, bytes]]]:
    """A PSBT made with embit alone: input 0 is an embit key's P2WPKH, input 1 the wallet's
    P2TR; embit signs its own input."""
    key = EmbitPrivateKey(b"\x07" * 32)
    embit_spk = b"\x00\x14" + hash160(key.sec())
    spent = [(30_000, embit_spk), (25_000, bip340_wallet.spk)]
    tx = Transaction(
        version=2,
        vin=[
            TransactionInput(bytes.fromhex(txid_hex(0x31)), 1),
            TransactionInput(bytes.fromhex(txid_hex(0x32)), 0),
        ],
        vout=[TransactionOutput(54_000, Script(PAYEE_SPK))],
        locktime=0,
    )
    psbt = PSBT(tx, unknown={})
    for inp, (amount, spk) in zip(psbt.inputs, spent, strict=True):
        inp.unknown = {}
        inp.witness_utxo = TransactionOutput(amount, Script(spk))
    if sighash_type is not None:
        psbt.inputs[1].sighash_type = sighash_type
    assert psbt.sign_with(key) == 1  # embit signs only its own input
    return psbt.to_base64(), key, spent


@pytest.mark.parametrize("sighash_type", [None, btc.SIGHASH_DEFAULT, btc.SIGHASH_ALL])
def test_psbt_from_embit_round_trip(bip340_wallet: Wallet, sighash_type: int | None) -> None:
    b64, key, spent = embit_made_psbt(bip340_wallet, sighash_type)
    signed = btc.sign_psbt(b64, bip340_wallet.signer(), bip340_wallet.pk, BIP340)
    again = PSBT.from_base64(signed)  # embit reads the result back
    assert again.inputs[0].partial_sigs == PSBT.from_base64(b64).inputs[0].partial_sigs
    key_sig = again.inputs[1].unknown[b"\x13"]
    assert len(key_sig) == (65 if sighash_type == btc.SIGHASH_ALL else 64)
    raw = btc.finalize_psbt(signed)
    tx = Transaction.parse(raw)
    effective = btc.SIGHASH_DEFAULT if sighash_type is None else sighash_type
    d1 = btc.bip341_sighash(raw, 1, spent, effective)
    assert coincurve.PublicKeyXOnly(bip340_wallet.pk).verify(tx.vin[1].witness.items[0][:64], d1)
    embit_sig, embit_pub = tx.vin[0].witness.items
    assert embit_pub == key.sec()
    d0 = btc.bip143_sighash(raw, 0, spent[0][1], spent[0][0])
    assert coincurve.PublicKey(embit_pub).verify(embit_sig[:-1], d0, hasher=None)


def test_psbt_negative(ecdsa_wallet: Wallet, bip340_wallet: Wallet) -> None:
    b64, _key, _spent = embit_made_psbt(bip340_wallet, None)
    never: Callable[[bytes], bytes] = lambda d: pytest.fail("the cluster must not be asked")  # noqa: E731
    with pytest.raises(ParameterError, match="no input of this PSBT"):
        btc.sign_psbt(b64, never, ecdsa_wallet.pk, ECDSA)
    for bad in ("not base64!", base64.b64encode(b"psbt\xff\x00garbage").decode(), "", 5):
        with pytest.raises(DecodeError):
            btc.sign_psbt(bad, never, bip340_wallet.pk, BIP340)  # type: ignore[arg-type]
        with pytest.raises(DecodeError):
            btc.finalize_psbt(bad)  # type: ignore[arg-type]

    # The PSBT asks for SIGHASH_SINGLE / NONE on the wallet's input: BIP174 says the signer
    # must fail; the cluster is never asked.
    for bad_type in (0x02, 0x03, 0x81):
        p = PSBT.from_base64(b64)
        p.inputs[1].sighash_type = bad_type
        with pytest.raises(ParameterError, match="sighash type"):
            btc.sign_psbt(p.to_base64(), never, bip340_wallet.pk, BIP340)

    # Taproot needs every input's UTXO.
    p = PSBT.from_base64(b64)
    p.inputs[0].witness_utxo = None
    with pytest.raises(ParameterError, match="every input"):
        btc.sign_psbt(p.to_base64(), never, bip340_wallet.pk, BIP340)
    with pytest.raises(ParameterError, match="no UTXO"):
        btc.finalize_psbt(p.to_base64())

    # A non-witness UTXO that is not the spent transaction.
    p = PSBT.from_base64(b64)
    p.inputs[1].non_witness_utxo = Transaction(
        version=2,
        vin=[TransactionInput(bytes(32), 0)],
        vout=[TransactionOutput(25_000, Script(bip340_wallet.spk))],
    )
    with pytest.raises(DecodeError, match="non_witness_utxo"):
        btc.sign_psbt(p.to_base64(), never, bip340_wallet.pk, BIP340)

    # Outputs above inputs.
    p = PSBT.from_base64(b64)
    p.inputs[1].witness_utxo = TransactionOutput(1_000, Script(bip340_wallet.spk))
    with pytest.raises(ParameterError, match="exceed"):
        btc.sign_psbt(p.to_base64(), never, bip340_wallet.pk, BIP340)

    signed = btc.sign_psbt(b64, bip340_wallet.signer(), bip340_wallet.pk, BIP340)

    # A flipped byte in the tap_key_sig: finalize refuses to extract.
    p = PSBT.from_base64(signed)
    sig = bytearray(p.inputs[1].unknown[b"\x13"])
    sig[5] ^= 1
    p.inputs[1].unknown = {b"\x13": bytes(sig)}
    with pytest.raises(CryptoError):
        btc.finalize_psbt(p.to_base64())

    # A malformed BIP371 field (63 bytes, or key data after 0x13).
    for key, value in ((b"\x13", bytes(63)), (b"\x13\x00", bytes(64))):
        p = PSBT.from_base64(signed)
        p.inputs[1].unknown = {key: value}
        with pytest.raises(DecodeError, match="TAP_KEY_SIG"):
            btc.finalize_psbt(p.to_base64())

    # The PSBT asks for SIGHASH_ALL but the key-path signature is DEFAULT.
    p = PSBT.from_base64(signed)
    p.inputs[1].sighash_type = btc.SIGHASH_ALL
    with pytest.raises(ParameterError, match="another sighash type"):
        btc.finalize_psbt(p.to_base64())

    # A partial signature by a key that is not the P2WPKH output's.
    p = PSBT.from_base64(signed)
    ((pub, value),) = p.inputs[0].partial_sigs.items()
    p.inputs[0].partial_sigs = {EmbitPrivateKey(b"\x08" * 32).get_public_key(): value}
    with pytest.raises(ParameterError, match="no signature by the key"):
        btc.finalize_psbt(p.to_base64())

    # The embit input's signature with a flipped byte: finalize verifies others' inputs too.
    p = PSBT.from_base64(signed)
    bad = bytearray(value)
    bad[-2] ^= 1
    p.inputs[0].partial_sigs = {pub: bytes(bad)}
    with pytest.raises(CryptoError):
        btc.finalize_psbt(p.to_base64())


def test_psbt_finalized_elsewhere_is_verified(bip340_wallet: Wallet) -> None:
    """embit signs its own P2TR key-path input straight into PSBT_IN_FINAL_SCRIPTWITNESS;
    finalize_psbt takes that witness but still verifies it."""
    from embit.script import p2tr

    key = EmbitPrivateKey(b"\x09" * 32)
    embit_spk = p2tr(key.get_public_key()).data
    spent = [(20_000, embit_spk), (25_000, bip340_wallet.spk)]
    tx = Transaction(
        version=2,
        vin=[TransactionInput(bytes([i]) * 32, 0) for i in (4, 5)],
        vout=[TransactionOutput(44_000, Script(PAYEE_SPK))],
        locktime=0,
    )
    psbt = PSBT(tx, unknown={})
    for inp, (amount, spk) in zip(psbt.inputs, spent, strict=True):
        inp.unknown = {}
        inp.witness_utxo = TransactionOutput(amount, Script(spk))
    assert psbt.sign_with(key) == 1
    assert psbt.inputs[0].final_scriptwitness is not None
    b64 = btc.sign_psbt(psbt.to_base64(), bip340_wallet.signer(), bip340_wallet.pk, BIP340)
    raw = btc.finalize_psbt(b64)
    final = Transaction.parse(raw)
    d0 = btc.bip341_sighash(raw, 0, spent)
    assert coincurve.PublicKeyXOnly(embit_spk[2:]).verify(final.vin[0].witness.items[0], d0)
    p = PSBT.from_base64(b64)
    sig = bytearray(p.inputs[0].final_scriptwitness.items[0])
    sig[0] ^= 1
    p.inputs[0].final_scriptwitness.items = [bytes(sig)]
    with pytest.raises(CryptoError):
        btc.finalize_psbt(p.to_base64())


def test_finalize_hash_type_checks(bip340_wallet: Wallet) -> None:
    b64, _key, _spent = embit_made_psbt(bip340_wallet, None)
    signed = btc.sign_psbt(b64, bip340_wallet.signer(), bip340_wallet.pk, BIP340)
    sig64 = PSBT.from_base64(signed).inputs[1].unknown[b"\x13"]
    # BIP341: a 65-byte signature with hash type 0x00 is invalid; 0x04 is no hash type.
    for bad in (sig64 + b"\x00", sig64 + b"\x04"):
        p = PSBT.from_base64(signed)
        p.inputs[1].unknown = {b"\x13": bad}
        with pytest.raises(CryptoError):
            btc.finalize_psbt(p.to_base64())
    # Valid but unsupported hash types (SINGLE / ANYONECANPAY): refused, not misjudged.
    p = PSBT.from_base64(signed)
    p.inputs[1].unknown = {b"\x13": sig64 + b"\x83"}
    with pytest.raises(ParameterError, match="does not verify"):
        btc.finalize_psbt(p.to_base64())
    p = PSBT.from_base64(signed)
    ((pub, value),) = p.inputs[0].partial_sigs.items()
    p.inputs[0].partial_sigs = {pub: value[:-1] + b"\x81"}
    with pytest.raises(ParameterError, match="does not verify"):
        btc.finalize_psbt(p.to_base64())
    # Truncated or non-DER partial signatures.
    for bad in (value[:5], b"\x31" + value[1:]):
        p = PSBT.from_base64(signed)
        p.inputs[0].partial_sigs = {pub: bad}
        with pytest.raises(CryptoError):
            btc.finalize_psbt(p.to_base64())


def test_unsigned_spend_invariants(ecdsa_wallet: Wallet) -> None:
    (u,) = utxos_for(ecdsa_wallet, [10_000])
    out = btc.TxOutput(9_000, PAYEE_SPK)
    spend = btc.UnsignedSpend((u,), (out,), None, "regtest")
    assert spend.fee_sat == 1_000
    bad: list[tuple[Callable[[], Any], str]] = [
        (
            lambda: btc.UnsignedSpend((u,), (btc.TxOutput(10_001, PAYEE_SPK),), None, "regtest"),
            "exceed",
        ),
        (lambda: btc.UnsignedSpend((), (out,), None, "regtest"), "at least one input"),
        (lambda: btc.UnsignedSpend((u,), (), None, "regtest"), "at least one output"),
        (lambda: btc.UnsignedSpend((u, u), (out,), None, "regtest"), "twice"),
        (lambda: btc.UnsignedSpend((u,), (out,), 1, "regtest"), "change_index"),
        (lambda: btc.UnsignedSpend((u,), (out,), None, "regtest", version=-1), "version"),
        (lambda: btc.UnsignedSpend((u,), (out,), None, "regtest", locktime=2**32), "locktime"),
        (lambda: btc.UnsignedSpend((u,), (out,), None, "moon"), "unknown network"),
        (lambda: btc.TxOutput(-1, PAYEE_SPK), "between"),
    ]
    for fn, message in bad:
        with pytest.raises(ParameterError, match=message):
            fn()
    with pytest.raises(ParameterError, match="index"):
        btc.spend_sighash(spend, 1)
    with pytest.raises(ParameterError, match="only with SIGHASH_ALL"):
        btc.spend_sighash(spend, 0, btc.SIGHASH_DEFAULT)


def test_script_pubkey_to_address_negative() -> None:
    for spk in (
        b"\x76\xa9\x14" + bytes(20) + b"\x88\xac",  # P2PKH
        b"\xa9\x14" + bytes(20) + b"\x87",  # P2SH
        b"\x6a\x04abcd",  # OP_RETURN
        b"\x00\x15" + bytes(21),  # v0 with a 21-byte program
        b"",
    ):
        with pytest.raises(ParameterError):
            btc.script_pubkey_to_address(spk, "mainnet")
