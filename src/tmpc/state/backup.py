"""Share backups: one party's key share exported for custodians, checked, and brought back.

A backup holds everything needed to restore a working share (:class:`BackupPayload`): the
party's :class:`~tmpc.state.keystore.ShareSecret` (Shamir share, host secret key and, for
``ecdsa-secp256k1``, the DKLs23 pairwise material and the presignature store key), the public
wallet record (so that a backup can be checked with nothing else at hand), and its labels
(:class:`BackupLabels`): a random backup id, the wallet id, scheme, party id, key epoch and
the wallet's public key.

Three protections, one JSON file format (``"format": "tmpc-backup"``)::

    protection  files                                 opened with
    ----------  ------------------------------------  --------------------------------------
    age         one file: the payload encrypted to    the age X25519 identity of any one
                custodians' age public keys (age v1,  recipient
                ASCII armor, through pyrage)
    passphrase  one file: the payload under           the backup passphrase
                ChaCha20-Poly1305, key Argon2id of
                the passphrase (the share-file way)
    slip39      one file per custodian: its SLIP-39   any K of the M mnemonics
                mnemonic and the same ciphertext

Every file starts with the clear-text labels and the protection's parameters (the *header*)::

    {"format": "tmpc-backup", "version": 1, "backup_id": "<32 hex>", "wallet_id": "<32 hex>",
     "scheme": "...", "party": 2, "epoch": 0, "public_key": "<hex>", "protection": "...", ...}

- ``passphrase`` adds ``kdf`` (as in share files), ``passphrase_form`` (``"NFC"``), ``aead``
  (``"chacha20poly1305"``), then ``nonce`` and ``ciphertext`` (hex). The key is
  :func:`tmpc.state.keystore.passphrase_key`; the associated data is the canonical encoding
  of the header, so no label can be edited.
- ``slip39`` adds ``split`` (``{"threshold": K, "shares": M}``) and ``aead``, then ``nonce``
  and ``ciphertext`` (the same in all M files: the payload under a fresh random 32-byte key,
  header as associated data), ``custodian`` (1..M) and ``mnemonic`` (33 words: that key split
  by SLIP-39, K of M, no SLIP-39 passphrase).
- ``age`` adds ``recipients`` (the age public keys it was encrypted to, for people) and
  ``age`` (the armored age file). age has no associated data: the labels are repeated inside
  the payload and must match the header once decrypted.

The payload itself (the plaintext; it never touches a disk) is canonical JSON::

    {"format": "tmpc-backup-payload", "version": 1, <the labels>, "wallet": <wallet.json>,
     "share": {"secshare": "<hex>", "hostseckey": "<hex>", "pairwise"?: ..., "store_key"?: ...}}

Errors never quote a secret (a passphrase, a mnemonic or one of its words, a key): a bad
mnemonic is named by its file and the word's position.
"""

from __future__ import annotations

import io
import json
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pyrage
import segno
import shamir_mnemonic
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from pyrage import x25519
from shamir_mnemonic.wordlist import WORD_INDEX_MAP

from tmpc import schemes
from tmpc.encoding import parse_json
from tmpc.errors import CryptoError, DecodeError, KeystoreError, ParameterError, TmpcError
from tmpc.protocols.dkg import chilldkg
from tmpc.state import keystore
from tmpc.state.keystore import (
    DEFAULT_KDF,
    MAX_SHARE_FILE_BYTES,
    KdfParams,
    ShareSecret,
)

__all__ = [
    "FORMAT",
    "MAX_BACKUP_FILE_BYTES",
    "MAX_SPLIT_SHARES",
    "MNEMONIC_WORDS",
    "PROTECTIONS",
    "BackupLabels",
    "BackupPayload",
    "CustodianShare",
    "Installed",
    "SealedBackup",
    "ShareSealing",
    "check_epoch",
    "install_share",
    "newest_installed_epoch",
    "parse_age_identities",
    "read_backup",
    "read_share",
    "record_epoch",
    "seal_to_age",
    "seal_with_passphrase",
    "split_to_mnemonics",
    "verify_share",
]

FORMAT: Final = "tmpc-backup"
VERSION: Final = 1
PAYLOAD_FORMAT: Final = "tmpc-backup-payload"
#: The protections a backup can have (the ``protection`` field).
PROTECTIONS: Final = ("age", "passphrase", "slip39")
#: Largest backup file read: the payload holds a share file's content, hex-encoded again.
MAX_BACKUP_FILE_BYTES: Final = 4 * MAX_SHARE_FILE_BYTES
#: Largest plain-text mnemonic file read (33 words need about 300 bytes).
MAX_MNEMONIC_FILE_BYTES: Final = 4096
#: SLIP-39 allows at most 16 shares in a group.
MAX_SPLIT_SHARES: Final = 16
#: Words of the SLIP-39 mnemonic of a 256-bit secret (the 32-byte key of a split).
MNEMONIC_WORDS: Final = 33

