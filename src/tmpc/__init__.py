"""tmpc: threshold multi-party-computation custody.

A private key is generated already split among n parties; any t of them sign together; the
result is an ordinary single-key signature. Start with :mod:`tmpc.schemes`.
"""

__version__ = "0.1.0"
