"""``tmpc monitor`` (issue 12, items 4 and 5): the alert rules, the collector over real audit
logs, webhook delivery, restart, and the command line.

Done when: a node that starts three signing sessions that never reach threshold raises an
alert naming it; a burst of out-of-pattern amounts raises an alert; a replayed message raises
a channel alert; a blamed party in an aborted session appears in an alert; a stopped heartbeat
raises an alert; a webhook receiver started by the test on loopback gets each alert exactly
once, also after it was down for a while. (The dashboard's browser test is
tests/test_monitor_browser.py.)
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.monitor_helpers import (
    PASSPHRASE,
    T0,
    Clock,
    EntryMaker,
    FakeNode,
    Logs,
    MonCluster,
    free_port,
    make_cluster,
    wallet_entry,
)
from tests.test_cli import EXIT_INPUT, assert_one_line_error
from tmpc import schemes
from tmpc.audit.verify import log_paths
from tmpc.monitor import Alert, AlertEngine, AlertSettings, Monitor, MonitorSettings, MonitorStore
from tmpc.monitor.alerts import alert_id, amount_limit
from tmpc.monitor.delivery import WebhookSender, wait_for
from tmpc.monitor.sources import NodeSource
from tmpc.node import config as node_config
from tmpc.node.client import make_credential
from tmpc.transport import tls
from tmpc.wire.identity import NodeIdentity

EXIT_ALERTS = 1
HOUR = 3600.0


# -- the alert engine (sans-I/O) ------------------------------------------------------------------


@pytest.fixture(scope="module")
def ids() -> dict[str, NodeIdentity]:
    return {n: NodeIdentity.generate() for n in ("a", "b", "c")}


@pytest.fixture
def mk(ids: dict[str, NodeIdentity]) -> EntryMaker:
    return EntryMaker(ids)


def kinds(alerts: list[Alert]) -> list[str]:
    return [a.kind for a in alerts]


def of_kind(alerts: list[Alert], kind: str) -> list[Alert]:
    return [a for a in alerts if a.kind == kind]


def propose(mk: EntryMaker, eng: AlertEngine, rid: str, coordinator: str, at: float) -> None:
    """A signing request ``coordinator`` proposed to the two other nodes, which start it."""
    eng.observe(mk(coordinator, "request.received", {"request": rid, "kind": "sign"}, at))
    for p in sorted({"a", "b", "c"} - {coordinator}):
        eng.observe(
            mk(p, "request.proposed",
               {"request": rid, "kind": "sign", "coordinator": coordinator, "attempt": 1}, at)
        )  # fmt: skip
        eng.observe(
            mk(p, "session.started",
               {"session": rid[:8] + "00", "request": rid, "protocol": "frost",
                "coordinator": coordinator, "participants": ["a", "b", "c"], "attempt": 1}, at)
        )  # fmt: skip


def test_three_stalled_requests_name_their_initiator(mk: EntryMaker) -> None:
    eng = AlertEngine("cl", AlertSettings(stall_grace=30))
    for i in range(3):
        propose(mk, eng, f"stuck{i}", "c", T0 + i)
    # An honest coordinator's requests complete, or fail blaming someone else: not counted.
    propose(mk, eng, "fine", "a", T0)
    eng.observe(mk("a", "request.completed", {"request": "fine", "kind": "sign"}, T0 + 1))
    for i in range(3):
        propose(mk, eng, f"other{i}", "b", T0)
        eng.observe(
            mk("b", "request.failed",
               {"request": f"other{i}", "kind": "sign", "error": "timeout", "culprits": ["a"]},
               T0 + 2)
        )  # fmt: skip
    assert of_kind(eng.evaluate(T0 + 20), "stalled-initiator") == []  # within the grace
    alerts = of_kind(eng.evaluate(T0 + 60), "stalled-initiator")
    assert len(alerts) == 1
    (a,) = alerts
    assert a.parties == ("c",) and a.node == "c"
    assert "node c initiated 3 requests that never reached threshold" in a.message
    assert a.facts["requests"] == ["stuck0", "stuck1", "stuck2"]
    assert eng.evaluate(T0 + 120) == []  # raised once
    # Two more are not yet another alert; a third is.
    for i in range(3, 5):
        propose(mk, eng, f"stuck{i}", "c", T0 + 200 + i)
    assert eng.evaluate(T0 + 300) == []
    propose(mk, eng, "stuck5", "c", T0 + 210)
    assert kinds(eng.evaluate(T0 + 300)) == ["stalled-initiator"]


def test_three_requests_refused_by_the_parties_name_their_initiator_at_once(
    mk: EntryMaker,
) -> None:
    """A node pushing requests the others refuse (no valid authorization): each never reaches
    threshold, so no grace period is needed."""
    eng = AlertEngine("cl", AlertSettings(stall_grace=30))
    for i in range(3):
        rid = f"rogue{i}"
        eng.observe(mk("c", "request.received", {"request": rid, "kind": "sign"}, T0 + i))
        for p in ("a", "b"):
            eng.observe(
                mk(p, "request.proposed",
                   {"request": rid, "kind": "sign", "coordinator": "c", "attempt": 1}, T0 + i)
            )  # fmt: skip
            eng.observe(
                mk(p, "request.refused",
                   {"request": rid, "kind": "sign", "coordinator": "c", "rule": "default-deny",
                    "reason": "policy: denied by rule 'default-deny'"}, T0 + i)
            )  # fmt: skip
    alerts = of_kind(eng.evaluate(T0 + 3), "stalled-initiator")
    assert [a.parties for a in alerts] == [("c",)]
    assert "rogue0, rogue1, rogue2" in alerts[0].message


def test_two_stalled_requests_or_three_far_apart_raise_nothing(mk: EntryMaker) -> None:
    eng = AlertEngine("cl", AlertSettings(stall_grace=30, stall_window=HOUR))
    propose(mk, eng, "r1", "c", T0)
    propose(mk, eng, "r2", "c", T0 + 2 * HOUR)
    propose(mk, eng, "r3", "c", T0 + 4 * HOUR)
    assert eng.evaluate(T0 + 5 * HOUR) == []


def approve(
    mk: EntryMaker,
    eng: AlertEngine,
    rid: str,
    at: float,
    usd: str,
    dest: str = "0xAbC0000000000000000000000000000000000001",
    wallet: str = "w1",
) -> None:
    """A signing request approved by two nodes (each writes request.approved)."""
    for node in ("a", "b"):
        eng.observe(
            mk(node, "request.approved",
               {"request": rid, "wallet": wallet, "key_id": "k", "group": "default",
                "rule": "fast", "chain": "ethereum", "asset": "ETH", "amount": "0.05",
                "usd": usd, "destinations": [dest], "approvals": {}, "coordinator": "a"}, at)
        )  # fmt: skip


def test_amount_limit_is_median_based() -> None:
    med, mad, limit = amount_limit([Decimal(v) for v in (100, 110, 90, 100, 105, 95, 100)])
    assert med == 100 and mad == 5 and limit == 300
    med, mad, limit = amount_limit([Decimal(v) for v in (10, 10, 10, 1000, 1000)])
    assert med == 10 and limit == max(3 * med, med + 4 * mad)


def test_a_burst_of_out_of_pattern_amounts_raises_one_burst_alert(mk: EntryMaker) -> None:
    eng = AlertEngine("cl")
    for i in range(12):  # the baseline: about 100 USD, a few hours apart
        approve(mk, eng, f"n{i}", T0 + i * 3 * HOUR, str(95 + i))
    assert eng.evaluate(T0 + 40 * HOUR) == []
    t = T0 + 40 * HOUR
    for i in range(3):
        approve(mk, eng, f"big{i}", t + i * 60, "50000")
    alerts = eng.evaluate(t + 200)
    anomalies = of_kind(alerts, "amount-anomaly")
    assert [a.request for a in anomalies] == ["big0", "big1", "big2"]  # each judged once
    assert "limit max(3 x median, median + 4 x MAD)" in anomalies[0].message
    assert anomalies[0].facts["median"] == "100.5" and anomalies[0].facts["history"] == 12
    (burst,) = of_kind(alerts, "amount-burst")
    assert burst.wallet == "w1" and burst.severity == "critical"
    assert burst.facts["requests"] == ["big0", "big1", "big2"]
    assert "3 out-of-pattern amounts within 10 minutes" in burst.message


def test_anomalies_far_apart_are_no_burst(mk: EntryMaker) -> None:
    eng = AlertEngine("cl")
    for i in range(12):
        approve(mk, eng, f"n{i}", T0 + i * 3 * HOUR, "100")
    t = T0 + 40 * HOUR
    for i in range(3):
        approve(mk, eng, f"big{i}", t + i * HOUR, "50000")
    alerts = eng.evaluate(t + 4 * HOUR)
    assert len(of_kind(alerts, "amount-anomaly")) == 3
    assert of_kind(alerts, "amount-burst") == []


def test_new_destination_unusual_hour_and_rate(mk: EntryMaker) -> None:
    eng = AlertEngine("cl")
    day = 24 * HOUR
    n = 0
    for d in range(5):  # 20 requests, 09:00-12:00 UTC, to two destinations, over 5 days
        for h in range(9, 13):
            dest = "0xabc0000000000000000000000000000000000001" if n % 2 else "0xD00D"
            approve(mk, eng, f"n{n}", T0 + d * day + h * HOUR, "100", dest)
            n += 1
    assert eng.evaluate(T0 + 6 * day) == []
    t = T0 + 6 * day + 3 * HOUR  # 03:00 UTC, to a destination never used
    approve(mk, eng, "odd", t, "100", "0xBEEF")
    alerts = eng.evaluate(t + 1)
    assert sorted(kinds(alerts)) == ["new-destination", "unusual-hour"]
    (hour,) = of_kind(alerts, "unusual-hour")
    assert hour.facts["hour"] == 3 and hour.facts["hours_seen"] == [9, 10, 11, 12]
    # Known destinations in another case are not new (Ethereum addresses ignore case).
    approve(mk, eng, "case", t + 60, "100", "0xABC0000000000000000000000000000000000001")
    assert of_kind(eng.evaluate(t + 61), "new-destination") == []
    # 21 requests over 6 days: under one per 10 minutes; six within ten minutes is a spike.
    for i in range(6):
        approve(mk, eng, f"fast{i}", t + 120 + i * 60, "100", "0xD00D")
    (rate,) = of_kind(eng.evaluate(t + 600), "rate-anomaly")
    assert rate.facts["recent"] >= 5 and "usual rate" in rate.message


def test_a_replayed_message_raises_a_channel_alert(mk: EntryMaker) -> None:
    eng = AlertEngine("cl")
    eng.observe(mk("a", "message.rejected", {"reason": "duplicate", "sender": "c"}, T0))
    eng.observe(mk("a", "message.rejected", {"reason": "stale", "sender": "c"}, T0 + 1))
    eng.observe(mk("a", "message.rejected", {"reason": "duplicate", "sender": "c"}, T0 + 5))
    eng.observe(mk("b", "message.rejected", {"reason": "tampered", "sender": "c"}, T0 + 5))
    eng.observe(mk("b", "message.rejected", {"reason": "unknown-sender", "sender": "zz"}, T0))
    alerts = eng.evaluate(T0 + 10)
    assert len(alerts) == 4  # the second duplicate from c at a is the same alert
    replays = [a for a in alerts if a.facts["replay"]]
    assert {a.facts["reason"] for a in replays} == {"duplicate", "stale"}
    assert all("a replayed message" in a.message for a in replays)
    assert all("claiming to come from c" in a.message for a in replays)
    assert all(a.kind == "channel" and a.node == "a" and a.parties == ("c",) for a in replays)
    # The next ten-minute window raises it again.
    eng.observe(mk("a", "message.rejected", {"reason": "duplicate", "sender": "c"}, T0 + 700))
    assert kinds(eng.evaluate(T0 + 701)) == ["channel"]


def test_a_late_message_of_a_timed_out_session_is_a_warning_not_a_replay(mk: EntryMaker) -> None:
    """A message of a session the node ended by a timeout (or an abort) is most likely a slow
    member's late one: a warning, not called a replay. The same reason for a session that ended
    normally, or at another node, is a replay (critical)."""
    eng = AlertEngine("cl")
    timeout = {"session": "5e55", "request": "r1", "missing": ["c"]}
    eng.observe(mk("a", "session.timeout", timeout, T0))
    eng.observe(
        mk("a", "message.rejected", {"reason": "stale", "sender": "c", "session": "5e55"}, T0 + 2)
    )
    eng.observe(
        mk("b", "message.rejected", {"reason": "stale", "sender": "c", "session": "5e55"}, T0 + 2)
    )
    eng.observe(
        mk("a", "message.rejected", {"reason": "stale", "sender": "c", "session": "0ld0"}, T0 + 3)
    )
    channel = {(a.node, a.facts["session"]): a for a in of_kind(eng.evaluate(T0 + 5), "channel")}
    late = channel[("a", "5e55")]
    assert late.severity == "warning" and late.facts["late"] and not late.facts["replay"]
    assert "late message" in late.message and "replay" not in late.message
    for key in (("b", "5e55"), ("a", "0ld0")):
        replay = channel[key]
        assert replay.severity == "critical" and replay.facts["replay"] and not replay.facts["late"]
        assert "a replayed message (of a session that had ended there)" in replay.message


def test_a_blamed_party_in_an_aborted_session_is_named(mk: EntryMaker) -> None:
    eng = AlertEngine("cl")
    data = {"session": "5e55", "request": "r1", "reason": "bad share", "culprits": ["c"]}
    eng.observe(mk("a", "session.aborted", data, T0))
    eng.observe(mk("b", "session.aborted", data, T0))
    eng.observe(
        mk("a", "request.failed",
           {"request": "r1", "kind": "sign", "error": "c sent a bad share", "culprits": ["c"]},
           T0 + 1)
    )  # fmt: skip
    eng.observe(
        mk("b", "session.timeout", {"session": "6e66", "request": "r2", "missing": ["a"]}, T0)
    )
    alerts = eng.evaluate(T0 + 2)
    assert kinds(alerts) == ["session-failed", "session-failed"]
    aborted, timeout = alerts
    assert aborted.parties == ("c",) and aborted.request == "r1"
    assert "blamed: c" in aborted.message and "session 5e55" in aborted.message
    assert timeout.parties == ("a",) and "waiting for a" in timeout.message


def test_a_stopped_heartbeat_raises_an_alert(mk: EntryMaker) -> None:
    eng = AlertEngine("cl", AlertSettings(heartbeat_max_age=300))
    for i in range(3):
        hb = {"wallet": "w1", "epoch": 0, "seconds": 0.2, "participants": ["a", "b"]}
        eng.observe(mk("a", "heartbeat.ok", hb, T0 + i * 60))
    assert eng.evaluate(T0 + 400) == []  # newest is 280 s old
    (a,) = eng.evaluate(T0 + 500)
    assert a.kind == "heartbeat-stale" and a.wallet == "w1"
    assert "no heartbeat signature since" in a.message and "at most 300 s" in a.message
    assert eng.evaluate(T0 + 900) == []
    # (After the newest heartbeat.ok: an older failure would be resolved by it at once.)
    failed = {"wallet": "w1", "error": "b did not answer"}
    eng.observe(mk("a", "heartbeat.failed", failed, T0 + 850))
    (f,) = eng.evaluate(T0 + 901)
    assert f.kind == "heartbeat-failed" and "b did not answer" in f.message


def test_refusals_unauthorized_and_policy(mk: EntryMaker) -> None:
    eng = AlertEngine("cl")
    needs = "refused by rule 'senior': 2 more 'treasury' approval(s) needed (0 of 2)"
    for node in ("a", "b", "c"):
        eng.observe(
            mk(node, "request.refused",
               {"request": "r1", "kind": "sign", "wallet": "w1", "coordinator": "b",
                "rule": "senior", "reason": needs}, T0)
        )  # fmt: skip
    eng.observe(
        mk("a", "request.refused",
           {"request": "r2", "kind": "sign", "wallet": "w1", "coordinator": "b",
            "rule": "deny-list", "reason": "denied by rule 'deny-list': destination 0xdead"}, T0)
    )  # fmt: skip
    eng.observe(
        mk("a", "request.refused",
           {"request": "r3", "kind": "sign", "coordinator": "c", "rule": None,
            "reason": "coordinator c is not allowed to propose for this group"}, T0)
    )  # fmt: skip
    alerts = eng.evaluate(T0 + 1)
    assert kinds(alerts) == ["unauthorized-request", "policy-refusal", "unauthorized-request"]
    assert alerts[0].parties == ("b",) and alerts[0].facts["rule"] == "senior"
    assert "no valid authorization" in alerts[0].message
    assert alerts[1].facts["rule"] == "deny-list" and "0xdead" in alerts[1].message
    assert alerts[2].facts["rule"] is None and alerts[2].parties == ("c",)


def test_missing_and_lagging_nodes() -> None:
    eng = AlertEngine("cl", AlertSettings(missing_after=6, lag_grace=6))
    eng.observe_health("b", True, T0)
    eng.observe_health("b", False, T0 + 2, "connection refused")
    eng.observe_health("b", False, T0 + 4, "connection refused")
    assert eng.evaluate(T0 + 4) == []
    eng.observe_health("b", False, T0 + 8, "connection refused")
    (m,) = eng.evaluate(T0 + 8)
    assert m.kind == "node-missing" and m.parties == ("b",) and "connection refused" in m.message
    assert eng.evaluate(T0 + 20) == []
    eng.observe_health("b", True, T0 + 30)
    eng.observe_health("b", False, T0 + 40, "timeout")
    # The first outage ended (resolved), a second one began (a new alert).
    assert [(a.kind, a.status) for a in eng.evaluate(T0 + 50)] == [
        ("node-missing", "resolved"),
        ("node-missing", "firing"),
    ]
    eng.observe_wallets("a", {"w1": 2}, T0)
    eng.observe_wallets("b", {"w1": 2}, T0)
    eng.observe_wallets("c", {"w1": 1}, T0)
    assert eng.evaluate(T0 + 2) == []
    (lag,) = eng.evaluate(T0 + 7)
    assert lag.kind == "node-lagging" and lag.node == "c"
    assert "epoch 1, behind epoch 2 on a, b" in lag.message
    # Caught up: resolved; a rotation in flight that completes in time raises nothing.
    eng.observe_wallets("c", {"w1": 2}, T0 + 8)
    assert [(a.id, a.status) for a in eng.evaluate(T0 + 8)] == [(lag.id, "resolved")]
    eng.observe_wallets("a", {"w1": 3}, T0 + 9)
    eng.observe_wallets("a", {"w1": 3}, T0 + 10)
    eng.observe_wallets("b", {"w1": 3}, T0 + 11)
    eng.observe_wallets("c", {"w1": 3}, T0 + 12)
    assert eng.evaluate(T0 + 30) == []


def test_restore_raises_nothing_twice(mk: EntryMaker) -> None:
    entries = [
        mk("a", "session.blame",
           {"session": "5e", "request": "r1", "culprits": ["b"], "reason": "bad"}, T0),
        mk("a", "message.rejected", {"reason": "tampered", "sender": "b"}, T0),
    ]  # fmt: skip
    first = AlertEngine("cl")
    for e in entries:
        first.observe(e)
    raised = first.evaluate(T0 + 1)
    assert len(raised) == 2
    again = AlertEngine("cl")
    again.restore(raised)
    for e in entries:
        again.observe(e)
    assert again.evaluate(T0 + 2) == []
    assert raised[0].id == alert_id("cl", raised[0].kind, raised[0].subject)
    assert AlertEngine("other").scope != "cl"  # another cluster: other ids
    assert alert_id("other", raised[0].kind, raised[0].subject) != raised[0].id
    assert Alert.from_json(json.loads(json.dumps(raised[0].to_json()))) == raised[0]


# -- resolutions of condition alerts --------------------------------------------------------------


def statuses(alerts: list[Alert]) -> list[tuple[str, str]]:
    return [(a.kind, a.status) for a in alerts]


def test_a_missing_node_that_answers_again_is_resolved_once() -> None:
    eng = AlertEngine("cl", AlertSettings(missing_after=6))
    eng.observe_health("c", True, T0)
    eng.observe_health("c", False, T0 + 2, "connection refused")
    (m,) = eng.evaluate(T0 + 8)
    assert (m.kind, m.status, m.resolved_at) == ("node-missing", "firing", None)
    assert m.to_json()["status"] == "firing" and m.to_json()["resolved_at"] is None
    assert eng.open_alerts() == [m]
    eng.observe_health("c", True, T0 + 44)
    (r,) = eng.evaluate(T0 + 45)
    assert (r.id, r.kind, r.status, r.resolved_at, r.at) == (
        m.id, "node-missing", "resolved", T0 + 45, m.at
    )  # fmt: skip
    assert r.message == "node c answers its health check again after 42 s"
    assert (r.subject, r.parties, r.facts, r.event_at) == (
        m.subject,
        m.parties,
        m.facts,
        m.event_at,
    )
    assert r.key == f"{m.id}:resolved" != m.key == m.id
    doc = r.to_json()
    assert doc["status"] == "resolved" and doc["resolved_at"] == T0 + 45
    assert Alert.from_json(json.loads(json.dumps(doc))) == r
    assert eng.evaluate(T0 + 60) == [] and eng.open_alerts() == []  # resolved once
    eng.observe_health("c", True, T0 + 62)
    assert eng.evaluate(T0 + 62) == []
    # Missing again later: a new occurrence, with a new id, resolved in its turn.
    eng.observe_health("c", False, T0 + 100, "timeout")
    assert eng.evaluate(T0 + 104) == []
    (m2,) = eng.evaluate(T0 + 110)
    assert (m2.kind, m2.status) == ("node-missing", "firing") and m2.id != m.id
    eng.observe_health("c", True, T0 + 120)
    (r2,) = eng.evaluate(T0 + 120)
    assert (r2.id, r2.status) == (m2.id, "resolved") and "after 20 s" in r2.message
    # A failure shorter than missing_after raised nothing, so nothing resolves either.
    eng.observe_health("c", False, T0 + 130, "timeout")
    eng.observe_health("c", True, T0 + 132)
    assert eng.evaluate(T0 + 140) == []


def test_an_open_alert_survives_a_restart_and_is_resolved_once() -> None:
    first = AlertEngine("cl", AlertSettings(missing_after=6))
    first.observe_health("c", True, T0)
    first.observe_health("c", False, T0 + 2, "connection refused")
    (m,) = first.evaluate(T0 + 8)
    # Restarted while c is still down: the same outage raises nothing again.
    again = AlertEngine("cl", AlertSettings(missing_after=6))
    again.restore([m])
    again.restore_health("c", T0, T0 + 2)
    again.observe_health("c", False, T0 + 20, "connection refused")
    assert again.evaluate(T0 + 20) == [] and again.open_alerts() == [m]
    again.observe_health("c", True, T0 + 30)
    (r,) = again.evaluate(T0 + 30)
    assert (r.id, r.status, r.at) == (m.id, "resolved", m.at)
    # Restarted after the resolution (restored in either order): nothing, ever again.
    third = AlertEngine("cl", AlertSettings(missing_after=6))
    third.restore([r, m])
    third.restore_health("c", T0 + 30, None)
    third.observe_health("c", True, T0 + 40)
    assert third.evaluate(T0 + 40) == [] and third.open_alerts() == []
    # An old state's alert (no status field) is a firing one.
    old = {k: v for k, v in m.to_json().items() if k not in ("status", "resolved_at")}
    assert Alert.from_json(old) == m


def test_a_lagging_node_that_catches_up_is_resolved() -> None:
    eng = AlertEngine("cl", AlertSettings(lag_grace=6))
    for node, epoch in (("a", 2), ("b", 2), ("c", 1)):
        eng.observe_wallets(node, {"w1": epoch}, T0)
    (lag,) = eng.evaluate(T0 + 7)
    assert (lag.kind, lag.status, lag.node) == ("node-lagging", "firing", "c")
    # a and b rotate on while c stays behind: still lagging (a second alert, behind epoch 3).
    eng.observe_wallets("a", {"w1": 3}, T0 + 10)
    eng.observe_wallets("b", {"w1": 3}, T0 + 10)
    (lag3,) = eng.evaluate(T0 + 17)
    assert (lag3.status, lag3.facts["expected_epoch"]) == ("firing", 3)
    eng.observe_wallets("c", {"w1": 2}, T0 + 20)  # closer, still behind: nothing resolved
    (lag23,) = eng.evaluate(T0 + 20)
    assert (lag23.status, lag23.facts["epoch"], lag23.facts["expected_epoch"]) == ("firing", 2, 3)
    eng.observe_wallets("c", {"w1": 3}, T0 + 30)
    resolved = eng.evaluate(T0 + 30)
    assert [(a.id, a.status) for a in resolved] == [(a.id, "resolved") for a in (lag, lag3, lag23)]
    assert resolved[0].message == (
        "node c caught up after 30 s: it holds wallet w1 at epoch 3, the newest epoch any node "
        "holds"
    )
    assert eng.evaluate(T0 + 60) == []
    # c rolled back to epoch 1 (a restored backup): the same state as the first alert, but a
    # new occurrence, so a new alert.
    eng.observe_wallets("a", {"w1": 2}, T0 + 100)
    eng.observe_wallets("b", {"w1": 2}, T0 + 100)
    eng.observe_wallets("c", {"w1": 1}, T0 + 100)
    (again,) = eng.evaluate(T0 + 107)
    assert again.status == "firing" and again.id != lag.id
    assert again.subject == lag.subject + "#2"


def test_a_lagging_alert_is_not_resolved_by_a_partial_view_after_a_restart() -> None:
    first = AlertEngine("cl", AlertSettings(lag_grace=6))
    for node, epoch in (("a", 2), ("b", 2), ("c", 1)):
        first.observe_wallets(node, {"w1": epoch}, T0)
    (lag,) = first.evaluate(T0 + 7)
    again = AlertEngine("cl", AlertSettings(lag_grace=6))
    again.restore([lag])
    again.observe_wallets("c", {"w1": 1}, T0 + 20)  # c answers first: alone, it looks level
    assert again.evaluate(T0 + 20) == []
    again.observe_wallets("a", {"w1": 2}, T0 + 22)
    assert again.evaluate(T0 + 40) == []  # the same occurrence: not raised again
    again.observe_wallets("c", {"w1": 2}, T0 + 42)
    assert [(a.id, a.status) for a in again.evaluate(T0 + 42)] == [(lag.id, "resolved")]


def test_a_stale_or_failed_heartbeat_is_resolved_by_a_newer_heartbeat(mk: EntryMaker) -> None:
    eng = AlertEngine("cl", AlertSettings(heartbeat_max_age=300))
    hb = {"wallet": "w1", "epoch": 0, "seconds": 0.2, "participants": ["a", "b"]}
    eng.observe(mk("a", "heartbeat.ok", hb, T0))
    (stale,) = eng.evaluate(T0 + 400)
    assert (stale.kind, stale.status) == ("heartbeat-stale", "firing")
    eng.observe(
        mk("a", "heartbeat.failed", {"wallet": "w1", "error": "b did not answer"}, T0 + 450)
    )
    # A heartbeat older than the newest one, written late by another node, changes nothing.
    eng.observe(mk("b", "heartbeat.ok", hb, T0 - 60))
    (failed,) = eng.evaluate(T0 + 460)
    assert (failed.kind, failed.status) == ("heartbeat-failed", "firing")
    assert eng.evaluate(T0 + 470) == []
    eng.observe(mk("a", "heartbeat.ok", hb, T0 + 500))
    resolved = eng.evaluate(T0 + 502)
    assert [(a.id, a.status, a.resolved_at) for a in resolved] == [
        (stale.id, "resolved", T0 + 502),
        (failed.id, "resolved", T0 + 502),
    ]
    assert resolved[0].message.startswith("wallet w1: heartbeat signature again at ")
    assert "(by a), 500 s after the previous one" in resolved[0].message
    assert "50 s after the failure" in resolved[1].message
    assert eng.evaluate(T0 + 600) == [] and eng.open_alerts() == []
    # It stops again: a new alert (about the new last heartbeat).
    (stale2,) = eng.evaluate(T0 + 900)
    assert (stale2.kind, stale2.status) == ("heartbeat-stale", "firing") and stale2.id != stale.id
    # A failure replayed after a restart raises nothing, and its resolution is not repeated.
    again = AlertEngine("cl", AlertSettings(heartbeat_max_age=300))
    again.restore([stale, failed, *resolved, stale2])
    assert again.open_alerts() == [stale2]


def test_audit_broken_and_event_alerts_never_resolve(mk: EntryMaker) -> None:
    eng = AlertEngine("cl", AlertSettings(missing_after=0, lag_grace=0))
    eng.observe_chain_problem("b", 5, "hash does not match", T0)
    eng.observe(
        mk("a", "session.blame",
           {"session": "5e", "request": "r1", "culprits": ["c"], "reason": "bad share"}, T0)
    )  # fmt: skip
    eng.observe(mk("a", "message.rejected", {"reason": "duplicate", "sender": "c"}, T0))
    eng.observe(
        mk("a", "request.refused",
           {"request": "r2", "kind": "sign", "coordinator": "b", "rule": "deny-list",
            "reason": "denied by rule 'deny-list'"}, T0)
    )  # fmt: skip
    raised = eng.evaluate(T0 + 1)
    assert sorted(kinds(raised)) == ["audit-broken", "channel", "policy-refusal", "session-failed"]
    assert all(a.status == "firing" and a.to_json()["status"] == "firing" for a in raised)
    assert eng.open_alerts() == []
    # Everything that ends a condition happens; none of these ends.
    hb = {"wallet": "w1", "epoch": 0, "seconds": 0.2, "participants": ["a", "b"]}
    for t in (T0 + 10, T0 + 20, T0 + 1000):
        for node in ("a", "b", "c"):
            eng.observe_health(node, True, t)
            eng.observe_wallets(node, {"w1": 1}, t)
        eng.observe(mk("a", "heartbeat.ok", hb, t))
        eng.observe(mk("a", "session.completed", {"session": "5e", "request": "r1"}, t))
        assert eng.evaluate(t) == []
    # Restored after a restart, they are not open either.
    again = AlertEngine("cl")
    again.restore(raised)
    assert again.open_alerts() == []


# -- the collector over real audit logs -----------------------------------------------------------


@pytest.fixture(scope="module")
def tc(tmp_path_factory: pytest.TempPathFactory) -> MonCluster:
    return make_cluster(tmp_path_factory.mktemp("cluster"))


@pytest.fixture
def node_dirs(tc: MonCluster, tmp_path: Path) -> MonCluster:
    """A copy of the cluster whose node directories are fresh (no audit log yet)."""
    import shutil

    root = tmp_path / "nodes"
    for n in tc.names:
        (root / n).mkdir(parents=True)
        for f in ("node.json", "cluster.json"):
            shutil.copy(tc.root / n / f, root / n / f)
        shutil.copytree(tc.root / n / "tls", root / n / "tls")
    return MonCluster(root, tc.cluster, tc.ids, tc.operator, tc.operator_key)


@pytest.fixture
def logs(node_dirs: MonCluster) -> Iterator[Logs]:
    lg = Logs(node_dirs, Clock())
    yield lg
    lg.close()


def fakes(tc: MonCluster) -> dict[str, FakeNode]:
    return {n: FakeNode(n, tc.dir(n)) for n in tc.names}


def monitor(
    tc: MonCluster, sources: dict[str, Any], state: Path, clock: Clock, **kw: Any
) -> Monitor:
    m = Monitor(
        tc.cluster,
        sources,
        MonitorStore.open(state),
        settings=MonitorSettings(**kw),
        clock=clock,
    )
    m.load()
    return m


def test_collector_checks_every_chain_and_names_a_broken_one(
    node_dirs: MonCluster, logs: Logs, tmp_path: Path
) -> None:
    clock = logs.clock
    for n in node_dirs.names:
        for i in range(3):
            logs.write(n, "request.received", {"request": f"{n}{i}", "kind": "sign"})
    src = fakes(node_dirs)
    m = monitor(node_dirs, src, tmp_path / "state", clock)
    assert asyncio.run(m.poll()) == []
    assert {n: s.checker.seq for n, s in m.nodes.items()} == {"a": 4, "b": 4, "c": 4}
    assert m.store.entry_count() == 12
    # Entries written after the first poll; one of b's is edited before the monitor reads it.
    for n in node_dirs.names:
        logs.write(n, "request.received", {"request": f"{n}-late", "kind": "sign"})
        logs.write(n, "request.received", {"request": f"{n}-later", "kind": "sign"})
    log_b, _ = log_paths(node_dirs.dir("b"))
    lines = log_b.read_bytes().splitlines(keepends=True)
    lines[4] = lines[4].replace(b"b-late", b"b-LATE")
    log_b.write_bytes(b"".join(lines))
    alerts = asyncio.run(m.poll())
    assert kinds(alerts) == ["audit-broken"]
    (a,) = alerts
    assert a.node == "b" and a.facts["seq"] == 5
    assert a.message.startswith("audit chain of node b broken at entry 5: hash does not match")
    assert {n: s.checker.seq for n, s in m.nodes.items()} == {"a": 6, "b": 4, "c": 6}
    logs.write("b", "request.received", {"request": "b-more", "kind": "sign"})
    assert asyncio.run(m.poll()) == []  # once; and nothing after the bad entry is taken
    snap = m.snapshot()
    b = next(n for n in snap["nodes"] if n["name"] == "b")
    assert b["chain_ok"] is False and "entry 5" in b["chain_problem"]
    m.store.close()


def test_collector_catches_a_log_replaced_by_a_shorter_one(
    node_dirs: MonCluster, logs: Logs, tmp_path: Path
) -> None:
    for i in range(4):
        logs.write("a", "request.received", {"request": f"r{i}", "kind": "sign"})
    m = monitor(node_dirs, fakes(node_dirs), tmp_path / "state", logs.clock)
    asyncio.run(m.poll())
    log_a, _ = log_paths(node_dirs.dir("a"))
    log_a.write_bytes(b"".join(log_a.read_bytes().splitlines(keepends=True)[:2]))
    (a,) = asyncio.run(m.poll())
    assert a.kind == "audit-broken" and a.node == "a" and "truncated or replaced" in a.message
    m.store.close()


def test_a_node_that_stops_answering_is_missing(
    node_dirs: MonCluster, logs: Logs, tmp_path: Path
) -> None:
    clock = logs.clock
    src = fakes(node_dirs)
    m = monitor(node_dirs, src, tmp_path / "state", clock, interval=2.0)
    asyncio.run(m.poll())
    src["c"].down = True
    seen: list[Alert] = []
    for _ in range(3):  # failing for less than 3 intervals is tolerated
        clock.advance(2.0)
        seen += asyncio.run(m.poll())
    assert seen == []
    clock.advance(2.0)
    (a,) = asyncio.run(m.poll())
    assert a.kind == "node-missing" and a.parties == ("c",)
    assert "node c does not answer since" in a.message and "connection refused" in a.message
    snap = m.snapshot()
    assert [n["up"] for n in snap["nodes"]] == [True, True, False]
    m.store.close()


def events_for_alerts(logs: Logs, tag: str = "") -> None:
    """Entries that raise three alerts: a blamed party, a replay, a refusal."""
    logs.write(
        "a", "session.blame",
        {"session": "5e" + tag, "request": "r1" + tag, "culprits": ["c"], "reason": "bad share"},
    )  # fmt: skip
    logs.write("b", "message.rejected", {"reason": "duplicate", "sender": "c", "session": "5e"})
    logs.write(
        "a", "request.refused",
        {"request": "r2" + tag, "kind": "sign", "wallet": "w", "coordinator": "b",
         "rule": "deny-list", "reason": "denied by rule 'deny-list'"},
    )  # fmt: skip


def test_restart_goes_on_where_it_stopped(
    node_dirs: MonCluster, logs: Logs, tmp_path: Path
) -> None:
    clock = logs.clock
    events_for_alerts(logs)
    src = fakes(node_dirs)
    m = monitor(node_dirs, src, tmp_path / "state", clock)
    first = asyncio.run(m.poll())
    assert sorted(kinds(first)) == ["channel", "policy-refusal", "session-failed"]
    held = {n: s.checker.seq for n, s in m.nodes.items()}
    m.store.close()
    for s in src.values():
        s.afters.clear()
    again = monitor(node_dirs, src, tmp_path / "state", clock)
    assert {n: s.checker.seq for n, s in again.nodes.items()} == held
    assert asyncio.run(again.poll()) == []
    assert {n: s.afters for n, s in src.items()} == {n: [held[n]] for n in held}
    assert again.store.alert_count() == 3
    lines = (tmp_path / "state" / "alerts.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["id"] for x in lines) == sorted(a.id for a in first)
    again.store.close()


def test_a_second_monitor_cannot_share_the_state(tc: MonCluster, tmp_path: Path) -> None:
    from tmpc.errors import KeystoreError

    store = MonitorStore.open(tmp_path / "state")
    with pytest.raises(KeystoreError, match="in use by another tmpc monitor"):
        MonitorStore.open(tmp_path / "state")
    store.close()
    MonitorStore.open(tmp_path / "state").close()


# -- webhooks -------------------------------------------------------------------------------------


class Receiver:
    """A webhook receiver on 127.0.0.1: answers 500 to the first POST, then 200."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.posts: list[tuple[int, dict[str, Any], str]] = []  # (status, body, idempotency key)
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        status = 500 if not self.posts else 200
        self.posts.append((status, body, request.headers.get("Idempotency-Key", "")))
        return web.json_response({"ok": status == 200}, status=status)

    async def start(self) -> None:
        app = web.Application()
        app.add_routes([web.post("/hook", self.handle)])
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def accepted(self) -> list[str]:
        return [body["id"] for status, body, _key in self.posts if status == 200]

    def accepted_keys(self) -> list[str]:
        return [key for status, _body, key in self.posts if status == 200]