_AEAD: Final = "chacha20poly1305"
_HEX32: Final = re.compile(r"^[0-9a-f]{32}$")
_HEX: Final = re.compile(r"^(?:[0-9a-f]{2})+$")
_LABELS: Final = ("backup_id", "wallet_id", "scheme", "party", "epoch", "public_key")
#: Header fields that are not labels, per protection (everything else in a file is body).
_PARAMS: Final = {
    "age": ("recipients",),
    "passphrase": ("kdf", "passphrase_form", "aead"),
    "slip39": ("split", "aead"),
}


def record_epoch(record: schemes.WalletRecord) -> int:
    """The key epoch of ``record``: 0 until shares are rotated.

    Every epoch this module compares is read here, so that share rotation supplies it in one
    place.
    """
    return record.epoch


def check_epoch(installed: int, backup: int) -> None:
    """Refuse to bring back a share of an epoch older than the one installed.

    A rotation retires the shares of earlier epochs; one that came back would let its holder
    combine it with other retired shares. Raises :class:`KeystoreError`.
    """
    if backup < installed:
        raise KeystoreError(
            f"the backup is of key epoch {backup}, older than the installed epoch {installed}: "
            "a share of a retired epoch must never come back"
        )
    if backup > installed:
        raise KeystoreError(
            f"the installed wallet record is of key epoch {installed}, older than the backup's "
            f"epoch {backup}: restore into a new directory"
        )


def _canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class BackupLabels:
    """What a backup is of, in clear in every backup file and repeated inside the payload."""

    #: 32 hex digits, random: the files of one backup share it.
    backup_id: str
    wallet_id: str
    scheme: str
    party: int
    epoch: int
    #: The wallet's public key (hex), for people.
    public_key: str

    def to_json(self) -> dict[str, Any]:
        """The labels as JSON fields."""
        return {k: getattr(self, k) for k in _LABELS}

    @classmethod
    def from_json(cls, doc: Any, what: str) -> BackupLabels:
        """Read and check the labels of ``doc``; raises :class:`KeystoreError` naming ``what``."""
        try:
            labels = cls(*(doc[k] for k in _LABELS))
        except (KeyError, TypeError):
            raise KeystoreError(f"{what}: not a readable tmpc backup") from None
        if not (
            isinstance(labels.backup_id, str)
            and _HEX32.match(labels.backup_id)
            and isinstance(labels.wallet_id, str)
            and _HEX32.match(labels.wallet_id)
            and isinstance(labels.scheme, str)
            and labels.scheme in schemes.SCHEMES
            and type(labels.party) is int
            and 1 <= labels.party <= schemes.MAX_PARTIES
            and type(labels.epoch) is int
            and 0 <= labels.epoch < 1 << 64
            and isinstance(labels.public_key, str)
            and _HEX.match(labels.public_key)
        ):
            raise KeystoreError(f"{what}: the backup's labels are malformed")
        return labels


@dataclass(frozen=True)
class BackupPayload:
    """The content of a backup: one party's secret and its wallet's public record."""

    labels: BackupLabels
    record: schemes.WalletRecord
    secret: ShareSecret = field(repr=False)

    @classmethod
    def make(
        cls, record: schemes.WalletRecord, party: int, secret: ShareSecret, backup_id: str
    ) -> BackupPayload:
        """The payload of party ``party``'s ``secret`` in ``record``'s wallet.

        ``backup_id`` is 32 hex digits (:func:`read_share` draws it from ``secrets``).
        """
        if party not in record.party_ids:
            raise ParameterError(f"party {party} is not a party of this wallet")
        labels = BackupLabels(
            backup_id,
            record.wallet_id,
            record.scheme,
            party,
            record_epoch(record),
            record.public_key.hex(),
        )
        return cls(labels, record, secret)

    def to_bytes(self) -> bytes:
        """The canonical plaintext (see the module docs). **Secret**: never write it out."""
        doc = {
            "format": PAYLOAD_FORMAT,
            "version": VERSION,
            **self.labels.to_json(),
            "wallet": self.record.to_json(),
            "share": json.loads(self.secret.to_plaintext()),
        }
        return _canonical(doc)

    @classmethod
    def from_bytes(cls, data: bytes) -> BackupPayload:
        """Parse a decrypted payload; checks the wallet record (its DKG certificate, its id)
        and that the labels are the record's. Raises :class:`KeystoreError` (never quoting
        the content)."""
        try:
            doc = parse_json(data, "backup content", max_bytes=MAX_BACKUP_FILE_BYTES)
        except DecodeError:
            raise KeystoreError("backup: the decrypted content is malformed") from None
        if not isinstance(doc, dict) or (doc.get("format"), doc.get("version")) != (
            PAYLOAD_FORMAT,
            VERSION,
        ):
            raise KeystoreError("backup: the decrypted content is not a tmpc backup payload")
        labels = BackupLabels.from_json(doc, "backup content")
        try:
            record = schemes.WalletRecord.from_json(doc.get("wallet"))
        except KeystoreError as exc:
            raise KeystoreError(f"backup: its wallet record does not hold ({exc})") from None
        share_doc = doc.get("share")
        if not isinstance(share_doc, dict):
            raise KeystoreError("backup: the decrypted content holds no share")
        try:
            secret = ShareSecret.from_plaintext(_canonical(share_doc))
        except KeystoreError:
            raise KeystoreError("backup: the share in the decrypted content is malformed") from None
        if (
            labels.wallet_id != record.wallet_id
            or labels.scheme != record.scheme
            or labels.epoch != record_epoch(record)
            or labels.public_key != record.public_key.hex()
            or labels.party not in record.party_ids
        ):
            raise KeystoreError("backup: its labels do not match its wallet record")
        return cls(labels, record, secret)


