"""The hub against the real broker: what each inbox and the dead-letter queue hold afterwards."""

import aio_pika
import msgspec
import pytest

from liaison.common.topology import LEDGER_QUEUE
from liaison.directory.index import DirectoryIndex
from liaison.ledger.records import Outcome, decode_batch
from liaison.schemas.wire import (
    DEAD_LETTER_QUEUE,
    HEADER_ERROR_CODE,
    HEADER_SENDER,
    flash_inbox_queue,
    inbox_queue,
)
from tests.hub.conftest import RunningHub
from tests.hub.following import admin_following_hub, partners_following_hub  # noqa: F401
from tests.hub.support import Partner, decode, drain, envelope, now_iso, sample_body

pytestmark = pytest.mark.broker

Admin = aio_pika.abc.AbstractConnection


async def error_reports(admin: Admin, org: str, expect: int = 1) -> list[dict[str, object]]:
    """The error.report bodies in ``org``'s inbox."""
    messages = await drain(admin, inbox_queue(org), expect=expect)
    docs = [decode(m) for m in messages]
    assert all(d["body"]["type"] == "error.report" for d in docs), docs  # type: ignore[index]
    return [d["body"] for d in docs]  # type: ignore[misc]


@pytest.mark.parametrize("hub_delivery", ["confirm", "transaction"])
async def test_group_message_reaches_each_member_once(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin, directory: DirectoryIndex
) -> None:
    """A message to a group reaches every member's inbox exactly once, and the ledger's queue
    holds one decision record of it naming every member."""
    doc = envelope("mag", ["group:icg-ma"])
    await partners["mag"].send(doc)
    members = sorted(directory.resolve("group:icg-ma") or ())
    for org in members:
        got = await drain(admin, inbox_queue(org), expect=1)
        assert len(got) == 1, org
        assert decode(got[0])["distribution_id"] == doc["distribution_id"]
        assert got[0].message_id == f"mag/{doc['distribution_id']}"
        assert got[0].headers[HEADER_SENDER] == "mag"
        assert "BCC" not in (got[0].headers or {})
    assert await drain(admin, inbox_queue("mag"), expect=0) == []
    batches = await drain(admin, LEDGER_QUEUE, expect=1)
    records = [
        r
        for batch in batches
        for r in decode_batch(batch.body).records
        if r.distribution_id == doc["distribution_id"]
    ]
    assert [(r.outcome, sorted(r.recipients)) for r in records] == [(Outcome.DELIVERED, members)]


