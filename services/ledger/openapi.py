"""The ledger API's OpenAPI 3.1 document, generated from the Structs in ``views.py``."""

from typing import Any

import msgspec

from liaison.ledger.views import RESPONSES, SearchQuery

_REF = "#/components/schemas/{name}"


def _query_parameters() -> list[dict[str, Any]]:
    _, components = msgspec.json.schema_components([SearchQuery], ref_template=_REF)
    schema = components["SearchQuery"]
    return [
        {"name": name, "in": "query", "required": False, "schema": prop}
        for name, prop in schema["properties"].items()
    ]


def _ok(name: str, description: str, media: str = "application/json") -> dict[str, Any]:
    return {
        "200": {
            "description": description,
            "content": {media: {"schema": {"$ref": _REF.format(name=name)}}},
        },
        "401": {"description": "missing or wrong bearer token", "content": _problem()},
    }


def _problem() -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(name="Problem")}}}


def list_of(name: str) -> dict[str, Any]:
    """An array of the named component."""
    return {"type": "array", "items": {"$ref": _REF.format(name=name)}}


def openapi_document() -> dict[str, Any]:
    """The whole document; paths list what ``api.py`` routes."""
    _, components = msgspec.json.schema_components((*RESPONSES, SearchQuery), ref_template=_REF)
    search_params = _query_parameters()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Liaison ledger",
            "version": "1.0.0",
            "description": "Who got what, when: every hub decision and each recipient copy's "
            "lifecycle. Every /api path needs 'Authorization: Bearer <operator token>'.",
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"operator": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"operator": []}],
        "paths": {
            "/api/messages": {
                "get": {
                    "summary": "Search decisions (keyset pagination, newest first)",
                    "parameters": search_params,
                    "responses": {
                        **_ok("SearchPage", "a page of results"),
                        "400": {"description": "a bad filter", "content": _problem()},
                    },
                }
            },
            "/api/messages.csv": {
                "get": {
                    "summary": "A search as CSV (every page)",
                    "parameters": [p for p in search_params if p["name"] not in ("after", "limit")],
                    "responses": {"200": {"description": "CSV", "content": {"text/csv": {}}}},
                }
            },
            "/api/messages/{sender}/{distribution_id}": {
                "get": {
                    "summary": "One message: decisions, recipients, timeline",
                    "parameters": [
                        {
                            "name": "sender",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "distribution_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        **_ok("MessageDetail", "the message"),
                        "404": {"description": "not in the ledger", "content": _problem()},
                    },
                }
            },
            "/api/partners": {
                "get": {
                    "summary": "Each organisation's inbox backlog, oldest unread copy, traffic",
                    "responses": {
                        "200": {
                            "description": "partners",
                            "content": {"application/json": {"schema": list_of("PartnerView")}},
                        }
                    },
                }
            },
            "/api/traffic": {
                "get": {
                    "summary": "Rate by type and refusals by code",
                    "parameters": [
                        {
                            "name": "minutes",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1440},
                        }
                    ],
                    "responses": _ok("Traffic", "recent traffic"),
                }
            },
            "/api/dead-letters": {
                "get": {
                    "summary": "Dead letters the ledger kept",
                    "responses": {
                        "200": {
                            "description": "dead letters",
                            "content": {"application/json": {"schema": list_of("DeadLetterView")}},
                        }
                    },
                }
            },
            "/api/dead-letters/{dead_letter_id}/replay": {
                "post": {
                    "summary": "Replay a dead letter as its original sender (recorded)",
                    "parameters": [
                        {
                            "name": "dead_letter_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        **_ok("ReplayResult", "replayed"),
                        "404": {"description": "no such dead letter", "content": _problem()},
                        "409": {"description": "already replayed", "content": _problem()},
                    },
                }
            },
            "/api/health": {
                "get": {"summary": "Ledger and hub health", "responses": _ok("Health", "health")}
            },
            "/api/chain/heads": {
                "get": {
                    "summary": "The latest signed chain head of each day (JWS, Ed25519)",
                    "responses": _ok("ChainHeads", "signed heads"),
                }
            },
        },
    }
