"""The difference between what the directory wants and what the broker has, as ordered steps.

Pure: no I/O, so the diff is unit-tested without a broker. Only differences become steps, so a
second run plans nothing. Queues and exchanges cannot be changed in place, so a difference there
is a *conflict* for an operator — never a delete-and-recreate that would drop messages.

Without ``prune``, what the directory no longer names is only reported (``?``); with it, the
account's rights on this vhost, its open connections and the user go (the user is kept when it
has rights on another vhost), and its inbox queues are deleted *only if empty* — the check is
made when applying, from an exact count.

Queues an older Liaison declared and this one retired (``RETIRED_QUEUES``: the ``liaison.audit``
queue the ledger replaced) are unbound on every run, prune or not — a copy nobody reads must
not keep accumulating — and deleted when an exact count finds them empty; one that still holds
messages is kept, with the command that deletes it once an operator has read what it holds.
"""

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

import msgspec

from liaison.common.settings import Secret
from liaison.common.topology import PLACEMENT_ARGUMENTS, RETIRED_QUEUES
from liaison.directory.credentials import HASHING_ALGORITHM, hash_matches
from liaison.directory.definitions import DesiredState
from liaison.directory.management import (
    Binding,
    Exchange,
    Permission,
    Queue,
    TopicPermission,
    User,
)

INBOX_PREFIX = "inbox."
EXCHANGE_FIELDS = ("type", "durable", "auto_delete", "internal", "arguments")


class Verb(enum.StrEnum):
    """What a step does."""

    CREATE = "+"
    UPDATE = "~"
    DELETE = "-"
    CLOSE = "x"
    DELETE_IF_EMPTY = "-?"
    RECREATE_IF_EMPTY = "~?"
    CONFLICT = "!"
    STALE = "?"


@dataclass(frozen=True, slots=True)
class UserChange:
    """A user to put: from a known password, or (``password`` None) keeping ``keep_hash``."""

    account: str
    password: Secret | None
    keep_hash: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Recreation:
    """A queue to delete and declare again with its bindings, if it is found empty."""

    queue: Queue
    bindings: tuple[Binding, ...]


@dataclass(frozen=True, slots=True)
class Step:
    """One difference between the directory and the broker, and what to do about it."""

    verb: Verb
    kind: str
    name: str
    detail: str = ""
    payload: object = None

    @property
    def is_change(self) -> bool:
        """Whether applying this step touches the broker."""
        return self.verb not in (Verb.CONFLICT, Verb.STALE)

    def describe(self) -> str:
        """One line for the plan."""
        line = f"{self.verb.value:>2} {self.kind} {self.name}"
        return f"{line}: {self.detail}" if self.detail else line


@dataclass(frozen=True, slots=True)
class Plan:
    """The ordered steps for one vhost."""

    vhost: str
    steps: tuple[Step, ...]

    @property
    def changes(self) -> tuple[Step, ...]:
        """Steps that touch the broker."""
        return tuple(s for s in self.steps if s.is_change)

    @property
    def conflicts(self) -> tuple[Step, ...]:
        """Differences left for an operator."""
        return tuple(s for s in self.steps if s.verb is Verb.CONFLICT)


@dataclass(frozen=True, slots=True)
class BrokerState:
    """What the broker holds that provisioning compares against."""

    vhost_exists: bool
    users: Mapping[str, User]
    permissions: Mapping[str, Permission]
    topic_permissions: Mapping[tuple[str, str], TopicPermission]
    exchanges: Mapping[str, Exchange]
    queues: Mapping[str, Queue]
    bindings: tuple[Binding, ...]
    #: Users with rights on some other vhost too (kept by prune, only their rights here go).
    elsewhere: frozenset[str] = frozenset()
    #: Open connections per user on this vhost.
    connections: Mapping[str, int] = field(default_factory=dict)


def plan_changes(
    desired: DesiredState,
    actual: BrokerState,
    credentials: Mapping[str, Secret | None],
    *,
    prune: bool = False,
    admin_user: str = "guest",
    reissue: frozenset[str] = frozenset(),
    recreate_empty: bool = False,
) -> Plan:
    """The ordered steps that make ``actual`` hold ``desired``; nothing when they agree.

    ``reissue`` names accounts the caller owns outright (the demo's own users): one that exists
    with no stored credential gets a new password instead of a conflict for an operator.
    ``recreate_empty`` (the demo too) turns a queue whose arguments changed into a delete and
    re-create, done only if an exact count finds it empty when applying; otherwise it is kept.
    """
    steps: list[Step] = []
    if not actual.vhost_exists:
        steps.append(Step(Verb.CREATE, "vhost", desired.vhost))
    steps += _topology_steps(desired, actual, recreate_empty=recreate_empty)
    steps += _retired_steps(desired, actual)
    for account in desired.accounts:
        steps += _user_steps(
            account,
            actual.users.get(account),
            credentials.get(account),
            admin_user,
            desired.tags.get(account, ()),
            reissue=account in reissue,
        )
    steps += _rights_steps(desired, actual)
    steps += _prune_steps(desired, actual, prune=prune, admin_user=admin_user)
    return Plan(desired.vhost, tuple(steps))


