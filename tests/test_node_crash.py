"""A node killed at each point of a session and restarted: the request still completes.

Real node processes (``tmpc cluster local``) with the crash-test failpoints enabled
(``TMPC_TEST_FAILPOINTS=1``): a file ``failpoint`` in node b's directory makes b die with
``os._exit`` (what SIGKILL leaves) exactly at that point. The test then restarts b, as an
operator would, and checks that the request completes with one valid signature, that b marked
the interrupted session lost (its one-time state is never recomputed), and that re-submitting
the request returns the same signature.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.node_helpers import FailpointCluster, call_in_thread, cluster_process, result_ok
from tmpc.node.db import NodeDB
from tmpc.node.engine import choose_participants
from tmpc.state.ledger import Ledger

DIGEST = bytes.fromhex("c7" * 32)
NAMES = ["a", "b", "c", "d", "e"]


class Crashing(FailpointCluster):
    """The module's cluster; node b is the one killed."""


@pytest.fixture(scope="module")
def crashing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crashing]:
    root = tmp_path_factory.mktemp("crash")
    env = dict(os.environ, TMPC_TEST_FAILPOINTS="1")
    with cluster_process(root / "c", 5, "--round-timeout", "2", env=env) as info:
        yield Crashing(info, root / "c")


def _sessions(c: Crashing) -> list[dict[str, Any]]:
    db = NodeDB(Path(c.nodes["b"]["dir"]) / "node.db", node="b")
    try:
        return db.sessions()
    finally:
        db.close()


@pytest.mark.parametrize(
    ("scheme", "point"),
    [
        ("ed25519", "frost-sign:1:after-send"),  # after round 1
        ("schnorr-bip340", "bip445-sign:2:before-send"),  # share computed, not sent
        ("frost-secp256k1", "frost-sign:2:after-send"),  # share sent
        ("ecdsa-secp256k1", "dkls23-presign-sign:2:before-send"),  # mid presigning
        ("ecdsa-secp256k1", "dkls23-presign-sign:3:before-send"),  # ECDSA share, not sent
    ],
)
def test_a_participant_killed_mid_signing(crashing: Crashing, scheme: str, point: str) -> None:
    c = crashing
    wallet = c.client().call(
        "POST", "/v1/wallets", {"scheme": scheme, "threshold": 3, "parties": NAMES}
    )["wallet"]["wallet_id"]
    rid = next(
        r
        for r in (f"crash-{point.replace(':', '.')}-{i}" for i in range(200))
        if "b" in choose_participants(NAMES, r, 1, 3)
    )
    c.arm("b", point)
    body = {"wallet": wallet, "message": DIGEST.hex(), "request_id": rid}
    thread, box = call_in_thread(lambda: c.client().call("POST", "/v1/sign", dict(body)))
    died = c.restart_when_dead("b")
    thread.join(120)
    assert died, f"b did not die at {point} ({box})"
    thread.join(120)
    assert "error" not in box, box.get("error")
    res = box["result"]
    assert result_ok(res)
    # b's session of this request was lost in the crash (its one-time state is gone and never
    # recomputed), or, killed after its last message, b had finished it; it never ran twice.
    mine = [s for s in _sessions(c) if s["request"] == rid]
    assert mine and {s["status"] for s in mine} <= {"lost", "done", "aborted"}
    if point.endswith("before-send"):
        assert any(s["status"] == "lost" for s in mine)
    # One request, one signature.
    again = c.client("a").call("GET", f"/v1/requests/{rid}")
    assert again["result"]["signature"] == res["signature"]
    assert c.client().call("POST", "/v1/sign", dict(body))["signature"] == res["signature"]


def test_a_party_killed_during_a_dkg(crashing: Crashing) -> None:
    c = crashing
    c.arm("b", "chilldkg:1:after-send")
    thread, box = call_in_thread(
        lambda: c.client().call(
            "POST", "/v1/wallets", {"scheme": "ed25519", "threshold": 3, "parties": NAMES}
        )
    )
    assert c.restart_when_dead("b"), "b did not die during the DKG"
    thread.join(120)
    assert "error" not in box, box.get("error")
    wallet = box["result"]["wallet"]["wallet_id"]
    # The wallet works, with b among the signers if the quorum draws it.
    res = c.client("b").call("POST", "/v1/sign", {"wallet": wallet, "message": DIGEST.hex()})
    assert result_ok(res)


