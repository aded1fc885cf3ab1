"""Key shares at rest: one encrypted file per party, the public wallet record beside it.

A share file is JSON with a clear-text header and an AEAD ciphertext::

    {"format": "tmpc-share", "version": 2, "wallet_id": "...", "party": 3, "epoch": 0,
     "kdf": {"alg": "argon2id", "salt": "...", "iterations": 3, "lanes": 4, "memory_kib": 65536},
     "passphrase_form": "NFC", "aead": "chacha20poly1305", "nonce": "...", "ciphertext": "..."}

The key is Argon2id(passphrase, salt) (RFC 9106's second recommended parameter set by default);
the AEAD's associated data is the canonical encoding of the whole header, so a file edited in any
field, or another party's or wallet's file swapped in, fails to open with one opaque error.
Writes are atomic (temporary file, fsync, rename) and never replace an existing file.

Passphrases are Unicode text and must be valid UTF-8. The same passphrase can arrive in two
byte forms (a macOS keyboard gives "e" + combining accent, NFD, where Linux gives one
precomposed character, NFC), so version 2 files derive the key from the UTF-8 of the passphrase
normalised to NFC (``"passphrase_form": "NFC"``, authenticated with the rest of the header).
Version 1 files (no ``passphrase_form``) were sealed with the passphrase exactly as typed; they
still open, trying the NFC form, then the form as given, then the NFD form.

A party node whose secrets are guarded by a PKCS#11 token (:mod:`tmpc.node.hsm`) seals its files
under a 32-byte **data key** instead of a passphrase (:func:`seal_share_with_key`): same
format, version 2, with ``"kdf": {"alg": "data-key", "key_id": "...", "salt": "..."}`` and
no ``passphrase_form``. The per-file key is HKDF-SHA256(data key, salt); ``key_id`` (8 bytes,
hex) names the data key without revealing it, so a file of another node says so. Such a file
never opens with a passphrase.
"""

from __future__ import annotations

import json
import os
import secrets
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tmpc.encoding import JSON_MAX_BYTES, parse_json
from tmpc.errors import CryptoError, DecodeError, KeystoreError
from tmpc.state.store import fsync_dir

__all__ = [
    "DEFAULT_KDF",
    "FAST_KDF_FOR_TESTS",
    "MAX_SHARE_FILE_BYTES",
    "KdfParams",
    "SealingKey",
    "ShareSecret",
    "check_passphrase",
    "open_share",
    "open_share_with_key",
    "passphrase_key",
    "read_json",
    "read_limited",
    "replace_file",
    "retire_share_files",
    "seal_share",
    "seal_share_with_key",
    "share_files",
    "share_path",
    "write_new_file",
]

FORMAT = "tmpc-share"
#: Version written by :func:`seal_share`; version 1 (passphrase not normalised) still opens.
VERSION = 2
_READABLE_VERSIONS = (1, 2)
#: How version 2 files turn the passphrase into bytes: UTF-8 of its NFC normal form.
PASSPHRASE_FORM = "NFC"  # noqa: S105 (a Unicode normal form, not a password)
#: Largest share file :func:`open_share` reads (an ECDSA share of a 255-party wallet is ~13 MB).
MAX_SHARE_FILE_BYTES = 64 << 20
#: ``kdf.alg`` of a file sealed under a data key (:func:`seal_share_with_key`).
DATA_KEY_ALG = "data-key"
_DATA_KEY_INFO = b"tmpc/share/data-key/v1"
_DATA_KEY_ID_INFO = b"tmpc/share/data-key-id/v1"


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
            obj = parse_json(data, "share file content", max_bytes=MAX_SHARE_FILE_BYTES)
            pairwise = obj.get("pairwise")
            store_key = obj.get("store_key")
            secret = cls(
                bytes.fromhex(obj["secshare"]),
                bytes.fromhex(obj["hostseckey"]),
                bytes.fromhex(pairwise) if pairwise is not None else None,
                bytes.fromhex(store_key) if store_key is not None else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError, DecodeError):
            raise KeystoreError("share file: decrypted content is malformed") from None
        if secret.store_key is not None and len(secret.store_key) != 32:
            raise KeystoreError("share file: decrypted content is malformed")
        return secret


