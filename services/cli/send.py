"""``liaison send``: send one message as a partner and print its distribution id."""

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from liaison.cli.login import add_broker_arguments, broker_tls, partner_login
from liaison.cli.render import quiet_logging
from liaison.common.errors import ConfigError
from liaison.schemas.catalogue import MESSAGE_TYPES
from liaison.schemas.envelope import Envelope, decode_envelope, error_path
from liaison.schemas.types import Classification, Precedence
from liaison.sdk import Client, InvalidMessage, SigningKeyMissing, parse_ttl

_PLACEHOLDER = "placeholder"
#: Envelope fields a --file envelope may carry and the flags override.
_CARRIED = ("recipients", "precedence", "classification", "incident_id", "in_reply_to")


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register ``liaison send``."""
    parser = sub.add_parser(
        "send",
        help="send one message as a partner",
        description="Send one message as ORG through the hub and print its distribution id "
        "once the broker has confirmed it. The body comes from --file (a body or a whole "
        "envelope) or from --type and --body-json.",
    )
    parser.add_argument("--as", dest="org", required=True, metavar="ORG", help="send as ORG")
    add_broker_arguments(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", type=Path, metavar="MSG.json", help="body or envelope JSON")
    source.add_argument("--type", choices=sorted(MESSAGE_TYPES), metavar="TYPE", help="type")
    parser.add_argument("--body-json", metavar="JSON", help="the body's fields, with --type")
    parser.add_argument(
        "--to",
        action="append",
        dest="recipients",
        metavar="ADDR",
        help="recipient: org:ID, group:ID, role:ID or mission:ID (repeatable)",
    )
    parser.add_argument("--precedence", choices=[p.value for p in Precedence])
    parser.add_argument("--classification", choices=[c.value for c in Classification])
    parser.add_argument("--ttl", metavar="DURATION", help="expire after e.g. 30m, 1h, 2d")
    parser.add_argument("--incident", dest="incident_id", metavar="REF")
    parser.add_argument("--in-reply-to", metavar="DISTRIBUTION_ID")
    parser.add_argument("--id", dest="distribution_id", help="distribution id (default: new)")
    signing = parser.add_argument_group("signing (every message is signed unless --unsigned)")
    signing.add_argument(
        "--signing-key", type=Path, metavar="KEY.pem", help="your Ed25519 private key file"
    )
    signing.add_argument("--signing-kid", metavar="KID", help="its key id in the directory")
    signing.add_argument(
        "--unsigned",
        action="store_true",
        help="send unsigned (only while your signatures are 'when_present')",
    )
    parser.set_defaults(handler=run, parser=parser)


async def run(args: argparse.Namespace) -> int:
    """Build, check and send; print the distribution id."""
    quiet_logging()
    parser: argparse.ArgumentParser = args.parser
    if args.type and args.body_json is None:
        parser.error("--type needs --body-json")
    if args.file and args.body_json is not None:
        parser.error("--body-json goes with --type, not --file")
    template = _from_file(args.file) if args.file else _from_flags(args.type, args.body_json)
    if template.sender not in (_PLACEHOLDER, args.org):
        # Sending someone else's message as --as would change who vouches for it: refuse.
        raise InvalidMessage(
            f"{args.file} is an envelope sent by {template.sender!r}; --as {args.org} sends only "
            f"its own messages (remove 'sender' from the file, or send it --as {template.sender})",
            "$.sender",
        )
    fields: dict[str, Any] = {k: getattr(template, k) for k in _CARRIED}
    for key in _CARRIED:
        if getattr(args, key, None) is not None:
            fields[key] = getattr(args, key)
    if not fields["recipients"] or fields["recipients"] == ["org:placeholder"]:
        parser.error("name at least one recipient with --to (or in the --file envelope)")
    ttl = parse_ttl(args.ttl) if args.ttl else None
    url, account = partner_login(args.org, args.url)
    async with Client.connect(
        args.org,
        url,
        account=account,
        ssl_context=broker_tls(args, url),
        signing_key=args.signing_key,
        signing_kid=args.signing_kid,
        sign=not args.unsigned,
    ) as client:
        try:
            distribution_id = await client.send(
                template.body,
                ttl=ttl,
                expires_at=None if ttl else template.expires_at,
                distribution_id=args.distribution_id or _carried_id(args.file, template),
                **fields,
            )
        except SigningKeyMissing:
            raise ConfigError(
                f"{args.org} must sign what it sends: pass --signing-key KEY.pem and "
                "--signing-kid KID (or --unsigned while your organisation's signatures are "
                "'when_present')"
            ) from None
    print(distribution_id)
    return 0


def _from_flags(message_type: str, body_json: str) -> Envelope:
    try:
        fields = json.loads(body_json)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--body-json is not JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise ConfigError("--body-json must be a JSON object of the body's fields")
    return _checked({"body": {**fields, "type": message_type}}, "--body-json")


def _from_file(path: Path) -> Envelope:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path} must hold a JSON object (a body or an envelope)")
    return _checked(document if "body" in document else {"body": document}, str(path))


def _checked(document: dict[str, Any], source: str) -> Envelope:
    """Decode as an envelope, with placeholders for what the client fills in."""
    placeholder = {
        "distribution_id": _PLACEHOLDER,
        "sender": _PLACEHOLDER,
        "sent_at": datetime.now(UTC).isoformat(),
        "recipients": ["org:placeholder"],
    }
    try:
        return decode_envelope(msgspec.json.encode({**placeholder, **document}))
    except msgspec.ValidationError as exc:
        raise InvalidMessage(f"{source}: {str(exc).split(' - at ')[0]}", error_path(exc)) from None


def _carried_id(path: Path | None, template: Envelope) -> str | None:
    if path is None or template.distribution_id == _PLACEHOLDER:
        return None
    return template.distribution_id
