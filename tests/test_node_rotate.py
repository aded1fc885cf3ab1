"""Rotation (refresh) across party nodes, two-phase: stage, prove, switch.

In-memory engines here (the same engine code as a node process, over an in-memory network);
real node processes, killed in each phase, in ``tests/test_node_rotate_crash.py``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.node_helpers import SCHEMES, memory_cluster, open_engine, result_ok, stop_all
from tmpc import schemes
from tmpc.errors import KeystoreError, ParameterError, ProtocolError
from tmpc.node.engine import Engine, EngineSettings, RequestFailedError, in_window, parse_window
from tmpc.transport.memory import Fault

DIGEST = bytes.fromhex("5a" * 32)
#: Generous timeouts: a lifecycle change runs several stages, and CI machines are shared.
SETTINGS = EngineSettings(ready_timeout=2.0, round_timeout=4.0)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _wallet(e: Engine, scheme: str, t: int, parties: list[str]) -> str:
    res = await e.submit("keygen", {"scheme": scheme, "threshold": t, "parties": parties}, None)
    return str(res["wallet"]["wallet_id"])


async def _sign(e: Engine, wid: str, message: bytes = DIGEST) -> dict[str, Any]:
    return await e.submit("sign", {"wallet": wid, "message": message.hex()}, None)


def _mixed_fails(record: schemes.WalletRecord, shares: list[Any], message: bytes) -> bool:
    """Signing with an old-epoch share among new ones: refused naming the stale party, or
    a signature that no independent verifier accepts."""
    stale = shares[0].identifier
    try:
        sig = schemes.sign(record, shares, message)
    except ProtocolError as exc:
        return stale in exc.culprits or not exc.culprits
    except (KeystoreError, ParameterError) as exc:
        # the stale share does not match its party's verification share in the record
        return f"party {stale}" in str(exc)
    return not result_ok(
        {"scheme": record.scheme, "public_key": record.public_key.hex(),
         "message": message.hex(), "signature": sig.hex()}
    )  # fmt: skip


def _epochs(engines: dict[str, Engine], wid: str) -> dict[str, int]:
    return {n: e.wallets.get(wid).record.epoch for n, e in engines.items()}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_rotation_keeps_the_key_and_the_next_signature_verifies(
    tmp_path: Path, scheme: str
) -> None:
    async def go() -> None:
        _, engines = await memory_cluster(tmp_path, 4, settings=SETTINGS)
        try:
            wid = await _wallet(engines["a"], scheme, 2, ["a", "b", "c", "d"])
            before = engines["b"].wallets.get(wid)
            assert before.share is not None
            old_share = before.share
            res = await engines["a"].submit("refresh", {"wallet": wid}, None)
            assert res["epoch"] == 1 and res["previous_epoch"] == 0
            assert res["committed"] == ["a", "b", "c", "d"] and res["pending"] == []
            assert res["public_key"] == before.record.public_key.hex()
            # The test signature verifies independently under the unchanged key.
            after = engines["b"].wallets.get(wid)
            assert result_ok(
                {
                    "scheme": scheme,
                    "public_key": res["public_key"],
                    "message": schemes.rotation_test_message(after.record).hex(),
                    "signature": res["test_signature"],
                }
            )
            assert _epochs(engines, wid) == {"a": 1, "b": 1, "c": 1, "d": 1}
            assert after.record.wallet_id == wid
            assert after.record.public_key == before.record.public_key
            assert after.record.chain_code == before.record.chain_code
            assert after.share is not None and after.share.secshare != old_share.secshare
            # Old files are gone; only the new epoch's share remains on each node.
            wdir = tmp_path / "b" / "wallets" / wid
            assert sorted(p.name for p in wdir.glob("party-*.share")) == [
                f"party-{after.share.identifier}.e1.share"
            ]
            assert not (wdir / "staged").exists() or not any((wdir / "staged").iterdir())
            sig = await _sign(engines["c"], wid)
            assert result_ok(sig)
            # An old share and new ones never make a valid signature.
            others = [engines[n].wallets.get(wid).share for n in ("a", "c")]
            assert _mixed_fails(after.record, [old_share, *(x for x in others if x)], DIGEST)
            events = [e["event"] for e in engines["d"].db.lifecycle(wid)]
            assert events == ["created", "staged", "switched"]
        finally:
            await stop_all(engines)

    run(go())


def _drop(kinds: set[str], to: str | None = None, frm: str | None = None) -> Any:
    """A fault hook dropping envelopes of ``kinds`` (to ``to``, from ``frm``) while armed."""
    from tmpc.wire import envelope

    armed = {"on": False}

    def hook(sender: str, receiver: str, data: bytes) -> Fault:
        if not armed["on"]:
            return Fault.DELIVER
        env = envelope.Envelope.from_bytes(data)
        if (
            env.protocol in kinds
            and (to is None or receiver == to)
            and (frm is None or sender == frm)
        ):
            return Fault.DROP
        return Fault.DELIVER

    hook.armed = armed  # type: ignore[attr-defined]
    return hook


def test_a_party_silent_during_the_refresh_leaves_every_node_on_the_old_epoch(
    tmp_path: Path,
) -> None:
    hook = _drop({"refresh"}, frm="d")
    quick = EngineSettings(ready_timeout=1.0, round_timeout=1.0)  # every attempt times out

    async def go() -> None:
        _, engines = await memory_cluster(tmp_path, 4, fault=hook, settings=quick)
        try:
            wid = await _wallet(engines["a"], "ed25519", 2, ["a", "b", "c", "d"])
            hook.armed["on"] = True
            with pytest.raises(RequestFailedError) as info:
                await engines["a"].submit("refresh", {"wallet": wid}, "rot-1")
            assert "d" in str(info.value)
            hook.armed["on"] = False
            assert _epochs(engines, wid) == {"a": 0, "b": 0, "c": 0, "d": 0}
            for e in engines.values():
                assert not e.wallets.has_staged(wid)
            assert result_ok(await _sign(engines["b"], wid))
            # The next rotation goes through.
            res = await engines["a"].submit("refresh", {"wallet": wid}, "rot-2")
            assert res["epoch"] == 1 and res["pending"] == []
            assert result_ok(await _sign(engines["d"], wid))
        finally:
            await stop_all(engines)

    run(go())


def test_a_node_the_commit_missed_catches_up_from_a_peer(tmp_path: Path) -> None:
    hook = _drop({"commit"}, to="d")

    async def go() -> None:
        _, engines = await memory_cluster(tmp_path, 4, fault=hook, settings=SETTINGS)
        try:
            wid = await _wallet(engines["a"], "schnorr-bip340", 2, ["a", "b", "c", "d"])
            hook.armed["on"] = True
            res = await engines["a"].submit("refresh", {"wallet": wid}, None)
            assert res["committed"] == ["a", "b", "c"] and res["pending"] == ["d"]
            assert _epochs(engines, wid) == {"a": 1, "b": 1, "c": 1, "d": 0}
            assert engines["d"].wallets.has_staged(wid)
            hook.armed["on"] = False
            # d restarts: it finds its staged epoch and asks its peers, which show the proof.
            await engines["d"].stop()
            engines["d"].db.close()
            engines["d"].ledger.close()
            network = engines["a"].transport.network  # type: ignore[attr-defined]
            engines["d"] = open_engine(tmp_path / "d", network)
            await engines["d"].start()
            for _ in range(200):
                if engines["d"].wallets.get(wid).record.epoch == 1:
                    break
                await asyncio.sleep(0.02)
            assert _epochs(engines, wid) == {"a": 1, "b": 1, "c": 1, "d": 1}
            assert not engines["d"].wallets.has_staged(wid)
            assert result_ok(await _sign(engines["d"], wid))
            assert [e["event"] for e in engines["d"].db.lifecycle(wid)][-1] == "switched"
        finally:
            await stop_all(engines)

    run(go())


def test_a_node_behind_catches_up_when_asked_to_sign_or_is_told_to_be_repaired(
    tmp_path: Path,
) -> None:
    hook = _drop({"commit"}, to="d")

    async def go() -> None:
        _, engines = await memory_cluster(tmp_path, 4, fault=hook, settings=SETTINGS)
        try:
            wids = [
                await _wallet(engines["a"], "frost-secp256k1", 3, ["a", "b", "c", "d"])
                for _ in range(2)
            ]
            hook.armed["on"] = True
            for wid in wids:
                res = await engines["a"].submit("refresh", {"wallet": wid}, None)
                assert res["pending"] == ["d"]
            hook.armed["on"] = False
            # Wallet 0: d still has the staged epoch; a signing proposal makes it catch up.
            assert result_ok(await _sign(engines["a"], wids[0]))
            for _ in range(200):
                if engines["d"].wallets.get(wids[0]).record.epoch == 1:
                    break
                await asyncio.sleep(0.02)
            assert engines["d"].wallets.get(wids[0]).record.epoch == 1
            # Wallet 1: d lost its staged files; it refuses, saying it must be repaired.
            for staged in (tmp_path / "d" / "wallets" / wids[1] / "staged").iterdir():
                for f in staged.iterdir():
                    f.unlink()
                staged.rmdir()
            assert result_ok(await _sign(engines["a"], wids[1]))  # a, b and c sign
            for _ in range(100):
                if engines["d"].db.lifecycle(wids[1])[-1]["event"] == "behind":
                    break
                await asyncio.sleep(0.02)
            with pytest.raises(ParameterError, match="repair this party"):
                engines["d"]._check_epoch(engines["d"].wallets.get(wids[1]), 1)
            events = engines["d"].db.lifecycle(wids[1])
            assert events[-1]["event"] == "behind" and events[-1]["epoch_after"] == 1
        finally:
            await stop_all(engines)

    run(go())


def test_scheduled_rotation_in_its_window_and_deferred_while_sessions_run(
    tmp_path: Path,
) -> None:
    settings = EngineSettings(ready_timeout=2.0, round_timeout=4.0, rotate_every=0.4)

    async def go() -> None:
        _, engines = await memory_cluster(tmp_path, 3, settings=settings)
        try:
            wid = await _wallet(engines["b"], "ed25519", 2, ["a", "b", "c"])
            # a leads the wallet (its party 1); busy, it defers.
            a = engines["a"]
            a._inflight["busy"] = asyncio.get_running_loop().create_future()  # type: ignore[assignment]
            assert a.rotations_due(time.time() + 10) == []
            a._inflight.pop("busy").cancel()
            assert a.rotations_due(time.time() + 10) == [wid]
            assert engines["b"].rotations_due(time.time() + 10) == []  # not b's to lead
            for _ in range(300):
                if min(_epochs(engines, wid).values()) >= 1:
                    break
                await asyncio.sleep(0.02)
            assert min(_epochs(engines, wid).values()) >= 1
            assert result_ok(await _sign(engines["c"], wid))
        finally:
            await stop_all(engines)

    run(go())


def test_rotation_windows() -> None:
    day = 86400 * 20000  # a UTC midnight
    assert parse_window("02:00-04:30") == (120, 270)
    assert in_window((120, 270), day + 3 * 3600)
    assert not in_window((120, 270), day + 5 * 3600)
    assert in_window((23 * 60, 60), day + 30 * 60)  # across midnight
    assert not in_window((23 * 60, 60), day + 12 * 3600)
    assert in_window(None, day)
    for bad in ("2-4", "25:00-01:00", "01:00-01:00", "nonsense"):
        with pytest.raises(ParameterError):
            parse_window(bad)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_reshare_3_of_5_to_2_of_3_and_back_keeps_the_key(tmp_path: Path, scheme: str) -> None:
    async def go() -> None:
        _, engines = await memory_cluster(tmp_path, 5, settings=SETTINGS)
        try:
            wid = await _wallet(engines["a"], scheme, 3, ["a", "b", "c", "d", "e"])
            before = engines["a"].wallets.get(wid).record
            d_share = engines["d"].wallets.get(wid).share
            res = await engines["a"].submit(
                "reshare", {"wallet": wid, "threshold": 2, "parties": ["c", "d", "e"]}, None
            )
            assert res["epoch"] == 1 and res["pending"] == []
            for n, e in engines.items():
                w = e.wallets.get(wid)
                assert w.record.epoch == 1 and w.record.threshold == 2 and w.record.parties == 3
                assert w.record.public_key == before.public_key
                assert w.record.chain_code == before.chain_code
                assert (w.share is not None) == (n in ("c", "d", "e")), n
                wdir = tmp_path / n / "wallets" / wid
                assert len(list(wdir.glob("party-*.share"))) == (1 if n in "cde" else 0), n
            assert [e["event"] for e in engines["a"].db.lifecycle(wid)][-1] == "removed"
            assert [e["event"] for e in engines["c"].db.lifecycle(wid)][-1] == "switched"
            assert engines["a"].wallets.get(wid).names == {1: "c", 2: "d", 3: "e"}
            assert result_ok(await _sign(engines["b"], wid))  # b coordinates, c-e sign
            # d's old share (party 4 of 3-of-5), used as its new party 2, does not combine
            # with the new ones.
            new = [engines[n].wallets.get(wid).share for n in ("c", "e")]
            rec = engines["c"].wallets.get(wid).record
            assert d_share is not None
            stale = schemes.KeyShare(2, d_share.secshare, d_share.hostseckey, d_share.pairwise)
            assert _mixed_fails(rec, [stale, *(x for x in new if x)], DIGEST)
            # And back to 3-of-5 (new parties a and b join again with fresh shares).
            res = await engines["e"].submit(
                "reshare",
                {"wallet": wid, "threshold": 3, "parties": ["a", "b", "c", "d", "e"]},
                None,
            )
            assert res["epoch"] == 2
            assert {n: e.wallets.get(wid).record.threshold for n, e in engines.items()} == {
                n: 3 for n in engines
            }
            assert result_ok(await _sign(engines["a"], wid))
            assert engines["a"].wallets.get(wid).record.public_key == before.public_key
        finally:
            await stop_all(engines)

    run(go())


@pytest.mark.parametrize("scheme", SCHEMES)
def test_repair_rebuilds_a_lost_share_on_another_node(tmp_path: Path, scheme: str) -> None:
    async def go() -> None:
        _, engines = await memory_cluster(tmp_path, 5, settings=SETTINGS)
        try:
            wid = await _wallet(engines["a"], scheme, 2, ["a", "b", "c", "d"])
            before = engines["a"].wallets.get(wid)
            lost = before.share
            d_party = engines["d"].wallets.get(wid).share
            assert lost is not None and d_party is not None
            # d's machine is lost: e, a spare member, takes over d's party (4).
            res = await engines["b"].submit(
                "repair", {"wallet": wid, "party": 4, "node": "e"}, None
            )
            assert res["epoch"] == 1 and res["pending"] == []
            e_wallet = engines["e"].wallets.get(wid)
            assert e_wallet.share is not None and e_wallet.share.identifier == 4
            if not schemes.get_scheme(scheme).dkls23:  # (ECDSA: renewed by the rotation after)
                assert e_wallet.share.secshare == d_party.secshare  # the very share, rebuilt
            schemes.check_share(e_wallet.record, e_wallet.share)
            for n, e in engines.items():
                w = e.wallets.get(wid)
                assert w.names == {1: "a", 2: "b", 3: "c", 4: "e"}, n
                assert w.record.public_key == before.record.public_key
                assert (w.share is None) == (n == "d"), n  # d's old copy is retired
            if schemes.get_scheme(scheme).dkls23:
                assert res["rotated_to"] == 2  # every pair set up again with e
            parties = {n: e for n, e in engines.items() if n != "d"}  # d only keeps a record
            assert set(_epochs(parties, wid).values()) == {res.get("rotated_to") or 1}
            # e signs with each other party.
            for other in ("a", "b", "c"):
                for attempt in range(20):
                    sig = await engines["e"].submit(
                        "sign", {"wallet": wid, "message": f"{attempt:02x}" * 32}, None
                    )
                    assert result_ok(sig)
                    if sorted(sig["signers"]) == sorted([4, before.ids[other]]):
                        break
        finally:
            await stop_all(engines)

    run(go())
