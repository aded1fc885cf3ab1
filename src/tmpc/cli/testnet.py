"""Step 3 of every custody rollout: prove offline that the chains accept the cluster's signatures.

:func:`local_signer` turns a wallet whose signers' shares are loaded in this process into the
``sign_digest`` callable the chain modules take. :func:`run_checks` runs every chain check
that fits the wallet's scheme:

=====================  =================================================================
scheme                 chains checked (each with its own validation code)
=====================  =================================================================
``ecdsa-secp256k1``    Bitcoin P2WPKH spend in a regtest chain (libbitcoinkernel);
                       Ethereum EIP-1559 transfer mined by py-evm (eth-tester)
``schnorr-bip340``     Bitcoin Taproot key-path spend in a regtest chain (libbitcoinkernel)
``ed25519``            Solana legacy and v0 transfers in LiteSVM
=====================  =================================================================

Each check also sends a copy of the signed transaction with one signature byte flipped and
requires the validator to reject it.

For a wallet held by a cluster of party nodes, :class:`NodeSigner` is that callable over a
node's ``POST /v1/sign`` (each answer checked against the wallet's record before it is used),
and :func:`rollout_check` is the rollout step "verify that each party can successfully
participate": it runs the same checks with request ids chosen so that every party of the
wallet is, in turn, in the quorum the nodes draw (:func:`tmpc.node.engine.choose_participants`),
and reports from the signers of each answer which parties took part in a transaction the
chain's validator accepted (:func:`party_reports`).
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tmpc import schemes
from tmpc.chains.check import ChainCheck
from tmpc.errors import FaultyCoordinatorError, KeystoreError, ParameterError
from tmpc.local import ecdsa as ecdsa_local

__all__ = [
    "CHECKS_BY_SCHEME",
    "ApiCall",
    "ClusterWallet",
    "NodeSigner",
    "PartyReport",
    "RolloutTx",
    "local_signer",
    "party_reports",
    "rollout_check",
    "run_check",
    "run_checks",
]

Signer = Callable[[bytes], bytes]
#: One call of a node's API: ``(method, path, JSON body or None) -> JSON answer``; it raises
#: :class:`~tmpc.errors.TmpcError` for an error answer or an unreachable node.
ApiCall = Callable[[str, str, dict[str, Any] | None], dict[str, Any]]

#: The chains checked for each scheme some chain verifies (:attr:`tmpc.schemes.Scheme.chains`),
#: ECDSA first as in the module docstring.
CHECKS_BY_SCHEME: dict[str, tuple[str, ...]] = {
    s.id: s.chains for s in sorted(schemes.SCHEMES.values(), key=lambda s: not s.dkls23) if s.chains
}


def local_signer(
    wallet_dir: Path | None,
    record: schemes.WalletRecord,
    shares: Sequence[schemes.KeyShare],
    store_keys: dict[int, bytes] | None = None,
    path: str | None = None,
) -> Signer:
    """A ``sign_digest`` callable backed by the given parties' shares (all in this process).

    ECDSA wallets with a ``wallet_dir`` sign through :mod:`tmpc.local.ecdsa` (stored
    presignatures, deny-lists); without one, through :func:`tmpc.schemes.sign`. Either way every
    signer runs its own protocol machine in this process (:func:`tmpc.local.run_machines`),
    the code party nodes run.
    """
    if schemes.get_scheme(record.scheme).dkls23 and wallet_dir is not None and store_keys:

        def sign_ecdsa(digest: bytes) -> bytes:
            return ecdsa_local.sign(
                wallet_dir, record, shares, store_keys, digest, path=path
            ).compact

        return sign_ecdsa

    def sign_any(message: bytes) -> bytes:
        return schemes.sign(record, shares, message, path=path)

    return sign_any


def run_check(
    chain: str, record: schemes.WalletRecord, sign: Signer, path: str | None = None
) -> ChainCheck:
    """Run one chain's check (``bitcoin``, ``ethereum`` or ``solana``) for the wallet's key at
    ``path``; see the module docstring. Raises :class:`ParameterError` for an unknown chain."""
    public_key = schemes.public_key_at(record, path)
    if chain == "bitcoin":
        from tmpc.chains.bitcoin_check import check_bitcoin

        return check_bitcoin(record.scheme, public_key, sign, network="regtest")
    if chain == "ethereum":
        from tmpc.chains.ethereum_check import check_ethereum

        return check_ethereum(public_key, sign)
    if chain == "solana":
        from tmpc.chains.solana_check import check_solana

        return check_solana(public_key, sign)
    raise ParameterError(f"no offline check for chain {chain!r}")


def _chains_of(scheme: str) -> tuple[str, ...]:
    chains = CHECKS_BY_SCHEME.get(scheme)
    if chains is None:
        raise ParameterError(f"no chain verifies {scheme} signatures natively; nothing to check")
    return chains


def run_checks(
    record: schemes.WalletRecord, sign: Signer, path: str | None = None
) -> list[ChainCheck]:
    """Run every chain check that fits the wallet's scheme (see the module docstring).

    Raises :class:`ParameterError` for a scheme no chain verifies (frost-secp256k1).
    """
    return [run_check(chain, record, sign, path) for chain in _chains_of(record.scheme)]


# -- wallets held by party nodes -------------------------------------------------------------


@dataclass(frozen=True)
class ClusterWallet:
    """A wallet held by party nodes, as the operator checked it.

    ``record`` is the public record (its DKG certificate verified here, not trusted from the
    node); ``names`` maps each party id to the node name that holds that share."""

    record: schemes.WalletRecord
    names: Mapping[int, str]

    @property
    def party_names(self) -> list[str]:
        """The parties' node names in party-id order."""
        return [self.names[i] for i in self.record.party_ids]

    @classmethod
    def from_listing(cls, listing: dict[str, Any], wallet_id: str) -> ClusterWallet:
        """Pick ``wallet_id`` out of a node's ``GET /v1/wallets`` answer and check it.

        The entry's ``record`` is parsed with :meth:`schemes.WalletRecord.from_json`, which
        verifies the DKG certificate (signed by every party's host key) and the wallet id over
        every public field; the id, public key and party count the node lists must be the
        record's. What this cannot check is that the record's host keys are the cluster
        members' identity keys: the node, reached over the operator's pinned TLS, is trusted
        for that mapping (``parties``).

        Raises :class:`ParameterError` if the node holds no such wallet,
        :class:`KeystoreError` if its entry has no record or the record does not hold.
        """
        entries = listing.get("wallets")
        if not isinstance(entries, list):
            raise KeystoreError("the node's wallet list is malformed")
        entry = next(
            (e for e in entries if isinstance(e, dict) and e.get("wallet_id") == wallet_id), None
        )
        if entry is None:
            raise ParameterError(f"the node holds no wallet {wallet_id!r} (see tmpc wallet list)")
        if "error" in entry:
            raise KeystoreError(f"wallet {wallet_id}: the node cannot read it: {entry['error']}")
        if not isinstance(entry.get("record"), dict):
            raise KeystoreError(
                f"wallet {wallet_id}: the node sent no public record (a node older than this tmpc?)"
            )
        try:
            record = schemes.WalletRecord.from_json(entry["record"])
        except KeystoreError as exc:
            raise KeystoreError(
                f"wallet {wallet_id}: the node's record does not hold: {exc}"
            ) from None
        parties = entry.get("parties")
        if (
            record.wallet_id != wallet_id
            or entry.get("public_key") != record.public_key.hex()
            or not isinstance(parties, list)
            or len(parties) != record.parties
            or len(set(map(str, parties))) != record.parties
        ):
            raise KeystoreError(f"wallet {wallet_id}: the node's listing contradicts its record")
        return cls(record, dict(zip(record.party_ids, map(str, parties), strict=True)))


