"""One face per signature scheme: key generation, signing, verification, public keys.

========================  =======================================  ==========================
scheme id                 protocol                                 signatures verify as
========================  =======================================  ==========================
``schnorr-bip340``        ChillDKG + FROST for BIP340 (BIP445),    BIP340, under the BIP341
                          BIP341 Taproot tweak                     (Taproot) output key
``ed25519``               DKG over ed25519 + FROST(Ed25519,        RFC 8032 Ed25519
                          SHA-512), RFC 9591
``frost-secp256k1``       ChillDKG + FROST(secp256k1, SHA-256),    RFC 9591 verification
                          RFC 9591
``ecdsa-secp256k1``       ChillDKG + pairwise OT setup, DKLs23     ECDSA (low-s, recovery id)
                          signing (presignatures)
========================  =======================================  ==========================

The :class:`WalletRecord` is public (threshold, parties, group key, every party's verification
share, host public keys, the DKG's recovery data, and the history of the key since its DKG:
refreshes, reshares to other parties or thresholds, and host-key replacements, each certified);
a :class:`KeyShare` is one party's secret.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tmpc.encoding import lp_join, tagged_hash
from tmpc.errors import DecodeError, KeystoreError, ParameterError, TmpcError
from tmpc.group import ED25519, SECP256K1, Group, Point, ed25519, secp256k1
from tmpc.group.base import Ciphersuite
from tmpc.group.secp256k1 import SecpPoint
from tmpc.local import run_machines
from tmpc.primitives.bip340 import schnorr_verify
from tmpc.primitives.ecdsa_format import compact, ecdsa_verify
from tmpc.protocols import dkg, frost, taproot
from tmpc.protocols.dkg.machine import DkgMachine
from tmpc.protocols.ecdsa import dkls23
from tmpc.protocols.frost_machine import Bip445SignMachine, FrostSignMachine
from tmpc.protocols.lifecycle import refresh, rehost, reshare
from tmpc.schemes import hd
from tmpc.state.keystore import ShareSecret

__all__ = [
    "DEFAULT_GROUP",
    "SCHEMES",
    "HistoryEntry",
    "KeyShare",
    "Rehost",
    "Reshare",
    "Rotation",
    "Scheme",
    "SignatureKind",
    "WalletRecord",
    "bip445_tweaks",
    "check_group_name",
    "check_share",
    "ecdsa_digest",
    "ecdsa_pairwise",
    "get_scheme",
    "group_wallet_id",
    "hd_tweak",
    "keygen",
    "pairwise_session",
    "public_key_at",
    "refresh_shares",
    "refreshed_record",
    "rehost_message",
    "rehosted_record",
    "reshare_context_id",
    "reshare_shares",
    "reshared_record",
    "rotation_test_message",
    "share_secret",
    "sign",
    "verify",
    "wallet_xpub",
]

MAX_PARTIES = 255
#: The signing group of a wallet's DKG sharing (and of every wallet without groups).
DEFAULT_GROUP = "default"
#: A signing group's name: 1 to 64 of ``[A-Za-z0-9._-]``, starting with a letter or digit.
_GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: Version of ``wallet.json``; 2 binds every public field into the wallet id.
WALLET_FORMAT_VERSION = 2


class SignatureKind(enum.Enum):
    """How a scheme's signatures verify (see the table in the module docstring)."""

    #: 64-byte BIP340 Schnorr signature under a 32-byte x-only key.
    BIP340 = "bip340"
    #: 64-byte RFC 8032 Ed25519 signature under a 32-byte key.
    ED25519 = "ed25519"
    #: 65-byte RFC 9591 FROST(secp256k1, SHA-256) signature under a 33-byte compressed key.
    RFC9591 = "rfc9591"
    #: 64-byte compact ECDSA signature (``r || s``, low s) of a 32-byte digest under a 33-byte
    #: compressed key.
    ECDSA = "ecdsa"


@dataclass(frozen=True)
class Scheme:
    """A signature scheme tmpc offers: its id, group, (for RFC 9591 schemes) ciphersuite, and
    what it can do.

    Code asks these attributes rather than comparing scheme ids; the ids are the CLI and JSON
    interface and are stored in wallet records.
    """

    #: The scheme id, as in ``wallet.json`` and ``--scheme`` (**never** renamed).
    id: str
    #: The group of the DKG's key shares and group key.
    group: Group
    #: The RFC 9591 ciphersuite that signs, or None (BIP445 and DKLs23 sign without one).
    suite: Ciphersuite | None
    #: One line for people.
    description: str
    #: How its signatures verify.
    signature_kind: SignatureKind
    #: Signs by DKLs23 threshold ECDSA: over a 32-byte digest, with pairwise OT setups made
    #: at key generation (and redone with ``tmpc pairwise-setup``) and with presignatures.
    dkls23: bool = False
    #: Signs by BIP445 FROST for BIP340 under the BIP341 Taproot output key of the DKG key
    #: (which may commit to a script tree).
    taproot: bool = False
    #: The chains whose own validation accepts its signatures (``bitcoin``, ``ethereum``,
    #: ``solana``); empty for a key no chain verifies natively.
    chains: tuple[str, ...] = ()

    @property
    def bip32(self) -> bool:
        """Whether its wallets derive non-hardened BIP32 children (ECDSA and Taproot)."""
        return self.dkls23 or self.taproot

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        """tmpc's own verifier of this scheme's signatures under ``public_key`` (see
        :attr:`WalletRecord.public_key`). Returns False for any malformed input."""
        if self.signature_kind is SignatureKind.ECDSA:
            if len(message) != 32:
                return False
            return ecdsa_verify(public_key, message, signature, der=False, require_low_s=True)
        if self.signature_kind is SignatureKind.BIP340 or self.suite is None:
            return schnorr_verify(message, public_key, signature)
        # Ed25519 and FROST(secp256k1): the RFC 9591 ciphersuite's verification.
        try:
            pk = self.group.decode_point(public_key)
        except DecodeError:
            return False
        return frost.verify(self.suite, pk, message, signature)


SCHEMES: dict[str, Scheme] = {
    s.id: s
    for s in (
        Scheme(
            "schnorr-bip340",
            SECP256K1,
            None,
            "BIP340 Schnorr, Taproot key path (BIP445)",
            SignatureKind.BIP340,
            taproot=True,
            chains=("bitcoin",),
        ),
        Scheme(
            "ed25519",
            ED25519,
            ed25519,
            "Ed25519 (RFC 8032) via FROST(Ed25519, SHA-512)",
            SignatureKind.ED25519,
            chains=("solana",),
        ),
        Scheme(
            "frost-secp256k1",
            SECP256K1,
            secp256k1,
            "FROST(secp256k1, SHA-256), RFC 9591",
            SignatureKind.RFC9591,
        ),
        Scheme(
            "ecdsa-secp256k1",
            SECP256K1,
            None,
            "ECDSA via DKLs23: Bitcoin, Ethereum, EVM",
            SignatureKind.ECDSA,
            dkls23=True,
            chains=("bitcoin", "ethereum"),
        ),
    )
}


def get_scheme(scheme_id: str) -> Scheme:
    """The :class:`Scheme` for ``scheme_id``; raises :class:`ParameterError` if unknown."""
    try:
        return SCHEMES[scheme_id]
    except KeyError:
        known = ", ".join(SCHEMES)
        raise ParameterError(f"unknown scheme {scheme_id!r} (known: {known})") from None