async def until(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


def webhook_world(
    node_dirs: MonCluster, tmp_path: Path
) -> tuple[str, Receiver, Path, dict[str, FakeNode]]:
    """A webhook receiver on a free loopback port (not started), its URL, a state directory
    for the monitor and fake node sources."""
    port = free_port()
    return f"http://127.0.0.1:{port}/hook", Receiver(port), tmp_path / "state", fakes(node_dirs)


def test_webhook_gets_each_alert_exactly_once_after_being_down(
    node_dirs: MonCluster, logs: Logs, tmp_path: Path
) -> None:
    clock = logs.clock
    url, receiver, state, src = webhook_world(node_dirs, tmp_path)
    lines: list[str] = []

    async def first_run() -> list[Alert]:
        m = monitor(node_dirs, src, state, clock)
        sender = WebhookSender(m.store, url, min_backoff=0.05, max_backoff=0.2, log=lines.append)
        m.on_alerts(lambda _a: sender.wake())
        stop = asyncio.Event()
        task = asyncio.create_task(sender.run(stop))
        events_for_alerts(logs)
        raised = await m.poll()
        await asyncio.sleep(0.8)  # the receiver is down: connection refused, retried
        assert sender.posts >= 3 and receiver.posts == []
        await receiver.start()  # up; it answers the first POST with 500
        await until(lambda: len(receiver.accepted()) == len(raised))
        events_for_alerts(logs, tag="x")  # a new blame and refusal (the replay is the same)
        clock.advance(1)
        more = await m.poll()
        assert sorted(kinds(more)) == ["policy-refusal", "session-failed"]
        await until(lambda: len(receiver.accepted()) == len(raised) + len(more))
        await asyncio.sleep(0.3)  # nothing more comes
        stop.set()
        await task
        await sender.close()
        m.store.close()
        return raised + more

    async def restarted() -> None:
        m = monitor(node_dirs, src, state, clock)
        sender = WebhookSender(m.store, url, min_backoff=0.05, max_backoff=0.2)
        stop = asyncio.Event()
        task = asyncio.create_task(sender.run(stop))
        assert await m.poll() == []
        await wait_for([stop], 0.5)
        stop.set()
        await task
        await sender.close()
        m.store.close()
        await receiver.stop()

    async def both() -> list[Alert]:
        raised = await first_run()
        await restarted()
        return raised

    raised = asyncio.run(both())
    assert len(raised) == 5
    accepted = receiver.accepted()
    assert sorted(accepted) == sorted(a.id for a in raised)  # each exactly once
    assert len(set(accepted)) == len(accepted)
    assert [status for status, _b, _k in receiver.posts].count(500) == 1
    assert len(receiver.posts) == len(raised) + 1  # the one refused is posted again, once
    assert all(key == body["id"] for _s, body, key in receiver.posts)
    body = receiver.posts[-1][1]
    assert set(body) >= {"id", "kind", "severity", "message", "at", "parties", "facts"}
    assert any("not delivered" in line and "retrying in" in line for line in lines)


def test_a_webhook_added_later_gets_only_new_alerts(
    node_dirs: MonCluster, logs: Logs, tmp_path: Path
) -> None:
    events_for_alerts(logs)
    m = monitor(node_dirs, fakes(node_dirs), tmp_path / "state", logs.clock)
    assert len(asyncio.run(m.poll())) == 3
    sender = WebhookSender(m.store, "http://127.0.0.1:9/hook")
    assert m.store.pending(sender.url) == []
    events_for_alerts(logs, tag="y")
    assert len(asyncio.run(m.poll())) == 2
    assert len(m.store.pending(sender.url)) == 2
    m.store.close()


def test_a_missing_node_back_is_resolved_once_to_the_webhook_across_restarts(
    node_dirs: MonCluster, logs: Logs, tmp_path: Path
) -> None:
    """Missing, then back, then missing again: one firing alert, one resolution, a new firing
    alert; each recorded, logged and delivered exactly once (the receiver refuses the first
    POST), across three restarts, one of them between the resolution and its delivery."""
    clock = logs.clock
    url, receiver, state, src = webhook_world(node_dirs, tmp_path)
    echoed: list[str] = []

    def start(deliver: bool = True) -> tuple[Monitor, WebhookSender | None]:
        m = Monitor(
            node_dirs.cluster,
            src,
            MonitorStore.open(state),
            settings=MonitorSettings(interval=2.0),
            clock=clock,
            echo=echoed.append,
        )
        m.load()
        sender = WebhookSender(m.store, url, min_backoff=0.05, max_backoff=0.2)
        if not deliver:
            return m, None
        m.on_alerts(lambda _a: sender.wake())
        return m, sender

    async def polls(m: Monitor, n: int) -> list[Alert]:
        out: list[Alert] = []
        for _ in range(n):
            clock.advance(2.0)
            out += await m.poll()
        return out

    async def delivered(m: Monitor, sender: WebhookSender | None, keys: set[str]) -> None:
        assert sender is not None
        stop = asyncio.Event()
        task = asyncio.create_task(sender.run(stop))
        await until(lambda: keys <= set(receiver.accepted_keys()))
        await asyncio.sleep(0.3)  # nothing more comes
        stop.set()
        await task
        await sender.close()

    async def scenario() -> list[Alert]:
        await receiver.start()
        # 1. c stops answering: one node-missing alert, delivered (after one 500).
        m, sender = start()
        assert await m.poll() == []
        src["c"].down = True
        (fired,) = await polls(m, 4)
        assert (fired.kind, fired.status, fired.parties) == ("node-missing", "firing", ("c",))
        await delivered(m, sender, {fired.key})
        m.store.close()
        # 2. Restarted while c is still down: nothing again. c answers: the resolution is
        # recorded and logged, but this run ends before delivering it.
        m, _ = start(deliver=False)
        assert await polls(m, 2) == []
        src["c"].down = False
        (resolved,) = await polls(m, 1)
        assert (resolved.id, resolved.status, resolved.resolved_at) == (
            fired.id, "resolved", clock.now
        )  # fmt: skip
        assert resolved.message.startswith("node c answers its health check again after ")
        (row,) = m.snapshot()["alerts"]  # shown resolved, not removed
        assert (row["id"], row["status"], row["resolution"]) == (
            fired.id, "resolved", resolved.message
        )  # fmt: skip
        assert row["message"] == fired.message and m.snapshot()["alert_count"] == 1
        assert await polls(m, 2) == []
        m.store.close()
        # 3. Restarted: nothing raised or resolved again; the owed resolution is delivered.
        m, sender = start()
        assert await polls(m, 2) == []
        await delivered(m, sender, {resolved.key})
        m.store.close()
        # 4. Restarted: nothing at all; then c goes missing again: a new alert.
        m, sender = start()
        assert await polls(m, 2) == []
        assert sender is not None and await sender.deliver_pending() == 0
        src["c"].down = True
        (again,) = await polls(m, 4)
        assert (again.kind, again.status) == ("node-missing", "firing") and again.id != fired.id
        await delivered(m, sender, {again.key})
        m.store.close()
        await receiver.stop()
        return [fired, resolved, again]

    fired, resolved, again = asyncio.run(scenario())
    assert receiver.accepted_keys() == [fired.id, f"{fired.id}:resolved", again.id]
    assert len(receiver.posts) == 4  # the refused first one, posted again once
    bodies = [body for status, body, _key in receiver.posts if status == 200]
    assert [(b["id"], b["status"]) for b in bodies] == [
        (fired.id, "firing"), (fired.id, "resolved"), (again.id, "firing")
    ]  # fmt: skip
    assert bodies[1]["resolved_at"] == resolved.resolved_at and bodies[0]["resolved_at"] is None
    assert bodies[1]["message"] == resolved.message and bodies[1]["at"] == fired.at
    lines = [json.loads(x) for x in (state / "alerts.jsonl").read_text().splitlines()]
    assert [(x["id"], x["status"]) for x in lines] == [(b["id"], b["status"]) for b in bodies]
    logged = [x for x in echoed if x.startswith("alert")]
    assert [x.split(" [")[0] for x in logged] == ["alert", "alert resolved", "alert"]
    assert logged[1].startswith("alert resolved [critical node-missing] node c answers its")


def test_a_state_from_before_resolutions_loads_and_resolves(
    node_dirs: MonCluster, logs: Logs, tmp_path: Path
) -> None:
    """A state directory the previous version wrote (no ``status`` column, alert bodies with
    no ``status``): it loads, its open node-missing alert stays open, and is resolved once."""
    import sqlite3

    state = tmp_path / "state"
    src = fakes(node_dirs)
    events_for_alerts(logs)
    m = monitor(node_dirs, src, state, logs.clock, once=True)
    src["c"].down = True
    first = asyncio.run(m.poll())
    assert sorted(kinds(first)) == ["channel", "node-missing", "policy-refusal", "session-failed"]
    m.store.close()
    # Make it what the previous version wrote.
    conn = sqlite3.connect(state / "monitor.db")
    rows = conn.execute("SELECT n, body FROM alerts").fetchall()
    conn.execute("ALTER TABLE alerts DROP COLUMN status")
    for n, body in rows:
        doc = json.loads(body)
        del doc["status"], doc["resolved_at"]
        conn.execute("UPDATE alerts SET body = ? WHERE n = ?", (json.dumps(doc), n))
    conn.commit()
    conn.close()
    # Restarted by this version: nothing raised again while c is down.
    m = monitor(node_dirs, src, state, logs.clock, once=True)
    assert [a.status for a in m.store.alerts()] == ["firing"] * 4
    logs.clock.advance(2)
    assert asyncio.run(m.poll()) == []
    src["c"].down = False
    logs.clock.advance(2)
    (r,) = asyncio.run(m.poll())
    (missing,) = of_kind(first, "node-missing")
    assert (r.id, r.status, r.kind) == (missing.id, "resolved", "node-missing")
    assert m.store.alert_count() == 4
    rows_shown = {a["id"]: a["status"] for a in m.snapshot()["alerts"]}
    assert rows_shown == {a.id: "resolved" if a is missing else "firing" for a in first}
    m.store.close()
    m = monitor(node_dirs, src, state, logs.clock, once=True)
    logs.clock.advance(2)
    assert asyncio.run(m.poll()) == []
    m.store.close()


def test_a_lagging_node_caught_up_then_rolled_back_across_a_restart(
    node_dirs: MonCluster, logs: Logs, tmp_path: Path
) -> None:
    """Lagging, caught up (resolved), then rolled back to the same epoch (a restored backup)
    while the monitor was stopped: a new occurrence, so a new alert."""
    state = tmp_path / "state"
    src = fakes(node_dirs)

    def epochs(**by_node: int) -> None:
        for n, e in by_node.items():
            src[n].wallet_list = [{"wallet_id": "w1", "epoch": e}]

    async def polls(m: Monitor, n: int) -> list[Alert]:
        out: list[Alert] = []
        for _ in range(n):
            logs.clock.advance(2.0)
            out += await m.poll()
        return out

    epochs(a=2, b=2, c=1)
    m = monitor(node_dirs, src, state, logs.clock, interval=2.0)
    (lag,) = asyncio.run(polls(m, 5))
    assert (lag.kind, lag.status, lag.node) == ("node-lagging", "firing", "c")
    epochs(c=2)
    (resolved,) = asyncio.run(polls(m, 1))
    assert (resolved.id, resolved.status) == (lag.id, "resolved")
    assert "it holds wallet w1 at epoch 2, the newest" in resolved.message
    m.store.close()
    # Rolled back while the monitor was stopped: the restarted monitor never sees it level.
    epochs(c=1)
    m = monitor(node_dirs, src, state, logs.clock, interval=2.0)
    (again,) = asyncio.run(polls(m, 5))
    assert (again.kind, again.status, again.subject) == (
        "node-lagging",
        "firing",
        lag.subject + "#2",
    )
    assert again.id != lag.id and m.store.alert_count() == 2
    m.store.close()


# -- the command line -----------------------------------------------------------------------------


def tmpc(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Any:
    full = dict(os.environ)
    full.pop("TMPC_AUTH", None)
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "tmpc", "monitor", *args],
        capture_output=True, text=True, env=full, stdin=subprocess.DEVNULL, timeout=timeout,
    )  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [
        ("--cluster", "no-such-cluster.json"),
        ("--cluster", "CLUSTER", "--webhook", "ftp://example/hook"),
        ("--cluster", "CLUSTER", "--webhook", "not a url"),
        ("--cluster", "CLUSTER", "--listen", "8470"),
        ("--cluster", "CLUSTER", "--listen", "127.0.0.1:99999"),
        ("--cluster", "CLUSTER", "--interval", "0"),
        ("--cluster", "CLUSTER"),  # no operator credential
        ("--cluster", "CLUSTER", "--auth", "no-such-credential.json"),
        ("--cluster", "NOTCLUSTER", "--auth", "CLUSTER"),  # not a cluster file
    ],
    ids=[
        "missing-cluster",
        "webhook-scheme",
        "webhook-not-url",
        "listen-no-port",
        "listen-bad-port",
        "interval-zero",
        "no-credential",
        "missing-credential",
        "not-a-cluster-file",
    ],
)
def test_cli_input_errors_are_one_line(
    tc: MonCluster, tmp_path: Path, args: tuple[str, ...]
) -> None:
    (tmp_path / "junk.json").write_text('{"format": "something else"}')
    real = [
        str(tc.root / "cluster.json") if a == "CLUSTER" else
        str(tmp_path / "junk.json") if a == "NOTCLUSTER" else a
        for a in args
    ]  # fmt: skip
    proc = tmpc(*real, "--state", str(tmp_path / "state"), "--once")
    assert_one_line_error(proc, EXIT_INPUT)


