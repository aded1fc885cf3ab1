"""Where alerts go besides the dashboard: the log and webhooks.

- :class:`AlertLog`: one line per alert (and per resolution) on the monitor's standard error
  and one JSON line in ``STATE/alerts.jsonl``;
- :class:`WebhookSender`: ``POST URL`` of each alert's JSON (``Content-Type:
  application/json``, ``Idempotency-Key: <alert id>``; a resolution, the same alert with
  ``status`` ``resolved``, has ``Idempotency-Key: <alert id>:resolved``), in the order the
  alerts were raised and resolved, retried with exponential back-off (0.5 s doubling up to
  30 s, for as long as the monitor runs) until the receiver answers 2xx; only then is the
  delivery recorded (:meth:`~tmpc.monitor.store.MonitorStore.mark_delivered`), and a recorded
  delivery is never posted again, across restarts.

The guarantee is *at least once, with a key*: a crash between the receiver's 2xx and the
record can post that one alert (or resolution) again, with the same body and
``Idempotency-Key``; a receiver that ignores a key it has seen gets every alert and every
resolution exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import aiohttp

from tmpc.monitor.alerts import FIRING, Alert
from tmpc.monitor.store import MonitorStore

__all__ = ["ALERTS_FILE", "AlertLog", "WebhookSender", "check_webhook_url", "wait_for"]

ALERTS_FILE: Final = "alerts.jsonl"
USER_AGENT: Final = "tmpc-monitor/1"


def check_webhook_url(url: str) -> str:
    """``url`` if it is an ``http://`` or ``https://`` URL with a host; else ValueError."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        raise ValueError(f"--webhook {url!r} is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--webhook must be an http:// or https:// URL, not {url!r}")
    return url


async def wait_for(events: list[asyncio.Event], timeout: float | None) -> None:
    """Return when one of ``events`` is set or after ``timeout`` seconds (None: no limit)."""
    if any(e.is_set() for e in events):
        return
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
        for w in waiters:
            with contextlib.suppress(asyncio.CancelledError):
                await w


class AlertLog:
    """Alerts to the log: ``echo`` (standard error) and ``path`` (JSON lines, appended)."""

    def __init__(self, path: Path, echo: Callable[[str], None] | None = None) -> None:
        self.path = path
        self._echo = echo

    def write(self, alert: Alert) -> None:
        """Log one alert or resolution (a line to ``echo``: ``alert [severity kind] ...`` or
        ``alert resolved [severity kind] ...``; a JSON line to the file, flushed)."""
        if self._echo is not None:
            what = "alert" if alert.status == FIRING else f"alert {alert.status}"
            self._echo(f"{what} [{alert.severity} {alert.kind}] {alert.message} (id {alert.id})")
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(alert.to_json(), sort_keys=True) + "\n")


class WebhookSender:
    """Posts the alerts and resolutions ``url`` is owed, in order, until each is
    acknowledged (2xx).

    ``min_backoff`` / ``max_backoff``: the first wait after a failure and the cap (doubling in
    between); ``timeout``: per request; ``log``: status lines (a failure streak's first
    failure, and each retry's delay).
    """

    def __init__(
        self,
        store: MonitorStore,
        url: str,
        *,
        min_backoff: float = 0.5,
        max_backoff: float = 30.0,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.url = check_webhook_url(url)
        self._store = store
        self._min = min_backoff
        self._max = max_backoff
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock
        self._log = log
        self._wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self.posts = 0
        store.add_target(url)

    def wake(self) -> None:
        """New alerts were recorded: deliver them (after the current back-off, if any)."""
        self._wake.set()

    async def _post(self, alert: Alert) -> tuple[bool, str]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        self.posts += 1
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": alert.key,
            "User-Agent": USER_AGENT,
        }
        body = json.dumps(alert.to_json(), sort_keys=True).encode()
        try:
            async with self._session.post(self.url, data=body, headers=headers) as resp:
                await resp.read()
                if 200 <= resp.status < 300:
                    self._store.mark_delivered(alert.key, self.url, resp.status, self._clock())
                    return True, f"HTTP {resp.status}"
                return False, f"HTTP {resp.status}"
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return False, str(exc) or type(exc).__name__

    async def deliver_pending(self) -> int:
        """Post each pending alert (or resolution) once, in order, stopping at the first
        failure (no back-off: what ``--once`` does). Returns how many were acknowledged."""
        done = 0
        for alert in self._store.pending(self.url):
            ok, why = await self._post(alert)
            if not ok:
                self._say(f"webhook {self.url}: alert {alert.key} not delivered ({why})")
                break
            done += 1
        return done

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set: pending alerts and resolutions in order, each retried
        with back-off until acknowledged; then wait for :meth:`wake`."""
        backoff = self._min
        while not stop.is_set():
            self._wake.clear()  # before looking: an alert recorded meanwhile wakes us again
            pending = self._store.pending(self.url, 50)
            if not pending:
                await wait_for([stop, self._wake], None)
                continue
            for alert in pending:
                if stop.is_set():
                    return
                ok, why = await self._post(alert)
                if ok:
                    if backoff > self._min:
                        self._say(f"webhook {self.url}: delivering again")
                    backoff = self._min
                    continue
                self._say(
                    f"webhook {self.url}: alert {alert.key} not delivered ({why}); "
                    f"retrying in {backoff:g} s"
                )
                await wait_for([stop], backoff)
                backoff = min(2 * backoff, self._max)
                break

    def _say(self, line: str) -> None:
        if self._log is not None:
            self._log(line)

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
