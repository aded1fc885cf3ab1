"""The signing policy as a party node enforces it, by itself, on the transaction it would sign.

A node holds at most one policy (``DIR/policy.json``: the signed bundle, :mod:`tmpc.policy`),
installed only if a quorum of the cluster file's policy administrators signed it and its
version is newer than the installed one. A cluster file without administrators has no policy:
its nodes sign every well-formed request, as before (``docs/security.md``).

With a policy installed, every signing request is judged by every node that would take part,
before it answers *ready* and again before it sends its first protocol message:

1. **Facts from the transaction.** A request for a chain carries the unsigned transaction
   (``"transaction": {"chain": "bitcoin", "psbt": ..., "network": ..., "input": K}``,
   ``{"chain": "ethereum", "fields": {...}}`` or ``{"chain": "solana", "message": ...}``);
   the node parses it (:mod:`tmpc.chains.facts`), computes the digest it will sign and
   refuses a request whose ``message`` is another one. Amounts and destinations come from
   the parsed transaction, never from a claim beside it. A request without a transaction is
   a *bare digest*; so is a transaction the parser cannot judge (a contract call, another
   program's instruction, an ERC-20 transfer for now): only rules with ``bare_digest = true``
   match it.
2. **Approvals**: approvers' Ed25519 signatures over :func:`approval_hash` of the request,
   verified here with the keys of the installed policy.
3. **Decision**: :func:`tmpc.policy.evaluate` (the code ``tmpc policy explain`` runs); the
   deciding rule's group must be this wallet's (every wallet is its ``default`` group until
   signing groups exist).
4. **Velocity**: reserved in this node's ledger (``DIR/policy.db``) when the session starts,
   atomically, so concurrent requests cannot overshoot; released if the session fails,
   committed when it is done.

A refusal names its rule; the requester sees it in the coordinator's answer, and the node
records it (``node.db``, for the audit log).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tmpc import policy as pol
from tmpc.chains import facts as chain_facts
from tmpc.errors import KeystoreError, ParameterError, TmpcError
from tmpc.node.config import Cluster
from tmpc.node.wallets import NodeWallet
from tmpc.state import keystore

__all__ = [
    "DEFAULT_GROUP",
    "Judgement",
    "NodePolicy",
    "approval_hash",
    "approval_request",
    "decode_bundle_arg",
]

#: The signing group of a wallet's sharing (one per wallet until signing groups exist).
DEFAULT_GROUP = "default"
#: Largest installed bundle read back from disk.
_MAX_BUNDLE = 1 << 20


def approval_request(body: dict[str, Any]) -> dict[str, Any]:
    """What approvers sign of a signing request: its content without the approvals, the
    request id and the fields a node adds (kind, epoch; ``message`` when the request carries
    a transaction, whose digest it is)."""
    drop = {"approvals", "kind", "epoch", "request_id"}
    if body.get("transaction") is not None:
        drop.add("message")
    return {k: v for k, v in body.items() if k not in drop}


def approval_hash(body: dict[str, Any]) -> bytes:
    """The 32-byte hash an approver signs for a signing request
    (:func:`tmpc.policy.request_hash` of :func:`approval_request`)."""
    return pol.request_hash(approval_request(body))


@dataclass(frozen=True)
class Judgement:
    """A node's judgement of one signing request: the decision and the facts it was made on."""

    decision: pol.Decision
    facts: pol.Facts


def _facts_of(
    wallet: NodeWallet, body: dict[str, Any], now: dt.datetime
) -> tuple[pol.Facts, bytes | None]:
    """The policy facts of a request and, for a transaction, the digest this node signs."""
    record = wallet.record
    tx = body.get("transaction")
    if tx is None:
        return pol.Facts(record.wallet_id, None, None, None, (), True, now), None
    if not isinstance(tx, dict):
        raise ParameterError("transaction must be a JSON object")
    chain = tx.get("chain")
    path = body.get("path")
    if chain == "bitcoin":
        parsed = chain_facts.bitcoin_facts(
            str(tx.get("psbt")), record, network=str(tx.get("network", "mainnet")), path=path
        )
        k = tx.get("input", 0)
        if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k < len(parsed.digests):
            raise ParameterError(
                f"transaction input must be 0 to {len(parsed.digests) - 1} (the wallet's inputs)"
            )
        digest = parsed.digests[k]
    elif chain == "ethereum":
        fields = tx.get("fields")
        if not isinstance(fields, dict):
            raise ParameterError("an Ethereum transaction gives its EIP-1559 fields")
        parsed = chain_facts.ethereum_facts(fields, record, path=path)
        digest = parsed.digests[0]
    elif chain == "solana":
        parsed = chain_facts.solana_facts(str(tx.get("message")), record)
        digest = parsed.digests[0]
    else:
        raise ParameterError("transaction chain must be bitcoin, ethereum or solana")
    if parsed.opaque or parsed.asset.startswith("ERC20:"):
        # Its amount is not what it moves: judged as a bare digest of that chain.
        return pol.Facts(record.wallet_id, parsed.chain, None, None, (), True, now), digest
    facts = pol.Facts(
        record.wallet_id, parsed.chain, parsed.asset, parsed.amount,
        tuple(parsed.destinations), False, now,
    )  # fmt: skip
    return facts, digest


