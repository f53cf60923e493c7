"""``liaison partner``: add, remove, rotate the credentials of, and list partner organisations."""

import argparse
from pathlib import Path
from typing import Any

import msgspec

from liaison.common.errors import DirectoryError
from liaison.directory.index import load_directory
from liaison.directory.model import Kind, Organisation
from liaison.directory.partners import (
    add_partner,
    list_partners,
    remove_partner,
    rotate_credentials,
)
from liaison.directory.policy import markdown, partner_policy
from liaison.directory.settings import load_settings
from liaison.schemas.types import Classification


def add_parser(subparsers: "argparse._SubParsersAction[Any]") -> None:
    """Register ``partner`` and its subcommands."""
    parser = subparsers.add_parser("partner", help="onboard, offboard and list partners")
    parser.add_argument("--directory", type=Path, help="directory file (LIAISON_DIRECTORY)")
    sub = parser.add_subparsers(dest="partner_command", metavar="ACTION", required=True)

    add = sub.add_parser("add", help="add an organisation to the directory and provision it")
    add.add_argument("org", help="organisation id, e.g. unmas")
    add.add_argument("--name", required=True, help="full name")
    add.add_argument("--kind", required=True, choices=[k.value for k in Kind])
    add.add_argument("--role", action="append", default=[], dest="roles", metavar="ROLE")
    add.add_argument("--mission", action="append", default=[], dest="missions", metavar="M")
    add.add_argument(
        "--clearance",
        choices=[c.value for c in Classification],
        default=Classification.UNCLASSIFIED.value,
    )
    add.add_argument("--account", help="broker user name (default: the organisation id)")
    add.set_defaults(handler=run_add)

    remove = sub.add_parser("remove", help="remove an organisation; its messages are kept")
    remove.add_argument("org")
    remove.set_defaults(handler=run_remove)

    rotate = sub.add_parser("rotate-credentials", help="issue a new password, end old sessions")
    rotate.add_argument("org", help="organisation id, or the hub's account")
    rotate.set_defaults(handler=run_rotate)

    listing = sub.add_parser("list", help="organisations, accounts and inbox depths")
    listing.set_defaults(handler=run_list)

    policy = sub.add_parser("policy", help="what one organisation may send to whom (its contract)")
    policy.add_argument("org", help="organisation id, e.g. mag")
    policy.add_argument("--json", action="store_true", help="JSON instead of Markdown")
    policy.set_defaults(handler=run_policy)


async def run_add(args: argparse.Namespace) -> int:
    """Add, provision, print the credentials once."""
    settings = load_settings()
    fields = {
        "id": args.org,
        "name": args.name,
        "kind": args.kind,
        "roles": args.roles,
        "missions": args.missions,
        "clearance": args.clearance,
        "account": args.account,
    }
    try:
        org = msgspec.convert(fields, Organisation)
    except msgspec.ValidationError as exc:
        raise DirectoryError(f"invalid organisation: {exc}") from None
    result, issued = await add_partner(settings, args.directory or settings.directory, org)
    for line in result.report():
        print(line)
    if issued is None:
        print(f"{org.id}: a stored credential already existed and was kept (not shown)")
    else:
        print("\n".join(issued.announcement()))
    return 1 if result.plan.conflicts else 0


async def run_remove(args: argparse.Namespace) -> int:
    """Remove and report what happened to the account and its inboxes."""
    settings = load_settings()
    for line in await remove_partner(settings, args.directory or settings.directory, args.org):
        print(line)
    return 0


async def run_rotate(args: argparse.Namespace) -> int:
    """Rotate and print the new credentials once."""
    settings = load_settings()
    issued = await rotate_credentials(settings, args.directory or settings.directory, args.org)
    print("\n".join(issued.announcement()))
    return 0


async def run_list(args: argparse.Namespace) -> int:
    """Print the partners as a table."""
    settings = load_settings()
    index = load_directory(args.directory or settings.directory)
    rows = await list_partners(settings, index)
    table = [("ID", "KIND", "ACCOUNT", "ROLES", "INBOX")]
    table += [
        (
            r.org,
            r.kind,
            r.account,
            ",".join(r.roles),
            "-" if r.inbox_depth is None else str(r.inbox_depth),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    for row in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    if rows and rows[0].inbox_depth is None:
        print("(inbox depths unavailable: the management API did not answer)")
    return 0


async def run_policy(args: argparse.Namespace) -> int:
    """Print an organisation's policy from the directory file; no broker needed."""
    index = load_directory(args.directory or load_settings().directory)
    if args.org not in index.organisations:
        raise DirectoryError(f"no organisation {args.org!r} in the directory")
    policy = partner_policy(index, args.org)
    if args.json:
        print(msgspec.json.format(msgspec.json.encode(policy)).decode())
    else:
        print(markdown(policy), end="")
    return 0
