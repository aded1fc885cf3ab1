"""What an unsigned transaction makes a node sign, and what it does (tmpc.chains.facts).

For each chain the digests the facts name are the ones the existing signing path signs
(``sign_psbt``, ``sign_transaction``, ``sign_transfer`` with a recording signer over a real
DKG wallet), and the signatures made over them verify with libsecp256k1 / PyNaCl and, for
Solana, run in LiteSVM. Amounts and destinations are read from the transaction; malformed
input gives one-line input errors only.

Independent checks: embit (PSBTs made from outside, base58 addresses), eth-abi (ERC-20 call
data), eth-account (sender recovery), solders (messages, compute-budget instructions, lookup
tables) and LiteSVM (the fee actually charged).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import coincurve
import eth_abi
import nacl.signing
import pytest
from embit.networks import NETWORKS
from embit.psbt import PSBT
from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput
from eth_account import Account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message, MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import CreateAccountParams, TransferParams, create_account, transfer
from solders.transaction import Transaction as SolTransaction
from solders.transaction import VersionedTransaction

from tmpc import schemes
from tmpc.chains import bitcoin as btc
from tmpc.chains.addresses import eip55_checksum, ethereum_address, hash160, keccak256
from tmpc.chains.ethereum import Eip1559Tx, recover_sender, sign_transaction, signing_hash
from tmpc.chains.facts import (
    ERC20_TRANSFER_SELECTOR,
    TxFacts,
    bitcoin_facts,
    ethereum_facts,
    solana_facts,
)
from tmpc.chains.solana import sign_transfer, transfer_message, transfer_message_v0
from tmpc.errors import DecodeError, InputError, ParameterError
from tmpc.primitives.ecdsa_format import HALF_N, der_decode_strict

ECDSA = "ecdsa-secp256k1"
BIP340 = "schnorr-bip340"
PAYEE = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"  # HASH160(G) on regtest
PAYEE_SPK = bytes.fromhex("0014751e76e8199196d454941c45d1b3a323f1433bd6")
SEQUENCE = 0xFFFFFFFD


class Wallet:
    """A 2-of-3 wallet made by tmpc's DKG; ``signer(asked, path)`` signs with parties 1 and 2
    and records every digest or message it is asked to sign."""

    def __init__(self, scheme: str) -> None:
        self.scheme = scheme
        self.record, self.shares = schemes.keygen(scheme, 2, 3)

    def signer(self, asked: list[bytes], path: str | None = None) -> Callable[[bytes], bytes]:
        def sign(message: bytes) -> bytes:
            asked.append(message)
            return schemes.sign(self.record, self.shares[:2], message, path=path)

        return sign

    def pk(self, path: str | None = None) -> bytes:
        return schemes.public_key_at(self.record, path)

    def spk(self, path: str | None = None) -> bytes:
        return btc.wallet_script_pubkey(self.scheme, self.pk(path))


@pytest.fixture(scope="module")
def wallets() -> dict[str, Wallet]:
    return {s: Wallet(s) for s in (ECDSA, BIP340, "ed25519")}


def assert_one_line(exc: pytest.ExceptionInfo[BaseException]) -> None:
    text = str(exc.value)
    assert text and "\n" not in text and "Traceback" not in text


# --------------------------------------------------------------------------------------------
# Bitcoin
# --------------------------------------------------------------------------------------------


def prev_tx(spk: bytes, amount: int, tag: int) -> Transaction:
    """A previous transaction whose output 0 pays ``amount`` to ``spk``."""
    return Transaction(
        version=2,
        vin=[TransactionInput(bytes([tag]) * 32, 0)],
        vout=[TransactionOutput(amount, Script(spk))],
        locktime=0,
    )


def make_psbt(
    inputs: Sequence[tuple[Transaction, bool | None]],
    outputs: Sequence[tuple[bytes, int]],
) -> str:
    """A PSBT (made by embit) spending output 0 of each previous transaction; each input
    carries ``PSBT_IN_WITNESS_UTXO`` and, when its flag is True, the full previous transaction
    (``PSBT_IN_NON_WITNESS_UTXO``); a flag None gives the input no UTXO information."""
    tx = Transaction(
        version=2,
        vin=[TransactionInput(prev.txid(), 0, sequence=SEQUENCE) for prev, _ in inputs],
        vout=[TransactionOutput(a, Script(spk)) for spk, a in outputs],
        locktime=0,
    )
    psbt = PSBT(tx, unknown={})
    for inp, (prev, full) in zip(psbt.inputs, inputs, strict=True):
        inp.unknown = {}
        if full is not None:
            inp.witness_utxo = prev.vout[0]
        if full:
            inp.non_witness_utxo = prev
    for out in psbt.outputs:
        out.unknown = {}
    return str(psbt.to_base64())


def other_address_spk() -> tuple[str, bytes]:
    """A P2TR address of a key that is not the wallet's."""
    key = coincurve.PrivateKey(b"\x05" * 32)
    spk = b"\x51\x20" + key.public_key.format(True)[1:]
    return btc.script_pubkey_to_address(spk, "regtest"), spk


