"""Decision records and the rows made from them: pure logic, bad input included."""

from datetime import UTC, datetime

import msgspec
import pytest

from liaison.hub.decisions import Delivery, Refusal
from liaison.ledger.records import (
    DecisionRecord,
    Outcome,
    decision_record,
    decode_batch,
    encode_batch,
)
from liaison.ledger.rows import Rows, dead_letter_rows, record_rows
from liaison.schemas.codes import ErrorCode

BODY = msgspec.json.encode(
    {
        "distribution_id": "d-1",
        "sender": "mag",
        "sent_at": "2026-11-23T10:00:00+00:00",
        "recipients": ["group:icg-ma", "org:unmas"],
        "incident_id": "INC-7",
        "classification": "unclassified",
        "body": {"type": "hazard.alert"},
    }
)


def delivery(**changes: object) -> Delivery:
    """A delivery of d-1 from mag to unmas and undp."""
    fields: dict[str, object] = {
        "sender": "mag",
        "distribution_id": "d-1",
        "message_type": "hazard.alert",
        "message_id": "mag/d-1",
        "recipients": ["undp", "unmas"],
        "flash": False,
        "precedence": "routine",
        "expiration_ms": None,
    }
    fields.update(changes)
    return Delivery(**fields)  # type: ignore[arg-type]


def test_delivery_record_names_recipients_and_refusals() -> None:
    """A partial delivery records who got it, who was refused, and the refusal code."""
    partial = Refusal(ErrorCode.RECIPIENT_NOT_PERMITTED, "no", "$.recipients", "d-1", None, "mag")
    partial.refused_recipients = ("wfp",)
    record = decision_record(
        delivery(partial=partial), BODY, user_id="acct", headers=None, decided_at=1.5
    )
    assert record.outcome is Outcome.PARTIAL
    assert record.recipients == ["undp", "unmas"]
    assert record.refused_recipients == ["wfp"]
    assert record.code == int(ErrorCode.RECIPIENT_NOT_PERMITTED)
    assert decode_batch(encode_batch([record])).records == [record]


def test_refusal_duplicate_and_replay_headers() -> None:
    """Refusals and duplicates get their own outcome; replay headers become lineage."""
    refusal = Refusal(ErrorCode.MALFORMED, "not JSON", reply_to="mag")
    record = decision_record(
        refusal,
        b"{x",
        user_id="acct",
        headers={"x-liaison-replay-of": b"abc123", "x-liaison-replayed-by": "ops"},
        decided_at=2.0,
    )
    assert (record.outcome, record.code, record.sender) == (Outcome.REFUSED, 100, "mag")
    assert (record.replay_of, record.replayed_by) == ("abc123", "ops")
    dup = decision_record(
        delivery(), BODY, duplicate=True, user_id=None, headers={}, decided_at=3.0
    )
    assert dup.outcome is Outcome.DUPLICATE
    assert dup.recipients == []
    assert record.record_id != dup.record_id


def test_ack_records_carry_the_reference_and_level() -> None:
    """An ack's record says which message it acknowledges and how far; a bad body gives none."""
    ack_body = msgspec.json.encode(
        {
            "body": {
                "type": "ack",
                "ref_sender": "mag",
                "ref_distribution_id": "d-1",
                "level": "processed",
            }
        }
    )
    ack = delivery(message_type="ack", recipients=["mag"], sender="unmas")
    record = decision_record(ack, ack_body, user_id="u", headers=None, decided_at=1.0)
    assert record.ack is not None
    assert (record.ack.ref_sender, record.ack.level) == ("mag", "processed")
    garbage = decision_record(ack, b"\xff\xfe", user_id="u", headers=None, decided_at=1.0)
    assert garbage.ack is None


@pytest.mark.parametrize("data", [b"", b"\x00\x01", b"\x81\xa7records\x91\x01", b"{}" * 1000])
def test_malformed_batches_raise_decode_errors(data: bytes) -> None:
    """Bytes that are not a record batch raise msgspec errors, never anything else."""
    with pytest.raises(msgspec.DecodeError):
        decode_batch(data)


def test_rows_of_a_record_with_addresses_resolved() -> None:
    """Each recipient's row names the addresses that reached it; events are keyed by record."""
    record = decision_record(delivery(), BODY, user_id="acct", headers=None, decided_at=0.0)
    groups = {"group:icg-ma": frozenset({"unmas", "undp"}), "org:unmas": frozenset({"unmas"})}
    rows = Rows()
    record_rows(rows, record, resolve=groups.get, keep_body=True)
    message = rows.messages[0]
    assert message[3] == "mag/d-1"
    assert message[11] == "INC-7"
    via = {r[2]: r[4] for r in rows.recipients}
    assert via == {"undp": ["group:icg-ma"], "unmas": ["group:icg-ma", "org:unmas"]}
    assert sorted(e[4] for e in rows.events) == ["in_inbox", "in_inbox"]
    again = Rows()
    record_rows(again, record, resolve=groups.get, keep_body=True)
    assert again.events == rows.events  # same input, same keys: a redelivery inserts nothing


def test_hostile_bodies_are_stored_safely() -> None:
    """Invalid UTF-8, NUL characters, oversized fields and nesting too deep to decode neither
    crash nor reach text columns."""
    forged = msgspec.json.encode(
        {
            "incident_id": "x" * 5000,
            "sent_at": "yesterday",
            "recipients": "org:all",
            "note": "a\u0000b",
        }
    )
    # Deeper than msgspec decodes: the hub refuses it as malformed, and records it.
    deep = b'{"sender": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    for body in (b"\xff" * 10, forged, deep):
        record = DecisionRecord(
            record_id="r", decided_at=0.0, outcome=Outcome.REFUSED, code=300, body=body
        )
        rows = Rows()
        record_rows(rows, record, resolve=None, keep_body=True)
        message = rows.messages[0]
        assert message[11] is None or len(message[11]) <= 256
        assert message[13] is None
        assert message[24] is None or "\x00" not in message[24]
    rows = Rows()
    record_rows(rows, record, resolve=None, keep_body=False)
    assert rows.messages[0][23] is None
    assert rows.messages[0][24] is None


def test_inbox_death_and_kept_refusal() -> None:
    """An expired inbox copy is an 'expired' event for its recipient; a refusal is 'kept'."""
    rows = Rows()
    now = datetime(2026, 11, 23, tzinfo=UTC)
    death = {"queue": "inbox.unicef.flash", "reason": "expired", "count": 1, "time": now}
    dead_letter_rows(
        rows,
        body=BODY,
        routing_key="unicef.flash",
        user_id=None,
        message_id="mag/d-1",
        message_type="hazard.alert",
        headers={"x-death": [death]},
        org_for_account=lambda _: None,
        received_at=now,
    )
    dead_letter_rows(
        rows,
        body=b"{x",
        routing_key="mag",
        user_id=None,
        message_id=None,
        message_type=None,
        headers={
            "x-liaison-error-code": 100,
            "x-liaison-original-user-id": "acct",
            "x-death": "forged",
        },
        org_for_account={"acct": "mag"}.get,
        received_at=now,
    )
    (expired, kept) = rows.events
    assert (expired[2], expired[3], expired[4]) == ("mag/d-1", "unicef", "expired")
    assert (kept[3], kept[4]) == (None, "kept")
    assert [d[5] for d in rows.dead_letters] == [None, 100]
