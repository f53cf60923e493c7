"""Hypothesis generators for pathological JSON: the inputs that break decoders, not schemas.

Deep nesting, huge numbers, long strings, duplicate keys, NaN/Infinity, invalid UTF-8, a byte
order mark and lone surrogates, each put where a decoder meets it: at the root, as a known
field's value, inside the body, or as an unknown field. Shared by the suite and `make fuzz`.
"""

import json

from contract_helpers import TYPE_NAMES, example_json
from hypothesis import strategies as st

#: The known fields of the envelope, and names a decoder skips (unknown fields).
FIELDS = ("distribution_id", "sender", "recipients", "sent_at", "body", "x-extension", "zz")


def deep_nesting() -> st.SearchStrategy[bytes]:
    """Arrays and objects nested 500 to 5,000 levels: a ~1,000-level document is 2 KB."""
    return st.builds(
        lambda depth, opener, leaf: (
            (b"[" * depth + leaf + b"]" * depth)
            if opener == "array"
            else (b'{"a":' * depth + leaf + b"}" * depth)
        ),
        st.integers(min_value=500, max_value=5_000),
        st.sampled_from(["array", "object"]),
        st.sampled_from([b"1", b'"x"', b"null", b"[]", b"{}"]),
    )


def huge_numbers() -> st.SearchStrategy[bytes]:
    """Integers of thousands of digits, exponents past any float, and tiny denormals."""
    return st.one_of(
        st.integers(min_value=20, max_value=20_000).map(lambda n: b"9" * n),
        st.integers(min_value=20, max_value=20_000).map(lambda n: b"-1" + b"0" * n),
        st.sampled_from([b"1e999", b"-1e999", b"1e-999", b"1E+99999999999", b"0.0000e-400"]),
        st.integers(min_value=20, max_value=5_000).map(lambda n: b"0." + b"1" * n + b"e308"),
    )


def long_strings() -> st.SearchStrategy[bytes]:
    """JSON strings of up to 300,000 characters, plain, escaped or multi-byte."""
    return st.builds(
        lambda n, unit: b'"' + unit * n + b'"',
        st.integers(min_value=1_000, max_value=300_000),
        st.sampled_from([b"a", b"\\n", b"\\u00e9", "é".encode(), "𝄞".encode(), b"\\\\"]),
    )


def special_floats() -> st.SearchStrategy[bytes]:
    """The non-JSON tokens Python's json module writes: NaN and the infinities."""
    return st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf", b"-NaN"])


def invalid_utf8() -> st.SearchStrategy[bytes]:
    """Strings with stray continuation bytes, overlong forms, UTF-16 surrogates in UTF-8, 0xFF."""
    bad = st.sampled_from(
        [b"\x80", b"\xbf", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80"]
    ) | st.sampled_from([b"\xff", b"\xfe", b"\xc3", b"\xf4\x90\x80\x80"])
    return st.builds(lambda b, tail: b'"' + b + tail + b'"', bad, st.sampled_from([b"", b"unmas"]))


def lone_surrogates() -> st.SearchStrategy[bytes]:
    """Escaped UTF-16 surrogates with no partner, reversed pairs and half pairs at the end."""
    return st.sampled_from(
        [b'"\\ud800"', b'"\\udc00"', b'"\\udfff\\ud800"', b'"a\\ud83d"', b'"\\ud83dx"', b'"\\u"']
    )


def fragments() -> st.SearchStrategy[bytes]:
    """Any one pathological JSON value."""
    return st.one_of(
        deep_nesting(),
        huge_numbers(),
        long_strings(),
        special_floats(),
        invalid_utf8(),
        lone_surrogates(),
    )


def _member(name: str, value: bytes) -> bytes:
    return json.dumps(name).encode() + b":" + value


def _with_member(document: bytes, name: str, value: bytes, *, first: bool) -> bytes:
    """An encoded JSON object with ``"name": value`` added at its start or end."""
    inner = document.strip()[1:-1]
    joined = (_member(name, value), inner) if first else (inner, _member(name, value))
    return b"{" + b",".join(part for part in joined if part) + b"}"


def _example(type_name: str) -> bytes:
    return json.dumps(example_json(type_name), separators=(",", ":")).encode()


def duplicate_keys() -> st.SearchStrategy[bytes]:
    """A valid example with an envelope or body field repeated, once valid and once not."""
    return st.builds(
        lambda type_name, field, value, first: _with_member(
            _example(type_name), field, value, first=first
        ),
        st.sampled_from(TYPE_NAMES),
        st.sampled_from(["sender", "recipients", "distribution_id", "body", "schema_version"]),
        st.sampled_from([b'"liaison"', b"[]", b"null", b'{"type":"ack"}', b'"2.0"', b"1"]),
        st.booleans(),
    )


def pathological_documents() -> st.SearchStrategy[bytes]:
    """A whole message that is pathological somewhere: root, field, body, unknown field, BOM."""
    placed = st.builds(
        lambda type_name, field, value, first: _with_member(
            _example(type_name), field, value, first=first
        ),
        st.sampled_from(TYPE_NAMES),
        st.sampled_from(FIELDS),
        fragments(),
        st.booleans(),
    )
    in_body = st.builds(
        lambda type_name, value: _example(type_name).replace(
            b'"body":{', b'"body":{"x-deep":' + value + b",", 1
        ),
        st.sampled_from(TYPE_NAMES),
        fragments(),
    )
    with_bom = st.sampled_from(TYPE_NAMES).map(lambda t: b"\xef\xbb\xbf" + _example(t))
    return st.one_of(fragments(), placed, in_body, duplicate_keys(), with_bom)