@dataclass(frozen=True)
class SealingKey:
    """A 32-byte data key that seals share files directly, with no passphrase.

    It comes from outside tmpc's files: a party node's PKCS#11 token unwraps it
    (:mod:`tmpc.node.hsm`). ``key`` is never printed (``repr=False``); :attr:`key_id` names it.
    """

    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key, bytes) or len(self.key) != 32:
            raise KeystoreError("a data key is 32 bytes")

    @property
    def key_id(self) -> str:
        """8 bytes (16 hex digits) that name the key: HKDF-SHA256 of it, its own info string."""
        return HKDF(hashes.SHA256(), 8, None, _DATA_KEY_ID_INFO).derive(self.key).hex()

    def derive(self, info: bytes, salt: bytes | None = None) -> bytes:
        """A 32-byte subkey for one purpose: HKDF-SHA256(key, ``salt``, ``info``)."""
        return HKDF(hashes.SHA256(), 32, salt, info).derive(self.key)


def _share_file_entries(directory: Path) -> list[tuple[int, int, Path]]:
    """``(party, epoch, path)`` of every file named as :func:`share_path` names them."""
    out = []
    for p in directory.glob("party-*.share"):
        stem = p.name[len("party-") : -len(".share")]
        party_text, _, epoch_text = stem.partition(".e")
        if not (party_text.isascii() and party_text.isdigit()) or party_text.startswith("0"):
            continue
        if epoch_text and not (
            epoch_text.isascii() and epoch_text.isdigit() and not epoch_text.startswith("0")
        ):
            continue
        out.append((int(party_text), int(epoch_text) if epoch_text else 0, p))
    return out


def share_files(directory: Path, epoch: int | None = None) -> dict[int, Path]:
    """The share files in a wallet directory by party (:func:`share_path` names): those of
    ``epoch``, or with None of every epoch (a party with files of several epochs is listed
    by its newest). Other files are ignored."""
    found: dict[int, tuple[int, Path]] = {}
    for party, e, p in _share_file_entries(directory):
        if epoch is not None and e != epoch:
            continue
        if party not in found or found[party][0] < e:
            found[party] = (e, p)
    return {i: found[i][1] for i in sorted(found)}


def retire_share_files(directory: Path, epoch: int) -> list[Path]:
    """Delete the share files of every epoch but ``epoch`` in a wallet directory (the
    previous epoch's after a switch, or files staged by a rotation interrupted before its
    switch), then fsync the directory. Returns the paths deleted."""
    removed = []
    for _party, e, p in _share_file_entries(directory):
        if e != epoch:
            p.unlink(missing_ok=True)
            removed.append(p)
    if removed:
        fsync_dir(directory)
    return removed


