"""The site broker's objects and the shovels that link it to headquarters, as data, then applied.

On the site broker (vhost ``liaison``, as at headquarters):

    site partner --(routing key = own org, user_id = own account)--> liaison.ingress (topic)
      --'#'--> relay.outbound (bounded, reject-publish: a full site refuses, never drops)
      --> the relay's sorter reads each envelope's precedence --> relay.sorted.flash|routine
      --> relay.outbound.flash | relay.outbound.routine
      ==shovel (on-confirm, small prefetch for flash)==> headquarters liaison.ingress,
        routing key kept, user_id set to the site's account (the hub checks the sender)
    headquarters inbox.<org>, inbox.<org>.flash (each organisation at the site)
      ==shovel (on-confirm)==> the site's inbox.<org>, inbox.<org>.flash

Shovels run on the site broker (it dials out, as a site behind NAT must) and reach
headquarters through the relay's compressing tunnel on ``relay_listen``. Site partners get
the same rights as at headquarters: publish to ``liaison.ingress`` with their own org id as
routing key (the broker checks ``user_id``), read their own two inboxes.

Classic durable queues: one node, and a requeued message keeps its place (order after a
reconnect). A disk alarm (``disk_free_limit`` in the site's rabbitmq.conf) blocks publishers
before the disk fills; the relay's status shows it.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from liaison.common.errors import DirectoryError
from liaison.directory.credentials import HASHING_ALGORITHM, CredentialStore, generate_password
from liaison.directory.credentials import password_hash as hash_password
from liaison.directory.definitions import partner_permission, partner_topic_permission
from liaison.directory.index import DirectoryIndex
from liaison.directory.management import Binding, Exchange, ManagementClient, Permission, Queue
from liaison.directory.model import Site
from liaison.schemas.wire import INGRESS_EXCHANGE, flash_inbox_queue, inbox_queue

OUTBOUND_QUEUE: Final = "relay.outbound"
FLASH_QUEUE: Final = "relay.outbound.flash"
ROUTINE_QUEUE: Final = "relay.outbound.routine"
FLASH_EXCHANGE: Final = "relay.sorted.flash"
ROUTINE_EXCHANGE: Final = "relay.sorted.routine"
SHOVEL_PREFIX: Final = "relay-"
#: Seconds a shovel waits before dialling headquarters again after losing the link.
RECONNECT_DELAY: Final = 2


@dataclass(frozen=True, slots=True)
class SitePlan:
    """Everything the relay declares on the site broker, and the shovels it defines there."""

    site: Site
    organisations: tuple[str, ...]
    exchanges: tuple[Exchange, ...]
    queues: tuple[Queue, ...]
    bindings: tuple[Binding, ...]
    shovels: dict[str, dict[str, Any]]

    @property
    def outbound_queues(self) -> tuple[str, ...]:
        """The site queues whose messages wait for the link."""
        return (OUTBOUND_QUEUE, FLASH_QUEUE, ROUTINE_QUEUE)

    @property
    def inbound_sources(self) -> tuple[str, ...]:
        """The headquarters queues the inbound shovels drain."""
        return tuple(q for org in self.organisations for q in _inboxes(org))


@dataclass(frozen=True, slots=True)
class Link:
    """How the site broker's shovels reach headquarters: the tunnel's site end."""

    host: str
    port: int
    account: str
    password: str
    vhost: str
    heartbeat: int = 10

    def uri(self) -> str:
        """The shovels' AMQP URI for headquarters, through the tunnel."""
        auth = f"{quote(self.account, safe='')}:{quote(self.password, safe='')}"
        query = f"heartbeat={self.heartbeat}&connection_timeout=15000"
        return f"amqp://{auth}@{self.host}:{self.port}/{quote(self.vhost, safe='')}?{query}"


def site_orgs(index: DirectoryIndex, site_id: str) -> tuple[Site, tuple[str, ...]]:
    """The site ``site_id`` and the organisations registered at it."""
    for site in index.directory.sites:
        if site.id == site_id:
            orgs = index.orgs_for_site_account(site.broker_account) or frozenset()
            return site, tuple(sorted(orgs))
    raise DirectoryError(f"no [[sites]] entry with id {site_id!r} in the directory")