@dataclass
class NodeSigner:
    """A ``sign_digest`` callable whose signatures the cluster makes through one node's API.

    Each call POSTs ``/v1/sign`` ``{wallet, message, path, request_id}`` through ``call``; the
    request id is the next of ``request_ids`` (None: the node draws one). The message is
    sent as it is (for ``ecdsa-secp256k1`` it **must** be the 32-byte digest). Every checked
    answer is kept in ``answers``, its ``signers`` as node names.

    Raises :class:`FaultyCoordinatorError` if an answer is not for this wallet, key and
    message, or its signature does not verify under the wallet's key at ``path``
    (:func:`schemes.verify`); whatever ``call`` raises for an error answer.
    """

    call: ApiCall
    wallet: ClusterWallet
    path: str | None = None
    request_ids: Iterator[str] | None = None
    answers: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, message: bytes) -> bytes:
        record = self.wallet.record
        body: dict[str, Any] = {"wallet": record.wallet_id, "message": message.hex()}
        if self.path is not None:
            body["path"] = self.path
        if self.request_ids is not None:
            body["request_id"] = next(self.request_ids)
        res = self.call("POST", "/v1/sign", body)
        public_key = schemes.public_key_at(record, self.path)
        try:
            signature = bytes.fromhex(str(res["signature"]))
            signers = [int(i) for i in res["signers"]]
            same = (
                res["wallet_id"] == record.wallet_id
                and res["public_key"] == public_key.hex()
                and res["message"] == message.hex()
            )
        except (KeyError, TypeError, ValueError):
            raise FaultyCoordinatorError("the node's signing answer is malformed") from None
        if (
            not same
            or len(signers) < record.threshold
            or not set(signers) <= set(self.wallet.names)
        ):
            raise FaultyCoordinatorError("the node answered for another wallet, key or message")
        if not schemes.verify(record.scheme, public_key, message, signature):
            raise FaultyCoordinatorError("the node's signature does not verify")
        names = [self.wallet.names[i] for i in signers]
        rid = res.get("request_id") or body.get("request_id")
        self.answers.append({**res, "request_id": rid, "signers": names})
        return signature


