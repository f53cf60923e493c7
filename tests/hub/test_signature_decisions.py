"""The signature step as pure logic: the policy per partner, what the decision record keeps,
what the planner forwards and signs."""

from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from pamqp import commands as spec

from liaison.common.hub_key import ensure_hub_key
from liaison.directory.index import DirectoryIndex, compile_directory, load_directory
from liaison.directory.model import SignaturePolicy
from liaison.hub.decisions import Delivery, Refusal, Verdict
from liaison.hub.effects import plan
from liaison.hub.router import SIGNATURE_FIELD, Router
from liaison.ledger.records import DecisionRecord, decision_record
from liaison.schemas.codes import ErrorCode
from liaison.schemas.wire import HEADER_SIGNATURE
from liaison.sdk.signing import generate_private_key, sign, verify
from tests.hub.support import demo_kid, demo_signature, envelope

SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "directory.toml"


@pytest.fixture(scope="module")
def migrating() -> DirectoryIndex:
    """The sample directory with mag on "when_present" (migrating), everyone else required."""
    sample = load_directory(SAMPLE).directory
    orgs = [
        msgspec.structs.replace(o, signatures=SignaturePolicy.WHEN_PRESENT) if o.id == "mag" else o
        for o in sample.organisations
    ]
    return compile_directory(msgspec.structs.replace(sample, organisations=orgs))


def decide(index: DirectoryIndex, user: str, raw: bytes, signature: str | None) -> Verdict:
    """The router's verdict on ``raw`` published by ``user`` with ``signature``."""
    return Router(index, max_message_bytes=1 << 18).decide(
        raw, user_id=user, routing_key=user, content_type=None, signature=signature
    )


def record_of(verdict: Verdict, raw: bytes, signature: str | None) -> DecisionRecord:
    """The decision record the hub would publish for ``verdict``."""
    headers = {} if signature is None else {HEADER_SIGNATURE: signature}
    return decision_record(
        verdict,
        raw,
        user_id="mag",
        headers=headers,
        decided_at=0.0,
    )


def test_when_present_delivers_unsigned_and_says_so(migrating: DirectoryIndex) -> None:
    """A migrating partner's unsigned message is delivered and recorded as "absent"."""
    raw = msgspec.json.encode(envelope("mag", ["org:unmas"]))
    verdict = decide(migrating, "mag", raw, None)
    assert isinstance(verdict, Delivery)
    assert (verdict.signature_status, verdict.signature, verdict.signature_kid) == (
        "absent",
        None,
        None,
    )
    record = record_of(verdict, raw, None)
    assert record.signature_status == "absent"
    assert record.signature is None


def test_when_present_still_refuses_a_bad_signature(migrating: DirectoryIndex) -> None:
    """A signature from a migrating partner must verify: a wrong one is refused (212)."""
    raw = msgspec.json.encode(envelope("mag", ["org:unmas"]))
    forged = sign(raw, generate_private_key(), demo_kid("mag"))
    verdict = decide(migrating, "mag", raw, forged)
    assert isinstance(verdict, Refusal)
    assert (verdict.code, verdict.field_path) == (ErrorCode.SIGNATURE_MISMATCH, SIGNATURE_FIELD)
    record = record_of(verdict, raw, forged)
    # What the sender claimed is kept with the refusal, for the evidence.
    assert (record.signature, record.signature_kid) == (forged, demo_kid("mag"))


def test_required_refuses_unsigned_from_others(migrating: DirectoryIndex) -> None:
    """unmas stays "required": its unsigned message is refused with 208."""
    raw = msgspec.json.encode(envelope("unmas", ["org:mag"]))
    verdict = decide(migrating, "unmas", raw, None)
    assert isinstance(verdict, Refusal)
    assert verdict.code is ErrorCode.SIGNATURE_MISSING


def test_verified_delivery_is_recorded_forwarded_and_reports_signed(
    migrating: DirectoryIndex, tmp_path: Path
) -> None:
    """A verified delivery's record carries signature, kid and "verified"; the planned
    delivery carries the header unchanged; an error report is signed with the hub's key."""
    raw = msgspec.json.encode(envelope("mag", ["org:unmas"]))
    signature = demo_signature("mag", raw)
    verdict = decide(migrating, "mag", raw, signature)
    assert isinstance(verdict, Delivery)
    record = record_of(verdict, raw, signature)
    assert (record.signature, record.signature_kid, record.signature_status) == (
        signature,
        demo_kid("mag"),
        "verified",
    )
    hub_key, _ = ensure_hub_key(tmp_path / "hub.key")
    received = spec.Basic.Properties(user_id="mag", headers={HEADER_SIGNATURE: signature})
    effects = plan(
        verdict,
        None,
        key=verdict.message_id,
        original=raw,
        properties=received,
        routing_key="mag",
        now=datetime.now(UTC).timestamp(),
        hub_key=hub_key,
    )
    (delivery,) = effects.publishes
    assert delivery.body == raw
    assert isinstance(delivery.properties, bytes)
    assert signature is not None
    assert signature.encode() in delivery.properties

    refused = decide(migrating, "unmas", msgspec.json.encode(envelope("unmas", ["org:mag"])), None)
    assert isinstance(refused, Refusal)
    effects = plan(
        refused,
        None,
        key="r-1",
        original=b"{}",
        properties=spec.Basic.Properties(user_id="unmas"),
        routing_key="unmas",
        now=datetime.now(UTC).timestamp(),
        hub_key=hub_key,
    )
    report = effects.publishes[-1]
    assert isinstance(report.properties, spec.Basic.Properties)
    header = report.properties.headers[HEADER_SIGNATURE]  # type: ignore[index]
    trusted = hub_key.trusted()
    assert verify(report.body, header, {trusted.kid: trusted}).org == "liaison"
