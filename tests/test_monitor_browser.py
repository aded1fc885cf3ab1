"""The monitor's dashboard in a real headless browser (issue 12, item 5).

Debian's ``chromium`` driven by Selenium through Debian's ``chromium-driver`` (the two come
from one Debian build, so they always match; nothing is downloaded: the driver's and the
browser's paths are given, and Selenium Manager is told to stay offline). ``make test``
installs both (``make chromium``); without them this test fails and says so.

Done when: the test loads the dashboard, sees the nodes, a completed signature, an alert and a
resolved one, and saves a screenshot as a test artifact (``tmp_path/dashboard.png``, copied to
``test-artifacts/dashboard.png`` at the top of the repository, which git ignores).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.monitor_helpers import Clock, FakeNode, Logs, make_cluster, wallet_entry
from tmpc import schemes
from tmpc.monitor import Monitor, MonitorSettings, MonitorStore, run_monitor

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "test-artifacts"


class Served:
    """A monitor with its dashboard, run in a thread of its own until :meth:`stop`."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.url: str | None = None
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()

            def ready(url: str | None) -> None:
                self.url = url
                self._ready.set()

            await run_monitor(self.monitor, self._stop, listen=("127.0.0.1", 0), ready=ready)

        try:
            self._loop.run_until_complete(main())
        except BaseException as exc:  # reported by start()/stop()
            self.error = exc
            self._ready.set()
        finally:
            self._loop.close()

    def start(self) -> str:
        self._thread.start()
        assert self._ready.wait(15), "the dashboard did not start"
        if self.error is not None:
            raise self.error
        assert self.url is not None
        return self.url

    def stop(self) -> None:
        if self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
        if self.error is not None:
            raise self.error


def fill_logs(logs: Logs, wallet: str) -> None:
    """Five completed signatures over the last minutes, one live session, one aborted
    session blaming c, a failed heartbeat followed by a good one (an alert, resolved)."""
    now = logs.clock.now
    for i in range(5):
        at = now - 300 + i * 50
        rid, sid = f"sig{i}", f"5e{i:02d}"
        digest = hashlib.sha256(rid.encode()).hexdigest()
        started = {"session": sid, "request": rid, "protocol": "frost-bip340", "wallet": wallet,
                   "coordinator": "a", "participants": ["a", "b"], "attempt": 1}  # fmt: skip
        for node in ("a", "b"):
            logs.write(node, "session.started", started, at)
            logs.write(node, "session.round", {"session": sid, "round": 1, "seconds": 0.1}, at)
            logs.write(node, "session.round", {"session": sid, "round": 2, "seconds": 0.1}, at)
            logs.write(
                node, "session.completed",
                {"session": sid, "request": rid, "protocol": "frost-bip340",
                 "seconds": 0.2 + 0.1 * i, "signature_sha256": digest}, at + 0.3,
            )  # fmt: skip
        logs.write(
            "a", "request.completed",
            {"request": rid, "kind": "sign", "wallet": wallet, "participants": ["a", "b"],
             "signature_sha256": digest}, at + 0.4,
        )  # fmt: skip
    live = {"session": "11ve", "request": "live", "protocol": "frost-bip340", "wallet": wallet,
            "coordinator": "b", "participants": ["b", "c"], "attempt": 1}  # fmt: skip
    logs.write("b", "session.started", live, now - 5)
    logs.write("b", "session.round", {"session": "11ve", "round": 1, "seconds": 0.1}, now - 4)
    logs.write(
        "a", "session.aborted",
        {"session": "ab0e", "request": "bad1", "reason": "c sent an invalid share",
         "culprits": ["c"]}, now - 60,
    )  # fmt: skip
    logs.write("a", "heartbeat.failed", {"wallet": wallet, "error": "b did not answer"}, now - 30)
    hb = {"wallet": wallet, "epoch": 0, "seconds": 0.2, "participants": ["a", "b"]}
    logs.write("a", "heartbeat.ok", hb, now - 20)


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[str]:
    tc = make_cluster(tmp_path / "nodes")
    logs = Logs(tc, Clock(time.time()))
    taproot, _ = schemes.keygen("schnorr-bip340", 2, 3)
    solana, _ = schemes.keygen("ed25519", 2, 3)
    fill_logs(logs, taproot.wallet_id)
    sources = {n: FakeNode(n, tc.dir(n)) for n in tc.names}
    for i, n in enumerate(tc.names):
        sources[n].wallet_list = [
            wallet_entry(taproot, list(tc.names), i + 1),
            wallet_entry(solana, list(tc.names), i + 1),
        ]
    monitor = Monitor(
        tc.cluster,
        sources,
        MonitorStore.open(tmp_path / "state"),
        settings=MonitorSettings(interval=0.5),
    )
    served = Served(monitor)
    try:
        yield served.start()
    finally:
        served.stop()
        monitor.store.close()
        logs.close()


