"""A node's directory: identity, TLS certificate, card, cluster membership.

One directory per node (``tmpc node init --dir DIR``)::

    DIR/node.json        name, listen address, URL peers reach it at, and for a token
                         node where its token key lives (clear text; never a PIN)
    DIR/identity.tmpc    the identity secret key, sealed under the node's passphrase
                         (Argon2id + ChaCha20-Poly1305, the share-file format of
                         :mod:`tmpc.state.keystore`) or under its data key
    DIR/data-key.json    token nodes only: the data key, encrypted by the token key
                         (:mod:`tmpc.node.hsm`)
    DIR/tls/cert.pem     the node's self-signed TLS certificate (pinned by every peer)
    DIR/tls/key.pem      its private key, PEM-encrypted under the node's passphrase (token
                         nodes: under a password derived from the data key)
    DIR/cluster.json     the cluster file, once joined (``tmpc cluster join``)
    DIR/node.db          sessions, requests, outbox, exclusions (SQLite, WAL)
    DIR/wallets/ID/      wallet.json and this node's share of each wallet

The identity key is one secp256k1 secret key: the node's ChillDKG host key (so every DKG the
node takes part in is bound to it), its envelope signing key (BIP340) and, through HKDF, its
X25519 encryption key. A node's **card** is its public side (name, URL, host public key,
X25519 key, TLS certificate) signed by that key; a **cluster file** lists every member's card
and the operators' client certificates, and its hash is bound into every envelope and session.

What unlocks a node's secrets (:data:`Unlock`) is either its passphrase or, for a node whose
share-wrapping key lives in a PKCS#11 token (``tmpc node init --hsm-module ... --hsm-token
...``), the data key that token unwraps (:func:`unlock_with_token`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

from cryptography.hazmat.primitives import serialization

from tmpc.encoding import lp_join, tagged_hash
from tmpc.errors import KeystoreError, ParameterError
from tmpc.node.hsm import (
    DATA_KEY_FILE,
    HsmConfig,
    TokenLogin,
    open_data_key,
    wrap_new_data_key,
)
from tmpc.primitives.bip340 import schnorr_sign, schnorr_verify
from tmpc.state import keystore
from tmpc.state.keystore import KdfParams, SealingKey, ShareSecret
from tmpc.transport import tls
from tmpc.wire.identity import NodeIdentity, NodePublic

__all__ = [
    "CLUSTER_FILE",
    "Card",
    "Cluster",
    "NodeConfig",
    "Operator",
    "Unlock",
    "card_of",
    "init_node",
    "join_cluster",
    "load_cluster",
    "load_config",
    "make_operator",
    "open_identity",
    "open_secret",
    "read_card",
    "seal_secret",
    "tls_key_password",
    "unlock_with_token",
]

#: What opens a node's sealed files: its passphrase, or the data key its token unwrapped.
Unlock: TypeAlias = str | SealingKey
_TLS_PASSWORD_INFO = b"tmpc/node/tls-key-password/v1"

NODE_FILE = "node.json"
IDENTITY_FILE = "identity.tmpc"
CLUSTER_FILE = "cluster.json"
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_IDENTITY_WALLET = "node-identity"


def check_name(name: str) -> str:
    """A node name: 1..64 of ``A-Z a-z 0-9 . _ -``; raises :class:`ParameterError`."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ParameterError(f"invalid node name {name!r}: use 1-64 of A-Z a-z 0-9 . _ -")
    return name


def _check_listen(listen: str) -> tuple[str, int]:
    host, sep, port_text = listen.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ParameterError(f"--listen must be HOST:PORT, not {listen!r}")
    return host, int(port_text)


