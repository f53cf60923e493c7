"""No input makes the envelope decoder raise anything but msgspec's decode errors."""

import json
from typing import Any

import msgspec
from contract_helpers import TYPE_NAMES, example_json
from hypothesis import given, settings
from hypothesis import strategies as st

from liaison.schemas.envelope import decode_envelope, error_path

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(["org:unmas", "2024-03-12T07:45:00Z", "hazard.alert", "ack", "Point"]),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(["type", "body", "sender", "recipients", "sent_at", "x", "coordinates"])
            | st.text(max_size=8),
            children,
            max_size=6,
        )
    ),
    max_leaves=30,
)


def _refusal(data: bytes) -> msgspec.DecodeError | None:
    """The msgspec error decoding raises, if any; any other exception propagates."""
    try:
        decode_envelope(data)
    except msgspec.DecodeError as exc:
        return exc
    return None


def _decode(data: bytes) -> None:
    refusal = _refusal(data)
    if isinstance(refusal, msgspec.ValidationError):
        where = error_path(refusal)
        assert where.startswith("$")
        # msgspec names the path in the message except for errors at the root (path `$.x`).
        assert " - at `$" in str(refusal) or where.count(".") <= 1, str(refusal)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_only_raise_decode_errors(data: bytes) -> None:
    """Random bytes either decode or raise msgspec.DecodeError (or its ValidationError)."""
    _decode(data)


@settings(max_examples=500, deadline=None)
@given(json_values)
def test_arbitrary_json_only_raises_validation_errors(value: Any) -> None:
    """Random JSON documents raise only msgspec errors, root-level ones aside with a `$.` path."""
    _decode(json.dumps(value).encode())


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(TYPE_NAMES), st.sampled_from(["body", "sender", "recipients"]), json_values)
def test_random_json_in_a_real_envelope_names_the_field(
    type_name: str, field: str, value: Any
) -> None:
    """Random JSON put into one field of a valid envelope is refused with that field's path."""
    doc = example_json(type_name)
    doc[field] = value
    refusal = _refusal(json.dumps(doc).encode())
    if refusal is not None:
        assert isinstance(refusal, msgspec.ValidationError)
        assert error_path(refusal).startswith(f"$.{field}"), str(refusal)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(TYPE_NAMES), st.integers(min_value=0), st.binary(min_size=1, max_size=4))
def test_corrupted_example_bytes_only_raise_decode_errors(
    type_name: str, position: int, junk: bytes
) -> None:
    """An example with bytes overwritten somewhere decodes or raises msgspec.DecodeError."""
    data = bytearray(json.dumps(example_json(type_name)).encode())
    at = position % len(data)
    data[at : at + len(junk)] = junk
    _decode(bytes(data))


def test_truncated_example_is_a_decode_error() -> None:
    """A message cut short is a DecodeError (malformed, code 100), not a ValidationError."""
    refusal = _refusal(json.dumps(example_json("hazard.alert")).encode()[:-10])
    assert isinstance(refusal, msgspec.DecodeError)
    assert not isinstance(refusal, msgspec.ValidationError)


def test_invalid_utf8_in_a_string_is_a_decode_error() -> None:
    """Invalid UTF-8 inside a string is a DecodeError, not a UnicodeDecodeError."""
    data = json.dumps(example_json("ack")).encode().replace(b'"unmas"', b'"\x80unmas"', 1)
    assert isinstance(_refusal(data), msgspec.DecodeError)
