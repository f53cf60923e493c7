"""``liaison partner``: add, remove, rotate the credentials and signing keys of, and list
partner organisations; publish their signing keys."""

import argparse
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec

from liaison.common.errors import ConfigError, DirectoryError
from liaison.common.hub_key import load_hub_key
from liaison.directory.index import load_directory
from liaison.directory.keys import DEFAULT_KEY_DAYS, NewKey, new_signing_key, published_keys
from liaison.directory.model import Kind, Organisation, SignaturePolicy
from liaison.directory.partners import (
    add_partner,
    list_partners,
    remove_partner,
    rotate_credentials,
    rotate_signing_key,
)
from liaison.directory.policy import markdown, partner_policy
from liaison.directory.settings import load_settings
from liaison.schemas.types import Classification
from liaison.sdk.compose import parse_ttl
from liaison.sdk.errors import InvalidArgument


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
    add.add_argument(
        "--signatures",
        choices=[p.value for p in SignaturePolicy],
        default=SignaturePolicy.REQUIRED.value,
        help="refuse unsigned messages (required, the default) or accept them while the "
        "partner migrates (when_present)",
    )
    _signing_key_arguments(add, required=False)
    add.set_defaults(handler=run_add)

    remove = sub.add_parser("remove", help="remove an organisation; its messages are kept")
    remove.add_argument("org")
    remove.set_defaults(handler=run_remove)

    rotate = sub.add_parser("rotate-credentials", help="issue a new password, end old sessions")
    rotate.add_argument("org", help="organisation id, or the hub's or ledger's account")
    rotate.set_defaults(handler=run_rotate)

    rotate_key = sub.add_parser(
        "rotate-signing-key",
        help="register a new signing key; the old ones stay valid for an overlap",
    )
    rotate_key.add_argument("org", help="organisation id")
    _signing_key_arguments(rotate_key, required=True)
    rotate_key.add_argument(
        "--overlap",
        default="7d",
        metavar="DURATION",
        help="how long the old keys stay valid, e.g. 12h, 7d (default 7d)",
    )
    rotate_key.set_defaults(handler=run_rotate_signing_key)

    keys = sub.add_parser(
        "keys", help="the public signing keys partners verify with (signing-keys.json)"
    )
    keys.add_argument("--out", type=Path, help="write to this file (default: stdout)")
    keys.set_defaults(handler=run_keys)

    listing = sub.add_parser("list", help="organisations, accounts and inbox depths")
    listing.set_defaults(handler=run_list)

    policy = sub.add_parser("policy", help="what one organisation may send to whom (its contract)")
    policy.add_argument("org", help="organisation id, e.g. mag")
    policy.add_argument("--json", action="store_true", help="JSON instead of Markdown")
    policy.set_defaults(handler=run_policy)


def _signing_key_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    source = parser.add_mutually_exclusive_group(required=required)
    source.add_argument(
        "--signing-public-key",
        metavar="X",
        help="the partner's Ed25519 public key: the JWK x value (base64url of 32 bytes); "
        "the private key stays with the partner",
    )
    source.add_argument(
        "--generate-signing-key",
        type=Path,
        metavar="DIR",
        help="generate the pair once; the private key is written to DIR/<kid>.key (0600) "
        "for the partner and not kept",
    )
    parser.add_argument("--kid", help="key id (default: <org>-<UTC time>); unique")
    parser.add_argument(
        "--key-days", type=int, default=DEFAULT_KEY_DAYS, help="days the key is valid (365)"
    )


def _new_key(org: str, args: argparse.Namespace) -> NewKey | None:
    if args.signing_public_key is None and args.generate_signing_key is None:
        return None
    if args.key_days < 1:
        raise ConfigError("--key-days must be at least 1")
    return new_signing_key(
        org,
        public_key=args.signing_public_key,
        generate_into=args.generate_signing_key,
        kid=args.kid,
        days=args.key_days,
    )


async def run_add(args: argparse.Namespace) -> int:
    """Add, provision, print the credentials once."""
    settings = load_settings()
    new_key = _new_key(args.org, args)
    fields = {
        "id": args.org,
        "name": args.name,
        "kind": args.kind,
        "roles": args.roles,
        "missions": args.missions,
        "clearance": args.clearance,
        "account": args.account,
        "signatures": args.signatures,
        "signing_keys": [] if new_key is None else [msgspec.to_builtins(new_key.key)],
    }
    try:
        org = msgspec.convert(fields, Organisation)
    except msgspec.ValidationError as exc:
        raise DirectoryError(f"invalid organisation: {exc}") from None
    result, issued = await add_partner(settings, args.directory or settings.directory, org)
    for line in result.report():
        print(line)
    if new_key is not None:
        print("\n".join(new_key.announcement()))
    elif org.signatures is SignaturePolicy.REQUIRED:
        print(
            f"{org.id}: no signing key registered yet; its messages are refused (208) until "
            "`liaison partner rotate-signing-key` registers one"
        )
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


async def run_rotate_signing_key(args: argparse.Namespace) -> int:
    """Register a new key; older keys end after the overlap. The hub reloads the directory."""
    settings = load_settings()
    try:
        overlap: timedelta = parse_ttl(args.overlap)
    except InvalidArgument as exc:
        raise ConfigError(f"--overlap: {exc}") from None
    new_key = _new_key(args.org, args)
    assert new_key is not None  # the argument group is required
    path = args.directory or settings.directory
    for line in rotate_signing_key(path, args.org, new_key.key, overlap=overlap):
        print(line)
    print("\n".join(new_key.announcement()))
    print("reload the hub (SIGHUP or POST /admin/reload) and publish `liaison partner keys`")
    return 0


async def run_keys(args: argparse.Namespace) -> int:
    """Print or write the published signing keys: every organisation's and the hub's."""
    settings = load_settings()
    index = load_directory(args.directory or settings.directory)
    hub_key = load_hub_key(settings.hub_key_path) if settings.hub_key_path.exists() else None
    if hub_key is None:
        print(f"(no hub signing key at {settings.hub_key_path}: not included)", file=sys.stderr)
    document = published_keys(index, hub_key)
    if args.out is None:
        sys.stdout.buffer.write(document)
    else:
        args.out.write_bytes(document)
        print(f"signing keys written to {args.out}", file=sys.stderr)
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