@dataclass(frozen=True)
class Rotation:
    """One refresh of a wallet's shares, as its record keeps it (all public): the session id
    it ran under, every party's commitment to its sharing of zero, and every party's host-key
    signature over the transcript (:mod:`tmpc.protocols.lifecycle.refresh`). From the
    previous verification shares and this, anyone recomputes the new ones.

    In ``wallet.json`` a history entry without ``"kind"`` (or with ``"kind": "refresh"``)::

        {"session": hex, "commitments": {"<party>": [hex point, ... (t-1)]},
         "certificate": {"<party>": hex BIP340 signature}}
    """

    session: bytes
    commitments: Mapping[int, tuple[Point, ...]]
    certificate: Mapping[int, bytes]


@dataclass(frozen=True)
class Reshare:
    """One reshare of a wallet's key to a new party set and/or threshold, as its record keeps
    it (all public; :mod:`tmpc.protocols.lifecycle.reshare`).

    ``commitments`` maps each dealer's *old* party id to its commitment ``(C_0, ..., C_(t'-1))``
    (``C_0 = λ_i·X_i``; the dealer set is its keys); ``threshold`` is the new threshold ``t'``
    and ``host_public_keys`` every new party's 33-byte host key by *new* id ``1..n'``. The
    certificate is kept by role: ``dealer_certificate`` (old id -> the dealer's BIP340
    signature with its old host key) and ``receiver_certificate`` (new id -> the new party's
    signature with its new host key), all over the reshare's certificate message. From the
    previous epoch and this, anyone recomputes the new verification shares.

    In ``wallet.json``::

        {"kind": "reshare", "session": hex, "threshold": t', "parties": n',
         "dealers": [old id, ...], "commitments": {"<old id>": [hex point, ... (t')]},
         "host_public_keys": {"<new id>": hex (33 bytes)},
         "certificate": {"dealers": {"<old id>": hex sig}, "receivers": {"<new id>": hex sig}}}
    """

    session: bytes
    commitments: Mapping[int, tuple[Point, ...]]
    threshold: int
    host_public_keys: Mapping[int, bytes]
    dealer_certificate: Mapping[int, bytes]
    receiver_certificate: Mapping[int, bytes]

    @property
    def dealers(self) -> list[int]:
        """The old party ids of the dealers, sorted."""
        return sorted(self.commitments)

    @property
    def parties(self) -> int:
        """The new party count ``n'``."""
        return len(self.host_public_keys)


@dataclass(frozen=True)
class Rehost:
    """The replacement of one party's host key (a party repaired on a new machine keeps its
    share but has a new identity key), as its record keeps it (all public;
    :mod:`tmpc.protocols.lifecycle.rehost`): the party, its new 33-byte host key, and the
    certificate: signer id -> BIP340 signature of its current host key over
    :func:`rehost_message`, from at least ``threshold`` parties other than ``party``.

    In ``wallet.json``::

        {"kind": "rehost", "party": id, "host_public_key": hex (33 bytes),
         "certificate": {"<signer>": hex sig}}
    """

    party: int
    host_public_key: bytes
    certificate: Mapping[int, bytes]

    @property
    def session(self) -> bytes:
        """Empty: a rehost runs no session of its own (every history entry has a session)."""
        return b""


#: One entry of a wallet's history: a refresh, a reshare or a rehost (each one epoch).
HistoryEntry = Rotation | Reshare | Rehost


