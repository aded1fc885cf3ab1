"""Key lifecycle protocols over an existing key, as per-party machines: new shares for the same
parties (:mod:`~tmpc.protocols.lifecycle.refresh`), the key moved to a new party set or
threshold (:mod:`~tmpc.protocols.lifecycle.reshare`), and the certificate of a party's new host
key (:mod:`~tmpc.protocols.lifecycle.rehost`)."""
