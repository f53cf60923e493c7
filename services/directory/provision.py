"""``liaison provision``: make the broker hold what the directory says, through the management API.

``provision`` reads the broker (``read_broker_state``), diffs it against the directory
(``liaison.directory.plan``) and, unless it is a dry run, applies the steps in order:
vhost, exchanges, queues, bindings, users, permissions; then, with ``--prune``, what the
directory no longer names. Inbox queues are only deleted when an exact AMQP count (a passive
declare as the admin, not the management API's statistics, which lag by seconds) finds them
empty and unconsumed; otherwise they are kept and reported for an operator.
"""

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

import aio_pika

from liaison.common.errors import BrokerError, BrokerNotFound, broker_errors
from liaison.common.settings import Secret
from liaison.common.urls import amqp_url_for
from liaison.directory.credentials import (
    HASHING_ALGORITHM,
    CredentialStore,
    generate_password,
    password_hash,
)
from liaison.directory.definitions import desired_state
from liaison.directory.index import DirectoryIndex
from liaison.directory.management import (
    Binding,
    Exchange,
    ManagementClient,
    Permission,
    Queue,
    TopicPermission,
)
from liaison.directory.plan import (
    BrokerState,
    Plan,
    Recreation,
    Step,
    UserChange,
    Verb,
    plan_changes,
)
from liaison.directory.settings import ProvisionSettings

#: Reads the number of messages in a queue (None: cannot tell, so the queue is kept).
DepthProbe = Callable[[str], Awaitable[int | None]]


@dataclass(frozen=True, slots=True)
class ProvisionResult:
    """The plan, and what applying it did (empty on a dry run)."""

    plan: Plan
    applied: tuple[str, ...]
    dry_run: bool

    def report(self) -> list[str]:
        """Lines for the operator: each change, conflict and leftover, then a summary."""
        vhost = self.plan.vhost
        notes = [s.describe() for s in self.plan.steps if not s.is_change]
        if self.dry_run:
            lines = [s.describe() for s in self.plan.changes] + notes
            todo = len(self.plan.changes)
            summary = f"would make {todo} changes" if todo else "nothing to change"
            return [*lines, f"vhost {vhost}: {summary} (dry run: the broker was not touched)"]
        summary = f"{len(self.applied)} changes applied" if self.applied else "nothing to change"
        conflicts = len(self.plan.conflicts)
        if conflicts:
            summary += f"; {conflicts} conflicts need an operator"
        return [*self.applied, *notes, f"vhost {vhost}: {summary}"]


def management_client(settings: ProvisionSettings) -> ManagementClient:
    """A client for the configured management API, as the configured admin."""
    return ManagementClient(
        settings.management_url,
        settings.admin_user,
        settings.admin_password,
        ssl_context=settings.ssl_context(settings.management_url),
    )


async def provision(
    settings: ProvisionSettings,
    index: DirectoryIndex,
    *,
    vhost: str | None = None,
    dry_run: bool = False,
    prune: bool = False,
    depth: DepthProbe | None = None,
    reissue_missing: bool = False,
    recreate_empty: bool = False,
) -> ProvisionResult:
    """Bring ``vhost`` (default: the configured one) in line with ``index``.

    ``reissue_missing`` is for a caller that owns the directory's accounts (the demo): an
    account that exists without a stored credential gets a new password, as long as it is
    only this vhost's (see :func:`owned_accounts`); any other stays a conflict.
    ``recreate_empty`` (the demo as well) re-creates a queue whose arguments changed when an
    exact count finds it empty, and keeps it with a line for an operator otherwise.
    """
    vhost = vhost or settings.vhost
    desired = desired_state(
        index, vhost, shards=settings.shard_count, queue_type=settings.queue_type
    )
    store = CredentialStore(settings.credentials_dir)
    credentials = {a: _secret(store.get(a)) for a in desired.accounts}
    async with management_client(settings) as api:
        actual = await read_broker_state(api, vhost, frozenset(desired.accounts))
        reissue: frozenset[str] = frozenset()
        if reissue_missing:
            missing = [a for a, c in credentials.items() if c is None and a in actual.users]
            reissue = await owned_accounts(api, vhost, actual, missing, desired.tags)
        plan = plan_changes(
            desired,
            actual,
            credentials,
            prune=prune,
            admin_user=settings.admin_user,
            reissue=reissue,
            recreate_empty=recreate_empty,
        )
        if dry_run:
            return ProvisionResult(plan, (), dry_run=True)
        probe = depth or amqp_depth_probe(settings, vhost)
        applied = await apply_plan(api, plan, store, probe)
    return ProvisionResult(plan, tuple(applied), dry_run=False)


