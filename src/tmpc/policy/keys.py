"""Ed25519 keys of policy administrators and approvers, and their key files.

A key file is JSON, written with mode 0600 and never over an existing file (the command line
does the writing)::

    {"format": "tmpc-policy-key", "version": 1,
     "public_key": "<64 hex>", "secret_key": "<64 hex: the Ed25519 seed>"}

The secret is in clear: protect the file as the administrator's or approver's signing
authority (an offline machine, or a hardware token in a later version).

What a key signs is domain-separated by tagged hashes: an administrator signs
``tagged_hash("tmpc/policy/v1", ...)`` (:mod:`tmpc.policy.bundle`), an approver signs
``tagged_hash("tmpc/policy/request/v1", ...)`` (:mod:`tmpc.policy.approvals`), so a
signature of one kind is never valid as the other.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from nacl import bindings as _sodium
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from tmpc.encoding import parse_json
from tmpc.errors import DecodeError, KeystoreError, ParameterError

__all__ = [
    "KEY_FILE_FORMAT",
    "MAX_KEY_FILE_BYTES",
    "PolicyKey",
    "check_public_key",
    "verify_signature",
]

KEY_FILE_FORMAT: Final = "tmpc-policy-key"
#: Largest key file read.
MAX_KEY_FILE_BYTES: Final = 4096
_KEY_FILE_VERSION: Final = 1
_HEX64: Final = re.compile(r"[0-9a-f]{64}")


def check_public_key(key: object, what: str) -> bytes:
    """Return ``key`` if it is a valid 32-byte Ed25519 public key (on the curve, not of small
    order), else raise :class:`ParameterError` naming ``what``."""
    if not isinstance(key, bytes | bytearray) or len(key) != 32:
        raise ParameterError(f"{what} must be a 32-byte Ed25519 public key")
    if not _sodium.crypto_core_ed25519_is_valid_point(bytes(key)):
        raise ParameterError(f"{what} is not a valid Ed25519 public key")
    return bytes(key)


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` (64 bytes) is a valid Ed25519 signature of ``message`` by
    ``public_key`` (32 bytes). Never raises on bad input: anything malformed is False."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        VerifyKey(public_key).verify(message, signature)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class PolicyKey:
    """An Ed25519 signing key of an administrator or approver (the 32-byte seed).

    The seed is secret: it is never printed (``repr`` hides it) and **must not** be used for
    anything but policy and approval signatures.
    """

    seed: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.seed, bytes) or len(self.seed) != 32:
            raise ParameterError("a policy key seed is 32 bytes")

    @classmethod
    def generate(cls, rand: Callable[[int], bytes] = secrets.token_bytes) -> PolicyKey:
        """A new key from ``rand(32)`` (``secrets.token_bytes`` unless a test passes another)."""
        return cls(bytes(rand(32)))

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        return bytes(SigningKey(self.seed).verify_key)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return bytes(SigningKey(self.seed).sign(message).signature)

    def to_file_bytes(self) -> bytes:
        """The content of a key file (see the module docstring); secret."""
        doc = {
            "format": KEY_FILE_FORMAT,
            "version": _KEY_FILE_VERSION,
            "public_key": self.public_key.hex(),
            "secret_key": self.seed.hex(),
        }
        return (json.dumps(doc, indent=2) + "\n").encode()

    @classmethod
    def from_file_bytes(cls, data: bytes, what: str = "policy key file") -> PolicyKey:
        """Read a key file's content.

        Raises:
            KeystoreError: not a policy key file, malformed, or its public key does not belong
                to its secret key. The message names ``what`` and never quotes the content.
        """
        try:
            doc = parse_json(data, what, max_bytes=MAX_KEY_FILE_BYTES)
        except DecodeError as exc:
            raise KeystoreError(str(exc)) from None
        if (
            not isinstance(doc, dict)
            or doc.get("format") != KEY_FILE_FORMAT
            or set(doc) != {"format", "version", "public_key", "secret_key"}
        ):
            raise KeystoreError(f"{what} is not a tmpc policy key file (tmpc policy keygen)")
        if doc["version"] != _KEY_FILE_VERSION or isinstance(doc["version"], bool):
            raise KeystoreError(f"{what} has an unsupported version")
        seed_hex, pub_hex = doc["secret_key"], doc["public_key"]
        if not (
            isinstance(seed_hex, str)
            and isinstance(pub_hex, str)
            and _HEX64.fullmatch(seed_hex)
            and _HEX64.fullmatch(pub_hex)
        ):
            raise KeystoreError(f"{what} is malformed: keys are 64 lower-case hex digits")
        key = cls(bytes.fromhex(seed_hex))
        if key.public_key != bytes.fromhex(pub_hex):
            raise KeystoreError(f"{what} is corrupt: its public key is not its secret key's")
        return key