def _topology_steps(
    desired: DesiredState, actual: BrokerState, *, recreate_empty: bool = False
) -> list[Step]:
    steps: list[Step] = []
    for exchange in desired.exchanges:
        found = actual.exchanges.get(exchange.name)
        if found is None:
            steps.append(Step(Verb.CREATE, "exchange", exchange.name, exchange.type, exchange))
        elif diff := _differences(exchange, found, EXCHANGE_FIELDS):
            steps.append(
                Step(
                    Verb.CONFLICT,
                    "exchange",
                    exchange.name,
                    f"{diff}; exchanges cannot change in place, an operator must "
                    "delete and re-provision it",
                )
            )
    for queue in desired.queues:
        found_queue = actual.queues.get(queue.name)
        if found_queue is None:
            steps.append(Step(Verb.CREATE, "queue", queue.name, _queue_summary(queue), queue))
        elif (diff := _queue_differences(queue, found_queue)) and recreate_empty:
            bindings = tuple(b for b in desired.bindings if b.destination == queue.name)
            steps.append(
                Step(
                    Verb.RECREATE_IF_EMPTY,
                    "queue",
                    queue.name,
                    f"{diff}; re-created only if empty",
                    Recreation(queue, bindings),
                )
            )
        elif diff:
            depth = found_queue.messages
            steps.append(
                Step(
                    Verb.CONFLICT,
                    "queue",
                    queue.name,
                    f"{diff}; queue arguments cannot change in place and it holds "
                    f"{'?' if depth is None else depth} messages: drain it, delete "
                    "it by hand, then provision again",
                )
            )
    have = {_binding_key(b) for b in actual.bindings}
    for binding in desired.bindings:
        if _binding_key(binding) not in have:
            steps.append(Step(Verb.CREATE, "binding", _binding_name(binding), payload=binding))
    return steps


def _retired_steps(desired: DesiredState, actual: BrokerState) -> list[Step]:
    steps: list[Step] = []
    for name in RETIRED_QUEUES:
        if name not in actual.queues:
            continue
        why = "retired: the ledger is the audit trail"
        for binding in actual.bindings:
            if binding.destination == name and binding.destination_type == "queue":
                steps.append(
                    Step(Verb.DELETE, "binding", _binding_name(binding), why, payload=binding)
                )
        steps.append(
            Step(
                Verb.DELETE_IF_EMPTY,
                "queue",
                name,
                f"{why}; deleted if empty, else kept until an operator has read what it holds "
                f"and runs `rabbitmqctl delete_queue --vhost {desired.vhost} {name}`",
            )
        )
    return steps


def _user_steps(
    account: str,
    user: User | None,
    stored: Secret | None,
    admin_user: str,
    tags: tuple[str, ...] = (),
    *,
    reissue: bool = False,
) -> list[Step]:
    if account == admin_user:
        return [Step(Verb.CONFLICT, "user", account, "is the provisioning admin; not touched")]
    if user is None:
        source = "stored credential" if stored else "new generated password, stored"
        if tags:
            source += f", tags {list(tags)}"
        return [Step(Verb.CREATE, "user", account, source, UserChange(account, stored, tags=tags))]
    steps: list[Step] = []
    same = (
        stored is not None
        and user.hashing_algorithm == HASHING_ALGORITHM
        and hash_matches(stored.reveal(), user.password_hash)
    )
    if stored is not None and not same:
        steps.append(
            Step(
                Verb.UPDATE,
                "user",
                account,
                "password set to the stored credential",
                UserChange(account, stored, tags=tags),
            )
        )
    elif sorted(user.tag_list) != sorted(tags):
        steps.append(
            Step(
                Verb.UPDATE,
                "user",
                account,
                f"tags {user.tag_list} set to {list(tags)}",
                UserChange(account, None, keep_hash=user.password_hash, tags=tags),
            )
        )
    if stored is None and reissue:
        return [
            Step(
                Verb.UPDATE,
                "user",
                account,
                "exists but no credential is stored; new generated password, stored",
                UserChange(account, None, tags=tags),
            )
        ]
    if stored is None:
        steps.append(
            Step(
                Verb.CONFLICT,
                "user",
                account,
                "exists but no credential is stored "
                "for it; `liaison partner rotate-credentials` issues one",
            )
        )
    return steps


