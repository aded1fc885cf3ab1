"""Which protocol machines a node runs for a request, and what it keeps of their results.

A request runs as one or more *stages*, each a protocol machine (:mod:`tmpc.protocols.machine`)
started when the previous one finished: a DKG (ChillDKG), followed for ECDSA wallets by the
DKLs23 pairwise setup; a signature (BIP445, RFC 9591 FROST, DKLs23 presigning and signing in
one session, or one round finishing a pooled DKLs23 presignature); a batch of DKLs23
presignatures for the pool; a rotation (refresh, for ECDSA the pairwise setup again, then the
new shares are staged and every party signs a test message with them). The same machines run
in one process under :mod:`tmpc.local`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tmpc import schemes
from tmpc.encoding import tagged_hash
from tmpc.errors import KeystoreError, ParameterError
from tmpc.node.presigs import NodePresignatures
from tmpc.node.wallets import NodeWallet, WalletStore
from tmpc.primitives.ecdsa_format import compact
from tmpc.protocols.dkg.machine import DkgMachine
from tmpc.protocols.dkg.runner import DKGResult
from tmpc.protocols.ecdsa.dkls23 import EcdsaPairwise
from tmpc.protocols.ecdsa.machine import (
    BatchPresignMachine,
    EcdsaSignMachine,
    OnlineSignMachine,
    PairwiseSetupMachine,
)
from tmpc.protocols.frost_machine import Bip445SignMachine, FrostSignMachine
from tmpc.protocols.lifecycle.refresh import RefreshMachine, RefreshResult, refresh_context
from tmpc.protocols.lifecycle.rehost import RehostMachine
from tmpc.protocols.lifecycle.repair import RepairMachine, RepairResult, repair_context
from tmpc.protocols.lifecycle.reshare import ReshareMachine, ReshareResult, reshare_context
from tmpc.protocols.machine import Machine

__all__ = [
    "LifecycleHooks",
    "check_result",
    "keygen_stages",
    "presign_stages",
    "protocol_name",
    "refresh_stages",
    "repair_stages",
    "reshare_stages",
    "round_count",
    "sign_stages",
    "store_public_record",
]

Stage = Callable[[object | None], Machine]
Finish = Callable[[object], dict[str, Any]]


def protocol_name(req: dict[str, Any]) -> str:
    """``keygen:SCHEME``, ``sign`` or ``presign``: what the sessions table shows."""
    kind = str(req.get("kind"))
    return f"keygen:{req.get('scheme')}" if kind == "keygen" else kind


def round_count(req: dict[str, Any]) -> int:
    """Upper bound of the rounds a request's session runs (for the coordinator's timeout)."""
    if req.get("kind") == "keygen":
        return 5 if schemes.get_scheme(str(req.get("scheme"))).dkls23 else 2
    if req.get("kind") in ("refresh", "reshare", "repair"):
        return 9  # refresh/reshare 2 or repair 3, (pairwise setup 3), test signature up to 3
    return 2 if req.get("kind") == "presign" else 3


def _record(scheme_id: str, t: int, dkg: DKGResult, hostpubkeys: Sequence[bytes]) -> Any:
    return schemes.WalletRecord(
        scheme=scheme_id,
        threshold=t,
        parties=len(hostpubkeys),
        group_public_key=dkg.threshold_pubkey,
        verification_shares={i + 1: p for i, p in enumerate(dkg.pubshares)},
        host_public_keys={i + 1: k for i, k in enumerate(hostpubkeys)},
        recovery_data=dkg.recovery_data,
    )


def keygen_stages(
    scheme_id: str,
    t: int,
    me: int,
    hostseckey: bytes,
    hostpubkeys: Sequence[bytes],
    wallets: WalletStore,
    session_id: bytes,
) -> tuple[list[Stage], Finish]:
    """The stages of a DKG for party ``me`` (1-based) and how its result is stored.

    ECDSA wallets add the DKLs23 pairwise setup, keyed by the new wallet's id as
    :func:`tmpc.schemes.keygen` does. The result is the public wallet record (every party
    computes the same; the coordinator checks that they agree)."""
    scheme = schemes.get_scheme(scheme_id)
    keep: dict[str, Any] = {}

    def dkg(_: object | None) -> Machine:
        return DkgMachine(scheme.group, hostseckey, list(hostpubkeys), t, me)

    def setup(prior: object | None) -> Machine:
        assert isinstance(prior, DKGResult)
        keep["dkg"] = prior
        record = _record(scheme_id, t, prior, hostpubkeys)
        sid = schemes.pairwise_session(record)
        return PairwiseSetupMachine(me, list(range(1, len(hostpubkeys) + 1)), sid)

    stages: list[Stage] = [dkg]
    if scheme.dkls23:
        stages.append(setup)

    def finish(result: object) -> dict[str, Any]:
        pairwise = None
        if isinstance(result, EcdsaPairwise):
            pairwise = result.to_bytes()
            dkg_result = keep["dkg"]
        else:
            assert isinstance(result, DKGResult)
            dkg_result = result
        record = _record(scheme_id, t, dkg_result, hostpubkeys)
        share = schemes.KeyShare(me, dkg_result.secshare, hostseckey, pairwise)
        wallets.add(record, share)
        return {"wallet": record.to_json()}

    del session_id  # the DKG binds its own session (host keys, threshold) in ChillDKG
    return stages, finish


def _held_share(wallet: NodeWallet) -> schemes.KeyShare:
    if wallet.share is None:
        raise KeystoreError("this node holds no share of the wallet")
    return wallet.share


def presign_stages(
    wallet: NodeWallet,
    signers: Sequence[int],
    path: str | None,
    count: int,
    session_id: bytes,
    presigs: NodePresignatures,
) -> tuple[list[Stage], Finish]:
    """A batch of ``count`` DKLs23 presignatures of ``signers`` for BIP32 ``path``, stored in
    this node's pool when done. The result (the same at every signer) lists their ids."""
    record, share = wallet.record, _held_share(wallet)
    tweak = schemes.hd_tweak(record, path)[1] if path is not None else 0

    def machine(_: object | None) -> Machine:
        pairwise = schemes.ecdsa_pairwise([share])[share.identifier]
        return BatchPresignMachine(
            share.identifier,
            share.secshare,
            pairwise,
            list(signers),
            session_id,
            record.group_public_key,
            count,
            tweak=tweak,
            threshold=record.threshold,
        )

    def finish(result: object) -> dict[str, Any]:
        if not isinstance(result, list) or not result:
            raise ParameterError("unexpected presigning result")
        presigs.put(record.wallet_id, path, share.identifier, result)
        return {
            "wallet_id": record.wallet_id,
            "path": path or "m",
            "signers": sorted(signers),
            "presignatures": [p.presig_id.hex() for p in result],
        }

    return [machine], finish


