"""Signed policy bundles: the policy's TOML text with its administrators' signatures.

A bundle is JSON::

    {"format": "tmpc-policy-bundle", "version": 1,
     "policy": "<the TOML text>",
     "signatures": {"alice": "<128 hex>", "bob": "<128 hex>"}}

Each signature is an Ed25519 signature (PyNaCl) by an administrator over::

    policy_digest = tagged_hash("tmpc/policy/v1", SHA256(UTF-8 bytes of the TOML text))

so changing any byte of the policy (a comment or a space too) invalidates every signature.
A node accepts a bundle only through :func:`verify_bundle` (a quorum of known
administrators) and :func:`check_upgrade` (a version newer than the installed one: no
rollback to an older policy).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from tmpc.encoding import parse_json, tagged_hash
from tmpc.errors import CryptoError, DecodeError, ParameterError
from tmpc.policy.keys import PolicyKey, check_public_key, verify_signature
from tmpc.policy.rules import MAX_POLICY_BYTES, Policy, parse_policy

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "MAX_BUNDLE_BYTES",
    "POLICY_TAG",
    "Bundle",
    "check_upgrade",
    "parse_admins",
    "policy_digest",
    "sign_bundle",
    "verify_bundle",
]

BUNDLE_FORMAT: Final = "tmpc-policy-bundle"
BUNDLE_VERSION: Final = 1
#: Tag of :func:`policy_digest`.
POLICY_TAG: Final = "tmpc/policy/v1"
#: Largest bundle read (the policy escaped into JSON, and its signatures).
MAX_BUNDLE_BYTES: Final = 4 * MAX_POLICY_BYTES
_MAX_SIGNATURES: Final = 256
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HEX128: Final = re.compile(r"[0-9a-fA-F]{128}")
_HEX64: Final = re.compile(r"[0-9a-fA-F]{64}")


def policy_digest(source: bytes) -> bytes:
    """``tagged_hash("tmpc/policy/v1", sha256(source))``: what administrators sign (32
    bytes), ``source`` being the policy file's exact bytes."""
    return tagged_hash(POLICY_TAG, hashlib.sha256(source).digest())


def _admin_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ParameterError(
            f"{what}: an administrator name is 1 to 64 letters, digits, '.', '_' or '-'"
        )
    return name


@dataclass(frozen=True, slots=True)
class Bundle:
    """A policy text and its signatures (administrator name -> 64-byte signature).

    Holding a :class:`Bundle` proves nothing: only :func:`verify_bundle` says whether it is
    signed by enough administrators.
    """

    policy: str
    signatures: Mapping[str, bytes]

    @property
    def source(self) -> bytes:
        """The signed bytes: the policy text in UTF-8."""
        return self.policy.encode("utf-8", errors="surrogatepass")

    def to_json(self) -> dict[str, Any]:
        """The bundle's JSON object (signatures sorted by name)."""
        return {
            "format": BUNDLE_FORMAT,
            "version": BUNDLE_VERSION,
            "policy": self.policy,
            "signatures": {n: self.signatures[n].hex() for n in sorted(self.signatures)},
        }

    def to_bytes(self) -> bytes:
        """The bundle file's content (indented JSON, ending in a newline)."""
        return (json.dumps(self.to_json(), indent=2) + "\n").encode()

    @classmethod
    def from_policy(cls, source: bytes) -> Bundle:
        """An unsigned bundle of the policy file ``source``, which must be a valid policy.

        Raises:
            DecodeError, ParameterError: ``source`` is not a valid policy (see
                :func:`~tmpc.policy.rules.parse_policy`).
        """
        parse_policy(source)  # never wrap (or sign) an invalid policy
        return cls(source.decode("utf-8"), {})

    @classmethod
    def parse(cls, data: bytes | str | Mapping[str, Any]) -> Bundle:
        """Read a bundle (its file's bytes or text, or its parsed JSON object).

        Checks the form only (format, version, keys, hex lengths), not the signatures.

        Raises:
            DecodeError: not JSON, not a policy bundle, an unknown key, or a malformed
                signature entry.
        """
        doc = (
            data
            if isinstance(data, Mapping)
            else parse_json(data, "policy bundle", max_bytes=MAX_BUNDLE_BYTES)
        )
        if not isinstance(doc, Mapping) or doc.get("format") != BUNDLE_FORMAT:
            raise DecodeError(f'not a policy bundle (expected "format": "{BUNDLE_FORMAT}")')
        for key in doc:
            if key not in ("format", "version", "policy", "signatures"):
                raise DecodeError(f"policy bundle: unknown key {key!r}")
        version = doc.get("version")
        if version != BUNDLE_VERSION or isinstance(version, bool):
            raise DecodeError(f"policy bundle: unsupported version (expected {BUNDLE_VERSION})")
        policy = doc.get("policy")
        if not isinstance(policy, str):
            raise DecodeError("policy bundle: 'policy' must be the policy's TOML text")
        sigs = doc.get("signatures", {})
        if not isinstance(sigs, Mapping) or len(sigs) > _MAX_SIGNATURES:
            raise DecodeError("policy bundle: 'signatures' must be an object {name: hex}")
        out: dict[str, bytes] = {}
        for name, sig in sigs.items():
            try:
                _admin_name(name, "policy bundle")
            except ParameterError as exc:
                raise DecodeError(str(exc)) from None
            if not isinstance(sig, str) or not _HEX128.fullmatch(sig):
                raise DecodeError(f"policy bundle: the signature of {name!r} is not 128 hex digits")
            out[name] = bytes.fromhex(sig)
        return cls(policy, out)