@dataclass(frozen=True)
class WalletRecord:
    """The public record of a threshold wallet; safe to publish and back up in clear.

    ``threshold``, ``parties``, ``verification_shares`` and ``host_public_keys`` are the current
    epoch's. The wallet's identity (id, key, chain code, addresses) is fixed by its DKG (epoch
    0) and never changes: ``history`` lists every epoch since (:data:`HistoryEntry`: refreshes,
    reshares and rehosts, each certified by host-key signatures), and ``genesis_shares``,
    ``genesis_threshold`` and ``genesis_hosts`` keep the DKG's verification shares, threshold
    and host keys (all None at epoch 0, where they are the current ones; past epoch 0, a
    record given no ``genesis_threshold`` / ``genesis_hosts`` takes the current ones, which is
    right only while its history holds refreshes alone, and is refused otherwise).
    """

    scheme: str
    threshold: int
    parties: int
    group_public_key: Point
    verification_shares: Mapping[int, Point]
    host_public_keys: Mapping[int, bytes]
    recovery_data: bytes
    taproot_merkle_root: bytes | None = None
    epoch: int = 0
    history: tuple[HistoryEntry, ...] = ()
    genesis_shares: Mapping[int, Point] | None = None
    genesis_threshold: int | None = None
    genesis_hosts: Mapping[int, bytes] | None = None
    signing_group: str | None = None
    group_fork: int | None = None

    def __post_init__(self) -> None:
        if self.epoch != len(self.history):
            raise ParameterError("a wallet's epoch is the number of its history entries")
        if (self.signing_group is None) != (self.group_fork is None):
            raise ParameterError("a signing group names the epoch it was made at")
        if self.signing_group is not None:
            check_group_name(self.signing_group)
            fork = self.group_fork
            assert fork is not None
            if not 0 <= fork < self.epoch or not isinstance(self.history[fork], Reshare):
                raise ParameterError("a signing group starts with a reshare of its wallet's key")
        if (self.genesis_shares is None) != (self.epoch == 0):
            raise ParameterError("a wallet past its DKG keeps its DKG's verification shares")
        if self.epoch == 0:
            if self.genesis_threshold is not None or self.genesis_hosts is not None:
                raise ParameterError("at epoch 0 the threshold and host keys are the DKG's")
        elif self.genesis_threshold is None or self.genesis_hosts is None:
            if not all(isinstance(e, Rotation) for e in self.history):
                raise ParameterError(
                    "a reshared or rehosted wallet keeps its DKG's threshold and host keys"
                )
            # Refreshes change neither, so the current ones are the DKG's; set them, so that
            # equal records compare equal however they were built.
            if self.genesis_threshold is None:
                object.__setattr__(self, "genesis_threshold", self.threshold)
            if self.genesis_hosts is None:
                object.__setattr__(self, "genesis_hosts", dict(self.host_public_keys))

    @property
    def party_ids(self) -> list[int]:
        """Shamir identifiers of the parties, 1..n."""
        return list(range(1, self.parties + 1))

    @property
    def group_name(self) -> str:
        """This sharing's signing group: :data:`DEFAULT_GROUP` for the DKG's own sharing."""
        return self.signing_group or DEFAULT_GROUP

    @property
    def wallet_id(self) -> str:
        """This sharing's id: :attr:`key_id` for the DKG's own sharing, and for another
        signing group of the same key :func:`group_wallet_id` of the key id and its name (so
        each group's shares, sessions and presignatures are kept apart by id)."""
        if self.signing_group is None:
            return self.key_id
        return group_wallet_id(self.key_id, self.signing_group)

    def context_id(self, index: int) -> str:
        """The wallet id history entry ``index`` ran under: a signing group's entries from its
        founding reshare on run under the group's id, the ones it inherited under the key's."""
        if self.group_fork is not None and index >= self.group_fork:
            return self.wallet_id
        return self.key_id

    @functools.cached_property
    def key_id(self) -> str:
        """A short identifier (32 hex) binding everything public about the wallet's DKG.

        Scheme, the DKG's threshold and party count, group key, every verification share of
        the DKG and every host key of the DKG, the Taproot script-tree root, epoch 0 and the
        DKG's recovery data (hence the BIP32 chain code), all length-prefixed; every signing
        group of the key shares it. It stays the
        same through refreshes, reshares and rehosts (epochs are bound by share files and by
        each history entry's certificate). Share files bind this id in their associated data,
        so an edited ``wallet.json`` no longer matches its shares.
        """
        root = self.taproot_merkle_root or b""
        genesis, threshold, hosts = _genesis_of(self)
        ids = range(1, len(genesis) + 1)
        h = tagged_hash(
            "tmpc/wallet-id/v2",
            lp_join(
                [
                    self.scheme.encode(),
                    threshold.to_bytes(4, "big"),
                    len(genesis).to_bytes(4, "big"),
                    (0).to_bytes(8, "big"),  # the DKG's epoch (ids of version 2 records)
                    self.group_public_key.encode(),
                    *(genesis[i].encode() for i in ids),
                    *(hosts[i] for i in ids),
                    root,
                    hashlib.sha256(self.recovery_data).digest(),
                ]
            ),
        )
        return h[:16].hex()

    @property
    def chain_code(self) -> bytes:
        """The BIP32 chain code agreed in the DKG (hash of its certified recovery data)."""
        return hd.chain_code_from_dkg(self.recovery_data)

    @property
    def public_key(self) -> bytes:
        """The key a verifier sees: 32-byte x-only Taproot output key (schnorr-bip340),
        32-byte Ed25519 key (ed25519) or 33-byte compressed key (frost-secp256k1)."""
        if get_scheme(self.scheme).taproot:
            return taproot.taproot_output_key(self.group_public_key, self.taproot_merkle_root)[0]
        return self.group_public_key.encode()

    def to_json(self) -> dict[str, Any]:
        """The JSON document written to ``wallet.json``."""
        doc: dict[str, Any] = {
            "format": "tmpc-wallet",
            "version": WALLET_FORMAT_VERSION,
            "wallet_id": self.wallet_id,
            "scheme": self.scheme,
            "threshold": self.threshold,
            "parties": self.parties,
            "party_ids": self.party_ids,
            "epoch": self.epoch,
            "public_key": self.public_key.hex(),
            "group_public_key": self.group_public_key.encode().hex(),
            "verification_shares": {
                str(i): self.verification_shares[i].encode().hex() for i in self.party_ids
            },
            "host_public_keys": {str(i): self.host_public_keys[i].hex() for i in self.party_ids},
            "recovery_data": self.recovery_data.hex(),
        }
        if self.history:
            doc["history"] = [_entry_to_json(e) for e in self.history]
        if self.signing_group is not None:
            doc["signing_group"] = {
                "name": self.signing_group,
                "fork": self.group_fork,
                "key_id": self.key_id,
            }
        if get_scheme(self.scheme).taproot:
            doc["taproot"] = {
                "internal_key": self.group_public_key.encode()[1:].hex(),
                "merkle_root": self.taproot_merkle_root.hex() if self.taproot_merkle_root else None,
                "output_key": self.public_key.hex(),
            }
        return doc

    @classmethod
    def from_json(cls, doc: Any) -> WalletRecord:
        """Parse and validate ``wallet.json``; raises :class:`KeystoreError` if malformed.

        Checks every point, the wallet id over all public fields, and the DKG's recovery data:
        its certificate (signed by every participant's host key) must verify, the group key
        must be the DKG's, and the threshold, parties, host keys and all verification shares
        must be the ones the DKG produced followed by every history entry, each replayed with
        its checks (every certificate signature; a refresh's commitment degrees; a reshare's
        dealer set, at least the threshold of the epoch's parties, its commitment degrees and
        constant terms ``λ_i·X_i``; a rehost's signers, at least the threshold of other
        parties), so no field can be edited on its own.
        """
        try:
            if doc["format"] != "tmpc-wallet":
                raise KeystoreError("wallet.json: not a tmpc wallet")
            if doc["version"] != WALLET_FORMAT_VERSION:
                raise KeystoreError(
                    f"wallet.json: format version {doc['version']} is not supported (this tmpc "
                    f"reads version {WALLET_FORMAT_VERSION}; version 1 came from a pre-release "
                    "that did not bind every public field: create the wallet again)"
                )
            scheme = get_scheme(doc["scheme"])
            t, n = int(doc["threshold"]), int(doc["parties"])
            if not 1 <= t <= n <= MAX_PARTIES:
                raise KeystoreError("wallet.json: threshold or party count out of range")
            epoch = int(doc["epoch"])
            if not 0 <= epoch < 1 << 64:  # the wallet id encodes it in 8 bytes
                raise KeystoreError("wallet.json: epoch out of range")
            g = scheme.group
            pk = g.decode_point(bytes.fromhex(doc["group_public_key"]))
            vs_doc, host_doc = doc["verification_shares"], doc["host_public_keys"]
            if len(vs_doc) != n or len(host_doc) != n:
                raise KeystoreError("wallet.json: expected one share key per party")
            vs = {i: g.decode_point(bytes.fromhex(vs_doc[str(i)])) for i in range(1, n + 1)}
            hosts = {i: bytes.fromhex(host_doc[str(i)]) for i in range(1, n + 1)}
            root = None
            if scheme.taproot and doc["taproot"]["merkle_root"]:
                root = bytes.fromhex(doc["taproot"]["merkle_root"])
                if len(root) != 32:
                    raise KeystoreError("wallet.json: the Taproot merkle root is not 32 bytes")
            history = tuple(_entry_from_json(g, e) for e in doc.get("history", []))
            recovery_data = bytes.fromhex(doc["recovery_data"])
            group_doc = doc.get("signing_group")
            group_name, fork = None, None
            if group_doc is not None:
                group_name = check_group_name(group_doc["name"])
                fork = int(group_doc["fork"])
                if not 0 <= fork < epoch or not isinstance(history[fork], Reshare):
                    raise KeystoreError("wallet.json: the signing group's founding epoch is wrong")
        except (
            KeyError,
            TypeError,
            ValueError,
            OverflowError,
            AttributeError,
            DecodeError,
            ParameterError,
        ):
            # OverflowError: int() of an infinity, which Python's json writes and reads;
            # AttributeError: a history entry that is not an object
            raise KeystoreError("wallet.json is malformed or has an invalid key") from None
        if epoch != len(history):
            raise KeystoreError("wallet.json: the epoch does not match the history")
        try:
            output, params, _ = dkg.chilldkg.recover_output(g, None, recovery_data)
        except TmpcError:
            raise KeystoreError("wallet.json: the DKG recovery data does not verify") from None
        genesis = {i + 1: p for i, p in enumerate(output.pubshares)}
        genesis_hosts = {i + 1: k for i, k in enumerate(params.hostpubkeys)}
        if output.threshold_pubkey != pk or len(genesis) != len(genesis_hosts):
            raise KeystoreError("wallet.json: keys do not match the DKG's certified transcript")
        wid = _genesis_id(scheme, params.t, pk, genesis, genesis_hosts, root, recovery_data)
        final = _Epoch(params.t, genesis_hosts, genesis)
        for k, entry in enumerate(history):
            # A signing group's own epochs (from its founding reshare) run under its own id.
            ctx_id = wid if fork is None or k < fork else group_wallet_id(wid, str(group_name))
            try:
                final = _apply_entry(scheme, pk, ctx_id, k, final, entry)
            except ParameterError as exc:
                raise KeystoreError(
                    f"wallet.json: history entry {k + 1} ({_kind(entry)}): {exc}"
                ) from None
        if final.threshold != t or final.hosts != hosts:
            raise KeystoreError(
                "wallet.json: threshold or host keys are not those of its DKG and history "
                "(keys do not match the DKG's certified transcript)"
            )
        if final.vs != vs:
            raise KeystoreError(
                "wallet.json: the verification shares are not those of its DKG and history"
            )
        try:
            rec = cls(
                scheme=scheme.id,
                threshold=t,
                parties=n,
                group_public_key=pk,
                verification_shares=vs,
                host_public_keys=hosts,
                recovery_data=recovery_data,
                taproot_merkle_root=root,
                epoch=epoch,
                history=history,
                genesis_shares=genesis if history else None,
                genesis_threshold=params.t if history else None,
                genesis_hosts=genesis_hosts if history else None,
                signing_group=group_name,
                group_fork=fork,
            )
        except (KeyError, TypeError, ValueError, OverflowError, DecodeError, ParameterError):
            # OverflowError: int() of an infinity, which Python's json writes and reads
            raise KeystoreError("wallet.json is malformed or has an invalid key") from None
        if doc.get("wallet_id") != rec.wallet_id or doc.get("public_key") != rec.public_key.hex():
            raise KeystoreError("wallet.json: wallet id or public key does not match its content")
        if group_doc is not None and group_doc.get("key_id") != rec.key_id:
            raise KeystoreError("wallet.json: the signing group's key id does not match")
        return rec


