"""`tmpc testnet-check` and `tmpc tx`, run as processes against each chain's own validator."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from solders.transaction import Transaction

from tests.test_cli import EXIT_INPUT, assert_one_line_error, run
from tmpc.chains.bitcoin_check import flip_signature_byte, kernel_verify_input
from tmpc.chains.ethereum import recover_sender


@pytest.fixture(scope="module")
def wallets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for scheme in ("ecdsa-secp256k1", "schnorr-bip340", "ed25519", "frost-secp256k1"):
        d = tmp_path_factory.mktemp("chains") / scheme
        run("keygen", "--scheme", scheme, "-t", "2", "-n", "3", "--out", str(d), check=True)
        out[scheme] = d
    return out


@pytest.mark.parametrize(
    ("scheme", "chains"),
    [
        ("ecdsa-secp256k1", {"bitcoin", "ethereum"}),
        ("schnorr-bip340", {"bitcoin"}),
        ("ed25519", {"solana"}),
    ],
)
def test_testnet_check_passes(wallets: dict[str, Path], scheme: str, chains: set[str]) -> None:
    proc = run("testnet-check", "--wallet", str(wallets[scheme]), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["passed"] is True
    assert {c["chain"] for c in doc["checks"]} == chains
    assert all(c["accepted"] and c["flipped_rejected"] for c in doc["checks"])
    table = run("testnet-check", "--wallet", str(wallets[scheme]), "--signers", "2,3", check=True)
    assert table.stdout.rstrip().endswith("PASS")


def test_testnet_check_on_hd_child(wallets: dict[str, Path]) -> None:
    proc = run(
        "testnet-check",
        "--wallet",
        str(wallets["schnorr-bip340"]),
        "--path",
        "m/0/9",
        "--json",
        check=True,
    )
    addr = json.loads(
        run(
            "address",
            "--wallet",
            str(wallets["schnorr-bip340"]),
            "--path",
            "m/0/9",
            "--network",
            "regtest",
            "--json",
            check=True,
        ).stdout
    )
    assert json.loads(proc.stdout)["checks"][0]["address"] == addr["address"]


def test_testnet_check_refuses_generic_frost(wallets: dict[str, Path]) -> None:
    assert_one_line_error(
        run("testnet-check", "--wallet", str(wallets["frost-secp256k1"])), EXIT_INPUT
    )


def test_tx_bitcoin_spend_verifies_in_the_kernel(wallets: dict[str, Path]) -> None:
    from tmpc.chains.bitcoin import address_to_script_pubkey

    for scheme in ("ecdsa-secp256k1", "schnorr-bip340"):
        w = wallets[scheme]
        own = json.loads(
            run("address", "--wallet", str(w), "--network", "regtest", "--json", check=True).stdout
        )
        own_addr = own.get("bitcoin_p2wpkh") or own["address"]
        out = json.loads(
            run(
                "tx",
                "bitcoin",
                "--wallet",
                str(w),
                "--utxo",
                "cd" * 32 + ":1:100000",
                "--to",
                "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080:40000",
                "--fee",
                "300",
                "--network",
                "regtest",
                "--json",
                check=True,
            ).stdout
        )
        raw = bytes.fromhex(out["raw"])
        spent = [(100000, address_to_script_pubkey(own_addr, "regtest"))]
        assert kernel_verify_input(raw, spent, 0)
        flipped = flip_signature_byte(raw, 0)
        assert not kernel_verify_input(flipped, spent, 0)


def test_tx_ethereum_and_solana(wallets: dict[str, Path]) -> None:
    eth = json.loads(
        run(
            "tx",
            "ethereum",
            "--wallet",
            str(wallets["ecdsa-secp256k1"]),
            "--to",
            "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf",
            "--value",
            "1000",
            "--nonce",
            "0",
            "--chain-id",
            "1",
            "--max-fee",
            "30000000000",
            "--priority-fee",
            "1000000000",
            "--json",
            check=True,
        ).stdout
    )
    me = json.loads(
        run("address", "--wallet", str(wallets["ecdsa-secp256k1"]), "--json", check=True).stdout
    )["ethereum"]
    assert eth["from"] == me == recover_sender(bytes.fromhex(eth["raw"][2:]))
    sol = json.loads(
        run(
            "tx",
            "solana",
            "--wallet",
            str(wallets["ed25519"]),
            "--to",
            "11111111111111111111111111111112",
            "--lamports",
            "5000",
            "--blockhash",
            "4sGjMW1sUnHzSxGspuhpqLDx6wiyjNtZAMdL4VZHirAn",
            "--json",
            check=True,
        ).stdout
    )
    tx = Transaction.from_bytes(base64.b64decode(sol["raw_base64"]))
    assert tx.verify_with_results() == [True]


@pytest.mark.parametrize(
    "args",
    [
        ("tx", "bitcoin", "--utxo", "zz:0:1", "--to", "x:1", "--fee", "1"),
        ("tx", "bitcoin", "--to", "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080:1"),
        (
            "tx",
            "ethereum",
            "--to",
            "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf",
            "--value",
            "1",
            "--nonce",
            "0",
            "--chain-id",
            "1",
            "--gas-price",
            "1",
        ),
        ("tx", "solana", "--to", "not-base58!", "--lamports", "1", "--blockhash", "x"),
    ],
    ids=["bad-utxo", "missing-utxo", "bad-checksum", "bad-solana-address"],
)
def test_tx_user_errors(wallets: dict[str, Path], args: tuple[str, ...]) -> None:
    scheme = {"bitcoin": "schnorr-bip340", "ethereum": "ecdsa-secp256k1", "solana": "ed25519"}[
        args[1]
    ]
    assert_one_line_error(run(*args[:2], "--wallet", str(wallets[scheme]), *args[2:]), EXIT_INPUT)


def test_tx_wrong_scheme(wallets: dict[str, Path]) -> None:
    assert_one_line_error(
        run(
            "tx",
            "solana",
            "--wallet",
            str(wallets["ecdsa-secp256k1"]),
            "--to",
            "11111111111111111111111111111112",
            "--lamports",
            "1",
            "--blockhash",
            "4sGjMW1sUnHzSxGspuhpqLDx6wiyjNtZAMdL4VZHirAn",
        ),
        EXIT_INPUT,
    )


@pytest.mark.parametrize("scheme", ["ecdsa-secp256k1", "schnorr-bip340", "ed25519"])
def test_run_checks_report_a_wrong_signer(scheme: str) -> None:
    from tmpc import schemes
    from tmpc.cli.testnet import local_signer, run_checks

    record, shares = schemes.keygen(scheme, 2, 3)
    other, other_shares = schemes.keygen(scheme, 2, 3)
    # Signatures from another wallet's cluster: every chain must refuse them.
    results = run_checks(record, local_signer(None, other, other_shares[:2]))
    assert results and not any(r.accepted or r.ok for r in results)
    good = run_checks(record, local_signer(None, record, shares[:2]))
    assert all(r.ok for r in good)


def test_contradicting_tx_options_refused(wallets: dict[str, Path]) -> None:
    assert_one_line_error(
        run(
            "tx",
            "ethereum",
            "--wallet",
            str(wallets["ecdsa-secp256k1"]),
            "--to",
            "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf",
            "--value",
            "1",
            "--nonce",
            "0",
            "--chain-id",
            "1",
            "--max-fee",
            "3",
            "--priority-fee",
            "1",
            "--gas-price",
            "5",
        ),
        EXIT_INPUT,
    )
    assert_one_line_error(
        run(
            "tx",
            "bitcoin",
            "--wallet",
            str(wallets["schnorr-bip340"]),
            "--psbt",
            "cHNidP8=",
            "--fee",
            "3",
        ),
        EXIT_INPUT,
    )


def test_tx_bitcoin_reports_the_fee(wallets: dict[str, Path]) -> None:
    out = json.loads(
        run(
            "tx",
            "bitcoin",
            "--wallet",
            str(wallets["schnorr-bip340"]),
            "--utxo",
            "ab" * 32 + ":0:100000",
            "--to",
            "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080:99700",
            "--fee",
            "100",
            "--network",
            "regtest",
            "--json",
            check=True,
        ).stdout
    )
    # 200 sat of change is below dust: it goes to the fee, and the output says so.
    assert out["fee_sat"] == 300
    assert out["outputs"] == [["bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080", 99700]]