def _secret(value: str | None) -> Secret | None:
    return None if value is None else Secret(value)


def admin_amqp_url(settings: ProvisionSettings, vhost: str) -> str:
    """The AMQP URL of ``vhost`` as the admin, on the host of LIAISON_AMQP_URL."""
    return amqp_url_for(
        settings.amqp_url, vhost, settings.admin_user, settings.admin_password.reveal()
    )


def amqp_depth_probe(settings: ProvisionSettings, vhost: str, *, wait: float = 5.0) -> DepthProbe:
    """Exact ready-message count of a queue once it has no consumer left (None if unknown)."""

    async def probe(queue: str) -> int | None:
        try:
            url = admin_amqp_url(settings, vhost)
            with broker_errors(f"counting {queue}"):
                connection = await aio_pika.connect(
                    url, timeout=10, ssl_context=settings.ssl_context(url)
                )
        except BrokerError:
            return None
        async with connection:
            deadline = asyncio.get_running_loop().time() + wait
            while True:
                try:
                    with broker_errors(f"counting {queue}"):
                        channel = await connection.channel()
                        declared = await channel.declare_queue(queue, passive=True)
                except BrokerNotFound:
                    return 0
                except BrokerError:
                    return None
                ok = declared.declaration_result
                await channel.close()
                # A closed consumer's unacknowledged messages return to the queue with it.
                if ok.consumer_count == 0 and ok.message_count is not None:
                    return int(ok.message_count)
                if asyncio.get_running_loop().time() > deadline:
                    return None
                await asyncio.sleep(0.2)

    return probe


async def owned_accounts(
    api: ManagementClient,
    vhost: str,
    actual: BrokerState,
    accounts: Iterable[str],
    tags: Mapping[str, tuple[str, ...]],
) -> frozenset[str]:
    """Those of ``accounts`` that belong to ``vhost`` alone, so resetting them harms no one.

    An account with rights on another vhost, or with tags the directory did not give it (an
    administrator, a monitoring user), is someone else's too and is never reset.
    """
    owned: set[str] = set()
    for account in accounts:
        user = actual.users.get(account)
        if user is None or not set(user.tag_list) <= set(tags.get(account, ())):
            continue
        if all(p.vhost == vhost for p in await api.user_permissions(account)):
            owned.add(account)
    return frozenset(owned)


async def read_broker_state(
    api: ManagementClient, vhost: str, desired_accounts: frozenset[str]
) -> BrokerState:
    """GET what provisioning compares; an absent vhost reads as empty."""
    exists = await api.vhost_exists(vhost)
    users = {u.name: u for u in await api.users()}
    if not exists:
        return BrokerState(False, users, {}, {}, {}, {}, ())
    permissions = {p.user: p for p in await api.permissions(vhost)}
    elsewhere: set[str] = set()
    for user in permissions.keys() - desired_accounts:
        if any(p.vhost != vhost for p in await api.user_permissions(user)):
            elsewhere.add(user)
    connections: dict[str, int] = {}
    for connection in await api.connections(vhost):
        connections[connection.user] = connections.get(connection.user, 0) + 1
    return BrokerState(
        vhost_exists=True,
        users=users,
        permissions=permissions,
        topic_permissions={(t.user, t.exchange): t for t in await api.topic_permissions(vhost)},
        exchanges={e.name: e for e in await api.exchanges(vhost) if e.name},
        queues={q.name: q for q in await api.queues(vhost)},
        bindings=tuple(b for b in await api.bindings(vhost) if b.source),
        elsewhere=frozenset(elsewhere),
        connections=connections,
    )


