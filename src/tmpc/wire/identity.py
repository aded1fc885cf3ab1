"""A party node's long-term identity: one secp256k1 secret key, two public keys.

A node's only long-term secret is a 32-byte secp256k1 secret key, which is also its ChillDKG
host key (:func:`tmpc.protocols.dkg.chilldkg.hostpubkey_gen` gives the 33-byte host public
key). From it the node derives

- its **signing key**: the same secret, used for BIP340 Schnorr signatures (libsecp256k1
  through coincurve) over tagged SHA-256 hashes, verified against the x-only form of the host
  public key;
- its **static X25519 key pair**: ``X25519(HKDF-SHA256(ikm=seckey, salt=None,
  info="tmpc/x25519/v1", length=32))``, used for the pairwise encryption keys of
  point-to-point envelopes (:meth:`NodeIdentity.channel_key`).

So one backup restores everything, and the public side :class:`NodePublic` (name, host public
key, X25519 public key) is what a cluster file lists for each member.

The static-static X25519 agreement gives **no forward secrecy**: whoever later learns a
node's secret key can decrypt every recorded point-to-point envelope to or from that node.
"""

from __future__ import annotations

import functools
import re
import secrets
from dataclasses import dataclass
from typing import Final

import coincurve
from coincurve._libsecp256k1 import ffi as _ffi
from coincurve._libsecp256k1 import lib as _lib
from coincurve.context import GLOBAL_CONTEXT as _SECP
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tmpc.encoding import expect_len, lp_join, tagged_hash
from tmpc.errors import CryptoError, DecodeError, ParameterError
from tmpc.protocols.dkg.chilldkg import hostpubkey_gen

__all__ = [
    "NAME_PATTERN",
    "NodeIdentity",
    "NodePublic",
    "check_name",
    "verify_signature",
]

#: A node name: 1 to 64 characters from ``[A-Za-z0-9._-]``.
NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")

# HKDF info strings; changing one changes every derived key (a new version, not an edit).
_X25519_INFO: Final = b"tmpc/x25519/v1"
_CHANNEL_INFO: Final = b"tmpc/wire/p2p-key/v1"


def check_name(name: object, what: str = "node name") -> str:
    """Return ``name`` if it is a valid node name (:data:`NAME_PATTERN`), else raise.

    Raises :class:`~tmpc.errors.ParameterError`; the text quotes nothing but ``what``.
    """
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        raise ParameterError(f"{what} must be 1..64 characters of [A-Za-z0-9._-]")
    return name


def _expect_param(data: object, length: int, what: str) -> bytes:
    """``data`` as bytes if it is ``length`` bytes, else :class:`~tmpc.errors.ParameterError`."""
    if not isinstance(data, bytes | bytearray) or len(data) != length:
        raise ParameterError(f"{what} must be {length} bytes")
    return bytes(data)


@functools.lru_cache(maxsize=1024)
def _xonly(host_pubkey: bytes) -> coincurve.PublicKeyXOnly:
    """The BIP340 x-only key of a 33-byte compressed host public key (DecodeError if invalid).

    Cached (the members' keys are few and public): parsing and the on-curve check cost more
    than a verification."""
    expect_len(host_pubkey, 33, "host public key")
    if host_pubkey[0] not in (2, 3):
        raise DecodeError("host public key is not a compressed point")
    try:
        coincurve.PublicKey(bytes(host_pubkey))  # on the curve?
        return coincurve.PublicKeyXOnly(bytes(host_pubkey[1:]))
    except ValueError:
        raise DecodeError("host public key is not a valid secp256k1 point") from None


