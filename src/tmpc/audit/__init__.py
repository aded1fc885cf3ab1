"""Each node's tamper-evident audit log (issue 12): append-only, hash-chained, signed, with
checkpoints cross-signed by the other nodes.

Layers, each in its own module:

- :mod:`tmpc.audit.entry` -- one entry: canonical line, hash chain, signature, and the
  scrubber that keeps secrets out (:func:`check_data`); no I/O;
- :mod:`tmpc.audit.checkpoint` -- cosigning another node's head, and when to ask for it; no
  I/O;
- :mod:`tmpc.audit.verify` -- :func:`verify`: the chain, the signatures, the signed head, the
  checkpoints and the peers' records, naming the first bad entry (:class:`ChainChecker` is its
  sans-I/O core);
- :mod:`tmpc.audit.log` -- :class:`AuditLog`: the node's log on disk (a batched writer thread,
  crash recovery, reads for the API, checkpoints).

A node writes::

    log = AuditLog.open(node_dir, node=name, identity=identity, background=True)
    log.submit(REQUEST_REFUSED, {"request": rid, "rule": rule, "reason": text})  # ~5 µs

(checked at once, written by the log's writer thread in batches; :meth:`AuditLog.flush` waits
for the disk, :attr:`AuditLog.broken` and :attr:`AuditLog.dropped` are for its alerts), serves
``GET /v1/audit`` with :meth:`AuditLog.read`, and every so often
(:meth:`AuditLog.checkpoint_due`) collects cosignatures of :meth:`AuditLog.checkpoint_body`
from the other nodes (each calls :meth:`AuditLog.cosign` on its own log) and records them with
:meth:`AuditLog.add_checkpoint`. ``tmpc audit verify`` checks a node's log.
"""

from __future__ import annotations

from tmpc.audit.checkpoint import (
    CheckpointBody,
    CheckpointSchedule,
    cosign,
    verify_cosign,
)
from tmpc.audit.entry import (
    EVENT_TYPES,
    LIFECYCLE_SWITCHED,
    MESSAGE_REJECTED,
    POLICY_INSTALLED,
    REQUEST_APPROVED,
    REQUEST_RECEIVED,
    REQUEST_REFUSED,
    RESERVED_TYPES,
    SESSION_BLAME,
    SESSION_COMPLETED,
    SESSION_ROUND,
    SESSION_STARTED,
    SESSION_TIMEOUT,
    Entry,
    check_data,
)
from tmpc.audit.log import AuditLog
from tmpc.audit.verify import ChainChecker, Problem, VerifyReport, log_paths, verify

__all__ = [
    "EVENT_TYPES",
    "LIFECYCLE_SWITCHED",
    "MESSAGE_REJECTED",
    "POLICY_INSTALLED",
    "REQUEST_APPROVED",
    "REQUEST_RECEIVED",
    "REQUEST_REFUSED",
    "RESERVED_TYPES",
    "SESSION_BLAME",
    "SESSION_COMPLETED",
    "SESSION_ROUND",
    "SESSION_STARTED",
    "SESSION_TIMEOUT",
    "AuditLog",
    "ChainChecker",
    "CheckpointBody",
    "CheckpointSchedule",
    "Entry",
    "Problem",
    "VerifyReport",
    "check_data",
    "cosign",
    "log_paths",
    "verify",
    "verify_cosign",
]
