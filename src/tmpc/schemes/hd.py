"""BIP32 public (non-hardened) derivation from a threshold key: many addresses, one DKG.

No party holds the private key, so only non-hardened children exist: each child key is
``K_i = K + IL·G`` with ``IL`` from ``HMAC-SHA512(chain_code, serP(K) || ser32(i))`` (BIP32
``CKDpub``). The additive tweak ``sum IL`` is public; every party applies it to its own share
locally (``x_j`` stays a share of the parent key; the signing protocols add the tweak), so a
derived key signs without a new DKG.

The wallet's chain code is agreed in the DKG: it is a hash of the DKG's recovery data, which
every participant certified (ChillDKG CertEq), so all parties derive the same chain code and
nobody chose it. **Note**: as with any BIP32 xpub, the chain code plus one child's private key
would reveal the parent's; here no child private key ever exists in one place either.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

import base58

from tmpc.encoding import hash160, tagged_hash
from tmpc.errors import DecodeError, ParameterError
from tmpc.group.secp256k1 import N_ORDER, SECP256K1, SecpPoint

__all__ = [
    "HARDENED",
    "ExtendedPublicKey",
    "chain_code_from_dkg",
    "derive_path",
    "parse_path",
]

HARDENED = 0x80000000
_XPUB_VERSIONS = {
    "mainnet": bytes.fromhex("0488B21E"),
    "testnet": bytes.fromhex("043587CF"),
}


def chain_code_from_dkg(recovery_data: bytes) -> bytes:
    """The wallet's 32-byte BIP32 chain code, agreed through the DKG's certified transcript."""
    if not recovery_data:
        raise ParameterError("the wallet has no DKG recovery data to derive a chain code from")
    return tagged_hash("tmpc/bip32/chain-code", recovery_data)


def parse_path(path: str) -> list[int]:
    """Parse ``m/0/5`` (or ``0/5``) into child indices; hardened steps are refused.

    Raises :class:`ParameterError` for a malformed path, an index >= 2^31, or a hardened
    step (``'`` or ``h``): hardened derivation needs the private key, which no party has.
    """
    text = path.strip()
    parts = text.split("/")
    if parts and parts[0] == "m":
        parts = parts[1:]
    if text in ("", "m"):
        return []
    out = []
    for p in parts:
        if p.endswith(("'", "h", "H")):
            raise ParameterError(
                f"hardened step {p!r} in {path!r}: "
                "a threshold key derives non-hardened children only"
            )
        # ASCII digits only: str.isdigit() also admits superscripts and other scripts' digits.
        if not (p.isascii() and p.isdigit()):
            raise ParameterError(f"path {path!r} is not of the form m/0/5")
        i = int(p)
        if i >= HARDENED:
            raise ParameterError(f"index {i} in {path!r} is not below 2^31")
        out.append(i)
    return out


def _ckd_pub(K: SecpPoint, chain_code: bytes, i: int) -> tuple[SecpPoint, bytes, int]:
    # BIP32 CKDpub: "I = HMAC-SHA512(Key = c_par, Data = serP(K_par) || ser32(i))".
    data = K.encode() + i.to_bytes(4, "big")
    digest = hmac.new(chain_code, data, hashlib.sha512).digest()
    IL, IR = int.from_bytes(digest[:32], "big"), digest[32:]
    # "In case parse256(IL) >= n or K_i is the point at infinity, the resulting key is
    # invalid, and one should proceed with the next value for i."
    if IL >= N_ORDER:
        raise ParameterError(f"child index {i} is invalid under BIP32; use the next index")
    child = SECP256K1.base_mul(IL) + K
    if child.is_identity():
        raise ParameterError(f"child index {i} is invalid under BIP32; use the next index")
    assert isinstance(child, SecpPoint)
    return child, IR, IL


def derive_path(
    public_key: SecpPoint, chain_code: bytes, path: Sequence[int]
) -> tuple[SecpPoint, bytes, int]:
    """Derive along non-hardened ``path``: ``(child key, child chain code, total tweak)``.

    The child key equals ``public_key + tweak·G``; signers add ``tweak`` to the key.
    """
    if len(chain_code) != 32:
        raise ParameterError("a BIP32 chain code is 32 bytes")
    K, c, tweak = public_key, chain_code, 0
    for i in path:
        if not 0 <= i < HARDENED:
            raise ParameterError("only non-hardened indices below 2^31 can be derived")
        K, c, IL = _ckd_pub(K, c, i)
        tweak = (tweak + IL) % N_ORDER
    return K, c, tweak


@dataclass(frozen=True)
class ExtendedPublicKey:
    """A BIP32 extended public key (xpub / tpub)."""

    public_key: SecpPoint
    chain_code: bytes
    depth: int = 0
    parent_fingerprint: bytes = bytes(4)
    child_number: int = 0
    network: str = "mainnet"

    def encode(self) -> str:
        """Base58Check serialisation (78 bytes: version, depth, fingerprint, index, c, K)."""
        payload = (
            _XPUB_VERSIONS[self.network]
            + bytes([self.depth])
            + self.parent_fingerprint
            + self.child_number.to_bytes(4, "big")
            + self.chain_code
            + self.public_key.encode()
        )
        return str(base58.b58encode_check(payload).decode())

    @classmethod
    def decode(cls, text: str) -> ExtendedPublicKey:
        """Parse an xpub/tpub; raises :class:`DecodeError` for anything else."""
        try:
            raw = base58.b58decode_check(text.strip())
        except ValueError:
            raise DecodeError("extended key: bad base58 or checksum") from None
        if len(raw) != 78:
            raise DecodeError("extended key: wrong length")
        network = next((n for n, v in _XPUB_VERSIONS.items() if raw[:4] == v), None)
        if network is None:
            raise DecodeError("not an extended public key (xpub/tpub)")
        depth, fingerprint, child = raw[4], raw[5:9], int.from_bytes(raw[9:13], "big")
        if depth == 0 and (fingerprint != bytes(4) or child != 0):
            raise DecodeError("extended key: depth 0 with a parent fingerprint or index")
        key = SECP256K1.decode_point(raw[45:78])
        return cls(key, raw[13:45], depth, fingerprint, child, network)

    def fingerprint(self) -> bytes:
        """First 4 bytes of HASH160 of the public key (the children's parent fingerprint)."""
        return hash160(self.public_key.encode())[:4]

    def derive(self, path: Sequence[int]) -> ExtendedPublicKey:
        """The extended public key at ``path`` below this one."""
        node = self
        for i in path:
            key, cc, _ = derive_path(node.public_key, node.chain_code, [i])
            node = ExtendedPublicKey(key, cc, node.depth + 1, node.fingerprint(), i, node.network)
        return node
