"""Chain formats: addresses and transaction digests for the chains tmpc signs for."""
