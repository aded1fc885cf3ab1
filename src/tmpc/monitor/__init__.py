"""``tmpc monitor``: collect every node's audit events, raise alerts, serve a dashboard
(issue 12, items 4 and 5).

Layers, each in its own module:

- :mod:`tmpc.monitor.alerts` -- the alert engine: audit entries and observations in, alerts
  out (no I/O, no clock: time is an argument); every rule and its baseline is in
  ``docs/monitoring.md`` ("Alerts");
- :mod:`tmpc.monitor.view` -- what the dashboard shows, folded from the same entries (no I/O);
- :mod:`tmpc.monitor.sources` -- :class:`NodeSource`, a node's operator API as the monitor
  reads it (``/v1/audit``, ``/v1/health``, ``/v1/wallets``, ``/v1/sessions``), and its HTTPS
  implementation;
- :mod:`tmpc.monitor.store` -- the monitor's SQLite state (collected entries, alerts, webhook
  deliveries), so a restart goes on where it stopped;
- :mod:`tmpc.monitor.delivery` -- alerts to the log and to webhooks (retried with back-off);
- :mod:`tmpc.monitor.dashboard` -- the web page and its JSON;
- :mod:`tmpc.monitor.service` -- :class:`Monitor`: polls the sources, checks each node's chain
  (:class:`~tmpc.audit.verify.ChainChecker`), feeds the engine, records and delivers alerts.
"""

from __future__ import annotations

from tmpc.monitor.alerts import Alert, AlertEngine, AlertSettings
from tmpc.monitor.service import Monitor, MonitorSettings, run_monitor
from tmpc.monitor.sources import HttpNodeSource, NodeSource, SourceError
from tmpc.monitor.store import MonitorStore

__all__ = [
    "Alert",
    "AlertEngine",
    "AlertSettings",
    "HttpNodeSource",
    "Monitor",
    "MonitorSettings",
    "MonitorStore",
    "NodeSource",
    "SourceError",
    "run_monitor",
]