@dataclass(frozen=True)
class NodeConfig:
    """The clear-text configuration of a node (``node.json``)."""

    directory: Path
    name: str
    host: str
    port: int
    url: str
    hsm: HsmConfig | None = None

    @property
    def listen(self) -> str:
        """``HOST:PORT`` the node listens on."""
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Card:
    """A member's public card: what every other member pins."""

    name: str
    url: str
    host_pubkey: bytes
    x25519: bytes
    tls_cert: bytes

    def _signed_bytes(self) -> bytes:
        return tagged_hash(
            "tmpc/node-card/v1",
            lp_join(
                [
                    self.name.encode(),
                    self.url.encode(),
                    self.host_pubkey,
                    self.x25519,
                    self.tls_cert,
                ]
            ),
        )

    @property
    def public(self) -> NodePublic:
        """The envelope layer's view of this member."""
        return NodePublic(self.name, self.host_pubkey, self.x25519)

    @property
    def fingerprint(self) -> str:
        """SHA-256 fingerprint of the member's TLS certificate."""
        return tls.fingerprint(self.tls_cert)

    def to_json(self, signature: bytes) -> dict[str, Any]:
        """The card document with its signature."""
        return {
            "format": "tmpc-node-card",
            "version": 1,
            "name": self.name,
            "url": self.url,
            "host_pubkey": self.host_pubkey.hex(),
            "x25519": self.x25519.hex(),
            "tls_cert": self.tls_cert.decode(),
            "signature": signature.hex(),
        }

    @classmethod
    def from_json(cls, doc: Any, what: str = "node card") -> Card:
        """Parse and check a card (its signature by its own host key); raises KeystoreError."""
        try:
            if doc["format"] != "tmpc-node-card" or doc["version"] != 1:
                raise KeystoreError(f"{what}: not a tmpc node card of version 1")
            card = cls(
                check_name(doc["name"]),
                str(doc["url"]),
                bytes.fromhex(doc["host_pubkey"]),
                bytes.fromhex(doc["x25519"]),
                str(doc["tls_cert"]).encode(),
            )
            sig = bytes.fromhex(doc["signature"])
        except (KeyError, TypeError, ValueError, ParameterError):
            raise KeystoreError(f"{what} is malformed") from None
        if len(card.host_pubkey) != 33 or len(card.x25519) != 32 or len(sig) != 64:
            raise KeystoreError(f"{what}: a key has the wrong length")
        if not card.url.startswith("https://"):
            raise KeystoreError(f"{what}: the URL must be https://HOST:PORT")
        if not schnorr_verify(card._signed_bytes(), card.host_pubkey[1:], sig):
            raise KeystoreError(f"{what}: the card's signature does not verify")
        try:
            tls.fingerprint(card.tls_cert)
        except Exception:
            raise KeystoreError(f"{what}: the TLS certificate is malformed") from None
        return card


@dataclass(frozen=True)
class Operator:
    """An operator's client certificate, listed in the cluster file."""

    name: str
    cert: bytes

    @property
    def fingerprint(self) -> str:
        """SHA-256 fingerprint of the operator's certificate."""
        return tls.fingerprint(self.cert)


@dataclass(frozen=True)
class Cluster:
    """A validated cluster file: the member cards, the operators and, optionally, the signing
    policy's administrators (name -> 32-byte Ed25519 public key) and how many of them must sign
    a policy for the nodes to install it."""

    members: tuple[Card, ...]
    operators: tuple[Operator, ...]
    raw: bytes
    policy_admins: Mapping[str, bytes] = field(default_factory=dict)
    policy_quorum: int = 0

    @functools.cached_property
    def hash(self) -> bytes:
        """32-byte hash of the cluster file's canonical content, bound into every session."""
        return hashlib.sha256(self.raw).digest()

    @property
    def id(self) -> str:
        """Short hex id of the cluster (first 8 bytes of :attr:`hash`)."""
        return self.hash[:8].hex()

    def member(self, name: str) -> Card:
        """The card of member ``name``; raises :class:`ParameterError` if unknown."""
        for c in self.members:
            if c.name == name:
                return c
        raise ParameterError(f"{name!r} is not a member of this cluster")

    @property
    def names(self) -> tuple[str, ...]:
        """Member names in cluster-file order."""
        return tuple(c.name for c in self.members)


def _canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def make_cluster_file(
    cards: Sequence[Mapping[str, Any]],
    operators: Sequence[Operator],
    policy_admins: Mapping[str, bytes] | None = None,
    policy_quorum: int | None = None,
) -> bytes:
    """The content of a cluster file for the given card documents and operators, and the
    signing policy's administrators (name -> Ed25519 public key) with their quorum."""
    doc: dict[str, Any] = {
        "format": "tmpc-cluster",
        "version": 1,
        "members": list(cards),
        "operators": [{"name": o.name, "cert": o.cert.decode()} for o in operators],
    }
    if policy_admins:
        doc["policy_admins"] = [{"name": n, "key": k.hex()} for n, k in policy_admins.items()]
        doc["policy_quorum"] = policy_quorum if policy_quorum is not None else len(policy_admins)
    return json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"


