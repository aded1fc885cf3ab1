"""Key lifecycle protocols: new shares of an existing key (refresh), as per-party machines."""
