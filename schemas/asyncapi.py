"""The AsyncAPI 3.0.0 document: channels, operations and messages partners use over AMQP 0-9-1."""

from typing import Any, Final

import msgspec

from liaison.schemas import wire
from liaison.schemas.catalogue import FLASH_TYPES, MESSAGE_TYPES, PARTNER_TYPES
from liaison.schemas.envelope import SCHEMA_VERSION, Envelope
from liaison.schemas.json_schemas import published

__all__ = ["ASYNCAPI_VERSION", "asyncapi_document"]

ASYNCAPI_VERSION: Final = "3.0.0"
_REF: Final = "#/components/schemas/{name}"
_AMQP_BINDING_VERSION: Final = "0.3.0"

_DESCRIPTION: Final = """\
Liaison carries typed coordination messages between UN peacekeeping partners (DPKO, missions,
UN agencies, governments, NGOs). Partners publish one JSON envelope per message to the ingress
exchange, with `user_id` set to their broker account and the routing key set to their
organisation id; the hub validates, authorises and delivers to each recipient's inbox, and
answers every refused message with an `error.report` (sender `liaison`) in the sender's inbox.
The broker's virtual host is `liaison` unless the operator tells you otherwise."""


def _components_schemas() -> dict[str, Any]:
    _, components = msgspec.json.schema_components([Envelope], ref_template=_REF)
    return {
        name: _asyncapi_schema(published(schema)) for name, schema in sorted(components.items())
    }


def _asyncapi_schema(node: Any) -> Any:
    """Adapt msgspec's output to the AsyncAPI Schema Object, whose `discriminator` is a string."""
    if isinstance(node, dict):
        adapted = {key: _asyncapi_schema(value) for key, value in node.items()}
        if isinstance(adapted.get("discriminator"), dict):
            adapted["discriminator"] = adapted["discriminator"]["propertyName"]
        return adapted
    if isinstance(node, list):
        return [_asyncapi_schema(item) for item in node]
    return node


def _message_id(type_name: str) -> str:
    return type_name.replace(".", "_")


def _message(type_name: str) -> dict[str, Any]:
    cls = MESSAGE_TYPES[type_name]
    summary = (cls.__doc__ or type_name).strip().splitlines()[0]
    return {
        "name": type_name,
        "title": type_name,
        "summary": summary,
        "contentType": wire.CONTENT_TYPE,
        "payload": {
            "allOf": [
                {"$ref": _REF.format(name="Envelope")},
                {
                    "type": "object",
                    "properties": {"body": {"$ref": _REF.format(name=cls.__name__)}},
                    "required": ["body"],
                },
            ]
        },
        "bindings": {
            "amqp": {
                "bindingVersion": _AMQP_BINDING_VERSION,
                "contentEncoding": "utf-8",
                "messageType": type_name,
            }
        },
        "traits": [{"$ref": "#/components/messageTraits/amqpProperties"}],
    }


_MESSAGE_TRAIT: Final = {
    "description": (
        "AMQP properties. On publish: `user_id` MUST be your broker account (the broker refuses "
        "any other; the hub refuses a missing one with code 200); `content_type` MUST be "
        f"`{wire.CONTENT_TYPE}`; `message_id` is optional; routing key = your organisation id; "
        f"delivery_mode {wire.PUBLISH_DELIVERY_MODE} (persistent); `mandatory` set, so a "
        "message no hub queue takes is returned to you, not dropped. On delivery the hub sets "
        "`message_id` to `<sender>/<distribution_id>` (the same on every redelivery, for "
        "deduplication) and "
        f"headers `{wire.HEADER_SENDER}`, `{wire.HEADER_TYPE}`, `{wire.HEADER_PRECEDENCE}`. "
        f"Every message carries `{wire.HEADER_SIGNATURE}`: the sender's Ed25519 signature over "
        "the exact body bytes, a JWS with a detached, unencoded payload (RFC 7515 App. F, "
        'RFC 7797; protected header {"alg":"Ed25519","kid":…,"b64":false,"crit":["b64"]}), '
        "checked by the hub (codes 208-212) and forwarded unchanged; the hub signs its own "
        "reports. Public keys: `signing-keys.json` from your operator."
    ),
    "headers": {
        "type": "object",
        "properties": {
            wire.HEADER_SENDER: {"type": "string", "description": "Envelope sender."},
            wire.HEADER_TYPE: {"type": "string", "description": "Body type."},
            wire.HEADER_PRECEDENCE: {"type": "string", "description": "Envelope precedence."},
            wire.HEADER_POSSIBLE_REPEAT: {
                "type": "string",
                "const": "true",
                "description": (
                    "Set only on a copy the hub published again after a hub stopped between "
                    "the broker taking an earlier copy and the hub's record of it: drop it if "
                    "you already processed its message_id. An unmarked copy repeats an earlier "
                    "one only in rarer cases (docs/partners.md §3)."
                ),
            },
            wire.HEADER_SIGNATURE: {
                "type": "string",
                "pattern": "^[A-Za-z0-9_-]+\\.\\.[A-Za-z0-9_-]+$",
                "description": "Detached JWS: BASE64URL(protected)..BASE64URL(signature).",
            },
        },
    },
    "bindings": {"amqp": {"bindingVersion": _AMQP_BINDING_VERSION, "messageType": "liaison"}},
}