def verify_share(payload: BackupPayload) -> schemes.KeyShare:
    """Check that the payload's share is its party's share of its wallet; returns it.

    The restore drill's proof: ``secshare * G`` equals the party's verification share in the
    wallet record (whose DKG certificate :meth:`BackupPayload.from_bytes` checked), the host
    secret key gives the party's host public key, and an ECDSA share's pairwise material
    parses. Raises :class:`KeystoreError` naming the party if any check fails.
    """
    record, party = payload.record, payload.labels.party
    group = schemes.get_scheme(record.scheme).group
    try:
        secshare = group.decode_scalar(payload.secret.secshare)
    except TmpcError:
        raise KeystoreError(f"the backup of party {party} holds an invalid share") from None
    expected = record.verification_shares.get(party)
    if expected is None or group.base_mul(secshare) != expected:
        raise KeystoreError(
            f"the backup's share is not party {party}'s share of wallet {record.wallet_id} "
            "(share * G differs from the party's verification share)"
        )
    try:
        host_ok = chilldkg.hostpubkey_gen(payload.secret.hostseckey) == (
            record.host_public_keys.get(party)
        )
    except TmpcError:
        host_ok = False
    if not host_ok:
        raise KeystoreError(f"the backup's host key is not party {party}'s host key")
    share = schemes.KeyShare(party, secshare, payload.secret.hostseckey, payload.secret.pairwise)
    if schemes.get_scheme(record.scheme).dkls23:
        schemes.ecdsa_pairwise([share])  # KeystoreError if missing or corrupt
    return share


# --------------------------------------------------------------------------------------------
# Reading a share to back up
# --------------------------------------------------------------------------------------------


#: ``(secret, wallet_id, party, epoch) -> share file content``.
Sealer = Callable[[ShareSecret, str, int, int], bytes]
#: ``(share file content, wallet_id, party, epoch) -> secret``; raises as
#: :func:`tmpc.state.keystore.open_share` does.
Opener = Callable[[bytes, str, int, int], ShareSecret]


@dataclass(frozen=True)
class ShareSealing:
    """How a directory's share files are sealed and opened.

    :meth:`with_passphrase` is the keystore's passphrase files (one-process wallets and
    passphrase nodes); a node whose files its token's data key seals passes its own pair
    (:func:`tmpc.node.config.seal_secret` / :func:`~tmpc.node.config.open_secret`). The
    functions close over the secret that unlocks them: never printed (``repr=False``).
    """

    seal: Sealer = field(repr=False)
    open: Opener = field(repr=False)

    @classmethod
    def with_passphrase(cls, passphrase: str, kdf: KdfParams = DEFAULT_KDF) -> ShareSealing:
        """Share files under ``passphrase`` (Argon2id ``kdf`` when sealing); raises
        :class:`KeystoreError` for an empty or non-UTF-8 passphrase."""
        keystore.check_passphrase(passphrase)

        def seal(secret: ShareSecret, wallet_id: str, party: int, epoch: int) -> bytes:
            return keystore.seal_share(
                secret,
                wallet_id=wallet_id,
                party=party,
                epoch=epoch,
                passphrase=passphrase,
                kdf=kdf,
            )

        def open_(data: bytes, wallet_id: str, party: int, epoch: int) -> ShareSecret:
            return keystore.open_share(
                data, passphrase=passphrase, wallet_id=wallet_id, party=party, epoch=epoch
            )

        return cls(seal, open_)


def _share_files(wallet_dir: Path, epoch: int | None = None) -> dict[int, Path]:
    return keystore.share_files(wallet_dir, epoch)


def _read_record(wallet_dir: Path) -> schemes.WalletRecord:
    if not wallet_dir.is_dir():
        raise KeystoreError(f"wallet directory not found: {wallet_dir}")
    doc = keystore.read_json(wallet_dir / "wallet.json", "wallet.json")
    return schemes.WalletRecord.from_json(doc)