def off_curve_x() -> bytes:
    for x in range(1, 100):
        candidate = x.to_bytes(32, "big")
        try:
            coincurve.PublicKeyXOnly(candidate)
        except ValueError:
            return candidate
    raise AssertionError("no off-curve x below 100")


def verify_witness_signatures(
    scheme: str, pk: bytes, raw: bytes, indices: list[int], digests: tuple[bytes, ...]
) -> None:
    """libsecp256k1 verifies the signature in each input's witness over the fact's digest."""
    tx = Transaction.parse(raw)
    assert len(indices) == len(digests)
    for i, digest in zip(indices, digests, strict=True):
        sig = tx.vin[i].witness.items[0]
        if scheme == ECDSA:
            assert tx.vin[i].witness.items[1] == pk
            _r, s = der_decode_strict(sig[:-1])
            assert s <= HALF_N  # low s: nodes relay it
            assert coincurve.PublicKey(pk).verify(sig[:-1], digest, hasher=None)
        else:
            assert coincurve.PublicKeyXOnly(pk).verify(sig[:64], digest)


@pytest.mark.parametrize("path", [None, "m/0/7"], ids=["root", "child"])
@pytest.mark.parametrize("scheme", [ECDSA, BIP340])
def test_bitcoin_digests_are_what_sign_psbt_signs(
    wallets: dict[str, Wallet], scheme: str, path: str | None
) -> None:
    w = wallets[scheme]
    spk, pk = w.spk(path), w.pk(path)
    prevs = [prev_tx(spk, 60_000, 1), prev_tx(spk, 45_000, 2)]
    b64 = make_psbt([(p, True) for p in prevs], [(PAYEE_SPK, 80_000), (spk, 24_000)])
    facts = bitcoin_facts(b64, w.record, network="regtest", path=path)

    asked: list[bytes] = []
    signed = btc.sign_psbt(b64, w.signer(asked, path), pk, scheme)
    assert asked == list(facts.digests)
    assert all(len(d) == 32 for d in facts.digests) and len(facts.digests) == 2
    raw = btc.finalize_psbt(signed)
    verify_witness_signatures(scheme, pk, raw, [0, 1], facts.digests)

    assert facts.chain == "bitcoin" and facts.asset == "BTC"
    assert facts.amount == Decimal("0.0008")  # the change output (24 000 sat) is not counted
    assert facts.destinations == (PAYEE,)
    assert facts.fee == Decimal("0.00001")
    assert not facts.opaque and facts.reasons == ()
    assert facts.source == btc.wallet_address(scheme, pk, "regtest")


def test_bitcoin_judged_on_the_real_outputs_not_a_claim(wallets: dict[str, Wallet]) -> None:
    """A requester claims 0.0001 BTC to PAYEE; the PSBT really pays 1.5 BTC elsewhere."""
    w = wallets[ECDSA]
    other, other_spk = other_address_spk()
    claim = {"amount": "0.0001", "to": PAYEE}
    prev = prev_tx(w.spk(), 200_000_000, 3)
    b64 = make_psbt([(prev, True)], [(other_spk, 150_000_000), (w.spk(), 49_990_000)])
    facts = bitcoin_facts(b64, w.record, network="regtest")
    assert facts.amount == Decimal("1.5") != Decimal(claim["amount"])
    assert facts.destinations == (other,) and claim["to"] not in facts.destinations
    assert facts.fee == Decimal("0.0001")
    # psbt_summary shows the same outputs, change included.
    assert btc.psbt_summary(b64, "regtest")["outputs"] == [
        (other, 150_000_000),
        (btc.wallet_address(ECDSA, w.pk(), "regtest"), 49_990_000),
    ]


def test_bitcoin_change_is_only_the_wallets_script_at_this_path(
    wallets: dict[str, Wallet],
) -> None:
    w = wallets[BIP340]
    prev = prev_tx(w.spk(), 100_000, 4)
    elsewhere = btc.script_pubkey_to_address(w.spk("m/1/0"), "regtest")
    b64 = make_psbt([(prev, False)], [(w.spk("m/1/0"), 30_000), (w.spk(), 69_000)])
    facts = bitcoin_facts(b64, w.record, network="regtest")
    assert facts.amount == Decimal("0.0003") and facts.destinations == (elsewhere,)
    # Everything to the wallet itself: nothing leaves.
    b64 = make_psbt([(prev, False)], [(w.spk(), 99_000)])
    facts = bitcoin_facts(b64, w.record, network="regtest")
    assert facts.amount == Decimal(0) and facts.destinations == ()
    assert facts.to_json()["amount"] == "0.00000000"


