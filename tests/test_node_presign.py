"""Pooled DKLs23 presignatures on nodes (engines in one process over the in-memory network).

A ``presign`` request makes a batch among a quorum, kept in each signer's pool; a later ECDSA
signature whose whole signer set is ready finishes one in a single round; each is used at most
once (taken from the pool and recorded in the single-use ledger before the share exists);
an empty pool or a missing copy falls back to presigning in the session. Every signature is
checked with libsecp256k1 (coincurve) through ``result_ok``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.node_helpers import memory_cluster, result_ok, stop_all
from tmpc.errors import ParameterError, StateError
from tmpc.node.engine import Engine, pooled_presignatures

DIGEST = bytes(range(32))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _wallet(e: Engine, t: int, parties: list[str]) -> str:
    body = {"scheme": "ecdsa-secp256k1", "threshold": t, "parties": parties}
    res = await e.submit("keygen", body, None)
    return str(res["wallet"]["wallet_id"])


def _pool(engines: dict[str, Engine], wid: str) -> dict[str, set[str]]:
    out = {}
    for name, e in engines.items():
        me = e.wallets.get(wid).ids[name]
        out[name] = {pid.hex() for _, pid in e.presigs.available(wid, None, me)}
    return out


def _protocols(e: Engine, rid: str) -> list[str]:
    return [s["protocol"] for s in e.db.sessions() if s["request"] == rid]


def test_pooled_presignatures_sign_in_one_round_once_each(tmp_path: Path) -> None:
    async def go() -> None:
        _, engines = await memory_cluster(tmp_path, 5)
        try:
            wid = await _wallet(engines["a"], 3, list(engines))
            made = await engines["b"].submit("presign", {"wallet": wid, "count": 3}, None)
            ids = made["presignatures"]
            assert len(set(ids)) == 3 and len(made["signers"]) == 3
            signer_names = sorted(engines["a"].wallets.get(wid).names[i] for i in made["signers"])
            pools = _pool(engines, wid)
            for name in engines:
                assert pools[name] == (set(ids) if name in signer_names else set())
            # Three signatures finish the three presignatures, by their signer set.
            for k in range(3):
                msg = bytes([k]) * 32
                res = await engines["a"].submit("sign", {"wallet": wid, "message": msg.hex()}, None)
                assert result_ok(res)
                assert res["signers"] == made["signers"]
            assert all(not p for p in _pool(engines, wid).values())
            # Every signer recorded each one as used in its single-use ledger.
            for name in signer_names:
                e = engines[name]
                me = e.wallets.get(wid).ids[name]
                used = e.ledger.used_presignatures(me, [bytes.fromhex(i) for i in ids])
                assert {u.hex() for u in used} == set(ids)
            # The pool is empty: the next signature presigns in its session.
            res = await engines["c"].submit("sign", {"wallet": wid, "message": "ab" * 32}, None)
            assert result_ok(res)
        finally:
            await stop_all(engines)

    run(go())


def test_concurrent_signatures_never_share_a_presignature(tmp_path: Path) -> None:
    async def go() -> None:
        _, engines = await memory_cluster(tmp_path, 3)
        try:
            wid = await _wallet(engines["a"], 2, list(engines))
            made = await engines["a"].submit("presign", {"wallet": wid, "count": 8}, None)
            ids = set(made["presignatures"])
            results = await asyncio.gather(
                *(
                    engines["a"].submit(
                        "sign", {"wallet": wid, "message": (bytes([k]) * 32).hex()}, None
                    )
                    for k in range(12)
                )
            )
            assert all(result_ok(r) for r in results)
            assert len({r["signature"] for r in results}) == 12
            # Each pooled presignature went into at most one signature (R differs per sig).
            rs = [r["signature"][:64] for r in results]
            assert len(set(rs)) == 12
            left = _pool(engines, wid)
            assert all(p <= ids for p in left.values())
            used = ids - set.union(*left.values())
            print("pooled presignatures used:", len(used), "of", len(ids))
            assert used, "no signature finished a pooled presignature"
        finally:
            await stop_all(engines)

    run(go())


def test_a_missing_copy_fails_the_attempt_and_the_request_still_completes(
    tmp_path: Path,
) -> None:
    async def go() -> None:
        _, engines = await memory_cluster(tmp_path, 3)
        try:
            wid = await _wallet(engines["a"], 2, list(engines))
            made = await engines["a"].submit("presign", {"wallet": wid, "count": 1}, None)
            pid = bytes.fromhex(made["presignatures"][0])
            names = engines["a"].wallets.get(wid).names
            signers = [names[i] for i in made["signers"]]
            # One signer loses its copy (taken out of its pool): only the other lists it,
            # so no attempt can use it, and the request presigns in its session instead.
            lost = engines[signers[0]]
            me = lost.wallets.get(wid).ids[signers[0]]
            lost.presigs.take(wid, None, me, made["signers"], pid)
            res = await engines["a"].submit("sign", {"wallet": wid, "message": DIGEST.hex()}, None)
            assert result_ok(res)
            # The taken one is recorded as used: it can never be taken again.
            with pytest.raises(StateError):
                lost.presigs.take(wid, None, me, made["signers"], pid)
        finally:
            await stop_all(engines)

    run(go())


def test_presign_requests_are_checked(tmp_path: Path) -> None:
    async def go() -> None:
        _, engines = await memory_cluster(tmp_path, 3)
        try:
            wid = await _wallet(engines["a"], 2, list(engines))
            body = {"scheme": "schnorr-bip340", "threshold": 2, "parties": list(engines)}
            res = await engines["a"].submit("keygen", body, None)
            bip340 = res["wallet"]["wallet_id"]
            for bad in (
                {"wallet": bip340, "count": 1},
                {"wallet": wid, "count": 0},
                {"wallet": wid, "count": 33},
                {"wallet": wid, "count": "2"},
                {"wallet": wid, "count": 1, "path": "m/x"},
            ):
                with pytest.raises(ParameterError):
                    await engines["a"].submit("presign", bad, None)
        finally:
            await stop_all(engines)

    run(go())


def _answer(pids: list[tuple[str, list[str]]], **extra: Any) -> dict[str, Any]:
    return {"ok": True, "presignatures": [[p, s] for p, s in pids], **extra}


def test_a_presignature_is_usable_only_if_its_whole_set_lists_it() -> None:
    s = ["a", "b"]
    ready = {"a": _answer([("p1", s), ("p2", s)]), "b": _answer([("p1", s)]), "c": _answer([])}
    assert pooled_presignatures(ready, 2) == {"p1": s}
    # A set that disagrees, a set of the wrong size, or a party not ready: unusable.
    assert (
        pooled_presignatures({"a": _answer([("p1", s)]), "b": _answer([("p1", ["b", "c"])])}, 2)
        == {}
    )
    assert pooled_presignatures({"a": _answer([("p1", ["a"])])}, 2) == {}
    assert pooled_presignatures({"a": _answer([("p1", s)]), "b": {"ok": False}}, 2) == {}
    # A party another ready party caught cheating is not a candidate when others remain.
    ready = {
        "a": _answer([("p1", s)]),
        "b": _answer([("p1", s)]),
        "c": _answer([], excluded=["b"]),
    }
    assert pooled_presignatures(ready, 2) == {}
