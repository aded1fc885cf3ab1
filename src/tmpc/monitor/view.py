"""What the dashboard shows, folded from the audit entries (sans-I/O, like the alert engine).

:class:`ActivityView` keeps bounded summaries: the sessions seen started and how far they
got (``session.round``), the recent signatures (``request.completed`` with a
``signature_sha256``), the latency of each completed signing session (one whose result is a
signature) and the number of signatures per minute. The monitor adds what the nodes answer
(health, wallets, their session lists) and the alerts.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from typing import Any, Final

from tmpc.audit.entry import Entry

__all__ = ["ActivityView", "merge_live_sessions"]

_SESSIONS: Final = 2000
#: Sessions with no news for this long drop out of the live list (seconds).
LIVE_HORIZON: Final = 600.0
_ENDS: Final = {
    "session.completed": "done",
    "session.blame": "aborted",
    "session.aborted": "aborted",
    "session.timeout": "aborted",
}


def _text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value else None


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


class ActivityView:
    """Sessions, signatures, latency and volume from the audit entries (bounded memory)."""

    def __init__(self, *, signatures: int = 50, latency_points: int = 500) -> None:
        self._sessions: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._signatures: deque[dict[str, Any]] = deque(maxlen=signatures)
        self._signed: set[str] = set()
        self._latency: deque[dict[str, Any]] = deque(maxlen=latency_points)
        self._timed: set[str] = set()
        self._volume: dict[int, int] = {}
        self.total_signatures = 0

    def observe(self, entry: Entry) -> None:
        """Take one (checked) audit entry into account."""
        d = entry.data
        sid = _text(d, "session")
        if entry.type == "session.started" and sid is not None:
            s = self._session(sid, entry.at)
            s.update(
                request=_text(d, "request"),
                protocol=_text(d, "protocol"),
                wallet=_text(d, "wallet"),
                coordinator=_text(d, "coordinator"),
                participants=[p for p in d.get("participants") or [] if isinstance(p, str)],
                attempt=d.get("attempt"),
            )
            s["nodes"].add(entry.node)
        elif entry.type == "session.round" and sid is not None:
            s = self._session(sid, entry.at)
            rnd = d.get("round")
            if isinstance(rnd, int) and not isinstance(rnd, bool) and rnd >= s["round"]:
                s["round"] = rnd
            s["nodes"].add(entry.node)
        elif entry.type in _ENDS and sid is not None:
            s = self._session(sid, entry.at)
            if s["status"] != "done":
                s["status"] = _ENDS[entry.type]
            if entry.type == "session.completed":
                self._completed(entry, sid)
        elif entry.type == "request.completed":
            self._signature(entry)

    def _session(self, sid: str, at: float) -> dict[str, Any]:
        s = self._sessions.get(sid)
        if s is None:
            s = {
                "session": sid,
                "status": "running",
                "round": 0,
                "started": at,
                "nodes": set(),
            }
            self._sessions[sid] = s
            while len(self._sessions) > _SESSIONS:
                self._sessions.popitem(last=False)
        s["updated"] = at
        return s

    def _completed(self, entry: Entry, sid: str) -> None:
        seconds = _number(entry.data.get("seconds"))
        if seconds is None or sid in self._timed or not _text(entry.data, "signature_sha256"):
            return  # signing sessions only (their result is a signature)
        self._timed.add(sid)
        if len(self._timed) > 4 * _SESSIONS:
            self._timed = {p["session"] for p in self._latency}
        self._latency.append(
            {
                "at": entry.at,
                "seconds": seconds,
                "protocol": _text(entry.data, "protocol"),
                "session": sid,
            }
        )

    def _signature(self, entry: Entry) -> None:
        d = entry.data
        rid = _text(d, "request")
        digest = _text(d, "signature_sha256")
        if rid is None or digest is None or rid in self._signed:
            return
        self._signed.add(rid)
        if len(self._signed) > 100_000:
            self._signed = {s["request"] for s in self._signatures}
        self.total_signatures += 1
        self._signatures.append(
            {
                "request": rid,
                "wallet": _text(d, "wallet"),
                "kind": _text(d, "kind"),
                "participants": [p for p in d.get("participants") or [] if isinstance(p, str)],
                "signature_sha256": digest,
                "at": entry.at,
                "node": entry.node,
            }
        )
        minute = int(entry.at // 60)
        self._volume[minute] = self._volume.get(minute, 0) + 1
        if len(self._volume) > 2 * 24 * 60:
            for m in sorted(self._volume)[: len(self._volume) - 24 * 60]:
                del self._volume[m]

    def signatures(self) -> list[dict[str, Any]]:
        """The recent signatures, newest first."""
        return sorted(self._signatures, key=lambda s: -float(s["at"]))

    def latency(self) -> list[dict[str, Any]]:
        """``{"at", "seconds", "protocol", "session"}`` of recent completed sessions, by time."""
        return sorted(self._latency, key=lambda p: float(p["at"]))

    def volume(self, now: float, minutes: int = 60) -> list[dict[str, Any]]:
        """Signatures per minute over the ``minutes`` minutes up to ``now`` (zeros included)."""
        last = int(now // 60)
        return [
            {"minute": m * 60, "count": self._volume.get(m, 0)}
            for m in range(last - minutes + 1, last + 1)
        ]

    def open_sessions(self, now: float) -> list[dict[str, Any]]:
        """Sessions started and not ended whose last news is at most :data:`LIVE_HORIZON`
        seconds old, per the audit entries."""
        out = []
        for s in self._sessions.values():
            if s["status"] == "running" and now - float(s["updated"]) <= LIVE_HORIZON:
                out.append({**s, "nodes": sorted(s["nodes"])})
        return out

    def round_of(self, sid: str) -> int | None:
        """The highest round any node logged for session ``sid`` (None if unknown)."""
        s = self._sessions.get(sid)
        return None if s is None else int(s["round"])


def _session_row(
    sid: str, s: Mapping[str, Any], round_: int | None, nodes: list[str]
) -> dict[str, Any]:
    """A live session's dashboard row from a session record (the audit's or a node's)."""
    return {
        "session": sid,
        "request": s.get("request"),
        "protocol": s.get("protocol"),
        "wallet": s.get("wallet"),
        "coordinator": s.get("coordinator"),
        "participants": list(s.get("participants") or []),
        "attempt": s.get("attempt"),
        "started": s.get("started"),
        "round": round_,
        "nodes": nodes,
    }