@dataclass(frozen=True, slots=True)
class NodePublic:
    """The public identity of a cluster member, as listed in the cluster file.

    ``name``: the node's name (:data:`NAME_PATTERN`); ``host_pubkey``: its 33-byte compressed
    secp256k1 host public key (ChillDKG host key and envelope signing key); ``x25519``: its
    32-byte static X25519 public key. The constructor checks the lengths and that the host key
    is a valid point (:class:`~tmpc.errors.ParameterError` otherwise). Nothing here is secret,
    but every member **must** hold authentic copies (compare the cluster-file hash out of band).
    """

    name: str
    host_pubkey: bytes
    x25519: bytes

    def __post_init__(self) -> None:
        check_name(self.name)
        if not isinstance(self.x25519, bytes) or len(self.x25519) != 32:
            raise ParameterError(f"{self.name}: X25519 public key must be 32 bytes")
        if not isinstance(self.host_pubkey, bytes):
            raise ParameterError(f"{self.name}: host public key must be bytes")
        try:
            _xonly(self.host_pubkey)
        except DecodeError as e:
            raise ParameterError(f"{self.name}: {e}") from None


class NodeIdentity:
    """A node's secret identity: the 32-byte secp256k1 secret key and what derives from it.

    Build one with :meth:`generate` (fresh randomness) or from a stored key
    (``NodeIdentity(seckey)``). The secret key is available as :attr:`seckey` for storing it
    encrypted; it is never in :func:`repr`, and it **must not** be logged or sent anywhere.
    """

    __slots__ = (
        "_host_pubkey",
        "_keypair",
        "_seckey",
        "_shared",
        "_x25519",
        "_x25519_public",
        "_xonly",
    )

    def __init__(self, seckey: bytes) -> None:
        """Take a 32-byte secret key in ``1..n-1``; :class:`~tmpc.errors.ParameterError` else."""
        if not isinstance(seckey, bytes | bytearray):
            raise ParameterError("node secret key must be bytes")
        sk = bytes(seckey)
        self._host_pubkey: bytes = hostpubkey_gen(sk)  # HostSeckeyError (a ParameterError)
        self._seckey: bytes = sk
        x_sk = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_X25519_INFO).derive(sk)
        self._x25519: X25519PrivateKey = X25519PrivateKey.from_private_bytes(x_sk)
        self._x25519_public: bytes = self._x25519.public_key().public_bytes_raw()
        # The libsecp256k1 key pair and x-only public key, made once: coincurve's
        # PrivateKey.sign_schnorr rebuilds both on every call (a scalar multiplication each),
        # and a node signs every audit entry and envelope. In C memory (secret: never exported).
        self._keypair = _ffi.new("secp256k1_keypair *")
        self._xonly = _ffi.new("secp256k1_xonly_pubkey *")
        if not _lib.secp256k1_keypair_create(_SECP.ctx, self._keypair, sk) or not (
            _lib.secp256k1_keypair_xonly_pub(_SECP.ctx, self._xonly, _ffi.NULL, self._keypair)
        ):  # pragma: no cover (hostpubkey_gen refused an invalid key above)
            raise ParameterError("node secret key out of range")
        # Static X25519 shared secrets per peer key (secret: never printed or exported).
        self._shared: dict[bytes, bytes] = {}

    @classmethod
    def generate(cls) -> NodeIdentity:
        """A new identity from 32 bytes of :mod:`secrets` randomness."""
        while True:
            try:
                return cls(secrets.token_bytes(32))
            except ParameterError:  # out of range: probability about 2**-128
                continue

    def __repr__(self) -> str:
        return f"NodeIdentity(host_pubkey={self._host_pubkey.hex()})"

    @property
    def seckey(self) -> bytes:
        """The 32-byte secret key (for encrypted storage only; **must not** be logged)."""
        return self._seckey

    @property
    def host_pubkey(self) -> bytes:
        """The 33-byte compressed host public key (``chilldkg.hostpubkey_gen(seckey)``)."""
        return self._host_pubkey

    @property
    def x25519_public(self) -> bytes:
        """The 32-byte static X25519 public key."""
        return self._x25519_public

    def public(self, name: str) -> NodePublic:
        """This node's :class:`NodePublic` under ``name``."""
        return NodePublic(name, self._host_pubkey, self._x25519_public)

    def sign(self, tag: str, msg: bytes, *, aux_rand: bytes | None = None) -> bytes:
        """BIP340 signature (64 bytes) of ``tagged_hash(tag, msg)`` under the host key.

        ``aux_rand``: 32 bytes of BIP340 auxiliary randomness; by default fresh from
        :mod:`secrets` (tests pass it to be deterministic).

        BIP340, Default Signing, last step: "If Verify(bytes(P), m, sig) returns failure,
        abort": the signature is verified before it is returned (a fault in the computation
        must not release a wrong signature); :class:`~tmpc.errors.CryptoError` if it fails.
        """
        if aux_rand is None:
            aux_rand = secrets.token_bytes(32)
        aux = _expect_param(aux_rand, 32, "aux_rand")
        digest = tagged_hash(tag, msg)
        sig = _ffi.new("unsigned char[64]")
        if not _lib.secp256k1_schnorrsig_sign32(_SECP.ctx, sig, digest, self._keypair, aux):
            raise CryptoError("signing failed")  # pragma: no cover (a valid key pair)
        if not _lib.secp256k1_schnorrsig_verify(_SECP.ctx, sig, digest, 32, self._xonly):
            raise CryptoError("signing failed: the signature does not verify")
        return bytes(_ffi.buffer(sig, 64))

    def channel_key(
        self,
        own_name: str,
        peer: NodePublic,
        *,
        cluster: bytes,
        session: bytes,
        outgoing: bool,
    ) -> bytes:
        """The 32-byte ChaCha20-Poly1305 key of one direction of one session with ``peer``.

        ``outgoing=True``: the key of messages from ``own_name`` to ``peer``; False: from
        ``peer`` to ``own_name``. Both ends derive the same key for a direction::

            shared = X25519(own static key, peer static key)
            key = HKDF-SHA256(ikm=shared, salt=None, length=32,
                              info="tmpc/wire/p2p-key/v1" || lp_join(cluster, session,
                                   sender name, recipient name, sender X25519, recipient X25519))

        so the two directions, two sessions and two clusters never share a key. ``cluster`` and
        ``session`` are 32 bytes each. The key is secret: it **must not** be logged, and it
        **must not** be used with a nonce twice (envelopes draw random 12-byte nonces).

        Raises :class:`~tmpc.errors.ParameterError` for bad lengths or names and
        :class:`~tmpc.errors.CryptoError` if the peer's X25519 key is of low order.
        """
        check_name(own_name)
        _expect_param(cluster, 32, "cluster hash")
        _expect_param(session, 32, "session id")
        if peer.name == own_name:
            raise ParameterError("a node has no channel to itself")
        shared = self._shared.get(peer.x25519)
        if shared is None:
            try:
                shared = self._x25519.exchange(X25519PublicKey.from_public_bytes(peer.x25519))
            except ValueError:  # all-zero shared secret: a low-order point
                raise CryptoError("key agreement failed") from None
            if len(self._shared) < 1024:
                self._shared[peer.x25519] = shared
        me = (own_name.encode(), self._x25519_public)
        them = (peer.name.encode(), peer.x25519)
        (s_name, s_x), (r_name, r_x) = (me, them) if outgoing else (them, me)
        info = _CHANNEL_INFO + lp_join([cluster, session, s_name, r_name, s_x, r_x])
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared)


def verify_signature(host_pubkey: bytes, tag: str, msg: bytes, sig: bytes) -> bool:
    """Whether ``sig`` is a valid BIP340 signature of ``tagged_hash(tag, msg)`` under the
    x-only form of the 33-byte ``host_pubkey``. Returns False (never raises) for a bad key or
    a signature that is not 64 bytes."""
    if not isinstance(sig, bytes) or len(sig) != 64:
        return False
    try:
        key = _xonly(host_pubkey)
        return bool(key.verify(sig, tagged_hash(tag, msg)))
    except (DecodeError, ValueError):
        return False
