"""Patterns mean the same in every validator: a trailing newline is never part of a valid id.

msgspec and Python's jsonschema search with Python's ``re``, whose ``$`` also matches before a
final newline; JavaScript validators use ECMA-262, whose ``$`` does not. Every pattern is built
by ``schemas.types.whole`` so the three agree.
"""

import json
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from contract_helpers import example_json, validator

from schemas.envelope import decode_envelope, error_path
from schemas.generate import GENERATED_DIR


def _patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                yield value
            else:
                yield from _patterns(value)
    elif isinstance(node, list):
        for item in node:
            yield from _patterns(item)


def test_every_published_pattern_is_anchored_at_both_ends() -> None:
    """No pattern in the generated schemas ends in a bare ``$`` that Python would stretch."""
    found = 0
    for path in sorted((GENERATED_DIR / "json").glob("*.schema.json")):
        for pattern in _patterns(json.loads(path.read_text())):
            found += 1
            assert pattern.startswith("^"), (path.name, pattern)
            assert pattern.endswith("$(?!\\n)"), (path.name, pattern)
    assert found >= 10


@pytest.mark.parametrize(
    ("place", "path"),
    [
        (["distribution_id"], "$.distribution_id"),
        (["sender"], "$.sender"),
        (["recipients", 0], "$.recipients[0]"),
        (["schema_version"], "$.schema_version"),
    ],
)
def test_a_trailing_newline_is_refused_by_msgspec_and_json_schema(
    place: list[str | int], path: str
) -> None:
    """``"unmas\\n"`` and the like fail both validators, with the field's path."""
    document = example_json("hazard.eo_spot_report")
    parent: Any = document
    for key in place[:-1]:
        parent = parent[key]
    parent[place[-1]] += "\n"
    with pytest.raises(msgspec.ValidationError) as refused:
        decode_envelope(json.dumps(document).encode())
    assert error_path(refused.value) == path
    assert not validator("envelope").is_valid(document)
    parent[place[-1]] = parent[place[-1]][:-1]
    decode_envelope(json.dumps(document).encode())
    assert validator("envelope").is_valid(document)