def test_bitcoin_only_the_wallets_inputs_are_signed(wallets: dict[str, Wallet]) -> None:
    """A Taproot wallet co-signs with a foreign P2WPKH input (its UTXO given by witness_utxo:
    a Taproot signature commits to every input's amount)."""
    w = wallets[BIP340]
    foreign_spk = b"\x00\x14" + hash160(coincurve.PrivateKey(b"\x07" * 32).public_key.format())
    inputs = [(prev_tx(foreign_spk, 30_000, 5), False), (prev_tx(w.spk(), 25_000, 6), False)]
    b64 = make_psbt(inputs, [(PAYEE_SPK, 54_000)])
    facts = bitcoin_facts(b64, w.record, network="regtest")
    asked: list[bytes] = []
    signed = btc.sign_psbt(b64, w.signer(asked), w.pk(), BIP340)
    assert asked == list(facts.digests) and len(asked) == 1
    key_sig = PSBT.from_base64(signed).inputs[1].unknown[b"\x13"]
    assert coincurve.PublicKeyXOnly(w.pk()).verify(key_sig, facts.digests[0])
    assert facts.amount == Decimal("0.00054") and facts.fee == Decimal("0.00001")


def test_bitcoin_fee_unknown_when_a_foreign_input_is_undescribed(
    wallets: dict[str, Wallet],
) -> None:
    w = wallets[ECDSA]
    inputs = [(prev_tx(w.spk(), 50_000, 7), True), (prev_tx(PAYEE_SPK, 30_000, 8), None)]
    b64 = make_psbt(inputs, [(PAYEE_SPK, 70_000)])
    facts = bitcoin_facts(b64, w.record, network="regtest")
    assert facts.fee is None and len(facts.digests) == 1
    assert facts.amount == Decimal("0.0007")


def test_bitcoin_p2wpkh_without_previous_transaction_refused(
    wallets: dict[str, Wallet],
) -> None:
    """CVE-2020-14199: a witness UTXO alone does not prove a P2WPKH input's amount."""
    w = wallets[ECDSA]
    b64 = make_psbt([(prev_tx(w.spk(), 50_000, 9), False)], [(PAYEE_SPK, 49_000)])
    with pytest.raises(ParameterError, match="NON_WITNESS_UTXO") as exc:
        bitcoin_facts(b64, w.record, network="regtest")
    assert_one_line(exc)


def test_bitcoin_lying_witness_utxo_refused(wallets: dict[str, Wallet]) -> None:
    w = wallets[ECDSA]
    b64 = make_psbt([(prev_tx(w.spk(), 50_000, 10), True)], [(PAYEE_SPK, 49_000)])
    p = PSBT.from_base64(b64)
    p.inputs[0].witness_utxo = TransactionOutput(5_000_000, Script(w.spk()))
    with pytest.raises(DecodeError, match="disagree") as exc:
        bitcoin_facts(p.to_base64(), w.record, network="regtest")
    assert_one_line(exc)


def test_bitcoin_output_kinds(wallets: dict[str, Wallet]) -> None:
    w = wallets[BIP340]
    h20, h32 = bytes(range(20)), bytes(range(32))
    p2pkh = b"\x76\xa9\x14" + h20 + b"\x88\xac"
    p2sh = b"\xa9\x14" + h20 + b"\x87"
    p2wsh = b"\x00\x20" + h32
    understood = [(p2pkh, 1_000), (p2sh, 1_000), (p2wsh, 1_000), (PAYEE_SPK, 1_000)]
    prev = prev_tx(w.spk(), 100_000, 11)
    b64 = make_psbt([(prev, False)], [*understood, (w.spk(), 90_000)])
    facts = bitcoin_facts(b64, w.record, network="regtest")
    regtest = NETWORKS["regtest"]
    assert facts.destinations == tuple(Script(s).address(regtest) for s, _ in understood)
    assert facts.destinations[0].startswith(("m", "n")) and facts.destinations[1][0] == "2"
    assert not facts.opaque and facts.amount == Decimal("0.00004")
    mainnet = bitcoin_facts(b64, w.record, network="mainnet").destinations
    assert mainnet[:2] == (Script(p2pkh).address(), Script(p2sh).address())

    weird = {
        "OP_RETURN": b"\x6a\x04" + b"rune",
        "v2": b"\x52\x20" + h32,
        "off-curve": b"\x51\x20" + off_curve_x(),
        "bare": b"\x51",
        "v0-25": b"\x00\x19" + bytes(25),
    }
    for name, spk in weird.items():
        b64 = make_psbt([(prev, False)], [(PAYEE_SPK, 1_000), (spk, 0), (w.spk(), 98_000)])
        facts = bitcoin_facts(b64, w.record, network="regtest")
        assert facts.opaque, name
        assert len(facts.reasons) == 1 and "output 1" in facts.reasons[0], name
        assert facts.destinations[0] == PAYEE, name
        assert len(facts.digests) == 1, name  # still exactly what sign_psbt would sign
    assert facts.destinations[1] == "script:0019" + "00" * 25