# -- the rollout check: every party in an accepted transaction -------------------------------

#: Request ids drawn before the best-placed quorum is taken (see :func:`rollout_check`).
_SEARCH = 64
_SEARCH_LIMIT = 100_000


@dataclass(frozen=True)
class RolloutTx:
    """One chain check of :func:`rollout_check`: its signing requests and who actually signed.

    ``target`` is the party the request ids were chosen for (None: only a chain left to run);
    ``requests`` holds ``(request id, signer node names)`` of each signature, from the nodes'
    answers (what happened, whichever parties were ready); ``result`` what the chain's
    validator said."""

    chain: str
    target: str | None
    requests: tuple[tuple[str, tuple[str, ...]], ...]
    result: ChainCheck

    @property
    def signers(self) -> set[str]:
        """Node names of every party that signed for this check."""
        return {n for _rid, names in self.requests for n in names}


@dataclass(frozen=True)
class PartyReport:
    """One party of the wallet after :func:`rollout_check`.

    ``took_part``: it signed at least one answer; ``accepted``: it signed for a transaction
    the validator accepted; ``rounds_s``: per-round seconds of each signing session of those
    transactions, as timed by node ``rounds_from`` (see :func:`party_reports`)."""

    name: str
    party_id: int
    took_part: bool
    accepted: bool
    rounds_s: tuple[tuple[float, ...], ...]
    rounds_from: str | None

    def to_json(self) -> dict[str, Any]:
        """The JSON form of ``tmpc testnet-check --node``."""
        return {
            "name": self.name,
            "party_id": self.party_id,
            "took_part": self.took_part,
            "accepted": self.accepted,
            "rounds_s": [list(r) for r in self.rounds_s],
            "rounds_from": self.rounds_from,
        }


@dataclass
class _Coverage:
    uncovered: set[str]  # parties not yet signers of an accepted transaction
    coordinator: str


def _request_ids(
    wallet: ClusterWallet, base: str, counter: Iterator[int], target: str | None, cov: _Coverage
) -> Iterator[str]:
    """Request ids whose quorum, when every party is ready, holds ``target``.

    Of the first :data:`_SEARCH` candidates that do, yields the one whose quorum holds the
    most parties of ``cov.uncovered``, then ``cov.coordinator``."""
    from tmpc.node.engine import choose_participants

    names, k = wallet.party_names, wallet.record.threshold
    while True:
        best: tuple[tuple[int, bool], str] | None = None
        for tried in range(_SEARCH_LIMIT):
            rid = f"tmpc-rollout-{base}-{next(counter)}"
            # A fresh request is the nodes' attempt 1, drawn from the parties that are ready.
            quorum = choose_participants(names, rid, 1, k)
            if target is None or target in quorum:
                score = (len(set(quorum) & cov.uncovered), cov.coordinator in quorum)
                if best is None or score > best[0]:
                    best = (score, rid)
            if best is not None and tried >= _SEARCH:
                break
        if best is None:  # pragma: no cover (a party is in a t-of-n quorum t/n of the time)
            raise ParameterError(f"no request id puts {target} in a quorum")
        yield best[1]