def test_a_participant_stopped_mid_session_is_named_and_another_quorum_signs(
    crashing: Crashing,
) -> None:
    c = crashing
    wallet = c.client().call(
        "POST", "/v1/wallets", {"scheme": "schnorr-bip340", "threshold": 3, "parties": NAMES}
    )["wallet"]["wallet_id"]
    rid = next(
        r
        for r in (f"stall-{i}" for i in range(200))
        if {"a", "b"} <= set(choose_participants(NAMES, r, 1, 3))
    )
    c.arm("b", "stop:bip445-sign:1:before-send")  # b answers ready, then stops (SIGSTOP)
    try:
        res = c.client().call(
            "POST", "/v1/sign", {"wallet": wallet, "message": DIGEST.hex(), "request_id": rid}
        )
        assert result_ok(res)
        assert 2 not in res["signers"]  # done by a quorum without b
        # The live parties of the first attempt named b in their round timeout.
        sessions = c.client().call("GET", "/v1/sessions")["sessions"]
        first = [s for s in sessions if s["request"] == rid and s["attempt"] == 1]
        assert first and first[0]["status"] == "aborted"
        assert first[0]["missing"] == ["b"]
    finally:
        os.kill(c.pids["b"], signal.SIGCONT)


def test_a_signer_killed_after_taking_a_pooled_presignature(crashing: Crashing) -> None:
    """b takes a pooled presignature (marked used in its ledger), computes its share and dies
    before sending it; restarted, it never offers that presignature again, and the request
    completes with another one: each presignature signs at most once."""
    c = crashing
    wallet = c.client().call(
        "POST", "/v1/wallets", {"scheme": "ecdsa-secp256k1", "threshold": 3, "parties": NAMES}
    )["wallet"]["wallet_id"]
    prid = next(
        r for r in (f"pool-{i}" for i in range(200)) if "b" in choose_participants(NAMES, r, 1, 3)
    )
    made = c.client().call(
        "POST", "/v1/presign", {"wallet": wallet, "count": 2, "request_id": prid}
    )
    assert 2 in made["signers"]  # b is party 2 (the order of the DKG's parties)
    c.arm("b", "dkls23-sign:1:before-send")
    body = {"wallet": wallet, "message": DIGEST.hex(), "request_id": "pooled-crash"}
    thread, box = call_in_thread(lambda: c.client().call("POST", "/v1/sign", dict(body)))
    assert c.restart_when_dead("b"), "b did not take a presignature and die"
    thread.join(120)
    assert "error" not in box, box.get("error")
    first = box["result"]
    assert result_ok(first)  # b, named missing, is left out of the request's next attempt
    assert any(s["status"] == "lost" for s in _sessions(c) if s["request"] == "pooled-crash")
    # The presignature b took is recorded as used at b, and b's pool offers only the other.
    ids = [bytes.fromhex(p) for p in made["presignatures"]]
    ledger = Ledger(Path(c.nodes["b"]["dir"]) / "ledger.db")
    try:
        (taken,) = ledger.used_presignatures(2, ids)
    finally:
        ledger.close()
    listed = {w["wallet_id"]: w for w in c.client("b").call("GET", "/v1/wallets")["wallets"]}
    assert listed[wallet]["presignatures"] == 1
    # The next signature finishes the other one; the one after presigns in its session.
    sigs = [first]
    for k, pooled in ((1, True), (2, False)):
        res = c.client().call("POST", "/v1/sign", {"wallet": wallet, "message": f"{k:02x}" * 32})
        assert result_ok(res) and res["presignature_used"] is pooled
        sigs.append(res)
    ledger = Ledger(Path(c.nodes["b"]["dir"]) / "ledger.db")
    try:
        assert ledger.used_presignatures(2, ids) == set(ids) and taken in ids
    finally:
        ledger.close()
    # No two signatures share a nonce (r): no presignature signed twice.
    assert len({r["signature"][:64] for r in sigs}) == 3
