"""What a node tells its operators about itself: audit events and Prometheus metrics.

The engine reports each event once, here; this module writes it to the node's audit log
(:mod:`tmpc.audit`: hash-chained, signed, the event types of ``docs/monitoring.md``) and
updates the node's metrics (:class:`~tmpc.node.metrics.NodeMetrics`, served at ``/metrics``).

Neither may slow a request down nor stop a node: audit entries go through the log's
background writer (:meth:`~tmpc.audit.AuditLog.submit`: validated here, written and fsync'd in
batches by its thread), and an audit log that fails (a full disk) is counted, reported by
``tmpc_audit_chain_valid`` and logged once, while the node carries on. Nothing here ever
receives a secret: callers pass ids, names, counts and hashes only, and the audit log's filter
refuses anything named like a secret.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Concatenate, Final, ParamSpec

from tmpc.audit import AuditLog
from tmpc.errors import TmpcError
from tmpc.node.metrics import NodeMetrics

__all__ = ["PROTOCOLS", "Observer", "signature_digest"]

log = logging.getLogger(__name__)

#: The protocols a node's session series start at 0 for (``machines.protocol_name``).
PROTOCOLS: Final = ("keygen", "sign", "presign", "refresh", "reshare", "repair")


def signature_digest(result: Mapping[str, Any]) -> str | None:
    """The SHA-256 (hex) of a signing result's signature, for the audit log (the signature
    itself is public, but a hash is enough to match it against a chain's)."""
    sig = result.get("signature")
    if not isinstance(sig, str):
        return None
    try:
        return hashlib.sha256(bytes.fromhex(sig)).hexdigest()
    except ValueError:
        return None


_P = ParamSpec("_P")


def _observed(
    method: Callable[Concatenate[Observer, _P], None],
) -> Callable[Concatenate[Observer, _P], None]:
    """A no-op while the observer is disabled (benchmarks measure a node without it)."""

    def run(self: Observer, /, *args: _P.args, **kwargs: _P.kwargs) -> None:
        if self.enabled:
            method(self, *args, **kwargs)

    run.__name__, run.__doc__ = method.__name__, method.__doc__
    return run


def _names(items: Iterable[object]) -> list[str]:
    return [str(x) for x in items]