def sign_stages(
    wallet: NodeWallet,
    signers: Sequence[int],
    message: bytes,
    path: str | None,
    session_id: bytes,
    presignature: tuple[NodePresignatures, bytes] | None = None,
) -> tuple[list[Stage], Finish]:
    """The signing machine of this node's share for ``message`` (at BIP32 ``path``).

    ``presignature``: (this node's pool, id) of the pooled DKLs23 presignature the session
    finishes in one round; it is taken from the pool and marked used when the stage starts,
    before this node's share is computed."""
    record, share = wallet.record, _held_share(wallet)
    scheme = schemes.get_scheme(record.scheme)
    vs = {i: record.verification_shares[i] for i in signers}
    tweak = schemes.hd_tweak(record, path)[1] if path is not None else 0
    public_key = schemes.public_key_at(record, path)
    dkls23 = scheme.dkls23

    def machine(_: object | None) -> Machine:
        if presignature is not None:
            pool, presig_id = presignature
            presig = pool.take(record.wallet_id, path, share.identifier, signers, presig_id)
            return OnlineSignMachine(presig, schemes.ecdsa_digest(message), tweak=tweak)
        if dkls23:
            pairwise = schemes.ecdsa_pairwise([share])[share.identifier]
            return EcdsaSignMachine(
                share.identifier,
                share.secshare,
                pairwise,
                list(signers),
                session_id,
                record.group_public_key,
                schemes.ecdsa_digest(message),
                tweak=tweak,
                threshold=record.threshold,
            )
        if scheme.suite is None:
            return Bip445SignMachine(
                share.identifier,
                share.secshare,
                record.group_public_key,
                vs,
                list(signers),
                message,
                tweaks=schemes.bip445_tweaks(record, path),
                min_signers=record.threshold,
            )
        return FrostSignMachine(
            scheme.suite,
            share.identifier,
            share.secshare,
            record.group_public_key,
            vs,
            list(signers),
            message,
            min_signers=record.threshold,
        )

    def finish(result: object) -> dict[str, Any]:
        if isinstance(result, tuple):
            r, s, _recid = result
            sig = compact(r, s)
        elif isinstance(result, bytes):
            sig = result
        else:
            raise ParameterError("unexpected signing result")
        return {
            "scheme": record.scheme,
            "wallet_id": record.wallet_id,
            "path": path or "m",
            "public_key": public_key.hex(),
            "message": message.hex(),
            "signature": sig.hex(),
            "signers": sorted(signers),
            **({"presignature_used": presignature is not None} if dkls23 else {}),
        }

    return [machine], finish