def check_group_name(name: object) -> str:
    """``name`` if it names a signing group other than :data:`DEFAULT_GROUP` (1 to 64 of
    ``[A-Za-z0-9._-]``, starting with a letter or digit); raises :class:`ParameterError`."""
    if not isinstance(name, str) or _GROUP_NAME.fullmatch(name) is None:
        raise ParameterError(
            "a signing group's name is 1 to 64 letters, digits, '.', '_' or '-' (starting with a "
            "letter or digit)"
        )
    if name == DEFAULT_GROUP:
        raise ParameterError(f"{DEFAULT_GROUP!r} is the DKG's own sharing, not a new group")
    return name


def group_wallet_id(key_id: str, name: str) -> str:
    """The wallet id (32 hex) of signing group ``name`` of the key whose DKG gave ``key_id``:
    ``tagged_hash("tmpc/wallet-group/v1", key id || name)`` (length-prefixed), first 16
    bytes. The default group's id is the key id itself."""
    if name == DEFAULT_GROUP:
        return key_id
    h = tagged_hash("tmpc/wallet-group/v1", lp_join([bytes.fromhex(key_id), name.encode()]))
    return h[:16].hex()


def _genesis_of(record: WalletRecord) -> tuple[Mapping[int, Point], int, Mapping[int, bytes]]:
    """The DKG's verification shares, threshold and host keys of ``record``."""
    if record.epoch == 0:
        return record.verification_shares, record.threshold, record.host_public_keys
    assert record.genesis_shares is not None  # __post_init__: set past epoch 0
    assert record.genesis_threshold is not None and record.genesis_hosts is not None
    return record.genesis_shares, record.genesis_threshold, record.genesis_hosts


def _genesis_id(
    scheme: Scheme,
    t: int,
    pk: Point,
    genesis: Mapping[int, Point],
    hosts: Mapping[int, bytes],
    root: bytes | None,
    recovery_data: bytes,
) -> str:
    return WalletRecord(
        scheme.id, t, len(genesis), pk, genesis, hosts, recovery_data, taproot_merkle_root=root
    ).wallet_id


def _entry_to_json(entry: HistoryEntry) -> dict[str, Any]:
    def points(cs: Mapping[int, tuple[Point, ...]]) -> dict[str, list[str]]:
        return {str(i): [c.encode().hex() for c in cs[i]] for i in sorted(cs)}

    def hexes(m: Mapping[int, bytes]) -> dict[str, str]:
        return {str(i): m[i].hex() for i in sorted(m)}

    if isinstance(entry, Rotation):  # no "kind": the format of refreshes before reshares
        return {
            "session": entry.session.hex(),
            "commitments": points(entry.commitments),
            "certificate": hexes(entry.certificate),
        }
    if isinstance(entry, Reshare):
        return {
            "kind": "reshare",
            "session": entry.session.hex(),
            "threshold": entry.threshold,
            "parties": entry.parties,
            "dealers": entry.dealers,
            "commitments": points(entry.commitments),
            "host_public_keys": hexes(entry.host_public_keys),
            "certificate": {
                "dealers": hexes(entry.dealer_certificate),
                "receivers": hexes(entry.receiver_certificate),
            },
        }
    return {
        "kind": "rehost",
        "party": entry.party,
        "host_public_key": entry.host_public_key.hex(),
        "certificate": hexes(entry.certificate),
    }


def _entry_from_json(g: Group, doc: Any) -> HistoryEntry:
    """One history entry of ``wallet.json``; raises KeyError, TypeError, ValueError,
    AttributeError, DecodeError or KeystoreError if malformed (the caller maps them)."""

    def points(m: Any) -> dict[int, tuple[Point, ...]]:
        return {int(i): tuple(g.decode_point(bytes.fromhex(c)) for c in cs) for i, cs in m.items()}

    def hexes(m: Any) -> dict[int, bytes]:
        return {int(i): bytes.fromhex(x) for i, x in m.items()}

    kind = doc.get("kind", "refresh")
    if kind == "refresh":
        return Rotation(
            session=bytes.fromhex(doc["session"]),
            commitments=points(doc["commitments"]),
            certificate=hexes(doc["certificate"]),
        )
    if kind == "reshare":
        entry = Reshare(
            session=bytes.fromhex(doc["session"]),
            commitments=points(doc["commitments"]),
            threshold=int(doc["threshold"]),
            host_public_keys=hexes(doc["host_public_keys"]),
            dealer_certificate=hexes(doc["certificate"]["dealers"]),
            receiver_certificate=hexes(doc["certificate"]["receivers"]),
        )
        dealers = [int(i) for i in doc["dealers"]]
        if dealers != entry.dealers or int(doc["parties"]) != entry.parties:
            raise KeystoreError("wallet.json: a reshare's dealers or parties do not match it")
        return entry
    if kind == "rehost":
        return Rehost(
            party=int(doc["party"]),
            host_public_key=bytes.fromhex(doc["host_public_key"]),
            certificate=hexes(doc["certificate"]),
        )
    raise KeystoreError("wallet.json: a history entry of an unknown kind")


def _kind(entry: HistoryEntry) -> str:
    return {Rotation: "refresh", Reshare: "reshare", Rehost: "rehost"}[type(entry)]


@dataclass(frozen=True)
class _Epoch:
    """What each history entry changes: threshold, host keys (id -> 33 bytes) and
    verification shares (id -> point) of the parties ``1..n``."""

    threshold: int
    hosts: Mapping[int, bytes]
    vs: Mapping[int, Point]

    @classmethod
    def of(cls, record: WalletRecord) -> _Epoch:
        return cls(record.threshold, record.host_public_keys, record.verification_shares)


def _check_host_key(key: object, what: str) -> bytes:
    if not isinstance(key, bytes) or len(key) != 33:
        raise ParameterError(f"{what} is not a 33-byte host key")
    try:
        SECP256K1.decode_point(key)
    except DecodeError:
        raise ParameterError(f"{what} is not a valid host key") from None
    return key


