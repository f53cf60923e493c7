"""The partner SDK against the real broker and an in-process hub."""

import asyncio
import time

import aio_pika
import msgspec
import pytest

from liaison.schemas.examples import example
from liaison.schemas.messages.hazards import EoSpotReport, HazardAlert
from liaison.schemas.messages.system import Ack
from liaison.schemas.wire import DEAD_LETTER_QUEUE, DELIVERY_EXCHANGE, inbox_queue
from liaison.sdk import AckLevel, Client, ConnectFailed, Delivery, ErrorCode, InvalidMessage
from liaison.sdk.inbox import Inbox
from tests.hub.conftest import RunningHub
from tests.hub.support import drain
from tests.sdk.conftest import Connect
from tests.sdk.support import force_close, spot_report

pytestmark = pytest.mark.broker


async def next_delivery(inbox: Inbox, within: float = 10.0) -> Delivery:
    """The next delivery, failing the test when none arrives in time."""
    delivery = await inbox.get(within)
    assert delivery is not None, "no delivery arrived"
    return delivery


async def test_send_reaches_recipient_typed(hub: RunningHub, connect: Connect) -> None:
    """A sent report arrives in the recipient's inbox as a typed, validated Delivery."""
    mag, unmas = await connect("mag"), await connect("unmas")
    inbox = await unmas.inbox()
    distribution_id = await mag.send(spot_report(), recipients=["org:unmas"], incident_id="INC-1")
    delivery = await next_delivery(inbox)
    assert isinstance(delivery.body, EoSpotReport)
    assert delivery.type == "hazard.eo_spot_report"
    assert (delivery.sender, delivery.envelope.distribution_id) == ("mag", distribution_id)
    assert delivery.message_id == f"mag/{distribution_id}"
    assert delivery.envelope.incident_id == "INC-1"
    assert not delivery.redelivered
    assert not delivery.flash
    await delivery.ack()


async def test_receipt_goes_back_to_sender(hub: RunningHub, connect: Connect) -> None:
    """A recipient's receipt reaches the original sender's inbox as a typed Ack."""
    mag, unmas = await connect("mag"), await connect("unmas")
    unmas_inbox, mag_inbox = await unmas.inbox(), await mag.inbox()
    distribution_id = await mag.send(spot_report(), recipients=["org:unmas"])
    delivery = await next_delivery(unmas_inbox)
    await delivery.receipt(AckLevel.ACCEPTED, note="team on the way")
    await delivery.ack()
    receipt = await next_delivery(mag_inbox)
    ack = receipt.acknowledgement
    assert isinstance(ack, Ack)
    assert (ack.ref_distribution_id, ack.ref_sender, ack.level) == (
        distribution_id,
        "mag",
        AckLevel.ACCEPTED,
    )
    assert receipt.sender == "unmas"
    assert receipt.envelope.in_reply_to == distribution_id
    await receipt.ack()


async def test_error_reports_are_typed(hub: RunningHub, connect: Connect) -> None:
    """Refusals come back as Refusal objects carrying an ErrorCode and the field path."""
    gov_car = await connect("gov-car")
    inbox = await gov_car.inbox()
    alert = example("hazard.alert").body
    assert isinstance(alert, HazardAlert)
    refused_id = await gov_car.send(alert, recipients=["mission:minusca"])
    doc = msgspec.to_builtins(example("hazard.eo_spot_report"))
    doc.update(sender="gov-car", distribution_id="gov-car-bad-1", recipients=["org:unmas"])
    doc["body"]["quantity"] = 0
    await gov_car.publish_bytes(msgspec.json.encode(doc))
    reports = {}
    for _ in range(2):
        delivery = await next_delivery(inbox)
        report = delivery.error_report
        assert report is not None
        assert delivery.sender == "liaison"
        reports[report.ref_distribution_id] = report
        await delivery.ack()
    assert reports[refused_id].code is ErrorCode.TYPE_NOT_PERMITTED
    invalid = reports["gov-car-bad-1"]
    assert invalid.code is ErrorCode.INVALID_BODY
    assert invalid.field_path == "$.body.quantity"
    assert invalid.info is not None
    assert not invalid.info.retryable


async def test_invalid_message_refused_before_sending(hub: RunningHub, connect: Connect) -> None:
    """send() checks the contract locally and names the offending field."""
    mag = await connect("mag")
    bad = msgspec.structs.replace(spot_report(), quantity=0)
    with pytest.raises(InvalidMessage) as caught:
        await mag.send(bad, recipients=["org:unmas"])
    assert caught.value.field_path == "$.body.quantity"