async def apply_plan(
    api: ManagementClient,
    plan: Plan,
    store: CredentialStore,
    depth: DepthProbe,
) -> list[str]:
    """Carry out ``plan``'s changes in order; returns one line per outcome."""
    vhost = plan.vhost
    lines: list[str] = []
    for step in plan.changes:
        outcome = step.describe()
        match step.verb, step.kind, step.payload:
            case Verb.CREATE, "vhost", _:
                await api.put_vhost(vhost)
            case Verb.CREATE, "exchange", Exchange() as exchange:
                await api.put_exchange(vhost, exchange)
            case Verb.CREATE, "queue", Queue() as queue:
                await api.put_queue(vhost, queue)
            case Verb.CREATE, "binding", Binding() as binding:
                await api.post_binding(vhost, binding)
            case Verb.DELETE, "binding", Binding() as binding:
                await api.delete_binding(vhost, binding)
            case ((Verb.CREATE | Verb.UPDATE), "user", UserChange() as change):
                await _put_user(api, store, change)
            case ((Verb.CREATE | Verb.UPDATE), "permissions", Permission() as permission):
                await api.put_permission(permission)
            case ((Verb.CREATE | Verb.UPDATE), "topic-permissions", TopicPermission() as topic):
                await api.put_topic_permission(topic)
            case Verb.DELETE, "permissions", _:
                await api.delete_permission(vhost, step.name)
            case Verb.DELETE, "topic-permissions", _:
                await api.delete_topic_permission(vhost, step.name)
            case Verb.CLOSE, "connections", _:
                closed = await close_connections(api, vhost, step.name, "removed from Liaison")
                outcome = f"{step.verb.value:>2} connections {step.name}: {closed} closed"
            case Verb.DELETE, "user", _:
                await api.delete_user(step.name)
            case Verb.DELETE_IF_EMPTY, "queue", _:
                outcome = await _delete_if_empty(api, vhost, step, depth)
            case Verb.RECREATE_IF_EMPTY, "queue", Recreation() as recreation:
                outcome = await _recreate_if_empty(api, vhost, recreation, step.detail, depth)
            case _:
                raise AssertionError(f"no way to apply {step}")
        lines.append(outcome)
    return lines


async def _put_user(api: ManagementClient, store: CredentialStore, change: UserChange) -> None:
    if change.keep_hash is not None:
        await api.put_user(change.account, change.keep_hash, HASHING_ALGORITHM, change.tags)
        return
    if change.password is None:
        password = generate_password()
        store.put(change.account, password)  # stored before the broker knows it: never lost
    else:
        password = change.password.reveal()
    await api.put_user(change.account, password_hash(password), HASHING_ALGORITHM, change.tags)


async def close_connections(api: ManagementClient, vhost: str, user: str, reason: str) -> int:
    """Close every connection ``user`` has open on ``vhost``; returns how many."""
    closed = 0
    for connection in await api.connections(vhost):
        if connection.user == user:
            await api.close_connection(connection.name, reason)
            closed += 1
    return closed


async def _delete_if_empty(api: ManagementClient, vhost: str, step: Step, depth: DepthProbe) -> str:
    name = step.name
    count = await depth(name)
    if count == 0:
        await api.delete_queue(vhost, name)
        return f"{Verb.DELETE.value:>2} queue {name}: was empty"
    shown = "an unknown number of" if count is None else str(count)
    return f" = kept {name} with {shown} messages for an operator ({step.detail})"


async def _recreate_if_empty(
    api: ManagementClient, vhost: str, recreation: Recreation, why: str, depth: DepthProbe
) -> str:
    name = recreation.queue.name
    count = await depth(name)
    if count != 0:
        shown = "an unknown number of" if count is None else str(count)
        return f" = kept {name} with {shown} messages for an operator: {why}"
    await api.delete_queue(vhost, name)
    await api.put_queue(vhost, recreation.queue)
    for binding in recreation.bindings:
        await api.post_binding(vhost, binding)
    return f"{Verb.UPDATE.value:>2} queue {name}: was empty, re-created: {why}"
