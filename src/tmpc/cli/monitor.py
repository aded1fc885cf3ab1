"""``tmpc monitor``: watch a cluster's nodes, raise alerts, serve the dashboard
(:mod:`tmpc.monitor`; docs/monitoring.md).

Registered on the main group by :mod:`tmpc.cli.main`; errors follow its exit codes. The
command runs until SIGINT or SIGTERM and then exits 0; ``--once`` makes one pass and exits 0
when it raised no alert, 1 when it did. A bad option, a missing cluster file or credential, a
state directory another monitor holds, or a dashboard address that cannot be bound is one
line ``tmpc: error: ...`` and status 2.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import click

from tmpc.errors import ParameterError
from tmpc.monitor.alerts import FIRING, Alert
from tmpc.monitor.dashboard import is_loopback, parse_listen
from tmpc.monitor.delivery import WebhookSender, check_webhook_url
from tmpc.monitor.service import Monitor, MonitorSettings, run_monitor, run_once
from tmpc.monitor.sources import HttpNodeSource, NodeSource
from tmpc.monitor.store import MonitorStore
from tmpc.node import config as node_config
from tmpc.node.client import Credential
from tmpc.state import keystore

__all__ = ["monitor"]

_MAX_CLUSTER_FILE = 8 << 20


def _echo(line: str) -> None:
    click.echo(f"tmpc monitor: {line}", err=True)


def _alert_line(alert: Alert) -> str:
    what = "" if alert.status == FIRING else f"{alert.status} "
    return f"{what}[{alert.severity} {alert.kind}] {alert.message} (id {alert.id})"


@click.command("monitor")
@click.option(
    "--cluster",
    "cluster_file",
    required=True,
    type=click.Path(path_type=Path),
    help="The cluster file: the nodes to watch and their host keys.",
)
@click.option("--auth", default=None, metavar="FILE", help="Operator credential (else $TMPC_AUTH).")
@click.option(
    "--state",
    "state_dir",
    default=Path("tmpc-monitor"),
    show_default=True,
    type=click.Path(path_type=Path),
    help="Directory of the monitor's state (collected entries, alerts, deliveries).",
)
@click.option(
    "--listen",
    default="127.0.0.1:8470",
    show_default=True,
    metavar="HOST:PORT",
    help="Where the dashboard listens (it has no authentication: keep it on loopback).",
)
@click.option(
    "--webhook",
    "webhooks",
    multiple=True,
    metavar="URL",
    help="POST each alert's JSON here, retried until acknowledged (repeatable).",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    help="Seconds between polls of the nodes.",
)
@click.option(
    "--stall-after",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds (plus two intervals) after which an unfinished request counts as stalled.",
)
@click.option(
    "--heartbeat-max-age",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    help="Seconds a wallet's newest heartbeat signature may be old.",
)
@click.option(
    "--network",
    type=click.Choice(["mainnet", "testnet", "signet", "regtest"]),
    default="mainnet",
    show_default=True,
    help="Network of the addresses shown.",
)
@click.option(
    "--once",
    is_flag=True,
    help="One pass: print its new alerts and resolutions and exit (1 if any new alert).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Also print each alert on standard output, as a JSON line.",
)
def monitor(
    cluster_file: Path,
    auth: str | None,
    state_dir: Path,
    listen: str,
    webhooks: tuple[str, ...],
    interval: float,
    stall_after: float,
    heartbeat_max_age: float,
    network: str,
    once: bool,
    as_json: bool,
) -> None:
    """Collect every node's audit events, raise alerts and serve a live dashboard.

    Each poll checks every new audit entry (hash chain and signature under the node's host key
    in the cluster file) and runs the alert rules of docs/monitoring.md. Alerts go to standard
    error, to STATE/alerts.jsonl, to the dashboard and to each --webhook. Runs until SIGINT or
    SIGTERM.
    """
    from tmpc.cli.main import EXIT_CHECK_FAILED

    try:
        host, port = parse_listen(listen)
        urls = [check_webhook_url(u) for u in webhooks]
    except ValueError as exc:
        raise ParameterError(str(exc)) from None
    data = keystore.read_limited(cluster_file, "cluster file", _MAX_CLUSTER_FILE)
    cluster = node_config.parse_cluster(data, str(cluster_file))
    credential = Credential.load(auth)
    timeout = max(5.0, 2 * interval)
    sources: dict[str, NodeSource] = {
        c.name: HttpNodeSource(c, credential, timeout=timeout) for c in cluster.members
    }
    settings = MonitorSettings(
        interval=interval,
        stall_after=stall_after,
        heartbeat_max_age=heartbeat_max_age,
        network=network,
        once=once,
    )
    store = MonitorStore.open(state_dir)
    try:
        mon = Monitor(cluster, sources, store, settings=settings, echo=_echo, log_alerts=not once)
        if once:
            senders = [WebhookSender(store, u, log=_echo) for u in urls]
            alerts = asyncio.run(run_once(mon, senders))
            for a in alerts:
                click.echo(json.dumps(a.to_json(), sort_keys=True) if as_json else _alert_line(a))
            firing = [a for a in alerts if a.status == FIRING]
            _echo(
                f"{len(firing)} new alert(s), {len(alerts) - len(firing)} resolved; "
                f"{sum(s.checker.seq for s in mon.nodes.values())} audit entries held of "
                f"{len(mon.nodes)} nodes"
            )
            if firing:  # a resolution alone is good news: status 0
                sys.exit(EXIT_CHECK_FAILED)
            return
        if as_json:

            def print_json(alerts: list[Alert]) -> None:
                for a in alerts:
                    click.echo(json.dumps(a.to_json(), sort_keys=True))

            mon.on_alerts(print_json)
        if not is_loopback(host):
            _echo(f"warning: the dashboard listens on {host}, beyond loopback, and has no login")
        asyncio.run(_serve(mon, store, urls, (host, port), len(cluster.members)))
    finally:
        store.close()


async def _serve(
    mon: Monitor, store: MonitorStore, urls: list[str], listen: tuple[str, int], n: int
) -> None:
    """Run the monitor until SIGINT or SIGTERM (which end it cleanly: status 0)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = (signal.SIGINT, signal.SIGTERM)
    for sig in handled:
        loop.add_signal_handler(sig, stop.set)
    senders = [WebhookSender(store, u, log=_echo) for u in urls]

    def ready(url: str | None) -> None:
        _echo(
            f"watching {n} nodes of cluster {mon.cluster.id} every {mon.settings.interval:g} s; "
            f"state {store.directory}; dashboard {url}; {len(senders)} webhook(s)"
        )

    try:
        await run_monitor(mon, stop, webhooks=senders, listen=listen, ready=ready)
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
    _echo("stopped")
