"""What the broker should hold for a directory: users, permissions, topology — as data.

``desired_state`` is the one place that turns the directory into broker objects; provisioning
compares it with what the broker has, and ``export_definitions`` writes it as a RabbitMQ
definitions file that a broker can load at boot (``load_definitions`` in rabbitmq.conf).

Who may do what (configure / write / read regexes on the vhost):

- a partner: configure nothing; write only ``liaison.ingress``, and there (topic permission)
  only with its own organisation id as routing key; read only ``inbox.<org>`` and
  ``inbox.<org>.flash``. The broker also checks that ``user_id`` equals the login.
- the hub: configure nothing; write ``liaison.delivery`` (deliveries and error reports into
  inboxes) and ``liaison.dead`` (refused originals); read only its ``liaison.hub.<n>`` shard
  queues and ``liaison.inbox-dead-letters`` (to tell senders of expired copies, which it then
  keeps in ``liaison.dead``). It does not read the dead-letter queue: replay is an operator's
  act, done with the operator's account, so a compromised hub cannot consume the evidence of
  what it refused. Its ``management`` tag lets it read, over the management API, the queues
  and policies of its vhost (transaction mode's guard needs the inboxes' length limits).
- the ledger: configure nothing; read only ``liaison.ledger`` (decision records and dead
  letters); write only ``liaison.delivery``, and there (topic permission) only with a routing
  key that names one routine inbox: a status report goes to the asker's ``inbox.<org>``, never
  to a flash inbox. Replays from the console are the operators' act: the ledger makes them with
  the operators' account (``LIAISON_LEDGER_REPLAY_URL``), not with its own.

No policies are declared: every queue property Liaison relies on (quorum type, dead-lettering,
delivery limit, length limit with reject-publish) is a declaration argument, which a policy could
only duplicate — and arguments cannot be lifted by someone editing policies later.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from liaison.common.topology import (
    DEFAULT_SHARDS,
    HUB_QUEUE_PREFIX,
    INBOX_DEAD_LETTER_QUEUE,
    LEDGER_EXCHANGE,
    LEDGER_QUEUE,
    REPLAY_EXCHANGE,
    QueueType,
    Topology,
    build_topology,
)
from liaison.directory.credentials import HASHING_ALGORITHM
from liaison.directory.index import DirectoryIndex
from liaison.directory.management import Binding, Exchange, Permission, Queue, TopicPermission
from liaison.directory.topology import broker_objects
from liaison.schemas.wire import (
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE,
    DELIVERY_EXCHANGE,
    INGRESS_EXCHANGE,
    inbox_queue,
)

#: Regex that matches no resource name: "no configure right at all".
NOTHING = "^$"
#: The hash of users exported without secrets: the broker accepts it (a non-base64 marker would
#: stop it from booting) and no password matches it, so the user cannot log in until
#: ``liaison provision`` sets the password from the credential store.
PLACEHOLDER_HASH = ""
#: A routing key naming one organisation's routine inbox on the delivery exchange: an org id
#: (``OrgId``'s slug, which has no dot, so no ``<org>.flash`` key matches).
ROUTINE_DELIVERY_KEY = "^[a-z][a-z0-9-]{1,31}$"
#: Lets the operators' account publish a replay with the original sender's user_id.
OPERATOR_TAGS: tuple[str, ...] = ("impersonator",)
#: The hub reads its inboxes' length limits (policies included) from the management API;
#: ``management`` shows it the queues and policies of its own vhost, and allows nothing its
#: AMQP rights do not (it has no configure right, and policies need the policymaker tag).
HUB_TAGS: tuple[str, ...] = ("management",)


@dataclass(frozen=True, slots=True)
class DesiredState:
    """Everything ``liaison provision`` makes the broker hold for one vhost."""

    vhost: str
    #: Broker account -> organisation id (None for the hub, the operators and the ledger).
    accounts: dict[str, str | None]
    permissions: dict[str, Permission]
    topic_permissions: dict[str, TopicPermission]
    exchanges: tuple[Exchange, ...]
    queues: tuple[Queue, ...]
    bindings: tuple[Binding, ...]
    #: Broker user tags per account; accounts not named here have none.
    tags: dict[str, tuple[str, ...]] = field(default_factory=dict)


def partner_permission(account: str, org: str, vhost: str) -> Permission:
    """A partner's vhost permissions: publish to ingress, read its own inboxes, nothing else."""
    return Permission(
        user=account,
        vhost=vhost,
        configure=NOTHING,
        write=f"^{re.escape(INGRESS_EXCHANGE)}$",
        read=f"^{re.escape(inbox_queue(org))}(\\.flash)?$",
    )


