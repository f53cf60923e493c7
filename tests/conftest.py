"""Fixtures shared by the whole suite: a throwaway vhost on the real RabbitMQ per test run.

Broker tests never touch the default vhost: each run creates ``liaison-test-<random>``, grants
the admin user on it, and deletes it (with everything in it) at the end.
"""

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
import pytest

from liaison.nodes.node import BrokerNode

ADMIN_AMQP_URL = os.environ.get("LIAISON_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
MANAGEMENT_URL = os.environ.get("LIAISON_TEST_MANAGEMENT_URL", "http://127.0.0.1:15672")


def _admin_credentials() -> tuple[str, str]:
    parts = urlsplit(ADMIN_AMQP_URL)
    return parts.username or "guest", parts.password or "guest"


def amqp_url_for(vhost: str, user: str | None = None, password: str | None = None) -> str:
    """An AMQP URL for ``vhost``, as the admin or as ``user``."""
    parts = urlsplit(ADMIN_AMQP_URL)
    admin_user, admin_password = _admin_credentials()
    netloc = f"{quote(user or admin_user, safe='')}:{quote(password or admin_password, safe='')}"
    netloc += f"@{parts.hostname}:{parts.port or 5672}"
    return urlunsplit((parts.scheme, netloc, "/" + quote(vhost, safe=""), "", ""))


async def management(method: str, path: str, json: object | None = None) -> object:
    """Call the management HTTP API as the admin; raise on a non-2xx answer."""
    user, password = _admin_credentials()
    async with (
        aiohttp.ClientSession(
            headers={"Authorization": aiohttp.encode_basic_auth(user, password)}
        ) as session,
        session.request(method, f"{MANAGEMENT_URL}/api{path}", json=json) as response,
    ):
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {await response.text()}")
        if response.content_type == "application/json":
            return await response.json()
        return None


@pytest.fixture(scope="session")
def run_id() -> str:
    """A random suffix that keeps this run's broker objects apart from any other run's."""
    return secrets.token_hex(4)


@pytest.fixture(scope="session")
async def vhost(run_id: str) -> AsyncIterator[str]:
    """A vhost for this test run, deleted with everything in it afterwards."""
    name = f"liaison-test-{run_id}"
    user, _ = _admin_credentials()
    await management("PUT", f"/vhosts/{quote(name, safe='')}")
    await management(
        "PUT",
        f"/permissions/{quote(name, safe='')}/{quote(user, safe='')}",
        {"configure": ".*", "write": ".*", "read": ".*"},
    )
    yield name
    await management("DELETE", f"/vhosts/{quote(name, safe='')}")


@pytest.fixture(scope="session")
def admin_url(vhost: str) -> str:
    """The admin's AMQP URL on this run's vhost."""
    return amqp_url_for(vhost)


@pytest.fixture
def anyio_backend() -> Iterator[str]:
    """Only asyncio is used."""
    return "asyncio"


# --- extra broker nodes ----------------------------------------------------------------------


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that starts an extra broker node talks to a broker and takes seconds: mark it."""
    for item in items:
        if "extra_node" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.broker)
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def extra_node() -> Iterator[BrokerNode]:
    """A RabbitMQ node beside the one on 5672 (management on), stopped and removed afterwards."""
    with BrokerNode.start(prefix="liaison-test") as node:
        yield node
