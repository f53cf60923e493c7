"""The broker side of a bench run: a throwaway vhost, its users, queues and fast counters.

Everything a run creates carries the run id and is deleted at the end: the vhost (with every
queue and shovel in it) and the partner users, which are global to the broker.
"""

import asyncio
import os
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

import aiormq

from liaison.common.settings import Secret
from liaison.common.urls import amqp_url_for, password_of, user_of
from liaison.directory.credentials import HASHING_ALGORITHM, password_hash
from liaison.directory.management import ManagementClient, Permission

ADMIN_AMQP_URL = os.environ.get("LIAISON_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
MANAGEMENT_URL = os.environ.get("LIAISON_BENCH_MANAGEMENT_URL", "http://127.0.0.1:15672")
PARTNER_PASSWORD = "bench-partner-password"  # noqa: S105 - throwaway users, deleted after the run

QUORUM: dict[str, Any] = {"x-queue-type": "quorum"}


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


async def create_vhost(api: ManagementClient, vhost: str) -> None:
    """The run's vhost, with every right for the admin."""
    user, _ = admin_credentials()
    await api.put_vhost(vhost)
    await api.put_permission(Permission(user, vhost, ".*", ".*", ".*"))


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
    """A dynamic shovel moving what ``src`` holds now into ``dest_queue``, or through
    ``dest_exchange`` with each message's own routing key and headers, then deleting itself."""
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
            "src-delete-after": "queue-length",
        },
    )


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
            raise RuntimeError("the mover's process exited before the queue was drained")
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