class Observer:
    """One node's audit log and metrics, behind one set of event methods.

    ``audit`` may be None (an engine without a log: a library user's in-process engine).
    ``enabled=False`` turns every event into a no-op (no audit entry, no metric): only for
    measuring what observing costs (``tmpc node run --no-observe``, ``make bench``)."""

    def __init__(
        self, metrics: NodeMetrics, audit: AuditLog | None = None, *, enabled: bool = True
    ) -> None:
        self.metrics = metrics
        self.audit = audit
        self.enabled = enabled
        self._audit_failed = False
        #: Audit events that could not be written (the log is broken or refused them).
        self.audit_errors = 0
        if audit is not None and enabled:
            metrics.set_audit_head_source(lambda: audit.seq)  # read at each scrape

    # -- the audit log --------------------------------------------------------------------------

    @_observed
    def event(self, event_type: str, data: Mapping[str, object]) -> None:
        """Append one audit event (without waiting for the disk); never raises."""
        audit = self.audit
        if audit is None:
            return
        try:
            audit.submit(event_type, {k: v for k, v in data.items() if v is not None})
        except (TmpcError, OSError) as exc:
            self.audit_errors += 1
            if not self._audit_failed:
                self._audit_failed = True
                self.metrics.set_audit_valid(False)
                log.error("audit log: %s event not written: %s", event_type, exc)

    # -- requests ------------------------------------------------------------------------------

    @_observed
    def request_received(self, request: str, body: Mapping[str, Any]) -> None:
        """An operator submitted a request to this node (its coordinator)."""
        self.metrics.request(str(body.get("kind")), "received")
        self.event(
            "request.received",
            {
                "request": request,
                "kind": body.get("kind"),
                "wallet": body.get("wallet"),
                "group": body.get("group"),
                "message": body.get("message"),
            },
        )

    @_observed
    def request_proposed(
        self, request: str, body: Mapping[str, Any], coordinator: str, attempt: int
    ) -> None:
        """A coordinator asked this node to take part in a request."""
        self.event(
            "request.proposed",
            {
                "request": request,
                "kind": body.get("kind"),
                "wallet": body.get("wallet"),
                "coordinator": coordinator,
                "attempt": attempt,
            },
        )

    @_observed
    def request_refused(
        self,
        request: str,
        body: Mapping[str, Any],
        coordinator: str,
        reason: str,
        rule: str | None = None,
    ) -> None:
        """This node refused to take part (``rule``: the policy's, if it was the policy)."""
        if rule is not None:
            self.metrics.policy_refused(rule)
        self.event(
            "request.refused",
            {
                "request": request,
                "kind": body.get("kind"),
                "wallet": body.get("wallet"),
                "coordinator": coordinator,
                "rule": rule,
                "reason": reason[:300],
            },
        )

    @_observed
    def request_approved(self, request: str, coordinator: str, detail: Mapping[str, Any]) -> None:
        """This node's policy allows a signing request (``detail``: the decision's facts)."""
        self.event("request.approved", {"request": request, "coordinator": coordinator, **detail})

    @_observed
    def request_done(
        self, request: str, body: Mapping[str, Any], result: Mapping[str, Any]
    ) -> None:
        """A request this node coordinated completed."""
        self.metrics.request(str(body.get("kind")), "completed")
        self.event(
            "request.completed",
            {
                "request": request,
                "kind": body.get("kind"),
                "wallet": result.get("wallet_id") or body.get("wallet"),
                "participants": _names(result.get("participants") or []),
                "signature_sha256": signature_digest(result),
                "epoch": result.get("epoch") if body.get("kind") != "sign" else None,
            },
        )

    @_observed
    def request_failed(
        self, request: str, body: Mapping[str, Any], error: str, culprits: Iterable[str]
    ) -> None:
        """A request this node coordinated failed."""
        self.metrics.request(str(body.get("kind")), "failed")
        self.event(
            "request.failed",
            {
                "request": request,
                "kind": body.get("kind"),
                "wallet": body.get("wallet"),
                "error": error[:300],
                "culprits": _names(culprits),
            },
        )

    # -- sessions ------------------------------------------------------------------------------

    @_observed
    def session_started(
        self,
        session: bytes,
        request: str,
        protocol: str,
        wallet: str,
        coordinator: str,
        participants: list[str],
        attempt: int,
    ) -> None:
        """This node began its side of a session."""
        self.metrics.session_started(protocol)
        self.event(
            "session.started",
            {
                "session": session.hex(),
                "request": request,
                "protocol": protocol,
                "wallet": wallet or None,
                "coordinator": coordinator,
                "participants": participants,
                "attempt": attempt,
            },
        )

    @_observed
    def session_round(self, session: bytes, protocol: str, number: int, seconds: float) -> None:
        """A session's round ``number`` completed here after ``seconds``."""
        self.metrics.round_done(protocol, str(number), seconds)
        self.event(
            "session.round",
            {"session": session.hex(), "round": number, "seconds": round(seconds, 6)},
        )

    @_observed
    def session_completed(
        self,
        session: bytes,
        request: str,
        protocol: str,
        seconds: float,
        result: Mapping[str, Any],
    ) -> None:
        """A session ended with its result here."""
        self.metrics.session_ended(protocol, "completed", seconds)
        self.event(
            "session.completed",
            {
                "session": session.hex(),
                "request": request,
                "protocol": protocol,
                "seconds": round(seconds, 6),
                "signature_sha256": signature_digest(result),
            },
        )

    @_observed
    def session_aborted(
        self,
        session: bytes,
        request: str,
        protocol: str,
        seconds: float,
        reason: str,
        culprits: list[str],
        missing: list[str],
    ) -> None:
        """A session aborted here: a timeout (``missing`` parties), a culprit caught
        (``culprits``), or another failure."""
        timeout = reason == "round timeout"
        self.metrics.session_ended(protocol, "timeout" if timeout else "aborted", seconds)
        base = {"session": session.hex(), "request": request, "protocol": protocol}
        if timeout:
            self.event("session.timeout", {**base, "missing": missing})
        elif culprits:
            self.event("session.blame", {**base, "culprits": culprits, "reason": reason[:300]})
        else:
            self.event("session.aborted", {**base, "reason": reason[:300], "culprits": []})

    @_observed
    def session_refused(self, protocol: str) -> None:
        """A session this node was asked to start and refused."""
        self.metrics.session_ended(protocol, "refused", 0.0)

    # -- the rest -----------------------------------------------------------------------------

    @_observed
    def lifecycle(self, wallet: str, event: str, data: Mapping[str, Any]) -> None:
        """A key lifecycle event of ``wallet`` (``lifecycle.<event>``)."""
        self.event(f"lifecycle.{event}", {"wallet": wallet, **data})

    @_observed
    def policy_installed(self, version: int, digest: str, sender: str | None) -> None:
        """A signing policy was installed here."""
        self.event("policy.installed", {"version": version, "digest": digest, "from": sender})

    @_observed
    def rejected(
        self, reason: str, sender: str | None = None, session: bytes | None = None
    ) -> None:
        """A received message was refused (a bad envelope, a replay, an outsider)."""
        self.metrics.rejected(reason)
        if reason in ("unknown-sender", "outsider") and sender:
            self.metrics.unauthorized(sender)
        self.event(
            "message.rejected",
            {"reason": reason, "sender": sender, "session": session.hex() if session else None},
        )

    @_observed
    def heartbeat(self, wallet: str, ok: bool, data: Mapping[str, Any]) -> None:
        """A heartbeat signature of ``wallet`` was made (or failed) by this node."""
        if ok:
            self.metrics.heartbeat_ok(wallet)
        else:
            self.metrics.heartbeat_failed(wallet)
        self.event("heartbeat.ok" if ok else "heartbeat.failed", {"wallet": wallet, **data})

    def close(self) -> None:
        """Write what is queued and close the audit log."""
        if self.audit is not None:
            try:
                self.audit.close()
            except (TmpcError, OSError) as exc:
                log.error("audit log: closing failed: %s", exc)
