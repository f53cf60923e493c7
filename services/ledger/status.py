"""Answering a partner's ``status.request`` with a ``status.report``, from the ledger.

The request reaches the ledger as the hub's decision record (the hub authenticated the asker).
What the asker may learn: the message's sender sees every recipient's copy; a recipient sees
its own copy only; anyone else, like a message that never existed, gets ``found: false`` — so
the answer does not even reveal that someone else's message exists.
"""

from datetime import UTC, datetime
from typing import Any

import msgspec

from liaison.directory.index import HUB_SENDER_ID
from liaison.ledger.queries import copy_states
from liaison.ledger.records import DecisionRecord, Outcome
from liaison.ledger.views import TimelineEvent
from liaison.schemas.envelope import Envelope, decode_envelope, encode
from liaison.schemas.messages.system import CopyStatus, StatusReport, StatusRequest

NOT_FOUND_NOTE = "no message with this id that you sent or received is in the ledger"


def status_request(record: DecisionRecord) -> StatusRequest | None:
    """The request a delivered status.request record carries, else None."""
    if record.message_type != "status.request" or record.outcome is not Outcome.DELIVERED:
        return None
    try:
        body = decode_envelope(record.body).body
    except msgspec.DecodeError:
        return None
    return body if isinstance(body, StatusRequest) else None


def build_report(
    request: StatusRequest,
    asker: str,
    *,
    sender: str | None,
    recipients: list[str],
    events: list[TimelineEvent],
) -> StatusReport:
    """What ``asker`` may learn of the message, given what the ledger holds (pure)."""
    if sender is None or (asker != sender and asker not in recipients):
        return StatusReport(
            ref_distribution_id=request.ref_distribution_id,
            ref_sender=request.ref_sender,
            found=False,
            note=NOT_FOUND_NOTE,
        )
    states = copy_states(events)
    since: dict[str, datetime] = {}
    for event in events:
        if event.org is not None and states.get(event.org) == event.kind:
            since[event.org] = event.occurred_at
    visible = recipients if asker == sender else [asker]
    return StatusReport(
        ref_distribution_id=request.ref_distribution_id,
        ref_sender=request.ref_sender,
        found=True,
        recipients=[
            CopyStatus(org=org, state=states.get(org, "in_inbox"), since=since.get(org))
            for org in sorted(visible)
        ],
    )


async def report_for(
    connection: Any, record: DecisionRecord, request: StatusRequest
) -> StatusReport:
    """Look the message up and build the report for the record's sender."""
    assert record.sender is not None
    message_id = f"{request.ref_sender}/{request.ref_distribution_id}"
    sender = await connection.fetchval(
        "SELECT sender FROM messages WHERE message_id = $1 AND outcome IN ('delivered', 'partial') "
        "LIMIT 1",
        message_id,
    )
    rows = await connection.fetch(
        "SELECT DISTINCT org FROM recipients WHERE message_id = $1 AND NOT refused", message_id
    )
    events = await connection.fetch(
        "SELECT occurred_at, kind, org, record_id, detail FROM events WHERE message_id = $1",
        message_id,
    )
    return build_report(
        request,
        record.sender,
        sender=sender,
        recipients=[r["org"] for r in rows],
        events=[TimelineEvent(**dict(e)) for e in events],
    )


def report_envelope(record: DecisionRecord, report: StatusReport) -> tuple[str, bytes]:
    """(distribution id, bytes) of the report; the id derives from the request's record."""
    assert record.sender is not None
    report_id = f"status-{record.record_id[:32]}"
    envelope = Envelope(
        distribution_id=report_id,
        sender=HUB_SENDER_ID,
        sent_at=datetime.now(UTC),
        recipients=[f"org:{record.sender}"],
        in_reply_to=record.distribution_id,
        body=report,
    )
    return report_id, encode(envelope)
