"""Inbox length limits as the broker enforces them (limits.py): arguments, policies, operator
policies, read by the hub's own account over the management API."""

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from liaison.common.errors import BrokerError, ConfigError
from liaison.common.settings import Secret
from liaison.directory.credentials import HASHING_ALGORITHM, password_hash
from liaison.directory.definitions import HUB_TAGS, hub_permission
from liaison.directory.index import DirectoryIndex
from liaison.directory.management import ManagementClient, Policy
from liaison.hub.consumer import HubConsumer
from liaison.hub.limits import UNLIMITED, LimitReader, effective_limits
from liaison.hub.memory import LocalMemory
from liaison.hub.metrics import HubMetrics
from liaison.hub.router import Router
from liaison.hub.settings import HubSettings
from liaison.schemas.wire import flash_inbox_queue, inbox_queue
from tests.conftest import MANAGEMENT_URL, admin_client, amqp_url_for
from tests.hub.conftest import hub_settings

ARGS = {"x-queue-type": "quorum", "x-max-length": 100, "x-overflow": "reject-publish"}


def policy(pattern: str, definition: dict[str, object], apply_to: str = "queues") -> Policy:
    """A policy as the management API lists it."""
    return Policy(name="p", pattern=pattern, definition=definition, apply_to=apply_to)


def test_the_lowest_of_the_argument_and_every_matching_policy_is_the_limit() -> None:
    """A policy or operator policy lowers the argument's limit; a higher one does not raise it;
    a policy for exchanges, or one whose pattern does not match, changes nothing."""
    queues = dict.fromkeys(("inbox.a", "inbox.b", "inbox.c", "inbox.d"), ARGS)
    limits = effective_limits(
        {**queues, "liaison.ledger": {"x-queue-type": "quorum"}},
        [
            policy(r"^inbox\.a$", {"max-length": 7}),
            policy(r"^inbox\.b$", {"max-length": 5000}),
            policy(r"inbox\.c", {"max-length": 3}, apply_to="exchanges"),
            policy(r"^inbox\.d", {"delivery-limit": 3}),
            policy(r"^inbox\.d", {"max-length": 9}),  # an operator policy, say
            policy(r"^inbox\.x$", {"max-length": 1}),
        ],
    )
    assert limits == {
        "inbox.a": 7,
        "inbox.b": 100,
        "inbox.c": 100,
        "inbox.d": 9,
        "liaison.ledger": UNLIMITED,
    }


def test_a_byte_limit_or_an_unreadable_pattern_makes_the_limit_unknown() -> None:
    """The hub counts messages, not bytes; it cannot tell what a pattern it cannot compile
    matches, nor what a limit that is not a count means: the limit is unknown (the guard then
    refuses)."""
    queues = {"inbox.a": ARGS, "inbox.b": ARGS, "inbox.c": {**ARGS, "x-max-length-bytes": 10}}
    assert effective_limits(queues, [policy("^inbox\\.a$", {"max-length-bytes": 1000})]) == {
        "inbox.a": None,
        "inbox.b": 100,
        "inbox.c": None,
    }
    unreadable = policy("^inbox(?<!x", {"max-length": 50})
    assert effective_limits(queues, [unreadable]) == dict.fromkeys(queues)
    malformed = policy("^inbox\\.b$", {"max-length": "ten"})
    assert effective_limits(queues, [malformed])["inbox.b"] is None


@pytest.fixture
async def hub_account(vhost: str) -> AsyncIterator[tuple[str, str]]:
    """A broker account with the hub's rights and tags, as provisioning gives them."""
    account, password = f"t-limits-{secrets.token_hex(3)}", secrets.token_hex(12)
    async with admin_client() as api:
        await api.put_user(account, password_hash(password), HASHING_ALGORITHM, HUB_TAGS)
        await api.put_permission(hub_permission(account, vhost))
    yield account, password
    async with admin_client() as api:
        await api.delete_user(account)