def plan_site(
    index: DirectoryIndex,
    site_id: str,
    link: Link,
    *,
    max_length: int,
    flash_prefetch: int,
    routine_prefetch: int,
) -> SitePlan:
    """The site broker's objects and shovels for site ``site_id`` of ``index``."""
    site, orgs = site_orgs(index, site_id)
    bounded = {"x-max-length": max_length, "x-overflow": "reject-publish"}
    exchanges = (
        Exchange(name=INGRESS_EXCHANGE, type="topic"),
        Exchange(name=FLASH_EXCHANGE, type="fanout"),
        Exchange(name=ROUTINE_EXCHANGE, type="fanout"),
    )
    queues = [Queue(name=name, arguments=dict(bounded)) for name in _outbound()]
    bindings = [
        Binding(INGRESS_EXCHANGE, OUTBOUND_QUEUE, "queue", "#"),
        Binding(FLASH_EXCHANGE, FLASH_QUEUE, "queue", ""),
        Binding(ROUTINE_EXCHANGE, ROUTINE_QUEUE, "queue", ""),
    ]
    for org in orgs:
        # Unbounded: a full site inbox would nack the inbound shovel, which requeues at
        # headquarters and spends the inbox's delivery limit there. The site's disk alarm
        # blocks the shovel instead, and headquarters' bounded inbox holds the rest.
        queues.extend(Queue(name=name) for name in _inboxes(org))
    local = f"amqp:///{quote(link.vhost, safe='')}"
    common: dict[str, Any] = {
        "src-protocol": "amqp091",
        "dest-protocol": "amqp091",
        # Acknowledge the source only once the far broker confirmed: nothing lost on a cut.
        "ack-mode": "on-confirm",
        "reconnect-delay": RECONNECT_DELAY,
        "add-forward-headers": False,
    }
    shovels: dict[str, dict[str, Any]] = {}
    for name, queue, prefetch in (
        ("out-flash", FLASH_QUEUE, flash_prefetch),
        ("out-routine", ROUTINE_QUEUE, routine_prefetch),
    ):
        shovels[SHOVEL_PREFIX + name] = {
            **common,
            "src-uri": local,
            "src-queue": queue,
            "src-prefetch-count": prefetch,
            "dest-uri": link.uri(),
            # No dest-exchange-key: the partner's routing key (its org id) crosses unchanged.
            "dest-exchange": INGRESS_EXCHANGE,
            # Headquarters validates user_id against the login: the site's account. The hub
            # then holds the site to its own organisations (router.py).
            "dest-publish-properties": {"user_id": link.account, "delivery_mode": 2},
        }
    for org in orgs:
        for queue in _inboxes(org):
            shovels[f"{SHOVEL_PREFIX}in-{queue}"] = {
                **common,
                "src-uri": link.uri(),
                "src-queue": queue,
                "src-prefetch-count": flash_prefetch
                if queue.endswith(".flash")
                else routine_prefetch,
                "dest-uri": local,
                "dest-queue": queue,
            }
    return SitePlan(
        site=site,
        organisations=orgs,
        exchanges=exchanges,
        queues=tuple(queues),
        bindings=tuple(bindings),
        shovels=shovels,
    )


async def apply_site(
    api: ManagementClient,
    index: DirectoryIndex,
    plan: SitePlan,
    *,
    vhost: str,
    store: CredentialStore,
    admin_user: str,
) -> list[str]:
    """Declare ``plan`` on the site broker (idempotent); returns one line per thing done."""
    lines: list[str] = []
    await api.put_vhost(vhost)
    # The relay's sorter logs in as the site administrator.
    await api.put_permission(Permission(admin_user, vhost, ".*", ".*", ".*"))
    for exchange in plan.exchanges:
        await api.put_exchange(vhost, exchange)
    for queue in plan.queues:
        await api.put_queue(vhost, queue)
    for binding in plan.bindings:
        await api.post_binding(vhost, binding)
    declared = f"{len(plan.queues)} queues, {len(plan.exchanges)} exchanges"
    lines.append(f"site {plan.site.id}: {declared} on {vhost}")
    for org in plan.organisations:
        account = index.organisations[org].broker_account
        password = store.get(account)
        if password is None:
            password = generate_password()
            path = store.put(account, password)
            lines.append(f"site partner {account}: new password in {path}")
        await api.put_user(account, hash_password(password), HASHING_ALGORITHM)
        await api.put_permission(partner_permission(account, org, vhost))
        await api.put_topic_permission(partner_topic_permission(account, org, vhost))
    wanted = set(plan.shovels)
    for name, value in plan.shovels.items():
        await api.put_shovel(vhost, name, value)
    existing = await api.request("GET", f"/parameters/shovel/{quote(vhost, safe='')}") or []
    for entry in existing:
        name = str(entry.get("name", ""))
        if name.startswith(SHOVEL_PREFIX) and name not in wanted:
            # An organisation moved away from the site: its inbound shovel goes.
            await api.request(
                "DELETE", f"/parameters/shovel/{quote(vhost, safe='')}/{quote(name, safe='')}"
            )
            lines.append(f"shovel {name}: removed")
    lines.append(f"shovels: {', '.join(sorted(plan.shovels))}")
    return lines


def _outbound() -> Iterable[str]:
    return (OUTBOUND_QUEUE, FLASH_QUEUE, ROUTINE_QUEUE)


def _inboxes(org: str) -> tuple[str, str]:
    return (inbox_queue(org), flash_inbox_queue(org))
