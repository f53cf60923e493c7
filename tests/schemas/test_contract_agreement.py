"""msgspec and the published JSON Schema agree on validity of mutated example documents.

Each case takes an example envelope and applies one mutation at a random place: a wrong type,
an out-of-range number, a too-long or empty string, a bad enum value or pattern, a removed
field, an unknown extra field, or a bad timestamp. The two validators must give the same answer,
and msgspec's error must name a path at or under the mutated place.

Where the two cannot agree by construction, the mutation is left out, with the reason:
- integral floats (`1.0`) for integer fields: JSON Schema counts `1.0` as an integer, msgspec
  (like most typed decoders) does not; the pool uses non-integral floats only.
- `date-time` formats are checked with the RFC 3339 checker in `contract_helpers` (jsonschema's
  own needs the optional rfc3339-validator package), so naive datetimes ARE tested.
- GeoJSON ring closure (first position = last) is in neither validator; no mutation targets it.
"""

import json
from typing import Any

import msgspec
from contract_helpers import TYPE_NAMES, example_json, validator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liaison.schemas.envelope import decode_envelope, error_path

BAD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    7,
    -2.5,
    1.5,
    1e9 + 0.5,
    "",
    " ",
    "x",
    "UPPER-case",
    "org:unmas",
    "x" * 201,
    "y" * 4001,
    "2024-03-12T07:45:00",  # naive datetime
    "2024-03-12",
    "2024-13-12T07:45:00Z",
    "2024-03-12T07:45:00Z",
    "not-a-value",
    [],
    [1, 2],
    [200.0, 5.0],
    {},
    {"type": "Point"},
]


def _paths(node: Any, path: str = "$") -> list[str]:
    """Every path in a JSON document, in msgspec's notation (`$.body.area[0]`)."""
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, f"{path}[{index}]")
    return found


def _split(path: str) -> list[str | int]:
    steps: list[str | int] = []
    for part in path[2:].replace("[", ".[").split(".") if path != "$" else []:
        steps.append(int(part[1:-1]) if part.startswith("[") else part)
    return steps


def _parent(doc: Any, steps: list[str | int]) -> Any:
    for step in steps[:-1]:
        doc = doc[step]
    return doc


def _refusal(data: bytes) -> msgspec.ValidationError | None:
    try:
        decode_envelope(data)
    except msgspec.ValidationError as exc:
        return exc
    return None


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, str, Any]:
    """(mutated path, mutation kind, mutated document) from one example."""
    doc = example_json(draw(st.sampled_from(TYPE_NAMES)))
    path = draw(st.sampled_from(_paths(doc)[1:]))
    steps = _split(path)
    parent, last = _parent(doc, steps), steps[-1]
    kind = draw(st.sampled_from(["replace", "delete", "extra"]))
    if kind == "delete" and isinstance(parent, dict):
        del parent[last]
    elif kind == "extra" and isinstance(parent[last], dict):
        parent[last]["x_newer_field"] = draw(st.sampled_from(BAD_VALUES))
    else:
        kind = "replace"
        parent[last] = draw(st.sampled_from(BAD_VALUES))
    return path, kind, doc


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_msgspec_and_json_schema_agree(case: tuple[str, str, Any]) -> None:
    """For any one-place mutation of an example, msgspec accepts iff the JSON Schema does."""
    path, kind, doc = case
    schema_ok = validator("envelope").is_valid(doc)
    refusal = _refusal(json.dumps(doc).encode())
    if refusal is None:
        assert schema_ok, f"{kind} at {path}: msgspec accepted, JSON Schema refused"
        return
    assert not schema_ok, f"{kind} at {path}: msgspec refused ({refusal}), JSON Schema accepted"
    where = error_path(refusal)
    # A broken body tag makes the whole body unreadable, so the path may stop at `$.body`.
    assert where.startswith(path) or path.startswith(where), (kind, path, where)
