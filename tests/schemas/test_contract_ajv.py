"""The published JSON Schemas compile in Ajv 2020 with its strict defaults and pass the examples."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from contract_helpers import REPO

from liaison.schemas.generate import GENERATED_DIR

SCRIPT = REPO / "deploy" / "node-tools" / "validate_json_schemas.mjs"
AJV = REPO / ".tools" / "node" / "node_modules" / "ajv" / "package.json"


def _ajv(generated: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None or not AJV.exists():
        pytest.fail("node or ajv is missing: run `make node-tools`")
    return subprocess.run(
        [node, str(SCRIPT), str(generated)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_published_schemas_compile_in_strict_ajv_2020() -> None:
    """Every schema compiles in Ajv2020() (strict); examples pass, broken copies are refused."""
    result = _ajv(GENERATED_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    schemas = len(list((GENERATED_DIR / "json").glob("*.schema.json")))
    assert f"compiled {schemas} schemas" in result.stdout
    assert "checked 0 instances" not in result.stdout


def test_strict_ajv_refuses_an_openapi_discriminator(tmp_path: Path) -> None:
    """The check has teeth: the envelope schema with msgspec's `discriminator` does not compile."""
    generated = tmp_path / "generated"
    shutil.copytree(GENERATED_DIR, generated)
    envelope = generated / "json" / "envelope.schema.json"
    schema = json.loads(envelope.read_text())
    schema["$defs"]["Envelope"]["properties"]["body"]["discriminator"] = {"propertyName": "type"}
    envelope.write_text(json.dumps(schema))
    result = _ajv(generated)
    assert result.returncode == 1
    assert 'unknown keyword: "discriminator"' in result.stderr


def test_published_schemas_carry_no_discriminator() -> None:
    """No published JSON Schema uses the OpenAPI-only `discriminator` keyword."""
    for path in (GENERATED_DIR / "json").glob("*.schema.json"):
        assert '"discriminator"' not in path.read_text(), path.name
