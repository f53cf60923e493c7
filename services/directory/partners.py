"""Onboarding and offboarding partners: ``liaison partner add/remove/rotate-credentials/list``.

Each operation edits the directory file first (it is the source of truth: a failed broker call
is finished by the next ``liaison provision``), then changes the broker through the same plan
that provisioning uses, narrowed to the one account. The directory file is edited as text so
its comments survive: a new organisation is appended as one ``[[organisations]]`` table
(rendered by tomli-w), a removed one is cut out; either way the result is parsed and compiled
before it replaces the file, so the file on disk is never left invalid.
"""

import os
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import tomli_w
from yarl import URL

from liaison.common.errors import BrokerError, DirectoryError
from liaison.common.settings import Secret
from liaison.common.urls import amqp_url_for
from liaison.directory.credentials import (
    HASHING_ALGORITHM,
    CredentialStore,
    generate_password,
    password_hash,
)
from liaison.directory.definitions import desired_state
from liaison.directory.index import DirectoryIndex, compile_directory, load_directory
from liaison.directory.keys import signing_key_table
from liaison.directory.management import Binding
from liaison.directory.model import Directory, Organisation, SigningKey
from liaison.directory.plan import Plan, plan_changes
from liaison.directory.provision import (
    ProvisionResult,
    amqp_depth_probe,
    apply_plan,
    close_connections,
    management_client,
    provision,
    read_broker_state,
)
from liaison.directory.settings import ProvisionSettings
from liaison.schemas.wire import flash_inbox_queue, inbox_queue


@dataclass(frozen=True, slots=True)
class IssuedCredentials:
    """A password just issued to an account, to be shown once."""

    org: str
    account: str
    password: Secret
    stored_at: Path
    amqp_url: str
    #: The CA that signed the broker's certificate (LIAISON_TLS_CA_FILE), handed to the partner.
    ca_file: Path | None = None

    def announcement(self) -> list[str]:
        """What the operator hands to the partner, printed once: URL and SDK snippet."""
        secret = self.password.reveal()
        tls = URL(self.amqp_url).scheme == "amqps"
        lines = [
            f"Credentials for {self.org} (shown once; stored in {self.stored_at}, mode 0600):",
            f"  user:     {self.account}",
            f"  password: {secret}",
            f"  AMQP URL: {self.amqp_url}",
        ]
        if tls and self.ca_file is not None:
            lines.append(f"  CA:       {self.ca_file} (hand this file to the partner with the URL)")
        lines += [
            "Connect from Python with the Liaison SDK (in an async function):",
            "  from liaison.sdk import Client, tls_context",
        ]
        if tls:
            trust = f'ca_file="{self.ca_file}"' if self.ca_file is not None else ""
            where = "the broker's CA, where you keep it" if trust else "the system's CAs"
            lines.append(f"  context = tls_context({trust})  # trusts {where}")
        context = ", ssl_context=context" if tls else ""
        lines += [
            f'  async with Client.connect("{self.org}", "{self.amqp_url}"{context}) as client:',
            "      ...",
            "  # every message is signed: add signing_key=<your private key file> and "
            "signing_kid=<its id> to Client.connect (`liaison partner keys` lists the ids)",
            "Any AMQP client works the same way"
            + (" (aio-pika: connect_robust(url, ssl_context=context))" if tls else "")
            + ":",
            f'  # publish to "liaison.ingress" with routing_key="{self.org}" and '
            f'user_id="{self.account}";',
            f'  # consume "{inbox_queue(self.org)}" and "{flash_inbox_queue(self.org)}".',
        ]
        return lines


@dataclass(frozen=True, slots=True)
class PartnerRow:
    """One line of ``partner list``."""

    org: str
    kind: str
    account: str
    roles: tuple[str, ...]
    #: Messages waiting in its inboxes (management statistics), None when the broker is away.
    inbox_depth: int | None


def connection_url(settings: ProvisionSettings, vhost: str, account: str, password: str) -> str:
    """The AMQP URL a partner connects with (scheme, host and port from LIAISON_AMQP_URL)."""
    return amqp_url_for(settings.amqp_url, vhost, account, password)


