"""mesh.bus_contract: the one place the bus names are spelled, and records that round-trip."""

from __future__ import annotations

import ast
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from mesh import bus_contract as bc
from mesh.bus_contract import (
    InputStatusRecord,
    JwksRecord,
    MalformedLog,
    MalformedRecord,
    NodeInfo,
    NodeRole,
    Revocation,
    Route,
    SigningKeysEvent,
    StreamKeyEvent,
    StreamKeyRecord,
    TopologyMessage,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "mesh",
    "origin",
    "pop",
    "control",
    "cli",
    "clutchcall",
    "vod",
    "moqt",
    "media",
    "bench",
)
CONTRACT = ROOT / "mesh" / "bus_contract.py"
# The names shared between the control plane and the nodes; control-plane-internal names
# (its rate limiter, webhook queue, locks, VOD jobs) start with PREFIX but are not these.
SHARED = sorted(
    {
        value
        for name, value in vars(bc).items()
        if (name.endswith(("_CHANNEL", "_PREFIX", "_KEY")) and isinstance(value, str))
    }
)


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _spelled(path: Path) -> list[tuple[int, str]]:
    """String literals (f-string pieces included, docstrings not) naming a shared key/channel."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            text = node.value
            if any(text.startswith(name) or (name.startswith(text) and text.startswith(bc.PREFIX))
                   for name in SHARED):  # fmt: skip
                found.append((node.lineno, text))
    return found


def test_shared_names_are_all_under_the_prefix() -> None:
    assert len(SHARED) >= 11
    assert all(name.startswith(bc.PREFIX) and name != bc.PREFIX for name in SHARED)


def test_no_module_outside_the_contract_spells_a_bus_name() -> None:
    offenders = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == CONTRACT:
                continue
            offenders += [
                f"{path.relative_to(ROOT)}:{line}: {text!r}" for line, text in _spelled(path)
            ]
    assert offenders == [], "use mesh.bus_contract's names:\n" + "\n".join(offenders)


def test_the_checker_finds_a_spelled_name(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        '"""Docstrings may name clutchcall:streamkey:<id>."""\n'
        'KEY = f"clutchcall:streamkey:{1}"\n'
        'CH = "clutchcall:topology"\n'
        'OTHER = "clutchcall:authfail:"\n'
    )
    assert sorted(line for line, _ in _spelled(bad)) == [2, 3]


def test_key_builders() -> None:
    assert bc.streamkey_key("lv_a") == bc.STREAMKEY_PREFIX + "lv_a"
    assert bc.revoked_key("jti", "jt_1") == bc.REVOKED_PREFIX + "jti:jt_1"
    assert bc.node_key("n1") == bc.NODE_PREFIX + "n1"
    assert bc.route_key("stream/o/lv") == bc.ROUTE_PREFIX + "stream/o/lv"
    assert bc.input_status_key("lv_a") == bc.INPUT_STATUS_PREFIX + "lv_a"
    assert bc.INPUT_STATUS_PREFIX == bc.INPUT_STATUS_CHANNEL + ":"


NODE = NodeInfo(
    "pop-1", NodeRole.POP, "eu", "10.0.0.1:4433", "10.0.0.1:8080", 12.5,
    load={"sessions": 3.0}, hosts=frozenset({"stream/a/b"}), certificate_hashes=("ab" * 32,),
)  # fmt: skip
ROUTE = Route("stream/org_1/lv_a", "o1", "eu", "o1:4433", 7.0)


@pytest.mark.parametrize(
    ("record", "decode"),
    [
        (
            StreamKeyRecord("org_1", "li_1", "stream/org_1/lv_a", "0f" * 32, 3.0),
            StreamKeyRecord.decode,
        ),
        (StreamKeyEvent("lv_a", "deleted", 4.0), StreamKeyEvent.decode),
        (JwksRecord(({"kty": "EC", "kid": "k1"},)), JwksRecord.decode),
        (SigningKeysEvent(("k1", "k2"), 5.0), SigningKeysEvent.decode),
        (InputStatusRecord("lv_a", "live", None, 6.0, "o1"), InputStatusRecord.decode),
        (InputStatusRecord("lv_a", "error", "bad codec", 6.0), InputStatusRecord.decode),
        (TopologyMessage.node_up(NODE), TopologyMessage.decode),
        (TopologyMessage.node_down("pop-1"), TopologyMessage.decode),
        (TopologyMessage.route_set(ROUTE), TopologyMessage.decode),
        (TopologyMessage.route_gone(ROUTE.namespace, "o1"), TopologyMessage.decode),
    ],
)
def test_records_round_trip(record: Any, decode: Any) -> None:
    assert decode(record.encode()) == record


def test_node_route_and_revocation_round_trip() -> None:
    assert NodeInfo.from_record(NODE.node_id, NODE.to_record()) == NODE
    assert Route.from_record(ROUTE.namespace, ROUTE.to_record()) == ROUTE
    for rev in (Revocation("jti", "jt_1", 9.0, at=1.0), Revocation("sub", "lv_a", 9.0, 8.0, 1.0)):
        assert Revocation.from_message(rev.to_message()) == rev
        restored = Revocation.from_record(rev.key, rev.to_record())
        assert restored == Revocation(rev.kind, rev.value, rev.exp, rev.before)


def test_certificate_hashes_are_validated_and_optional() -> None:
    record = NODE.to_record()
    record["certificate_hashes"] = ["AB" * 32, "not hex", 7, "cd" * 31]
    assert NodeInfo.from_record("pop-1", record).certificate_hashes == ("ab" * 32,)
    del record["certificate_hashes"]
    assert NodeInfo.from_record("pop-1", record).certificate_hashes == ()
    assert "certificate_hashes" not in NodeInfo("n", NodeRole.ORIGIN, "eu", "h:1").to_record()


@pytest.mark.parametrize(
    ("decode", "data"),
    [
        (StreamKeyRecord.decode, {"org": "o", "input": "i", "namespace": "n", "sha256": "zz"}),
        (StreamKeyRecord.decode, [1, 2]),
        (StreamKeyEvent.decode, {"external_input_id": "lv", "event": "exploded"}),
        (JwksRecord.decode, {"keys": "nope"}),
        (SigningKeysEvent.decode, {"event": "rotated"}),
        (InputStatusRecord.decode, {"external_input_id": "lv", "status": "bogus"}),
        (TopologyMessage.decode, {"event": "node_up", "node": "n", "role": "king"}),
        (TopologyMessage.decode, {"event": "route_set", "namespace": "x", "origin": 3}),
        (TopologyMessage.decode, {"event": "meteor"}),
        (Revocation.from_message, {"jti": "j", "exp": math.inf}),
        (Revocation.from_message, {"nope": 1}),
    ],
)
def test_malformed_records_raise_malformed_record(decode: Any, data: Any) -> None:
    with pytest.raises(MalformedRecord):
        decode(data)


_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=10,
)
_FIELDS = st.sampled_from(
    ["event", "node", "namespace", "origin", "role", "region", "quic", "at", "exp", "jti", "sub",
     "before", "kids", "keys", "status", "external_input_id", "sha256", "org", "input", "load",
     "hosts", "certificate_hashes"]
)  # fmt: skip
_RECORDS = st.dictionaries(_FIELDS, _VALUES, max_size=8) | _VALUES


@settings(max_examples=300, deadline=None)
@given(_RECORDS)
def test_decoding_anything_is_a_record_or_malformed(data: Any) -> None:
    decoders = [
        StreamKeyRecord.decode, StreamKeyEvent.decode, JwksRecord.decode, SigningKeysEvent.decode,
        InputStatusRecord.decode, TopologyMessage.decode, Revocation.from_message,
        lambda d: NodeInfo.from_record("n", d), lambda d: Route.from_record("ns", d),
        lambda d: Revocation.from_record(bc.revoked_key("sub", "x"), d),
    ]  # fmt: skip
    for decode in decoders:
        try:
            decode(data)
        except MalformedRecord:
            pass


def test_a_malformed_record_is_logged_once_per_key() -> None:
    log = MalformedLog()
    with capture_logs() as logs:
        for _ in range(5):
            log.report("bad_node_record", "k1", ValueError("x"))
        log.report("bad_node_record", "k2", ValueError("y"))
    assert [entry["key"] for entry in logs] == ["k1", "k2"]
    assert log.count == 6
