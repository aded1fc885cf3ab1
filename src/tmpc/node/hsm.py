"""A node's share-wrapping key in a PKCS#11 token (an HSM, a smart card, SoftHSM).

Instead of deriving its file key from a passphrase, a node can keep a **token key** in a
PKCS#11 token: an AES-256 secret key object, created in the token (``CKA_TOKEN``,
``CKA_PRIVATE``, ``CKA_SENSITIVE``, not ``CKA_EXTRACTABLE``; encrypt and decrypt only), that
never leaves it. At ``tmpc node init`` the node draws a random 32-byte **data key**
(``secrets``), has the token encrypt it with the token key (``CKM_AES_GCM``, a random 12-byte
nonce, the file's header as associated data) and stores only that ciphertext::

    DIR/data-key.json  {"format": "tmpc-node-data-key", "version": 1, "node": NAME,
                        "mechanism": "CKM_AES_GCM", "nonce": "...", "ciphertext": "..."}

The data key then seals the node's identity key and every share file
(:func:`tmpc.state.keystore.seal_share_with_key`) and, through HKDF, the TLS key's PEM
password. To start, the node logs in to the token with its PIN, has the token decrypt the data
key, closes the session and finalizes the module: the PIN is not kept, and the token is not
used again until the next start. Where the token key lives is recorded in ``node.json``
(:class:`HsmConfig`: module path, token label, key label; never the PIN).

Every failure of the token or its module becomes one :class:`~tmpc.errors.KeystoreError` line
(module not loadable, token not found, wrong or locked PIN, key missing) or, for a data key the
token key does not open, an opaque :class:`~tmpc.errors.CryptoError`. No message quotes a PIN
or key material.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tmpc.encoding import parse_json
from tmpc.errors import CryptoError, DecodeError, KeystoreError
from tmpc.state.keystore import SealingKey

if TYPE_CHECKING:
    from pkcs11 import Session

__all__ = [
    "DATA_KEY_FILE",
    "HsmConfig",
    "TokenLogin",
    "check_pin",
    "default_key_label",
    "open_data_key",
    "wrap_new_data_key",
]

#: The wrapped data key, in the node directory.
DATA_KEY_FILE = "data-key.json"
_FORMAT = "tmpc-node-data-key"
_MECHANISM = "CKM_AES_GCM"
_LABEL_MAX = 128


def default_key_label(node_name: str) -> str:
    """The token key's label when ``--hsm-key-label`` is not given: ``tmpc-node/NAME``."""
    return f"tmpc-node/{node_name}"