def browser(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Headless Debian chromium through Debian's chromedriver (as root: no sandbox)."""
    for exe in (CHROMIUM, CHROMEDRIVER):
        if not os.access(exe, os.X_OK):
            pytest.fail(f"{exe} is not installed: run `make test` (or `make chromium`)")
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--window-size=1400,2000",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)


def test_dashboard_shows_nodes_a_signature_and_an_alert(
    dashboard: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser(monkeypatch)
    try:
        driver.get(dashboard)

        def loaded(d: Any) -> bool:
            return (
                len(d.find_elements(By.CSS_SELECTOR, "tr.node.up")) == 3
                and len(d.find_elements(By.CSS_SELECTOR, "tr.signature")) == 5
                and len(d.find_elements(By.CSS_SELECTOR, "li.alert")) >= 2
                and len(d.find_elements(By.CSS_SELECTOR, "tr.wallet")) == 2
            )

        WebDriverWait(driver, 15, poll_frequency=0.2).until(loaded)
        nodes = driver.find_elements(By.CSS_SELECTOR, "tr.node")
        assert [n.get_attribute("data-node") for n in nodes] == ["a", "b", "c"]
        assert all(n.find_element(By.CSS_SELECTOR, ".state").text == "up" for n in nodes)
        assert driver.find_element(By.ID, "status").text == "all nodes up"

        sig = driver.find_element(By.CSS_SELECTOR, 'tr.signature[data-request="sig4"]')
        digest = hashlib.sha256(b"sig4").hexdigest()
        assert sig.find_element(By.CSS_SELECTOR, ".digest").get_attribute("title") == digest
        assert "a, b" in sig.text

        alert = driver.find_element(By.CSS_SELECTOR, 'li.alert[data-kind="session-failed"]')
        assert "blamed: c" in alert.text and "(c)" in alert.text
        assert "severity-critical" in (alert.get_attribute("class") or "")
        assert alert.get_attribute("data-status") == "firing"
        # A resolved alert stays, marked resolved, with what ended it.
        ended = driver.find_element(By.CSS_SELECTOR, 'li.alert[data-kind="heartbeat-failed"]')
        assert ended.get_attribute("data-status") == "resolved"
        assert "resolved" in (ended.get_attribute("class") or "").split()
        assert "b did not answer" in ended.text and "heartbeat signature again" in ended.text
        assert ended.find_element(By.CSS_SELECTOR, ".badge.resolved").text.startswith("resolved ")

        addresses = {
            a.find_element(By.CSS_SELECTOR, ".kind").text: a.text
            for a in driver.find_elements(By.CSS_SELECTOR, "#wallets .addr")
        }
        assert sorted(addresses) == ["bitcoin-taproot", "solana"]
        assert addresses["bitcoin-taproot"].startswith("bitcoin-taprootbc1p")
        live = driver.find_element(By.CSS_SELECTOR, 'tr.session[data-session="11ve"]')
        assert "round 1" in live.text
        assert len(driver.find_elements(By.CSS_SELECTOR, "#latency-chart circle.dot")) == 5
        assert len(driver.find_elements(By.CSS_SELECTOR, "#volume-chart rect.bar")) >= 1

        severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        assert severe == [], severe  # no script error, no CSP violation

        shot = tmp_path / "dashboard.png"
        assert driver.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(shot, ARTIFACTS / "dashboard.png")
    finally:
        driver.quit()