async def add_partner(
    settings: ProvisionSettings, path: Path, org: Organisation, *, vhost: str | None = None
) -> tuple[ProvisionResult, IssuedCredentials | None]:
    """Append ``org`` to the directory file, provision it, and issue its credentials."""
    index = load_directory(path)
    if org.id in index.organisations:
        raise DirectoryError(f"{path}: organisation {org.id!r} is already in the directory")
    _append_organisation(path, org)
    index = load_directory(path)
    store = CredentialStore(settings.credentials_dir)
    fresh = store.get(org.broker_account) is None
    result = await provision(settings, index, vhost=vhost)
    if not fresh or (password := store.get(org.broker_account)) is None:
        return result, None  # a credential already existed: it is kept and not shown again
    vhost = vhost or settings.vhost
    issued = IssuedCredentials(
        org.id,
        org.broker_account,
        Secret(password),
        store.path(org.broker_account),
        connection_url(settings, vhost, org.broker_account, password),
        settings.tls.ca_file,
    )
    return result, issued


async def remove_partner(
    settings: ProvisionSettings, path: Path, org_id: str, *, vhost: str | None = None
) -> list[str]:
    """Cut ``org_id`` from the directory; revoke, disconnect and delete its broker user.

    Its inboxes go only when empty; otherwise they are kept and reported for an operator.
    """
    index = load_directory(path)
    org = _known(index, org_id, path)
    remaining = [o for o in index.directory.organisations if o.id != org_id]
    try:
        shrunk = compile_directory(
            msgspec.structs.replace(index.directory, organisations=remaining)
        )
    except DirectoryError as exc:
        raise DirectoryError(f"cannot remove {org_id!r}: {exc}") from None
    _remove_organisation(path, org_id)
    vhost = vhost or settings.vhost
    desired = desired_state(
        shrunk, vhost, shards=settings.shard_count, queue_type=settings.queue_type
    )
    store = CredentialStore(settings.credentials_dir)
    async with management_client(settings) as api:
        actual = await read_broker_state(api, vhost, frozenset(desired.accounts))
        plan = plan_changes(desired, actual, {}, prune=True, admin_user=settings.admin_user)
        plan = _narrowed(plan, org.broker_account, org.id)
        lines = await apply_plan(api, plan, store, amqp_depth_probe(settings, vhost))
    store.delete(org.broker_account)
    return lines or [f"{org_id}: nothing left on the broker"]


async def rotate_credentials(
    settings: ProvisionSettings, path: Path, name: str, *, vhost: str | None = None
) -> IssuedCredentials:
    """Issue a new password to an organisation (or the hub's or ledger's account), end old
    sessions.

    The user is deleted and re-created rather than updated: RabbitMQ closes every connection
    of a deleted user itself, at once, whereas the management API lists a new connection only
    after a statistics interval — a connection opened just before rotation could be missed.
    Its rights on this vhost are put back from the directory straight away.
    """
    index = load_directory(path)
    services = (index.directory.hub_account, index.directory.ledger_account)
    org_id, account = (
        (name, name) if name in services else (name, _known(index, name, path).broker_account)
    )
    vhost = vhost or settings.vhost
    desired = desired_state(
        index, vhost, shards=settings.shard_count, queue_type=settings.queue_type
    )
    store = CredentialStore(settings.credentials_dir)
    async with management_client(settings) as api:
        if await api.user(account) is None:
            raise BrokerError(f"broker user {account!r} does not exist; run `liaison provision`")
        password = generate_password()
        stored_at = store.put(account, password)
        await api.delete_user(account)
        await api.put_user(account, password_hash(password), HASHING_ALGORITHM)
        await api.put_permission(desired.permissions[account])
        if account in desired.topic_permissions:
            await api.put_topic_permission(desired.topic_permissions[account])
        await close_connections(api, vhost, account, "credentials rotated")
    url = connection_url(settings, vhost, account, password)
    return IssuedCredentials(
        org_id, account, Secret(password), stored_at, url, settings.tls.ca_file
    )