def _check_label(value: str, what: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= _LABEL_MAX:
        raise KeystoreError(f"the {what} must be 1 to {_LABEL_MAX} characters")
    if not value.isprintable():
        raise KeystoreError(f"the {what} must be printable text")
    return value


@dataclass(frozen=True)
class HsmConfig:
    """Where a node's token key lives: recorded in ``node.json`` (public; no PIN).

    ``module`` is the path of the PKCS#11 module (a shared library, e.g.
    ``/usr/lib/softhsm/libsofthsm2.so``), ``token`` the token's label, ``key_label`` the label
    of the AES key object in it.
    """

    module: str
    token: str
    key_label: str

    def __post_init__(self) -> None:
        if not isinstance(self.module, str) or not self.module:
            raise KeystoreError("the PKCS#11 module path is empty")
        _check_label(self.token, "token label")
        _check_label(self.key_label, "token key label")

    def to_json(self) -> dict[str, str]:
        """The ``"hsm"`` object of ``node.json``."""
        return {"module": self.module, "token": self.token, "key_label": self.key_label}

    @classmethod
    def from_json(cls, doc: Any) -> HsmConfig:
        """Parse the ``"hsm"`` object of ``node.json``; raises :class:`KeystoreError`."""
        try:
            return cls(str(doc["module"]), str(doc["token"]), str(doc["key_label"]))
        except (KeyError, TypeError):
            raise KeystoreError("node configuration: the hsm entry is malformed") from None


def check_pin(pin: str) -> None:
    """Refuse a PIN that is empty or not valid UTF-8 (the message never quotes it)."""
    if not isinstance(pin, str) or not pin:
        raise KeystoreError("an empty token PIN")
    try:
        pin.encode("utf-8")
    except UnicodeEncodeError:
        raise KeystoreError("the token PIN is not valid UTF-8") from None


@dataclass(frozen=True)
class TokenLogin:
    """A token and the PIN to log in to it (the PIN is never printed)."""

    config: HsmConfig
    pin: str = field(repr=False)

    def __post_init__(self) -> None:
        check_pin(self.pin)


@contextmanager
def _session(login: TokenLogin, *, rw: bool) -> Iterator[Session]:
    """A user session on the token, closed and the module finalized on exit.

    Finalizing leaves no session or login behind in this process (and lets a later call read
    the module's configuration afresh)."""
    import pkcs11
    from pkcs11 import exceptions as p11

    cfg = login.config
    if not os.path.isfile(cfg.module):
        raise KeystoreError(f"PKCS#11 module not found: {cfg.module} (wrong --hsm-module path?)")
    try:
        lib = pkcs11.lib(cfg.module)
    except p11.PKCS11Error:
        raise KeystoreError(
            f"cannot load the PKCS#11 module {cfg.module} (wrong --hsm-module path?)"
        ) from None
    try:
        try:
            token = lib.get_token(token_label=cfg.token)
        except p11.NoSuchToken:
            raise KeystoreError(
                f"no PKCS#11 token labelled {cfg.token!r} in {cfg.module} "
                "(not initialised, not plugged in, or another label)"
            ) from None
        except p11.MultipleTokensReturned:
            raise KeystoreError(f"several PKCS#11 tokens are labelled {cfg.token!r}") from None
        try:
            session = token.open(user_pin=login.pin, rw=rw)
        except (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange):
            raise KeystoreError(f"wrong PIN for PKCS#11 token {cfg.token!r}") from None
        except p11.PinLocked:
            raise KeystoreError(f"the PIN of PKCS#11 token {cfg.token!r} is locked") from None
        except p11.UserPinNotInitialized:
            raise KeystoreError(
                f"PKCS#11 token {cfg.token!r} has no user PIN yet (initialise it first)"
            ) from None
        with session:
            yield session
    except p11.PKCS11Error as exc:
        # Any other refusal of the module: its class name only (never data or a PIN).
        raise KeystoreError(f"PKCS#11 token {cfg.token!r} failed ({type(exc).__name__})") from None
    finally:
        try:
            lib.finalize()
        except p11.PKCS11Error:
            pass


def _token_key(session: Session, login: TokenLogin, *, create: bool) -> Any:
    """The node's AES key object in the token; created if ``create`` and absent.

    An existing key is used only if it cannot leave the token (sensitive, never extractable)."""
    from pkcs11 import Attribute, KeyType, MechanismFlag, ObjectClass
    from pkcs11 import exceptions as p11

    cfg = login.config
    try:
        key = session.get_key(ObjectClass.SECRET_KEY, KeyType.AES, label=cfg.key_label)
    except p11.NoSuchKey:
        if not create:
            raise KeystoreError(
                f"PKCS#11 token {cfg.token!r} holds no key labelled {cfg.key_label!r} "
                "(deleted, or another token?)"
            ) from None
        return session.generate_key(
            KeyType.AES,
            256,
            label=cfg.key_label,
            store=True,
            capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
            template={
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
            },
        )
    except p11.MultipleObjectsReturned:
        raise KeystoreError(
            f"PKCS#11 token {cfg.token!r} holds several keys labelled {cfg.key_label!r}"
        ) from None
    # CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE (PKCS#11 v2.40 §4.9) say that the key
    # was made in the token and never left it: an imported key was known outside.
    for attr, wanted in (
        (Attribute.SENSITIVE, True),
        (Attribute.EXTRACTABLE, False),
        (Attribute.ALWAYS_SENSITIVE, True),
        (Attribute.NEVER_EXTRACTABLE, True),
    ):
        try:
            value = bool(key[attr])
        except p11.AttributeTypeInvalid:
            if attr in (Attribute.SENSITIVE, Attribute.EXTRACTABLE):
                raise
            continue  # a token that does not keep the history attributes
        if value != wanted:
            raise KeystoreError(
                f"the key {cfg.key_label!r} of token {cfg.token!r} can leave or has left the "
                "token (extractable, not sensitive, or imported); use a key made by tmpc node init"
            )
    return key


def _header(node_name: str) -> dict[str, Any]:
    return {"format": _FORMAT, "version": 1, "node": node_name, "mechanism": _MECHANISM}


def _aad(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def wrap_new_data_key(login: TokenLogin, node_name: str) -> tuple[SealingKey, bytes]:
    """A fresh data key and the content of ``DIR/data-key.json`` (the key, token-encrypted).

    Creates the token key (``login.config.key_label``) if the token has none by that label,
    else uses it (see :func:`_token_key`). Raises :class:`KeystoreError`.
    """
    from pkcs11 import Mechanism
    from pkcs11.mechanisms import GCMParams

    data_key = SealingKey(secrets.token_bytes(32))
    nonce = secrets.token_bytes(12)
    header = _header(node_name)
    with _session(login, rw=True) as session:
        key = _token_key(session, login, create=True)
        ct = key.encrypt(
            data_key.key,
            mechanism=Mechanism.AES_GCM,
            mechanism_param=GCMParams(nonce, _aad(header)),
        )
    doc = dict(header, nonce=nonce.hex(), ciphertext=bytes(ct).hex())
    return data_key, json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"


def open_data_key(login: TokenLogin, node_name: str, data: bytes) -> SealingKey:
    """Have the token decrypt the data key of ``DIR/data-key.json`` (``data``).

    Raises :class:`KeystoreError` for a malformed file, one of another node, or any token
    failure, and :class:`CryptoError` if the token key does not open it (another token key,
    or a tampered file).
    """
    from pkcs11 import Mechanism
    from pkcs11 import exceptions as p11
    from pkcs11.mechanisms import GCMParams

    try:
        doc = parse_json(data, "node data key")
        header = {k: doc[k] for k in ("format", "version", "node", "mechanism")}
        nonce = bytes.fromhex(doc["nonce"])
        ct = bytes.fromhex(doc["ciphertext"])
    except (DecodeError, KeyError, TypeError, ValueError):
        raise KeystoreError(f"{DATA_KEY_FILE} is malformed") from None
    if header["format"] != _FORMAT or header["version"] != 1 or header["mechanism"] != _MECHANISM:
        raise KeystoreError(f"{DATA_KEY_FILE}: not a tmpc node data key of version 1")
    if header["node"] != node_name:
        raise KeystoreError(f"{DATA_KEY_FILE} belongs to node {header['node']!r}, not this one")
    if len(nonce) != 12 or len(ct) != 32 + 16:
        raise KeystoreError(f"{DATA_KEY_FILE} is malformed")
    with _session(login, rw=False) as session:
        key = _token_key(session, login, create=False)
        try:
            plain = key.decrypt(
                ct, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(nonce, _aad(header))
            )
        except p11.PKCS11Error:
            raise CryptoError(
                "the token key does not open this node's data key (another key, or a tampered "
                f"{DATA_KEY_FILE})"
            ) from None
    if len(plain) != 32:
        raise CryptoError(f"the token key does not open this node's {DATA_KEY_FILE}")
    return SealingKey(bytes(plain))
