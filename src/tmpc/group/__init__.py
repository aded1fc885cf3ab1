"""Prime-order groups and RFC 9591 ciphersuites: secp256k1 (coincurve), ed25519 (PyNaCl)."""

from tmpc.group.base import Ciphersuite, Group, Point
from tmpc.group.ed25519 import ED25519, ed25519
from tmpc.group.secp256k1 import SECP256K1, secp256k1

__all__ = ["ED25519", "SECP256K1", "Ciphersuite", "Group", "Point", "ed25519", "secp256k1"]