def rotate_signing_key(
    path: Path, org: str, new: SigningKey, *, overlap: timedelta, now: datetime | None = None
) -> list[str]:
    """Register ``new`` for ``org`` in the directory file; every older key of ``org`` still
    valid after ``now + overlap`` ends then. Returns what changed, a line each."""
    now = now or datetime.now(UTC)
    cutoff = now + overlap
    index = load_directory(path)
    _known(index, org, path)
    raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    (table,) = [t for t in raw["organisations"] if t.get("id") == org]
    lines = []
    keys: list[dict[str, Any]] = table.setdefault("signing_keys", [])
    for key in keys:
        if key["not_after"] > cutoff:
            key["not_after"] = cutoff
            lines.append(f"{org}: key {key['kid']!r} now ends at {cutoff.isoformat()} (overlap)")
    keys.append(signing_key_table(new))
    lines.append(f"{org}: key {new.kid!r} registered")
    # Edited as text so the file's comments survive: the organisation's table is cut out and
    # appended again as tomli-w renders it; the whole must load before it replaces the file.
    text = _without_organisation(path.read_text(encoding="utf-8"), org)
    _write_checked(path, text.rstrip("\n") + "\n\n" + tomli_w.dumps({"organisations": [table]}))
    return lines


async def list_partners(
    settings: ProvisionSettings, index: DirectoryIndex, *, vhost: str | None = None
) -> list[PartnerRow]:
    """The directory's organisations with their inbox depth when the broker answers."""
    depths: dict[str, int] = {}
    reachable = True
    try:
        async with management_client(settings) as api:
            for queue in await api.queues(vhost or settings.vhost):
                depths[queue.name] = queue.messages or 0
    except BrokerError:
        reachable = False
    return [
        PartnerRow(
            org.id,
            org.kind.value,
            org.broker_account,
            tuple(org.roles),
            depths.get(inbox_queue(org.id), 0) + depths.get(flash_inbox_queue(org.id), 0)
            if reachable
            else None,
        )
        for org in index.organisations.values()
    ]


def _known(index: DirectoryIndex, org_id: str, path: Path) -> Organisation:
    org = index.organisations.get(org_id)
    if org is None:
        raise DirectoryError(f"{path}: no organisation {org_id!r} in the directory")
    return org


def _narrowed(plan: Plan, account: str, org: str) -> Plan:
    inboxes = {inbox_queue(org), flash_inbox_queue(org)}

    def concerns(name: str, payload: object) -> bool:
        if isinstance(payload, Binding):
            return payload.destination in inboxes
        return name == account or name in inboxes

    steps = tuple(s for s in plan.changes if concerns(s.name, s.payload))
    return Plan(plan.vhost, steps)


def _append_organisation(path: Path, org: Organisation) -> None:
    fields = {k: v for k, v in msgspec.to_builtins(org).items() if v not in (None, [])}
    if org.signing_keys:  # TOML datetimes, not the strings to_builtins makes of them
        fields["signing_keys"] = [signing_key_table(k) for k in org.signing_keys]
    table = tomli_w.dumps({"organisations": [fields]})
    text = path.read_text(encoding="utf-8")
    _write_checked(path, text.rstrip("\n") + "\n\n" + table)


def _remove_organisation(path: Path, org_id: str) -> None:
    _write_checked(path, _without_organisation(path.read_text(encoding="utf-8"), org_id))


def _without_organisation(text: str, org_id: str) -> str:
    """``text`` minus the ``[[organisations]]`` table whose id is ``org_id``."""
    lines = text.splitlines(keepends=True)
    # An organisation's own sub-tables (tomli-w writes its signing keys as
    # ``[[organisations.signing_keys]]``) belong to its block, not after it.
    headers = [
        i
        for i, line in enumerate(lines)
        if line.lstrip().startswith("[")
        and not line.lstrip().startswith(("[[organisations.", "[organisations."))
    ]
    for number, start in enumerate(headers):
        end = headers[number + 1] if number + 1 < len(headers) else len(lines)
        if lines[start].strip() != "[[organisations]]":
            continue
        block = "".join(lines[start:end])
        if (
            tomllib.loads(block.replace("[[organisations]]", "[[o]]", 1))["o"][0].get("id")
            != org_id
        ):
            continue
        # Comments and blank lines just above the next header introduce that header.
        while end > start + 1 and end < len(lines) and lines[end - 1].lstrip()[:1] in ("#", ""):
            end -= 1
        return "".join(lines[:start] + lines[end:])
    raise DirectoryError(f"organisation {org_id!r} is not written as an [[organisations]] table")


def _write_checked(path: Path, text: str) -> None:
    """Replace the directory file with ``text`` once it parses and compiles."""
    try:
        raw: dict[str, Any] = tomllib.loads(text)
        compile_directory(msgspec.convert(raw, Directory), source=str(path))
    except (tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise DirectoryError(f"{path}: the edit would make the file invalid: {exc}") from None
    temporary = path.with_name(f".{path.name}.new")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
