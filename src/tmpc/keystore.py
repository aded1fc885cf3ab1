"""Key shares at rest: one encrypted file per party, the public wallet record beside it.

A share file is JSON with a clear-text header and an AEAD ciphertext::

    {"format": "tmpc-share", "version": 1, "wallet_id": "...", "party": 3, "epoch": 0,
     "kdf": {"alg": "argon2id", "salt": "...", "iterations": 3, "lanes": 4, "memory_kib": 65536},
     "aead": "chacha20poly1305", "nonce": "...", "ciphertext": "..."}

The key is Argon2id(passphrase, salt) (RFC 9106's second recommended parameter set by default);
the AEAD's associated data is the canonical encoding of the whole header, so a file edited in any
field, or another party's or wallet's file swapped in, fails to open with one opaque error.
Writes are atomic (temporary file, fsync, rename) and never replace an existing file.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from tmpc.errors import CryptoError, KeystoreError

__all__ = [
    "DEFAULT_KDF",
    "FAST_KDF_FOR_TESTS",
    "KdfParams",
    "ShareSecret",
    "open_share",
    "read_json",
    "seal_share",
    "share_path",
    "write_new_file",
]

FORMAT = "tmpc-share"
VERSION = 1


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost parameters stored in each share file's header."""

    iterations: int = 3
    lanes: int = 4
    memory_kib: int = 65536

    def check(self, *, sealing: bool = False, allow_weak: bool = False) -> None:
        """Refuse parameters too weak to protect a key share, or too costly to open.

        Opening caps the cost at 4x :data:`DEFAULT_KDF` (the header is read before the tag
        is checked, so a swapped file must not make us allocate gigabytes). Sealing also
        requires at least OWASP's Argon2id minimum (19 MiB, 2 passes) unless ``allow_weak``.
        """
        if not (1 <= self.iterations <= 12 and 1 <= self.lanes <= 16):
            raise KeystoreError("share file: Argon2id iterations or lanes out of range")
        if not (8 * self.lanes <= self.memory_kib <= 4 * 65536):
            raise KeystoreError("share file: Argon2id memory out of range")
        if sealing and not allow_weak and (self.memory_kib < 19 * 1024 or self.iterations < 2):
            raise KeystoreError("Argon2id parameters too weak to protect a key share")


DEFAULT_KDF = KdfParams()
#: Cheap parameters so that test suites can create many files; never use for real shares.
FAST_KDF_FOR_TESTS = KdfParams(iterations=1, lanes=1, memory_kib=64)


