"""The cluster file's signing-policy administrators (issue 11): parsed, bound into the
cluster's hash, and refused when malformed; a cluster file without them keeps its hash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from tests.node_helpers import make_dirs
from tmpc.errors import KeystoreError
from tmpc.node import config as node_config


def _parts(tmp_path: Path) -> tuple[list[dict[str, object]], list[node_config.Operator]]:
    _names, data = make_dirs(tmp_path, 2)
    doc = json.loads(data)
    ops = [node_config.Operator(o["name"], o["cert"].encode()) for o in doc["operators"]]
    return doc["members"], ops


def test_policy_admins_are_parsed_and_bound_into_the_hash(tmp_path: Path) -> None:
    cards, ops = _parts(tmp_path)
    keys = {n: bytes(SigningKey.generate().verify_key) for n in ("alice", "bob", "carol")}
    plain = node_config.parse_cluster(node_config.make_cluster_file(cards, ops))
    assert plain.policy_admins == {} and plain.policy_quorum == 0
    with_admins = node_config.parse_cluster(node_config.make_cluster_file(cards, ops, keys, 2))
    assert with_admins.policy_admins == keys and with_admins.policy_quorum == 2
    assert with_admins.hash != plain.hash
    other = dict(keys, carol=bytes(SigningKey.generate().verify_key))
    assert node_config.parse_cluster(node_config.make_cluster_file(cards, ops, other, 2)).hash != (
        with_admins.hash
    )
    # Without a quorum given, all of them.
    assert (
        node_config.parse_cluster(node_config.make_cluster_file(cards, ops, keys)).policy_quorum
        == 3
    )


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d.update(policy_quorum=0),
        lambda d: d.update(policy_quorum=4),
        lambda d: d.update(policy_quorum="2"),
        lambda d: d["policy_admins"].append(dict(d["policy_admins"][0])),
        lambda d: d["policy_admins"][0].update(key="00" * 31),
        lambda d: d["policy_admins"][0].update(name="bad name"),
        lambda d: d.pop("policy_admins"),
    ],
)
def test_malformed_policy_admins_are_refused(tmp_path: Path, edit: object) -> None:
    cards, ops = _parts(tmp_path)
    keys = {n: bytes(SigningKey.generate().verify_key) for n in ("alice", "bob", "carol")}
    doc = json.loads(node_config.make_cluster_file(cards, ops, keys, 2))
    edit(doc)  # type: ignore[operator]
    with pytest.raises(KeystoreError, match="polic"):
        node_config.parse_cluster(json.dumps(doc).encode())