def test_bitcoin_refusals_are_one_line(wallets: dict[str, Wallet]) -> None:
    w = wallets[BIP340]
    prev = prev_tx(w.spk(), 100_000, 12)
    good = make_psbt([(prev, False)], [(PAYEE_SPK, 99_000)])
    high = make_psbt([(prev_tx(w.spk(), 20_000_000, 14), False)], [(PAYEE_SPK, 1_000)])
    cases: list[tuple[Any, Any, dict[str, Any], type[Exception], str]] = [
        (good, wallets["ed25519"].record, {}, ParameterError, "does not sign bitcoin"),
        (good, w.record, {"network": "bogus"}, ParameterError, "unknown network"),
        (good, w.record, {"path": "m/0'"}, ParameterError, "hardened"),
        (good, w.record, {"path": 5}, ParameterError, "path"),
        (good, "record", {}, ParameterError, "WalletRecord"),
        (good, wallets[ECDSA].record, {}, ParameterError, "no input of this PSBT"),
        (good, w.record, {"path": "m/0/1"}, ParameterError, "no input of this PSBT"),
        (high, w.record, {}, ParameterError, "maxtxfee"),
        ("not base64!", w.record, {}, DecodeError, "base64"),
        ("", w.record, {}, DecodeError, "PSBT"),
        (base64.b64encode(b"psbt\xff\x00junk").decode(), w.record, {}, DecodeError, "PSBT"),
        (b"psbt", w.record, {}, DecodeError, "base64 string"),
    ]
    for psbt, record, kwargs, error, text in cases:
        kwargs = {"network": "regtest", **kwargs}
        with pytest.raises(error, match=text) as exc:
            bitcoin_facts(psbt, record, **kwargs)
        assert_one_line(exc)
    facts = bitcoin_facts(high, w.record, network="regtest", allow_high_fee=True)
    assert facts.fee == Decimal("0.19999")


