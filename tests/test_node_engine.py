"""The node engine with whole clusters in one process over the in-memory network.

Real envelopes (signed, encrypted), real protocol machines, real SQLite state; only the
sockets are replaced, so faults can be injected per message: stalls, a cheating party,
duplicates, lost acknowledgements, replays and forgeries.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.node_helpers import SCHEMES, memory_cluster, open_engine, result_ok, stop_all
from tmpc.errors import ParameterError
from tmpc.node import machines
from tmpc.node.engine import Engine, EngineSettings, RequestFailedError, choose_participants
from tmpc.protocols.machine import Message
from tmpc.transport.memory import Fault
from tmpc.wire import envelope

DIGEST = bytes(range(32))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _keygen(e: Engine, scheme: str, t: int, parties: list[str]) -> dict[str, Any]:
    res = await e.submit("keygen", {"scheme": scheme, "threshold": t, "parties": parties}, None)
    return dict(res["wallet"])


@pytest.mark.parametrize("scheme", SCHEMES)
def test_dkg_and_signing_across_five_engines(tmp_path: Path, scheme: str) -> None:
    async def go() -> None:
        _, engines = await memory_cluster(tmp_path, 5)
        try:
            w = await _keygen(engines["a"], scheme, 3, list(engines))
            # Every party stored the same public record and its own share.
            for e in engines.values():
                nw = e.wallets.get(w["wallet_id"])
                assert nw.record.public_key.hex() == w["public_key"]
                assert nw.share is not None
            # Any node coordinates; the signature verifies outside tmpc.
            for coordinator in ("b", "e"):
                res = await engines[coordinator].submit(
                    "sign", {"wallet": w["wallet_id"], "message": DIGEST.hex()}, None
                )
                assert result_ok(res)
                assert len(res["signers"]) == 3
        finally:
            await stop_all(engines)

    run(go())


def test_two_of_five_down_still_signs(tmp_path: Path) -> None:
    async def go() -> None:
        network, engines = await memory_cluster(tmp_path, 5)
        try:
            w = await _keygen(engines["a"], "schnorr-bip340", 3, list(engines))
            network.set_down("d")
            network.set_down("e")
            res = await engines["a"].submit(
                "sign", {"wallet": w["wallet_id"], "message": DIGEST.hex()}, None
            )
            assert result_ok(res)
            assert res["signers"] == [1, 2, 3]
        finally:
            await stop_all(engines)

    run(go())


def test_stalled_party_is_named_and_the_request_completes_on_another_quorum(
    tmp_path: Path,
) -> None:
    stalled: set[str] = set()

    def fault(sender: str, receiver: str, data: bytes) -> Fault:
        # After answering "ready", the stalled party sends no protocol message at all.
        try:
            env = envelope.Envelope.from_bytes(data)
        except envelope.EnvelopeError:
            return Fault.DELIVER
        if sender in stalled and env.protocol not in ("ready", "propose", "start"):
            return Fault.DROP
        return Fault.DELIVER

    async def go() -> None:
        _, engines = await memory_cluster(tmp_path, 5, fault=fault)
        try:
            w = await _keygen(engines["a"], "ed25519", 3, list(engines))
            rid = "stall-test"
            first = choose_participants(list(engines), rid, 1, 3)
            victim = next(p for p in first if p != "a")
            stalled.add(victim)
            res = await engines["a"].submit(
                "sign", {"wallet": w["wallet_id"], "message": DIGEST.hex()}, rid
            )
            assert result_ok(res)
            sessions = engines["a"].db.sessions()
            aborted = [s for s in sessions if s["request"] == rid and s["status"] == "aborted"]
            assert aborted and all(s["attempt"] == 1 for s in aborted)
            done = [s for s in sessions if s["request"] == rid and s["status"] == "done"]
            assert done and victim not in done[0]["participants"]
            # A stall excludes only from this request, not from the wallet.
            assert victim not in engines["a"].db.excluded(w["wallet_id"])
        finally:
            await stop_all(engines)

    run(go())


def test_cheating_party_is_excluded_from_the_wallet(tmp_path: Path) -> None:
    async def go() -> None:
        _, engines = await memory_cluster(tmp_path, 4)
        try:
            w = await _keygen(engines["a"], "frost-secp256k1", 2, list(engines))
            cheat = engines["c"]
            original = cheat._emit

            def corrupt(s: Any, out: list[Message]) -> None:
                bad = []
                for m in out:
                    if m.round == 2:  # the signature share: flip a bit of it
                        p = bytearray(m.payload)
                        p[5] ^= 1
                        m = Message(m.round, m.sender, m.recipient, bytes(p))
                    bad.append(m)
                original(s, bad)

            cheat._emit = corrupt  # type: ignore[method-assign]
            # Pick a request id whose first quorum includes the cheater.
            rid = next(
                r
                for r in (f"cheat-{i}" for i in range(100))
                if "c" in choose_participants(["a", "b", "c", "d"], r, 1, 2)
            )
            res = await engines["a"].submit(
                "sign", {"wallet": w["wallet_id"], "message": DIGEST.hex()}, rid
            )
            assert result_ok(res)  # the cheater's own aggregate may even be the answer
            # Every honest party of that session caught c and excluded it for the wallet.
            assert any("c" in e.db.excluded(w["wallet_id"]) for e in engines.values())
            aborted = [s for e in engines.values() for s in e.db.sessions(status="aborted")]
            assert any(s["culprits"] == ["c"] for s in aborted)
            # Later requests leave c out from the start.
            res2 = await engines["b"].submit(
                "sign", {"wallet": w["wallet_id"], "message": DIGEST[::-1].hex()}, None
            )
            assert result_ok(res2) and 3 not in res2["signers"]
        finally:
            await stop_all(engines)

    run(go())


def test_duplicates_and_lost_acknowledgements_change_nothing(tmp_path: Path) -> None:
    seen: dict[str, int] = {}

    def fault(sender: str, receiver: str, data: bytes) -> Fault:
        # Deterministic, so every receiver sees both faults: the 3rd, 8th, 13th... message to
        # a node arrives twice, the 5th, 10th... loses its acknowledgement (re-sent).
        seen[receiver] = n = seen.get(receiver, 0) + 1
        return Fault.DUPLICATE if n % 5 == 3 else Fault.LOSE_ACK if n % 5 == 0 else Fault.DELIVER

    async def go() -> None:
        _, engines = await memory_cluster(tmp_path, 3, fault=fault)
        try:
            w = await _keygen(engines["a"], "ecdsa-secp256k1", 2, list(engines))
            res = await engines["a"].submit(
                "sign", {"wallet": w["wallet_id"], "message": DIGEST.hex()}, None
            )
            assert result_ok(res)
            for name, engine in engines.items():
                counters = engine.opener.counters
                assert counters["duplicate"] > 0, name
                # Late copies of an ended session are refused as stale; nothing else is.
                assert all(v == 0 for k, v in counters.items() if k not in ("duplicate", "stale"))
        finally:
            await stop_all(engines)

    run(go())


def test_request_ids_are_idempotent_one_signature_per_request(tmp_path: Path) -> None:
    async def go() -> None:
        _, engines = await memory_cluster(tmp_path, 3)
        try:
            w = await _keygen(engines["a"], "schnorr-bip340", 2, list(engines))
            body = {"wallet": w["wallet_id"], "message": DIGEST.hex()}
            first = await engines["a"].submit("sign", body, "same-request")
            again = await engines["a"].submit("sign", body, "same-request")
            assert again["signature"] == first["signature"]
            # Another coordinator with the same id: the participants that finished the
            # request answer with their recorded result instead of signing again.
            other = await engines["b"].submit("sign", body, "same-request")
            if set(other["signers"]) == set(first["signers"]):
                assert other["signature"] == first["signature"]
            with pytest.raises(ParameterError, match="another request"):
                await engines["a"].submit(
                    "sign", {"wallet": w["wallet_id"], "message": DIGEST[::-1].hex()},
                    "same-request",
                )  # fmt: skip
        finally:
            await stop_all(engines)

    run(go())


def test_tampered_foreign_and_replayed_envelopes_are_rejected_and_counted(
    tmp_path: Path,
) -> None:
    captured: list[tuple[str, str, bytes]] = []

    def fault(sender: str, receiver: str, data: bytes) -> Fault:
        captured.append((sender, receiver, data))
        return Fault.DELIVER

    async def go() -> None:
        _, engines = await memory_cluster(tmp_path, 3, fault=fault)
        try:
            w = await _keygen(engines["a"], "ed25519", 2, list(engines))
            await engines["a"].submit(
                "sign", {"wallet": w["wallet_id"], "message": DIGEST.hex()}, None
            )
            _sender, receiver, data = next(
                c for c in captured if envelope.Envelope.from_bytes(c[2]).protocol == "frost-sign"
            )
            target = engines[receiver]
            # Tampered: one bit of the body.
            bad = bytearray(data)
            bad[-70] ^= 1
            with pytest.raises(envelope.EnvelopeError) as exc:
                await target.deliver(bytes(bad))
            assert exc.value.reason == "tampered"
            # Truncated.
            with pytest.raises(envelope.EnvelopeError) as exc:
                await target.deliver(data[:-1])
            assert exc.value.reason == "malformed"
            # Replayed after the session ended: refused from the durable session record.
            with pytest.raises(envelope.EnvelopeError) as exc:
                await target.deliver(data)
            assert exc.value.reason == "stale"
            counters = target.opener.counters
            assert counters["tampered"] >= 1 and counters["malformed"] >= 1
            assert counters["stale"] >= 1
        finally:
            await stop_all(engines)
        # Foreign: an envelope of another cluster.
        _, other = await memory_cluster(tmp_path / "other", 3)
        try:
            with pytest.raises(envelope.EnvelopeError) as exc:
                await other["b"].deliver(data)
            assert exc.value.reason in ("foreign", "unknown-sender")
        finally:
            await stop_all(other)

    run(go())


def test_too_few_parties_fails_with_a_clear_error(tmp_path: Path) -> None:
    async def go() -> None:
        network, engines = await memory_cluster(tmp_path, 3)
        try:
            w = await _keygen(engines["a"], "ed25519", 3, list(engines))
            network.set_down("c")
            with pytest.raises(RequestFailedError, match="needed"):
                await engines["a"].submit(
                    "sign", {"wallet": w["wallet_id"], "message": DIGEST.hex()}, None
                )
        finally:
            await stop_all(engines)

    run(go())


def test_a_restarted_node_marks_its_running_sessions_lost(tmp_path: Path) -> None:
    async def go() -> None:
        network, engines = await memory_cluster(tmp_path, 3)
        try:
            w = await _keygen(engines["a"], "ed25519", 2, list(engines))
            # A session that was running when the node died.
            engines["b"].db.start_session(
                b"\x01" * 32, "crashed-request", 1, "sign", w["wallet_id"], ["a", "b"], "a",
                "sign", {},
            )  # fmt: skip
            await engines["b"].stop()
            engines["b"].db.close()
            engines["b"] = open_engine(tmp_path / "b", network)
            await engines["b"].start()
            assert engines["b"].db.session_status(b"\x01" * 32) == "lost"
            res = await engines["b"].submit(
                "sign", {"wallet": w["wallet_id"], "message": DIGEST.hex()}, None
            )
            assert result_ok(res)
        finally:
            await stop_all(engines)

    run(go())


def test_a_coordinator_splitting_the_request_gets_no_honest_party_excluded(
    tmp_path: Path,
) -> None:
    async def go() -> None:
        _, engines = await memory_cluster(tmp_path, 3)
        try:
            w = await _keygen(engines["a"], "frost-secp256k1", 2, ["b", "c"])
            coordinator = engines["a"]  # not a party: it only relays the request
            original = coordinator._send_control

            def split(to: str, kind: str, rid: str, attempt: int, payload: Any) -> None:
                if kind == "start" and to == "c":  # c is shown another message
                    body = dict(payload["body"], message=DIGEST[::-1].hex())
                    payload = dict(payload, body=body)
                original(to, kind, rid, attempt, payload)

            coordinator._send_control = split  # type: ignore[method-assign]
            with pytest.raises(RequestFailedError):
                await coordinator.submit(
                    "sign", {"wallet": w["wallet_id"], "message": DIGEST.hex()}, "split-1"
                )
            # The message is bound into the session id: the two parties were in different
            # sessions, stalled, and neither blamed the other for good.
            for name in ("b", "c"):
                assert engines[name].db.excluded(w["wallet_id"]) == set()
        finally:
            await stop_all(engines)

    run(go())


def test_participants_refuse_a_quorum_the_readiness_answers_do_not_give(tmp_path: Path) -> None:
    async def go() -> None:
        _, engines = await memory_cluster(tmp_path, 4)
        try:
            w = await _keygen(engines["a"], "ed25519", 2, list(engines))
            coordinator = engines["a"]
            original = coordinator._send_control

            def steer(to: str, kind: str, rid: str, attempt: int, payload: Any) -> None:
                if kind == "start":
                    honest = payload["participants"]
                    # The coordinator picks its own favourite pair instead.
                    other = next(
                        [x, y] for x in "abcd" for y in "abcd" if x < y and [x, y] != honest
                    )
                    payload = dict(payload, participants=other)
                    if to not in other:
                        return
                original(to, kind, rid, attempt, payload)

            coordinator._send_control = steer  # type: ignore[method-assign]
            with pytest.raises(RequestFailedError, match="quorum"):
                await coordinator.submit(
                    "sign", {"wallet": w["wallet_id"], "message": DIGEST.hex()}, "steer-1"
                )
            # Forged evidence (an answer not signed by its sender) is refused as well.
            coordinator._send_control = original  # type: ignore[method-assign]

            def forge(to: str, kind: str, rid: str, attempt: int, payload: Any) -> None:
                if kind == "start":
                    ev = [bytearray(bytes.fromhex(e)) for e in payload["evidence"]]
                    ev[0][-1] ^= 1
                    payload = dict(payload, evidence=[bytes(e).hex() for e in ev])
                original(to, kind, rid, attempt, payload)

            coordinator._send_control = forge  # type: ignore[method-assign]
            with pytest.raises(RequestFailedError, match="evidence"):
                await coordinator.submit(
                    "sign", {"wallet": w["wallet_id"], "message": DIGEST.hex()}, "forge-1"
                )
            for e in engines.values():
                assert e.db.excluded(w["wallet_id"]) == set()
        finally:
            await stop_all(engines)

    run(go())


def test_a_replayed_ecdsa_session_is_refused_by_the_ledger(tmp_path: Path) -> None:
    starts: list[bytes] = []

    def fault(sender: str, receiver: str, data: bytes) -> Fault:
        env = envelope.Envelope.from_bytes(data)
        if env.protocol == "start" and receiver == "b":
            starts.append(data)
        return Fault.DELIVER

    async def go() -> None:
        network, engines = await memory_cluster(tmp_path, 3, fault=fault)
        try:
            w = await _keygen(engines["a"], "ecdsa-secp256k1", 2, list(engines))
            rid = next(
                r for r in (f"replay-{i}" for i in range(100))
                if choose_participants(list(engines), r, 1, 2) == ["a", "b"]
            )  # fmt: skip
            res = await engines["a"].submit(
                "sign", {"wallet": w["wallet_id"], "message": DIGEST.hex()}, rid
            )
            assert result_ok(res)
            (sid_row,) = [s for s in engines["b"].db.sessions() if s["request"] == rid]
            # node.db "restored from a backup": the session and request rows are gone...
            with engines["b"].db.transaction():
                engines["b"].db._conn.execute("DELETE FROM sessions")
                engines["b"].db._conn.execute("DELETE FROM requests")
            await engines["b"].stop()
            engines["b"].db.close()
            engines["b"].ledger.close()
            engines["b"] = open_engine(tmp_path / "b", network)
            await engines["b"].start()
            # ...and the old start is replayed: the ledger still refuses the session id.
            await engines["b"].deliver(starts[-1])
            await asyncio.sleep(0.2)
            assert engines["b"].db.session_status(bytes.fromhex(sid_row["session"])) is None
        finally:
            await stop_all(engines)

    run(go())


def test_an_equivocating_party_is_excluded_on_the_evidence(tmp_path: Path) -> None:
    async def go() -> None:
        _, engines = await memory_cluster(tmp_path, 3)
        try:
            w = await _keygen(engines["a"], "ed25519", 2, list(engines))
            cheat = engines["c"]
            original = cheat._emit

            def twice(s: Any, out: list[Message]) -> None:
                original(s, out)
                # The same round again with another content: two signed messages for it.
                other = [
                    Message(
                        m.round, m.sender, m.recipient, m.payload[:-1] + bytes([m.payload[-1] ^ 1])
                    )
                    for m in out
                    if m.round == 1
                ]
                if other:
                    original(s, other)

            cheat._emit = twice  # type: ignore[method-assign]
            rid = next(
                r for r in (f"equiv-{i}" for i in range(100))
                if "c" in choose_participants(["a", "b", "c"], r, 1, 2)
            )  # fmt: skip
            res = await engines["a"].submit(
                "sign", {"wallet": w["wallet_id"], "message": DIGEST.hex()}, rid
            )
            assert result_ok(res)  # the first of c's two messages may still have served
            peer = next(
                n for n in ("a", "b") if "c" in choose_participants(["a", "b", "c"], rid, 1, 2)
            )
            assert "c" in engines[peer].db.excluded(w["wallet_id"])
            assert engines[peer].opener.counters["equivocation"] >= 1
            # The proof is kept: two different envelopes, both verifying as c's.
            (kept,) = engines[peer].db.evidence(w["wallet_id"])[:1]
            assert kept["party"] == "c" and kept["first"] != kept["second"]
            members = engines[peer].members
            cluster_hash = engines[peer].cluster.hash
            first = envelope.verify_evidence(kept["first"], cluster_hash, members)
            second = envelope.verify_evidence(kept["second"], cluster_hash, members)
            assert first.sender == second.sender == "c"
            assert (first.session, first.round) == (second.session, second.round)
        finally:
            await stop_all(engines)

    run(go())


def test_a_restarted_node_sends_the_shares_it_stored_before_the_crash(tmp_path: Path) -> None:
    """b computes its FROST share, stores it in its outbox, and crashes before any copy is
    delivered; restarted, b marks its session lost (never recomputes) but sends the stored
    share again, and the first attempt completes at the other parties with it."""
    settings = EngineSettings(ready_timeout=1.0, round_timeout=3.0)

    def b_shares_lost(sender: str, receiver: str, data: bytes) -> Fault:
        env = envelope.Envelope.from_bytes(data)
        if env.protocol == "frost-sign" and env.round == 2 and "b" in (sender, receiver):
            return Fault.DROP  # the shares from b, and those to b (so that b cannot finish)
        return Fault.DELIVER

    async def go() -> None:
        network, engines = await memory_cluster(tmp_path, 3, settings=settings)
        try:
            w = await _keygen(engines["a"], "frost-secp256k1", 3, list(engines))
            network.fault = b_shares_lost
            body = {"wallet": w["wallet_id"], "message": DIGEST.hex()}
            task = asyncio.create_task(engines["a"].submit("sign", body, "outbox-1"))
            b = engines["b"]
            for _ in range(500):
                stored = b.db.outbox_pending(0)
                envs = [envelope.Envelope.from_bytes(d) for *_, d in stored]
                if any(e.protocol == "frost-sign" and e.round == 2 for e in envs):
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("b never stored its share")
            await b.stop()  # the crash: b's send tasks are gone; its outbox is on disk
            b.db.close()
            b.ledger.close()
            network.fault = None
            engines["b"] = open_engine(tmp_path / "b", network, settings)
            await engines["b"].start()
            res = await task
            assert result_ok(res)
            done = [
                s["attempt"]
                for s in engines["a"].db.sessions()
                if s["request"] == "outbox-1" and s["status"] == "done"
            ]
            assert done == [1], "the first attempt should finish with b's stored share"
            lost = [s for s in engines["b"].db.sessions() if s["request"] == "outbox-1"]
            assert [s["status"] for s in lost] == ["lost"]
            for _ in range(100):  # acknowledged copies leave the outbox
                if not engines["b"].db.outbox_pending(0):
                    break
                await asyncio.sleep(0.02)
            assert engines["b"].db.outbox_pending(0) == []
        finally:
            await stop_all(engines)

    run(go())


def test_a_party_sending_two_versions_of_a_broadcast_is_named_from_the_signed_copies(
    tmp_path: Path,
) -> None:
    """c sends its FROST round-1 commitments to a and, signed as well, different ones to b.
    The machines' echo check stops the session without knowing who did it; a and b then show
    each other the signed broadcasts they received, find two versions signed by c, keep both
    as evidence and exclude c from the wallet. Nobody else is blamed."""

    async def go() -> None:
        _, engines = await memory_cluster(tmp_path, 3)
        try:
            w = await _keygen(engines["a"], "frost-secp256k1", 3, list(engines))
            wid = w["wallet_id"]
            c = engines["c"]
            wallet = c.wallets.get(wid)
            send = c.transport.send

            async def split_view(to: str, data: bytes, *, session: bytes) -> None:
                env = envelope.Envelope.from_bytes(data)
                if to == "b" and env.protocol == "frost-sign" and env.round == 1:
                    # Another valid round-1 message of c: a fresh machine's commitments.
                    stages, _ = machines.sign_stages(wallet, [1, 2, 3], DIGEST, None, b"x" * 32)
                    (alt,) = stages[0](None).start()
                    data = c._seal(
                        "b", session=env.session, attempt=env.attempt, protocol=env.protocol,
                        round=1, payload=alt.payload, wallet=wid, broadcast=True,
                    )  # fmt: skip
                await send(to, data, session=session)

            c.transport.send = split_view  # type: ignore[method-assign]
            with pytest.raises(RequestFailedError):
                await engines["a"].submit("sign", {"wallet": wid, "message": DIGEST.hex()}, None)
            for name in ("a", "b"):
                e = engines[name]
                for _ in range(100):  # the echo exchange may finish after the request failed
                    if "c" in e.db.excluded(wid):
                        break
                    await asyncio.sleep(0.02)
                assert e.db.excluded(wid) == {"c"}, name
                proofs = e.db.evidence(wid)
                assert [(p["party"], p["kind"]) for p in proofs] == [("c", "equivocation")]
            assert engines["c"].db.excluded(wid) == set()
        finally:
            await stop_all(engines)

    run(go())


def test_a_running_session_shows_its_public_round_state(tmp_path: Path) -> None:
    settings = EngineSettings(ready_timeout=1.0, round_timeout=30.0)

    def b_silent(sender: str, receiver: str, data: bytes) -> Fault:
        env = envelope.Envelope.from_bytes(data)
        return Fault.DROP if sender == "b" and env.protocol == "frost-sign" else Fault.DELIVER

    async def go() -> None:
        network, engines = await memory_cluster(tmp_path, 2, settings=settings)
        try:
            w = await _keygen(engines["a"], "ed25519", 2, ["a", "b"])
            network.fault = b_silent
            body = {"wallet": w["wallet_id"], "message": DIGEST.hex()}
            task = asyncio.create_task(engines["a"].submit("sign", body, "stuck-1"))
            a = engines["a"]
            for _ in range(200):
                running = [s for s in a.db.sessions() if s["request"] == "stuck-1"]
                if running:
                    break
                await asyncio.sleep(0.01)
            detail = a.session_detail(bytes.fromhex(running[0]["session"]))
            assert detail is not None and detail["status"] == "running"
            state = detail["machine"]
            assert (state["protocol"], state["round"], state["done"]) == ("frost-sign", 1, False)
            assert list(state["broadcasts"]["1"]) == ["1"]  # a's own commitments only
            assert detail["missing_now"] == ["b"]
            assert a.session_detail(b"\x00" * 32) is None
            task.cancel()
        finally:
            await stop_all(engines)

    run(go())
