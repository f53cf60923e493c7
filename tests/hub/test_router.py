"""The router as pure logic: every rule without a broker, and no input that makes it raise."""

from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liaison.directory.index import DirectoryIndex, load_directory
from liaison.hub.decisions import Delivery, Refusal
from liaison.hub.router import LAST_DELIVERY, Router
from liaison.schemas.codes import ErrorCode
from tests.hub.support import demo_signature, envelope, now_iso, sample_body

SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "directory.toml"


@pytest.fixture(scope="module")
def sample() -> DirectoryIndex:
    """The sample directory, where each account is the organisation id."""
    return load_directory(SAMPLE)


def make_router(directory: DirectoryIndex) -> Router:
    """A router over ``directory`` with a 4 KiB size limit."""
    return Router(directory, max_message_bytes=4096)


def decide(router: Router, doc: dict[str, Any] | bytes, user: str | None = "mag") -> Any:
    """Decide one document as if ``user`` published it with routing key ``mag``."""
    raw = doc if isinstance(doc, bytes) else msgspec.json.encode(doc)
    return router.decide(
        raw,
        user_id=user,
        routing_key="mag",
        content_type="application/json",
        signature=demo_signature(user, raw),
    )


def test_delivery_excludes_the_sender_and_resolves_groups(sample: DirectoryIndex) -> None:
    """Group addressing expands to members, minus the sender, sorted."""
    router = make_router(sample)
    decision = decide(router, envelope("mag", ["group:mine-action-operators"]))
    assert isinstance(decision, Delivery)
    assert decision.recipients == ["halo-trust", "unmas"]
    assert decision.message_id.startswith("mag/")


@pytest.mark.parametrize(
    ("doc", "code", "path"),
    [
        (
            envelope("mag", ["org:unmas"], schema_version="3.1"),
            ErrorCode.UNSUPPORTED_SCHEMA_VERSION,
            "$.schema_version",
        ),
        (envelope("mag", []), ErrorCode.INVALID_ENVELOPE, "$.recipients"),
        (envelope("mag", ["org:mag"]), ErrorCode.NO_RECIPIENTS, "$.recipients"),
        (
            envelope("mag", ["org:unmas"], sent_at="2026-01-01T00:00:00"),
            ErrorCode.INVALID_ENVELOPE,
            "$.sent_at",
        ),
        (
            envelope("mag", ["org:unmas"], expires_at=now_iso(-10), sent_at=now_iso(0)),
            ErrorCode.INCONSISTENT,
            "$.expires_at",
        ),
        (
            envelope("mag", ["org:unmas"], body={"quantity": 1}),
            ErrorCode.UNKNOWN_MESSAGE_TYPE,
            "$.body.type",
        ),
        (envelope("mag", ["role:nobody"]), ErrorCode.UNKNOWN_RECIPIENT, "$.recipients[0]"),
        (
            envelope("mag", ["org:unmas"], body=sample_body("guidance.notice")),
            ErrorCode.TYPE_NOT_PERMITTED,
            "$.body.type",
        ),
    ],
)
def test_refusal_codes_and_paths(
    sample: DirectoryIndex, doc: dict[str, Any], code: ErrorCode, path: str
) -> None:
    """Each kind of bad envelope gets its code and names the offending field."""
    decision = decide(make_router(sample), doc)
    assert isinstance(decision, Refusal), decision
    assert (decision.code, decision.field_path) == (code, path)
    assert decision.reply_to == "mag"


def test_unknown_account_cannot_be_answered(sample: DirectoryIndex) -> None:
    """A broker account outside the directory is refused with nobody to tell."""
    decision = decide(make_router(sample), envelope("mag", ["org:unmas"]), user="stranger")
    assert isinstance(decision, Refusal)
    assert decision.code is ErrorCode.UNKNOWN_ACCOUNT
    assert decision.reply_to is None


def test_strictly_confidential_reaches_only_cleared(sample: DirectoryIndex) -> None:
    """Only strictly-confidential-cleared organisations receive such a message."""
    doc = envelope("dpko", ["mission:minusca"], classification="strictly_confidential")
    decision = decide(make_router(sample), doc, user="dpko")
    assert isinstance(decision, Delivery)
    assert decision.recipients == ["minusca"]
    assert decision.partial is not None
    assert decision.partial.code is ErrorCode.INSUFFICIENT_CLEARANCE
    assert "unmas" in decision.partial.refused_recipients


def test_invalid_utf8_is_malformed(sample: DirectoryIndex) -> None:
    """Bytes that are not UTF-8 are refused as malformed, not as a crash."""
    decision = decide(make_router(sample), b'{"sender": "\xff\xfe"}')
    assert isinstance(decision, Refusal)
    assert decision.code is ErrorCode.MALFORMED


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=512), user=st.none() | st.sampled_from(["mag", "unmas", "x"]))
def test_any_bytes_get_a_decision(sample: DirectoryIndex, data: bytes, user: str | None) -> None:
    """Arbitrary bytes never raise: they are refused (or, improbably, routed)."""
    decision = decide(make_router(sample), data, user=user)
    assert isinstance(decision, Refusal | Delivery)


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(
        [
            "distribution_id",
            "sender",
            "sent_at",
            "recipients",
            "body",
            "precedence",
            "classification",
            "expires_at",
        ]
    ),
    value=json_values,
)
def test_any_field_value_gets_a_decision(sample: DirectoryIndex, field: str, value: object) -> None:
    """Replacing any envelope field by any JSON value yields a decision, never an exception."""
    doc = envelope("mag", ["org:unmas"])
    doc[field] = value
    decision = decide(make_router(sample), doc)
    if isinstance(decision, Refusal):
        assert decision.field_path is None or decision.field_path.startswith("$")
        assert decision.reply_to == "mag"