def test_sign_session(session_id: bytes) -> bytes:
    """The session id of a rotation's test signature (DKLs23 keys its multiplications by it:
    derived from the rotation's, so it is fresh and never run twice)."""
    return tagged_hash("tmpc/rotate/test-sign-session", session_id)


class LifecycleHooks:
    """What the node does at the points of a lifecycle session that touch its own state.

    ``staged(new_record)``: the next epoch was just stored durably here (record it);
    ``test_session(new_record, session, me)``: before the test signature's first message
    (for ECDSA, record its session in the single-use ledger)."""

    def __init__(
        self,
        staged: Callable[[schemes.WalletRecord], None],
        test_session: Callable[[schemes.WalletRecord, bytes, int], None],
    ) -> None:
        self.staged = staged
        self.test_session = test_session


def _lifecycle_stages(
    dkls23: bool,
    first: list[Stage],
    build: Callable[[object], tuple[schemes.WalletRecord, int | None]],
    me_new: int | None,
    hostseckey: bytes,
    names_new: Callable[[schemes.WalletRecord], dict[int, str]],
    session_id: bytes,
    wallets: WalletStore,
    hooks: LifecycleHooks,
    *,
    signers: Sequence[int] | None = None,
    pairwise_base: bytes | None = None,
) -> tuple[list[Stage], Finish]:
    """Phases 1 and 2 of a lifecycle change (refresh, reshare), for this node.

    1. **Stage**: ``first`` (the protocol that makes the new shares), for ECDSA the DKLs23
       pairwise setup among the new parties under the next epoch's session; then the next
       epoch's record and this node's new share (if it holds one: ``me_new``) are stored
       durably beside the current ones (:meth:`WalletStore.stage`).
    2. **Prove**: every new party signs :func:`tmpc.schemes.rotation_test_message` with its
       new share; the signature verifies under the unchanged public key only if every new
       share is consistent with the new verification shares. Each party stages before it
       sends its test-signature share, so a completed test signature also proves that every
       new party has staged.

    ``build(first's result)`` gives the new record and this node's new share (None if it holds
    none afterwards: it only dealt). ``signers``: who sets up pairwise material and signs the
    test message (default: every new party); ``pairwise_base``: this node's current DKLs23
    material, which the new pairs update rather than replace (a repair sets up the pairs of
    its session only). The result is the new public record, the session and,
    from the new parties, the test signature: the proof a commit carries (phase 3,
    :meth:`WalletStore.switch`)."""
    keep: dict[str, Any] = {}

    def made(prior: object) -> schemes.WalletRecord:
        if "record" not in keep:
            keep["record"], keep["secshare"] = build(prior)
        record: schemes.WalletRecord = keep["record"]
        return record

    def pairwise(prior: object | None) -> Machine:
        new_record = made(prior)
        assert me_new is not None
        ids = list(signers) if signers is not None else new_record.party_ids
        return PairwiseSetupMachine(me_new, ids, schemes.pairwise_session(new_record))

    def test_sign(prior: object | None) -> Machine:
        material = None
        if isinstance(prior, EcdsaPairwise):
            fresh = prior
            if pairwise_base is not None:
                fresh = EcdsaPairwise.from_bytes(pairwise_base).merged(prior)
            material = fresh.to_bytes()
        new_record = made(prior)
        assert me_new is not None
        new_share = schemes.KeyShare(me_new, keep["secshare"], hostseckey, material)
        wallets.stage(new_record, new_share, session_id)
        hooks.staged(new_record)
        test_session = test_sign_session(session_id)
        hooks.test_session(new_record, test_session, me_new)
        staged = NodeWallet(new_record, names_new(new_record), new_share)
        message = schemes.rotation_test_message(new_record)
        ids = list(signers) if signers is not None else new_record.party_ids
        stages, finish = sign_stages(staged, ids, message, None, test_session)
        keep["finish"] = finish
        return stages[0](None)

    stages: list[Stage] = list(first)
    if me_new is not None:
        stages += [pairwise, test_sign] if dkls23 else [test_sign]

    def finish(result: object) -> dict[str, Any]:
        if me_new is None:  # only dealt: keep the next record, to switch to on the commit
            new_record = made(result)
            wallets.stage(new_record, None, session_id)
            hooks.staged(new_record)
            signature = None
        else:
            new_record = keep["record"]
            signature = keep["finish"](result)["signature"]
        out = {
            "wallet": new_record.to_json(),
            "wallet_id": new_record.wallet_id,
            "scheme": new_record.scheme,
            "epoch": new_record.epoch,
            "previous_epoch": new_record.epoch - 1,
            "public_key": new_record.public_key.hex(),
            "session": session_id.hex(),
        }
        if signature is not None:
            out["test_signature"] = signature
        return out

    return stages, finish


