"""Durable local state: key shares sealed under a passphrase (:mod:`tmpc.state.keystore`),
the crash-safe per-party state databases (:mod:`tmpc.state.store`) and the machine's
single-use ledger (:mod:`tmpc.state.ledger`). Used by the one-process commands and by party
nodes alike."""
