"""``liaison audit search``: search the ledger; a table, ``--json`` or ``--csv``."""

import argparse
import json
import sys

from liaison.cli.ledger_client import get, get_json
from liaison.cli.render import table

_FILTERS = (
    "sender",
    "recipient",
    "type",
    "incident",
    "precedence",
    "status",
    "since",
    "until",
    "text",
)


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register ``liaison audit`` and its actions."""
    parser = sub.add_parser(
        "audit",
        help="search the ledger of every message the hub decided",
        description="Search the ledger (LIAISON_LEDGER_URL, token LIAISON_LEDGER_TOKEN).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    search = actions.add_parser("search", help="messages matching every filter, newest first")
    for name in _FILTERS:
        search.add_argument(f"--{name}", help=_HELP.get(name))
    search.add_argument("--limit", type=int, default=50, help="rows (default 50, at most 500)")
    search.add_argument("--after", help="the cursor a previous --json page returned as 'next'")
    out = search.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one page as the API's JSON")
    out.add_argument("--csv", action="store_true", help="every match as CSV")
    search.set_defaults(handler=run_search)


_HELP = {
    "status": "delivered, partial, refused or duplicate",
    "since": "RFC 3339 time, inclusive",
    "until": "RFC 3339 time, exclusive",
    "text": "words that must appear in the body",
}


async def run_search(args: argparse.Namespace) -> int:
    """Print the matches."""
    params = {name: getattr(args, name) for name in _FILTERS if getattr(args, name)}
    if args.csv:
        body, _ = await get("/api/messages.csv", params)
        sys.stdout.write(body.decode())
        return 0
    params["limit"] = str(args.limit)
    if args.after:
        params["after"] = args.after
    page = await get_json("/api/messages", params)
    if args.json:
        print(json.dumps(page, indent=2))
        return 0
    rows = [("DECIDED", "OUTCOME", "MESSAGE", "TYPE", "TO", "CODE")]
    for item in page["items"]:
        rows.append(
            (
                item["decided_at"][:19].replace("T", " "),
                item["outcome"],
                item["message_id"] or f"record {item['record_id']}",
                item["message_type"] or "-",
                str(item["recipient_count"]),
                "-" if item["code"] is None else str(item["code"]),
            )
        )
    for line in table(rows):
        print(line)
    if page["next"]:
        print(f"more: --after {page['next']}", file=sys.stderr)
    return 0
