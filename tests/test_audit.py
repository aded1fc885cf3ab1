"""The per-node audit log (issue 12, item 1): hash-chained, signed, cross-signed checkpoints.

Done when: an edited, a truncated and a reordered audit log each fail ``tmpc audit verify`` at
the right entry, and a node that rewrote its own log is caught by the cross-signed checkpoints
(and, when it dropped them too, by the other nodes' cosign records).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import coincurve
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_cli import EXIT_INPUT, assert_one_line_error
from tmpc.audit import (
    REQUEST_RECEIVED,
    REQUEST_REFUSED,
    SESSION_COMPLETED,
    SESSION_STARTED,
    AuditLog,
    CheckpointBody,
    CheckpointSchedule,
    Entry,
    check_data,
    cosign,
    verify,
    verify_cosign,
)
from tmpc.audit import log as audit_log_module
from tmpc.audit.entry import ENTRY_SIG_TAG, GENESIS_PREV, make_checked_entry, make_entry, sign_head
from tmpc.audit.verify import Head
from tmpc.cli.node import LOCAL_KDF
from tmpc.encoding import tagged_hash
from tmpc.errors import KeystoreError, ParameterError, StateError
from tmpc.node import config as node_config
from tmpc.wire.identity import NodeIdentity

EXIT_CHECK_FAILED = 1
PASSPHRASE = "audit test passphrase"
NAMES = ("a", "b", "c")


@dataclass(frozen=True)
class Cluster3:
    """Three initialised node directories joined to one cluster, and their identities."""

    root: Path
    cluster: node_config.Cluster
    ids: dict[str, NodeIdentity]

    def node_dir(self, tmp: Path, name: str) -> Path:
        """A fresh node directory for ``name`` (node.json and cluster.json; no audit log)."""
        d = tmp / name
        d.mkdir(parents=True, exist_ok=True)
        for f in ("node.json", "cluster.json"):
            shutil.copy(self.root / name / f, d / f)
        return d


@pytest.fixture(scope="module")
def c3(tmp_path_factory: pytest.TempPathFactory) -> Cluster3:
    return make_cluster3(tmp_path_factory.mktemp("cluster"))


def make_cluster3(root: Path) -> Cluster3:
    """Nodes a, b, c initialised in ``root`` and joined to one cluster."""
    cards, ids = [], {}
    for i, name in enumerate(NAMES):
        cfg = node_config.init_node(
            root / name, name, f"127.0.0.1:{21000 + i}", PASSPHRASE, kdf=LOCAL_KDF
        )
        ids[name] = node_config.open_identity(cfg, PASSPHRASE)
        cards.append(node_config.card_of(cfg, ids[name]))
    operator, _key = node_config.make_operator("operator")
    (root / "cluster.json").write_bytes(node_config.make_cluster_file(cards, [operator]))
    for name in NAMES:
        node_config.join_cluster(root / name, root / "cluster.json", ids[name])
    return Cluster3(root, node_config.load_cluster(root / "a"), ids)


class Clock:
    """A settable clock for entries' times."""

    def __init__(self, t: float = 1_767_225_600.0) -> None:
        self.t = t

    def __call__(self) -> float:
        self.t += 0.25
        return self.t


def open_log(c3: Cluster3, d: Path, name: str = "a", clock: Clock | None = None) -> AuditLog:
    return AuditLog.open(d, node=name, identity=c3.ids[name], sync=False, clock=clock or Clock())


def write_events(log: AuditLog, n: int) -> None:
    for i in range(n):
        log.append(SESSION_STARTED if i % 2 else REQUEST_RECEIVED, {"request": f"r{i}", "i": i})


def log_file(d: Path) -> Path:
    return d / "audit" / "audit.log"


def lines(d: Path) -> list[bytes]:
    return log_file(d).read_bytes().splitlines()


def set_lines(d: Path, new: list[bytes]) -> None:
    log_file(d).write_bytes(b"".join(x + b"\n" for x in new))


def canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


@pytest.fixture
def ten(c3: Cluster3, tmp_path: Path) -> Path:
    """Node a's directory with a log of 10 entries (creation + 9 events)."""
    d = c3.node_dir(tmp_path, "a")
    with open_log(c3, d) as log:
        write_events(log, 9)
        assert log.seq == 10
    return d


def first(c3: Cluster3, d: Path, **kw: Any) -> tuple[int | None, str]:
    report = verify(d, c3.cluster, "a", **kw)
    assert not report.ok
    assert report.first is not None
    return report.first.seq, str(report.first)


# -- a good log ----------------------------------------------------------------------------------