async def test_duplicates_are_acked_and_skipped(
    hub: RunningHub, connect: Connect, admin: aio_pika.abc.AbstractConnection
) -> None:
    """A second copy with the same message id is acknowledged and never handed out."""
    unmas = await connect("unmas")
    inbox = await unmas.inbox()
    mag = await connect("mag")
    distribution_id = await mag.send(spot_report(), recipients=["org:unmas"])
    first = await next_delivery(inbox)
    await first.ack()
    # What a hub restart between publish and ack would cause: the same delivery again.
    channel = await admin.channel()
    exchange = await channel.get_exchange(DELIVERY_EXCHANGE, ensure=False)
    await exchange.publish(
        aio_pika.Message(msgspec.json.encode(first.envelope), message_id=first.message_id),
        routing_key="unmas",
    )
    await channel.close()
    assert await inbox.get(1.5) is None
    assert inbox.duplicates == 1
    assert first.message_id == f"mag/{distribution_id}"
    assert await drain(admin, inbox_queue("unmas"), expect=0, settle=0.2) == []


async def test_invalid_delivery_is_dead_lettered(
    hub: RunningHub, connect: Connect, admin: aio_pika.abc.AbstractConnection
) -> None:
    """An undecodable delivery is rejected to the dead letters; the iterator carries on."""
    unmas = await connect("unmas")
    inbox = await unmas.inbox()
    channel = await admin.channel()
    exchange = await channel.get_exchange(DELIVERY_EXCHANGE, ensure=False)
    await exchange.publish(aio_pika.Message(b"{not json", message_id="x/garbage"), "unmas")
    await channel.close()
    mag = await connect("mag")
    await mag.send(spot_report(), recipients=["org:unmas"])
    delivery = await next_delivery(inbox)
    assert delivery.sender == "mag"
    await delivery.ack()
    assert inbox.invalid == 1
    dead = await drain(admin, DEAD_LETTER_QUEUE, expect=1)
    assert [m.body for m in dead] == [b"{not json"]


async def test_flash_is_handed_out_first(hub: RunningHub, connect: Connect) -> None:
    """With routine and flash messages waiting, the flash one comes out first."""
    unmas, mission = await connect("unmas"), await connect("minusca")
    for n in range(5):
        await unmas.send(
            spot_report(), recipients=["org:minusca"], distribution_id=f"r-{n}-{time.time_ns()}"
        )
    alert = example("hazard.alert").body
    flash_id = await unmas.send(alert, recipients=["org:minusca"], precedence="flash")
    await asyncio.sleep(1.0)  # everything is in the two queues before anyone reads
    inbox = await mission.inbox()
    await asyncio.sleep(0.3)  # both consumers have filled their buffers
    order = []
    for _ in range(6):
        delivery = await next_delivery(inbox)
        order.append((delivery.flash, delivery.envelope.distribution_id))
        await delivery.ack()
    assert order[0] == (True, flash_id)
    assert [flash for flash, _ in order[1:]] == [False] * 5


async def test_reconnects_after_connection_is_closed(
    hub: RunningHub, connect: Connect, vhost: str, partner_accounts: dict[str, str]
) -> None:
    """After the broker drops its connection the client reconnects, consumes and sends again."""
    unmas, mag = await connect("unmas"), await connect("mag")
    inbox = await unmas.inbox()
    await mag.send(spot_report(), recipients=["org:unmas"])
    await (await next_delivery(inbox)).ack()
    await force_close(vhost, partner_accounts["unmas"])
    await force_close(vhost, partner_accounts["mag"])
    after = await mag.send(spot_report(), recipients=["org:unmas"])
    delivery = await next_delivery(inbox, within=20)
    assert delivery.envelope.distribution_id == after
    await delivery.receipt(AckLevel.PROCESSED)
    await delivery.ack()


async def test_connect_failure_is_one_line(vhost: str) -> None:
    """An unreachable broker or a refused login is a ConnectFailed without the password."""
    with pytest.raises(ConnectFailed) as caught:
        await Client.connect("mag", "amqp://mag:s3cret@127.0.0.1:1/x")
    assert "s3cret" not in str(caught.value)
    assert "\n" not in str(caught.value)
    with pytest.raises(ConnectFailed):
        await Client.connect("mag", f"amqp://nobody:wrong@127.0.0.1:5672/{vhost}")
