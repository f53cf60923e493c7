"""What a provisioned partner may and may not do on the broker, checked by logging in as one."""

from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.exceptions import ChannelPreconditionFailed
from aiormq.exceptions import ChannelAccessRefused

from liaison.common.topology import (
    INBOX_DEAD_LETTER_QUEUE,
    LEDGER_EXCHANGE,
    LEDGER_QUEUE,
    REPLAY_EXCHANGE,
    SHARD_EXCHANGE,
    hub_queue,
)
from liaison.directory.credentials import load_credential
from liaison.directory.index import load_directory
from liaison.directory.provision import provision
from liaison.directory.settings import ProvisionSettings
from liaison.schemas.wire import (
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE,
    DELIVERY_EXCHANGE,
    INGRESS_EXCHANGE,
    inbox_queue,
)
from tests.conftest import amqp_url_for
from tests.directory.conftest import directory_text, login_refused

pytestmark = pytest.mark.broker


async def _ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    """A consumer callback that is never meant to run."""


@pytest.fixture(scope="module")
async def provisioned(
    settings: ProvisionSettings, tag: str, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """Provision partners alpha and bravo (and the hub) into the module's vhost."""
    path = tmp_path_factory.mktemp("dir") / "directory.toml"
    path.write_text(directory_text(tag, ["alpha", "bravo"]))
    result = await provision(settings, load_directory(path))
    assert not result.plan.conflicts
    return settings.vhost


def _password(settings: ProvisionSettings, account: str) -> str:
    return load_credential(account, {"LIAISON_CREDENTIALS_DIR": str(settings.credentials_dir)})


@pytest.fixture
async def alpha(
    provisioned: str, settings: ProvisionSettings, tag: str
) -> AsyncIterator[aio_pika.abc.AbstractConnection]:
    """A connection logged in as partner alpha."""
    account = f"alpha-{tag}"
    url = amqp_url_for(provisioned, account, _password(settings, account))
    connection = await aio_pika.connect(url)
    yield connection
    await connection.close()


async def test_partner_publishes_to_ingress_with_own_key_and_user_id(
    alpha: aio_pika.abc.AbstractConnection, tag: str
) -> None:
    """A partner may publish to the ingress exchange with its own org id and user_id."""
    channel = await alpha.channel()
    ingress = await channel.get_exchange(INGRESS_EXCHANGE, ensure=False)
    message = aio_pika.Message(b"{}", user_id=f"alpha-{tag}")
    await ingress.publish(message, routing_key=f"alpha-{tag}")
    assert not channel.is_closed


async def test_partner_consumes_own_inbox(
    alpha: aio_pika.abc.AbstractConnection, admin_url_for_vhost: str, tag: str
) -> None:
    """A partner may basic.get and consume messages from its own inbox."""
    admin = await aio_pika.connect(admin_url_for_vhost)
    async with admin:
        delivery = await (await admin.channel()).get_exchange(DELIVERY_EXCHANGE, ensure=False)
        await delivery.publish(aio_pika.Message(b"hello"), routing_key=f"alpha-{tag}")
    channel = await alpha.channel()
    inbox = await channel.get_queue(inbox_queue(f"alpha-{tag}"), ensure=False)
    message = await inbox.get(timeout=5, fail=True)
    assert message is not None
    await message.ack()
    assert message.body == b"hello"


@pytest.mark.parametrize(
    "queue",
    ["bravo", "bravo.flash", "hub", DEAD_LETTER_QUEUE, LEDGER_QUEUE],
)
async def test_partner_cannot_read_other_queues(
    alpha: aio_pika.abc.AbstractConnection, tag: str, queue: str
) -> None:
    """Consuming or basic.get-ing another org's inbox, a hub shard, dead letters or the
    ledger's queue is refused."""
    name = {
        "bravo": inbox_queue(f"bravo-{tag}"),
        "bravo.flash": f"inbox.bravo-{tag}.flash",
        "hub": hub_queue(0),
    }.get(queue, queue)
    for attempt in ("get", "consume"):
        channel = await alpha.channel()
        target = await channel.get_queue(name, ensure=False)
        call = target.get(timeout=5, fail=False) if attempt == "get" else target.consume(_ignore)
        with pytest.raises(ChannelAccessRefused):
            await call


async def test_partner_cannot_purge_or_delete_queues(
    alpha: aio_pika.abc.AbstractConnection, tag: str
) -> None:
    """Purging others' queues, and deleting any queue (its own inbox too), is refused."""
    attempts = [(inbox_queue(f"bravo-{tag}"), "purge"), (DEAD_LETTER_QUEUE, "purge")]
    for name in (inbox_queue(f"bravo-{tag}"), inbox_queue(f"alpha-{tag}"), DEAD_LETTER_QUEUE):
        attempts.append((name, "delete"))
    for name, act in attempts:
        channel = await alpha.channel()
        queue = await channel.get_queue(name, ensure=False)
        with pytest.raises(ChannelAccessRefused):
            await (queue.purge(timeout=5) if act == "purge" else queue.delete(timeout=5))


async def test_partner_may_purge_own_inbox(
    alpha: aio_pika.abc.AbstractConnection, tag: str
) -> None:
    """RabbitMQ grants queue.purge with *read*: a partner may empty its own inbox, no other."""
    channel = await alpha.channel()
    queue = await channel.get_queue(inbox_queue(f"alpha-{tag}"), ensure=False)
    await queue.purge(timeout=5)
    assert not channel.is_closed


@pytest.mark.parametrize(
    "exchange", [DELIVERY_EXCHANGE, DEAD_LETTER_EXCHANGE, SHARD_EXCHANGE, "", "amq.topic"]
)
async def test_partner_cannot_publish_beside_ingress(
    alpha: aio_pika.abc.AbstractConnection, tag: str, exchange: str
) -> None:
    """Publishing anywhere but the ingress exchange (delivery, default exchange…) is refused."""
    channel = await alpha.channel()
    target = (
        channel.default_exchange
        if exchange == ""
        else await channel.get_exchange(exchange, ensure=False)
    )
    with pytest.raises(ChannelAccessRefused):
        await target.publish(aio_pika.Message(b"{}"), routing_key=inbox_queue(f"bravo-{tag}"))


async def test_partner_cannot_publish_with_another_orgs_routing_key(
    alpha: aio_pika.abc.AbstractConnection, tag: str
) -> None:
    """The topic permission refuses an ingress routing key other than the partner's own id."""
    for key in (f"bravo-{tag}", "#", f"alpha-{tag}.x", ""):
        channel = await alpha.channel()
        ingress = await channel.get_exchange(INGRESS_EXCHANGE, ensure=False)
        with pytest.raises(ChannelAccessRefused):
            await ingress.publish(aio_pika.Message(b"{}"), routing_key=key)


async def test_partner_cannot_forge_user_id(
    alpha: aio_pika.abc.AbstractConnection, tag: str
) -> None:
    """Publishing with another organisation's user_id is refused with 406 PRECONDITION_FAILED."""
    channel = await alpha.channel()
    ingress = await channel.get_exchange(INGRESS_EXCHANGE, ensure=False)
    with pytest.raises(ChannelPreconditionFailed):
        await ingress.publish(
            aio_pika.Message(b"{}", user_id=f"bravo-{tag}"), routing_key=f"alpha-{tag}"
        )


async def test_partner_cannot_declare_bind_or_delete(
    alpha: aio_pika.abc.AbstractConnection, tag: str
) -> None:
    """Declaring queues or exchanges, binding, and deleting exchanges are all refused."""
    attempts = {
        "declare queue": lambda ch: ch.declare_queue(f"mine-{tag}", durable=True),
        "declare exchange": lambda ch: ch.declare_exchange(f"mine-{tag}", "topic"),
        "delete exchange": lambda ch: ch.exchange_delete(DELIVERY_EXCHANGE),
    }
    for what, attempt in attempts.items():
        channel = await alpha.channel()
        with pytest.raises(ChannelAccessRefused):
            await attempt(channel)
        assert channel.is_closed, what
    channel = await alpha.channel()
    inbox = await channel.get_queue(inbox_queue(f"alpha-{tag}"), ensure=False)
    with pytest.raises(ChannelAccessRefused):
        await inbox.bind(DELIVERY_EXCHANGE, routing_key=f"bravo-{tag}")


async def test_passive_declare_of_own_inbox_is_allowed(
    alpha: aio_pika.abc.AbstractConnection, tag: str
) -> None:
    """RabbitMQ checks no permission on a passive declare, so a partner may check its inbox."""
    channel = await alpha.channel()
    inbox = await channel.declare_queue(inbox_queue(f"alpha-{tag}"), passive=True)
    assert inbox.declaration_result.consumer_count == 0


async def test_passive_declare_reads_any_queues_depth(
    alpha: aio_pika.abc.AbstractConnection, admin_url_for_vhost: str, tag: str
) -> None:
    """What Liaison cannot hide (docs/operations.md): a passive declare needs no permission, so
    a partner learns the depth and consumer count of another organisation's inbox and of the
    hub's shards by name."""
    async with await aio_pika.connect(admin_url_for_vhost) as admin:
        delivery = await (await admin.channel()).get_exchange(DELIVERY_EXCHANGE, ensure=False)
        await delivery.publish(aio_pika.Message(b"for bravo"), routing_key=f"bravo-{tag}")
        channel = await alpha.channel()
        other = await channel.declare_queue(inbox_queue(f"bravo-{tag}"), passive=True)
        assert other.declaration_result.message_count == 1
        shard = await channel.declare_queue(hub_queue(0), passive=True)
        assert shard.declaration_result.message_count is not None
        await (await (await admin.channel()).get_queue(inbox_queue(f"bravo-{tag}"))).purge()


async def test_partner_has_no_management_access(
    provisioned: str, settings: ProvisionSettings, tag: str
) -> None:
    """A partner account carries no tags, so the management API refuses it."""
    from liaison.common.errors import BrokerError
    from liaison.common.settings import Secret
    from liaison.directory.management import ManagementClient

    account = f"alpha-{tag}"
    client = ManagementClient(
        settings.management_url, account, Secret(_password(settings, account))
    )
    async with client as api:
        with pytest.raises(BrokerError, match="refused"):
            await api.users()


async def test_wrong_password_is_refused(provisioned: str, tag: str) -> None:
    """The broker stores only the hash; a wrong password does not log in."""
    assert await login_refused(amqp_url_for(provisioned, f"alpha-{tag}", "not-the-password"))


async def test_hub_reads_shards_and_writes_delivery_only(
    provisioned: str, settings: ProvisionSettings, tag: str
) -> None:
    """The hub consumes its shard queues, cannot read inboxes or dead letters, cannot configure."""
    account = f"hub-{tag}"
    connection = await aio_pika.connect(
        amqp_url_for(provisioned, account, _password(settings, account))
    )
    async with connection:
        channel = await connection.channel()
        shard = await channel.get_queue(hub_queue(1), ensure=False)
        consumer_tag = await shard.consume(_ignore, timeout=5)
        await shard.cancel(consumer_tag)
        delivery = await channel.get_exchange(DELIVERY_EXCHANGE, ensure=False)
        await delivery.publish(aio_pika.Message(b"report"), routing_key=f"bravo-{tag}")
        for name in (inbox_queue(f"bravo-{tag}"), DEAD_LETTER_QUEUE):
            channel = await connection.channel()
            queue = await channel.get_queue(name, ensure=False)
            with pytest.raises(ChannelAccessRefused):
                await queue.get(fail=False, timeout=5)
        channel = await connection.channel()
        with pytest.raises(ChannelAccessRefused):
            await channel.declare_queue(f"hub-own-{tag}")
        channel = await connection.channel()
        ingress = await channel.get_exchange(INGRESS_EXCHANGE, ensure=False)
        with pytest.raises(ChannelAccessRefused):
            await ingress.publish(aio_pika.Message(b"{}"), routing_key=f"alpha-{tag}")


async def test_operator_replays_as_the_original_sender_and_reads_only_dead_letters(
    provisioned: str, settings: ProvisionSettings, tag: str
) -> None:
    """The operators' account may read dead letters and publish with a partner's user_id only."""
    account = f"operator-{tag}"
    connection = await aio_pika.connect(
        amqp_url_for(provisioned, account, _password(settings, account))
    )
    async with connection:
        channel = await connection.channel()
        dead = await channel.get_queue(DEAD_LETTER_QUEUE, ensure=False)
        await dead.get(fail=False, timeout=5)
        ingress = await channel.get_exchange(INGRESS_EXCHANGE, ensure=False)
        replay = aio_pika.Message(b"{}", user_id=f"alpha-{tag}")
        await ingress.publish(replay, routing_key=f"alpha-{tag}")
        assert not channel.is_closed
        for name in (inbox_queue(f"bravo-{tag}"), hub_queue(0)):
            channel = await connection.channel()
            queue = await channel.get_queue(name, ensure=False)
            with pytest.raises(ChannelAccessRefused):
                await queue.get(fail=False, timeout=5)
        channel = await connection.channel()
        delivery = await channel.get_exchange(DELIVERY_EXCHANGE, ensure=False)
        with pytest.raises(ChannelAccessRefused):
            await delivery.publish(aio_pika.Message(b"x"), routing_key=f"bravo-{tag}")


@pytest.fixture
async def ledger(
    provisioned: str, settings: ProvisionSettings, tag: str
) -> AsyncIterator[aio_pika.abc.AbstractConnection]:
    """A connection logged in as the ledger's account."""
    account = f"ledger-{tag}"
    connection = await aio_pika.connect(
        amqp_url_for(provisioned, account, _password(settings, account))
    )
    yield connection
    await connection.close()


async def test_ledger_reads_its_queue_and_answers_into_routine_inboxes(
    ledger: aio_pika.abc.AbstractConnection, admin_url_for_vhost: str, tag: str
) -> None:
    """The ledger's account consumes liaison.ledger and publishes a status report into an
    organisation's routine inbox, where it arrives."""
    channel = await ledger.channel()
    queue = await channel.get_queue(LEDGER_QUEUE, ensure=False)
    consumer_tag = await queue.consume(_ignore, timeout=5)
    await queue.cancel(consumer_tag)
    await queue.get(fail=False, timeout=5)
    async with await aio_pika.connect(admin_url_for_vhost) as admin:
        inbox = await (await admin.channel()).get_queue(inbox_queue(f"bravo-{tag}"))
        await inbox.purge()  # what other tests of the module left there
        delivery = await channel.get_exchange(DELIVERY_EXCHANGE, ensure=False)
        await delivery.publish(aio_pika.Message(b"status.report"), routing_key=f"bravo-{tag}")
        assert not channel.is_closed
        got = await inbox.get(timeout=5, fail=True)
        assert got is not None
        await got.ack()
        assert got.body == b"status.report"


@pytest.mark.parametrize(
    "queue", ["alpha", "alpha.flash", "hub", DEAD_LETTER_QUEUE, INBOX_DEAD_LETTER_QUEUE]
)
async def test_ledger_cannot_read_other_queues(
    ledger: aio_pika.abc.AbstractConnection, tag: str, queue: str
) -> None:
    """The ledger's account reads no inbox, shard or dead-letter queue: only its own."""
    name = {
        "alpha": inbox_queue(f"alpha-{tag}"),
        "alpha.flash": f"inbox.alpha-{tag}.flash",
        "hub": hub_queue(0),
    }.get(queue, queue)
    for attempt in ("get", "consume"):
        channel = await ledger.channel()
        target = await channel.get_queue(name, ensure=False)
        call = target.get(timeout=5, fail=False) if attempt == "get" else target.consume(_ignore)
        with pytest.raises(ChannelAccessRefused):
            await call


@pytest.mark.parametrize(
    ("exchange", "key"),
    [
        (DELIVERY_EXCHANGE, "bravo-{tag}.flash"),
        (DELIVERY_EXCHANGE, "#"),
        (DELIVERY_EXCHANGE, ""),
        (INGRESS_EXCHANGE, "alpha-{tag}"),
        (DEAD_LETTER_EXCHANGE, ""),
        (REPLAY_EXCHANGE, "inbox.bravo-{tag}"),
        (LEDGER_EXCHANGE, ""),
        ("", "inbox.bravo-{tag}"),
    ],
)
async def test_ledger_cannot_publish_beside_routine_deliveries(
    ledger: aio_pika.abc.AbstractConnection, tag: str, exchange: str, key: str
) -> None:
    """Anything but liaison.delivery with one organisation's id as the key is refused: no flash
    inbox, no ingress, no dead letters, no replays, no records, no default exchange."""
    channel = await ledger.channel()
    target = (
        channel.default_exchange
        if exchange == ""
        else await channel.get_exchange(exchange, ensure=False)
    )
    with pytest.raises(ChannelAccessRefused):
        await target.publish(aio_pika.Message(b"{}"), routing_key=key.format(tag=tag))


async def test_ledger_bcc_keys_escape_the_topic_permission(
    ledger: aio_pika.abc.AbstractConnection, admin_url_for_vhost: str, tag: str
) -> None:
    """What the ledger's topic permission cannot stop (docs/operations.md): RabbitMQ 3.10 checks
    the routing key only, not the keys of a BCC header, so a BCC reaches a flash inbox."""
    channel = await ledger.channel()
    delivery = await channel.get_exchange(DELIVERY_EXCHANGE, ensure=False)
    flash = f"inbox.bravo-{tag}.flash"
    await delivery.publish(
        aio_pika.Message(b"bcc", headers={"BCC": [f"bravo-{tag}.flash"]}),
        routing_key=f"alpha-{tag}",
    )
    async with await aio_pika.connect(admin_url_for_vhost) as admin:
        admin_channel = await admin.channel()
        for name in (flash, inbox_queue(f"alpha-{tag}")):
            queue = await admin_channel.get_queue(name, ensure=False)
            got = await queue.get(timeout=5, fail=True)
            assert got is not None, name
            assert got.body == b"bcc", name
            await queue.purge()


async def test_ledger_cannot_impersonate_configure_or_manage(
    ledger: aio_pika.abc.AbstractConnection, provisioned: str, settings: ProvisionSettings, tag: str
) -> None:
    """The ledger's account may not publish as a partner (no impersonator tag: replays are the
    operators'), declare, delete or purge a queue, or use the management API."""
    from liaison.common.errors import BrokerError
    from liaison.common.settings import Secret
    from liaison.directory.management import ManagementClient

    channel = await ledger.channel()
    delivery = await channel.get_exchange(DELIVERY_EXCHANGE, ensure=False)
    with pytest.raises(ChannelPreconditionFailed):
        await delivery.publish(
            aio_pika.Message(b"{}", user_id=f"alpha-{tag}"), routing_key=f"bravo-{tag}"
        )
    attempts = {
        "declare queue": lambda ch: ch.declare_queue(f"ledger-own-{tag}", durable=True),
        "delete queue": lambda ch: ch.queue_delete(LEDGER_QUEUE),
    }
    for what, attempt in attempts.items():
        channel = await ledger.channel()
        with pytest.raises(ChannelAccessRefused):
            await attempt(channel)
        assert channel.is_closed, what
    channel = await ledger.channel()
    inbox = await channel.get_queue(inbox_queue(f"alpha-{tag}"), ensure=False)
    with pytest.raises(ChannelAccessRefused):
        await inbox.purge(timeout=5)
    account = f"ledger-{tag}"
    client = ManagementClient(
        settings.management_url, account, Secret(_password(settings, account))
    )
    async with client as api:
        with pytest.raises(BrokerError, match="refused"):
            await api.users()


@pytest.fixture(scope="module")
def admin_url_for_vhost(provisioned: str) -> str:
    """The admin's AMQP URL on the module's vhost."""
    return amqp_url_for(provisioned)
