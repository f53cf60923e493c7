"""Fixtures shared by the whole suite: a throwaway vhost on the real RabbitMQ per test run.

Broker tests never touch the default vhost: each run creates ``liaison-test-<random>``, grants
the admin user on it, and deletes it (with everything in it) at the end.
"""

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from liaison.common.settings import Secret
from liaison.common.urls import amqp_url_for as _amqp_url_for
from liaison.common.urls import password_of, user_of
from liaison.directory.management import ManagementClient, Permission
from liaison.nodes.node import BrokerNode

ADMIN_AMQP_URL = os.environ.get("LIAISON_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
MANAGEMENT_URL = os.environ.get("LIAISON_TEST_MANAGEMENT_URL", "http://127.0.0.1:15672")


def _admin_credentials() -> tuple[str, str]:
    return user_of(ADMIN_AMQP_URL) or "guest", password_of(ADMIN_AMQP_URL) or "guest"


def amqp_url_for(vhost: str, user: str | None = None, password: str | None = None) -> str:
    """An AMQP URL for ``vhost``, as the admin or as ``user``."""
    admin_user, admin_password = _admin_credentials()
    return _amqp_url_for(ADMIN_AMQP_URL, vhost, user or admin_user, password or admin_password)


def admin_client() -> ManagementClient:
    """The management API client (Liaison's own) as the test admin."""
    user, password = _admin_credentials()
    return ManagementClient(MANAGEMENT_URL, user, Secret(password), timeout=120)


async def management(method: str, path: str, json: object | None = None) -> Any:
    """One management API call as the admin (the decoded answer); raises on a non-2xx answer."""
    async with admin_client() as api:
        return await api.request(method, path, json)


@pytest.fixture(scope="session")
def run_id() -> str:
    """A random suffix that keeps this run's broker objects apart from any other run's."""
    return secrets.token_hex(4)


@pytest.fixture(scope="session")
async def vhost(run_id: str) -> AsyncIterator[str]:
    """A vhost for this test run, deleted with everything in it afterwards."""
    name = f"liaison-test-{run_id}"
    user, _ = _admin_credentials()
    async with admin_client() as api:
        await api.put_vhost(name)
        await api.put_permission(Permission(user, name, ".*", ".*", ".*"))
    yield name
    async with admin_client() as api:
        await api.delete_vhost(name)


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
