"""BIP341 Taproot helpers for threshold keys: TapTweak, output key, tweak list, address.

A threshold public key ``P`` (the BIP341 *internal key*) becomes a Taproot output key

    Q = lift_x(x(P)) + int(hash_TapTweak(xbytes(P) || merkle_root)) * G

and coins sent to ``Q`` are spent on the key path by a BIP340 signature under ``xbytes(Q)``.
:func:`taproot_tweaks_for` gives the one BIP445 x-only tweak that makes
:func:`tmpc.protocols.bip445.sign_local` produce exactly that signature.

tmpc's default: an unspendable script path
    Unless the wallet was created with a script tree, tmpc's output key commits to **no**
    script path: ``Q = P + int(hash_TapTweak(xbytes(P))) * G`` (the empty Merkle root), the
    BIP341 recommendation for key-path-only outputs (BIP341 footnote on "unspendable script
    path"). Under a Pedersen-style DKG one participant could otherwise choose its contribution
    so that the group key ``P`` is itself a tweaked key ``P' + hash_TapTweak(P' || m)G`` hiding
    a script ``m`` that only it can spend; committing the output key to the empty script tree
    on top of ``P`` removes any script path a participant might have hidden in ``P`` from the
    address that coins are sent to (see :func:`unspendable_script_path_default`).

Addresses are segwit v1 with the bech32m checksum (BIP350). The pinned ``bech32==1.2.0``
package (the newest on PyPI) implements only the original bech32 checksum: its
``bech32.encode(hrp, 1, prog)`` returns an address with the **wrong** (BIP173) checksum for
witness v1. So :func:`taproot_address` uses the package's polymod, HRP expansion, charset and
bit conversion and applies the BIP350 constant itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

import bech32

from tmpc.encoding import tagged_hash
from tmpc.errors import DecodeError, ParameterError
from tmpc.group.base import Point
from tmpc.group.secp256k1 import SECP256K1, SecpPoint

__all__ = [
    "NETWORK_HRP",
    "TapLeaf",
    "TapTree",
    "decode_taproot_address",
    "network_hrp",
    "tapbranch_hash",
    "tapleaf_hash",
    "taproot_address",
    "taproot_merkle_root",
    "taproot_output_key",
    "taproot_script_pubkey",
    "taproot_tweak",
    "taproot_tweaks_for",
    "unspendable_script_path_default",
]

NETWORK_HRP: Final[dict[str, str]] = {
    "mainnet": "bc",
    "testnet": "tb",
    "signet": "tb",
    "regtest": "bcrt",
}
"""Bech32 human-readable part per Bitcoin network (BIP173/BIP350)."""

_BECH32M_CONST: Final = 0x2BC830A3
TAPSCRIPT_LEAF_VERSION: Final = 0xC0


def _internal_xonly(internal: Point | bytes) -> bytes:
    """The 32-byte x-only encoding of the internal key (a point, 32 or 33 bytes)."""
    if isinstance(internal, SecpPoint):
        if internal.is_identity():
            raise ParameterError("the internal key is the point at infinity")
        return internal.xonly()
    if isinstance(internal, Point):
        raise ParameterError("the internal key must be a secp256k1 point")
    if isinstance(internal, bytes | bytearray) and len(internal) == 33:
        return SECP256K1.decode_point(bytes(internal)).xonly()
    if not isinstance(internal, bytes | bytearray) or len(internal) != 32:
        raise DecodeError("the internal key must be a point, 32 x-only or 33 compressed bytes")
    return bytes(internal)


def taproot_tweak(internal_xonly: bytes, merkle_root: bytes | None) -> bytes:
    """BIP341 ``t = hash_TapTweak(p || merkle_root)`` as 32 bytes (a scalar below the order).

    Args:
        internal_xonly: the 32-byte x-only internal key ``p``.
        merkle_root: the 32-byte script tree root, or None for a key-path-only output (then
            ``t = hash_TapTweak(p)``, the unspendable-script-path commitment).

    Raises:
        DecodeError: wrong lengths.
        ParameterError: ``t`` not below the group order (probability about 2^-128).
    """
    if not isinstance(internal_xonly, bytes | bytearray) or len(internal_xonly) != 32:
        raise DecodeError("the internal key must be 32 x-only bytes")
    if merkle_root is None:
        root = b""
    elif isinstance(merkle_root, bytes | bytearray) and len(merkle_root) == 32:
        root = bytes(merkle_root)
    else:
        raise DecodeError("the Merkle root must be 32 bytes or None")
    # BIP341 taproot_tweak_pubkey: t = int_from_bytes(tagged_hash("TapTweak", pubkey + h))
    t = tagged_hash("TapTweak", bytes(internal_xonly) + root)
    # > if t >= SECP256K1_ORDER: raise ValueError
    if int.from_bytes(t, "big") >= SECP256K1.order:
        raise ParameterError("TapTweak hash is not below the group order")
    return t


def taproot_output_key(
    internal: Point | bytes, merkle_root: bytes | None = None
) -> tuple[bytes, int]:
    """BIP341 ``taproot_tweak_pubkey``: the output key ``Q = lift_x(p) + t*G``.

    Args:
        internal: the internal key: a secp256k1 point (its x coordinate is used, BIP341 lifts
            it to even y), 32 x-only bytes or 33 compressed bytes.
        merkle_root: 32-byte script tree root or None (tmpc's default, see module docs).

    Returns:
        ``(output_xonly, parity)``: the 32-byte x-only output key and the parity bit of ``Q``
        (needed in a script-path control block).

    Raises:
        DecodeError: an invalid key or root encoding.
        ParameterError: the point at infinity as internal key or result.
    """
    p = _internal_xonly(internal)
    t = int.from_bytes(taproot_tweak(p, merkle_root), "big")
    # > P = lift_x(int_from_bytes(pubkey)); Q = point_add(P, point_mul(G, t))
    Q = SECP256K1.lift_x(p) + SECP256K1.base_mul(t)
    if Q.is_identity():
        raise ParameterError("the tweaked key is the point at infinity")
    # > return 0 if has_even_y(Q) else 1, bytes_from_int(x(Q))
    return Q.xonly(), 0 if Q.has_even_y() else 1


def taproot_tweaks_for(
    internal: Point | bytes, merkle_root: bytes | None = None
) -> list[tuple[bytes, bool]]:
    """The BIP445 tweak list that signs under :func:`taproot_output_key` of ``internal``.

    One x-only tweak ``(hash_TapTweak(p || merkle_root), True)``: BIP445 ``ApplyTweak`` with
    ``is_xonly_t`` computes ``with_even_y(P) + t*G``, which is BIP341's ``lift_x(p) + t*G``.
    Pass it as ``tweaks=`` to :func:`tmpc.protocols.bip445.sign_local`.
    """
    return [(taproot_tweak(_internal_xonly(internal), merkle_root), True)]


def unspendable_script_path_default(internal: Point | bytes) -> tuple[bytes, int]:
    """tmpc's default output key: ``Q = P + int(hash_TapTweak(xbytes(P))) * G``.

    The output key commits to an unspendable script path (no script tree, empty Merkle
    root), as BIP341 recommends for outputs that need only the key path and as the BIP445
    draft requires of key generation ("must commit the threshold public key to an unspendable
    script path"). So no participant of the DKG can have hidden a script path that bypasses
    the t-of-n policy: whatever ``P`` is, coins sent to ``Q`` can only be spent by a
    threshold signature (or by a script path nobody can know, since the commitment is to the
    empty tree). Same as ``taproot_output_key(internal, None)``.

    Returns:
        ``(output_xonly, parity)``.
    """
    return taproot_output_key(internal, None)


def taproot_script_pubkey(output_xonly: bytes) -> bytes:
    """The 34-byte segwit v1 scriptPubKey ``OP_1 OP_PUSHBYTES_32 <output key>``."""
    if not isinstance(output_xonly, bytes | bytearray) or len(output_xonly) != 32:
        raise DecodeError("the output key must be 32 x-only bytes")
    return b"\x51\x20" + bytes(output_xonly)


def network_hrp(network: str) -> str:
    """The bech32 human-readable part of a Bitcoin network; :class:`ParameterError` if unknown."""
    try:
        return NETWORK_HRP[network]
    except (KeyError, TypeError):
        raise ParameterError(
            f"unknown network {network!r}; use one of {', '.join(NETWORK_HRP)}"
        ) from None


def taproot_address(output_xonly: bytes, network: str = "mainnet") -> str:
    """The BIP350 bech32m address (witness v1) of a 32-byte x-only output key.

    Args:
        output_xonly: the output key, e.g. ``taproot_output_key(P)[0]``.
        network: ``mainnet`` (``bc1p...``), ``testnet`` or ``signet`` (``tb1p...``),
            ``regtest`` (``bcrt1p...``).

    Raises:
        DecodeError: the key is not 32 bytes.
        ParameterError: an unknown network.
    """
    if not isinstance(output_xonly, bytes | bytearray) or len(output_xonly) != 32:
        raise DecodeError("the output key must be 32 x-only bytes")
    hrp = network_hrp(network)
    five_bit = bech32.convertbits(bytes(output_xonly), 8, 5)
    if five_bit is None:  # cannot happen for 8-bit input
        raise DecodeError("the output key is not a byte string")
    data = [1, *five_bit]
    # BIP350: polymod(hrp_expand(hrp) + data + [0]*6) ^ BECH32M_CONST gives the checksum.
    values = bech32.bech32_hrp_expand(hrp) + data
    polymod = bech32.bech32_polymod([*values, 0, 0, 0, 0, 0, 0]) ^ _BECH32M_CONST
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    charset = bech32.CHARSET
    return hrp + "1" + "".join(charset[d] for d in data + checksum)


def decode_taproot_address(address: str, network: str = "mainnet") -> bytes:
    """The 32-byte output key of a bech32m witness v1 address on ``network``.

    Raises:
        DecodeError: not a valid bech32m v1 address of 32 bytes on that network (a bech32
            checksum, as ``bech32.encode`` wrongly makes for v1, is rejected).
        ParameterError: an unknown network.
    """
    hrp = network_hrp(network)
    if not isinstance(address, str) or (address.lower() != address and address.upper() != address):
        raise DecodeError("not a bech32m address")
    addr = address.lower()
    pos = addr.rfind("1")
    if addr[:pos] != hrp or pos + 7 > len(addr) or len(addr) > 90:
        raise DecodeError(f"not a {network} bech32m address")
    charset = bech32.CHARSET
    if not all(c in charset for c in addr[pos + 1 :]):
        raise DecodeError("not a bech32m address")
    data = [charset.find(c) for c in addr[pos + 1 :]]
    values = bech32.bech32_hrp_expand(hrp) + data
    if bech32.bech32_polymod(values) != _BECH32M_CONST:
        raise DecodeError("bad bech32m checksum")
    if not data or data[0] != 1:
        raise DecodeError("not a witness v1 address")
    prog = bech32.convertbits(data[1:-6], 5, 8, False)
    if prog is None or len(prog) != 32:
        raise DecodeError("not a 32-byte witness v1 program")
    return bytes(prog)


# --------------------------------------------------------------------------------------------
# Script trees (BIP341 taproot_tree_helper)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TapLeaf:
    """A script leaf: ``leaf_version`` (even, 0xC0 for tapscript) and the script bytes."""

    script: bytes
    leaf_version: int = TAPSCRIPT_LEAF_VERSION


TapTree: TypeAlias = TapLeaf | Sequence["TapTree"]
"""A script tree: a :class:`TapLeaf` or a sequence of exactly two subtrees."""


def _compact_size(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    if n <= 0xFFFFFFFF:
        return b"\xfe" + n.to_bytes(4, "little")
    return b"\xff" + n.to_bytes(8, "little")


def tapleaf_hash(script: bytes, leaf_version: int = TAPSCRIPT_LEAF_VERSION) -> bytes:
    """BIP341 ``hash_TapLeaf(leaf_version || compact_size(len(script)) || script)``."""
    if not isinstance(leaf_version, int) or not 0 <= leaf_version <= 0xFE or leaf_version & 1:
        raise ParameterError("the leaf version must be an even byte")
    return tagged_hash("TapLeaf", bytes([leaf_version]) + _compact_size(len(script)) + script)


def tapbranch_hash(a: bytes, b: bytes) -> bytes:
    """BIP341 ``hash_TapBranch`` of two 32-byte child hashes, in lexicographic order."""
    if len(a) != 32 or len(b) != 32:
        raise DecodeError("branch children must be 32-byte hashes")
    return tagged_hash("TapBranch", a + b if a < b else b + a)


def taproot_merkle_root(tree: TapTree | None) -> bytes | None:
    """The 32-byte Merkle root of a script tree (None for no tree), as BIP341's helper.

    Raises:
        ParameterError: a branch that is not exactly two subtrees.
    """
    if tree is None:
        return None
    if isinstance(tree, TapLeaf):
        return tapleaf_hash(tree.script, tree.leaf_version)
    if len(tree) != 2:
        raise ParameterError("a script tree branch must have exactly two children")
    left = taproot_merkle_root(tree[0])
    right = taproot_merkle_root(tree[1])
    if left is None or right is None:
        raise ParameterError("a script tree branch must not have an empty child")
    return tapbranch_hash(left, right)