def test_append_then_verify(c3: Cluster3, ten: Path) -> None:
    report = verify(ten, c3.cluster, "a")
    assert report.ok, report.problems
    assert report.entries == 10 and report.warnings == ()
    entries = [Entry.from_line(x) for x in lines(ten)]
    assert [e.seq for e in entries] == list(range(1, 11))
    assert entries[0].type == "log.created" and entries[0].prev == GENESIS_PREV
    assert all(e.prev == p.hash for p, e in itertools.pairwise(entries))
    assert report.head == entries[-1].hash
    head = Head.from_bytes((ten / "audit" / "head.json").read_bytes())
    assert (head.seq, head.hash) == (10, entries[-1].hash)
    # Reopening continues the same chain.
    with open_log(c3, ten) as log:
        assert (log.seq, log.head) == (10, entries[-1].hash)
        e = log.append(SESSION_COMPLETED, {"session": "s1", "signature_sha256": "00" * 32})
        assert e.seq == 11 and e.prev == entries[-1].hash
    assert verify(ten, c3.cluster, "a").ok


def test_entry_line_round_trip_and_canonical_form(c3: Cluster3) -> None:
    e = make_entry(
        c3.ids["a"],
        node="a",
        seq=1,
        prev=GENESIS_PREV,
        at=1.5,
        event_type="log.created",
        data={"b": [1, 2.5, None, True], "a": "é"},
    )
    line = e.to_line()
    assert Entry.from_line(line) == e and b" " not in line and b"\\u00e9" in line
    assert e.hash_ok() and e.signature_ok(c3.ids["a"].host_pubkey)
    assert not e.signature_ok(c3.ids["b"].host_pubkey)
    doc = json.loads(line)
    spaced = json.dumps(doc, sort_keys=True).encode()  # same content, not canonical
    with pytest.raises(Exception, match="canonical"):
        Entry.from_line(spaced)
    dup = line[:-1] + b',"seq":2}'  # a duplicated key: one reader sees 1, another 2
    with pytest.raises(Exception, match="canonical"):
        Entry.from_line(dup)


# -- edited, truncated, reordered ------------------------------------------------------------------


def test_edited_data_fails_at_that_entry(c3: Cluster3, ten: Path) -> None:
    ls = lines(ten)
    doc = json.loads(ls[6])
    doc["data"]["request"] = "someone-else"
    ls[6] = canonical(doc)
    set_lines(ten, ls)
    seq, msg = first(c3, ten)
    assert seq == 7
    assert msg == "entry 7: hash does not match its content (edited)"


def test_edited_entry_that_is_not_canonical_fails_at_that_entry(c3: Cluster3, ten: Path) -> None:
    ls = lines(ten)
    ls[3] = ls[3].replace(b'"i":', b'"i": ')
    set_lines(ten, ls)
    seq, msg = first(c3, ten)
    assert seq == 4 and "not in canonical form" in msg


def test_edited_hash_or_signature_fails_at_that_entry(c3: Cluster3, ten: Path) -> None:
    ls = lines(ten)
    # The content edited and its hash recomputed (anyone can): the signature gives it away.
    doc = json.loads(ls[4])
    doc["data"]["i"] = 1000
    e = Entry.from_line(ls[4])
    fixed = Entry(e.seq, e.at, e.node, e.type, doc["data"], e.prev, b"", e.sig)
    doc["hash"] = fixed.computed_hash().hex()
    ls[4] = canonical(doc)
    set_lines(ten, ls)
    seq, msg = first(c3, ten)
    assert seq == 5 and "signature does not verify" in msg


def test_edited_signature_fails_at_that_entry(c3: Cluster3, ten: Path) -> None:
    ls = lines(ten)
    doc = json.loads(ls[3])
    doc["sig"] = ("1" if doc["sig"][0] != "1" else "2") + doc["sig"][1:]
    ls[3] = canonical(doc)
    set_lines(ten, ls)
    seq, msg = first(c3, ten)
    assert seq == 4 and "signature does not verify under node a's host key" in msg


@pytest.mark.parametrize("k", [1, 3, 9])
def test_truncated_log_is_caught_by_its_signed_head(c3: Cluster3, ten: Path, k: int) -> None:
    set_lines(ten, lines(ten)[:-k])
    seq, msg = first(c3, ten)
    assert seq == 11 - k
    assert f"the log ends at entry {10 - k} but its signed head.json names entry 10" in msg
    assert "truncated" in msg