# A cluster of fake nodes over HTTPS with mutual TLS: the node's own certificate and key, the
# operator's certificate required; each serves its real audit log as GET /v1/audit does.


class HttpsNodes:
    """The fake nodes of ``tc`` served over HTTPS in a thread of their own."""

    def __init__(self, tc: MonCluster, sources: dict[str, FakeNode]) -> None:
        self.tc = tc
        self.sources = sources
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runners: dict[str, web.AppRunner] = {}

    def app(self, src: NodeSource) -> web.Application:
        async def audit(request: web.Request) -> web.Response:
            after = int(request.query.get("after", "0"))
            limit = min(int(request.query.get("limit", "500")), 5000)
            return web.json_response(await src.audit(after, limit))

        async def health(request: web.Request) -> web.Response:
            return web.json_response(await src.health())

        async def wallets(request: web.Request) -> web.Response:
            return web.json_response(await src.wallets())

        async def sessions(request: web.Request) -> web.Response:
            return web.json_response(await src.sessions())

        app = web.Application()
        app.add_routes(
            [
                web.get("/v1/audit", audit),
                web.get("/v1/health", health),
                web.get("/v1/wallets", wallets),
                web.get("/v1/sessions", sessions),
            ]
        )
        return app

    async def _start(self, name: str) -> None:
        d = self.tc.dir(name)
        ctx = tls.server_context(
            (d / "tls" / "cert.pem").read_bytes(),
            (d / "tls" / "key.pem").read_bytes(),
            [self.tc.operator.cert],
            password=node_config.tls_key_password(PASSPHRASE),
        )
        runner = web.AppRunner(self.app(self.sources[name]), access_log=None)
        await runner.setup()
        cfg = node_config.load_config(d)
        await web.TCPSite(runner, cfg.host, cfg.port, ssl_context=ctx).start()
        self.runners[name] = runner

    def start(self, name: str) -> None:
        asyncio.run_coroutine_threadsafe(self._start(name), self.loop).result(10)

    def stop(self, name: str) -> None:
        runner = self.runners.pop(name)
        asyncio.run_coroutine_threadsafe(runner.cleanup(), self.loop).result(10)

    def __enter__(self) -> HttpsNodes:
        self.thread.start()
        for n in self.tc.names:
            self.start(n)
        return self

    def __exit__(self, *exc: object) -> None:
        for n in list(self.runners):
            self.stop(n)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def credential(node_dirs: MonCluster, tmp_path: Path) -> Path:
    trust = [(node_dirs.dir(n) / "tls" / "cert.pem").read_bytes() for n in node_dirs.names]
    path = tmp_path / "operator.json"
    path.write_bytes(make_credential(node_dirs.operator, node_dirs.operator_key, trust))
    return path