def read_share(wallet_dir: Path, sealing: ShareSealing, party: int | None = None) -> BackupPayload:
    """Open a party's share file in ``wallet_dir`` and make the payload of its backup.

    ``wallet_dir`` holds ``wallet.json`` and ``party-I.share`` files: a one-process wallet
    directory (``party`` names the party) or a node's ``DIR/wallets/WALLET_ID`` (``party``
    None: the one share the node holds), opened by ``sealing``. The share is checked
    (:func:`verify_share`) before anything is returned; the backup id is drawn from
    ``secrets``.

    Raises:
        KeystoreError: missing or corrupt files, no such party, no share held.
        CryptoError: a wrong passphrase or a tampered share file (names the party).
        OSError: the file system failed.
    """
    record = _read_record(wallet_dir)
    files = _share_files(wallet_dir, record_epoch(record))
    if party is None:
        if not files:
            raise KeystoreError(f"{wallet_dir} holds no share of wallet {record.wallet_id}")
        if len(files) > 1:
            raise KeystoreError(f"{wallet_dir} holds several shares: name the party")
        party = next(iter(files))
    if party not in record.party_ids:
        raise ParameterError(f"party {party} is not a party of this wallet (1..{record.parties})")
    path = keystore.share_path(wallet_dir, party, record_epoch(record))
    data = keystore.read_limited(path, f"share file of party {party}", MAX_SHARE_FILE_BYTES)
    try:
        secret = sealing.open(data, record.wallet_id, party, record_epoch(record))
    except CryptoError:
        raise CryptoError(f"party {party}: wrong passphrase or tampered share file") from None
    except KeystoreError as exc:
        raise KeystoreError(f"party {party}: {exc}: {path}") from None
    payload = BackupPayload.make(record, party, secret, secrets.token_hex(16))
    verify_share(payload)
    return payload


# --------------------------------------------------------------------------------------------
# Sealing
# --------------------------------------------------------------------------------------------


def _file(header: dict[str, Any], body: dict[str, Any]) -> bytes:
    return json.dumps({**header, **body}, indent=2, sort_keys=True).encode() + b"\n"


def seal_with_passphrase(
    payload: BackupPayload,
    passphrase: str,
    *,
    kdf: KdfParams = DEFAULT_KDF,
    insecure_kdf_for_tests: bool = False,
) -> bytes:
    """The backup file of ``payload`` under ``passphrase`` (JSON bytes).

    Sealed the way share files are: Argon2id(``kdf``) of the passphrase's NFC form and a random
    16-byte salt keys ChaCha20-Poly1305 (random 12-byte nonce), the header is the associated
    data. The passphrase **must not** be empty and must be valid UTF-8; ``kdf`` below 19 MiB /
    2 passes is refused unless ``insecure_kdf_for_tests``. Raises :class:`KeystoreError`.
    """
    keystore.check_passphrase(passphrase)
    kdf.check(sealing=True, allow_weak=insecure_kdf_for_tests)
    return _seal_with_passphrase(
        payload, passphrase, kdf, secrets.token_bytes(16), secrets.token_bytes(12)
    )


def _seal_with_passphrase(
    payload: BackupPayload, passphrase: str, kdf: KdfParams, salt: bytes, nonce: bytes
) -> bytes:
    header = {
        "format": FORMAT,
        "version": VERSION,
        **payload.labels.to_json(),
        "protection": "passphrase",
        "kdf": {
            "alg": "argon2id",
            "salt": salt.hex(),
            "iterations": kdf.iterations,
            "lanes": kdf.lanes,
            "memory_kib": kdf.memory_kib,
        },
        "passphrase_form": keystore.PASSPHRASE_FORM,
        "aead": _AEAD,
    }
    key = keystore.passphrase_key(passphrase, salt, kdf)
    ct = ChaCha20Poly1305(key).encrypt(nonce, payload.to_bytes(), _canonical(header))
    return _file(header, {"nonce": nonce.hex(), "ciphertext": ct.hex()})


def _age_recipient(text: str, position: int) -> x25519.Recipient:
    if text.strip().upper().startswith("AGE-SECRET-KEY-"):
        raise ParameterError(
            f"recipient {position} is an age secret key: give the custodian's public key "
            "(age1...), and keep the secret key away from this machine"
        )
    try:
        return x25519.Recipient.from_str(text.strip())
    except pyrage.RecipientError:
        raise ParameterError(
            f"recipient {position} is not an age X25519 public key (age1...)"
        ) from None


def seal_to_age(payload: BackupPayload, recipients: Sequence[str]) -> bytes:
    """The backup file of ``payload`` encrypted to age X25519 ``recipients`` (``age1...``).

    Any one recipient's identity opens it. Raises :class:`ParameterError` for no recipient or
    one that is not an age public key (an age *secret* key given by mistake is refused
    without being echoed).
    """
    if not recipients:
        raise ParameterError("give at least one age recipient (age1...)")
    names = list(dict.fromkeys(r.strip() for r in recipients))
    parsed = [_age_recipient(r, i) for i, r in enumerate(names, 1)]
    header = {
        "format": FORMAT,
        "version": VERSION,
        **payload.labels.to_json(),
        "protection": "age",
        "recipients": names,
    }
    ct = pyrage.encrypt(payload.to_bytes(), parsed, armored=True)
    return _file(header, {"age": ct.decode("ascii")})