@pytest.mark.broker
async def test_the_hub_account_reads_policies_and_operator_policies_but_cannot_set_them(
    hub_account: tuple[str, str], topology: str, vhost: str, directory_file: Path
) -> None:
    """With its management tag the hub's account sees a policy and an operator policy that
    shrink two inboxes (at once, not a statistics interval later), and may not set policies."""
    account, password = hub_account
    settings = HubSettings(
        amqp_url=amqp_url_for(vhost, account, password),
        directory=directory_file,
        management_url=MANAGEMENT_URL,
    )
    shrunk, capped = inbox_queue("halo-trust"), flash_inbox_queue("unmas")
    async with admin_client() as api:
        await api.put_policy(
            vhost, "t-limits", f"^{shrunk}$".replace(".", "\\."), {"max-length": 7}
        )
        await api.put_operator_policy(
            vhost, "t-limits-op", f"^{capped}$".replace(".", "\\."), {"max-length": 5}
        )
    try:
        reading = await LimitReader(settings, account)()
        limits = reading.limits
        async with ManagementClient(MANAGEMENT_URL, account, Secret(password)) as hub_api:
            with pytest.raises(BrokerError):
                await hub_api.put_policy(vhost, "t-limits-hub", "^inbox", {"max-length": 1})
    finally:
        async with admin_client() as api:
            await api.delete_policy(vhost, "t-limits")
            await api.delete_operator_policy(vhost, "t-limits-op")
    assert limits[shrunk] == 7
    assert limits[capped] == 5
    untouched = inbox_queue("unmas")
    assert 7 < (limits[untouched] or 0) < UNLIMITED
    restored = (await LimitReader(settings, account)()).limits[shrunk]
    assert (restored or 0) > 7, "a deleted policy no longer counts"


@pytest.mark.broker
async def test_a_hub_whose_account_cannot_read_the_limits_stops_naming_the_fix(
    vhost: str, topology: str, directory: DirectoryIndex, directory_file: Path
) -> None:
    """Transaction mode without the management tag: the hub stops at once with a ConfigError
    that says what to do, instead of refusing every copy for an unknown limit."""
    account, password = f"t-untagged-{secrets.token_hex(3)}", secrets.token_hex(12)
    async with admin_client() as api:
        await api.put_user(account, password_hash(password), HASHING_ALGORITHM)
        await api.put_permission(hub_permission(account, vhost))
    try:
        settings = hub_settings(
            amqp_url_for(vhost, account, password), directory_file, delivery="transaction"
        )
        router = Router(directory, max_message_bytes=settings.max_message_bytes)
        memory = LocalMemory(seconds=60, max_entries=100)
        consumer = HubConsumer(settings, router, memory, HubMetrics())
        with pytest.raises(ConfigError, match="management tag") as caught:
            await asyncio.wait_for(consumer.run(), 30)
        assert password not in str(caught.value)
        assert not consumer.consuming
    finally:
        async with admin_client() as api:
            await api.delete_user(account)


@pytest.mark.broker
async def test_a_transaction_hub_on_quorum_queues_stops_naming_the_queue_type(
    topology: str, directory: DirectoryIndex, directory_file: Path
) -> None:
    """Transaction mode on the quorum-provisioned test vhost: the hub stops at once with a
    ConfigError naming the quorum ledger and dead-letter queues and LIAISON_QUEUE_TYPE=classic,
    before consuming anything."""
    settings = hub_settings(topology, directory_file, delivery="transaction")
    router = Router(directory, max_message_bytes=settings.max_message_bytes)
    consumer = HubConsumer(settings, router, LocalMemory(seconds=60, max_entries=100), HubMetrics())
    with pytest.raises(ConfigError, match="LIAISON_QUEUE_TYPE=classic") as caught:
        await asyncio.wait_for(consumer.run(), 30)
    assert "liaison.ledger is quorum" in str(caught.value)
    assert "liaison.dead-letters is quorum" in str(caught.value)
    assert not consumer.consuming
