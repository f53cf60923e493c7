"""The broker side of a bench run: a throwaway vhost, its users, queues and fast counters.

Everything a run creates carries the run id and is deleted at the end: the vhost (with every
queue and shovel in it) and the partner users, which are global to the broker.
"""

import asyncio
import contextlib
import os
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import quote

import aiormq

from bench.processes import Background
from liaison.common.errors import BrokerNotFound, LiaisonError
from liaison.common.settings import Secret
from liaison.common.urls import amqp_url_for, password_of, user_of
from liaison.directory.credentials import HASHING_ALGORITHM, password_hash
from liaison.directory.management import ManagementClient, Permission

ADMIN_AMQP_URL = os.environ.get("LIAISON_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
MANAGEMENT_URL = os.environ.get("LIAISON_BENCH_MANAGEMENT_URL", "http://127.0.0.1:15672")
#: AMQP ports of every node whose CPU counts as the broker's (empty: the node of ADMIN_AMQP_URL).
NODE_PORTS: list[int] = []
PARTNER_PASSWORD = "bench-partner-password"  # noqa: S105 - throwaway users, deleted after the run

QUORUM: dict[str, Any] = {"x-queue-type": "quorum"}
#: The bench's own one-copy-per-publish counter, bound with '#' to the delivery exchange: every
#: mover's publish lands one copy here, so "all N moved" is one count. (Liaison's liaison.audit
#: queue did this until the ledger replaced it; the bench keeps the copy so its figures stay
#: comparable with earlier runs.)
COPY_QUEUE = "bench.copies"


def use_broker(amqp: str, management: str, node_ports: Sequence[int] = ()) -> None:
    """Point the bench at another broker from now on, as the two environment variables would
    at start-up; ``node_ports`` are a cluster's nodes, whose CPU is then summed as the broker's.
    (``bench.cluster`` measures two brokers in alternating rounds in one process.)"""
    global ADMIN_AMQP_URL, MANAGEMENT_URL
    ADMIN_AMQP_URL, MANAGEMENT_URL = amqp, management
    NODE_PORTS[:] = node_ports


def admin_credentials() -> tuple[str, str]:
    """The admin user and password of ``ADMIN_AMQP_URL``."""
    return user_of(ADMIN_AMQP_URL) or "guest", password_of(ADMIN_AMQP_URL) or "guest"


def amqp_url(vhost: str, user: str | None = None, password: str | None = None) -> str:
    """An AMQP URL for ``vhost``, as the admin or as ``user``."""
    admin_user, admin_password = admin_credentials()
    return amqp_url_for(ADMIN_AMQP_URL, vhost, user or admin_user, password or admin_password)


def management_client() -> ManagementClient:
    """Liaison's management API client, as the admin."""
    user, password = admin_credentials()
    return ManagementClient(MANAGEMENT_URL, user, Secret(password), timeout=120)


#: A bench run's vhost description: which host and process the run is, so that a later run
#: can tell the vhost of a run killed outright (it never tore down) from one still in use.
_RUN_DESCRIPTION = re.compile(r"liaison bench run: host=(\S+) pid=(\d+)")


async def create_vhost(api: ManagementClient, vhost: str) -> None:
    """The run's vhost, described as this process's, with every right for the admin."""
    user, _ = admin_credentials()
    description = f"liaison bench run: host={socket.gethostname()} pid={os.getpid()}"
    await api.request("PUT", f"/vhosts/{quote(vhost, safe='')}", {"description": description})
    await api.put_permission(Permission(user, vhost, ".*", ".*", ".*"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def remove_stale_runs(api: ManagementClient) -> list[str]:
    """Delete the vhosts, and their partner users (``bench-<run id>-…``), of bench runs on
    this host whose process is gone; the names deleted. A run killed outright (a test's
    timeout, a CI run stopped) never tears down, and on 2026-11-24 a handful of such vhosts
    used up the node's file handles: every new connection then hung in its handshake."""
    host = socket.gethostname()
    stale = []
    for vhost in await api.request("GET", "/vhosts") or []:
        found = _RUN_DESCRIPTION.fullmatch(vhost.get("description") or "")
        if found and found[1] == host and not _alive(int(found[2])):
            stale.append(vhost["name"])
    if stale:
        users = [user.name for user in await api.users()]
        for name in stale:
            prefix = f"bench-{name.rsplit('-', 1)[-1]}-"
            for user in users:
                if user.startswith(prefix):
                    await api.delete_user(user)
            await api.delete_vhost(name)
    return stale


async def create_partner(api: ManagementClient, vhost: str, account: str) -> None:
    """A partner user: write on the ingress exchange only, as provisioning grants."""
    await api.put_user(account, password_hash(PARTNER_PASSWORD), HASHING_ALGORITHM)
    await api.put_permission(Permission(account, vhost, "^$", r"^liaison\.ingress$", "^$"))


async def start_shovel(
    api: ManagementClient,
    vhost: str,
    name: str,
    src: str,
    *,
    dest_queue: str = "",
    dest_exchange: str = "",
) -> None:
    """A dynamic shovel moving what ``src`` holds into ``dest_queue``, or through
    ``dest_exchange`` with each message's own routing key and headers, until deleted.

    It never deletes itself: with ``src-delete-after: queue-length`` a shovel that had not
    moved everything (a requeue, a restart) went away with messages left and the round waited
    out its time limit. The round ends on the queue counts; ``delete_shovel`` then removes it.
    """
    uri = "amqp:///" + quote(vhost, safe="")  # the broker's own node; no credentials
    dest = {"dest-queue": dest_queue} if dest_queue else {"dest-exchange": dest_exchange}
    await api.put_shovel(
        vhost,
        name,
        {
            "src-protocol": "amqp091",
            "src-uri": uri,
            "src-queue": src,
            "dest-protocol": "amqp091",
            "dest-uri": uri,
            **dest,
            "ack-mode": "on-confirm",
            "src-delete-after": "never",
        },
    )


async def shovel_state(api: ManagementClient, vhost: str, name: str) -> str | None:
    """The shovel's state as the broker reports it (``starting``, ``running``,
    ``terminated``), or None once it is gone."""
    shovels = await api.request("GET", f"/shovels/{quote(vhost, safe='')}") or []
    for shovel in shovels:
        if shovel.get("name") == name:
            return str(shovel.get("state"))
    return None


async def delete_shovel(
    api: ManagementClient, vhost: str, name: str, limit_seconds: float = 30.0
) -> None:
    """Delete the shovel and wait until the broker no longer runs it.

    Only then may its source queue go: a queue deleted under a shovel that is still finishing
    is declared again by the shovel, as a classic queue, which breaks the next round.
    """
    path = f"/parameters/shovel/{quote(vhost, safe='')}/{quote(name, safe='')}"
    with contextlib.suppress(BrokerNotFound):
        await api.request("DELETE", path)
    deadline = asyncio.get_running_loop().time() + limit_seconds
    while await shovel_state(api, vhost, name) is not None:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"shovel {name} still present {limit_seconds:.0f}s after deletion")
        await asyncio.sleep(0.1)


class ShovelWatch(Background):
    """Polls a shovel's state in the background: ``alive()`` is False once it terminated or
    vanished, so a round fails at once instead of waiting out its time limit."""

    def __init__(self, api: ManagementClient, vhost: str, name: str, interval: float = 0.5):
        self._api, self._vhost, self._name, self._interval = api, vhost, name, interval
        self.state: str | None = "starting"

    def alive(self) -> bool:
        return self.state is not None and self.state != "terminated"

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            with contextlib.suppress(LiaisonError):
                self.state = await shovel_state(self._api, self._vhost, self._name)


class Counter:
    """Ready-message counts by passive declare: exact and immediate, unlike the management
    API's statistics, which refresh every few seconds."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._connection: aiormq.abc.AbstractConnection | None = None
        self._channel: aiormq.abc.AbstractChannel | None = None

    async def open(self) -> "Counter":
        self._connection = await aiormq.connect(self._url)
        self._channel = await self._connection.channel()
        return self

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def count(self, queue: str) -> int:
        assert self._channel is not None
        ok = await self._channel.queue_declare(queue, passive=True)
        return int(ok.message_count or 0)

    async def total(self, queues: Iterable[str]) -> int:
        return sum([await self.count(q) for q in queues])

    async def declare(self, queue: str) -> None:
        assert self._channel is not None
        await self._channel.queue_declare(queue, durable=True, arguments=QUORUM)

    async def declare_copy_counter(self, exchange: str) -> None:
        """Declare ``COPY_QUEUE`` and bind it with '#' to ``exchange``."""
        assert self._channel is not None
        await self.declare(COPY_QUEUE)
        await self._channel.queue_bind(COPY_QUEUE, exchange, routing_key="#")

    async def delete(self, queue: str) -> None:
        assert self._channel is not None
        await self._channel.queue_delete(queue)

    async def purge(self, queue: str) -> None:
        assert self._channel is not None
        await self._channel.queue_purge(queue)


async def wait_until(
    counter: Counter,
    *,
    source: list[str],
    source_total: int,
    dest: list[str],
    dest_total: int,
    limit_seconds: float,
    interval: float = 0.01,
    extra: tuple[list[str], int] | None = None,
    on_start: Callable[[], None] | None = None,
    alive: Callable[[], bool] | None = None,
) -> tuple[float, float]:
    """(start, end) monotonic times: when ``source`` first shrinks below ``source_total`` and
    when it is empty and ``dest`` holds ``dest_total`` (and ``extra`` queues their total)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_seconds
    start: float | None = None
    while True:
        now = loop.time()
        if alive is not None and not alive():
            raise RuntimeError(
                f"the mover stopped before the queue was drained: source "
                f"{await counter.total(source)}, dest {await counter.total(dest)} of {dest_total}"
            )
        if now > deadline:
            raise TimeoutError(
                f"not drained in {limit_seconds:.0f}s: source {await counter.total(source)}, "
                f"dest {await counter.total(dest)} of {dest_total}"
            )
        remaining = await counter.total(source)
        if start is None and remaining < source_total:
            start = now
            if on_start is not None:
                on_start()
        if (
            remaining == 0
            and await counter.total(dest) >= dest_total
            and (extra is None or await counter.total(extra[0]) >= extra[1])
        ):
            end = loop.time()
            return (start if start is not None else end), end
        await asyncio.sleep(interval)
