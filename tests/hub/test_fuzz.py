"""A larger search over the router's verdict: envelopes built field by field from any JSON,
then cut, spliced and bit-flipped as bytes; the verdict never raises and always says whom to tell.

The budget is LIAISON_FUZZ_EXAMPLES (default 1,000 per test); raise it for a longer hunt.
"""

import os
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liaison.directory.index import DirectoryIndex, load_directory
from liaison.hub.decisions import Delivery, Refusal
from liaison.hub.router import LAST_DELIVERY, Router
from tests.hub.support import demo_signature, envelope, sample_body

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "directory.toml"
BUDGET = settings(
    max_examples=int(os.environ.get("LIAISON_FUZZ_EXAMPLES", "1000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=40)
    | st.sampled_from(["org:unmas", "group:icg-ma", "2026-11-23T10:00:00Z", "flash", "1.0"]),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=30,
)
FIELDS = [
    "schema_version",
    "distribution_id",
    "sender",
    "sent_at",
    "expires_at",
    "recipients",
    "precedence",
    "classification",
    "status",
    "in_reply_to",
    "incident_id",
    "body",
]
TYPES = ["hazard.alert", "hazard.eo_spot_report", "sitrep", "resource.request", "tasking.order"]


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    """A valid envelope from mag with some fields, or body fields, replaced by any JSON."""
    doc = envelope("mag", ["org:unmas"], body=sample_body(draw(st.sampled_from(TYPES))))
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=3)):
        doc[field] = draw(json_values)
    body = doc.get("body")
    if isinstance(body, dict) and body and draw(st.booleans()):
        doc["body"] = {**body, draw(st.sampled_from(sorted(body))): draw(json_values)}
    return doc


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """An envelope's bytes cut short, spliced with others, or with bytes flipped."""
    raw = bytearray(msgspec.json.encode(draw(envelopes())))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        at = draw(st.integers(min_value=0, max_value=max(len(raw) - 1, 0)))
        match draw(st.sampled_from(["cut", "flip", "insert", "nest"])):
            case "cut":
                del raw[at:]
            case "flip":
                if raw:
                    raw[at] ^= 1 << draw(st.integers(min_value=0, max_value=7))
            case "insert":
                raw[at:at] = draw(st.binary(min_size=1, max_size=8))
            case "nest":
                depth = draw(st.integers(min_value=1, max_value=1200))
                raw[at:at] = b"[" * depth + b"]" * depth
    return bytes(raw)


@pytest.fixture(scope="module")
def router() -> Router:
    """A router over the sample directory (accounts are the organisation ids)."""
    sample: DirectoryIndex = load_directory(SAMPLE)
    return Router(sample, max_message_bytes=1 << 20)


def verdicts(router: Router, raw: bytes) -> list[Delivery | Refusal]:
    """The verdicts on ``raw`` from mag, on its first delivery and on its last."""
    return [
        router.decide(
            raw,
            user_id="mag",
            routing_key="mag",
            content_type="application/json",
            delivery_count=count,
            signature=demo_signature("mag", raw),
        )
        for count in (0, LAST_DELIVERY)
    ]


@BUDGET
@given(doc=envelopes())
def test_any_envelope_gets_a_verdict_answered_to_its_sender(
    router: Router, doc: dict[str, Any]
) -> None:
    """Envelopes with any JSON in any field: a delivery, or a refusal told to mag."""
    for verdict in verdicts(router, msgspec.json.encode(doc)):
        assert isinstance(verdict, Delivery | Refusal)
        if isinstance(verdict, Refusal):
            assert verdict.reply_to == "mag"
            assert verdict.field_path is None or verdict.field_path.startswith("$")


@BUDGET
@given(raw=mutated())
def test_any_mangled_bytes_get_a_verdict_answered_to_the_sender(router: Router, raw: bytes) -> None:
    """Cut, flipped, spliced and deeply nested bytes: a verdict, never a raise; mag is told."""
    for verdict in verdicts(router, raw):
        assert isinstance(verdict, Delivery | Refusal)
        if isinstance(verdict, Refusal):
            assert verdict.reply_to == "mag"
