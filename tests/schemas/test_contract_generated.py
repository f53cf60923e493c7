"""The committed generated contract matches what the Structs generate today."""

import json
from pathlib import Path

from contract_helpers import GENERATED_DIR
from jsonschema import Draft202012Validator

from liaison.schemas.catalogue import MESSAGE_TYPES
from liaison.schemas.generate import artefacts, write


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_committed_artefacts_are_up_to_date(tmp_path: Path) -> None:
    """Regenerating into a temp dir gives byte-identical files to the committed ones."""
    write(tmp_path / "generated")
    fresh, committed = _tree(tmp_path / "generated"), _tree(GENERATED_DIR)
    stale = sorted(p for p in fresh.keys() | committed.keys() if fresh.get(p) != committed.get(p))
    assert not stale, f"schemas/generated is stale ({stale}): run `make schemas` and commit"


def test_generation_is_deterministic() -> None:
    """Two generations in one process give the same bytes (no clocks, no set order)."""
    assert artefacts() == artefacts()


def test_one_schema_and_one_example_per_type() -> None:
    """Every catalogue type has a body schema and an example; the envelope has a schema."""
    names = set(artefacts())
    for type_name in MESSAGE_TYPES:
        assert f"json/{type_name}.schema.json" in names
        assert f"examples/{type_name}.json" in names
    assert "json/envelope.schema.json" in names


def test_schemas_are_valid_2020_12_with_ids() -> None:
    """Each JSON Schema is valid under the 2020-12 meta-schema and has a unique `$id`."""
    ids = set()
    for path in sorted((GENERATED_DIR / "json").glob("*.schema.json")):
        schema = json.loads(path.read_text())
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["title"]
        assert schema["description"]
        ids.add(schema["$id"])
    assert len(ids) == len(MESSAGE_TYPES) + 1


def test_generated_files_end_with_newline() -> None:
    """Generated text files end with exactly one newline (stable diffs)."""
    for name, content in artefacts().items():
        assert content.endswith("\n"), name
        assert not content.endswith("\n\n"), name