def test_cli_once_over_https_reports_new_alerts_then_none(
    node_dirs: MonCluster, logs: Logs, credential: Path, tmp_path: Path
) -> None:
    record, _shares = schemes.keygen("schnorr-bip340", 2, 3)
    src = fakes(node_dirs)
    for i, n in enumerate(node_dirs.names):
        src[n].wallet_list = [wallet_entry(record, list(node_dirs.names), i + 1)]
    logs.clock.now = time.time()
    events_for_alerts(logs)
    cluster = str(node_dirs.root / "a" / "cluster.json")
    args = ("--cluster", cluster, "--state", str(tmp_path / "state"), "--once")
    with HttpsNodes(node_dirs, src) as nodes:
        proc = tmpc(*args, "--json", env={"TMPC_AUTH": str(credential)})
        assert proc.returncode == EXIT_ALERTS, proc.stderr
        alerts = [json.loads(line) for line in proc.stdout.splitlines()]
        assert sorted(a["kind"] for a in alerts) == ["channel", "policy-refusal", "session-failed"]
        (blame,) = [a for a in alerts if a["kind"] == "session-failed"]
        assert blame["parties"] == ["c"]
        assert "Traceback" not in proc.stderr and "3 new alert(s)" in proc.stderr
        again = tmpc(*args, "--auth", str(credential))
        assert again.returncode == 0 and again.stdout == "", again.stderr
        nodes.stop("c")
        down = tmpc(*args, "--auth", str(credential))
        assert down.returncode == EXIT_ALERTS
        assert "[critical node-missing] node c does not answer" in down.stdout