def test_truncated_log_with_a_forged_head_fails_the_head_signature(c3: Cluster3, ten: Path) -> None:
    ls = lines(ten)[:-3]
    set_lines(ten, ls)
    last = Entry.from_line(ls[-1])
    head_path = ten / "audit" / "head.json"
    # Without a's key: signed by another node, or a's own entry signature copied over (a
    # different tag, so it does not verify as a head).
    for sig in (sign_head(c3.ids["b"], "a", 7, last.hash), last.sig):
        head_path.write_bytes(Head("a", 7, last.hash, sig).to_bytes())
        seq, msg = first(c3, ten)
        assert seq is None
        assert "head.json does not verify under node a's host key (forged or edited)" in msg
    # Removing head.json is no way out either.
    head_path.unlink()
    seq, msg = first(c3, ten)
    assert seq is None and "head.json is missing" in msg


def test_reordered_lines_fail_at_the_first_moved_entry(c3: Cluster3, ten: Path) -> None:
    ls = lines(ten)
    ls[4], ls[5] = ls[5], ls[4]
    set_lines(ten, ls)
    seq, msg = first(c3, ten)
    assert seq == 5
    assert msg == "entry 5: seq 6 follows 4 (entries removed, duplicated or reordered)"


def test_reordered_far_apart_fails_at_the_first_moved_entry(c3: Cluster3, ten: Path) -> None:
    ls = lines(ten)
    ls[2], ls[8] = ls[8], ls[2]
    set_lines(ten, ls)
    assert first(c3, ten)[0] == 3


def test_deleted_or_duplicated_middle_line_fails(c3: Cluster3, ten: Path) -> None:
    ls = lines(ten)
    set_lines(ten, ls[:4] + ls[5:])
    seq, msg = first(c3, ten)
    assert seq == 5 and "seq 6 follows 4" in msg
    set_lines(ten, ls[:5] + ls[4:])
    seq, msg = first(c3, ten)
    assert seq == 6 and "seq 5 follows 5" in msg


def test_spliced_entry_from_another_log_fails(c3: Cluster3, ten: Path, tmp_path: Path) -> None:
    other = c3.node_dir(tmp_path / "other", "a")
    with open_log(c3, other) as log:
        log.append(REQUEST_REFUSED, {"request": "r0", "rule": "deny-list"})
        write_events(log, 8)
    ls = lines(ten)
    ls[5] = lines(other)[5]  # a's own, validly signed entry 6 of another history
    set_lines(ten, ls)
    seq, msg = first(c3, ten)
    assert seq == 6 and "does not link to entry 5" in msg


def test_a_log_of_another_node_is_refused(c3: Cluster3, tmp_path: Path) -> None:
    d = c3.node_dir(tmp_path, "b")
    with open_log(c3, d, "b") as log:
        write_events(log, 2)
    report = verify(d, c3.cluster, "a")  # checked as a's log
    assert [str(p) for p in report.problems] == [
        "head.json does not verify under node a's host key (forged or edited): the log's end "
        "is unconfirmed",
        "entry 1: written by node b, not a",
    ]
    assert verify(d, c3.cluster, "b").ok


def test_a_missing_or_empty_log_fails(c3: Cluster3, tmp_path: Path) -> None:
    d = c3.node_dir(tmp_path, "a")
    seq, msg = first(c3, d)
    assert seq is None and msg == f"no audit log at {log_file(d)}"
    log_file(d).parent.mkdir()
    log_file(d).write_bytes(b"")
    seq, msg = first(c3, d)
    assert seq is None and "is empty" in msg


def test_open_refuses_a_bad_log(c3: Cluster3, ten: Path) -> None:
    ls = lines(ten)
    good = list(ls)
    ls[4], ls[5] = ls[5], ls[4]
    set_lines(ten, ls)
    with pytest.raises(KeystoreError, match="entry 5: seq 6 follows 4"):
        open_log(c3, ten)
    set_lines(ten, good[:-2])
    with pytest.raises(KeystoreError, match=r"ends at entry 8 but head\.json names entry 10"):
        open_log(c3, ten)
    set_lines(ten, good)
    with pytest.raises(KeystoreError, match="does not verify"):  # another node's key
        AuditLog.open(ten, node="a", identity=c3.ids["b"], sync=False)
    log_file(ten).unlink()
    with pytest.raises(KeystoreError, match="ends at entry 0"):  # never a silent new log
        open_log(c3, ten)


def test_one_process_appends_at_a_time(c3: Cluster3, ten: Path) -> None:
    with open_log(c3, ten) as log:
        with pytest.raises(KeystoreError, match="in use by another process"):
            open_log(c3, ten)
        log.append(REQUEST_RECEIVED, {"request": "r"})
    log.close()  # idempotent
    with pytest.raises(StateError, match="closed"):
        log.append(REQUEST_RECEIVED, {"request": "r"})
    with open_log(c3, ten) as again:
        assert again.seq == 11


