"""Pathological JSON never crashes decoding: an Envelope or the contract's decode error."""

import json

import msgspec
import pytest
from contract_helpers import example_json
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pathological import duplicate_keys, pathological_documents

from liaison.schemas.codes import ErrorCode
from liaison.schemas.envelope import Envelope, MalformedMessage, decode_envelope, error_code
from liaison.schemas.probe import probe

_SLOW_DATA = [HealthCheck.too_slow, HealthCheck.data_too_large]


def _outcome(data: bytes) -> Envelope | msgspec.DecodeError:
    """What decoding gives; anything but an Envelope or a DecodeError propagates and fails."""
    try:
        return decode_envelope(data)
    except msgspec.DecodeError as exc:
        return exc


def _assert_contract_outcome(data: bytes) -> None:
    outcome = _outcome(data)
    if isinstance(outcome, msgspec.DecodeError):
        assert isinstance(outcome, msgspec.ValidationError | MalformedMessage), repr(outcome)
        assert error_code(outcome) in ErrorCode
    else:
        assert isinstance(outcome, Envelope)


@settings(max_examples=400, deadline=None, suppress_health_check=_SLOW_DATA)
@given(pathological_documents())
def test_pathological_json_decodes_or_raises_the_contract_error(data: bytes) -> None:
    """Deep nesting, huge numbers, long strings, NaN, bad UTF-8, BOM, surrogates: no crash."""
    _assert_contract_outcome(data)


@settings(max_examples=400, deadline=None, suppress_health_check=_SLOW_DATA)
@given(pathological_documents())
def test_probe_never_raises_on_pathological_json(data: bytes) -> None:
    """probe reads what it can of any input and never raises."""
    distribution_id, message_type = probe(data)
    assert distribution_id is None or 0 < len(distribution_id) <= 256
    assert message_type is None or 0 < len(message_type) <= 64


@settings(max_examples=200, deadline=None)
@given(duplicate_keys())
def test_duplicate_keys_take_the_last_value(data: bytes) -> None:
    """A repeated key is decided by its last occurrence, as in every mainstream JSON parser."""
    outcome = _outcome(data)
    last = json.loads(data)  # Python's json also keeps the last value of a repeated key
    if isinstance(outcome, Envelope):
        assert outcome.sender == last["sender"]
        assert outcome.distribution_id == last["distribution_id"]


@pytest.mark.parametrize("depth", [1_000, 100_000])
@pytest.mark.parametrize("where", ["root", "body", "unknown"])
def test_deep_nesting_is_malformed_with_a_code(depth: int, where: str) -> None:
    """A ~1,000-level (2 KB) document is a MalformedMessage (code 100), not a RecursionError."""
    nested = b"[" * depth + b"]" * depth
    doc = json.dumps(example_json("ack"), separators=(",", ":")).encode()
    data = {
        "root": b'{"a":' * depth + b"1" + b"}" * depth,
        "body": doc.replace(b'"body":{', b'"body":{"x":' + nested + b",", 1),
        "unknown": doc[:-1] + b',"x":' + nested + b"}",
    }[where]
    with pytest.raises(MalformedMessage) as raised:
        decode_envelope(data)
    assert error_code(raised.value) is ErrorCode.MALFORMED
    assert isinstance(raised.value, msgspec.DecodeError)


def test_probe_reads_the_id_past_deep_nesting() -> None:
    """The distribution id and type are read even when the rest nests too deep to decode."""
    nested = b"[" * 5_000 + b"]" * 5_000
    doc = json.dumps(example_json("ack"), separators=(",", ":")).encode()
    data = doc.replace(b'"body":{', b'"body":{"x":' + nested + b",", 1)[:-1] + b',"y":' + nested
    data += b"}"
    assert probe(data) == (example_json("ack")["distribution_id"], "ack")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"distribution_id": "a-1", "body": {"type": "hazard.alert"}}', ("a-1", "hazard.alert")),
        (b'\xef\xbb\xbf{"distribution_id": "a-1", "body": {"type": "ack"}}', ("a-1", "ack")),
        (b'{"distribution_id": "a-1", "body": {"type": "ack"}, "x": NaN}', ("a-1", "ack")),
        (b'{"distribution_id": "\xff", "body": {"type": "ack"}}', (None, "ack")),
        (b'{"distribution_id": 7, "body": []}', (None, None)),
        (b'{"distribution_id": "' + b"a" * 257 + b'"}', (None, None)),
        (b'["distribution_id", "a-1"]', (None, None)),
        (b"", (None, None)),
    ],
)
def test_probe_reads_what_can_be_read(data: bytes, expected: tuple[str | None, str | None]) -> None:
    """probe returns the id and type when they are readable strings within limits, else None."""
    assert probe(data) == expected


def test_error_code_maps_the_path() -> None:
    """error_code gives 103, 302, 301 or 300 by the failing path, 100 for unreadable bytes."""
    doc = example_json("ack")
    cases = {
        ErrorCode.UNSUPPORTED_SCHEMA_VERSION: {**doc, "schema_version": "2.0"},
        ErrorCode.UNKNOWN_MESSAGE_TYPE: {**doc, "body": {**doc["body"], "type": "nope"}},
        ErrorCode.INVALID_BODY: {**doc, "body": {**doc["body"], "level": "nope"}},
        ErrorCode.INVALID_ENVELOPE: {**doc, "sender": "NOPE"},
    }
    for code, value in cases.items():
        with pytest.raises(msgspec.ValidationError) as raised:
            decode_envelope(json.dumps(value).encode())
        assert error_code(raised.value) is code
    with pytest.raises(MalformedMessage) as malformed:
        decode_envelope(b"{")
    assert error_code(malformed.value) is ErrorCode.MALFORMED


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_have_a_code(data: bytes) -> None:
    """Random bytes decode or raise an error error_code maps to a catalogue code."""
    _assert_contract_outcome(data)