def _verify_all(
    message: bytes, sigs: Mapping[int, bytes], keys: Mapping[int, bytes], who: str
) -> None:
    for i in sorted(sigs):
        if not schnorr_verify(message, keys[i][1:], sigs[i]):
            raise ParameterError(f"{who} {i}'s signature does not verify")


def _apply_entry(
    scheme: Scheme, pk: Point, wallet_id: str, epoch: int, state: _Epoch, entry: HistoryEntry
) -> _Epoch:
    """The epoch after ``entry``, which starts from ``state`` at ``epoch``, with every check:

    - refresh: every party dealt a commitment of ``t-1`` terms and signed the transcript with
      its host key;
    - reshare: the dealers are parties, at least ``t`` of them; ``2 <= n' <= 255`` new parties
      with distinct valid host keys, ``1 <= t' <= n'``; every commitment has ``t'`` terms and
      starts with ``λ_i·X_i`` (so the constants add up to the group key); every dealer signed
      with its current host key and every new party with its new one;
    - rehost: the party exists, its new host key is valid and no party's; at least ``t``
      *other* parties signed :func:`rehost_message` with their current host keys.

    Raises :class:`ParameterError` saying which check failed."""
    g = scheme.group
    parties = set(state.vs)
    if isinstance(entry, Rotation):
        if set(entry.commitments) != parties or set(entry.certificate) != parties:
            raise ParameterError("the refresh does not cover every party")
        if any(len(c) != state.threshold - 1 for c in entry.commitments.values()):
            raise ParameterError("a commitment has another degree")
        ctx = refresh.refresh_context(wallet_id, epoch, entry.session)
        message = refresh.certificate_message(refresh.refresh_transcript(ctx, entry.commitments))
        _verify_all(message, entry.certificate, state.hosts, "party")
        vs = refresh.next_verification_shares(g, state.vs, entry.commitments)
        return _Epoch(state.threshold, state.hosts, vs)
    if isinstance(entry, Reshare):
        dealers = entry.dealers
        if not set(dealers) <= parties:
            raise ParameterError("a dealer is not a party of the wallet")
        if len(dealers) < state.threshold:
            raise ParameterError(
                f"{len(dealers)} dealers, fewer than the threshold ({state.threshold})"
            )
        n_new = entry.parties
        if not 2 <= n_new <= MAX_PARTIES or sorted(entry.host_public_keys) != list(
            range(1, n_new + 1)
        ):
            raise ParameterError(f"new parties are numbered 1..n' with 2 <= n' <= {MAX_PARTIES}")
        if not 1 <= entry.threshold <= n_new:
            raise ParameterError("the new threshold is out of range")
        for j, key in entry.host_public_keys.items():
            _check_host_key(key, f"new party {j}'s host key")
        if len(set(entry.host_public_keys.values())) != n_new:
            raise ParameterError("two new parties have the same host key")
        if any(len(c) != entry.threshold for c in entry.commitments.values()):
            raise ParameterError("a commitment has another degree")
        constants = reshare.dealer_constants(g, state.vs, dealers)
        for i in dealers:
            # C_i0 = λ_i·X_i: every dealer dealt its own share, so the key is unchanged.
            if entry.commitments[i][0] != constants[i]:
                raise ParameterError(f"dealer {i}'s commitment does not start with its share")
        if g.sum_points([entry.commitments[i][0] for i in dealers]) != pk:
            raise ParameterError("the dealt constants do not add up to the group public key")
        if sorted(entry.dealer_certificate) != dealers or sorted(
            entry.receiver_certificate
        ) != list(range(1, n_new + 1)):
            raise ParameterError("the certificate does not cover every dealer and new party")
        ctx = reshare.reshare_context(wallet_id, epoch, entry.session)
        transcript = reshare.reshare_transcript(
            ctx, entry.threshold, entry.host_public_keys, entry.commitments
        )
        message = reshare.certificate_message(transcript)
        _verify_all(message, entry.dealer_certificate, state.hosts, "dealer")
        _verify_all(message, entry.receiver_certificate, entry.host_public_keys, "new party")
        vs = reshare.new_verification_shares(g, entry.commitments, n_new)
        if any(p.is_identity() for p in vs.values()):  # pragma: no cover - negligible
            raise ParameterError("a new verification share is the identity")
        return _Epoch(entry.threshold, dict(entry.host_public_keys), vs)
    r = entry.party
    if r not in parties:
        raise ParameterError(f"party {r} is not a party of the wallet")
    key = _check_host_key(entry.host_public_key, f"party {r}'s new host key")
    if key in state.hosts.values():
        raise ParameterError("the new host key is already a party's")
    signers = sorted(entry.certificate)
    if r in entry.certificate:
        raise ParameterError(f"party {r} cannot certify its own new host key")
    if not set(signers) <= parties:
        raise ParameterError("a signer is not a party of the wallet")
    if len(signers) < state.threshold:
        raise ParameterError(
            f"{len(signers)} signatures, fewer than the threshold ({state.threshold})"
        )
    message = rehost.certificate_message(wallet_id, epoch, r, key)
    _verify_all(message, entry.certificate, state.hosts, "party")
    return _Epoch(state.threshold, {**state.hosts, r: key}, state.vs)


def _next_record(
    record: WalletRecord, entry: HistoryEntry, after: _Epoch, signing_group: str | None = None
) -> WalletRecord:
    """The record of the epoch after ``record`` by ``entry`` (which leads to ``after``);
    ``signing_group``: ``entry`` founds that group (a reshare that copies the key)."""
    genesis, threshold, hosts = _genesis_of(record)
    group, fork = record.signing_group, record.group_fork
    if signing_group is not None:
        group, fork = signing_group, record.epoch
    return WalletRecord(
        scheme=record.scheme,
        threshold=after.threshold,
        parties=len(after.vs),
        group_public_key=record.group_public_key,
        verification_shares=dict(after.vs),
        host_public_keys=dict(after.hosts),
        recovery_data=record.recovery_data,
        taproot_merkle_root=record.taproot_merkle_root,
        epoch=record.epoch + 1,
        history=(*record.history, entry),
        genesis_shares=dict(genesis),
        genesis_threshold=threshold,
        genesis_hosts=dict(hosts),
        signing_group=group,
        group_fork=fork,
    )


@dataclass(frozen=True)
class KeyShare:
    """One party's secret: its Shamir share and its host (identity) secret key.

    For ``ecdsa-secp256k1`` also the party's pairwise DKLs23 material (zero-sharing seeds and
    OT-based multiplication setups with every other party, serialised), kept apart from the
    key share so that a refresh or a reshare can redo it without changing the key.
    """

    identifier: int
    secshare: int = field(repr=False)
    hostseckey: bytes = field(repr=False)
    pairwise: bytes | None = field(default=None, repr=False)


