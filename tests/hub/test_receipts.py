"""Receipts: an ack goes through only when it refers to a message its sender received."""

from typing import Any

import aio_pika
import pytest

from liaison.hub.consumer import HubConsumer
from liaison.schemas.wire import DEAD_LETTER_QUEUE, HEADER_ERROR_CODE, inbox_queue
from tests.hub.memory_support import memory_hub
from tests.hub.support import Partner, decode, drain, envelope

__all__ = ["memory_hub"]  # the fixture, imported so pytest finds it here

pytestmark = pytest.mark.broker

Admin = aio_pika.abc.AbstractConnection


def ack_of(acker: str, ref_sender: str, ref_distribution_id: str) -> dict[str, Any]:
    """``acker``'s ack of ``ref_sender``'s message ``ref_distribution_id``."""
    return envelope(
        acker,
        [f"org:{ref_sender}"],
        body={
            "type": "ack",
            "ref_distribution_id": ref_distribution_id,
            "ref_sender": ref_sender,
            "level": "received",
            "note": "n" * 4000,
        },
    )


async def assert_refused_not_received(admin: Admin, acker: str, ref_sender: str) -> None:
    """The acker got one 207 report naming the referenced id's path; the ack went nowhere."""
    (got,) = await drain(admin, inbox_queue(acker), expect=1)
    report = decode(got)["body"]
    assert report["type"] == "error.report"
    assert report["code"] == 207
    assert report["field_path"] == "$.body.ref_distribution_id"
    assert report["ref_type"] == "ack"
    assert await drain(admin, inbox_queue(ref_sender), expect=0) == []
    (dead,) = await drain(admin, DEAD_LETTER_QUEUE, expect=1)
    assert dead.headers[HEADER_ERROR_CODE] == 207


async def test_ack_of_a_message_never_sent_is_refused(
    memory_hub: HubConsumer, partners: dict[str, Partner], admin: Admin
) -> None:
    """An ack naming a message that does not exist is refused with 207 and never delivered."""
    await partners["unmas"].send(ack_of("unmas", "mag", "mag-never-sent-0001"))
    await assert_refused_not_received(admin, "unmas", "mag")


async def test_ack_of_a_message_delivered_to_someone_else_is_refused(
    memory_hub: HubConsumer, partners: dict[str, Partner], admin: Admin
) -> None:
    """Only a recipient may acknowledge: another organisation's ack of it is refused."""
    original = envelope("mag", ["org:unmas"])
    await partners["mag"].send(original)
    assert len(await drain(admin, inbox_queue("unmas"), expect=1)) == 1
    await partners["nrc"].send(ack_of("nrc", "mag", original["distribution_id"]))
    await assert_refused_not_received(admin, "nrc", "mag")


async def test_ack_naming_the_wrong_sender_is_refused(
    memory_hub: HubConsumer, partners: dict[str, Partner], admin: Admin
) -> None:
    """A real recipient acking a real id under another sender's name is refused."""
    original = envelope("mag", ["org:unmas"])
    await partners["mag"].send(original)
    assert len(await drain(admin, inbox_queue("unmas"), expect=1)) == 1
    await partners["unmas"].send(ack_of("unmas", "ocha", original["distribution_id"]))
    await assert_refused_not_received(admin, "unmas", "ocha")


async def test_ack_of_a_message_received_goes_through(
    memory_hub: HubConsumer, partners: dict[str, Partner], admin: Admin
) -> None:
    """A recipient's ack of a message it was delivered reaches the original sender."""
    original = envelope("mag", ["org:unmas", "org:ocha"])
    await partners["mag"].send(original)
    assert len(await drain(admin, inbox_queue("unmas"), expect=1)) == 1
    await partners["unmas"].send(ack_of("unmas", "mag", original["distribution_id"]))
    (got,) = await drain(admin, inbox_queue("mag"), expect=1)
    doc = decode(got)
    assert doc["body"]["type"] == "ack"
    assert doc["body"]["ref_distribution_id"] == original["distribution_id"]
    assert await drain(admin, DEAD_LETTER_QUEUE, expect=0) == []