# -- crashes ---------------------------------------------------------------------------------------


def test_torn_final_line_is_reported_then_set_aside_and_recorded(c3: Cluster3, ten: Path) -> None:
    whole = Entry.from_line(lines(ten)[-1]).to_line()
    with open(log_file(ten), "ab") as fh:
        fh.write(whole[:57])  # a write cut short by a crash: no newline
    report = verify(ten, c3.cluster, "a")
    assert report.ok and report.entries == 10
    assert any("entry 11: the final line is incomplete (57 bytes" in w for w in report.warnings)
    with open_log(c3, ten) as log:
        assert log.seq == 11
    torn = sorted((ten / "audit").glob("audit.log.torn-*"))
    assert len(torn) == 1 and torn[0].read_bytes() == whole[:57]
    rec = Entry.from_line(lines(ten)[-1])
    assert rec.type == "log.recovered"
    assert rec.data == {
        "file": torn[0].name,
        "bytes": 57,
        "sha256": hashlib.sha256(whole[:57]).hexdigest(),
        "after": 10,
    }
    report = verify(ten, c3.cluster, "a")
    assert report.ok and report.entries == 11
    assert any("set aside at recovery" in w and torn[0].name in w for w in report.warnings)


def test_head_one_entry_behind_after_a_crash_is_fine(c3: Cluster3, ten: Path) -> None:
    head = (ten / "audit" / "head.json").read_bytes()
    with open_log(c3, ten) as log:
        log.append(REQUEST_RECEIVED, {"request": "r"})
    (ten / "audit" / "head.json").write_bytes(head)  # crashed before the head was replaced
    assert verify(ten, c3.cluster, "a").ok
    with open_log(c3, ten) as log:
        assert log.seq == 11
    assert Head.from_bytes((ten / "audit" / "head.json").read_bytes()).seq == 11