@dataclass(frozen=True)
class CustodianShare:
    """One custodian's part of a SLIP-39 split backup: its file and the QR code of its
    mnemonic. The mnemonic is secret (with K-1 others it opens the backup): never log it."""

    #: 1..M.
    index: int
    mnemonic: str = field(repr=False)
    #: The custodian file (JSON): mnemonic, header and the shared ciphertext.
    content: bytes = field(repr=False)
    #: An SVG QR code of the mnemonic (upper-case words, QR alphanumeric mode).
    qr_svg: bytes = field(repr=False)


def split_to_mnemonics(payload: BackupPayload, threshold: int, shares: int) -> list[CustodianShare]:
    """Encrypt ``payload`` under a fresh random 32-byte key and split that key into ``shares``
    SLIP-39 mnemonics, any ``threshold`` of which recover it (one group, no SLIP-39
    passphrase). ``threshold - 1`` mnemonics say nothing about the key.

    Raises :class:`ParameterError` unless ``1 <= threshold <= shares <= 16`` (SLIP-39's
    limit), and for a threshold of 1 with several shares (SLIP-39 refuses it: that would be
    copies of one secret).
    """
    if not 1 <= threshold <= shares <= MAX_SPLIT_SHARES:
        raise ParameterError(
            f"--split K/M needs 1 <= K <= M <= {MAX_SPLIT_SHARES}, got {threshold}/{shares}"
        )
    if threshold == 1 and shares > 1:
        raise ParameterError(
            "a 1-of-M split would be M copies of one secret: use --recipient or --passphrase "
            "and copy the file"
        )
    key = secrets.token_bytes(32)
    nonce = secrets.token_bytes(12)
    # SLIP-39 draws the random polynomials and identifier from ``secrets`` itself.
    (group,) = shamir_mnemonic.generate_mnemonics(1, [(threshold, shares)], key)
    return _split(payload, threshold, shares, key, nonce, list(group))


def _split(
    payload: BackupPayload,
    threshold: int,
    shares: int,
    key: bytes,
    nonce: bytes,
    mnemonics: list[str],
) -> list[CustodianShare]:
    header = {
        "format": FORMAT,
        "version": VERSION,
        **payload.labels.to_json(),
        "protection": "slip39",
        "split": {"threshold": threshold, "shares": shares},
        "aead": _AEAD,
    }
    ct = ChaCha20Poly1305(key).encrypt(nonce, payload.to_bytes(), _canonical(header))
    out = []
    labels = payload.labels
    for index, mnemonic in enumerate(mnemonics, 1):
        content = _file(
            header,
            {
                "nonce": nonce.hex(),
                "ciphertext": ct.hex(),
                "custodian": index,
                "mnemonic": mnemonic,
            },
        )
        title = (
            f"tmpc backup {labels.backup_id}: custodian {index} of {shares} "
            f"(any {threshold}), party {labels.party} of wallet {labels.wallet_id}"
        )
        out.append(CustodianShare(index, mnemonic, content, _qr_svg(mnemonic, title)))
    return out


def _qr_svg(mnemonic: str, title: str) -> bytes:
    # Upper case: SLIP-39 words then fit QR's alphanumeric mode (A-Z and space), a smaller
    # code; reading them back is case-insensitive.
    qr = segno.make(mnemonic.upper(), error="m", micro=False)
    buf = io.BytesIO()
    qr.save(buf, kind="svg", scale=4, border=4, title=title)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# Reading backup files
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Mnemonic:
    source: str
    share: Any = field(repr=False)  # shamir_mnemonic.Share


def _parse_mnemonic(source: str, text: str) -> _Mnemonic:
    """A mnemonic's words, checked one by one: the error names ``source`` and a position,
    never a word."""
    words = text.split()
    if len(words) != MNEMONIC_WORDS:
        raise KeystoreError(
            f"{source}: the mnemonic has {len(words)} words; a tmpc backup mnemonic has "
            f"{MNEMONIC_WORDS}"
        )
    for position, word in enumerate(words, 1):
        if word.lower() not in WORD_INDEX_MAP:
            raise KeystoreError(f"{source}: word {position} of the mnemonic is not a SLIP-39 word")
    try:
        share = shamir_mnemonic.Share.from_mnemonic(" ".join(w.lower() for w in words))
    except shamir_mnemonic.MnemonicError:
        raise KeystoreError(
            f"{source}: the mnemonic's checksum does not hold (a word is mistyped or was altered)"
        ) from None
    if share.group_count != 1 or share.group_threshold != 1:
        raise KeystoreError(f"{source}: the mnemonic is not from a tmpc backup (SLIP-39 groups)")
    return _Mnemonic(source, share)