def test_cli_serves_the_dashboard_and_stops_cleanly_on_sigterm(
    node_dirs: MonCluster, logs: Logs, credential: Path, tmp_path: Path
) -> None:
    logs.clock.now = time.time()
    events_for_alerts(logs)
    env = dict(os.environ, TMPC_AUTH=str(credential))
    port = free_port()
    with HttpsNodes(node_dirs, fakes(node_dirs)):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tmpc", "monitor", "--cluster",
             str(node_dirs.root / "a" / "cluster.json"), "--state", str(tmp_path / "state"),
             "--listen", f"127.0.0.1:{port}", "--interval", "0.5", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            state: dict[str, Any] = {}
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/api/state", timeout=2
                    ) as r:
                        state = json.loads(r.read())
                    if state["alert_count"] == 3:
                        break
                except OSError:
                    pass
                time.sleep(0.2)
            assert state.get("alert_count") == 3, state
            assert [n["up"] for n in state["nodes"]] == [True, True, True]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                page = r.read().decode()
                csp = r.headers["Content-Security-Policy"]
            assert 'id="alerts"' in page and "script-src 'self'" in csp
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/state", headers={"Host": f"evil.example:{port}"}
            )
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(req, timeout=2)
            assert err.value.code == 421
            err.value.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err_text = proc.communicate(timeout=20)
    assert proc.returncode == 0, err_text
    assert "Traceback" not in err_text
    assert "dashboard http://127.0.0.1:" in err_text and err_text.rstrip().endswith("stopped")
    assert err_text.count("alert [") == 3
    printed = [json.loads(line) for line in out.splitlines()]
    assert sorted(a["kind"] for a in printed) == ["channel", "policy-refusal", "session-failed"]


def test_once_text_lines_mark_resolutions() -> None:
    """``tmpc monitor --once`` prints a resolution's line starting with ``resolved`` (a firing
    alert's line is unchanged); only firing alerts make its status 1 (see cli/monitor.py)."""
    from dataclasses import replace

    from tmpc.cli.monitor import _alert_line

    firing = Alert(
        id="x1", kind="node-missing", severity="critical", subject="c", at=T0,
        message="node c is missing",
        node="c",
    )  # fmt: skip
    assert _alert_line(firing) == "[critical node-missing] node c is missing (id x1)"
    ended = replace(firing, status="resolved", message="node c answers again", resolved_at=T0)
    assert _alert_line(ended) == "resolved [critical node-missing] node c answers again (id x1)"
