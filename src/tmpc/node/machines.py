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
from tmpc.protocols.machine import Machine

__all__ = [
    "check_result",
    "keygen_stages",
    "presign_stages",
    "protocol_name",
    "refresh_stages",
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
    if req.get("kind") == "refresh":
        return 8  # refresh 2, (pairwise setup 3), test signature up to 3
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


def refresh_stages(
    wallet: NodeWallet,
    session_id: bytes,
    wallets: WalletStore,
    *,
    before_test_sign: Callable[[schemes.WalletRecord, bytes], None],
) -> tuple[list[Stage], Finish]:
    """Phases 1 and 2 of a rotation of ``wallet`` (every party takes part), for this node.

    1. **Stage**: a refresh (:class:`~tmpc.protocols.lifecycle.refresh.RefreshMachine`, each
       party signing the transcript with its host key), for ECDSA the DKLs23 pairwise setup
       under the next epoch's session; the next epoch's record and this node's new share are
       then stored durably beside the current ones (:meth:`WalletStore.stage`).
    2. **Prove**: every party signs :func:`tmpc.schemes.rotation_test_message` with its new
       share; the signature verifies under the unchanged public key only if every party's
       new share is consistent with the new verification shares. Since each party stages
       before it sends its test-signature share, a completed test signature also proves that
       every party has staged.

    ``before_test_sign(new_record, test_session)`` runs after staging, before the test
    signature's first message (the node records the staging and, for ECDSA, the session in
    its single-use ledger). The result, the same at every party, is the new public record,
    the session and the test signature: the proof the coordinator sends with its commit
    (phase 3, :meth:`WalletStore.switch`)."""
    record, share = wallet.record, _held_share(wallet)
    scheme = schemes.get_scheme(record.scheme)
    ids = record.party_ids
    keep: dict[str, Any] = {}

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

    def pairwise(prior: object | None) -> Machine:
        assert isinstance(prior, RefreshResult)
        keep["refresh"] = prior
        new_record = schemes.refreshed_record(record, session_id, prior)
        return PairwiseSetupMachine(share.identifier, ids, schemes.pairwise_session(new_record))

    def test_sign(prior: object | None) -> Machine:
        material = None
        if isinstance(prior, EcdsaPairwise):
            material, prior = prior.to_bytes(), keep["refresh"]
        assert isinstance(prior, RefreshResult)
        new_record = schemes.refreshed_record(record, session_id, prior)
        new_share = schemes.KeyShare(share.identifier, prior.secshare, share.hostseckey, material)
        wallets.stage(new_record, new_share, session_id)
        keep["record"] = new_record
        test_session = test_sign_session(session_id)
        before_test_sign(new_record, test_session)
        staged = NodeWallet(new_record, wallet.names, new_share)
        message = schemes.rotation_test_message(new_record)
        stages, finish = sign_stages(staged, ids, message, None, test_session)
        keep["finish"] = finish
        return stages[0](None)

    stages: list[Stage] = [refresh, *([pairwise] if scheme.dkls23 else []), test_sign]

    def finish(result: object) -> dict[str, Any]:
        new_record: schemes.WalletRecord = keep["record"]
        signed = keep["finish"](result)
        return {
            "wallet": new_record.to_json(),
            "wallet_id": record.wallet_id,
            "scheme": record.scheme,
            "epoch": new_record.epoch,
            "previous_epoch": record.epoch,
            "public_key": record.public_key.hex(),
            "session": session_id.hex(),
            "test_signature": signed["signature"],
        }

    return stages, finish


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
    if req.get("kind") == "refresh":
        rec = schemes.WalletRecord.from_json(result.get("wallet"))
        if rec.wallet_id != req.get("wallet") or rec.epoch != int(req["epoch"]) + 1:
            raise ParameterError("the new epoch is not the one the rotation asked for")
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
