"""``liaison audit``: search the ledger (API), verify its chain and signatures (offline), keys.

``search`` asks the ledger's API; ``verify`` reads PostgreSQL directly and trusts only the data
and the published keys (see liaison.ledger.audit).
"""

import argparse
import json
import sys
from pathlib import Path

import asyncpg

from liaison.cli.ledger_client import get, get_json
from liaison.cli.ledger_db import connect, hub_keys, trusted_keys
from liaison.cli.render import table
from liaison.ledger.audit import verify_ledger
from liaison.ledger.database import DatabaseError
from liaison.ledger.settings import LedgerSettings

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
    verify = actions.add_parser(
        "verify",
        help="check the hash chain, the signed heads and every stored signature (offline)",
        description="Read the ledger database (LIAISON_DATABASE_URL) and recompute its hash "
        "chain from the records; exit 1 naming the first record that does not match.",
    )
    verify.add_argument(
        "--keys",
        type=Path,
        help="the published signing-keys.json (liaison partner keys): senders' and hub's keys",
    )
    verify.add_argument(
        "--directory",
        type=Path,
        help="else the senders' keys from the directory file (default LIAISON_DIRECTORY)",
    )
    verify.add_argument(
        "--hub-key",
        type=Path,
        help="and the hub's key file for the heads (default LIAISON_HUB_SIGNING_KEY)",
    )
    verify.add_argument(
        "--heads",
        type=Path,
        action="append",
        default=[],
        help="heads copied out when published: the /api/chain/heads JSON, or one JWS a line "
        "(repeatable); each must still be in the database and match the chain",
    )
    verify.add_argument("--json", action="store_true", help="the report as JSON")
    verify.set_defaults(handler=run_verify)


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


async def run_verify(args: argparse.Namespace) -> int:
    """Print the verdict; 0 only when nothing fails."""
    settings = LedgerSettings.from_env()
    trusted = trusted_keys(args.keys, args.directory or settings.directory)
    heads = hub_keys(trusted, args.hub_key or settings.hub_signing_key)
    connection = await connect(settings.database_url)
    try:
        report = await verify_ledger(
            connection,
            head_keys={kid: k.public_key for kid, k in heads.items()} if heads else None,
            sender_keys=trusted,
            published=[jws for path in args.heads for jws in published_heads(path)],
        )
    except asyncpg.PostgresError as exc:
        raise DatabaseError(f"{exc} (is the database migrated? liaison ledger migrate)") from None
    finally:
        await connection.close()
    if args.json:
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "records": report.records,
                    "days": report.days,
                    "heads": report.heads,
                    "signatures": report.signatures,
                    "signatures_verified": report.signatures_verified,
                    "unsigned_tail": {d.isoformat(): n for d, n in report.unsigned_tail.items()},
                    "problems": [str(p) for p in report.problems],
                    "first_mismatch": (report.problems[0].record_id if report.problems else None),
                },
                indent=2,
            )
        )
        return 0 if report.ok else 1
    print(
        f"{report.records} records in {report.days} daily chains, {report.heads} signed heads, "
        f"{report.signatures} signatures ({report.signatures_verified} verified with the "
        "senders' keys)"
    )
    if not heads:
        print("warning: no hub key given: signed heads were not checked", file=sys.stderr)
    if trusted is None:
        print("warning: no senders' keys given: signatures checked for form only", file=sys.stderr)
    for day, count in sorted(report.unsigned_tail.items()):
        print(f"note: the last {count} link(s) of {day} are not covered by a signed head yet")
    if report.ok:
        print("OK: every record matches its chain")
        return 0
    print(f"FAILED: first mismatch: {report.problems[0]}", file=sys.stderr)
    for problem in report.problems[1:50]:
        print(f"  also: {problem}", file=sys.stderr)
    if len(report.problems) > 50:
        print(f"  and {len(report.problems) - 50} more", file=sys.stderr)
    return 1


def published_heads(path: Path) -> list[str]:
    """The head JWSs in a file: the /api/chain/heads answer, or one compact JWS a line."""
    text = path.read_text()
    try:
        document = json.loads(text)
    except ValueError:
        return [line.strip() for line in text.splitlines() if line.strip()]
    return [str(head["jws"]) for head in document["heads"]]