# A module-level wallet and PSBT for the property test (hypothesis does not take fixtures).
FUZZ_WALLET = Wallet(BIP340)
FUZZ_PSBT = make_psbt(
    [(prev_tx(FUZZ_WALLET.spk(), 80_000, 13), True)],
    [(PAYEE_SPK, 50_000), (FUZZ_WALLET.spk(), 29_000)],
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_bitcoin_mutated_psbts_give_input_errors_only(data: st.DataObject) -> None:
    raw = base64.b64decode(FUZZ_PSBT)
    kind = data.draw(st.sampled_from(["flip", "truncate", "insert"]))
    at = data.draw(st.integers(0, len(raw) - 1))
    if kind == "flip":
        mutated = raw[:at] + bytes([raw[at] ^ data.draw(st.integers(1, 255))]) + raw[at + 1 :]
    elif kind == "truncate":
        mutated = raw[:at]
    else:
        mutated = raw[:at] + data.draw(st.binary(min_size=1, max_size=4)) + raw[at:]
    try:
        facts = bitcoin_facts(
            base64.b64encode(mutated).decode(), FUZZ_WALLET.record, network="regtest"
        )
    except InputError as exc:
        assert isinstance(exc, DecodeError | ParameterError)
        assert str(exc) and "\n" not in str(exc)
    else:
        assert facts.digests and all(len(d) == 32 for d in facts.digests)


# --------------------------------------------------------------------------------------------
# Ethereum
# --------------------------------------------------------------------------------------------

TO = eip55_checksum(bytes.fromhex("35" * 20))
TOKEN = eip55_checksum(bytes.fromhex("a0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"))
RECIPIENT = eip55_checksum(bytes.fromhex("ab" * 20))


def eth_fields(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "chain_id": 1,
        "nonce": 7,
        "max_priority_fee_per_gas": 2 * 10**9,
        "max_fee_per_gas": 30 * 10**9,
        "gas": 21_000,
        "to": TO,
        "value": 10**18,
        "data": "",
        "access_list": [],
    }
    fields.update(changes)
    return fields


def erc20_data(recipient: str, amount: int) -> str:
    """ERC-20 transfer call data by eth-abi, an encoder independent of tmpc."""
    return (
        "0x"
        + (
            ERC20_TRANSFER_SELECTOR + eth_abi.encode(["address", "uint256"], [recipient, amount])
        ).hex()
    )


def test_erc20_selector_constant() -> None:
    assert keccak256(b"transfer(address,uint256)")[:4] == ERC20_TRANSFER_SELECTOR


@pytest.mark.parametrize("path", [None, "m/0/3"], ids=["root", "child"])
def test_ethereum_digest_is_what_sign_transaction_signs(
    wallets: dict[str, Wallet], path: str | None
) -> None:
    w = wallets[ECDSA]
    fields = eth_fields(access_list=[{"address": TO, "storageKeys": ["0x" + "01" * 32]}])
    facts = ethereum_facts(fields, w.record, path=path)
    tx = Eip1559Tx(1, 7, 2 * 10**9, 30 * 10**9, 21_000, TO, 10**18, b"", [(TO, [b"\x01" * 32])])
    asked: list[bytes] = []
    signed = sign_transaction(tx, w.signer(asked, path), w.pk(path))
    assert asked == list(facts.digests) == [signing_hash(tx)]
    assert recover_sender(signed.raw) == facts.source == ethereum_address(w.pk(path))
    assert Account.recover_transaction(signed.raw) == facts.source
    assert facts.chain == "ethereum" and facts.asset == "ETH"
    assert facts.amount == Decimal(1) and facts.destinations == (TO,)
    assert facts.fee == Decimal("0.00063")  # 21 000 gas * 30 gwei
    assert not facts.opaque
    # The pair form of the access list is the same transaction.
    pairs = eth_fields(access_list=[[TO, ["01" * 32]]])
    assert ethereum_facts(pairs, w.record, path=path).digests == facts.digests


def test_erc20_transfer_is_decoded(wallets: dict[str, Wallet]) -> None:
    w = wallets[ECDSA]
    amount = 2**200 + 12345  # beyond any float: raw token units, exact
    fields = eth_fields(to=TOKEN, value=0, gas=65_000, data=erc20_data(RECIPIENT, amount))
    facts = ethereum_facts(fields, w.record)
    assert facts.asset == "ERC20:" + TOKEN
    assert facts.amount == Decimal(amount) and facts.destinations == (RECIPIENT,)
    assert facts.fee == Decimal(65_000 * 30 * 10**9) / Decimal(10**18)
    assert not facts.opaque
    tx = Eip1559Tx(1, 7, 2 * 10**9, 30 * 10**9, 65_000, TOKEN, 0, bytes.fromhex(fields["data"][2:]))
    assert facts.digests == (signing_hash(tx),)
    assert json.loads(json.dumps(facts.to_json()))["amount"] == str(amount)


def _approve() -> str:
    return "0x095ea7b3" + eth_abi.encode(["address", "uint256"], [RECIPIENT, 2**256 - 1]).hex()


@pytest.mark.parametrize(
    ("changes", "destinations", "amount", "reason"),
    [
        ({"to": TOKEN, "value": 0, "data": _approve()}, (TOKEN,), 0, "selector 0x095ea7b3"),
        (
            {"to": TOKEN, "value": 5, "data": erc20_data(RECIPIENT, 10)},
            (TOKEN,),
            Decimal(5) / 10**18,
            "also sends ETH",
        ),
        (
            {"to": TOKEN, "value": 0, "data": erc20_data(RECIPIENT, 10) + "00"},
            (TOKEN,),
            0,
            "69 bytes",
        ),
        (
            {"to": TOKEN, "value": 0, "data": "0xa9059cbb" + "ff" * 12 + "ab" * 20 + "00" * 32},
            (TOKEN,),
            0,
            "not a clean address",
        ),
        ({"data": "0xdeadbeef"}, (TO,), 1, "selector 0xdeadbeef"),
        ({"to": None, "data": "0x6080"}, (), 1, "contract creation"),
    ],
    ids=["approve", "transfer-with-value", "transfer-long", "dirty-address", "call", "create"],
)
def test_ethereum_calls_not_understood_are_opaque(
    wallets: dict[str, Wallet],
    changes: dict[str, Any],
    destinations: tuple[str, ...],
    amount: Decimal | int,
    reason: str,
) -> None:
    facts = ethereum_facts(eth_fields(gas=100_000, **changes), wallets[ECDSA].record)
    assert facts.opaque and len(facts.reasons) == 1 and reason in facts.reasons[0]
    assert facts.asset == "ETH" and facts.amount == amount
    assert facts.destinations == destinations
    assert len(facts.digests) == 1 and len(facts.digests[0]) == 32


@pytest.mark.parametrize(
    ("fields", "error", "text"),
    [
        ({k: v for k, v in eth_fields().items() if k != "to"}, ParameterError, "missing.*to"),
        (eth_fields(amount=1), ParameterError, "unknown EIP-1559 field.*amount"),
        (eth_fields(value="1"), ParameterError, "value must be an integer"),
        (eth_fields(value=-1), ParameterError, "value must be in"),
        (eth_fields(nonce=True), ParameterError, "nonce must be an integer"),
        (eth_fields(chain_id=0), ParameterError, "chain_id"),
        (eth_fields(gas=20_999), ParameterError, "gas"),
        (eth_fields(max_priority_fee_per_gas=31 * 10**9), ParameterError, "must not exceed"),
        (eth_fields(to=RECIPIENT.lower()), DecodeError, "EIP-55"),
        (eth_fields(to="0x35"), DecodeError, "40 hex"),
        (eth_fields(to=5), ParameterError, "EIP-55 address or None"),
        (eth_fields(data="0xabc"), DecodeError, "not hex"),
        (eth_fields(data="aa bb"), DecodeError, "not hex"),
        (eth_fields(data=7), ParameterError, "hex text"),
        (eth_fields(access_list="x"), ParameterError, "access_list"),
        (eth_fields(access_list=[[TO]]), ParameterError, "access_list entry 0"),
        (eth_fields(access_list=[{"address": TO}]), ParameterError, "storageKeys"),
        (eth_fields(access_list=[[TO, ["01"]]]), ParameterError, "32 bytes"),
        (eth_fields(access_list=[[7, []]]), ParameterError, "EIP-55"),
        ([("chain_id", 1)], ParameterError, "mapping"),
    ],
    ids=[
        "no-to",
        "claim-beside",
        "value-text",
        "value-negative",
        "nonce-bool",
        "chain-id-0",
        "gas-low",
        "priority-above-max",
        "to-lowercase",
        "to-short",
        "to-int",
        "data-odd",
        "data-spaces",
        "data-int",
        "access-list-text",
        "access-list-short",
        "access-list-no-keys",
        "access-list-key-short",
        "access-list-address-int",
        "not-a-mapping",
    ],
)
def test_ethereum_fields_validated(
    wallets: dict[str, Wallet], fields: Any, error: type[Exception], text: str
) -> None:
    with pytest.raises(error, match=text) as exc:
        ethereum_facts(fields, wallets[ECDSA].record)
    assert_one_line(exc)


def test_ethereum_record_and_path_checked(wallets: dict[str, Wallet]) -> None:
    for record, path, text in (
        (wallets[BIP340].record, None, "does not sign ethereum"),
        (wallets["ed25519"].record, None, "does not sign ethereum"),
        (wallets[ECDSA].record, "m/x", "not of the form"),
    ):
        with pytest.raises(ParameterError, match=text) as exc:
            ethereum_facts(eth_fields(), record, path=path)
        assert_one_line(exc)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**300), 2**300) | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=6,
)