def rollout_check(
    call: ApiCall,
    wallet: ClusterWallet,
    coordinator: str,
    path: str | None = None,
    *,
    base: str | None = None,
) -> list[RolloutTx]:
    """Run the wallet's chain checks until every party signed an accepted transaction.

    Parties are taken in party-id order; for each not yet a signer of an accepted
    transaction, the next chain check (the scheme's chains in turn) signs with request ids
    whose deterministic quorum -- when every party is ready -- includes it, and among those
    as many uncovered parties as possible, then the ``coordinator`` (the node ``call``
    reaches, so that its own sessions time the rounds). Each party is aimed at once: the
    nodes draw the real quorum from the parties that were ready, so a party that is down,
    refuses, or is excluded shows as not taking part. Chains of the scheme not run by then
    are run at the end, so every one is checked.

    ``base`` makes the request ids (``tmpc-rollout-BASE-N``); None draws 8 random bytes
    (request ids are idempotency keys: **must not** repeat an earlier run's).

    Returns every check run, in order. Raises :class:`ParameterError` for a scheme no chain
    verifies; a signing failure is reported in its check's result, as :func:`run_check` does.
    """
    chains = _chains_of(wallet.record.scheme)
    base = secrets.token_hex(8) if base is None else base
    counter = itertools.count()
    coverage = _Coverage(set(wallet.party_names), coordinator)
    left = list(chains)
    out: list[RolloutTx] = []

    def run(chain: str, target: str | None) -> None:
        rids = _request_ids(wallet, base, counter, target, coverage)
        signer = NodeSigner(call, wallet, path, rids)
        result = run_check(chain, wallet.record, signer, path)
        requests = tuple((str(a["request_id"]), tuple(a["signers"])) for a in signer.answers)
        tx = RolloutTx(chain, target, requests, result)
        if result.accepted:
            coverage.uncovered -= tx.signers
        out.append(tx)

    for i, target in enumerate(wallet.party_names):
        if target in coverage.uncovered:
            run(left.pop(0) if left else chains[i % len(chains)], target)
    for chain in left:
        run(chain, None)
    return out


def party_reports(
    wallet: ClusterWallet,
    txs: Sequence[RolloutTx],
    sessions: Mapping[str, Sequence[dict[str, Any]]],
    coordinator: str,
) -> list[PartyReport]:
    """Each party's part in ``txs``, with its round timings where a node recorded them.

    ``sessions`` maps node names to their ``GET /v1/sessions`` lists (recent sessions: each
    with ``request``, ``participants``, ``status``, ``rounds``). A party's rounds are read
    from its own node's sessions when given, else from the ``coordinator``'s record of the
    same session when the coordinator took part in it (its clock: a round ends when the
    coordinator has every message of it, so a slow party shows in everyone's rounds).
    """
    done: dict[tuple[str, str], list[float]] = {}
    for node, listed in sessions.items():
        for s in listed:
            if s.get("status") == "done" and node in (s.get("participants") or []):
                done[(node, str(s.get("request")))] = [float(x) for x in s.get("rounds") or []]
    reports = []
    for pid in wallet.record.party_ids:
        name = wallet.names[pid]
        mine = [t for t in txs if name in t.signers]
        accepted = [t for t in mine if t.result.accepted]
        source = name if name in sessions else coordinator
        rounds = tuple(
            tuple(done[(source, rid)])
            for t in accepted
            for rid, signers in t.requests
            if name in signers and (source, rid) in done
        )
        reports.append(
            PartyReport(name, pid, bool(mine), bool(accepted), rounds, source if rounds else None)
        )
    return reports
