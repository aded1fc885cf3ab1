"""Threshold ECDSA on secp256k1: DKLs23 with OT-based multiplication."""
