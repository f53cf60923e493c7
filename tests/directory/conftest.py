"""Fixtures for provisioning tests: a throwaway vhost per module and uniquely named partners.

Broker users are global (not per vhost), so every organisation and hub account a test creates
carries the module's random tag, and the module's teardown deletes those users with the vhost.
"""

import secrets
from collections.abc import AsyncIterator, Callable

import aiormq
import aiormq.exceptions
import pytest

from liaison.directory.settings import ProvisionSettings, load_settings
from tests.conftest import (
    ADMIN_AMQP_URL,
    MANAGEMENT_URL,
    _admin_credentials,
    admin_client,
)


def directory_text(tag: str, orgs: list[str], *, extra: str = "") -> str:
    """A small valid directory file naming ``orgs`` (each suffixed with ``tag``)."""
    parts = [
        f'version = 1\nhub_account = "hub-{tag}"\noperator_account = "operator-{tag}"\n'
        f'ledger_account = "ledger-{tag}"\n'
    ]
    for org in orgs:
        parts.append(
            f'# {org} comes first\n[[organisations]]\nid = "{org}-{tag}"\n'
            f'name = "Organisation {org}"\nkind = "ngo"\nroles = ["demining"]\n'
        )
    parts.append(
        '[[rules]]\ndescription = "everyone reports sitreps"\ntypes = ["sitrep"]\n'
        "senders = { any = true }\nrecipients = { any = true }\n"
    )
    return "\n".join(parts) + extra


@pytest.fixture(scope="module")
def tag() -> str:
    """A random suffix for this module's vhost, organisations and hub account."""
    return secrets.token_hex(3)


@pytest.fixture(scope="module")
async def broker_vhost(tag: str) -> AsyncIterator[str]:
    """A vhost name for this module; the vhost and the module's users are deleted afterwards."""
    name = f"liaison-test-dir-{tag}"
    yield name
    async with admin_client() as api:
        await api.delete_vhost(name)
        for user in await api.users():
            if user.name.endswith(f"-{tag}"):
                await api.delete_user(user.name)


@pytest.fixture(scope="module")
def make_settings(
    tmp_path_factory: pytest.TempPathFactory, broker_vhost: str
) -> Callable[..., ProvisionSettings]:
    """Build settings for the module's vhost with a module-wide credentials directory."""
    user, password = _admin_credentials()
    credentials = tmp_path_factory.mktemp("credentials") / "store"

    def build(**overrides: str) -> ProvisionSettings:
        env = {
            "LIAISON_VHOST": broker_vhost,
            "LIAISON_MANAGEMENT_URL": MANAGEMENT_URL,
            "LIAISON_ADMIN_USER": user,
            "LIAISON_ADMIN_PASSWORD": password,
            "LIAISON_AMQP_URL": ADMIN_AMQP_URL,
            "LIAISON_CREDENTIALS_DIR": str(credentials),
            **overrides,
        }
        return load_settings(env)

    return build


@pytest.fixture(scope="module")
def settings(make_settings: Callable[..., ProvisionSettings]) -> ProvisionSettings:
    """Settings for the module's vhost."""
    return make_settings()


async def login_refused(url: str) -> bool:
    """Whether the broker refuses to log in with ``url``'s credentials.

    Uses aiormq directly: a failed ``aio_pika.connect`` leaves an un-awaited close coroutine
    behind, which pytest reports as an unraisable exception in some later test.
    """
    try:
        connection = await aiormq.connect(url)
    except aiormq.exceptions.ProbableAuthenticationError:
        return True
    await connection.close()
    return False