class NodePolicy:
    """This node's installed policy and velocity ledger (see the module docstring)."""

    def __init__(self, directory: Path, cluster: Cluster) -> None:
        self._path = directory / "policy.json"
        self._db_path = directory / "policy.db"
        self._cluster = cluster
        self._ledger: pol.VelocityLedger | None = None
        self.policy: pol.Policy | None = None
        self.bundle: pol.Bundle | None = None
        if self._path.exists():
            data = keystore.read_limited(self._path, "installed policy", _MAX_BUNDLE)
            try:
                self.policy = self._verify(data)
            except TmpcError as exc:  # fail closed: never sign under a policy that does not hold
                raise KeystoreError(
                    f"{self._path}: the installed policy does not verify ({exc})"
                ) from None
            self.bundle = pol.Bundle.parse(data)

    def __repr__(self) -> str:
        version = self.policy.version if self.policy is not None else None
        return f"NodePolicy(version={version})"

    def _verify(self, data: bytes | str | dict[str, Any]) -> pol.Policy:
        admins = self._cluster.policy_admins
        if not admins:
            raise ParameterError("the cluster file names no policy administrators")
        return pol.verify_bundle(data, admins, self._cluster.policy_quorum)

    @property
    def ledger(self) -> pol.VelocityLedger:
        """This node's velocity ledger (``DIR/policy.db``), opened on first use."""
        if self._ledger is None:
            self._ledger = pol.VelocityLedger(self._db_path)
        return self._ledger

    def install(self, bundle: bytes | str | dict[str, Any]) -> pol.Policy:
        """Verify a signed bundle (administrator quorum of the cluster file, a newer version)
        and make it this node's policy, atomically. Raises :class:`~tmpc.errors.CryptoError`
        / :class:`ParameterError` / :class:`~tmpc.errors.DecodeError` otherwise."""
        policy = self._verify(bundle)
        current = self.policy.version if self.policy is not None else None
        if current == policy.version and self.bundle is not None:
            if pol.Bundle.parse(bundle).source == self.bundle.source:
                return policy  # the same policy again (forwarded by a peer): nothing to do
        pol.check_upgrade(current, policy)
        parsed = pol.Bundle.parse(bundle)
        keystore.replace_file(self._path, parsed.to_bytes(), 0o644)
        self.policy, self.bundle = policy, parsed
        return policy

    def judge(
        self,
        wallet: NodeWallet,
        body: dict[str, Any],
        now: dt.datetime | None = None,
        *,
        velocity: bool = True,
    ) -> Judgement | None:
        """Judge a signing request for ``wallet`` (None without a policy: nothing to judge).

        ``velocity=False`` leaves the velocity limits out: for a request this node already
        holds a reservation for (the reservation was the check, and counts it already).

        Raises :class:`~tmpc.policy.PolicyRefusedError` naming the rule for a refusal, and
        :class:`ParameterError` / :class:`~tmpc.errors.DecodeError` for a request whose
        transaction does not parse or whose message is not that transaction's digest."""
        policy = self.policy
        if policy is None:
            return None
        when = now or dt.datetime.now(dt.UTC)
        facts, digest = _facts_of(wallet, body, when)
        if digest is not None:
            message = body.get("message")
            if message is not None and message != digest.hex():
                raise ParameterError("the message is not the digest of the transaction given")
        tally = pol.count_approvals(policy, approval_hash(body), list(body.get("approvals") or []))
        ledger = self.ledger if velocity else None
        decision = pol.evaluate(policy, facts, approvals=tally, velocity=ledger)
        if not decision.allowed:
            raise pol.PolicyRefusedError(f"policy: {decision.reason}", decision.rule)
        if decision.group != DEFAULT_GROUP:
            raise pol.PolicyRefusedError(
                f"policy: rule {decision.rule!r} assigns signing group {decision.group!r}; this "
                f"wallet's sharing is group {DEFAULT_GROUP!r}",
                decision.rule,
            )
        return Judgement(decision, facts)

    def message_of(self, wallet: NodeWallet, body: dict[str, Any]) -> str | None:
        """The digest (hex) a request's transaction makes the wallet sign, or None if it has
        no transaction (the coordinator fills ``message`` from it)."""
        if body.get("transaction") is None:
            return None
        _facts, digest = _facts_of(wallet, body, dt.datetime.now(dt.UTC))
        return digest.hex() if digest is not None else None

    def explain(self, wallet: NodeWallet, body: dict[str, Any]) -> dict[str, Any]:
        """What this node's policy says of a signing request, rule by rule (JSON)."""
        policy = self.policy
        if policy is None:
            raise ParameterError("no signing policy is installed on this node")
        facts, _ = _facts_of(wallet, body, dt.datetime.now(dt.UTC))
        tally = pol.count_approvals(policy, approval_hash(body), list(body.get("approvals") or []))
        out = pol.explain(policy, facts, approvals=tally, velocity=self.ledger).to_json()
        out["facts"] = facts.to_json()
        return dict(out)

    def status(self) -> dict[str, Any]:
        """The installed policy's version and digest, and the administrators' quorum."""
        out: dict[str, Any] = {
            "installed": self.policy is not None,
            "admins": sorted(self._cluster.policy_admins),
            "quorum": self._cluster.policy_quorum,
        }
        if self.policy is not None and self.bundle is not None:
            out.update(
                version=self.policy.version,
                digest=pol.policy_digest(self.bundle.source).hex(),
                signed_by=sorted(self.bundle.signatures),
                policy=self.bundle.source.decode(),
            )
        return out

    def close(self) -> None:
        """Close the velocity ledger."""
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None


def decode_bundle_arg(value: object) -> bytes:
    """A bundle given in an API body: a JSON object or its text (base64 not accepted)."""
    if isinstance(value, dict):
        return json.dumps(value).encode()
    if isinstance(value, str):
        return value.encode()
    raise ParameterError("bundle must be the signed policy bundle (a JSON object)")
