"""Every example is valid under both msgspec and the published JSON Schemas."""

import json

import msgspec
from contract_helpers import example_json, validator

from liaison.schemas.catalogue import MESSAGE_TYPES, tag_of
from liaison.schemas.envelope import Envelope, decode_envelope, encode
from liaison.schemas.examples import EXAMPLES


def test_example_validates_against_envelope_schema(type_name: str) -> None:
    """The example envelope passes the envelope JSON Schema, formats checked."""
    errors = list(validator("envelope").iter_errors(example_json(type_name)))
    assert not errors, [e.message for e in errors]


def test_example_body_validates_against_its_type_schema(type_name: str) -> None:
    """The example's body passes its own message type's JSON Schema."""
    errors = list(validator(type_name).iter_errors(example_json(type_name)["body"]))
    assert not errors, [e.message for e in errors]


def test_example_decodes_to_the_struct_it_was_built_from(type_name: str) -> None:
    """The committed example decodes with msgspec to the typed example, body of the right class."""
    envelope = decode_envelope(json.dumps(example_json(type_name)).encode())
    assert envelope == EXAMPLES[type_name]
    assert type(envelope.body) is MESSAGE_TYPES[type_name]
    assert tag_of(type(envelope.body)) == type_name


def test_encode_decode_round_trip(type_name: str) -> None:
    """encode then decode_envelope gives back an equal Envelope."""
    assert decode_envelope(encode(EXAMPLES[type_name])) == EXAMPLES[type_name]


def test_body_alone_decodes_with_its_class(type_name: str) -> None:
    """A body decodes on its own with its class (what a per-type consumer would do)."""
    body = json.dumps(example_json(type_name)["body"]).encode()
    assert msgspec.json.decode(body, type=MESSAGE_TYPES[type_name]) == EXAMPLES[type_name].body


def test_envelope_defaults() -> None:
    """A minimal envelope gets version 1.0, actual status, routine precedence, unclassified."""
    doc = {
        "distribution_id": "x-1",
        "sender": "unmas",
        "sent_at": "2024-03-12T07:45:00+01:00",
        "recipients": ["org:mag-car"],
        "body": {
            "type": "ack",
            "ref_distribution_id": "a",
            "ref_sender": "mag-car",
            "level": "received",
        },
    }
    envelope = msgspec.json.decode(json.dumps(doc).encode(), type=Envelope)
    assert (envelope.schema_version, envelope.status, envelope.precedence) == (
        "1.0",
        "actual",
        "routine",
    )
    assert envelope.classification == "unclassified"
    assert envelope.sent_at.utcoffset() is not None
