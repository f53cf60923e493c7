"""Partners ask the ledger through the queue: status.request in, status.report back."""

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import aio_pika
import asyncpg
import pytest

from liaison.common.hub_key import load_hub_key
from liaison.directory.index import DirectoryIndex
from liaison.ledger.status import NOT_FOUND_NOTE, build_report
from liaison.ledger.views import TimelineEvent
from liaison.schemas.messages.system import StatusRequest
from liaison.schemas.wire import HEADER_SIGNATURE, inbox_queue
from liaison.sdk.signing import TrustedKey, verify
from tests.conftest import amqp_url_for, management
from tests.hub.conftest import RunningHub
from tests.hub.following import admin_following_hub, partners_following_hub  # noqa: F401
from tests.hub.support import Partner, decode, drain, envelope, new_id
from tests.ledger.conftest import RunningLedger, start_ledger, wait_for
from tests.ledger.test_lifecycle import ack_from

Admin = aio_pika.abc.AbstractConnection


def request(
    asker: str, ref_sender: str, ref_distribution_id: str, **fields: object
) -> dict[str, object]:
    """``asker``'s status.request about ``ref_sender/ref_distribution_id``."""
    body = {
        "type": "status.request",
        "ref_sender": ref_sender,
        "ref_distribution_id": ref_distribution_id,
    }
    return envelope(asker, ["org:liaison"], body, **fields)


async def report_in(admin: Admin, org: str, hub_key: TrustedKey) -> dict[str, object]:
    """The one status.report body waiting in ``org``'s inbox, signed with ``hub_key``."""
    got = await drain(admin, inbox_queue(org), expect=1, timeout=15)
    messages = [m for m in got if decode(m)["body"]["type"] == "status.report"]
    reports = [decode(m) for m in messages]
    assert len(reports) == 1, [decode(m)["body"]["type"] for m in got]
    # Signed with the hub's key, as everything the hub's side originates.
    header = messages[0].headers[HEADER_SIGNATURE]
    assert verify(messages[0].body, header, {hub_key.kid: hub_key}).org == "liaison"
    assert reports[0]["sender"] == "liaison"
    assert reports[0]["recipients"] == [f"org:{org}"]
    body = reports[0]["body"]
    assert isinstance(body, dict)
    return body


def test_report_shows_the_sender_everything_and_a_recipient_its_own_copy() -> None:
    """Who may learn what: sender all copies, recipient its own, anyone else nothing."""
    ask = StatusRequest(ref_distribution_id="d-1", ref_sender="mag")
    at = datetime(2026, 11, 23, tzinfo=UTC)
    events = [
        TimelineEvent(occurred_at=at, kind="in_inbox", org="unmas", record_id="r", detail={}),
        TimelineEvent(occurred_at=at, kind="in_inbox", org="undp", record_id="r", detail={}),
        TimelineEvent(
            occurred_at=at, kind="receipt_processed", org="unmas", record_id="s", detail={}
        ),
    ]
    everyone = build_report(ask, "mag", sender="mag", recipients=["unmas", "undp"], events=events)
    assert [(c.org, c.state) for c in everyone.recipients] == [
        ("undp", "in_inbox"),
        ("unmas", "receipt_processed"),
    ]
    own = build_report(ask, "undp", sender="mag", recipients=["unmas", "undp"], events=events)
    assert [c.org for c in own.recipients] == ["undp"]
    stranger = build_report(ask, "wfp", sender="mag", recipients=["unmas", "undp"], events=events)
    missing = build_report(ask, "wfp", sender=None, recipients=[], events=[])
    assert stranger == missing
    assert not stranger.found
    assert stranger.recipients == []