async def test_original_bytes_are_delivered_unchanged(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """Recipients get the sender's exact bytes, unknown fields from newer senders included."""
    doc = envelope("mag", ["org:unmas"], x_future_field={"kept": True})
    raw = msgspec.json.encode(doc)
    await partners["mag"].send(raw)
    (got,) = await drain(admin, inbox_queue("unmas"), expect=1)
    assert got.body == raw


@pytest.mark.parametrize("hub_delivery", ["confirm", "transaction"])
async def test_malformed_json_gets_error_report_and_is_dead_lettered(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """Bytes that are not JSON get code 100; the original is kept with the reason attached."""
    await partners["mag"].send(b"{not json")
    (report,) = await error_reports(admin, "mag")
    assert report["code"] == 100
    (dead,) = await drain(admin, DEAD_LETTER_QUEUE, expect=1)
    assert dead.body == b"{not json"
    assert dead.headers[HEADER_ERROR_CODE] == 100


async def test_oversized_message_is_refused(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """A body over the size limit gets code 101 without being parsed."""
    doc = envelope("mag", ["org:unmas"])
    doc["padding"] = "x" * (300 * 1024)
    await partners["mag"].send(doc)
    (report,) = await error_reports(admin, "mag")
    assert report["code"] == 101
    assert await drain(admin, inbox_queue("unmas"), expect=0) == []


async def test_wrong_content_type_is_refused(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """A content_type other than application/json gets code 102."""
    await partners["mag"].send(envelope("mag", ["org:unmas"]), content_type="text/xml")
    (report,) = await error_reports(admin, "mag")
    assert report["code"] == 102


async def test_missing_user_id_is_answered_to_the_routing_key_org(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """Without user_id the hub cannot authenticate: code 200, nothing delivered."""
    doc = envelope("mag", ["org:unmas"])
    await partners["mag"].send(doc, user_id=None)
    (report,) = await error_reports(admin, "mag")
    assert report["code"] == 200
    assert report["ref_distribution_id"] == doc["distribution_id"]
    assert await drain(admin, inbox_queue("unmas"), expect=0) == []


async def test_forged_sender_is_refused(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """An envelope claiming another organisation as sender gets 202 with the field path."""
    doc = envelope("unmas", ["org:minusca"])
    await partners["mag"].send(doc)
    (report,) = await error_reports(admin, "mag")
    assert report["code"] == 202
    assert report["field_path"] == "$.sender"
    assert await drain(admin, inbox_queue("minusca"), expect=0) == []
    assert await drain(admin, inbox_queue("unmas"), expect=0) == []


async def test_type_not_permitted_for_sender(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """An NGO may not issue a mandate update: code 203, nothing delivered."""
    doc = envelope("mag", ["org:minusca"], body=sample_body("mandate.update"))
    await partners["mag"].send(doc)
    (report,) = await error_reports(admin, "mag")
    assert report["code"] == 203
    assert await drain(admin, inbox_queue("minusca"), expect=0) == []


async def test_uncleared_recipients_are_left_out_and_named(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """A confidential message reaches cleared recipients; the sender is told who was refused."""
    doc = envelope("unmas", ["org:minusca", "org:mag", "org:nrc"], classification="confidential")
    await partners["unmas"].send(doc)
    assert len(await drain(admin, inbox_queue("minusca"), expect=1)) == 1
    assert await drain(admin, inbox_queue("mag"), expect=0) == []
    assert await drain(admin, inbox_queue("nrc"), expect=0) == []
    (report,) = await error_reports(admin, "unmas")
    assert report["code"] == 205
    assert report["refused_recipients"] == ["org:mag", "org:nrc"]


async def test_recipient_not_permitted_is_left_out(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """Task status goes only to those who task: other recipients are refused with 204."""
    doc = envelope("mag", ["org:unmas", "org:nrc"], body=sample_body("tasking.status"))
    await partners["mag"].send(doc)
    assert len(await drain(admin, inbox_queue("unmas"), expect=1)) == 1
    assert await drain(admin, inbox_queue("nrc"), expect=0) == []
    (report,) = await error_reports(admin, "mag")
    assert report["code"] == 204
    assert report["refused_recipients"] == ["org:nrc"]


async def test_invalid_body_report_carries_distribution_id_and_path(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """A schema violation in the body gets 301, the distribution id and the field path."""
    body = sample_body()
    body["quantity"] = -3
    doc = envelope("mag", ["org:unmas"], body=body)
    await partners["mag"].send(doc)
    (report,) = await error_reports(admin, "mag")
    assert report["code"] == 301
    assert report["field_path"] == "$.body.quantity"
    assert report["ref_distribution_id"] == doc["distribution_id"]
    assert len(await drain(admin, DEAD_LETTER_QUEUE, expect=1)) == 1


async def test_unknown_message_type(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """A body type outside the catalogue gets 302."""
    doc = envelope("mag", ["org:unmas"], body={"type": "hazard.rumour", "text": "?"})
    await partners["mag"].send(doc)
    (report,) = await error_reports(admin, "mag")
    assert report["code"] == 302
    assert report["ref_type"] == "hazard.rumour"


async def test_unsupported_schema_version(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """A schema_version with an unknown major gets 103."""
    await partners["mag"].send(envelope("mag", ["org:unmas"], schema_version="2.0"))
    (report,) = await error_reports(admin, "mag")
    assert report["code"] == 103


async def test_expired_message_is_refused(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """A message past its expires_at gets 400 and is not delivered."""
    doc = envelope("mag", ["org:unmas"], sent_at=now_iso(-120), expires_at=now_iso(-60))
    await partners["mag"].send(doc)
    (report,) = await error_reports(admin, "mag")
    assert report["code"] == 400
    assert await drain(admin, inbox_queue("unmas"), expect=0) == []


async def test_expiry_becomes_broker_ttl(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """expires_at travels as the per-message expiration the broker enforces."""
    doc = envelope("mag", ["org:unmas"], expires_at=now_iso(3600))
    await partners["mag"].send(doc)
    (got,) = await drain(admin, inbox_queue("unmas"), expect=1)
    assert got.expiration is not None
    assert 3500 < float(got.expiration) <= 3600


async def test_unknown_recipient(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """An address naming nobody gets 500 with the index of the bad address."""
    await partners["mag"].send(envelope("mag", ["org:unmas", "group:nobody-here"]))
    (report,) = await error_reports(admin, "mag")
    assert report["code"] == 500
    assert report["field_path"] == "$.recipients[1]"
    assert await drain(admin, inbox_queue("unmas"), expect=0) == []


async def test_partner_may_not_send_error_reports(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """error.report is the hub's alone: a partner sending one gets 206."""
    body = {"type": "error.report", "code": 100, "name": "x", "reason": "x", "retryable": False}
    await partners["mag"].send(envelope("mag", ["org:unmas"], body=body))
    (report,) = await error_reports(admin, "mag")
    assert report["code"] == 206
    assert await drain(admin, inbox_queue("unmas"), expect=0) == []


@pytest.mark.parametrize("hub_delivery", ["confirm", "transaction"])
async def test_republished_distribution_id_is_delivered_once(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """Publishing the same distribution id twice (a lost confirm) delivers it once."""
    doc = envelope("mag", ["org:unmas"])
    await partners["mag"].send(doc)
    await partners["mag"].send(doc)
    got = await drain(admin, inbox_queue("unmas"), expect=1, settle=1.0)
    assert len(got) == 1


async def test_flash_goes_to_the_flash_inbox(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """Flash messages land in the urgent inbox, not behind the routine backlog."""
    for _ in range(5):
        await partners["unmas"].send(envelope("unmas", ["org:mag"]))
    flash = envelope("unmas", ["org:mag"], precedence="flash", body=sample_body("hazard.alert"))
    await partners["unmas"].send(flash)
    (urgent,) = await drain(admin, flash_inbox_queue("mag"), expect=1)
    assert decode(urgent)["distribution_id"] == flash["distribution_id"]
    assert len(await drain(admin, inbox_queue("mag"), expect=5)) == 5


@pytest.mark.parametrize("hub_delivery", ["confirm", "transaction"])
async def test_ack_travels_back_to_the_original_sender(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """A recipient's ack reaches the original sender, whatever the policy says."""
    original = envelope("mag", ["org:unmas"])
    await partners["mag"].send(original)
    await drain(admin, inbox_queue("unmas"), expect=1)
    ack = envelope(
        "unmas",
        ["org:mag"],
        body={
            "type": "ack",
            "ref_distribution_id": original["distribution_id"],
            "ref_sender": "mag",
            "level": "processed",
        },
    )
    await partners["unmas"].send(ack)
    (got,) = await drain(admin, inbox_queue("mag"), expect=1)
    assert decode(got)["body"]["ref_distribution_id"] == original["distribution_id"]


async def test_ack_to_someone_else_is_inconsistent(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """An ack addressed to anyone but the referenced sender gets 303."""
    ack = envelope(
        "unmas",
        ["org:nrc"],
        body={
            "type": "ack",
            "ref_distribution_id": "x-1",
            "ref_sender": "mag",
            "level": "received",
        },
    )
    await partners["unmas"].send(ack)
    (report,) = await error_reports(admin, "unmas")
    assert report["code"] == 303
    assert await drain(admin, inbox_queue("nrc"), expect=0) == []


@pytest.mark.parametrize("hub_delivery", ["confirm", "transaction"])
async def test_per_sender_order_is_kept(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """Messages from one sender reach an inbox in the order they were published."""
    ids = []
    for _ in range(200):
        doc = envelope("mag", ["org:unmas"])
        ids.append(doc["distribution_id"])
        await partners["mag"].send(doc)
    got = await drain(admin, inbox_queue("unmas"), expect=200, timeout=30)
    assert [decode(m)["distribution_id"] for m in got] == ids


@pytest.mark.parametrize("hub_delivery", ["confirm", "transaction"])
async def test_large_message_spanning_frames_arrives_intact(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """A body larger than one AMQP frame (~128 KiB) is delivered byte for byte."""
    doc = envelope("mag", ["org:unmas", "org:minusca"], x_annex="\u00e9" * 100_000)
    raw = msgspec.json.encode(doc)
    assert 131_072 < len(raw) < 256 * 1024
    await partners["mag"].send(raw)
    for org in ("unmas", "minusca"):
        (got,) = await drain(admin, inbox_queue(org), expect=1)
        assert got.body == raw