def _exchange_channel(address: str, description: str) -> dict[str, Any]:
    return {
        "address": address,
        "description": description,
        "bindings": {
            "amqp": {
                "bindingVersion": _AMQP_BINDING_VERSION,
                "is": "routingKey",
                "exchange": {
                    "name": address,
                    "type": "topic",
                    "durable": True,
                    "autoDelete": False,
                    "vhost": wire.VHOST,
                },
            }
        },
    }


def _queue_channel(address: str, description: str) -> dict[str, Any]:
    return {
        "address": address,
        "description": description,
        "parameters": {"organisation": {"description": "Your organisation id, e.g. `unmas`."}},
        "bindings": {
            "amqp": {
                "bindingVersion": _AMQP_BINDING_VERSION,
                "is": "queue",
                "queue": {
                    "name": address,
                    "durable": True,
                    "exclusive": False,
                    "autoDelete": False,
                    "vhost": wire.VHOST,
                },
            }
        },
    }


def asyncapi_document() -> dict[str, Any]:
    """The whole AsyncAPI document, self-contained (every schema under components)."""

    def channel_messages(type_names: tuple[str, ...]) -> dict[str, dict[str, str]]:
        return {
            _message_id(t): {"$ref": f"#/components/messages/{_message_id(t)}"} for t in type_names
        }

    def refs(channel: str, type_names: tuple[str, ...]) -> list[dict[str, str]]:
        return [{"$ref": f"#/channels/{channel}/messages/{_message_id(t)}"} for t in type_names]

    every_type = tuple(MESSAGE_TYPES)
    inbox = wire.inbox_queue("{organisation}")
    flash_inbox = wire.flash_inbox_queue("{organisation}")
    server_common = {"pathname": f"/{wire.VHOST}", "protocolVersion": "0-9-1"}
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:liaison:contract",
        "info": {
            "title": "Liaison inter-agency coordination messaging",
            "version": SCHEMA_VERSION,
            "description": _DESCRIPTION,
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": wire.CONTENT_TYPE,
        "servers": {
            "amqps": {
                "host": "liaison.example.org:5671",
                "protocol": "amqps",
                **server_common,
                "description": "TLS endpoint partners use.",
            },
            "amqp": {
                "host": "liaison.example.org:5672",
                "protocol": "amqp",
                **server_common,
                "description": "Plain AMQP, inside the mission network only.",
            },
        },
        "channels": {
            "ingress": {
                **_exchange_channel(
                    wire.INGRESS_EXCHANGE,
                    "Where partners publish; routing key = your organisation id. Every type but "
                    "error.report, which only the hub sends (code 206).",
                ),
                "messages": channel_messages(PARTNER_TYPES),
            },
            "inbox": {
                **_queue_channel(
                    inbox,
                    "Your inbox: routine, priority and immediate messages, receipts (ack) "
                    "whatever their precedence, and the hub's error reports.",
                ),
                "messages": channel_messages(every_type),
            },
            "flashInbox": {
                **_queue_channel(
                    flash_inbox,
                    "Your flash inbox: messages sent with precedence flash, ahead of any "
                    "backlog. Never receipts or error reports.",
                ),
                "messages": channel_messages(FLASH_TYPES),
            },
        },
        "operations": {
            "publish": {
                "action": "send",
                "summary": "Publish a message to the hub.",
                "channel": {"$ref": "#/channels/ingress"},
                "messages": refs("ingress", PARTNER_TYPES),
                "bindings": {
                    "amqp": {
                        "bindingVersion": _AMQP_BINDING_VERSION,
                        "deliveryMode": wire.PUBLISH_DELIVERY_MODE,
                        "mandatory": wire.PUBLISH_MANDATORY,
                        "userId": "your broker account",
                    }
                },
            },
            "consumeInbox": {
                "action": "receive",
                "summary": "Consume your inbox; ack after processing.",
                "channel": {"$ref": "#/channels/inbox"},
                "messages": refs("inbox", every_type),
                "bindings": {"amqp": {"bindingVersion": _AMQP_BINDING_VERSION, "ack": True}},
            },
            "consumeFlashInbox": {
                "action": "receive",
                "summary": "Consume your flash inbox first; ack after processing.",
                "channel": {"$ref": "#/channels/flashInbox"},
                "messages": refs("flashInbox", FLASH_TYPES),
                "bindings": {"amqp": {"bindingVersion": _AMQP_BINDING_VERSION, "ack": True}},
            },
        },
        "components": {
            "schemas": _components_schemas(),
            "messages": {_message_id(t): _message(t) for t in every_type},
            "messageTraits": {"amqpProperties": _MESSAGE_TRAIT},
        },
    }