def test_a_failed_append_leaves_no_partial_line(
    c3: Cluster3, ten: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = audit_log_module._write_all

    def half_then_full_disk(fd: int, data: bytes) -> None:
        if data.endswith(b"\n"):
            os.write(fd, data[: len(data) // 2])
            raise OSError(28, "No space left on device")
        real(fd, data)

    with open_log(c3, ten) as log:
        monkeypatch.setattr(audit_log_module, "_write_all", half_then_full_disk)
        with pytest.raises(OSError, match="No space"):
            log.append(REQUEST_RECEIVED, {"request": "lost"})
        monkeypatch.setattr(audit_log_module, "_write_all", real)
        assert log.seq == 10
        assert log.append(REQUEST_RECEIVED, {"request": "kept"}).seq == 11
    assert verify(ten, c3.cluster, "a").ok


def test_appends_from_many_threads(c3: Cluster3, tmp_path: Path) -> None:
    d = c3.node_dir(tmp_path, "a")
    seqs: list[int] = []
    with open_log(c3, d) as log:

        def work(t: int) -> None:
            for i in range(25):
                seqs.append(log.append(SESSION_STARTED, {"thread": t, "i": i}).seq)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert sorted(seqs) == list(range(2, 102))
    report = verify(d, c3.cluster, "a")
    assert report.ok and report.entries == 101


# -- no secrets ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {"secret": "x"},
        {"secshare": "00"},
        {"hostseckey": "00"},
        {"passphrase": "p"},
        {"nonce": 1},
        {"nonce_commitment": "02"},
        {"share": "00"},
        {"share_index": 1},
        {"keyShare": "00"},
        {"session": {"shares": ["00"]}},
        {"outer": [{"private_key": "00"}]},
        {"digest": b"\x00" * 32},
        {"list": [bytearray(b"\x01")]},
        {"x": memoryview(b"\x01")},
        {"x": object()},
        {"x": float("nan")},
        {1: "non-text key"},
    ],
    ids=lambda d: repr(d)[:40],
)
def test_scrubber_refuses_secret_looking_data(c3: Cluster3, ten: Path, data: Any) -> None:
    with pytest.raises(ParameterError, match="audit data"):
        check_data(data)
    with open_log(c3, ten) as log:
        with pytest.raises(ParameterError, match="audit data"):
            log.append(REQUEST_RECEIVED, data)
        assert log.seq == 10  # nothing written


def test_scrubber_names_the_field_never_the_value() -> None:
    with pytest.raises(ParameterError) as info:
        check_data({"session": {"secshare": "c0ffee" * 8}})
    assert "data.session.secshare" in str(info.value) and "c0ffee" not in str(info.value)


def test_scrubber_passes_public_data() -> None:
    data = {
        "request": "r1",
        "rule": "deny-list",
        "reshare": True,
        "parties": (1, 2, 3),
        "pinned": "sha256:ab",
        "culprits": [2],
        "amount": 1.5,
        "note": None,
    }
    assert check_data(data) == dict(data, parties=[1, 2, 3])


def test_reserved_and_malformed_types_are_refused(c3: Cluster3, ten: Path) -> None:
    with open_log(c3, ten) as log:
        for t in ("checkpoint", "cosign", "log.created", "log.recovered", "cosign.refused"):
            with pytest.raises(ParameterError, match="written by the log itself"):
                log.append(t, {})
        for t in ("", "Session", "a..b", "a.b.c.d.e", "x" * 65, "request refused"):
            with pytest.raises(ParameterError, match="event type"):
                log.append(t, {})
        log.append(REQUEST_REFUSED, {"request": "r", "rule": "deny-list"})


# -- checkpoints and rewrites ----------------------------------------------------------------------


@pytest.fixture
def logs(c3: Cluster3, tmp_path: Path) -> Iterator[dict[str, AuditLog]]:
    opened = {n: open_log(c3, c3.node_dir(tmp_path, n), n) for n in NAMES}
    yield opened
    for log in opened.values():
        log.close()


def checkpoint(c3: Cluster3, logs: dict[str, AuditLog], owner: str, by: tuple[str, ...]) -> Entry:
    body = logs[owner].checkpoint_body()
    sigs = {p: logs[p].cosign(c3.cluster.hash, body) for p in by}
    return logs[owner].add_checkpoint(c3.cluster, body, sigs)


def test_checkpoints_are_cosigned_recorded_and_verified(
    c3: Cluster3, logs: dict[str, AuditLog]
) -> None:
    a = logs["a"]
    write_events(a, 5)
    cp = checkpoint(c3, logs, "a", ("b", "c"))
    assert cp.seq == 7 and cp.data["seq"] == 6 and set(cp.data["cosigners"]) == {"b", "c"}
    assert cp.data["cluster"] == c3.cluster.hash.hex()
    for peer in ("b", "c"):  # each cosigner recorded the head in its own log
        rec = Entry.from_line(lines(logs[peer].path.parents[1])[-1])
        assert rec.type == "cosign" and rec.data == {"node": "a", "seq": 6, "head": cp.data["head"]}
    write_events(a, 2)
    report = verify(a.path, c3.cluster, "a", min_cosigners=2)
    assert report.ok and report.checkpoints == 1 and report.anchored_seq == 6
    assert not verify(a.path, c3.cluster, "a", min_cosigners=3).ok
    peers = [logs["b"].path, logs["c"].path]
    assert verify(a.path, c3.cluster, "a", peer_logs=peers).ok
    for n in ("b", "c"):
        assert verify(logs[n].path, c3.cluster, n).ok


def test_cosignatures_bind_cluster_node_seq_and_head(c3: Cluster3) -> None:
    body = CheckpointBody("a", 6, b"\x11" * 32)
    sig = cosign(c3.ids["b"], c3.cluster.hash, body)
    key = c3.cluster.member("b").host_pubkey
    assert verify_cosign(key, c3.cluster.hash, body, sig)
    assert not verify_cosign(key, b"\x00" * 32, body, sig)
    assert not verify_cosign(key, c3.cluster.hash, CheckpointBody("c", 6, body.head), sig)
    assert not verify_cosign(key, c3.cluster.hash, CheckpointBody("a", 7, body.head), sig)
    assert not verify_cosign(key, c3.cluster.hash, CheckpointBody("a", 6, b"\x12" * 32), sig)
    assert not verify_cosign(c3.cluster.member("c").host_pubkey, c3.cluster.hash, body, sig)
    assert CheckpointBody.from_json(body.to_json()) == body


def test_add_checkpoint_refuses_bad_cosignatures(c3: Cluster3, logs: dict[str, AuditLog]) -> None:
    a = logs["a"]
    write_events(a, 2)
    body = a.checkpoint_body()
    good = logs["b"].cosign(c3.cluster.hash, body)
    forged = cosign(c3.ids["a"], c3.cluster.hash, body)  # a signing in b's name
    with pytest.raises(ParameterError, match="cosignature of b does not verify"):
        a.add_checkpoint(c3.cluster, body, {"b": forged})
    with pytest.raises(ParameterError, match="own checkpoint"):
        a.add_checkpoint(c3.cluster, body, {"a": forged, "b": good})
    with pytest.raises(ParameterError, match="not a member"):
        a.add_checkpoint(c3.cluster, body, {"mallory": good})
    with pytest.raises(ParameterError, match="at least one"):
        a.add_checkpoint(c3.cluster, body, {})
    with pytest.raises(ParameterError, match="not entry 3 of this log"):
        a.add_checkpoint(c3.cluster, CheckpointBody("a", 3, b"\x00" * 32), {"b": good})
    assert a.seq == 3  # nothing written
    assert a.add_checkpoint(c3.cluster, body, {"b": good}).seq == 4


def test_cosigner_refuses_a_rolled_back_or_rewritten_head(
    c3: Cluster3, logs: dict[str, AuditLog]
) -> None:
    a, b = logs["a"], logs["b"]
    write_events(a, 5)
    body = a.checkpoint_body()
    b.cosign(c3.cluster.hash, body)
    seq_b = b.seq
    b.cosign(c3.cluster.hash, body)  # the same head again: signed, not recorded twice
    assert b.seq == seq_b
    for bad in (
        CheckpointBody("a", body.seq, b"\x01" * 32),  # same seq, other history
        CheckpointBody("a", body.seq - 1, b"\x01" * 32),  # rolled back
    ):
        with pytest.raises(ParameterError, match="rolled-back or rewritten"):
            b.cosign(c3.cluster.hash, bad)
        rec = Entry.from_line(lines(b.path.parents[1])[-1])
        assert rec.type == "cosign.refused" and rec.data["seq"] == bad.seq
        assert rec.data["cosigned_seq"] == body.seq
    with pytest.raises(ParameterError, match="own log"):
        a.cosign(c3.cluster.hash, body)
    assert verify(b.path, c3.cluster, "b").ok


def _rewrite(c3: Cluster3, d: Path, edit: Any) -> None:
    """Node a rewrites its own log with its key: ``edit`` maps the old entries to the new
    history's (type, data, at) triples; every entry is re-chained and re-signed, and the head
    too. The result is a perfectly consistent chain."""
    old = [Entry.from_line(x) for x in lines(d)]
    prev, out = GENESIS_PREV, []
    for seq, (t, data, at) in enumerate(edit(old), start=1):
        e = make_entry(c3.ids["a"], node="a", seq=seq, prev=prev, at=at, event_type=t, data=data)
        out.append(e.to_line())
        prev = e.hash
    set_lines(d, out)
    head = Head("a", len(out), prev, sign_head(c3.ids["a"], "a", len(out), prev))
    (d / "audit" / "head.json").write_bytes(head.to_bytes())


def _history(c3: Cluster3, logs: dict[str, AuditLog]) -> Path:
    """a: 1 created, 2-6 events, 7 checkpoint of 6 (by b, c), 8-10 events; all logs closed."""
    write_events(logs["a"], 5)
    checkpoint(c3, logs, "a", ("b", "c"))
    write_events(logs["a"], 3)
    for log in logs.values():
        log.close()
    return logs["a"].path.parents[1]


def _doctor_entry_3(old: list[Entry]) -> list[tuple[str, dict[str, Any], float]]:
    new = [(e.type, dict(e.data), e.at) for e in old]
    new[2][1]["request"] = "never-happened"
    return new


def test_a_rewritten_log_is_caught_by_its_cosigned_checkpoint(
    c3: Cluster3, logs: dict[str, AuditLog]
) -> None:
    d = _history(c3, logs)
    assert verify(d, c3.cluster, "a").ok
    _rewrite(c3, d, _doctor_entry_3)  # keeps the checkpoint entry as it was
    seq, msg = first(c3, d)
    assert seq == 6
    assert "differs from the head cosigned by b, c (checkpoint in entry 7)" in msg
    assert "history rewritten" in msg


def test_a_rewrite_that_drops_its_checkpoints_is_caught_by_the_peers(
    c3: Cluster3, logs: dict[str, AuditLog]
) -> None:
    d = _history(c3, logs)
    peers = [logs["b"].path.parents[1], logs["c"].path.parents[1]]

    def drop_checkpoints(old: list[Entry]) -> list[tuple[str, dict[str, Any], float]]:
        return [(t, data, at) for t, data, at in _doctor_entry_3(old) if t != "checkpoint"]

    _rewrite(c3, d, drop_checkpoints)
    # Alone, the log is a consistent chain: nothing in it proves the rewrite ...
    assert verify(d, c3.cluster, "a").ok
    # ... unless a bound on unanchored entries is asked for,
    seq, msg = first(c3, d, max_unanchored=5)
    assert seq == 6 and "not covered by a cosigned checkpoint" in msg
    # ... and the peers' records of the head they cosigned give it away.
    seq, msg = first(c3, d, peer_logs=peers)
    assert seq == 6
    assert "differs from the head b cosigned (its entry 2): history rewritten" in msg
    report = verify(d, c3.cluster, "a", peer_logs=peers)
    assert {str(p) for p in report.problems} >= {
        "entry 6: differs from the head c cosigned (its entry 2): history rewritten"
    }


def test_a_truncation_behind_a_checkpoint_is_caught_by_the_peers(
    c3: Cluster3, logs: dict[str, AuditLog]
) -> None:
    d = _history(c3, logs)
    _rewrite(c3, d, lambda old: [(e.type, e.data, e.at) for e in old[:4]])  # head re-signed
    assert verify(d, c3.cluster, "a").ok
    seq, msg = first(c3, d, peer_logs=[logs["b"].path])
    assert seq == 5
    assert "the log ends at entry 4 but b cosigned entry 6 (its entry 2)" in msg


def test_a_forged_checkpoint_fails(c3: Cluster3, logs: dict[str, AuditLog]) -> None:
    d = _history(c3, logs)

    # A node cannot make cosignatures for a new head: re-pointing the old checkpoint at the
    # rewritten head leaves the old cosignatures, which do not verify for it.
    def repoint(old: list[Entry]) -> list[tuple[str, dict[str, Any], float]]:
        new = _doctor_entry_3(old)
        prev = GENESIS_PREV
        for seq, (t, data, at) in enumerate(new[:6], start=1):
            prev = make_entry(
                c3.ids["a"], node="a", seq=seq, prev=prev, at=at, event_type=t, data=data
            ).hash
        t, data, at = new[6]
        assert t == "checkpoint"
        new[6] = (t, dict(data, head=prev.hex()), at)
        return new

    _rewrite(c3, d, repoint)
    seq, msg = first(c3, d)
    assert seq == 7 and "the cosignature of b does not verify" in msg


def test_checkpoint_schedule(c3: Cluster3, tmp_path: Path, logs: dict[str, AuditLog]) -> None:
    s = CheckpointSchedule(every_entries=5, every_seconds=60)
    assert not s.due(seq=4, last_checkpoint_seq=0, last_checkpoint_at=0, now=10)
    assert s.due(seq=5, last_checkpoint_seq=0, last_checkpoint_at=0, now=10)
    assert s.due(seq=6, last_checkpoint_seq=5, last_checkpoint_at=0, now=60)
    assert not s.due(seq=5, last_checkpoint_seq=5, last_checkpoint_at=0, now=1e9)
    with pytest.raises(ParameterError):
        CheckpointSchedule(every_entries=0)
    clock = Clock()
    d = c3.node_dir(tmp_path / "sched", "a")
    with open_log(c3, d, clock=clock) as a:
        start = clock.t
        assert not a.checkpoint_due(start, s)
        write_events(a, 3)
        assert not a.checkpoint_due(start + 1, s) and a.checkpoint_due(start + 61, s)
        write_events(a, 1)
        assert a.checkpoint_due(start + 1, s)
        body = a.checkpoint_body()
        cp = a.add_checkpoint(c3.cluster, body, {"b": logs["b"].cosign(c3.cluster.hash, body)})
        assert not a.checkpoint_due(clock.t + 61, s)
        a.append(REQUEST_RECEIVED, {"request": "r"})
        assert a.checkpoint_due(cp.at + 61, s) and not a.checkpoint_due(cp.at + 1, s)
    with open_log(c3, d, clock=clock) as a:  # the state survives a restart
        assert a.checkpoint_due(cp.at + 61, s) and not a.checkpoint_due(cp.at + 1, s)


# -- the command line ------------------------------------------------------------------------------


def tmpc(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tmpc", "audit", *map(str, args)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def test_cli_verify_good_and_edited(c3: Cluster3, ten: Path) -> None:
    proc = tmpc("verify", "--node-dir", ten)
    assert proc.returncode == 0, proc.stderr
    assert "audit log of node a: 10 entries, good" in proc.stdout
    ls = lines(ten)
    doc = json.loads(ls[6])
    doc["data"]["request"] = "x"
    ls[6] = canonical(doc)
    set_lines(ten, ls)
    proc = tmpc("verify", "--node-dir", ten)
    assert_one_line_error(proc, EXIT_CHECK_FAILED)
    assert proc.stderr.strip() == (
        f"tmpc: error: audit log {ten}: entry 7: hash does not match its content (edited)"
    )
    proc = tmpc("verify", "--dir", ten, "--json")
    assert proc.returncode == EXIT_CHECK_FAILED and proc.stderr == ""
    report = json.loads(proc.stdout)
    assert report["ok"] is False and report["first_problem"]["seq"] == 7


def test_cli_verify_truncated_and_reordered(c3: Cluster3, ten: Path) -> None:
    ls = lines(ten)
    set_lines(ten, ls[:-2])
    proc = tmpc("verify", "--node-dir", ten)
    assert_one_line_error(proc, EXIT_CHECK_FAILED)
    assert f"audit log {ten}: entry 9: missing: the log ends at entry 8" in proc.stderr
    ls[1], ls[2] = ls[2], ls[1]
    set_lines(ten, ls)
    proc = tmpc("verify", "--node-dir", ten, "--cluster", c3.root / "cluster.json")
    assert_one_line_error(proc, EXIT_CHECK_FAILED)
    assert f"audit log {ten}: entry 2: seq 3 follows 1" in proc.stderr


def test_cli_verify_with_peers_catches_a_rewrite(c3: Cluster3, logs: dict[str, AuditLog]) -> None:
    d = _history(c3, logs)
    b = logs["b"].path.parents[1]
    assert tmpc("verify", "--node-dir", d, "--peer-dir", b).returncode == 0
    _rewrite(c3, d, lambda old: _doctor_entry_3(old)[:6])
    assert tmpc("verify", "--node-dir", d).returncode == 0  # alone: consistent
    proc = tmpc("verify", "--node-dir", d, "--peer-dir", b, "--peer-dir", logs["c"].path)
    assert_one_line_error(proc, EXIT_CHECK_FAILED)
    assert "entry 6: differs from the head b cosigned (its entry 2)" in proc.stderr


def test_cli_usage_errors(c3: Cluster3, ten: Path, tmp_path: Path) -> None:
    assert_one_line_error(tmpc("verify", "--node-dir", tmp_path / "nope"), EXIT_INPUT)
    assert_one_line_error(
        tmpc("verify", "--node-dir", ten, "--peer-dir", tmp_path / "nope"), EXIT_INPUT
    )
    (ten / "cluster.json").unlink()
    proc = tmpc("verify", "--node-dir", ten)
    assert_one_line_error(proc, EXIT_INPUT)
    assert "has not joined a cluster" in proc.stderr
    assert_one_line_error(tmpc("verify"), EXIT_INPUT)


def test_cli_show(c3: Cluster3, ten: Path) -> None:
    proc = tmpc("show", "--node-dir", ten, "--limit", "3")
    assert proc.returncode == 0, proc.stderr
    rows = proc.stdout.splitlines()
    assert len(rows) == 3 and rows[0].split()[0] == "8" and "request.received" in rows[-1]
    proc = tmpc("show", "--node-dir", ten, "--json", "--type", "session")
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert [r["seq"] for r in shown] == [3, 5, 7, 9]
    assert all(r["type"] == "session.started" for r in shown)


# -- the writer's entry builder -----------------------------------------------------------------

_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
_json_value = st.recursive(
    _json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["a", "party", "Zeta", "é", "x y", "wallet"]), inner),
    ),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(
    data=st.dictionaries(st.sampled_from(["request", "round", "ms", "kind", "é"]), _json_value),
    at=st.floats(min_value=-1e12, max_value=1e12, allow_nan=False),
    seq=st.integers(min_value=1, max_value=2**63),
)
def test_checked_entry_line_is_the_canonical_line(
    data: dict[str, Any], at: float, seq: int
) -> None:
    """make_checked_entry builds the line by hand: it must be byte for byte the canonical JSON
    of the entry, parse back to the same entry, and carry a hash and signature that verify."""
    identity = _IDENTITY
    entry, line = make_checked_entry(
        identity, node="node-1", seq=seq, prev=GENESIS_PREV, at=at, event_type="session.round",
        clean=check_data(data),
    )  # fmt: skip
    assert line == entry.to_line()
    assert json.loads(line) == entry.to_json()
    parsed = Entry.from_line(line)
    assert parsed == entry
    assert parsed.hash_ok()
    assert parsed.signature_ok(identity.host_pubkey)
    # Independent check: the signature is BIP340 over the tagged entry hash (coincurve).
    digest = tagged_hash(ENTRY_SIG_TAG, entry.hash)
    assert coincurve.PublicKeyXOnly(identity.host_pubkey[1:]).verify(entry.sig, digest)


def test_checked_entry_refuses_a_time_that_is_not_finite() -> None:
    with pytest.raises(ParameterError, match="finite"):
        make_checked_entry(
            _IDENTITY, node="n", seq=1, prev=GENESIS_PREV, at=float("inf"),
            event_type="x", clean={},
        )  # fmt: skip


_IDENTITY = NodeIdentity.generate()
