"""``liaison provision``: apply the directory to RabbitMQ, or export it as definitions JSON."""

import argparse
import sys
from pathlib import Path
from typing import Any

import msgspec

from liaison.common.errors import ConfigError
from liaison.common.hub_key import ensure_hub_key
from liaison.directory.credentials import CredentialStore, password_hash
from liaison.directory.definitions import desired_state, export_definitions
from liaison.directory.index import load_directory
from liaison.directory.provision import provision
from liaison.directory.settings import load_settings


def add_parser(subparsers: "argparse._SubParsersAction[Any]") -> None:
    """Register ``provision``."""
    parser = subparsers.add_parser(
        "provision",
        help="apply the directory to RabbitMQ (users, permissions, exchanges, queues)",
        description="Compare the directory with the broker and change only what differs. "
        "Settings: LIAISON_VHOST, LIAISON_MANAGEMENT_URL, LIAISON_ADMIN_USER, "
        "LIAISON_ADMIN_PASSWORD, LIAISON_CREDENTIALS_DIR.",
    )
    parser.add_argument("--directory", type=Path, help="directory file (LIAISON_DIRECTORY)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    parser.add_argument(
        "--prune",
        action="store_true",
        help="remove organisations no longer in the directory (non-empty inboxes are kept)",
    )
    parser.add_argument(
        "--export-definitions",
        type=Path,
        metavar="PATH",
        help="write RabbitMQ definitions JSON to PATH ('-' for stdout) instead of provisioning",
    )
    parser.add_argument(
        "--with-password-hashes",
        action="store_true",
        help="with --export-definitions: include hashes of the stored credentials",
    )
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    """Provision, or export definitions; exit 1 when conflicts are left for an operator."""
    settings = load_settings()
    index = load_directory(args.directory or settings.directory)
    if args.export_definitions is not None:
        hashes: dict[str, str] = {}
        state = desired_state(index, settings.vhost, shards=settings.shard_count)
        if args.with_password_hashes:
            store = CredentialStore(settings.credentials_dir)
            for account in state.accounts:
                if (password := store.get(account)) is not None:
                    hashes[account] = password_hash(password)
        document = msgspec.json.format(msgspec.json.encode(export_definitions(state, hashes)))
        write_definitions(args.export_definitions, document + b"\n")
        return 0
    if not args.dry_run:
        hub_key, created = ensure_hub_key(settings.hub_key_path)
        print(
            f"hub signing key {hub_key.kid}: {'created in' if created else 'kept'} "
            f"{settings.hub_key_path} (publish it with `liaison partner keys`)"
        )
    result = await provision(settings, index, dry_run=args.dry_run, prune=args.prune)
    for line in result.report():
        print(line)
    return 1 if result.plan.conflicts else 0


def write_definitions(path: Path, document: bytes) -> None:
    """Write the definitions document to ``path``, or stdout for ``-``."""
    if str(path) == "-":
        sys.stdout.buffer.write(document)
        return
    try:
        path.write_bytes(document)
    except OSError as exc:
        raise ConfigError(f"cannot write definitions to {path}: {exc.strerror}") from None
    print(f"definitions written to {path}", file=sys.stderr)