def parse_cluster(data: bytes, what: str = "cluster file") -> Cluster:
    """Parse and validate a cluster file; raises :class:`KeystoreError`.

    Every card must verify; names, host keys and certificates must be distinct.
    """
    from tmpc.encoding import parse_json

    try:
        doc = parse_json(data, what)
    except Exception as exc:
        raise KeystoreError(f"{what} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != "tmpc-cluster" or doc.get("version") != 1:
        raise KeystoreError(f"{what}: not a tmpc cluster file of version 1")
    members_doc, ops_doc = doc.get("members"), doc.get("operators", [])
    if not isinstance(members_doc, list) or not 2 <= len(members_doc) <= 255:
        raise KeystoreError(f"{what}: needs between 2 and 255 members")
    if not isinstance(ops_doc, list):
        raise KeystoreError(f"{what}: operators must be a list")
    cards = tuple(Card.from_json(m, f"{what}: member card") for m in members_doc)
    for attr in ("name", "host_pubkey", "x25519", "tls_cert"):
        values = [getattr(c, attr) for c in cards]
        if len(set(values)) != len(values):
            raise KeystoreError(f"{what}: two members share a {attr.replace('_', ' ')}")
    ops = []
    for o in ops_doc:
        try:
            op = Operator(check_name(o["name"]), str(o["cert"]).encode())
            op.fingerprint  # noqa: B018 (parses the certificate)
        except Exception:
            raise KeystoreError(f"{what}: an operator entry is malformed") from None
        ops.append(op)
    admins, quorum = _policy_admins(doc, what)
    body: dict[str, Any] = {"members": members_doc, "operators": ops_doc}
    if admins:  # bound into the cluster's hash (absent: the hash of earlier cluster files)
        body.update(policy_admins=doc["policy_admins"], policy_quorum=quorum)
    return Cluster(cards, tuple(ops), _canonical(body), admins, quorum)


def _policy_admins(doc: Mapping[str, Any], what: str) -> tuple[dict[str, bytes], int]:
    """The policy administrators of a cluster file and their quorum (none: ``({}, 0)``)."""
    entries = doc.get("policy_admins")
    if entries is None:
        if "policy_quorum" in doc:
            raise KeystoreError(f"{what}: a policy quorum without policy administrators")
        return {}, 0
    admins: dict[str, bytes] = {}
    try:
        if not isinstance(entries, list) or not 1 <= len(entries) <= 64:
            raise ValueError
        for e in entries:
            name, key = check_name(str(e["name"])), bytes.fromhex(str(e["key"]))
            if len(key) != 32 or name in admins or key in admins.values():
                raise ValueError
            admins[name] = key
        quorum = doc["policy_quorum"]
        if not isinstance(quorum, int) or isinstance(quorum, bool):
            raise ValueError
    except (KeyError, TypeError, ValueError, ParameterError):
        raise KeystoreError(
            f"{what}: policy_admins must list distinct names with 32-byte Ed25519 keys (hex)"
        ) from None
    if not 1 <= quorum <= len(admins):
        raise KeystoreError(f"{what}: policy_quorum must be between 1 and {len(admins)}")
    return admins, quorum


def seal_secret(
    secret: ShareSecret,
    *,
    wallet_id: str,
    party: int,
    epoch: int,
    unlock: Unlock,
    kdf: KdfParams = keystore.DEFAULT_KDF,
) -> bytes:
    """Seal a node secret (identity or share) under the passphrase (Argon2id ``kdf``) or under
    the token-unwrapped data key; returns the file content."""
    if isinstance(unlock, SealingKey):
        return keystore.seal_share_with_key(
            secret, wallet_id=wallet_id, party=party, epoch=epoch, key=unlock
        )
    return keystore.seal_share(
        secret, wallet_id=wallet_id, party=party, epoch=epoch, passphrase=unlock, kdf=kdf
    )


def open_secret(
    data: bytes, *, wallet_id: str, party: int, epoch: int | None = None, unlock: Unlock
) -> ShareSecret:
    """Open a file of :func:`seal_secret`; raises :class:`KeystoreError` /
    :class:`~tmpc.errors.CryptoError` as :func:`keystore.open_share` does."""
    if isinstance(unlock, SealingKey):
        return keystore.open_share_with_key(
            data, key=unlock, wallet_id=wallet_id, party=party, epoch=epoch
        )
    return keystore.open_share(
        data, passphrase=unlock, wallet_id=wallet_id, party=party, epoch=epoch
    )


def tls_key_password(unlock: Unlock) -> bytes:
    """The PEM password of ``DIR/tls/key.pem``: the passphrase's UTF-8, or (token nodes) 32
    bytes derived from the data key by HKDF-SHA256, as 64 hex digits."""
    if isinstance(unlock, SealingKey):
        return unlock.derive(_TLS_PASSWORD_INFO).hex().encode()
    return unlock.encode()


def init_node(
    directory: Path,
    name: str,
    listen: str,
    secret: str | TokenLogin,
    *,
    url: str | None = None,
    kdf: KdfParams = keystore.DEFAULT_KDF,
) -> NodeConfig:
    """Create a node directory: identity key, TLS certificate, ``node.json``.

    ``secret`` is the node passphrase, or a :class:`~tmpc.node.hsm.TokenLogin`: then the
    token key (created if the token has none by its label) wraps a new data key, written to
    ``DIR/data-key.json``, which seals the node's files, and ``node.json`` records the token.
    Refuses a directory that already holds a node (never overwrites a key). ``url`` is where
    peers reach the node (default ``https://HOST:PORT`` of ``listen``).
    Raises :class:`ParameterError` / :class:`KeystoreError`.
    """
    check_name(name)
    host, port = _check_listen(listen)
    if isinstance(secret, str):
        keystore.check_passphrase(secret)
    if (directory / NODE_FILE).exists() or (directory / IDENTITY_FILE).exists():
        raise KeystoreError(f"{directory} already holds a node; refusing to overwrite it")
    if (directory / DATA_KEY_FILE).exists():
        raise KeystoreError(f"{directory} already holds a data key; refusing to overwrite it")
    url = url or f"https://{host}:{port}"
    unlock: Unlock
    wrapped: bytes | None = None
    if isinstance(secret, TokenLogin):
        unlock, wrapped = wrap_new_data_key(secret, name)
    else:
        unlock = secret
    ident = NodeIdentity.generate()
    sealed = seal_secret(
        ShareSecret(secshare=b"", hostseckey=ident.seckey),
        wallet_id=f"{_IDENTITY_WALLET}:{name}",
        party=0,
        epoch=0,
        unlock=unlock,
        kdf=kdf,
    )
    cert_pem, key_pem = tls.make_certificate(name)
    key = serialization.load_pem_private_key(key_pem, password=None)
    enc_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(tls_key_password(unlock)),
    )
    directory.mkdir(parents=True, exist_ok=True)
    if wrapped is not None:
        keystore.write_new_file(directory / DATA_KEY_FILE, wrapped, 0o644)
    keystore.write_new_file(directory / IDENTITY_FILE, sealed)
    keystore.write_new_file(directory / "tls" / "cert.pem", cert_pem, 0o644)
    keystore.write_new_file(directory / "tls" / "key.pem", enc_key)
    doc: dict[str, Any] = {
        "format": "tmpc-node",
        "version": 1,
        "name": name,
        "listen": listen,
        "url": url,
    }
    token = secret.config if isinstance(secret, TokenLogin) else None
    if token is not None:
        doc["hsm"] = token.to_json()
    keystore.write_new_file(
        directory / NODE_FILE, json.dumps(doc, indent=2).encode() + b"\n", 0o644
    )
    return NodeConfig(directory, name, host, port, url, token)