FUZZ_ECDSA = Wallet(ECDSA)


@settings(max_examples=200, deadline=None)
@given(
    key=st.sampled_from([*eth_fields(), "extra"]),
    value=JSONISH | st.just(TO) | st.just("0x" + "ab" * 32),
)
def test_ethereum_mutated_fields_give_input_errors_only(key: str, value: Any) -> None:
    try:
        facts = ethereum_facts(eth_fields(**{key: value}), FUZZ_ECDSA.record)
    except InputError as exc:
        assert isinstance(exc, DecodeError | ParameterError)
        assert str(exc) and "\n" not in str(exc)
    else:
        assert len(facts.digests) == 1 and len(facts.digests[0]) == 32


# --------------------------------------------------------------------------------------------
# Solana
# --------------------------------------------------------------------------------------------

MEMO_PROGRAM = Pubkey.from_string("MemoSq4gqABAXKb1GC5cmhZbfXy8uCRgTQxPmgVSStG")


def b64(message: bytes) -> str:
    return base64.b64encode(message).decode()


def funded_svm(pk: bytes) -> LiteSVM:
    svm = LiteSVM()
    assert svm.get_sigverify() is True
    svm.airdrop(Pubkey.from_bytes(pk), 10**10)
    return svm


@pytest.mark.parametrize("versioned", [False, True], ids=["legacy", "v0"])
def test_solana_digest_is_the_signed_message(wallets: dict[str, Wallet], versioned: bool) -> None:
    w = wallets["ed25519"]
    pk = w.record.public_key
    svm = funded_svm(pk)
    to = Keypair().pubkey()
    lamports = 12_345_678
    build = transfer_message_v0 if versioned else transfer_message
    message = build(pk, str(to), lamports, svm.latest_blockhash())
    facts = solana_facts(b64(message), w.record)
    assert facts.digests == (message,)

    asked: list[bytes] = []
    signed = sign_transfer(
        pk, str(to), lamports, svm.latest_blockhash(), w.signer(asked), versioned=versioned
    )
    assert asked == list(facts.digests)
    signature = signed.raw[1:65]
    nacl.signing.VerifyKey(pk).verify(facts.digests[0], signature)
    tx = (VersionedTransaction if versioned else SolTransaction).from_bytes(signed.raw)
    before = svm.get_balance(Pubkey.from_bytes(pk)) or 0
    result = svm.send_transaction(tx)
    assert not hasattr(result, "err"), result
    spent = before - (svm.get_balance(Pubkey.from_bytes(pk)) or 0)
    assert facts.fee is not None
    assert Decimal(spent) / 10**9 == facts.amount + facts.fee
    assert svm.get_balance(to) == lamports

    assert facts.chain == "solana" and facts.asset == "SOL"
    assert facts.amount == Decimal("0.012345678") and facts.destinations == (str(to),)
    assert facts.fee == Decimal("0.000005") and not facts.opaque
    assert facts.source == str(Pubkey.from_bytes(pk))


