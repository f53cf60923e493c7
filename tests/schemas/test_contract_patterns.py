"""Patterns mean "the whole string" for the hub and for the published schema alike.

msgspec searches with Python's ``re``, whose ``$`` also matches before a final newline, so the
Structs end their patterns in ``\\Z``; the published schemas use ECMA-262, whose ``$`` already
means the end, and stay in the subset of regex syntax JSON Schema recommends for interoperable
validators (no look-around, no ``\\Z``). Python's jsonschema applies ECMA patterns with ``re``
too and so still takes a trailing newline; the hub, and validators in other languages, do not.
"""

import json
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from contract_helpers import example_json

from liaison.schemas.envelope import decode_envelope, error_path
from liaison.schemas.generate import GENERATED_DIR

# (path in the envelope, its JSON path in error reports)
ENVELOPE_FIELDS = [
    (["distribution_id"], "$.distribution_id"),
    (["sender"], "$.sender"),
    (["recipients", 0], "$.recipients[0]"),
    (["schema_version"], "$.schema_version"),
]


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


def _published_patterns() -> set[str]:
    found: set[str] = set()
    for path in sorted((GENERATED_DIR / "json").glob("*.schema.json")):
        found.update(_patterns(json.loads(path.read_text())))
    found.update(_patterns(json.loads((GENERATED_DIR / "asyncapi.json").read_text())))
    return found


def test_published_patterns_are_anchored_and_portable() -> None:
    """Every published pattern is ``^…$``, with no look-around and no Python-only ``\\Z``."""
    patterns = _published_patterns()
    assert len(patterns) >= 8
    for pattern in patterns:
        assert pattern.startswith("^"), pattern
        assert pattern.endswith("$"), pattern
        assert "(?" not in pattern, pattern
        assert "\\Z" not in pattern, pattern


def _with_newline(place: list[str | int]) -> tuple[dict[str, Any], Any, str | int]:
    document = example_json("hazard.eo_spot_report")
    parent: Any = document
    for key in place[:-1]:
        parent = parent[key]
    parent[place[-1]] += "\n"
    return document, parent, place[-1]


@pytest.mark.parametrize(("place", "path"), ENVELOPE_FIELDS)
def test_the_hub_refuses_a_trailing_newline(place: list[str | int], path: str) -> None:
    """``"unmas\\n"`` and the like fail msgspec with the field's path; without it they pass."""
    document, parent, key = _with_newline(place)
    with pytest.raises(msgspec.ValidationError) as refused:
        decode_envelope(json.dumps(document).encode())
    assert error_path(refused.value) == path
    parent[key] = parent[key][:-1]
    decode_envelope(json.dumps(document).encode())


def test_javascript_reads_the_published_patterns_the_same_way() -> None:
    """Node compiles every published pattern (unicode mode, as ajv does) and, like the hub,
    refuses the example's values with a newline appended while accepting them as they are."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing: run `make node-tools`")
    schema = json.loads((GENERATED_DIR / "json" / "envelope.schema.json").read_text())
    fields = schema["$defs"]["Envelope"]["properties"]
    example = example_json("hazard.eo_spot_report")
    cases = []
    for place, _ in ENVELOPE_FIELDS:
        value: Any = example
        for key in place:
            value = value[key]
        prop = fields[place[0]]
        pattern = (prop.get("items") or prop)["pattern"]
        cases += [[pattern, value, True], [pattern, value + "\n", False]]
    cases += [[p, "", None] for p in sorted(_published_patterns())]
    script = (
        "const cases = JSON.parse(process.argv[1]);"
        "const out = cases.map(([p, v, want]) => {"
        " const re = new RegExp(p, 'u');"
        " return want === null || re.test(v) === want; });"
        "console.log(JSON.stringify(out));"
    )
    result = subprocess.run(
        [node, "-e", script, json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    verdicts = json.loads(result.stdout)
    assert all(verdicts), [c for c, ok in zip(cases, verdicts, strict=True) if not ok]