def keygen(
    scheme_id: str, threshold: int, parties: int, *, merkle_root: bytes | None = None
) -> tuple[WalletRecord, list[KeyShare]]:
    """Run the dealerless DKG with all parties in this process.

    One :class:`~tmpc.protocols.dkg.machine.DkgMachine` per party (and, for
    ``ecdsa-secp256k1``, one pairwise-setup machine per party), driven by
    :func:`tmpc.local.run_machines`: the code party nodes run.
    Returns the public wallet record and one :class:`KeyShare` per party (identifiers 1..n).
    ``merkle_root`` (32 bytes) commits the Taproot output key to a script tree (schnorr-bip340
    only); by default the output key commits to no script path.
    Raises :class:`ParameterError` for a bad threshold, party count or scheme.
    """
    scheme = get_scheme(scheme_id)
    if not 2 <= parties <= MAX_PARTIES:
        raise ParameterError(f"parties must be between 2 and {MAX_PARTIES}")
    if not 1 <= threshold <= parties:
        raise ParameterError(f"threshold must be between 1 and the number of parties ({parties})")
    if merkle_root is not None and (not scheme.taproot or len(merkle_root) != 32):
        raise ParameterError("a 32-byte Taproot merkle root applies to schnorr-bip340 only")
    hostseckeys = [secrets.token_bytes(32) for _ in range(parties)]
    hostpubkeys = [dkg.hostpubkey_gen(k) for k in hostseckeys]
    # ChillDKG peer to peer: one machine per party, each its own coordinator.
    machines = {
        i: DkgMachine(scheme.group, hostseckeys[i - 1], hostpubkeys, threshold, i)
        for i in range(1, parties + 1)
    }
    run_machines(machines)
    results = [machines[i].output for i in sorted(machines)]
    first = results[0]
    record = WalletRecord(
        scheme=scheme.id,
        threshold=threshold,
        parties=parties,
        group_public_key=first.threshold_pubkey,
        verification_shares={i + 1: p for i, p in enumerate(first.pubshares)},
        host_public_keys={i + 1: dkg.hostpubkey_gen(k) for i, k in enumerate(hostseckeys)},
        recovery_data=first.recovery_data,
        taproot_merkle_root=merkle_root,
    )
    pairwise: dict[int, bytes] = {}
    if scheme.dkls23:
        material = dkls23.pairwise_setup_local(record.party_ids, pairwise_session(record))
        pairwise = {i: m.to_bytes() for i, m in material.items()}
    shares = [
        KeyShare(r.identifier, r.secshare, hostseckeys[r.index], pairwise.get(r.identifier))
        for r in results
    ]
    return record, shares


def _check_parties(
    record: WalletRecord, ids: Sequence[int], role: str, need: str, after: str = ""
) -> None:
    """``ids`` are distinct parties of the wallet, at least its threshold of them. Errors name
    the ``role`` (signer, dealer); too few reads ``N role(s) given; {need} T{after}``."""
    if len(set(ids)) != len(ids):
        raise ParameterError(f"a {role} is listed twice")
    for i in ids:
        if i not in record.verification_shares:
            raise ParameterError(f"{role} {i} is not a party of this wallet")
    if len(ids) < record.threshold:
        raise ParameterError(f"{len(ids)} {role}(s) given; {need} {record.threshold}{after}")


def _check_signers(record: WalletRecord, shares: Sequence[KeyShare]) -> dict[int, int]:
    _check_parties(record, [s.identifier for s in shares], "signer", "this wallet needs at least")
    return {s.identifier: s.secshare for s in sorted(shares, key=lambda s: s.identifier)}


def pairwise_session(record: WalletRecord) -> bytes:
    """The session id of a wallet's DKLs23 pairwise setup at its current epoch (the DKG's at
    epoch 0, a new one at each later epoch: a session id is never run twice)."""
    wid = bytes.fromhex(record.wallet_id)
    if record.epoch == 0:
        return tagged_hash("tmpc/dkls23/setup", wid)
    return tagged_hash("tmpc/dkls23/setup", wid + record.epoch.to_bytes(8, "big"))


def refresh_shares(
    record: WalletRecord, shares: Sequence[KeyShare], *, session_id: bytes | None = None
) -> tuple[WalletRecord, list[KeyShare]]:
    """Give every party a new share of the same key, all in this process.

    One :class:`~tmpc.protocols.lifecycle.refresh.RefreshMachine` per party (the machines a
    node runs), each signing the transcript with its host key; for ``ecdsa-secp256k1`` the
    pairwise setup is redone too. Returns the record of the next epoch (same wallet id,
    public key, chain code and addresses; the refresh added to its history) and the new
    shares. The old shares do not combine with the new ones.

    Raises :class:`ParameterError` unless ``shares`` holds every party's share, and
    :class:`KeystoreError` for a share that is not this wallet's current one or whose host
    key is not its party's current one (after a rehost).
    """
    scheme = get_scheme(record.scheme)
    if sorted(s.identifier for s in shares) != record.party_ids:
        raise ParameterError("a refresh needs every party's share")
    for s in shares:
        check_share(record, s)
        _check_host_secret(record, s)
    sid = session_id if session_id is not None else secrets.token_bytes(32)
    if len(sid) != 32:
        raise ParameterError("a refresh session id is 32 bytes")
    ctx = refresh.refresh_context(record.wallet_id, record.epoch, sid)
    results = refresh.refresh_local(
        scheme.group,
        record.threshold,
        {s.identifier: s.secshare for s in shares},
        record.verification_shares,
        ctx,
        hostseckeys={s.identifier: s.hostseckey for s in shares},
    )
    new_record = refreshed_record(record, sid, results[record.party_ids[0]])
    pairwise: dict[int, bytes] = {}
    if scheme.dkls23:
        material = dkls23.pairwise_setup_local(new_record.party_ids, pairwise_session(new_record))
        pairwise = {i: m.to_bytes() for i, m in material.items()}
    new_shares = [
        KeyShare(
            s.identifier, results[s.identifier].secshare, s.hostseckey, pairwise.get(s.identifier)
        )
        for s in sorted(shares, key=lambda s: s.identifier)
    ]
    return new_record, new_shares


def refreshed_record(
    record: WalletRecord, session: bytes, result: refresh.RefreshResult
) -> WalletRecord:
    """The record of the epoch after a refresh of ``record`` under ``session``: the same
    identity, the new verification shares, and the refresh (commitments and certificate)
    added to its history. Every party of the refresh computes the same."""
    return _next_record(
        record,
        Rotation(session, result.commitments, result.certificate),
        _Epoch(record.threshold, record.host_public_keys, result.verification_shares),
    )