def sign_bundle(bundle: Bundle, name: str, key: PolicyKey) -> Bundle:
    """``bundle`` with administrator ``name``'s signature added (the others are kept).

    Raises:
        ParameterError: ``name`` is not a valid name or has signed the bundle already.
        DecodeError, ParameterError: the bundle's policy is not a valid policy (an invalid
            policy is never signed).
    """
    _admin_name(name, "--name")
    if name in bundle.signatures:
        raise ParameterError(f"the bundle already holds a signature by {name!r}")
    source = bundle.source
    parse_policy(source)
    signature = key.sign(policy_digest(source))
    return Bundle(bundle.policy, {**bundle.signatures, name: signature})


def parse_admins(doc: object) -> dict[str, bytes]:
    """Administrators from a JSON object ``{name: Ed25519 public key hex}``.

    Raises:
        ParameterError: not such an object, empty, a bad name or key, or two names with the
            same key (one person must not count twice towards the quorum).
    """
    if not isinstance(doc, dict) or not doc:
        raise ParameterError("administrators must be a non-empty JSON object {name: key hex}")
    out: dict[str, bytes] = {}
    for name, key in doc.items():
        _admin_name(name, "administrators")
        if not isinstance(key, str) or not _HEX64.fullmatch(key):
            raise ParameterError(f"administrator {name!r}: key must be 64 hex digits")
        out[name] = bytes.fromhex(key)
    return _check_admins(out)


def _check_admins(admins: Mapping[str, bytes]) -> dict[str, bytes]:
    if not isinstance(admins, Mapping) or not admins:
        raise ParameterError("no policy administrators given")
    seen: dict[bytes, str] = {}
    out: dict[str, bytes] = {}
    for name, key in admins.items():
        _admin_name(name, "administrators")
        key = check_public_key(key, f"administrator {name!r}'s key")
        if key in seen:
            raise ParameterError(f"administrators {seen[key]!r} and {name!r} have the same key")
        seen[key] = name
        out[name] = key
    return out


def verify_bundle(
    bundle: Bundle | bytes | str | Mapping[str, Any], admins: Mapping[str, bytes], quorum: int
) -> Policy:
    """The bundle's policy, if at least ``quorum`` of ``admins`` signed exactly its text.

    Every signature in the bundle must be by a known administrator and must verify: a bundle
    with one bad or unknown signature is refused whole, even if enough others verify.

    Args:
        bundle: a :class:`Bundle`, or a bundle file's bytes, text or parsed JSON.
        admins: administrator name -> 32-byte Ed25519 public key (from the cluster file).
        quorum: how many distinct administrators must have signed (1 to ``len(admins)``).

    Returns:
        The parsed policy (parsed only after the signatures verified).

    Raises:
        DecodeError: not a well-formed bundle.
        ParameterError: bad ``admins`` or ``quorum``, or a signed text that is not a valid
            policy.
        CryptoError: unsigned, signed by someone not in ``admins``, a signature that does
            not verify (the policy was changed after signing), or fewer than ``quorum``
            signatures.
    """
    admins = _check_admins(admins)
    if isinstance(quorum, bool) or not isinstance(quorum, int) or not 1 <= quorum <= len(admins):
        raise ParameterError(f"quorum must be an integer from 1 to {len(admins)} (administrators)")
    if not isinstance(bundle, Bundle):
        bundle = Bundle.parse(bundle)
    if not bundle.signatures:
        raise CryptoError("policy bundle is not signed: no administrator signature")
    unknown = sorted(n for n in bundle.signatures if n not in admins)
    if unknown:
        raise CryptoError(
            f"policy bundle is signed by {', '.join(map(repr, unknown))}, not a policy "
            "administrator"
        )
    source = bundle.source
    if len(source) > MAX_POLICY_BYTES:
        raise DecodeError(f"policy is larger than {MAX_POLICY_BYTES} bytes")
    digest = policy_digest(source)
    for name in sorted(bundle.signatures):
        if not verify_signature(admins[name], digest, bundle.signatures[name]):
            raise CryptoError(
                f"policy bundle: the signature of {name!r} does not verify: the policy was "
                "changed after it was signed, or another key signed it"
            )
    if len(bundle.signatures) < quorum:
        raise CryptoError(
            f"policy bundle has {len(bundle.signatures)} administrator signature(s); "
            f"{quorum} needed"
        )
    return parse_policy(source)


def check_upgrade(installed_version: int | None, policy: Policy) -> None:
    """Refuse to install ``policy`` over the installed version unless it is newer.

    Args:
        installed_version: the version installed now; None if there is none.
        policy: a verified policy (:func:`verify_bundle`).

    Raises:
        ParameterError: ``policy.version <= installed_version`` (a rollback, or the same
            version again).
    """
    if installed_version is not None and policy.version <= installed_version:
        raise ParameterError(
            f"policy version {policy.version} is not newer than the installed version "
            f"{installed_version}: an older or equal version is never installed (no rollback)"
        )