def merge_live_sessions(
    from_audit: Iterable[Mapping[str, Any]],
    from_nodes: Mapping[str, Iterable[Mapping[str, Any]]],
    rounds: Mapping[str, int | None],
) -> list[dict[str, Any]]:
    """The live sessions: those a node lists as ``running`` (``GET /v1/sessions``) and those
    the audit entries show started and not ended, one row per session id, newest first.

    ``rounds`` gives the highest logged round per session id (``session.round``).
    """
    merged: dict[str, dict[str, Any]] = {}
    for s in from_audit:
        sid = str(s["session"])
        merged[sid] = _session_row(sid, s, s.get("round") or None, list(s.get("nodes") or []))
    for node, sessions in sorted(from_nodes.items()):
        for s in sessions:
            live = s.get("session")
            if not isinstance(live, str) or s.get("status") != "running":
                continue
            row = merged.get(live)
            if row is None:
                row = merged[live] = _session_row(live, s, None, [])
            if node not in row["nodes"]:
                row["nodes"] = sorted([*row["nodes"], node])
            done = s.get("rounds")
            if row["round"] is None and isinstance(done, list):
                row["round"] = len(done) + 1  # rounds finished so far, plus the one running
    for sid, row in merged.items():
        logged = rounds.get(sid)
        if logged:
            row["round"] = max(logged, row["round"] or 0)
    return sorted(merged.values(), key=lambda r: -float(r.get("started") or 0.0))