def refresh_stages(
    wallet: NodeWallet,
    session_id: bytes,
    wallets: WalletStore,
    hooks: LifecycleHooks,
) -> tuple[list[Stage], Finish]:
    """A rotation of ``wallet`` (every party takes part), for this node: a refresh
    (:class:`~tmpc.protocols.lifecycle.refresh.RefreshMachine`, each party signing the
    transcript with its host key), then staging and the test signature
    (:func:`_lifecycle_stages`)."""
    record, share = wallet.record, _held_share(wallet)
    scheme = schemes.get_scheme(record.scheme)
    ids = record.party_ids

    def refresh(_: object | None) -> Machine:
        return RefreshMachine(
            scheme.group,
            share.identifier,
            ids,
            share.secshare,
            record.threshold,
            record.verification_shares,
            refresh_context(record.wallet_id, record.epoch, session_id),
            hostseckey=share.hostseckey,
            host_pubkeys={i: record.host_public_keys[i][1:] for i in ids},
        )

    def build(prior: object) -> tuple[schemes.WalletRecord, int | None]:
        assert isinstance(prior, RefreshResult)
        return schemes.refreshed_record(record, session_id, prior), prior.secshare

    return _lifecycle_stages(
        scheme.dkls23, [refresh], build, share.identifier, share.hostseckey,
        lambda _: wallet.names, session_id, wallets, hooks,
    )  # fmt: skip


def reshare_stages(
    record: schemes.WalletRecord,
    share: schemes.KeyShare | None,
    hostseckey: bytes,
    me: int,
    dealers: dict[int, int],
    receivers: dict[int, int],
    new_threshold: int,
    new_hosts: dict[int, bytes],
    session_id: bytes,
    wallets: WalletStore,
    hooks: LifecycleHooks,
    signing_group: str | None = None,
) -> tuple[list[Stage], Finish]:
    """A reshare of ``record``'s key to new parties and/or threshold, for this node (member
    ``me`` of the session: a dealer, with ``share``, and/or a receiver). ``signing_group``:
    the reshare copies the key to that new signing group (:func:`tmpc.schemes.reshared_record`):
    the dealers keep their wallet as it is and the receivers start the group's.

    ``dealers`` maps members to old party ids (the dealer set), ``receivers`` members to new
    ids ``1..n'``, ``new_hosts`` new ids to 33-byte host keys. A receiver's member id is its
    new party id, so the later stages (pairwise setup, test signature) run among the new
    parties under the same ids; a member that only deals is done after the reshare (it
    stages the next record, without a share, and switches to it on the commit)."""
    group = schemes.get_scheme(record.scheme).group

    def reshare_machine(_: object | None) -> Machine:
        return ReshareMachine(
            group,
            me,
            dealers,
            receivers,
            record.threshold,
            record.verification_shares,
            record.group_public_key,
            new_threshold,
            record.host_public_keys,
            new_hosts,
            reshare_context(
                schemes.reshare_context_id(record, signing_group), record.epoch, session_id
            ),
            secshare=share.secshare if (share is not None and me in dealers) else None,
            hostseckey=hostseckey,
        )

    def build(prior: object) -> tuple[schemes.WalletRecord, int | None]:
        assert isinstance(prior, ReshareResult)
        new = schemes.reshared_record(record, session_id, prior, signing_group=signing_group)
        return new, prior.secshare

    dkls23 = schemes.get_scheme(record.scheme).dkls23
    return _lifecycle_stages(
        dkls23, [reshare_machine], build, receivers.get(me), hostseckey, wallets.names_of,
        session_id, wallets, hooks,
    )  # fmt: skip