def replace_file(path: Path, content: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` atomically: a new file fsync'd beside it, renamed over it, the
    directory fsync'd. A crash leaves the old file or the new one, never a mix."""
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    try:
        write_new_file(tmp, content, mode=mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def share_path(directory: Path, party: int, epoch: int = 0) -> Path:
    """The share file of ``party`` at ``epoch`` inside a wallet directory: ``party-I.share``
    for the DKG's shares, ``party-I.eK.share`` after the K-th refresh (so a rotation writes
    the next epoch's files beside the current ones and switches by replacing wallet.json)."""
    if epoch == 0:
        return directory / f"party-{party}.share"
    return directory / f"party-{party}.e{epoch}.share"


def _new_header(wallet_id: str, party: int, epoch: int, kdf: dict[str, Any]) -> dict[str, Any]:
    """The clear header of a new (version 2) share file; the AEAD authenticates all of it."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "wallet_id": wallet_id,
        "party": party,
        "epoch": epoch,
        "kdf": kdf,
        "aead": "chacha20poly1305",
    }


def _header_ad(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def check_passphrase(passphrase: str) -> None:
    """Refuse a passphrase that cannot protect a share: not text, empty, or not valid UTF-8.

    A passphrase read from the environment or a terminal with bytes that are not UTF-8 arrives
    as text with lone surrogates (Python's ``surrogateescape``); no UTF-8 encoding of it
    exists, so it is refused here instead of failing deep inside the key derivation.

    Raises:
        KeystoreError: with a message that never quotes the passphrase.
    """
    if not isinstance(passphrase, str):
        raise KeystoreError("the passphrase must be text")
    if not passphrase:
        raise KeystoreError("an empty passphrase cannot protect a key share")
    try:
        passphrase.encode("utf-8")
    except UnicodeEncodeError:
        raise KeystoreError(
            "passphrase is not valid UTF-8 (it holds bytes that are not UTF-8 text)"
        ) from None


def _passphrase_candidates(passphrase: str, version: int) -> list[bytes]:
    """The byte strings to try as the passphrase of a file of ``version``, in order."""
    check_passphrase(passphrase)
    nfc = unicodedata.normalize("NFC", passphrase)
    if version >= 2:
        return [nfc.encode("utf-8")]
    # Version 1 sealed the passphrase as typed: try the canonical form, then the typed one,
    # then the decomposed one (typed on another system). Equal forms are tried once.
    forms = [nfc, passphrase, unicodedata.normalize("NFD", passphrase)]
    return [f.encode("utf-8") for i, f in enumerate(forms) if f not in forms[:i]]


def _derive(passphrase: bytes, salt: bytes, kdf: KdfParams) -> bytes:
    return Argon2id(
        salt=salt,
        length=32,
        iterations=kdf.iterations,
        lanes=kdf.lanes,
        memory_cost=kdf.memory_kib,
    ).derive(passphrase)


def passphrase_key(passphrase: str, salt: bytes, kdf: KdfParams) -> bytes:
    """The 32-byte key Argon2id(``kdf``) derives from ``passphrase`` and ``salt``, exactly as
    version 2 share files derive theirs (UTF-8 of the passphrase's NFC normal form).

    For other files sealed the share-file way (share backups, :mod:`tmpc.state.backup`). The
    caller checks ``kdf`` (:meth:`KdfParams.check`) before deriving from a file's header.

    Raises:
        KeystoreError: the passphrase is empty or not valid UTF-8 (never quoted).
    """
    (pw,) = _passphrase_candidates(passphrase, VERSION)
    return _derive(pw, salt, kdf)


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

    The passphrase **must not** be empty and must be valid UTF-8; its NFC normal form is used
    (see the module docs). ``kdf`` below 19 MiB / 2 passes is refused unless
    ``insecure_kdf_for_tests`` (test suites only: such a file falls to offline guessing).
    """
    (pw,) = _passphrase_candidates(passphrase, VERSION)
    kdf.check(sealing=True, allow_weak=insecure_kdf_for_tests)
    salt = secrets.token_bytes(16)
    nonce = secrets.token_bytes(12)
    header = _new_header(
        wallet_id,
        party,
        epoch,
        {
            "alg": "argon2id",
            "salt": salt.hex(),
            "iterations": kdf.iterations,
            "lanes": kdf.lanes,
            "memory_kib": kdf.memory_kib,
        },
    )
    header["passphrase_form"] = PASSPHRASE_FORM
    key = _derive(pw, salt, kdf)
    ct = ChaCha20Poly1305(key).encrypt(nonce, secret.to_plaintext(), _header_ad(header))
    doc = dict(header, nonce=nonce.hex(), ciphertext=ct.hex())
    return json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"


def open_share(
    data: bytes, *, passphrase: str, wallet_id: str, party: int, epoch: int | None = None
) -> ShareSecret:
    """Decrypt a share file's content (at most :data:`MAX_SHARE_FILE_BYTES`).

    Opens version 2 files (passphrase normalised to NFC) and version 1 files (passphrase as
    typed; see the module docs for the forms tried).

    Raises :class:`KeystoreError` if the file is not a tmpc share file (including JSON that is
    too large or nested too deep), belongs to another wallet, party or epoch, or the passphrase
    is not valid UTF-8; and :class:`CryptoError` ("wrong passphrase or tampered share file") if
    authentication fails; the two causes of the latter are deliberately indistinguishable.
    """
    check_passphrase(passphrase)
    try:
        doc = parse_json(data, "share file", max_bytes=MAX_SHARE_FILE_BYTES)
    except DecodeError as exc:
        raise KeystoreError(f"not a readable tmpc share file ({exc})") from None
    if isinstance(doc, dict) and _is_data_key_file(doc):
        raise KeystoreError(
            "share file is sealed under a data key that a PKCS#11 token guards, not a "
            "passphrase: it opens only with its node's token"
        )
    try:
        version = doc["version"]
        if type(version) is not int or version not in _READABLE_VERSIONS:
            raise KeystoreError("not a tmpc share file of a supported version")
        keys = ["format", "version", "wallet_id", "party", "epoch", "kdf", "aead"]
        if version >= 2:
            keys.append("passphrase_form")
        header = {k: doc[k] for k in keys}
        nonce = bytes.fromhex(doc["nonce"])
        ct = bytes.fromhex(doc["ciphertext"])
        kdf_doc = header["kdf"]
        salt = bytes.fromhex(kdf_doc["salt"])
        kdf = KdfParams(
            int(kdf_doc["iterations"]), int(kdf_doc["lanes"]), int(kdf_doc["memory_kib"])
        )
    except (ValueError, KeyError, TypeError, OverflowError):
        raise KeystoreError("not a readable tmpc share file") from None
    if header["format"] != FORMAT:
        raise KeystoreError("not a tmpc share file of a supported version")
    if version >= 2 and header["passphrase_form"] != PASSPHRASE_FORM:
        raise KeystoreError("share file uses an unsupported passphrase form")
    if kdf_doc.get("alg") != "argon2id" or header["aead"] != "chacha20poly1305":
        raise KeystoreError("share file uses an unsupported KDF or cipher")
    _check_binding(header, wallet_id, party, epoch)
    if len(nonce) != 12 or len(salt) != 16:
        raise KeystoreError("share file header is malformed")
    kdf.check()
    ad = _header_ad(header)
    for pw in _passphrase_candidates(passphrase, version):
        try:
            plaintext = ChaCha20Poly1305(_derive(pw, salt, kdf)).decrypt(nonce, ct, ad)
        except InvalidTag:
            continue
        return ShareSecret.from_plaintext(plaintext)
    raise CryptoError("wrong passphrase or tampered share file")


def _check_binding(header: dict[str, Any], wallet_id: str, party: int, epoch: int | None) -> None:
    """The header names the expected wallet, party and (if given) key epoch."""
    if header["wallet_id"] != wallet_id:
        raise KeystoreError("share file belongs to another wallet")
    if header["party"] != party:
        raise KeystoreError(f"share file is not party {party}'s")
    if epoch is not None and header["epoch"] != epoch:
        raise KeystoreError("share file is from another key epoch")


def _is_data_key_file(doc: dict[str, Any]) -> bool:
    kdf = doc.get("kdf")
    return isinstance(kdf, dict) and kdf.get("alg") == DATA_KEY_ALG


def seal_share_with_key(
    secret: ShareSecret, *, wallet_id: str, party: int, epoch: int, key: SealingKey
) -> bytes:
    """Encrypt a share under a data key (no passphrase); returns the file content (JSON bytes).

    The per-file key is HKDF-SHA256(``key``, a random 16-byte salt); the header (with the
    salt and ``key.key_id``) is the AEAD's associated data, as in :func:`seal_share`.
    """
    salt = secrets.token_bytes(16)
    nonce = secrets.token_bytes(12)
    header = _new_header(
        wallet_id, party, epoch, {"alg": DATA_KEY_ALG, "key_id": key.key_id, "salt": salt.hex()}
    )
    file_key = key.derive(_DATA_KEY_INFO, salt)
    ct = ChaCha20Poly1305(file_key).encrypt(nonce, secret.to_plaintext(), _header_ad(header))
    doc = dict(header, nonce=nonce.hex(), ciphertext=ct.hex())
    return json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"


def open_share_with_key(
    data: bytes, *, key: SealingKey, wallet_id: str, party: int, epoch: int | None = None
) -> ShareSecret:
    """Decrypt a file of :func:`seal_share_with_key` (at most :data:`MAX_SHARE_FILE_BYTES`).

    Raises :class:`KeystoreError` if the file is not such a share file (a passphrase-sealed
    file included), belongs to another wallet, party or epoch, or was sealed under another
    data key (its ``key_id`` differs); and :class:`CryptoError` ("tampered share file") if
    authentication fails.
    """
    try:
        doc = parse_json(data, "share file", max_bytes=MAX_SHARE_FILE_BYTES)
    except DecodeError as exc:
        raise KeystoreError(f"not a readable tmpc share file ({exc})") from None
    if isinstance(doc, dict) and not _is_data_key_file(doc) and "kdf" in doc:
        raise KeystoreError("share file is sealed under a passphrase, not this node's data key")
    try:
        header = {
            k: doc[k] for k in ("format", "version", "wallet_id", "party", "epoch", "kdf", "aead")
        }
        kdf_doc = header["kdf"]
        if set(kdf_doc) != {"alg", "key_id", "salt"}:
            raise KeystoreError("share file header is malformed")
        salt = bytes.fromhex(kdf_doc["salt"])
        key_id = str(kdf_doc["key_id"])
        nonce = bytes.fromhex(doc["nonce"])
        ct = bytes.fromhex(doc["ciphertext"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise KeystoreError("not a readable tmpc share file") from None
    if header["format"] != FORMAT or header["version"] != VERSION:
        raise KeystoreError("not a tmpc share file of a supported version")
    if header["aead"] != "chacha20poly1305":
        raise KeystoreError("share file uses an unsupported cipher")
    _check_binding(header, wallet_id, party, epoch)
    if len(nonce) != 12 or len(salt) != 16:
        raise KeystoreError("share file header is malformed")
    if key_id != key.key_id:
        raise KeystoreError("share file is sealed under another data key (another node's?)")
    try:
        plaintext = ChaCha20Poly1305(key.derive(_DATA_KEY_INFO, salt)).decrypt(
            nonce, ct, _header_ad(header)
        )
    except InvalidTag:
        raise CryptoError("tampered share file") from None
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
    fsync_dir(path.parent)


def read_limited(path: Path, what: str, max_bytes: int) -> bytes:
    """Read at most ``max_bytes`` of the file ``path``; a larger file is refused unread.

    Raises:
        KeystoreError: ``path`` is missing, is a directory, or is larger than ``max_bytes``.
        OSError: any other failure of the file system (permission denied, I/O error): a local
            system failure, not a problem with the file's content.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except (FileNotFoundError, NotADirectoryError):
        raise KeystoreError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise KeystoreError(f"{what} is a directory, not a file: {path}") from None
    if len(data) > max_bytes:
        raise KeystoreError(f"{what} is larger than {max_bytes} bytes: {path}")
    return data


def read_json(path: Path, what: str, *, max_bytes: int = JSON_MAX_BYTES) -> Any:
    """Read a JSON file through :func:`~tmpc.encoding.parse_json` (size and nesting limits).

    Raises:
        KeystoreError: naming ``what`` and ``path``: missing, too large, not UTF-8, nested too
            deep, or not JSON.
        OSError: the file system failed (see :func:`read_limited`).
    """
    data = read_limited(path, what, max_bytes)
    try:
        return parse_json(data, what, max_bytes=max_bytes)
    except DecodeError as exc:
        raise KeystoreError(f"{exc}: {path}") from None
