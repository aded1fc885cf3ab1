"""Where the monitor reads a node: :class:`NodeSource`, and its HTTPS implementation.

A source answers four questions, each the JSON object of one operator endpoint of the node
(``src/tmpc/node/server.py``; fields the monitor relies on listed with each method). Tests
implement it in memory over real audit-log files; :class:`HttpNodeSource` calls a node.
"""

from __future__ import annotations

import abc
import ssl
from typing import Any

import aiohttp

from tmpc.errors import TmpcError
from tmpc.node.client import Credential
from tmpc.node.config import Card
from tmpc.transport import tls

__all__ = ["HttpNodeSource", "NodeSource", "SourceError"]


class SourceError(TmpcError):
    """A node could not be read: unreachable, refused, or answered something unusable."""


class NodeSource(abc.ABC):
    """One node as the monitor reads it. ``name`` is its name in the cluster file."""

    name: str

    @abc.abstractmethod
    async def audit(self, after: int, limit: int) -> dict[str, Any]:
        """``GET /v1/audit?after=AFTER&limit=LIMIT``: ``{"node", "seq", "entries"}``.

        ``entries``: the node's audit entries with ``seq`` greater than ``after``, at most
        ``limit``, oldest first, each the JSON object of its log line (``seq``, ``at``,
        ``node``, ``type``, ``data``, ``prev``, ``hash``, ``sig``); ``seq``: the log's last
        entry. Raises :class:`SourceError`.
        """

    @abc.abstractmethod
    async def health(self) -> dict[str, Any]:
        """``GET /v1/health``: ``{"name", "status", "cluster", "members", "counters"}``.
        Raises :class:`SourceError` if the node does not answer."""

    @abc.abstractmethod
    async def wallets(self) -> dict[str, Any]:
        """``GET /v1/wallets``: ``{"wallets": [{"wallet_id", "key_id", "group", "scheme",
        "threshold", "parties", "public_key", "epoch", "record"}, ...]}``. Raises
        :class:`SourceError`."""

    @abc.abstractmethod
    async def sessions(self) -> dict[str, Any]:
        """``GET /v1/sessions``: ``{"sessions": [{"session", "request", "status", "protocol",
        "attempt", "participants", "coordinator", "culprits", "missing", "rounds", "started",
        ...}, ...]}``. Raises :class:`SourceError`."""

    async def close(self) -> None:  # noqa: B027 (optional: sources without resources)
        """Release what the source holds (connections); the default holds nothing."""


class HttpNodeSource(NodeSource):
    """A node's operator API over HTTPS with mutual TLS.

    The operator credential's certificate is presented; the server must present exactly the
    certificate the cluster file lists for this member (pinned per node, not any member's:
    see :func:`tmpc.transport.tls.client_context`). One HTTP session per source keeps its
    connection between polls.
    """

    def __init__(self, card: Card, credential: Credential, *, timeout: float = 10.0) -> None:
        self.name = card.name
        self.url = card.url.rstrip("/")
        self._ssl: ssl.SSLContext = tls.client_context(
            credential.cert, credential.key, [card.tls_cert]
        )
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def _get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=4), timeout=self._timeout
            )
        try:
            async with self._session.get(self.url + path, params=params) as resp:
                try:
                    data = await resp.json(content_type=None)
                except (ValueError, aiohttp.ContentTypeError):
                    data = None
                if resp.status >= 400:
                    msg = data.get("error") if isinstance(data, dict) else None
                    raise SourceError(
                        f"node {self.name} answered {path} with HTTP {resp.status}"
                        + (f": {msg}" if msg else "")
                    )
        except (aiohttp.ClientError, ssl.SSLError, OSError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            raise SourceError(f"cannot reach node {self.name} at {self.url}: {reason}") from None
        if not isinstance(data, dict):
            raise SourceError(f"node {self.name} answered {path} with no JSON object")
        return data

    async def audit(self, after: int, limit: int) -> dict[str, Any]:
        """``GET /v1/audit`` (see :meth:`NodeSource.audit`)."""
        return await self._get("/v1/audit", {"after": str(after), "limit": str(limit)})

    async def health(self) -> dict[str, Any]:
        """``GET /v1/health`` (see :meth:`NodeSource.health`)."""
        return await self._get("/v1/health")

    async def wallets(self) -> dict[str, Any]:
        """``GET /v1/wallets`` (see :meth:`NodeSource.wallets`)."""
        return await self._get("/v1/wallets")

    async def sessions(self) -> dict[str, Any]:
        """``GET /v1/sessions`` (see :meth:`NodeSource.sessions`)."""
        return await self._get("/v1/sessions")

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
