"""Copies that expire unread in an inbox: the sender gets a 401 naming the recipient."""

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from liaison.directory.index import DirectoryIndex
from liaison.hub.consumer import HubConsumer
from liaison.hub.expiry import InboxDeadLetters, expired_copy
from liaison.schemas.wire import (
    DEAD_LETTER_QUEUE,
    HEADER_ERROR_CODE,
    HEADER_SENDER,
    flash_inbox_queue,
    inbox_queue,
)
from tests.hub.conftest import hub_settings
from tests.hub.memory_support import memory_hub
from tests.hub.support import Partner, decode, drain, envelope, now_iso

__all__ = ["memory_hub"]  # the fixture, imported so pytest finds it here

Admin = aio_pika.abc.AbstractConnection


def dead_letter_headers(**overrides: Any) -> dict[str, Any]:
    """Headers of a copy the broker dead-lettered from unmas's inbox for expiry."""
    headers: dict[str, Any] = {
        "x-first-death-reason": "expired",
        "x-first-death-queue": "inbox.unmas",
        HEADER_SENDER: "mag",
    }
    headers.update(overrides)
    return headers


def test_expired_copy_names_sender_recipient_and_message(directory: DirectoryIndex) -> None:
    """An expired copy yields a 401 to its sender naming the recipient as an address."""
    refusal = expired_copy(dead_letter_headers(), "mag/d-1", "hazard.alert", directory)
    assert refusal is not None
    assert int(refusal.code) == 401
    assert refusal.reply_to == "mag"
    assert refusal.refused_recipients == ("unmas",)
    assert refusal.refused_addresses == ("org:unmas",)
    assert (refusal.distribution_id, refusal.message_type) == ("d-1", "hazard.alert")
    flash = expired_copy(
        dead_letter_headers(**{"x-first-death-queue": "inbox.unmas.flash"}),
        "mag/d-2",
        None,
        directory,
    )
    assert flash is not None
    assert flash.refused_addresses == ("org:unmas",)


@pytest.mark.parametrize(
    "headers",
    [
        dead_letter_headers(**{"x-first-death-reason": "rejected"}),
        dead_letter_headers(**{"x-first-death-reason": "delivery_limit"}),
        dead_letter_headers(**{"x-first-death-reason": b"expired"}),
        dead_letter_headers(**{"x-first-death-queue": "liaison.dead-letters"}),
        dead_letter_headers(**{"x-first-death-queue": "inbox.nobody"}),
        dead_letter_headers(**{"x-first-death-queue": 7}),
        dead_letter_headers(**{HEADER_SENDER: "liaison"}),
        dead_letter_headers(**{HEADER_SENDER: "not-an-org"}),
        dead_letter_headers(**{HEADER_SENDER: ["mag"]}),
        {},
    ],
)
def test_anything_but_an_expired_partner_copy_gets_no_report(
    headers: dict[str, Any], directory: DirectoryIndex
) -> None:
    """Other reasons, other queues, the hub's own messages and garbled headers get no report."""
    assert expired_copy(headers, "mag/d-1", "hazard.alert", directory) is None


def test_a_forged_message_id_is_not_reported_as_the_senders(directory: DirectoryIndex) -> None:
    """A message id not of the form <sender>/<id> is reported without a referenced id."""
    for message_id in ("ocha/d-1", None, "mag/", "d-1"):
        refusal = expired_copy(dead_letter_headers(), message_id, "x" * 500, directory)
        assert refusal is not None
        assert refusal.distribution_id is None
        assert refusal.message_type is None


@pytest.fixture
async def reader(
    memory_hub: HubConsumer, topology: str, directory: DirectoryIndex, directory_file: Path
) -> AsyncIterator[InboxDeadLetters]:
    """The hub's inbox dead-letter reader, beside a hub, on the test vhost."""
    reader = InboxDeadLetters(hub_settings(topology, directory_file), lambda: directory)
    task = asyncio.create_task(reader.run())
    deadline = time.monotonic() + 10
    while not reader.consuming:
        assert time.monotonic() < deadline, "reader did not start consuming"
        await asyncio.sleep(0.05)
    yield reader
    await reader.stop()
    await asyncio.wait_for(task, 10)


@pytest.mark.broker
@pytest.mark.parametrize("precedence", ["routine", "flash"])
async def test_copy_expired_unread_is_reported_to_its_sender(
    reader: InboxDeadLetters, partners: dict[str, Partner], admin: Admin, precedence: str
) -> None:
    """A copy nobody read before expires_at comes back to its sender as a 401 naming them."""
    doc = envelope("mag", ["org:unmas", "org:ocha"], expires_at=now_iso(3.0), precedence=precedence)
    await partners["mag"].send(doc)
    inbox = flash_inbox_queue if precedence == "flash" else inbox_queue
    # ocha reads its copy in time; unmas does not.
    (read,) = await drain(admin, inbox("ocha"), expect=1)
    assert decode(read)["distribution_id"] == doc["distribution_id"]

    (got,) = await drain(admin, inbox_queue("mag"), expect=1, timeout=20)
    report = decode(got)["body"]
    assert report["type"] == "error.report"
    assert report["code"] == 401
    assert report["refused_recipients"] == ["org:unmas"]
    assert report["ref_distribution_id"] == doc["distribution_id"]
    assert await drain(admin, inbox("unmas"), expect=0) == []
    (kept,) = await drain(admin, DEAD_LETTER_QUEUE, expect=1)
    assert kept.headers[HEADER_ERROR_CODE] == 401
    assert kept.headers["x-first-death-reason"] == "expired"
    assert decode(kept)["distribution_id"] == doc["distribution_id"]


@pytest.mark.broker
async def test_copy_a_partner_rejected_is_kept_without_a_report(
    reader: InboxDeadLetters, partners: dict[str, Partner], admin: Admin
) -> None:
    """A copy the recipient rejected reaches the operators' dead letters; no report is sent."""
    doc = envelope("mag", ["org:unmas"])
    await partners["mag"].send(doc)
    channel = await partners["unmas"].connection.channel()
    queue = await channel.get_queue(inbox_queue("unmas"), ensure=False)
    message = None
    deadline = time.monotonic() + 10
    while message is None:
        assert time.monotonic() < deadline, "the copy never arrived"
        message = await queue.get(fail=False)
        await asyncio.sleep(0.05)
    await message.reject(requeue=False)
    await channel.close()
    (kept,) = await drain(admin, DEAD_LETTER_QUEUE, expect=1)
    assert kept.headers["x-first-death-reason"] == "rejected"
    assert HEADER_ERROR_CODE not in kept.headers
    assert await drain(admin, inbox_queue("mag"), expect=0, settle=1.0) == []
