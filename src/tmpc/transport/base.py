"""The interface every transport implements.

A transport moves opaque bytes (sealed envelopes, :mod:`tmpc.wire.envelope`) between the
members of one cluster. It is untrusted: authentication and secrecy come from the envelope,
so a transport may lose, duplicate, delay or reorder messages, and the node copes (it stores
what it sends and re-sends until acknowledged, and drops duplicates).

What a transport promises:

- :meth:`Transport.send` returns only once the peer has *acknowledged* the bytes, which a
  receiving node does only after its ``deliver`` callback returned, i.e. after it stored the
  message durably; otherwise it raises :class:`TransportError` and the caller retries later;
- ``deliver`` is called at least once for every acknowledged message (a restart may repeat a
  delivery, never lose one).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

from tmpc.errors import TmpcError

__all__ = ["Deliver", "Transport", "TransportError"]

#: The node's callback for one received message; it returns once the message is stored (or
#: rejected), and only then may the transport acknowledge it.
Deliver = Callable[[bytes], Awaitable[None]]


class TransportError(TmpcError):
    """A message could not be delivered now (peer down, connection refused, timeout).

    Carries no secret; the text names the peer and the failure."""


class Transport(ABC):
    """Moves bytes to and from the other members of the cluster (see the module docstring)."""

    @abstractmethod
    async def start(self, deliver: Deliver) -> None:
        """Begin receiving; every message received is handed to ``deliver``."""

    @abstractmethod
    async def send(self, peer: str, data: bytes, *, session: bytes) -> None:
        """Deliver ``data`` to the member named ``peer``; returns once acknowledged.

        ``session`` (32 bytes) is the session the message belongs to (transports that keep
        a queue per session use it; others ignore it). Raises :class:`TransportError`."""

    @abstractmethod
    async def close(self) -> None:
        """Stop receiving and release connections; idempotent."""
