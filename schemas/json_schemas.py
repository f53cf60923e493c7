"""JSON Schema (2020-12) documents for the envelope and every message body, from the Structs."""

from typing import Any, Final

import msgspec

from liaison.schemas.catalogue import MESSAGE_TYPES
from liaison.schemas.envelope import SCHEMA_VERSION, Envelope
from liaison.schemas.messages.base import BodyBase
from liaison.schemas.types import ecma_pattern

__all__ = [
    "BASE_ID",
    "DIALECT",
    "body_schema",
    "envelope_schema",
    "portable",
    "published",
    "schema_id",
]

DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
#: Neutral namespace for `$id`s; the documents are published with the partner guide.
BASE_ID: Final = f"https://liaison.example.org/schemas/{SCHEMA_VERSION}/"


def schema_id(name: str) -> str:
    """The `$id` of a schema file: `envelope` or a wire type name."""
    return f"{BASE_ID}{name}.schema.json"


def published(node: Any) -> Any:
    """A generated schema with every ``pattern`` in its published, ECMA-262 form."""
    if isinstance(node, dict):
        return {
            key: ecma_pattern(value)
            if key == "pattern" and isinstance(value, str)
            else published(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [published(item) for item in node]
    return node


def portable(node: Any) -> Any:
    """A schema without OpenAPI's ``discriminator``, which JSON Schema 2020-12 does not define.

    Strict validators (Ajv's default) refuse an unknown keyword; the tagged union still works
    without it, as each body pins its ``type`` with an ``enum`` of one tag.
    """
    if isinstance(node, dict):
        return {
            key: portable(value)
            for key, value in node.items()
            if not (key == "discriminator" and isinstance(value, dict))
        }
    if isinstance(node, list):
        return [portable(item) for item in node]
    return node


def _document(name: str, struct: type[msgspec.Struct], title: str) -> dict[str, Any]:
    generated = portable(published(msgspec.json.schema(struct)))
    root = generated["$defs"][struct.__name__]
    return {
        "$schema": DIALECT,
        "$id": schema_id(name),
        "title": title,
        "description": root.get("description", ""),
        **generated,
    }


def envelope_schema() -> dict[str, Any]:
    """The whole message: envelope fields and the tagged union of every body."""
    return _document("envelope", Envelope, "Liaison envelope")


def body_schema(type_name: str) -> dict[str, Any]:
    """The body of one message type (the `body` member of an envelope)."""
    cls: type[BodyBase] = MESSAGE_TYPES[type_name]
    return _document(type_name, cls, type_name)
