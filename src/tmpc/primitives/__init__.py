"""Single-key primitives the threshold protocols produce and the chains check: BIP340
Schnorr signatures (:mod:`tmpc.primitives.bip340`) and ECDSA encodings and verification
(:mod:`tmpc.primitives.ecdsa_format`). No protocol state, no I/O."""