@dataclass(frozen=True)
class SealedBackup:
    """Backup files read and checked for consistency, not decrypted yet.

    ``protection`` says what opens it (:meth:`open`): ``age`` identities, a ``passphrase``,
    or (``slip39``) the mnemonics read with it.
    """

    labels: BackupLabels
    protection: str
    #: The input names it was read from.
    sources: tuple[str, ...]
    #: ``(K, M)`` of a SLIP-39 split, else None.
    split: tuple[int, int] | None
    _header: dict[str, Any] = field(repr=False)
    _body: dict[str, Any] = field(repr=False)
    _mnemonics: tuple[_Mnemonic, ...] = field(default=(), repr=False)

    def open(
        self,
        *,
        passphrase: str | None = None,
        identities: Sequence[x25519.Identity] = (),
    ) -> BackupPayload:
        """Decrypt and parse the payload.

        Raises:
            KeystoreError: a missing passphrase or identity, too few mnemonics (the message
                says how many are needed), or malformed content.
            CryptoError: a wrong passphrase, no matching age identity, mnemonics that do not
                combine or do not open the ciphertext (also what a tampered file gives).
        """
        if self.protection == "passphrase":
            if passphrase is None:
                raise KeystoreError("this backup is sealed under a passphrase: give it")
            plaintext = self._open_passphrase(passphrase)
        elif self.protection == "age":
            if not identities:
                raise KeystoreError(
                    "this backup is encrypted to age recipients: give an identity (--identity)"
                )
            armored = self._body.get("age")
            if not isinstance(armored, str) or not armored.isascii():
                raise KeystoreError(f"{self.sources[0]}: not a readable tmpc backup")
            try:
                plaintext = pyrage.decrypt(armored.encode("ascii"), list(identities))
            except pyrage.DecryptError:
                raise CryptoError(
                    "no age identity given opens this backup (wrong identity, or a tampered file)"
                ) from None
        else:
            plaintext = self._open_slip39()
        payload = BackupPayload.from_bytes(plaintext)
        if payload.labels != self.labels:
            raise KeystoreError(
                f"{self.sources[0]}: its clear-text labels do not match its encrypted content "
                "(an edited file)"
            )
        return payload

    def _aead_parts(self) -> tuple[bytes, bytes]:
        try:
            nonce = bytes.fromhex(self._body["nonce"])
            ct = bytes.fromhex(self._body["ciphertext"])
        except (KeyError, TypeError, ValueError):
            raise KeystoreError(f"{self.sources[0]}: not a readable tmpc backup") from None
        if len(nonce) != 12:
            raise KeystoreError(f"{self.sources[0]}: the nonce is not 12 bytes")
        return nonce, ct

    def _open_passphrase(self, passphrase: str) -> bytes:
        keystore.check_passphrase(passphrase)
        nonce, ct = self._aead_parts()
        try:
            kdf_doc = self._header["kdf"]
            salt = bytes.fromhex(kdf_doc["salt"])
            kdf = KdfParams(
                int(kdf_doc["iterations"]), int(kdf_doc["lanes"]), int(kdf_doc["memory_kib"])
            )
            ok = (
                kdf_doc["alg"] == "argon2id"
                and self._header["passphrase_form"] == keystore.PASSPHRASE_FORM
                and self._header["aead"] == _AEAD
                and len(salt) == 16
            )
        except (KeyError, TypeError, ValueError, OverflowError):
            ok = False
        if not ok:
            raise KeystoreError(f"{self.sources[0]}: unsupported or malformed KDF parameters")
        kdf.check()  # bounded cost before the tag is checked
        key = keystore.passphrase_key(passphrase, salt, kdf)
        try:
            return ChaCha20Poly1305(key).decrypt(nonce, ct, _canonical(self._header))
        except InvalidTag:
            raise CryptoError("wrong backup passphrase or tampered backup file") from None

    def _open_slip39(self) -> bytes:
        assert self.split is not None
        threshold, count = self.split
        by_index: dict[int, _Mnemonic] = {}
        first = self._mnemonics[0]
        for m in self._mnemonics:
            if (
                m.share.common_parameters() != first.share.common_parameters()
                or m.share.group_parameters() != first.share.group_parameters()
            ):
                raise KeystoreError(
                    f"{m.source}: its mnemonic is from another split than {first.source}'s"
                )
            if m.share.member_threshold != threshold:
                raise KeystoreError(f"{m.source}: its mnemonic is not from this backup's split")
            seen = by_index.get(m.share.index)
            if seen is not None and seen.share.value != m.share.value:
                raise KeystoreError(
                    f"{m.source} and {seen.source} hold different mnemonics with the same "
                    "index (one was altered)"
                )
            by_index.setdefault(m.share.index, m)
        if len(by_index) < threshold:
            raise KeystoreError(
                f"{len(by_index)} distinct mnemonic(s) given; this backup needs {threshold} "
                f"(any {threshold} of its {count})"
            )
        chosen = [m.share.mnemonic() for m in list(by_index.values())[:threshold]]
        try:
            key = shamir_mnemonic.combine_mnemonics(chosen)
        except shamir_mnemonic.MnemonicError:
            raise CryptoError(
                "the mnemonics do not combine (one is from another backup, or was altered)"
            ) from None
        nonce, ct = self._aead_parts()
        try:
            return ChaCha20Poly1305(key).decrypt(nonce, ct, _canonical(self._header))
        except (InvalidTag, ValueError):
            raise CryptoError(
                "the mnemonics do not open this backup (mnemonics of another backup, or a "
                "tampered file)"
            ) from None


