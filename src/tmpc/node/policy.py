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
   deciding rule's signing group must be the one whose sharing this request would use (the
   DKG's own sharing is group ``default``; others are made by ``tmpc reshare --group``). A
   node of the ``fast`` group refuses a request the policy gives to ``senior``, naming the
   rule. Rules, velocity and approvals see the wallet by its key id (the same for every
   group of one key), so limits count every group's signatures alike.
4. **Velocity**: reserved in this node's ledger (``DIR/policy.db``) when the session starts,
   atomically, so concurrent requests cannot overshoot; released if the session fails,
   committed when it is done.

A refusal names its rule; the requester sees it in the coordinator's answer, and the node
records it (``node.db``, for the audit log).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tmpc import policy as pol
from tmpc import schemes
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

#: The signing group of a wallet's DKG sharing.
DEFAULT_GROUP = schemes.DEFAULT_GROUP
#: Largest installed bundle read back from disk.
_MAX_BUNDLE = 1 << 20
#: Transactions whose parse a node keeps (a request is judged at *ready* and again at start).
_PARSED_CACHE = 256


def approval_request(body: dict[str, Any], key_id: str | None = None) -> dict[str, Any]:
    """What approvers sign of a signing request: its content without the approvals, the
    request id, the signing group and the fields a node adds (kind, epoch; ``message`` when
    the request carries a transaction, whose digest it is). ``key_id``: the wallet's key id,
    which replaces the ``wallet`` a node resolved to a group's sharing, so an approval is of
    the key's spend whichever group signs it (the policy chooses the group)."""
    drop = {"approvals", "kind", "epoch", "request_id", "group"}
    if body.get("transaction") is not None:
        drop.add("message")
    out = {k: v for k, v in body.items() if k not in drop}
    if key_id is not None:
        out["wallet"] = key_id
    return out


def approval_hash(body: dict[str, Any], key_id: str | None = None) -> bytes:
    """The 32-byte hash an approver signs for a signing request
    (:func:`tmpc.policy.request_hash` of :func:`approval_request`)."""
    return pol.request_hash(approval_request(body, key_id))


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
        return pol.Facts(record.key_id, None, None, None, (), True, now), None
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
        return pol.Facts(record.key_id, parsed.chain, None, None, (), True, now), digest
    facts = pol.Facts(
        record.key_id, parsed.chain, parsed.asset, parsed.amount,
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
        self._parsed: OrderedDict[str, tuple[pol.Facts, bytes | None]] = OrderedDict()
        self._tallies: OrderedDict[str, pol.ApprovalTally] = OrderedDict()
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
        self._tallies.clear()  # counted under the approvers of the policy before
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
        facts, digest = self._facts(wallet, body, when)
        if digest is not None:
            message = body.get("message")
            if message is not None and message != digest.hex():
                raise ParameterError("the message is not the digest of the transaction given")
        tally = self._approvals(policy, wallet, body)
        ledger = self.ledger if velocity else None
        decision = pol.evaluate(policy, facts, approvals=tally, velocity=ledger)
        if not decision.allowed:
            raise pol.PolicyRefusedError(f"policy: {decision.reason}", decision.rule)
        mine = wallet.record.group_name
        if decision.group != mine:
            raise pol.PolicyRefusedError(
                f"policy: rule {decision.rule!r} assigns signing group {decision.group!r}; this "
                f"request is for group {mine!r}",
                decision.rule,
            )
        return Judgement(decision, facts)

    def _facts(
        self, wallet: NodeWallet, body: dict[str, Any], now: dt.datetime
    ) -> tuple[pol.Facts, bytes | None]:
        """:func:`_facts_of`, remembered for the last few transactions: a node judges a request
        when it answers *ready* and again at the session's start, and parsing (the digest's
        RLP or PSBT work) is most of a judgement. Keyed by the wallet's sharing and epoch and
        the whole transaction and path, so another request never shares an entry."""
        key = json.dumps(
            [wallet.record.wallet_id, wallet.record.epoch, body.get("transaction"),
             body.get("path")],
            sort_keys=True, separators=(",", ":"),
        )  # fmt: skip
        hit = self._parsed.get(key)
        if hit is None:
            hit = _facts_of(wallet, body, now)
            self._parsed[key] = hit
            while len(self._parsed) > _PARSED_CACHE:
                self._parsed.popitem(last=False)
        else:
            self._parsed.move_to_end(key)
        facts, digest = hit
        return dataclasses.replace(facts, at=now), digest

    def _approvals(
        self, policy: pol.Policy, wallet: NodeWallet, body: dict[str, Any]
    ) -> pol.ApprovalTally:
        """The request's approvals counted under ``policy`` (remembered for the last few
        requests, like :meth:`_facts`: the tally depends only on the installed policy, the
        request's hash and the approvals, and verifying them is the rest of a judgement)."""
        digest = approval_hash(body, wallet.record.key_id)
        approvals = list(body.get("approvals") or [])
        key = digest.hex() + json.dumps(approvals, sort_keys=True, separators=(",", ":"))
        tally = self._tallies.get(key)
        if tally is None:
            tally = pol.count_approvals(policy, digest, approvals)
            self._tallies[key] = tally
            while len(self._tallies) > _PARSED_CACHE:
                self._tallies.popitem(last=False)
        return tally

    def group_for(self, wallet: NodeWallet, body: dict[str, Any]) -> str | None:
        """The signing group the installed policy gives a request (None without a policy, or
        if the policy refuses it: then the parties refuse it themselves, naming the rule).
        Velocity is left out: the parties reserve it."""
        policy = self.policy
        if policy is None:
            return None
        facts, _ = _facts_of(wallet, body, dt.datetime.now(dt.UTC))
        decision = pol.evaluate(policy, facts, approvals=self._approvals(policy, wallet, body))
        return decision.group if decision.allowed else None

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
        tally = self._approvals(policy, wallet, body)
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