def partner_topic_permission(account: str, org: str, vhost: str) -> TopicPermission:
    """A partner may publish to the ingress exchange only with its own org id as routing key."""
    return TopicPermission(
        user=account,
        vhost=vhost,
        exchange=INGRESS_EXCHANGE,
        write=f"^{re.escape(org)}$",
        read=NOTHING,
    )


def site_permission(account: str, orgs: Iterable[str], vhost: str) -> Permission:
    """A field site's relay: publish to ingress, read its organisations' inboxes, no more."""
    names = "|".join(re.escape(org) for org in sorted(orgs))
    return Permission(
        user=account,
        vhost=vhost,
        configure=NOTHING,
        write=f"^{re.escape(INGRESS_EXCHANGE)}$",
        read=f"^inbox\\.({names})(\\.flash)?$" if names else NOTHING,
    )


def site_topic_permission(account: str, orgs: Iterable[str], vhost: str) -> TopicPermission:
    """A site's relay publishes only with the routing key of an organisation at the site.

    The hub checks the envelope's sender the same way (router.py): the broker refuses a wrong
    routing key, the hub a wrong sender.
    """
    names = "|".join(re.escape(org) for org in sorted(orgs))
    return TopicPermission(
        user=account,
        vhost=vhost,
        exchange=INGRESS_EXCHANGE,
        write=f"^({names})$" if names else NOTHING,
        read=NOTHING,
    )


def hub_permission(account: str, vhost: str) -> Permission:
    """The hub's vhost permissions: consume its shards, publish deliveries and dead letters."""
    # LEDGER_EXCHANGE: the hub's decision records for the ledger.
    writes = "|".join(
        re.escape(name) for name in (DELIVERY_EXCHANGE, DEAD_LETTER_EXCHANGE, LEDGER_EXCHANGE)
    )
    return Permission(
        user=account,
        vhost=vhost,
        configure=NOTHING,
        write=f"^({writes})$",
        # Its shards, and the inbox dead letters it reads to tell senders of expired copies.
        read=f"^({re.escape(HUB_QUEUE_PREFIX)}[0-9]+|{re.escape(INBOX_DEAD_LETTER_QUEUE)})$",
    )


def ledger_permission(account: str, vhost: str) -> Permission:
    """The ledger's rights: consume its own queue, publish status reports, nothing else."""
    return Permission(
        user=account,
        vhost=vhost,
        configure=NOTHING,
        write=f"^{re.escape(DELIVERY_EXCHANGE)}$",
        read=f"^{re.escape(LEDGER_QUEUE)}$",
    )


def ledger_topic_permission(account: str, vhost: str) -> TopicPermission:
    """On the delivery exchange the ledger may use one organisation's routine key only."""
    return TopicPermission(
        user=account,
        vhost=vhost,
        exchange=DELIVERY_EXCHANGE,
        # delivery_key(org, flash=False) is the bare org id; any dot (".flash") is refused.
        write=ROUTINE_DELIVERY_KEY,
        read=NOTHING,
    )


def operator_permission(account: str, vhost: str) -> Permission:
    """The operators' rights: read dead letters, publish replays, nothing else.

    A refusal is replayed into the ingress (the hub judges it again); an inbox dead letter into
    ``liaison.replay``, which reaches only inboxes — never the delivery
    exchange, which stays the hub's alone.
    """
    writes = "|".join(re.escape(name) for name in (INGRESS_EXCHANGE, REPLAY_EXCHANGE))
    return Permission(
        user=account,
        vhost=vhost,
        configure=NOTHING,
        write=f"^({writes})$",
        read=f"^{re.escape(DEAD_LETTER_QUEUE)}$",
    )


