"""Approvals: Ed25519 signatures by the policy's approvers over a request's canonical hash.

The request is a JSON object (whatever the integrator signs: for a node, the signing request
with its unsigned transaction). Its hash is::

    request_hash = tagged_hash("tmpc/policy/request/v1", canonical JSON of the request)

where canonical JSON has sorted keys, no spaces and ASCII escapes (``\\uXXXX``) for anything
else; floats are refused (amounts are decimal strings), so two implementations can never
disagree on the bytes. An approval is ``{"approver": NAME, "signature": "<128 hex>"}``, the
approver's Ed25519 signature of the 32-byte ``request_hash``.

:func:`count_approvals` counts, per role, the **distinct** approvers whose signature verifies;
an approval by a name the policy does not know, with a signature that does not verify, or
malformed, is never counted and is reported (:attr:`ApprovalTally.rejected`), so the decision
can name it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from tmpc.encoding import tagged_hash
from tmpc.errors import ParameterError
from tmpc.policy.keys import PolicyKey, verify_signature
from tmpc.policy.rules import Policy

__all__ = [
    "MAX_APPROVALS",
    "REQUEST_TAG",
    "ApprovalTally",
    "canonical_request",
    "count_approvals",
    "request_hash",
    "sign_approval",
]

#: Tag of :func:`request_hash`.
REQUEST_TAG: Final = "tmpc/policy/request/v1"
#: Most approvals one request may carry.
MAX_APPROVALS: Final = 256
_MAX_DEPTH: Final = 32
_HEX128: Final = re.compile(r"[0-9a-fA-F]{128}")


def _check_canonical(value: object, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ParameterError(f"request nests deeper than {_MAX_DEPTH} levels")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ParameterError("request keys must be strings")
            _check_canonical(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_canonical(v, depth + 1)
    elif isinstance(value, float):
        raise ParameterError("request holds a float: write amounts as decimal strings")
    elif value is not None and not isinstance(value, str | int | bool):
        raise ParameterError(f"request holds a {type(value).__name__}, which is not JSON")


def canonical_request(request: Mapping[str, Any]) -> bytes:
    """The canonical JSON bytes of ``request`` (sorted keys, no spaces, ASCII).

    Raises:
        ParameterError: not a JSON object of strings, integers, booleans, null, lists and
            objects (floats are refused), or nested deeper than 32 levels.
    """
    if not isinstance(request, dict):
        raise ParameterError("a request must be a JSON object")
    _check_canonical(request, 0)
    return json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def request_hash(request: Mapping[str, Any]) -> bytes:
    """``tagged_hash("tmpc/policy/request/v1", canonical_request(request))``: 32 bytes, what
    approvers sign. Raises :class:`ParameterError` as :func:`canonical_request`."""
    return tagged_hash(REQUEST_TAG, canonical_request(request))


def sign_approval(name: str, key: PolicyKey, req_hash: bytes) -> dict[str, str]:
    """An approval of the request whose hash is ``req_hash`` (32 bytes) by approver ``name``.

    Returns ``{"approver": name, "signature": <128 hex>}``.
    """
    if not isinstance(req_hash, bytes) or len(req_hash) != 32:
        raise ParameterError("a request hash is 32 bytes")
    if not isinstance(name, str) or not name:
        raise ParameterError("an approval needs the approver's name")
    return {"approver": name, "signature": key.sign(req_hash).hex()}


class ApprovalTally(Mapping[str, int]):
    """Valid approvals per role (a read-only ``{role: count}`` mapping), with who approved and
    what was refused.

    Attributes:
        approvers: names of the distinct approvers whose approval counts, sorted.
        rejected: one short text per approval not counted (``"approval by 'eve': unknown
            approver"``), in the order given.
    """

    __slots__ = ("_counts", "approvers", "rejected")

    def __init__(
        self, counts: Mapping[str, int], approvers: Sequence[str], rejected: Sequence[str]
    ) -> None:
        self._counts = dict(counts)
        self.approvers: tuple[str, ...] = tuple(approvers)
        self.rejected: tuple[str, ...] = tuple(rejected)

    def __getitem__(self, role: str) -> int:
        return self._counts[role]

    def __iter__(self) -> Iterator[str]:
        return iter(self._counts)

    def __len__(self) -> int:
        return len(self._counts)

    def __repr__(self) -> str:
        return (
            f"ApprovalTally({self._counts!r}, approvers={self.approvers!r}, "
            f"rejected={self.rejected!r})"
        )


def count_approvals(policy: Policy, req_hash: bytes, approvals: Sequence[object]) -> ApprovalTally:
    """Count the valid approvals of the request whose hash is ``req_hash``, per role.

    Each approver counts once however many approvals they gave. An approval that is malformed,
    names no approver of ``policy``, or whose signature does not verify under that approver's
    key is not counted and is listed in :attr:`ApprovalTally.rejected`.

    Args:
        policy: the policy whose ``[approvers]`` are trusted.
        req_hash: the 32-byte :func:`request_hash` of the request.
        approvals: the approvals the request carries (parsed JSON objects), at most
            :data:`MAX_APPROVALS`.

    Raises:
        ParameterError: ``req_hash`` is not 32 bytes, ``approvals`` is not a list, or it holds
            more than :data:`MAX_APPROVALS` entries.
    """
    if not isinstance(req_hash, bytes) or len(req_hash) != 32:
        raise ParameterError("a request hash is 32 bytes")
    if isinstance(approvals, str | bytes | Mapping) or not isinstance(approvals, Sequence):
        raise ParameterError("approvals must be a list of {approver, signature} objects")
    if len(approvals) > MAX_APPROVALS:
        raise ParameterError(f"a request carries at most {MAX_APPROVALS} approvals")
    counts: dict[str, int] = {}
    valid: set[str] = set()
    rejected: list[str] = []
    for i, item in enumerate(approvals, 1):
        if (
            not isinstance(item, dict)
            or set(item) != {"approver", "signature"}
            or not isinstance(item["approver"], str)
            or not isinstance(item["signature"], str)
        ):
            rejected.append(f"approval #{i}: malformed (expected approver and signature)")
            continue
        name, sig_hex = item["approver"], item["signature"]
        approver = policy.approvers.get(name)
        if approver is None:
            # repr() escapes control characters: the text stays one line.
            rejected.append(f"approval by {name[:64]!r}: unknown approver")
            continue
        if not _HEX128.fullmatch(sig_hex) or not verify_signature(
            approver.key, req_hash, bytes.fromhex(sig_hex)
        ):
            rejected.append(f"approval by {name!r}: signature does not verify (forged)")
            continue
        if name not in valid:
            valid.add(name)
            counts[approver.role] = counts.get(approver.role, 0) + 1
    return ApprovalTally(counts, sorted(valid), rejected)