@dataclass(frozen=True)
class ShareSecret:
    """The secret content of a share file (never printed: fields are ``repr=False``).

    ``pairwise`` (ECDSA wallets) is the party's serialised DKLs23 pairwise material;
    ``store_key`` (32 bytes, ECDSA wallets) encrypts the party's presignatures at rest.
    """

    secshare: bytes = field(repr=False)
    hostseckey: bytes = field(repr=False)
    pairwise: bytes | None = field(default=None, repr=False)
    store_key: bytes | None = field(default=None, repr=False)

    def to_plaintext(self) -> bytes:
        """Canonical plaintext encoding (JSON with hex fields)."""
        doc = {"secshare": self.secshare.hex(), "hostseckey": self.hostseckey.hex()}
        if self.pairwise is not None:
            doc["pairwise"] = self.pairwise.hex()
        if self.store_key is not None:
            doc["store_key"] = self.store_key.hex()
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def from_plaintext(cls, data: bytes) -> ShareSecret:
        """Parse :meth:`to_plaintext` output; a malformed plaintext is a corrupt file."""
        try:
            obj = json.loads(data)
            pairwise = obj.get("pairwise")
            store_key = obj.get("store_key")
            secret = cls(
                bytes.fromhex(obj["secshare"]),
                bytes.fromhex(obj["hostseckey"]),
                bytes.fromhex(pairwise) if pairwise is not None else None,
                bytes.fromhex(store_key) if store_key is not None else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            raise KeystoreError("share file: decrypted content is malformed") from None
        if secret.store_key is not None and len(secret.store_key) != 32:
            raise KeystoreError("share file: decrypted content is malformed")
        return secret


def share_path(directory: Path, party: int) -> Path:
    """The share file of ``party`` inside a wallet directory."""
    return directory / f"party-{party}.share"


def _header_ad(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def _derive(passphrase: str, salt: bytes, kdf: KdfParams) -> bytes:
    return Argon2id(
        salt=salt,
        length=32,
        iterations=kdf.iterations,
        lanes=kdf.lanes,
        memory_cost=kdf.memory_kib,
    ).derive(passphrase.encode())


def seal_share(
    secret: ShareSecret,
    *,
    wallet_id: str,
    party: int,
    epoch: int,
    passphrase: str,
    kdf: KdfParams = DEFAULT_KDF,
    insecure_kdf_for_tests: bool = False,
) -> bytes:
    """Encrypt a share under ``passphrase``; returns the file content (JSON bytes).

    The passphrase **must not** be empty. ``kdf`` below 19 MiB / 2 passes is refused unless
    ``insecure_kdf_for_tests`` (test suites only: such a file falls to offline guessing).
    """
    if not passphrase:
        raise KeystoreError("an empty passphrase cannot protect a key share")
    kdf.check(sealing=True, allow_weak=insecure_kdf_for_tests)
    salt = secrets.token_bytes(16)
    nonce = secrets.token_bytes(12)
    header: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "wallet_id": wallet_id,
        "party": party,
        "epoch": epoch,
        "kdf": {
            "alg": "argon2id",
            "salt": salt.hex(),
            "iterations": kdf.iterations,
            "lanes": kdf.lanes,
            "memory_kib": kdf.memory_kib,
        },
        "aead": "chacha20poly1305",
    }
    key = _derive(passphrase, salt, kdf)
    ct = ChaCha20Poly1305(key).encrypt(nonce, secret.to_plaintext(), _header_ad(header))
    doc = dict(header, nonce=nonce.hex(), ciphertext=ct.hex())
    return json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"


def open_share(
    data: bytes, *, passphrase: str, wallet_id: str, party: int, epoch: int | None = None
) -> ShareSecret:
    """Decrypt a share file's content.

    Raises :class:`KeystoreError` if the file is not a tmpc share file or belongs to another
    wallet, party or epoch, and :class:`CryptoError` ("wrong passphrase or tampered share file")
    if authentication fails; the two causes are deliberately indistinguishable.
    """
    try:
        doc = json.loads(data)
        header = {
            k: doc[k] for k in ("format", "version", "wallet_id", "party", "epoch", "kdf", "aead")
        }
        nonce = bytes.fromhex(doc["nonce"])
        ct = bytes.fromhex(doc["ciphertext"])
        kdf_doc = header["kdf"]
        salt = bytes.fromhex(kdf_doc["salt"])
        kdf = KdfParams(
            int(kdf_doc["iterations"]), int(kdf_doc["lanes"]), int(kdf_doc["memory_kib"])
        )
    except (ValueError, KeyError, TypeError):
        raise KeystoreError("not a readable tmpc share file") from None
    if header["format"] != FORMAT or header["version"] != VERSION:
        raise KeystoreError("not a tmpc share file of a supported version")
    if kdf_doc.get("alg") != "argon2id" or header["aead"] != "chacha20poly1305":
        raise KeystoreError("share file uses an unsupported KDF or cipher")
    if header["wallet_id"] != wallet_id:
        raise KeystoreError("share file belongs to another wallet")
    if header["party"] != party:
        raise KeystoreError(f"share file is not party {party}'s")
    if epoch is not None and header["epoch"] != epoch:
        raise KeystoreError("share file is from another key epoch")
    if len(nonce) != 12 or len(salt) != 16:
        raise KeystoreError("share file header is malformed")
    kdf.check()
    key = _derive(passphrase, salt, kdf)
    try:
        plaintext = ChaCha20Poly1305(key).decrypt(nonce, ct, _header_ad(header))
    except InvalidTag:
        raise CryptoError("wrong passphrase or tampered share file") from None
    return ShareSecret.from_plaintext(plaintext)


def write_new_file(path: Path, content: bytes, mode: int = 0o600) -> None:
    """Atomically create ``path`` with ``content``; never replaces an existing file.

    Writes a temporary file in the same directory, fsyncs it, then links it into place
    (``os.link`` fails if the target exists), so a crash leaves either nothing or the whole file.
    """
    if path.exists():
        raise KeystoreError(f"{path} already exists; refusing to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise KeystoreError(f"{path} already exists; refusing to overwrite it") from None
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_json(path: Path, what: str) -> Any:
    """Read a JSON file or raise :class:`KeystoreError` naming ``what`` is wrong with it."""
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise KeystoreError(f"{what} not found: {path}") from None
    except (OSError, ValueError):
        raise KeystoreError(f"{what} is unreadable or not JSON: {path}") from None