def topology_for(
    index: DirectoryIndex, *, shards: int = DEFAULT_SHARDS, queue_type: QueueType = "quorum"
) -> Topology:
    """The exchanges, queues and bindings of ``index``'s organisations over ``shards`` shards,
    inboxes, ledger and dead-letter queues of ``queue_type``."""
    inboxes = {o.id: o.inbox_max_length for o in index.organisations.values()}
    return build_topology(inboxes, shards=shards, queue_type=queue_type)


def desired_state(
    index: DirectoryIndex,
    vhost: str,
    *,
    shards: int = DEFAULT_SHARDS,
    queue_type: QueueType = "quorum",
) -> DesiredState:
    """The broker objects and rights for ``index`` on ``vhost`` over ``shards`` shard queues
    (inboxes, ledger and dead-letter queues of ``queue_type``)."""
    hub = index.directory.hub_account
    operator = index.directory.operator_account
    ledger = index.directory.ledger_account
    accounts: dict[str, str | None] = {hub: None, operator: None, ledger: None}
    permissions = {
        hub: hub_permission(hub, vhost),
        operator: operator_permission(operator, vhost),
        ledger: ledger_permission(ledger, vhost),
    }
    topic_permissions = {ledger: ledger_topic_permission(ledger, vhost)}
    for org in index.organisations.values():
        account = org.broker_account
        accounts[account] = org.id
        permissions[account] = partner_permission(account, org.id, vhost)
        topic_permissions[account] = partner_topic_permission(account, org.id, vhost)
    for account, orgs in index.site_accounts.items():
        accounts[account] = None
        permissions[account] = site_permission(account, orgs, vhost)
        topic_permissions[account] = site_topic_permission(account, orgs, vhost)
    objects = broker_objects(topology_for(index, shards=shards, queue_type=queue_type))
    return DesiredState(
        vhost=vhost,
        accounts=accounts,
        permissions=permissions,
        topic_permissions=topic_permissions,
        exchanges=objects.exchanges,
        queues=objects.queues,
        bindings=objects.bindings,
        tags={operator: OPERATOR_TAGS, hub: HUB_TAGS},
    )


def export_definitions(
    state: DesiredState, password_hashes: dict[str, str] | None = None
) -> dict[str, Any]:
    """RabbitMQ definitions for ``state``; users without a known hash get PLACEHOLDER_HASH."""
    hashes = password_hashes or {}
    vhost = state.vhost
    return {
        "rabbit_version": "3.10.8",
        "vhosts": [{"name": vhost}],
        "users": [
            {
                "name": account,
                "password_hash": hashes.get(account, PLACEHOLDER_HASH),
                "hashing_algorithm": HASHING_ALGORITHM,
                "tags": list(state.tags.get(account, ())),
            }
            for account in sorted(state.accounts)
        ],
        "permissions": [
            {
                "user": p.user,
                "vhost": vhost,
                "configure": p.configure,
                "write": p.write,
                "read": p.read,
            }
            for _, p in sorted(state.permissions.items())
        ],
        "topic_permissions": [
            {
                "user": t.user,
                "vhost": vhost,
                "exchange": t.exchange,
                "write": t.write,
                "read": t.read,
            }
            for _, t in sorted(state.topic_permissions.items())
        ],
        "exchanges": [
            {
                "name": e.name,
                "vhost": vhost,
                "type": e.type,
                "durable": True,
                "auto_delete": False,
                "internal": e.internal,
                "arguments": e.arguments,
            }
            for e in state.exchanges
        ],
        "queues": [
            {
                "name": q.name,
                "vhost": vhost,
                "durable": True,
                "auto_delete": False,
                "arguments": q.arguments,
            }
            for q in state.queues
        ],
        "bindings": [
            {
                "source": b.source,
                "vhost": vhost,
                "destination": b.destination,
                "destination_type": b.destination_type,
                "routing_key": b.routing_key,
                "arguments": {},
            }
            for b in state.bindings
        ],
        "policies": [],
        "parameters": [],
        "global_parameters": [],
    }
