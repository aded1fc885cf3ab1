"""`tmpc tx ... --node` and `tmpc testnet-check --node` against a 3-process local cluster.

The cluster is started with ``tmpc cluster local --parties 3 --json`` as an operator would;
wallets are 2-of-3, so covering every party takes more than one quorum. Every command runs as
its own process with ``TMPC_AUTH``; the transactions are checked by each chain's own code.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from solders.transaction import Transaction

from tests.node_helpers import cluster_process, run_tmpc
from tests.test_cli import EXIT_INPUT, assert_one_line_error
from tmpc import schemes
from tmpc.chains.addresses import ethereum_address
from tmpc.chains.bitcoin import wallet_script_pubkey
from tmpc.chains.bitcoin_check import flip_signature_byte, kernel_verify_input
from tmpc.chains.ethereum import recover_sender
from tmpc.cli.testnet import ClusterWallet, NodeSigner
from tmpc.errors import FaultyCoordinatorError, KeystoreError, ParameterError
from tmpc.node.client import Credential, NodeClient

NAMES = ["a", "b", "c"]
ETH_TX = (
    "--to", "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf", "--value", "1000", "--nonce", "0",
    "--chain-id", "1", "--max-fee", "30000000000", "--priority-fee", "1000000000",
)  # fmt: skip
BTC_OUT = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"


class Cluster:
    def __init__(self, info: dict[str, Any]) -> None:
        self.urls = {n["name"]: n["url"] for n in info["nodes"]}
        self.auth = info["auth"]
        self.records: dict[str, schemes.WalletRecord] = {}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_tmpc(self.auth, *args)

    def wallet(self, scheme: str) -> schemes.WalletRecord:
        if scheme not in self.records:
            client = NodeClient(self.urls["a"], Credential.load(self.auth), timeout=60)
            res = client.call(
                "POST", "/v1/wallets", {"scheme": scheme, "threshold": 2, "parties": NAMES}
            )
            self.records[scheme] = schemes.WalletRecord.from_json(res["wallet"])
        return self.records[scheme]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("node-chains")
    with cluster_process(root / "c", 3, "--round-timeout", "3") as info:
        yield Cluster(info)


def test_tx_ethereum_via_node(cluster: Cluster) -> None:
    record = cluster.wallet("ecdsa-secp256k1")
    proc = cluster.run(
        "tx", "ethereum", "--node", cluster.urls["b"], "--wallet", record.wallet_id, *ETH_TX,
        "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) == {"raw", "tx_hash", "from"}
    # The sender Ethereum recovers from the signature is the DKG key's address.
    assert out["from"] == ethereum_address(record.public_key)
    assert recover_sender(bytes.fromhex(out["raw"][2:])) == out["from"]


@pytest.mark.parametrize(
    ("scheme", "path"), [("ecdsa-secp256k1", None), ("schnorr-bip340", "m/0/3")]
)
def test_tx_bitcoin_via_node_verifies_in_the_kernel(
    cluster: Cluster, scheme: str, path: str | None
) -> None:
    record = cluster.wallet(scheme)
    args = ["tx", "bitcoin", "--node", cluster.urls["a"], "--wallet", record.wallet_id]
    args += ["--utxo", "cd" * 32 + ":1:100000", "--to", f"{BTC_OUT}:40000", "--fee", "300"]
    args += ["--network", "regtest", "--json"] + (["--path", path] if path else [])
    proc = cluster.run(*args)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["fee_sat"] == 300 and out["outputs"][0] == [BTC_OUT, 40000]
    raw = bytes.fromhex(out["raw"])
    spent = [(100000, wallet_script_pubkey(scheme, schemes.public_key_at(record, path)))]
    assert kernel_verify_input(raw, spent, 0)  # P2WPKH (ECDSA) / P2TR key path (BIP340)
    assert not kernel_verify_input(flip_signature_byte(raw, 0), spent, 0)


def test_tx_solana_via_node(cluster: Cluster) -> None:
    record = cluster.wallet("ed25519")
    proc = cluster.run(
        "tx", "solana", "--node", cluster.urls["c"], "--wallet", record.wallet_id,
        "--to", "11111111111111111111111111111112", "--lamports", "5000",
        "--blockhash", "4sGjMW1sUnHzSxGspuhpqLDx6wiyjNtZAMdL4VZHirAn", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    tx = Transaction.from_bytes(base64.b64decode(json.loads(proc.stdout)["raw_base64"]))
    assert tx.verify_with_results() == [True]


@pytest.mark.parametrize(
    ("scheme", "chains", "own_timings"),
    [("ecdsa-secp256k1", {"bitcoin", "ethereum"}, False), ("schnorr-bip340", {"bitcoin"}, True)],
)
def test_testnet_check_via_node_every_party_in_an_accepted_tx(
    cluster: Cluster, scheme: str, chains: set[str], own_timings: bool
) -> None:
    record = cluster.wallet(scheme)
    args = ["testnet-check", "--node", cluster.urls["a"], "--wallet", record.wallet_id, "--json"]
    if own_timings:
        args += ["--nodes", f"{cluster.urls['b']},{cluster.urls['c']}"]
    proc = cluster.run(*args)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["passed"] is True and doc["coordinator"] == "a"
    assert doc["wallet_id"] == record.wallet_id
    assert {c["chain"] for c in doc["checks"]} == chains
    assert all(c["accepted"] and c["flipped_rejected"] for c in doc["checks"])
    signed = {n for c in doc["checks"] for r in c["requests"] for n in r["signers"]}
    assert signed == set(NAMES)
    assert all(len(r["signers"]) == 2 for c in doc["checks"] for r in c["requests"])
    parties = {p["name"]: p for p in doc["parties"]}
    assert list(parties) == NAMES
    assert [p["party_id"] for p in doc["parties"]] == [1, 2, 3]
    for name, p in parties.items():
        assert p["took_part"] and p["accepted"], p
        assert p["rounds_s"] and all(r and min(r) >= 0 for r in p["rounds_s"]), p
        assert p["rounds_from"] == (name if own_timings or name == "a" else "a")
    human = cluster.run(*[a for a in args if a != "--json"])
    assert human.returncode == 0, human.stderr
    assert human.stdout.rstrip().endswith("PASS")


def test_signers_refused_with_node(cluster: Cluster) -> None:
    record = cluster.wallet("ecdsa-secp256k1")
    proc = cluster.run(
        "tx", "ethereum", "--node", cluster.urls["a"], "--wallet", record.wallet_id,
        "--signers", "1,2", *ETH_TX,
    )  # fmt: skip
    assert_one_line_error(proc, EXIT_INPUT)
    assert "--signers" in proc.stderr
    proc = cluster.run(
        "testnet-check", "--node", cluster.urls["a"], "--wallet", record.wallet_id,
        "--signers", "1,2",
    )  # fmt: skip
    assert_one_line_error(proc, EXIT_INPUT)


def test_unknown_node_wallet_is_one_line(cluster: Cluster) -> None:
    proc = cluster.run(
        "tx", "ethereum", "--node", cluster.urls["a"], "--wallet", "ab" * 16, *ETH_TX
    )
    assert_one_line_error(proc, EXIT_INPUT)


# -- what the client checks of a node's answers (no processes) -------------------------------


def _listing(rec: schemes.WalletRecord, **changes: Any) -> dict[str, Any]:
    entry = {
        "wallet_id": rec.wallet_id,
        "scheme": rec.scheme,
        "threshold": rec.threshold,
        "parties": NAMES,
        "public_key": rec.public_key.hex(),
        "party": 1,
        "record": rec.to_json(),
    }
    return {"wallets": [{**entry, **changes}]}


def test_a_node_record_that_does_not_hold_is_refused() -> None:
    record, _shares = schemes.keygen("schnorr-bip340", 2, 3)
    wallet = ClusterWallet.from_listing(_listing(record), record.wallet_id)
    assert wallet.names == {1: "a", 2: "b", 3: "c"}
    forged = dict(record.to_json(), threshold=1)  # a field edited alone breaks the certificate
    with pytest.raises(KeystoreError):
        ClusterWallet.from_listing(_listing(record, record=forged), record.wallet_id)
    other, _ = schemes.keygen("schnorr-bip340", 2, 3)
    with pytest.raises(KeystoreError):  # the listed key is not the record's
        ClusterWallet.from_listing(_listing(record, record=other.to_json()), record.wallet_id)
    with pytest.raises(KeystoreError):  # an older node without the record
        ClusterWallet.from_listing(_listing(record, record=None), record.wallet_id)
    with pytest.raises(ParameterError):
        ClusterWallet.from_listing(_listing(record), "00" * 16)


def test_node_signer_refuses_a_signature_that_does_not_verify() -> None:
    record, shares = schemes.keygen("ed25519", 2, 3)
    wallet = ClusterWallet(record, {1: "a", 2: "b", 3: "c"})
    other, other_shares = schemes.keygen("ed25519", 2, 3)

    def answer(sig_record: schemes.WalletRecord, sig_shares: list[schemes.KeyShare]) -> Any:
        def call(method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
            assert body is not None
            msg = bytes.fromhex(body["message"])
            return {
                "wallet_id": record.wallet_id,
                "public_key": record.public_key.hex(),
                "message": body["message"],
                "signature": schemes.sign(sig_record, sig_shares, msg).hex(),
                "signers": [1, 2],
                "request_id": "r",
            }

        return call

    good = NodeSigner(answer(record, shares[:2]), wallet)
    assert schemes.verify("ed25519", record.public_key, b"m", good(b"m"))
    assert good.answers[0]["signers"] == ["a", "b"]
    with pytest.raises(FaultyCoordinatorError):
        NodeSigner(answer(other, other_shares[:2]), wallet)(b"m")