def reshare_shares(
    record: WalletRecord,
    dealer_shares: Sequence[KeyShare],
    new_threshold: int,
    new_hostseckeys: Mapping[int, bytes],
    *,
    session_id: bytes | None = None,
    signing_group: str | None = None,
) -> tuple[WalletRecord, list[KeyShare]]:
    """Move the wallet's key to new parties and/or a new threshold, all in this process.

    The parties of ``dealer_shares`` (at least ``threshold`` of the current ones) deal; the new
    parties are ``1..n'`` with the 32-byte host secret keys ``new_hostseckeys`` (new id ->
    key, ``2 <= n' <= 255``), ``new_threshold`` of them needed to sign. A new party whose host
    key is a dealer's is that party continuing (one session member with both roles). One
    :class:`~tmpc.protocols.lifecycle.reshare.ReshareMachine` per member (the machines a node
    runs) signs the transcript with its host keys; for ``ecdsa-secp256k1`` the pairwise setup
    is redone among the new parties. Returns the record of the next epoch (same wallet id,
    public key, chain code and addresses; the new threshold, parties, host keys and
    verification shares; the reshare added to its history) and the new parties' shares, in
    new-id order. Old shares do not combine with the new ones.

    ``session_id`` (32 bytes, default random) **must not** be reused. ``signing_group``: copy
    the key to a new signing group of that name instead (:func:`reshared_record`); the
    dealers' shares stay valid for their own wallet.

    Raises :class:`ParameterError` for fewer dealers than the threshold, a dealer listed twice
    or not a party, bad new ids, threshold, keys or session id, and :class:`KeystoreError` for
    a share (or host key) that is not this wallet's current one.
    """
    scheme = get_scheme(record.scheme)
    ids = [s.identifier for s in dealer_shares]
    _check_parties(record, ids, "dealer", "a reshare needs at least", " (the current threshold)")
    for s in dealer_shares:
        check_share(record, s)
        _check_host_secret(record, s)
    n_new = len(new_hostseckeys)
    if not 2 <= n_new <= MAX_PARTIES or sorted(new_hostseckeys) != list(range(1, n_new + 1)):
        raise ParameterError(f"new parties are numbered 1..n' with 2 <= n' <= {MAX_PARTIES}")
    if not isinstance(new_threshold, int) or not 1 <= new_threshold <= n_new:
        raise ParameterError(f"the new threshold must be between 1 and {n_new}")
    sid = session_id if session_id is not None else secrets.token_bytes(32)
    if len(sid) != 32:
        raise ParameterError("a reshare session id is 32 bytes")
    results = reshare.reshare_local(
        scheme.group,
        record.threshold,
        {s.identifier: s.secshare for s in dealer_shares},
        record.verification_shares,
        record.group_public_key,
        new_threshold,
        reshare.reshare_context(reshare_context_id(record, signing_group), record.epoch, sid),
        hostseckeys={s.identifier: s.hostseckey for s in dealer_shares},
        new_hostseckeys=new_hostseckeys,
        host_pubkeys=record.host_public_keys,
    )
    new_shares: dict[int, int] = {}
    for r in results.values():
        if r.identifier is not None and r.secshare is not None:
            new_shares[r.identifier] = r.secshare
    new_record = reshared_record(
        record, sid, next(iter(results.values())), signing_group=signing_group
    )
    pairwise: dict[int, bytes] = {}
    if scheme.dkls23:
        material = dkls23.pairwise_setup_local(new_record.party_ids, pairwise_session(new_record))
        pairwise = {i: m.to_bytes() for i, m in material.items()}
    return new_record, [
        KeyShare(j, new_shares[j], new_hostseckeys[j], pairwise.get(j))
        for j in new_record.party_ids
    ]


def reshared_record(
    record: WalletRecord,
    session: bytes,
    result: reshare.ReshareResult,
    *,
    signing_group: str | None = None,
) -> WalletRecord:
    """The record of the epoch after a reshare of ``record`` under ``session`` (its session id):
    the same identity, the new threshold, parties, host keys and verification shares, and the
    reshare (commitments, new threshold and host keys, certificate) added to its history.
    Every member of the reshare computes the same.

    ``signing_group``: the reshare *copies* the key to a new signing group of that name (its
    dealers keep their shares, the group gets its own sharing of the same key, with the same
    address): the reshare ran under the group's id (:func:`reshare_context_id`), and the new
    record is the group's first. Only the DKG's own sharing is copied.

    The entry is checked as :meth:`WalletRecord.from_json` checks it (dealer set, degrees,
    constant terms, every certificate signature), and ``result``'s verification shares must
    be the ones its commitments give. Raises :class:`ParameterError` otherwise."""
    entry = Reshare(
        session=session,
        commitments=dict(result.commitments),
        threshold=result.threshold,
        host_public_keys=dict(result.host_public_keys),
        dealer_certificate=dict(result.dealer_certificate),
        receiver_certificate=dict(result.receiver_certificate),
    )
    after = _apply_entry(
        get_scheme(record.scheme),
        record.group_public_key,
        reshare_context_id(record, signing_group),
        record.epoch,
        _Epoch.of(record),
        entry,
    )
    if dict(after.vs) != dict(result.verification_shares):
        raise ParameterError("the reshare's verification shares are not its commitments'")
    return _next_record(record, entry, after, signing_group)


def reshare_context_id(record: WalletRecord, signing_group: str | None = None) -> str:
    """The wallet id a reshare of ``record`` runs under: the record's own, or for a reshare
    that founds signing group ``signing_group``, the group's (so its transcript can never be
    taken for a reshare of the wallet itself). Raises :class:`ParameterError` for a bad name or
    a group copied from another group."""
    if signing_group is None:
        return record.wallet_id
    check_group_name(signing_group)
    if record.signing_group is not None:
        raise ParameterError("a signing group is made from the wallet's default group")
    return group_wallet_id(record.key_id, signing_group)


def rehost_message(record: WalletRecord, party: int, new_host_pubkey: bytes) -> bytes:
    """The 32-byte message that at least ``threshold`` parties other than ``party`` sign (BIP340,
    with their current host keys) to replace ``party``'s host key in ``record`` by
    ``new_host_pubkey`` (33 bytes): :func:`tmpc.protocols.lifecycle.rehost.certificate_message`
    of the wallet id, the record's epoch, the party and the key. Raises
    :class:`ParameterError` for a bad party id or key length."""
    return rehost.certificate_message(record.wallet_id, record.epoch, party, new_host_pubkey)


def rehosted_record(
    record: WalletRecord, party: int, new_host_pubkey: bytes, certificate: Mapping[int, bytes]
) -> WalletRecord:
    """The record of the epoch after ``party``'s host key is replaced by ``new_host_pubkey``
    (33 bytes): the same shares and identity, the new host key, and the rehost added to its
    history. ``certificate`` maps signer ids to BIP340 signatures over
    :func:`rehost_message` by the signers' current host keys: at least ``threshold`` parties,
    not ``party`` itself (so a wallet of n-of-n parties cannot rehost). Share files are bound
    to the epoch, so every party seals its (unchanged) share again for the new epoch.

    Raises :class:`ParameterError` for an unknown party, an invalid or already used host key,
    too few signers, the party among them, or a signature that does not verify."""
    entry = Rehost(party, new_host_pubkey, dict(certificate))
    after = _apply_entry(
        get_scheme(record.scheme),
        record.group_public_key,
        record.wallet_id,
        record.epoch,
        _Epoch.of(record),
        entry,
    )
    return _next_record(record, entry, after)


def rotation_test_message(record: WalletRecord) -> bytes:
    """The 32-byte message the new shares of a rotation, reshare or repair sign before anyone
    switches to them: bound to the wallet, the new epoch and the whole new record (its
    history entry, parties, threshold, verification shares), so the signature proves that
    epoch's shares and no other (and never signs anything spendable)."""
    doc = json.dumps(record.to_json(), sort_keys=True, separators=(",", ":")).encode()
    return tagged_hash(
        "tmpc/rotate/test-signature",
        lp_join(
            [
                bytes.fromhex(record.wallet_id),
                record.epoch.to_bytes(8, "big"),
                hashlib.sha256(doc).digest(),
            ]
        ),
    )


def share_secret(record: WalletRecord, share: KeyShare) -> ShareSecret:
    """What a share file seals for ``share``: the encoded share, the host key, the pairwise
    material and, for ECDSA, a fresh key for the party's presignature store."""
    return ShareSecret(
        get_scheme(record.scheme).group.encode_scalar(share.secshare),
        share.hostseckey,
        share.pairwise,
        secrets.token_bytes(32) if share.pairwise is not None else None,
    )


def check_share(record: WalletRecord, share: KeyShare) -> None:
    """Check that ``share`` is this wallet's share of its party (``secshare*G`` equals the
    party's verification share); raises :class:`KeystoreError` naming the party otherwise.

    Call it when loading a share from storage, so that a swapped or stale file is reported as
    such rather than as a faulty signer."""
    g = get_scheme(record.scheme).group
    expected = record.verification_shares.get(share.identifier)
    if expected is None or g.base_mul(share.secshare) != expected:
        raise KeystoreError(f"the share given for party {share.identifier} is not this wallet's")


