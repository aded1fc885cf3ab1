"""Sans-I/O protocol cores: DKG, FROST (RFC 9591 and BIP445), BIP340 and Taproot helpers."""
