"""``liaison track SENDER/DISTRIBUTION_ID``: one message's timeline, readable, from the ledger."""

import argparse
import json
from datetime import datetime
from urllib.parse import quote

from liaison.cli.ledger_client import get_json
from liaison.cli.render import table
from liaison.common.errors import ConfigError


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register ``liaison track``."""
    parser = sub.add_parser(
        "track",
        help="one message's recipients and timeline, from the ledger",
        description="Ask the ledger (LIAISON_LEDGER_URL, token LIAISON_LEDGER_TOKEN) who got a "
        "message, when, and how far each recipient got.",
    )
    parser.add_argument("message", metavar="SENDER/DISTRIBUTION_ID")
    parser.add_argument("--json", action="store_true", help="the API's JSON as is")
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    """Print the timeline."""
    sender, _, distribution_id = args.message.partition("/")
    if not sender or not distribution_id:
        raise ConfigError("name the message as SENDER/DISTRIBUTION_ID, e.g. unmas/eo-2026-0042")
    path = f"/api/messages/{quote(sender, safe='')}/{quote(distribution_id, safe='')}"
    detail = await get_json(path)
    if args.json:
        print(json.dumps(detail, indent=2))
        return 0
    first = detail["decisions"][0] if detail["decisions"] else {}
    print(f"message    {detail['message_id']}")
    print(f"type       {first.get('message_type') or '-'}")
    print(f"decided    {_when(first.get('decided_at'))}  {first.get('outcome', '-')}")
    if first.get("incident_id"):
        print(f"incident   {first['incident_id']}")
    rows = [("RECIPIENT", "STATE", "VIA", "REFUSED")]
    for r in detail["recipients"]:
        refused = f"{r['code']} {r['reason'] or ''}".strip() if r["refused"] else "-"
        rows.append((r["org"], r["state"], ", ".join(r["via"]) or "-", refused))
    print()
    for line in table(rows):
        print(line)
    print()
    for event in detail["timeline"]:
        who = event["org"] or "-"
        extra = event["detail"].get("reason") or event["detail"].get("replay_of") or ""
        print(f"{_when(event['occurred_at'])}  {event['kind']:<18} {who:<10} {extra}".rstrip())
    return 0


def _when(value: str | None) -> str:
    if not value:
        return "-"
    return datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M:%S")
