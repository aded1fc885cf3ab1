"""Transports: untrusted movers of envelope bytes between the nodes of a cluster."""