def _check_host_secret(record: WalletRecord, share: KeyShare) -> None:
    """Raise :class:`KeystoreError` unless ``share``'s host key is its party's current one."""
    try:
        ok = dkg.hostpubkey_gen(share.hostseckey) == record.host_public_keys[share.identifier]
    except TmpcError:
        ok = False
    if not ok:
        raise KeystoreError(
            f"the host key given for party {share.identifier} is not its current one"
        )


def hd_tweak(record: WalletRecord, path: str | None) -> tuple[SecpPoint, int]:
    """``(derived DKG key, additive tweak)`` of the non-hardened BIP32 ``path`` (None: root).

    Only ``ecdsa-secp256k1`` and ``schnorr-bip340`` wallets derive children (for Taproot the
    derived key is the internal key of the child's output key). Raises
    :class:`ParameterError` for other schemes or a hardened / malformed path.
    """
    pk = record.group_public_key
    if not get_scheme(record.scheme).bip32 or not isinstance(pk, SecpPoint):
        raise ParameterError(f"{record.scheme} wallets have no BIP32 derivation")
    if path is None:
        return pk, 0
    child, _cc, tweak = hd.derive_path(pk, record.chain_code, hd.parse_path(path))
    return child, tweak


def public_key_at(record: WalletRecord, path: str | None) -> bytes:
    """The verifier-facing public key at BIP32 ``path`` (see :attr:`WalletRecord.public_key`)."""
    if path is None:
        return record.public_key
    child, _ = hd_tweak(record, path)
    if get_scheme(record.scheme).taproot:
        return taproot.taproot_output_key(child, record.taproot_merkle_root)[0]
    return child.encode()


def wallet_xpub(record: WalletRecord, network: str = "mainnet") -> str:
    """The wallet's BIP32 extended public key (``xpub``/``tpub``) over its DKG key.

    For ``schnorr-bip340`` it is the xpub of the Taproot *internal* key.
    """
    pk, _ = hd_tweak(record, None)
    net = "mainnet" if network == "mainnet" else "testnet"
    return hd.ExtendedPublicKey(pk, record.chain_code, network=net).encode()


def sign(
    record: WalletRecord, shares: Sequence[KeyShare], message: bytes, *, path: str | None = None
) -> bytes:
    """Sign ``message`` with the given parties' shares, all in this process.

    Every signer runs its own machine (:mod:`tmpc.protocols.frost_machine`,
    :class:`~tmpc.protocols.ecdsa.machine.EcdsaSignMachine`), driven by
    :func:`tmpc.local.run_machines`: the code party nodes run. Every signer verifies the
    signature; when it does not verify, a FROST signer checks every signature share, and a bad
    one (for example from a share that is not this wallet's) raises
    :class:`~tmpc.errors.FaultyParticipantError` naming its signer's party id. Returns the
    signature (64 bytes for schnorr-bip340, ed25519 and ecdsa-secp256k1, 65 for
    frost-secp256k1). ``path`` signs for the non-hardened BIP32 child (see
    :func:`public_key_at`).

    For ``ecdsa-secp256k1`` this call keeps **no state**: it runs the whole DKLs23 protocol
    (presigning and signing in one session, :func:`tmpc.protocols.ecdsa.dkls23.sign_local`) on
    the share files' pairwise material, for tests, demos and benchmarks. Custody flows go
    through :mod:`tmpc.local.ecdsa` (what the CLI uses), which refuses deny-listed pairs, uses
    redone pairwise setups, records session ids and deny-lists a peer after a failed
    pairwise check.
    """
    scheme = get_scheme(record.scheme)
    secret_shares = _check_signers(record, shares)
    vs = {i: record.verification_shares[i] for i in secret_shares}
    tweak = hd_tweak(record, path)[1] if path is not None else 0
    if scheme.dkls23:
        r, s, _recid = dkls23.sign_local(
            secret_shares,
            record.group_public_key,
            ecdsa_pairwise(shares),
            sorted(secret_shares),
            ecdsa_digest(message),
            tweak=tweak,
            threshold=record.threshold,
        )
        return compact(r, s)
    # Every signer runs its own machine (peer to peer, no coordinator), all in this process.
    signers = sorted(secret_shares)
    if scheme.suite is None:
        tweaks = bip445_tweaks(record, path)
        machines: dict[int, Bip445SignMachine | FrostSignMachine] = {
            i: Bip445SignMachine(
                i,
                secret_shares[i],
                record.group_public_key,
                vs,
                signers,
                message,
                min_signers=record.threshold,
                tweaks=tweaks,
            )
            for i in signers
        }
    else:
        suite = scheme.suite
        machines = {
            i: FrostSignMachine(
                suite,
                i,
                secret_shares[i],
                record.group_public_key,
                vs,
                signers,
                message,
                min_signers=record.threshold,
            )
            for i in signers
        }
    # Every signer aggregates and verifies the same signature; any one of them will do.
    run_machines(machines)
    return machines[signers[0]].signature


def bip445_tweaks(record: WalletRecord, path: str | None) -> list[tuple[bytes, bool]]:
    """The BIP445 tweaks that make a ``schnorr-bip340`` wallet's DKG key the Taproot output key
    at BIP32 ``path``: the BIP32 child tweak first (a plain tweak of the DKG key), then the
    BIP341 Taproot tweak of the child. Raises :class:`ParameterError` for a bad path."""
    child, tweak = hd_tweak(record, path)
    tweaks = list(taproot.taproot_tweaks_for(child, record.taproot_merkle_root))
    if tweak:
        tweaks.insert(0, (tweak.to_bytes(32, "big"), False))
    return tweaks


def ecdsa_digest(message: bytes) -> bytes:
    """The 32-byte digest an ``ecdsa-secp256k1`` wallet signs; refuses anything else.

    ECDSA signs a hash: the caller hashes its message (Ethereum: keccak-256 of the
    transaction; Bitcoin: the sighash), so a presignature is never finished over a value the
    signer did not see hashed. Raises :class:`ParameterError` if ``message`` is not 32 bytes.
    """
    if len(message) != 32:
        raise ParameterError(
            "ecdsa-secp256k1 signs a 32-byte digest (hash your message first, e.g. keccak-256)"
        )
    return message


def ecdsa_pairwise(shares: Sequence[KeyShare]) -> dict[int, dkls23.EcdsaPairwise]:
    """Parse the pairwise DKLs23 material of each share; raises :class:`KeystoreError`."""
    out = {}
    for s in shares:
        if s.pairwise is None:
            raise KeystoreError(f"party {s.identifier}'s share has no ECDSA pairwise setup")
        try:
            out[s.identifier] = dkls23.EcdsaPairwise.from_bytes(s.pairwise)
        except TmpcError:
            raise KeystoreError(f"party {s.identifier}'s ECDSA pairwise setup is corrupt") from None
    return out


def verify(scheme_id: str, public_key: bytes, message: bytes, signature: bytes) -> bool:
    """tmpc's own verifier for a scheme's signatures under its public key (see
    :attr:`WalletRecord.public_key`) (:meth:`Scheme.verify`). Returns False for any malformed
    input; raises :class:`ParameterError` for an unknown scheme."""
    return get_scheme(scheme_id).verify(public_key, message, signature)