def _split_doc(doc: dict[str, Any], source: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A backup file's header and body; checks format, version and protection."""
    if (doc.get("format"), doc.get("version")) != (FORMAT, VERSION):
        raise KeystoreError(f"{source}: not a tmpc backup file of a supported version")
    protection = doc.get("protection")
    if protection not in PROTECTIONS:
        raise KeystoreError(f"{source}: unknown backup protection")
    keys = ("format", "version", *_LABELS, "protection", *_PARAMS[protection])
    if any(k not in doc for k in keys):
        raise KeystoreError(f"{source}: not a readable tmpc backup")
    header = {k: doc[k] for k in keys}
    body = {k: v for k, v in doc.items() if k not in header}
    return header, body


def read_backup(files: Sequence[tuple[str, bytes]]) -> SealedBackup:
    """Read backup files: one ``age`` or ``passphrase`` file, or the custodian files of one
    SLIP-39 split (plain-text files holding just a mnemonic's words may stand in for custodian
    files; at least one custodian file is needed for the ciphertext).

    ``files`` are ``(name, content)``; names appear in errors (a bad mnemonic is named by its
    file and the word's position). Raises :class:`KeystoreError`.
    """
    if not files:
        raise KeystoreError("no backup file given")
    docs: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    texts: list[_Mnemonic] = []
    for name, data in files:
        if data.lstrip()[:1] == b"{":
            try:
                doc = parse_json(data, name, max_bytes=MAX_BACKUP_FILE_BYTES)
            except DecodeError:
                raise KeystoreError(f"{name}: not a readable tmpc backup file") from None
            if not isinstance(doc, dict):
                raise KeystoreError(f"{name}: not a tmpc backup file")
            header, body = _split_doc(doc, name)
            docs.append((name, header, body))
            continue
        if len(data) > MAX_MNEMONIC_FILE_BYTES:
            raise KeystoreError(f"{name}: neither a tmpc backup file nor a mnemonic")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise KeystoreError(f"{name}: neither a tmpc backup file nor a mnemonic") from None
        texts.append(_parse_mnemonic(name, text))
    if not docs:
        raise KeystoreError(
            "no custodian file among the inputs: the encrypted backup is in every custodian's "
            ".json file; give at least one"
        )
    name0, header0, body0 = docs[0]
    labels = BackupLabels.from_json(header0, name0)
    protection = header0["protection"]
    if protection != "slip39":
        if len(files) != 1:
            raise KeystoreError(
                f"{name0}: a backup sealed by {protection} is one file, but {len(files)} were given"
            )
        return SealedBackup(labels, protection, (name0,), None, header0, body0)
    split = header0["split"]
    try:
        k, m = int(split["threshold"]), int(split["shares"])
    except (KeyError, TypeError, ValueError):
        raise KeystoreError(f"{name0}: malformed split parameters") from None
    if not 1 <= k <= m <= MAX_SPLIT_SHARES or header0["aead"] != _AEAD:
        raise KeystoreError(f"{name0}: unsupported split parameters")
    mnemonics: list[_Mnemonic] = []
    for name, header, body in docs:
        if header["protection"] != "slip39":
            raise KeystoreError(f"{name}: not a custodian file of a split ({header['protection']})")
        if header.get("backup_id") != header0["backup_id"]:
            raise KeystoreError(f"{name}: it is from another backup than {name0}")
        if header != header0 or (body.get("nonce"), body.get("ciphertext")) != (
            body0.get("nonce"),
            body0.get("ciphertext"),
        ):
            raise KeystoreError(f"{name}: it differs from {name0} in more than its mnemonic")
        mnemonic, index = body.get("mnemonic"), body.get("custodian")
        if not isinstance(mnemonic, str) or type(index) is not int:
            raise KeystoreError(f"{name}: not a readable custodian file")
        parsed = _parse_mnemonic(name, mnemonic)
        if parsed.share.index + 1 != index:
            raise KeystoreError(f"{name}: its mnemonic is not custodian {index}'s")
        mnemonics.append(parsed)
    mnemonics.extend(texts)
    sources = tuple(name for name, _ in files)
    return SealedBackup(labels, protection, sources, (k, m), header0, body0, tuple(mnemonics))


def parse_age_identities(data: bytes, what: str) -> list[x25519.Identity]:
    """The age X25519 identities of an identity file (``age-keygen`` output: lines
    ``AGE-SECRET-KEY-1...``, ``#`` comments). Raises :class:`KeystoreError` naming ``what``
    and a line number, never the line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeystoreError(f"{what}: not an age identity file") from None
    out = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            out.append(x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise KeystoreError(
                f"{what}: line {number} is not an age X25519 identity (AGE-SECRET-KEY-1...)"
            ) from None
    if not out:
        raise KeystoreError(f"{what}: holds no age identity")
    return out


# --------------------------------------------------------------------------------------------
# Installing a restored share
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Installed:
    """Where :func:`install_share` put the share."""

    share_file: Path
    #: Whether it also wrote ``wallet.json`` (the directory held none).
    wrote_record: bool


def _same_wallet(a: schemes.WalletRecord, b: schemes.WalletRecord) -> bool:
    # One wallet across key epochs: a rotation changes shares, never the scheme or group key.
    return a.scheme == b.scheme and a.group_public_key == b.group_public_key


def newest_installed_epoch(wallets_root: Path, record: schemes.WalletRecord) -> int | None:
    """The newest key epoch of ``record``'s wallet among the records under ``wallets_root``
    (a node's ``DIR/wallets``: one directory per wallet id), or None if it holds none."""
    newest: int | None = None
    if not wallets_root.is_dir():
        return None
    group_key = record.group_public_key.encode().hex()
    for path in sorted(wallets_root.glob("*/wallet.json")):
        doc = keystore.read_json(path, "wallet record")
        if not isinstance(doc, dict) or (doc.get("scheme"), doc.get("group_public_key")) != (
            record.scheme,
            group_key,
        ):
            continue
        installed = schemes.WalletRecord.from_json(doc)
        if _same_wallet(installed, record):
            epoch = record_epoch(installed)
            newest = epoch if newest is None else max(newest, epoch)
    return newest


def install_share(
    payload: BackupPayload,
    wallet_dir: Path,
    sealing: ShareSealing,
    *,
    host_pubkey: bytes | None = None,
    one_share: bool = False,
    newest_epoch: int | None = None,
) -> Installed:
    """Seal the payload's share with ``sealing`` (the target's own way) into ``wallet_dir``
    as ``party-I.share`` (and write ``wallet.json`` there if the directory holds none).

    The share is checked first (:func:`verify_share`). Refused, with nothing written, when:
    the directory already holds this party's share (``one_share``: any share, as a node's
    wallet directory holds one); its ``wallet.json`` is another wallet's, or of another key
    epoch (an older epoch than installed: :func:`check_epoch`); ``newest_epoch`` (the newest
    epoch installed elsewhere, e.g. :func:`newest_installed_epoch`) is newer than the
    backup's; ``host_pubkey`` (the node's identity key) is not the party's host key; or
    ``sealing`` does not open the directory's other share files (a one-process wallet opens
    all its shares with one passphrase).

    ``wallet.json`` is written before the share, so an interruption leaves at worst a record
    without a share, and the restore can be run again.

    Raises:
        KeystoreError: a refusal above, or a corrupt file in the directory.
        CryptoError: ``sealing`` does not open the other share files.
        OSError: the file system failed.
    """
    share = verify_share(payload)
    record, party = payload.record, payload.labels.party
    epoch = record_epoch(record)
    if host_pubkey is not None and record.host_public_keys.get(party) != host_pubkey:
        raise KeystoreError(
            f"the backup is party {party}'s share, whose host key is not this node's identity "
            "key: restore it on that party's node"
        )
    if newest_epoch is not None:
        check_epoch(newest_epoch, epoch)
    if wallet_dir.exists() and not wallet_dir.is_dir():
        raise KeystoreError(f"{wallet_dir} is not a directory")
    existing = _share_files(wallet_dir) if wallet_dir.is_dir() else {}
    installed: schemes.WalletRecord | None = None
    if (wallet_dir / "wallet.json").exists():
        installed = _read_record(wallet_dir)
        if not _same_wallet(installed, record):
            raise KeystoreError(
                f"{wallet_dir} holds another wallet ({installed.wallet_id}), not {record.wallet_id}"
            )
        check_epoch(record_epoch(installed), epoch)
        if installed.wallet_id != record.wallet_id:
            raise KeystoreError(
                f"{wallet_dir} holds another record of this wallet ({installed.wallet_id})"
            )
    elif existing:
        raise KeystoreError(f"{wallet_dir} holds share files but no wallet.json")
    if party in existing:
        raise KeystoreError(
            f"{wallet_dir} already holds party {party}'s share; refusing to overwrite it"
        )
    if one_share and existing:
        held = ", ".join(map(str, existing))
        raise KeystoreError(f"{wallet_dir} already holds a share (party {held}); refusing")
    if existing:
        other, path = next(iter(existing.items()))
        data = keystore.read_limited(path, f"share file of party {other}", MAX_SHARE_FILE_BYTES)
        try:
            sealing.open(data, record.wallet_id, other, epoch)
        except CryptoError:
            raise CryptoError(
                f"the passphrase does not open party {other}'s share in {wallet_dir}: restore "
                "under the wallet's passphrase"
            ) from None
    secret = payload.secret
    sealed = sealing.seal(
        ShareSecret(secret.secshare, share.hostseckey, secret.pairwise, secret.store_key),
        record.wallet_id,
        party,
        epoch,
    )
    wrote_record = installed is None
    if wrote_record:
        doc = json.dumps(record.to_json(), indent=2).encode() + b"\n"
        keystore.write_new_file(wallet_dir / "wallet.json", doc, 0o644)
    target = keystore.share_path(wallet_dir, party, epoch)
    keystore.write_new_file(target, sealed)
    return Installed(target, wrote_record)