def load_config(directory: Path) -> NodeConfig:
    """Read ``node.json``; raises :class:`KeystoreError` naming what is wrong."""
    doc = keystore.read_json(directory / NODE_FILE, "node configuration")
    try:
        if doc["format"] != "tmpc-node" or doc["version"] != 1:
            raise KeystoreError(f"{directory / NODE_FILE}: not a tmpc node configuration")
        name = check_name(doc["name"])
        host, port = _check_listen(doc["listen"])
        url = str(doc["url"])
        token = HsmConfig.from_json(doc["hsm"]) if "hsm" in doc else None
    except (KeyError, TypeError, ParameterError, KeystoreError):
        raise KeystoreError(f"{directory / NODE_FILE} is malformed") from None
    return NodeConfig(directory, name, host, port, url, token)


def unlock_with_token(config: NodeConfig, pin: str) -> SealingKey:
    """Log in to the node's token with ``pin`` and have it unwrap the node's data key.

    Raises :class:`KeystoreError` (not a token node, module, token, PIN or key problems,
    ``DIR/data-key.json`` missing) or :class:`~tmpc.errors.CryptoError` (the token key does not
    open the data key)."""
    if config.hsm is None:
        raise KeystoreError(f"node {config.name} keeps its keys under a passphrase, not a token")
    data = keystore.read_limited(config.directory / DATA_KEY_FILE, "node data key", 1 << 16)
    return open_data_key(TokenLogin(config.hsm, pin), config.name, data)


