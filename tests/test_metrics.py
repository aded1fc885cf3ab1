"""Node metrics (issue 12): the exposition of each NodeMetrics method, label caps, the shipped
alert rules under promtool, and a real Prometheus server scraping a /metrics endpoint."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import prometheus_client
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from tests.prom_helpers import serve_metrics, start_prometheus
from tmpc.errors import ParameterError
from tmpc.node.metrics import (
    MAX_LABEL_LENGTH,
    OTHER,
    OUTCOMES,
    REJECTION_REASONS,
    NodeMetrics,
)

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy" / "prometheus"

Key = tuple[str, frozenset[tuple[str, str]]]


def samples(m: NodeMetrics) -> dict[Key, float]:
    """Every sample of the text exposition, by (sample name, labels)."""
    body, content_type = m.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    out: dict[Key, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(m: NodeMetrics, name: str, **labels: str) -> float | None:
    return samples(m).get((name, frozenset(labels.items())))


def series(m: NodeMetrics, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples(m).items() if n == name}


def fixed_clock(now: list[float]) -> Callable[[], float]:
    return lambda: now[0]


# -- each method --------------------------------------------------------------------------


def test_sessions_counted_by_protocol_and_outcome() -> None:
    m = NodeMetrics()
    m.session_started("frost-sign")
    m.session_started("frost-sign")
    assert value(m, "tmpc_sessions_started_total", protocol="frost-sign") == 2
    assert value(m, "tmpc_sessions_running", protocol="frost-sign") == 2
    m.session_ended("frost-sign", "completed", 0.2)
    m.session_ended("frost-sign", "aborted", 3.0)
    assert value(m, "tmpc_sessions_total", protocol="frost-sign", outcome="completed") == 1
    assert value(m, "tmpc_sessions_total", protocol="frost-sign", outcome="aborted") == 1
    assert value(m, "tmpc_sessions_total", protocol="frost-sign", outcome="timeout") is None
    assert value(m, "tmpc_sessions_running", protocol="frost-sign") == 0
    assert value(m, "tmpc_session_seconds_count", protocol="frost-sign") == 2
    assert value(m, "tmpc_session_seconds_sum", protocol="frost-sign") == pytest.approx(3.2)
    assert value(m, "tmpc_session_seconds_bucket", protocol="frost-sign", le="0.25") == 1
    assert value(m, "tmpc_session_seconds_bucket", protocol="frost-sign", le="5.0") == 2
    # An end without a start here (a session lost in a restart) never goes below 0.
    m.session_ended("frost-sign", "timeout", 5.0)
    assert value(m, "tmpc_sessions_running", protocol="frost-sign") == 0


def test_session_series_of_known_protocols_start_at_zero() -> None:
    m = NodeMetrics(["dkg", "frost-sign"])
    for protocol in ("dkg", "frost-sign"):
        assert value(m, "tmpc_sessions_started_total", protocol=protocol) == 0
        for outcome in OUTCOMES:
            assert value(m, "tmpc_sessions_total", protocol=protocol, outcome=outcome) == 0
    for reason in REJECTION_REASONS:
        assert value(m, "tmpc_rejected_messages_total", reason=reason) == 0


def test_session_end_checks_its_arguments() -> None:
    m = NodeMetrics()
    with pytest.raises(ParameterError):
        m.session_ended("dkg", "succeeded", 1.0)
    with pytest.raises(ParameterError):
        m.session_ended("dkg", "completed", -1.0)
    with pytest.raises(ParameterError):
        m.session_ended("dkg", "completed", float("nan"))
    with pytest.raises(ParameterError):
        m.round_done("dkg", 1, float("inf"))
    assert series(m, "tmpc_sessions_total") == {}
    assert series(m, "tmpc_round_seconds_count") == {}


def test_round_latency_by_protocol_and_round() -> None:
    m = NodeMetrics()
    m.round_done("dkls23-presign", 1, 0.004)
    m.round_done("dkls23-presign", 1, 0.02)
    m.round_done("dkls23-presign", 2, 0.3)
    one = {"protocol": "dkls23-presign", "round": "1"}
    assert value(m, "tmpc_round_seconds_count", **one) == 2
    assert value(m, "tmpc_round_seconds_bucket", **one, le="0.005") == 1
    assert value(m, "tmpc_round_seconds_bucket", **one, le="0.025") == 2
    assert value(m, "tmpc_round_seconds_sum", protocol="dkls23-presign", round="2") == 0.3


def test_refusals_requests_and_unauthorized_attempts() -> None:
    m = NodeMetrics()
    m.rejected("tampered")
    m.rejected("stale")
    m.rejected("stale")
    m.policy_refused("velocity-daily")
    m.unauthorized("mallory")
    m.request("sign", "signed")
    m.request("sign", "failed")
    assert value(m, "tmpc_rejected_messages_total", reason="tampered") == 1
    assert value(m, "tmpc_rejected_messages_total", reason="stale") == 2
    assert value(m, "tmpc_policy_refusals_total", rule="velocity-daily") == 1
    assert value(m, "tmpc_unauthorized_session_attempts_total", initiator="mallory") == 1
    assert value(m, "tmpc_requests_total", kind="sign", outcome="signed") == 1
    assert value(m, "tmpc_requests_total", kind="sign", outcome="failed") == 1


def test_peers() -> None:
    m = NodeMetrics()
    m.set_peers(1, 2)
    assert value(m, "tmpc_peers") == 2
    assert value(m, "tmpc_peers_reachable") == 1
    with pytest.raises(ParameterError):
        m.set_peers(3, 2)
    with pytest.raises(ParameterError):
        m.set_peers(-1, 2)
    assert value(m, "tmpc_peers_reachable") == 1


def test_presignature_pool_read_at_scrape_time() -> None:
    m = NodeMetrics(wallet_limit=2)
    assert series(m, "tmpc_presignatures") == {}
    pool = {"w1": 5, "w2": 0}
    m.set_pool_source(lambda: pool)
    assert value(m, "tmpc_presignatures", wallet="w1") == 5
    assert value(m, "tmpc_presignatures", wallet="w2") == 0
    pool["w1"] = 4
    pool["w3"] = 7  # past the wallet cap: summed into "other"
    pool["w4"] = 1
    assert value(m, "tmpc_presignatures", wallet="w1") == 4
    assert value(m, "tmpc_presignatures", wallet=OTHER) == 8
    m.set_pool_source(None)
    assert series(m, "tmpc_presignatures") == {}


def test_a_failing_pool_source_does_not_fail_the_scrape(caplog: pytest.LogCaptureFixture) -> None:
    m = NodeMetrics()
    m.session_started("dkg")

    def broken() -> dict[str, int]:
        raise OSError("database is locked")

    m.set_pool_source(broken)
    got = samples(m)  # one scrape
    assert not any(name == "tmpc_presignatures" for name, _ in got)
    assert got[("tmpc_sessions_started_total", frozenset({("protocol", "dkg")}))] == 1
    # Counted during the scrape: the next one shows it.
    assert value(m, "tmpc_metrics_source_errors_total", source="presignatures") == 1
    assert "presignature pool source failed" in caplog.text


def test_heartbeat_timestamp_age_and_failures() -> None:
    now = [1_000_000.0]
    m = NodeMetrics(clock=fixed_clock(now))
    assert series(m, "tmpc_heartbeat_age_seconds") == {}
    m.heartbeat_ok("w1", 999_900.0)
    m.heartbeat_ok("w2")  # now
    assert value(m, "tmpc_heartbeat_last_success_timestamp_seconds", wallet="w1") == 999_900
    assert value(m, "tmpc_heartbeat_age_seconds", wallet="w1") == 100
    assert value(m, "tmpc_heartbeat_age_seconds", wallet="w2") == 0
    now[0] += 50  # the age is computed at scrape time
    assert value(m, "tmpc_heartbeat_age_seconds", wallet="w1") == 150
    m.heartbeat_ok("w1", 999_000.0)  # older than the recorded one: ignored
    assert value(m, "tmpc_heartbeat_last_success_timestamp_seconds", wallet="w1") == 999_900
    m.heartbeat_failed("w1")
    m.heartbeat_failed("w1")
    assert value(m, "tmpc_heartbeat_failures_total", wallet="w1") == 2
    assert value(m, "tmpc_heartbeat_failures_total", wallet="w2") is None


def test_epoch_and_audit_chain() -> None:
    m = NodeMetrics()
    # No audit series before the first check, so nothing alerts on a default 0.
    assert value(m, "tmpc_audit_chain_head_seq") is None
    assert value(m, "tmpc_audit_chain_valid") is None
    m.set_epoch("w1", 3)
    m.set_audit_head(41)
    m.set_audit_valid(True)
    assert value(m, "tmpc_wallet_epoch", wallet="w1") == 3
    assert value(m, "tmpc_audit_chain_head_seq") == 41
    assert value(m, "tmpc_audit_chain_valid") == 1
    m.set_audit_valid(False)
    assert value(m, "tmpc_audit_chain_valid") == 0


def test_audit_head_is_read_at_each_scrape() -> None:
    """A node gives its log's seq as the head's source: each scrape reads it (no update per
    entry); a failing source costs its series and is counted, never the scrape."""
    m = NodeMetrics()
    head = [7]
    m.set_audit_head_source(lambda: head[0])
    assert value(m, "tmpc_audit_chain_head_seq") == 7
    head[0] = 12
    assert value(m, "tmpc_audit_chain_head_seq") == 12

    def broken() -> int:
        raise OSError("gone")

    m.set_audit_head_source(broken)
    m.set_epoch("w1", 1)
    assert value(m, "tmpc_audit_chain_head_seq") is None
    assert value(m, "tmpc_wallet_epoch", wallet="w1") == 1
    assert value(m, "tmpc_metrics_source_errors_total", source="audit") >= 1
    m.set_audit_head_source(None)
    assert value(m, "tmpc_audit_chain_head_seq") is None


def test_every_name_is_prefixed_and_documented() -> None:
    m = NodeMetrics()
    m.set_audit_head(1)
    m.set_pool_source(dict)
    for family in text_string_to_metric_families(m.render()[0].decode()):
        assert family.name.startswith("tmpc_"), family.name
        assert family.documentation, family.name


# -- labels -------------------------------------------------------------------------------


def test_label_values_are_cleaned_and_cut() -> None:
    m = NodeMetrics()
    m.unauthorized('eve"}\nx{a="b')
    m.unauthorized("f" * 200)
    m.policy_refused("")
    m.unauthorized("ab:CD/ef.gh@ij+kl-mn_op")
    got = {dict(k)["initiator"] for k in series(m, "tmpc_unauthorized_session_attempts_total")}
    assert got == {"eve___x_a__b", "f" * MAX_LABEL_LENGTH, "ab:CD/ef.gh@ij+kl-mn_op"}
    assert value(m, "tmpc_policy_refusals_total", rule="none") == 1


def test_label_values_are_capped_then_other() -> None:
    m = NodeMetrics(label_limit=3)
    for name in ("a", "b", "c", "d", "e", "a"):
        m.unauthorized(name)
    got = {
        dict(k)["initiator"]: v
        for k, v in series(m, "tmpc_unauthorized_session_attempts_total").items()
    }
    assert got == {"a": 2, "b": 1, "c": 1, OTHER: 2}
    # Each label has its own cap.
    for rule in ("r1", "r2", "r3"):
        m.policy_refused(rule)
    assert len(series(m, "tmpc_policy_refusals_total")) == 3


def test_default_cap_is_64_values() -> None:
    m = NodeMetrics()
    for i in range(100):
        m.policy_refused(f"rule-{i}")
    got = series(m, "tmpc_policy_refusals_total")
    assert len(got) == 65
    assert got[frozenset({("rule", OTHER)})] == 36


def test_limits_must_be_positive() -> None:
    with pytest.raises(ParameterError):
        NodeMetrics(label_limit=0)
    with pytest.raises(ParameterError):
        NodeMetrics(wallet_limit=0)


def test_two_instances_are_independent() -> None:
    a, b = NodeMetrics(), NodeMetrics()
    a.session_started("dkg")
    a.unauthorized("mallory")
    b.set_peers(2, 2)
    assert value(a, "tmpc_sessions_started_total", protocol="dkg") == 1
    assert value(b, "tmpc_sessions_started_total", protocol="dkg") is None
    assert series(b, "tmpc_unauthorized_session_attempts_total") == {}
    assert value(a, "tmpc_peers") == 0
    assert value(b, "tmpc_peers") == 2
    # Nothing lands in the library's global registry.
    names = {f.name for f in prometheus_client.REGISTRY.collect()}
    assert not any(n.startswith("tmpc_") for n in names)


def test_render_negotiates_openmetrics() -> None:
    m = NodeMetrics()
    m.session_ended("dkg", "completed", 1.0)
    accept = (
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
        "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )  # what Prometheus sends
    body, content_type = m.render(accept)
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    families = {f.name: f for f in openmetrics_families(body.decode())}
    (total,) = [s for s in families["tmpc_sessions"].samples if s.name == "tmpc_sessions_total"]
    assert total.labels == {"protocol": "dkg", "outcome": "completed"}
    assert total.value == 1


# -- alert rules --------------------------------------------------------------------------


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary is not None, "promtool is not installed (make prometheus)"
    return subprocess.run(
        [binary, *args], cwd=RULES, capture_output=True, text=True, timeout=60, check=False
    )


def test_promtool_checks_the_shipped_rules() -> None:
    done = promtool("check", "rules", "tmpc-alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_unit_tests_show_the_alerts_fire() -> None:
    done = promtool("test", "rules", "tmpc-alerts.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    text = (RULES / "tmpc-alerts.test.yml").read_text()
    for alert in ("TmpcUnauthorizedSessionAttempts", "TmpcHeartbeatStale", "TmpcNodeDown"):
        assert f"alertname: {alert}" in text


def test_promtool_unit_tests_fail_on_a_vacuous_rule(tmp_path: Path) -> None:
    # The same tests against rules whose heartbeat threshold never trips must fail.
    rules = (RULES / "tmpc-alerts.yml").read_text()
    assert "tmpc_heartbeat_age_seconds > 1800" in rules
    (tmp_path / "tmpc-alerts.yml").write_text(
        rules.replace("tmpc_heartbeat_age_seconds > 1800", "tmpc_heartbeat_age_seconds > 1e9")
    )
    shutil.copy(RULES / "tmpc-alerts.test.yml", tmp_path)
    done = promtool("test", "rules", str(tmp_path / "tmpc-alerts.test.yml"))
    assert done.returncode != 0
    assert "TmpcHeartbeatStale" in done.stdout + done.stderr


def test_the_sample_scrape_config_parses() -> None:
    done = promtool("check", "config", "--syntax-only", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr


# -- a real Prometheus server -------------------------------------------------------------


def test_prometheus_scrapes_the_session_counters(tmp_path: Path) -> None:
    m = NodeMetrics(["frost-sign"])
    for _ in range(3):
        m.session_started("frost-sign")
        m.session_ended("frost-sign", "completed", 0.1)
    m.session_started("dkg")
    m.session_ended("dkg", "aborted", 2.0)
    m.unauthorized("mallory")
    m.heartbeat_ok("w1", time.time() - 60)
    m.set_pool_source(lambda: {"w1": 12})

    start = time.monotonic()
    with (
        serve_metrics(m.render) as target,
        start_prometheus(
            [target], tmp_path / "prom", rule_files=[RULES / "tmpc-alerts.yml"]
        ) as prom,
    ):
        got = prom.wait_for(
            'tmpc_sessions_total{job="tmpc"}',
            lambda r: len(r) >= 5,
        )
        by_labels = {(s["protocol"], s["outcome"]): v for s, v in got}
        assert by_labels[("frost-sign", "completed")] == 3
        assert by_labels[("dkg", "aborted")] == 1
        for outcome in ("aborted", "timeout", "refused"):
            assert by_labels[("frost-sign", outcome)] == 0
        assert all(s["instance"] == target for s, _ in got)

        # A counter moving between scrapes shows up too.
        m.session_started("frost-sign")
        m.session_ended("frost-sign", "completed", 0.1)
        prom.wait_for(
            'tmpc_sessions_total{protocol="frost-sign", outcome="completed"}',
            lambda r: [v for _, v in r] == [4],
        )
        ((_, up),) = prom.query('up{job="tmpc"}')
        assert up == 1
        ((_, pool),) = prom.query('tmpc_presignatures{wallet="w1"}')
        assert pool == 12
        # The shipped rules run on the scraped series: the attempt by mallory alerts.
        alerts = prom.wait_for(
            'ALERTS{alertname="TmpcUnauthorizedSessionAttempts"}', lambda r: len(r) == 1
        )
        assert alerts[0][0]["initiator"] == "mallory"
    assert time.monotonic() - start < 30
