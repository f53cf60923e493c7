"""Golden payloads: today's wire format, older minimal senders and newer senders keep decoding.

A golden file is never edited to make a test pass; one that stops decoding is a breaking change
(see `schemas/EVOLUTION.md`).
"""

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest
from contract_helpers import GOLDEN_DIR, validator

from liaison.schemas.envelope import decode_envelope
from liaison.schemas.examples import EXAMPLES
from liaison.schemas.messages.hazards import (
    ActionTaken,
    DeviceCategory,
    DeviceCondition,
    EoSpotReport,
    HazardAlert,
)
from liaison.schemas.messages.system import ErrorReport
from liaison.schemas.types import Point, Precedence

CURRENT = [
    "hazard.alert",
    "hazard.eo_spot_report",
    "tasking.order",
    "resource.request",
    "ack",
    "error.report",
]

#: Goldens made from an example that was corrected later: the Struct each was made from.
#: error.report's example named the hub's broker account as sender; the wire says `liaison`.
AS_MADE = {
    "error.report": msgspec.structs.replace(
        EXAMPLES["error.report"],
        sender="liaison-hub",
        distribution_id="liaison-hub-2024-03-12-0021",
    )
}


@pytest.mark.parametrize("type_name", CURRENT)
def test_golden_payload_decodes_to_same_struct(type_name: str) -> None:
    """A hand-checked 1.0 payload still decodes to exactly the Struct it was made from."""
    data = (GOLDEN_DIR / f"{type_name}.json").read_bytes()
    assert decode_envelope(data) == AS_MADE.get(type_name, EXAMPLES[type_name])


def test_newer_sender_with_unknown_fields_decodes() -> None:
    """A 1.7 message with extra fields at every level decodes; the extras are skipped."""
    envelope = decode_envelope((GOLDEN_DIR / "newer-sender.eo_spot_report.json").read_bytes())
    assert envelope.schema_version == "1.7"
    assert envelope.precedence is Precedence.IMMEDIATE
    assert envelope.sent_at == datetime(2025, 6, 1, 8, 12, 30, 250000, tzinfo=UTC)
    assert envelope.sent_at.utcoffset() == timedelta(hours=1)
    body = envelope.body
    assert isinstance(body, EoSpotReport)
    assert body.location == Point(coordinates=(15.6012, 5.9347))
    assert body.device_category is DeviceCategory.UXO
    assert (body.quantity, body.marked, body.casualties[0].injured) == (2, True, 1)


def test_newer_sender_passes_json_schema() -> None:
    """The published JSON Schema also lets unknown fields through (no additionalProperties)."""
    doc = json.loads((GOLDEN_DIR / "newer-sender.eo_spot_report.json").read_text())
    assert validator("envelope").is_valid(doc)


def test_minimal_eo_spot_report_gets_defaults() -> None:
    """Only required fields: optional ones take their defaults (GeoJSON `type` included)."""
    envelope = decode_envelope((GOLDEN_DIR / "minimal.eo_spot_report.json").read_bytes())
    body = envelope.body
    assert isinstance(body, EoSpotReport)
    assert body.location.type == "Point"
    assert body.condition is DeviceCondition.UNKNOWN
    assert body.action_taken is ActionTaken.NONE
    assert (body.marked, body.casualties, body.photos, body.device_type) == (False, [], [], None)
    assert envelope.sent_at.tzinfo == timezone(timedelta(hours=1))


def test_minimal_hazard_alert_gets_defaults() -> None:
    """A minimal CAP-like alert decodes with no times, description or geometry."""
    envelope = decode_envelope((GOLDEN_DIR / "minimal.hazard.alert.json").read_bytes())
    body = envelope.body
    assert isinstance(body, HazardAlert)
    assert (body.effective, body.expires, body.instruction) == (None, None, None)
    assert body.area[0].polygon is None
    assert envelope.in_reply_to is None


def test_minimal_error_report_gets_defaults() -> None:
    """A minimal error.report has no field path, reference or refused recipients."""
    envelope = decode_envelope((GOLDEN_DIR / "minimal.error.report.json").read_bytes())
    body = envelope.body
    assert isinstance(body, ErrorReport)
    assert (body.code, body.field_path, body.refused_recipients) == (202, None, [])


@pytest.mark.parametrize("path", sorted(GOLDEN_DIR.glob("*.json")), ids=lambda p: p.name)
def test_every_golden_file_is_schema_valid(path: Path) -> None:
    """Every golden payload also passes the envelope JSON Schema."""
    assert validator("envelope").is_valid(json.loads(path.read_text()))
