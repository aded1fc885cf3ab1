"""The signing policy: which requests a wallet signs, with which signing group, after which
approvals, within which limits.

Layers, each in its own module:

- :mod:`tmpc.policy.rules` -- the policy file (TOML), validated strictly, as a :class:`Policy`;
- :mod:`tmpc.policy.engine` -- :func:`explain` / :func:`evaluate` of one request's
  :class:`Facts` (one code path: enforcement and explanation never disagree);
- :mod:`tmpc.policy.approvals` -- approvals: approvers' Ed25519 signatures of the request hash;
- :mod:`tmpc.policy.bundle` -- the signed bundle nodes install (administrator quorum, no
  rollback);
- :mod:`tmpc.policy.velocity` -- the SQLite ledger of rolling-window limits (atomic reserve);
- :mod:`tmpc.policy.keys` -- the administrators' and approvers' Ed25519 key files.

Everything but the velocity ledger is free of I/O. The format and the semantics, with
examples, are in ``docs/policy.md``.
"""

from __future__ import annotations

from tmpc.policy.approvals import (
    ApprovalTally,
    canonical_request,
    count_approvals,
    request_hash,
    sign_approval,
)
from tmpc.policy.bundle import (
    Bundle,
    check_upgrade,
    parse_admins,
    policy_digest,
    sign_bundle,
    verify_bundle,
)
from tmpc.policy.engine import (
    Decision,
    Explanation,
    Facts,
    RuleTrace,
    VelocityView,
    evaluate,
    explain,
)
from tmpc.policy.keys import PolicyKey
from tmpc.policy.rules import (
    DEFAULT_DENY,
    Approver,
    Policy,
    PolicyRefusedError,
    Rule,
    Velocity,
    parse_policy,
)
from tmpc.policy.velocity import VelocityLedger

__all__ = [
    "DEFAULT_DENY",
    "ApprovalTally",
    "Approver",
    "Bundle",
    "Decision",
    "Explanation",
    "Facts",
    "Policy",
    "PolicyKey",
    "PolicyRefusedError",
    "Rule",
    "RuleTrace",
    "Velocity",
    "VelocityLedger",
    "VelocityView",
    "canonical_request",
    "check_upgrade",
    "count_approvals",
    "evaluate",
    "explain",
    "parse_admins",
    "parse_policy",
    "policy_digest",
    "request_hash",
    "sign_approval",
    "sign_bundle",
    "verify_bundle",
]
