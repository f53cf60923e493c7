"""The one mapping from library errors (aiormq, aio-pika, aiohttp) onto Liaison's tree."""

import aio_pika
import aiohttp
import aiormq.exceptions
import pytest
from pamqp.commands import Basic

from liaison.common.errors import (
    BrokerAccessRefused,
    BrokerError,
    BrokerNotFound,
    BrokerPreconditionFailed,
    BrokerTimeout,
    BrokerUnreachable,
    ConfigError,
    DeliveryRefused,
    broker_errors,
)
from liaison.common.settings import Secret
from liaison.directory.management import ManagementClient
from tests.conftest import amqp_url_for
from tests.hub_process import free_port


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (aiormq.exceptions.ProbableAuthenticationError("bad login"), BrokerAccessRefused),
        (aiormq.exceptions.ChannelAccessRefused("403"), BrokerAccessRefused),
        (aiormq.exceptions.ChannelNotFoundEntity("404"), BrokerNotFound),
        (aiormq.exceptions.ChannelPreconditionFailed("406"), BrokerPreconditionFailed),
        (aiormq.exceptions.DeliveryError(None, Basic.Nack(delivery_tag=1)), DeliveryRefused),
        (aiormq.exceptions.ConnectionClosed(320, "forced"), BrokerUnreachable),
        (aiormq.exceptions.ChannelInvalidStateError("closed"), BrokerUnreachable),
        (aiohttp.ServerDisconnectedError(), BrokerUnreachable),
        (aiohttp.ClientPayloadError("cut"), BrokerError),
        (ConnectionRefusedError(111, "refused"), BrokerUnreachable),
        (TimeoutError(), BrokerTimeout),
    ],
)
def test_library_errors_become_the_most_specific_broker_error(
    raised: BaseException, expected: type[BrokerError]
) -> None:
    """Each library error becomes exactly the matching class, naming what was being done."""
    with pytest.raises(BrokerError) as caught, broker_errors("doing the thing"):
        raise raised
    assert type(caught.value) is expected
    assert str(caught.value).startswith("doing the thing: ")
    assert caught.value.__suppress_context__


@pytest.mark.parametrize("raised", [ValueError("mine"), ConfigError("LIAISON_X: bad")])
def test_other_errors_pass_through_unchanged(raised: Exception) -> None:
    """Liaison's own errors and unrelated ones are not translated."""
    with pytest.raises(type(raised)) as caught, broker_errors("doing the thing"):
        raise raised
    assert caught.value is raised


@pytest.mark.broker
async def test_real_failures_are_translated(vhost: str) -> None:
    """Against the real broker: a closed port, a wrong password, a missing queue and an
    unreachable management API each come out as their Liaison error."""
    with pytest.raises(BrokerUnreachable), broker_errors("connecting"):
        await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{free_port()}/", timeout=5)
    with pytest.raises(BrokerAccessRefused), broker_errors("logging in"):
        await aiormq.connect(amqp_url_for(vhost, "nobody-here", "wrong"))
    async with await aio_pika.connect(amqp_url_for(vhost)) as connection:
        channel = await connection.channel()
        with pytest.raises(BrokerNotFound), broker_errors("counting"):
            await channel.declare_queue("no-such-queue", passive=True)
    client = ManagementClient(f"http://127.0.0.1:{free_port()}", "guest", Secret("guest"))
    async with client as api:
        with pytest.raises(BrokerUnreachable, match="cannot reach the management API"):
            await api.users()