def test_solana_priority_fee_is_what_litesvm_charges(wallets: dict[str, Wallet]) -> None:
    w = wallets["ed25519"]
    pk = w.record.public_key
    payer = Pubkey.from_bytes(pk)
    svm = funded_svm(pk)
    tos = [Keypair().pubkey(), Keypair().pubkey()]
    ixs = [
        set_compute_unit_limit(300_000),
        set_compute_unit_price(12_345),
        *(
            transfer(TransferParams(from_pubkey=payer, to_pubkey=t, lamports=2_000_000))
            for t in tos
        ),
        transfer(TransferParams(from_pubkey=payer, to_pubkey=payer, lamports=7)),  # to itself
    ]
    msg = Message.new_with_blockhash(ixs, payer, svm.latest_blockhash())
    facts = solana_facts(b64(bytes(msg)), w.record)
    assert not facts.opaque
    assert facts.destinations == tuple(map(str, tos)) and facts.amount == Decimal("0.004")
    asked: list[bytes] = []
    sig = w.signer(asked)(bytes(msg))
    assert asked == list(facts.digests)
    before = svm.get_balance(payer) or 0
    result = svm.send_transaction(SolTransaction.populate(msg, [Signature.from_bytes(sig)]))
    assert not hasattr(result, "err"), result
    charged = before - (svm.get_balance(payer) or 0) - 4_000_000
    assert facts.fee == Decimal(charged) / 10**9 == Decimal(5_000 + 3_704) / 10**9


def _opaque_cases(payer: Pubkey, other: Keypair) -> dict[str, tuple[list[Instruction], str]]:
    to = Keypair().pubkey()
    pay = transfer(TransferParams(from_pubkey=payer, to_pubkey=to, lamports=1_000))
    return {
        "create-account": (
            [
                create_account(
                    CreateAccountParams(
                        from_pubkey=payer,
                        to_pubkey=other.pubkey(),
                        lamports=10**6,
                        space=0,
                        owner=Pubkey.default(),
                    )
                )
            ],
            "System Program instruction",
        ),
        "memo": (
            [pay, Instruction(MEMO_PROGRAM, b"hello", [AccountMeta(payer, True, False)])],
            f"program {MEMO_PROGRAM}",
        ),
        "transfer-from-another": (
            [pay, transfer(TransferParams(from_pubkey=other.pubkey(), to_pubkey=to, lamports=5))],
            f"a transfer from {other.pubkey()}",
        ),
        "price-without-limit": ([set_compute_unit_price(1), pay], "without a compute-unit limit"),
        "two-limits": (
            [set_compute_unit_limit(1), set_compute_unit_limit(2), pay],
            "second compute budget",
        ),
    }


@pytest.mark.parametrize(
    "case",
    ["create-account", "memo", "transfer-from-another", "price-without-limit", "two-limits"],
)
def test_solana_other_instructions_are_opaque(wallets: dict[str, Wallet], case: str) -> None:
    w = wallets["ed25519"]
    payer = Pubkey.from_bytes(w.record.public_key)
    ixs, reason = _opaque_cases(payer, Keypair())[case]
    msg = Message.new_with_blockhash(ixs, payer, Hash.new_unique())
    facts = solana_facts(b64(bytes(msg)), w.record)
    assert facts.opaque and any(reason in r for r in facts.reasons), facts.reasons
    assert facts.digests == (bytes(msg),)
    if case == "price-without-limit":
        assert facts.fee is None
    if case in ("memo", "transfer-from-another"):
        assert facts.amount == Decimal("0.000001")  # only the wallet's own transfer


