"""The operator's client of a node's HTTPS API (what ``tmpc ... --node URL`` uses).

An operator credential (``--auth FILE`` or ``TMPC_AUTH``) is a JSON file::

    {"format": "tmpc-operator", "version": 1, "name": "...",
     "cert": "<PEM>", "key": "<PEM>", "trust": ["<node certificate PEM>", ...]}

The certificate is listed in the cluster file's ``operators``; ``trust`` pins the nodes'
certificates, so the client talks to no server but a member of its cluster.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tmpc.errors import InputError, KeystoreError, TmpcError
from tmpc.node.config import Operator
from tmpc.state import keystore
from tmpc.transport import tls

__all__ = ["AUTH_ENV", "ApiError", "Credential", "NodeClient", "make_credential"]

AUTH_ENV = "TMPC_AUTH"


class ApiError(TmpcError):
    """The node answered with an error (``status`` is the HTTP status, ``body`` its JSON)."""

    def __init__(self, status: int, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body or {}


class NodeUnreachableError(InputError):
    """No answer from the node (down, wrong URL, TLS refused)."""


@dataclass(frozen=True)
class Credential:
    """An operator credential (see the module docstring)."""

    name: str
    cert: bytes
    key: bytes
    trust: tuple[bytes, ...]

    def ssl_context(self) -> ssl.SSLContext:
        """The client TLS context: presents the operator certificate, trusts the nodes."""
        return tls.client_context(self.cert, self.key, list(self.trust))

    @classmethod
    def load(cls, path: str | None) -> Credential:
        """Read ``path`` (or ``$TMPC_AUTH``); raises :class:`KeystoreError` with what to do."""
        path = path or os.environ.get(AUTH_ENV)
        if not path:
            raise KeystoreError(
                f"no operator credential: pass --auth FILE or set {AUTH_ENV} (tmpc cluster "
                "local writes one)"
            )
        doc = keystore.read_json(Path(path), "operator credential")
        try:
            if doc["format"] != "tmpc-operator" or doc["version"] != 1:
                raise KeystoreError(f"{path}: not a tmpc operator credential")
            return cls(
                str(doc["name"]),
                str(doc["cert"]).encode(),
                str(doc["key"]).encode(),
                tuple(str(t).encode() for t in doc["trust"]),
            )
        except (KeyError, TypeError):
            raise KeystoreError(f"{path}: the operator credential is malformed") from None


def make_credential(operator: Operator, key_pem: bytes, trust: list[bytes]) -> bytes:
    """The content of an operator credential file."""
    doc = {
        "format": "tmpc-operator",
        "version": 1,
        "name": operator.name,
        "cert": operator.cert.decode(),
        "key": key_pem.decode(),
        "trust": [t.decode() for t in trust],
    }
    return json.dumps(doc, indent=2).encode() + b"\n"


class NodeClient:
    """Calls one node's API; each call opens and closes its own HTTP session."""

    def __init__(self, url: str, credential: Credential, *, timeout: float = 120.0) -> None:
        if not url.startswith("https://"):
            raise InputError(f"--node must be an https:// URL, not {url!r}")
        self.url = url.rstrip("/")
        self.credential = credential
        self.timeout = timeout

    async def _call(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        ctx = self.credential.ssl_context()
        conn = aiohttp.TCPConnector(ssl=ctx)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with (
                aiohttp.ClientSession(connector=conn, timeout=timeout) as session,
                session.request(method, self.url + path, json=body) as resp,
            ):
                try:
                    data = await resp.json(content_type=None)
                except (ValueError, aiohttp.ContentTypeError):
                    data = {"error": (await resp.text())[:200]}
                if resp.status >= 400:
                    msg = data.get("error", f"HTTP {resp.status}") if isinstance(data, dict) else ""
                    raise ApiError(resp.status, str(msg), data if isinstance(data, dict) else None)
                if not isinstance(data, dict):
                    raise ApiError(resp.status, "the node sent no JSON object")
                return data
        except (aiohttp.ClientConnectionError, ssl.SSLError, TimeoutError) as exc:
            raise NodeUnreachableError(f"cannot reach the node at {self.url}: {exc}") from None

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Make one API call and return its JSON; raises :class:`ApiError` or
        :class:`NodeUnreachableError`."""
        return asyncio.run(self._call(method, path, body))