def nested(depth: int, *, inside: bytes = b"1") -> bytes:
    """A JSON value ``depth`` arrays deep (about 2 bytes a level)."""
    return b"[" * depth + inside + b"]" * depth


def envelope_with(field: str, raw_value: bytes) -> bytes:
    """A valid envelope from mag whose ``field`` holds the raw JSON ``raw_value``."""
    doc = envelope("mag", ["org:unmas"])
    doc[field] = "PLACEHOLDER"
    return msgspec.json.encode(doc).replace(b'"PLACEHOLDER"', raw_value)


PATHOLOGICAL = {
    "nested 1000 at the top": nested(1000),
    "nested 1000 objects": b'{"a":' * 1000 + b"1" + b"}" * 1000,
    "nested 1000 in the body": envelope_with("body", nested(1000)),
    "nested 1000 in an unknown field": envelope_with("x_extra", nested(1000)),
    "nested 100000": nested(100_000),
    "huge integer": envelope_with("x_extra", b"9" * 5000),
    "huge exponent": envelope_with("x_extra", b"1e999999"),
    "NaN": envelope_with("x_extra", b"NaN"),
    "long string": envelope_with("x_extra", b'"' + b"x" * 3000 + b'"'),
    "duplicate keys": b'{"sender":"mag","sender":"unmas","distribution_id":"a","body":{}}',
    "lone surrogate": envelope_with("x_extra", b'"\\ud800"'),
    "invalid UTF-8 in a string": envelope_with("x_extra", b'"\xc3\x28"'),
}


@pytest.mark.parametrize("raw", PATHOLOGICAL.values(), ids=PATHOLOGICAL.keys())
@pytest.mark.parametrize("user", ["mag", None])
@pytest.mark.parametrize("delivery_count", [0, 4])
def test_pathological_json_gets_a_verdict(
    sample: DirectoryIndex, raw: bytes, user: str | None, delivery_count: int
) -> None:
    """Deep nesting, huge numbers, NaN, duplicate keys, bad UTF-8: a verdict, never a raise,
    on the first delivery and on the last (the poison rule's probe reads it too)."""
    router = Router(sample, max_message_bytes=1 << 20)
    verdict = router.decide(
        raw,
        user_id=user,
        routing_key="mag",
        content_type="application/json",
        delivery_count=delivery_count,
        signature=demo_signature(user, raw),
    )
    assert isinstance(verdict, Refusal | Delivery)
    if isinstance(verdict, Refusal):
        assert verdict.reply_to == "mag"


def test_deep_nesting_is_a_format_error(sample: DirectoryIndex) -> None:
    """A document too deep to decode is refused as malformed (1xx), answered to its sender."""
    router = Router(sample, max_message_bytes=1 << 20)
    verdict = decide(router, b'{"a":' * 1000 + b"1" + b"}" * 1000)
    assert isinstance(verdict, Refusal)
    assert verdict.code is ErrorCode.MALFORMED
    assert verdict.reply_to == "mag"


def test_last_delivery_is_refused_as_poison(sample: DirectoryIndex) -> None:
    """At the delivery limit the router gives up, names the message, and tells its sender."""
    doc = envelope("mag", ["org:unmas"])
    raw = msgspec.json.encode(doc)
    router = make_router(sample)
    signature = demo_signature("mag", raw)
    first = router.decide(
        raw, user_id="mag", routing_key="mag", content_type=None, signature=signature
    )
    assert isinstance(first, Delivery)
    last = router.decide(
        raw,
        user_id="mag",
        routing_key="mag",
        content_type=None,
        delivery_count=LAST_DELIVERY,
        signature=signature,
    )
    assert isinstance(last, Refusal)
    assert (last.code, last.reply_to) == (ErrorCode.POISON, "mag")
    assert (last.distribution_id, last.message_type) == (
        doc["distribution_id"],
        doc["body"]["type"],
    )


pathological_json = st.one_of(
    st.integers(min_value=1, max_value=1500).map(nested),
    st.integers(min_value=1, max_value=1500).map(lambda n: b'{"a":' * n + b"0" + b"}" * n),
    st.integers(min_value=20, max_value=2000).map(lambda n: b"9" * n),
    st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999999", b"-0", b'"\\ud800"']),
    st.text(max_size=300).map(msgspec.json.encode),
    st.lists(st.sampled_from(["sender", "distribution_id", "body"]), max_size=6).map(
        lambda keys: b"{" + b",".join(b'"%s":"mag"' % k.encode() for k in keys) + b"}"
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    raw=pathological_json,
    field=st.sampled_from(["body", "recipients", "sender", "distribution_id", "x_extra"]),
    whole=st.booleans(),
)
def test_any_pathological_json_gets_a_verdict(
    sample: DirectoryIndex, raw: bytes, field: str, whole: bool
) -> None:
    """Generated pathological JSON, as the whole document or as one field, gets a verdict."""
    router = Router(sample, max_message_bytes=1 << 20)
    document = raw if whole else envelope_with(field, raw)
    for count in (0, LAST_DELIVERY):
        verdict = router.decide(
            document,
            user_id="mag",
            routing_key="mag",
            content_type="application/json",
            delivery_count=count,
            signature=demo_signature("mag", document),
        )
        assert isinstance(verdict, Refusal | Delivery)