def repair_stages(
    record: schemes.WalletRecord,
    share: schemes.KeyShare | None,
    hostseckey: bytes,
    me: int,
    helpers: list[int],
    lost: int,
    new_host: bytes,
    session_id: bytes,
    wallets: WalletStore,
    hooks: LifecycleHooks,
) -> tuple[list[Stage], Finish]:
    """A repair of party ``lost``'s share onto a new node (host key ``new_host``, 33 bytes),
    with ``helpers`` (``t`` parties), for this node: member ``me`` (its party id; the new node
    is ``lost``).

    1. :class:`~tmpc.protocols.lifecycle.repair.RepairMachine` gives the new node its share,
       checked against the party's verification share;
    2. :class:`~tmpc.protocols.lifecycle.rehost.RehostMachine`: the helpers certify the new
       host key, so every member builds the next record (:func:`tmpc.schemes.rehosted_record`);
    3. the members stage the next epoch (the new node its repaired share, the helpers their
       unchanged shares, sealed for the new epoch), for ECDSA set up the pairs among them
       (merged into the helpers' material), and sign the test message together.

    The parties that did not take part switch on the commit by sealing their share again for
    the new epoch (it does not change)."""
    group = schemes.get_scheme(record.scheme).group
    members = sorted({*helpers, lost})
    helper = me in helpers
    keep: dict[str, Any] = {}

    def repair(_: object | None) -> Machine:
        hosts = {h: record.host_public_keys[h][1:] for h in helpers}
        return RepairMachine(
            group, me, helpers, lost, record.threshold, record.verification_shares,
            repair_context(record.wallet_id, record.epoch, lost, session_id),
            secshare=share.secshare if (helper and share is not None) else None,
            hostseckey=hostseckey if helper else None,
            host_pubkeys=hosts,
        )  # fmt: skip

    def certify(prior: object | None) -> Machine:
        assert isinstance(prior, RepairResult)
        keep["repair"] = prior
        message = schemes.rehost_message(record, lost, new_host)
        return RehostMachine(
            me, members, helpers, message, record.host_public_keys,
            hostseckey if helper else None,
        )  # fmt: skip

    def build(prior: object) -> tuple[schemes.WalletRecord, int | None]:
        assert isinstance(prior, dict)
        new_record = schemes.rehosted_record(record, lost, new_host, prior)
        if helper:
            assert share is not None
            return new_record, share.secshare
        repaired: RepairResult = keep["repair"]
        return new_record, repaired.secshare

    base = share.pairwise if (helper and share is not None) else None
    return _lifecycle_stages(
        schemes.get_scheme(record.scheme).dkls23, [repair, certify], build, me, hostseckey,
        wallets.names_of, session_id, wallets, hooks, signers=members, pairwise_base=base,
    )  # fmt: skip


def check_result(req: dict[str, Any], result: dict[str, Any], wallets: WalletStore) -> None:
    """The coordinator's own check of an agreed result before it is returned.

    Presignatures are checked for wallet and number (every signer reported the same ids). A
    signature is verified under the wallet's key at the path; a new wallet record is
    parsed, which checks its DKG certificate (signed by every party). Raises
    :class:`ParameterError` if the result does not hold."""
    if req.get("kind") == "keygen":
        rec = schemes.WalletRecord.from_json(result.get("wallet"))
        if rec.scheme != req.get("scheme") or rec.threshold != req.get("threshold"):
            raise ParameterError("the new wallet does not match the request")
        return
    if req.get("kind") in ("refresh", "reshare", "repair"):
        rec = schemes.WalletRecord.from_json(result.get("wallet"))
        wid = str(req.get("wallet"))
        if req.get("kind") == "reshare" and req.get("group") is not None:
            wid = schemes.group_wallet_id(wid, str(req["group"]))
            if rec.group_name != req["group"]:
                raise ParameterError("the new sharing is not the signing group asked for")
        if rec.wallet_id != wid or rec.epoch != int(req["epoch"]) + 1:
            raise ParameterError("the new epoch is not the one the rotation asked for")
        if req.get("kind") == "reshare" and rec.threshold != req.get("threshold"):
            raise ParameterError("the new threshold is not the one the reshare asked for")
        sig = bytes.fromhex(str(result.get("test_signature")))
        if not schemes.verify(rec.scheme, rec.public_key, schemes.rotation_test_message(rec), sig):
            raise ParameterError("the rotation's test signature does not verify")
        return
    if req.get("kind") == "presign":
        ids = result.get("presignatures")
        if result.get("wallet_id") != req.get("wallet") or not isinstance(ids, list):
            raise ParameterError("the presignatures are not those of the request")
        if len(ids) != req.get("count"):
            raise ParameterError("the participants made another number of presignatures")
        return
    wallet = wallets.get(str(req.get("wallet")))
    pk = schemes.public_key_at(wallet.record, req.get("path"))
    sig = bytes.fromhex(str(result.get("signature")))
    msg = bytes.fromhex(str(req.get("message")))
    if not schemes.verify(wallet.record.scheme, pk, msg, sig):
        raise ParameterError("the agreed signature does not verify")


def store_public_record(result: dict[str, Any], wallets: WalletStore) -> None:
    """Keep a new wallet's public record on a coordinator that holds no share of it."""
    wallets.add(schemes.WalletRecord.from_json(result["wallet"]), None)
