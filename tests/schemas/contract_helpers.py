"""Helpers for the contract tests: JSON Schema validators (formats checked) and examples as JSON."""

import json
import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from liaison.schemas.catalogue import MESSAGE_TYPES
from liaison.schemas.generate import GENERATED_DIR

REPO = Path(__file__).resolve().parents[2]
GOLDEN_DIR = REPO / "tests" / "golden"

# jsonschema checks `date-time` only with the optional rfc3339-validator package, which is not a
# dependency; this checker implements RFC 3339 section 5.6 (offset required), which is what
# partners' validators enforce, so `format` is really checked and naive datetimes are refused.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$", re.ASCII)


def _format_checker() -> FormatChecker:
    checker = FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def is_rfc3339(instance: object) -> bool:
        if not isinstance(instance, str):
            return True
        return bool(_RFC3339.fullmatch(instance)) and bool(datetime.fromisoformat(instance))

    return checker


@cache
def validator(name: str) -> Draft202012Validator:
    """Validator for a generated schema file: `envelope` or a wire type name."""
    schema = json.loads((GENERATED_DIR / "json" / f"{name}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=_format_checker())


@cache
def _example_text(type_name: str) -> str:
    return (GENERATED_DIR / "examples" / f"{type_name}.json").read_text()


def example_json(type_name: str) -> Any:
    """A fresh, mutable copy of the committed example envelope for a wire type."""
    return json.loads(_example_text(type_name))


TYPE_NAMES = sorted(MESSAGE_TYPES)