@pytest.mark.broker
@pytest.mark.postgres
# In transaction mode the hub once refused every status.request 502: its inbox guard looked
# for an inbox of the ledger's address, which has none.
@pytest.mark.parametrize("hub_delivery", ["confirm", "transaction"])
async def test_status_request_round_trip_and_refusals(
    hub: RunningHub,
    ledger: RunningLedger,
    partners: dict[str, Partner],
    admin: Admin,
    db: asyncpg.Connection,
    hub_key_file: Path,
) -> None:
    """Sender, recipient and stranger each get what they may see; forged requests are refused.
    Every report is signed with the hub's key."""
    hub_key = load_hub_key(hub_key_file).trusted()
    doc = envelope("mag", ["group:icg-ma"])
    await partners["mag"].send(doc)
    await partners["unmas"].send(ack_from("unmas", doc, "received"))
    message_id = f"mag/{doc['distribution_id']}"
    await wait_for(
        db,
        "SELECT count(*) FROM events WHERE message_id = $1 AND kind = 'receipt_received'",
        message_id,
        expect=1,
    )
    for org in ("dpko", "unmas", "undp", "unicef", "ocha", "mag"):
        await drain(admin, inbox_queue(org), expect=1, settle=0.1)  # the message and the ack

    await partners["mag"].send(request("mag", "mag", str(doc["distribution_id"])))
    mine = await report_in(admin, "mag", hub_key)
    assert mine["found"] is True
    states = {c["org"]: c["state"] for c in mine["recipients"]}  # type: ignore[union-attr]
    assert states == {
        "dpko": "in_inbox",
        "ocha": "in_inbox",
        "undp": "in_inbox",
        "unicef": "in_inbox",
        "unmas": "receipt_received",
    }

    await partners["undp"].send(request("undp", "mag", str(doc["distribution_id"])))
    own = await report_in(admin, "undp", hub_key)
    assert [c["org"] for c in own["recipients"]] == ["undp"]  # type: ignore[union-attr]

    await partners["wfp"].send(request("wfp", "mag", str(doc["distribution_id"])))
    stranger = await report_in(admin, "wfp", hub_key)
    await partners["wfp"].send(request("wfp", "mag", new_id("never-sent")))
    never = await report_in(admin, "wfp", hub_key)
    assert stranger == {**never, "ref_distribution_id": doc["distribution_id"]}
    assert stranger["found"] is False
    assert stranger["recipients"] == []
    assert stranger["note"] == NOT_FOUND_NOTE

    # Addressed to anyone but the ledger, or a forged report: the hub refuses both.
    misaddressed = request("wfp", "mag", str(doc["distribution_id"]))
    misaddressed["recipients"] = ["org:mag"]
    await partners["wfp"].send(misaddressed)
    forged = envelope(
        "wfp",
        ["org:mag"],
        {"type": "status.report", "ref_sender": "mag", "ref_distribution_id": "x", "found": True},
    )
    await partners["wfp"].send(forged)
    got = await drain(admin, inbox_queue("wfp"), expect=2)
    codes = sorted(decode(m)["body"]["code"] for m in got)  # type: ignore[index]
    assert codes == [206, 303]
    assert await drain(admin, inbox_queue("mag"), expect=0, settle=0.5) == []


@pytest.mark.broker
@pytest.mark.postgres
async def test_refused_answer_does_not_stop_the_ledger(
    hub: RunningHub,
    partners: dict[str, Partner],
    admin: Admin,
    db: asyncpg.Connection,
    vhost: str,
    run_id: str,
    database_url: str,
    directory: DirectoryIndex,
) -> None:
    """A ledger whose account may not write liaison.delivery records on; only the answer is lost."""
    account, password = f"l-{run_id}-ledger-ro", "ledger-read-only-password"
    await management("PUT", f"/users/{account}", {"password": password, "tags": ""})
    await management(
        "PUT",
        f"/permissions/{quote(vhost, safe='')}/{account}",
        {"configure": "^$", "write": "^$", "read": ".*"},
    )
    running = await start_ledger(amqp_url_for(vhost, account, password), database_url, directory)
    try:
        doc = envelope("mag", ["org:unmas"])
        await partners["mag"].send(doc)
        await partners["mag"].send(request("mag", "mag", str(doc["distribution_id"])))
        after = envelope("mag", ["org:unmas"])
        await partners["mag"].send(after)
        recorded = await wait_for(
            db,
            "SELECT count(*) FROM messages WHERE message_id = $1",
            f"mag/{after['distribution_id']}",
            expect=1,
        )
        assert recorded == 1
        assert running.consumer.connected
        got = await drain(admin, inbox_queue("mag"), expect=0, settle=0.5)
        assert [decode(m)["body"]["type"] for m in got] == []  # type: ignore[index]
    finally:
        await running.stop()
        await management("DELETE", f"/users/{account}")