def test_solana_lookup_tables_are_opaque(wallets: dict[str, Wallet]) -> None:
    w = wallets["ed25519"]
    payer = Pubkey.from_bytes(w.record.public_key)
    to = Keypair().pubkey()
    table = AddressLookupTableAccount(Keypair().pubkey(), [to])
    ix = transfer(TransferParams(from_pubkey=payer, to_pubkey=to, lamports=1_000))
    msg = MessageV0.try_compile(payer, [ix], [table], Hash.new_unique())
    assert msg.address_table_lookups
    facts = solana_facts(b64(bytes(to_bytes_versioned(msg))), w.record)
    assert facts.opaque and facts.destinations == () and facts.amount == 0
    assert any("lookup tables" in r for r in facts.reasons)


def test_solana_fee_payer_must_be_the_wallet(wallets: dict[str, Wallet]) -> None:
    w = wallets["ed25519"]
    stranger = Keypair().pubkey()
    message = transfer_message(bytes(stranger), str(Keypair().pubkey()), 5, Hash.new_unique())
    with pytest.raises(ParameterError, match="fee payer") as exc:
        solana_facts(b64(message), w.record)
    assert_one_line(exc)


def test_solana_malformed_messages_refused(wallets: dict[str, Wallet]) -> None:
    w = wallets["ed25519"]
    pk = w.record.public_key
    legacy = transfer_message(pk, str(Keypair().pubkey()), 5, Hash.new_unique())
    v0 = transfer_message_v0(pk, str(Keypair().pubkey()), 5, Hash.new_unique())
    no_signer = b"\x00" + legacy[1:]
    ro_payer = legacy[:1] + b"\x01" + legacy[2:]
    cases: list[tuple[Any, Any, type[Exception], str]] = [
        ("%%%", w.record, DecodeError, "base64"),
        ("", w.record, DecodeError, "empty"),
        (legacy, w.record, DecodeError, "base64 text"),
        (b64(legacy + b"\x00"), w.record, DecodeError, "re-serialise"),
        (b64(v0 + b"\x00"), w.record, DecodeError, "re-serialise"),
        (b64(legacy[:-1]), w.record, DecodeError, "not a valid Solana message"),
        (b64(v0[:40]), w.record, DecodeError, "not a valid Solana message"),
        (b64(b"\x81" + v0[1:]), w.record, DecodeError, "version 1"),
        (b64(no_signer), w.record, DecodeError, "header"),
        (b64(ro_payer), w.record, DecodeError, "header"),
        (b64(legacy), wallets[ECDSA].record, ParameterError, "does not sign solana"),
    ]
    for message, record, error, text in cases:
        with pytest.raises(error, match=text) as exc:
            solana_facts(message, record)
        assert_one_line(exc)


FUZZ_ED25519 = Wallet("ed25519")
FUZZ_SOLANA = {
    versioned: (transfer_message_v0 if versioned else transfer_message)(
        FUZZ_ED25519.record.public_key, str(Keypair().pubkey()), 99, Hash.new_unique()
    )
    for versioned in (False, True)
}


@settings(max_examples=200, deadline=None)
@given(data=st.data(), versioned=st.booleans())
def test_solana_mutated_messages_give_input_errors_only(
    data: st.DataObject, versioned: bool
) -> None:
    raw = FUZZ_SOLANA[versioned]
    at = data.draw(st.integers(0, len(raw) - 1))
    kind = data.draw(st.sampled_from(["flip", "truncate", "insert"]))
    if kind == "flip":
        mutated = raw[:at] + bytes([raw[at] ^ data.draw(st.integers(1, 255))]) + raw[at + 1 :]
    elif kind == "truncate":
        mutated = raw[:at]
    else:
        mutated = raw[:at] + data.draw(st.binary(min_size=1, max_size=4)) + raw[at:]
    try:
        facts = solana_facts(b64(mutated), FUZZ_ED25519.record)
    except InputError as exc:
        assert isinstance(exc, DecodeError | ParameterError)
        assert str(exc) and "\n" not in str(exc)
    else:
        assert facts.digests == (mutated,)


def test_facts_are_frozen(wallets: dict[str, Wallet]) -> None:
    facts = ethereum_facts(eth_fields(), wallets[ECDSA].record)
    assert isinstance(facts, TxFacts)
    with pytest.raises(AttributeError):
        facts.amount = Decimal(0)  # type: ignore[misc]