def _rights_steps(desired: DesiredState, actual: BrokerState) -> list[Step]:
    steps: list[Step] = []
    for account, permission in desired.permissions.items():
        found = actual.permissions.get(account)
        if found != permission:
            verb = Verb.CREATE if found is None else Verb.UPDATE
            detail = (
                f"configure {permission.configure} write {permission.write} read {permission.read}"
            )
            steps.append(Step(verb, "permissions", account, detail, permission))
    for account, topic in desired.topic_permissions.items():
        found_topic = actual.topic_permissions.get((account, topic.exchange))
        if found_topic != topic:
            verb = Verb.CREATE if found_topic is None else Verb.UPDATE
            detail = f"{topic.exchange} write {topic.write}"
            steps.append(Step(verb, "topic-permissions", account, detail, topic))
    return steps


def _prune_steps(
    desired: DesiredState, actual: BrokerState, *, prune: bool, admin_user: str
) -> list[Step]:
    steps: list[Step] = []
    ours = {e.name for e in desired.exchanges}
    wanted = {_binding_key(b) for b in desired.bindings}
    for binding in actual.bindings:
        retired = binding.destination in RETIRED_QUEUES  # _retired_steps unbinds these
        if binding.source in ours and _binding_key(binding) not in wanted and not retired:
            steps.append(
                _stale_or(Verb.DELETE, prune, "binding", _binding_name(binding), payload=binding)
            )
    for account in sorted(actual.permissions.keys() - desired.accounts.keys()):
        user = actual.users.get(account)
        if account == admin_user or user is None or user.tag_list:
            continue  # operators and administrators are not partners
        steps.append(_stale_or(Verb.DELETE, prune, "permissions", account, "not in the directory"))
        if any(holder == account for holder, _ in actual.topic_permissions):
            steps.append(_stale_or(Verb.DELETE, prune, "topic-permissions", account))
        if prune:
            open_ = actual.connections.get(account, 0)
            steps.append(Step(Verb.CLOSE, "connections", account, f"{open_} open"))
        if account in actual.elsewhere:
            steps.append(Step(Verb.STALE, "user", account, "kept: has rights on other vhosts"))
        else:
            steps.append(_stale_or(Verb.DELETE, prune, "user", account))
    desired_queues = {q.name for q in desired.queues}
    for name, queue in sorted(actual.queues.items()):
        if name.startswith(INBOX_PREFIX) and name not in desired_queues:
            last = "?" if queue.messages is None else str(queue.messages)
            steps.append(
                _stale_or(
                    Verb.DELETE_IF_EMPTY,
                    prune,
                    "queue",
                    name,
                    f"no organisation reads it; broker last counted {last}",
                )
            )
    return steps


def _stale_or(
    verb: Verb, prune: bool, kind: str, name: str, detail: str = "", payload: object = None
) -> Step:
    if prune:
        return Step(verb, kind, name, detail, payload)
    return Step(Verb.STALE, kind, name, f"{detail + '; ' if detail else ''}--prune removes it")


def _differences(want: object, have: object, fields: tuple[str, ...]) -> str:
    diffs = [
        f"{name} is {getattr(have, name)!r}, directory wants {getattr(want, name)!r}"
        for name in fields
        if getattr(want, name) != getattr(have, name)
    ]
    return "; ".join(diffs)


def _queue_differences(want: Queue, have: Queue) -> str:
    """What differs but placement: a leader is placed once, when its queue is declared, so a
    queue declared before the directory asked for a placement is still the one it wants."""
    return _differences(_unplaced(want), _unplaced(have), ("durable", "auto_delete", "arguments"))


def _unplaced(queue: Queue) -> Queue:
    arguments = {k: v for k, v in queue.arguments.items() if k not in PLACEMENT_ARGUMENTS}
    return msgspec.structs.replace(queue, arguments=arguments)


def _queue_summary(queue: Queue) -> str:
    args = queue.arguments
    return ", ".join(
        f"{key.removeprefix('x-')}={args[key]}"
        for key in ("x-queue-type", "x-max-length", "x-overflow", "x-delivery-limit")
        if key in args
    )


def _binding_key(b: Binding) -> tuple[str, str, str, str]:
    return (b.source, b.destination, b.destination_type, b.routing_key)


def _binding_name(b: Binding) -> str:
    return f"{b.source} -> {b.destination} [{b.routing_key}]"