def open_identity(config: NodeConfig, unlock: Unlock) -> NodeIdentity:
    """Decrypt the node's identity key with its passphrase or data key (:data:`Unlock`).

    Raises :class:`~tmpc.errors.CryptoError` on a wrong passphrase, :class:`KeystoreError`
    for a file sealed the other way (a token node's file and a passphrase, or the reverse)."""
    data = keystore.read_limited(config.directory / IDENTITY_FILE, "node identity", 1 << 16)
    secret = open_secret(
        data, unlock=unlock, wallet_id=f"{_IDENTITY_WALLET}:{config.name}", party=0
    )
    return NodeIdentity(secret.hostseckey)


def card_of(config: NodeConfig, identity: NodeIdentity) -> dict[str, Any]:
    """The node's signed card document."""
    pub = identity.public(config.name)
    cert = keystore.read_limited(config.directory / "tls" / "cert.pem", "TLS certificate", 1 << 16)
    card = Card(config.name, config.url, pub.host_pubkey, pub.x25519, cert)
    return card.to_json(schnorr_sign(card._signed_bytes(), identity.seckey))


def read_card(path: Path) -> Card:
    """Read and check a card file."""
    return Card.from_json(keystore.read_json(path, "node card"), f"node card {path}")


def load_cluster(directory: Path) -> Cluster:
    """The cluster the node joined; raises :class:`KeystoreError` if it has not joined."""
    path = directory / CLUSTER_FILE
    if not path.exists():
        raise KeystoreError(
            f"{directory} has not joined a cluster: run tmpc cluster join --dir {directory} "
            "--cluster FILE"
        )
    return parse_cluster(keystore.read_limited(path, "cluster file", 8 << 20), str(path))


def join_cluster(directory: Path, cluster_file: Path, identity: NodeIdentity) -> Cluster:
    """Install ``cluster_file`` in a node directory after checking it lists this node.

    The node's own card in the file must carry its identity keys and TLS certificate.
    Re-joining the same file is a no-op; a different file is refused (a node changes
    cluster only through a reshare). Raises :class:`KeystoreError`.
    """
    config = load_config(directory)
    data = keystore.read_limited(cluster_file, "cluster file", 8 << 20)
    cluster = parse_cluster(data, str(cluster_file))
    try:
        mine = cluster.member(config.name)
    except ParameterError:
        raise KeystoreError(f"the cluster file does not list this node ({config.name})") from None
    pub = identity.public(config.name)
    cert = keystore.read_limited(directory / "tls" / "cert.pem", "TLS certificate", 1 << 16)
    if (mine.host_pubkey, mine.x25519, mine.tls_cert) != (pub.host_pubkey, pub.x25519, cert):
        raise KeystoreError(f"the cluster file's card for {config.name} is not this node's")
    target = directory / CLUSTER_FILE
    if target.exists():
        if parse_cluster(keystore.read_limited(target, "cluster file", 8 << 20)).hash == (
            cluster.hash
        ):
            return cluster
        raise KeystoreError(f"{directory} already joined another cluster; refusing to replace it")
    keystore.write_new_file(target, data, 0o644)
    return cluster


def make_operator(name: str) -> tuple[Operator, bytes]:
    """A new operator credential: the :class:`Operator` entry and its private key PEM."""
    cert, key = tls.make_certificate(check_name(name))
    return Operator(name, cert), key
