"""Decision records: what the hub tells the ledger about each message it decided.

The seam between hub and ledger. The hub builds one ``DecisionRecord`` per decision with
``decision_record`` (pure, cheap: no second decode of the envelope except for acks) and
publishes them in batches (``RecordBatch``, MessagePack) to the ``liaison.ledger`` exchange
before it acknowledges the ingress message. The ledger reads the envelope's metadata out of the
body the record carries, off the hub's hot path.

Evolution follows the contract's rules (schemas/EVOLUTION.md): new fields get defaults, a field's
type never changes, unknown fields are skipped.
"""

import enum
import itertools
import os
from collections.abc import Mapping
from typing import Final

import msgspec

from liaison.hub.decisions import Delivery, Refusal, Verdict
from liaison.schemas.wire import HEADER_SIGNATURE
from liaison.sdk.errors import SignatureError
from liaison.sdk.signing import parse_signature

#: AMQP ``type`` of a batch of decision records on the ledger queue.
RECORD_BATCH_TYPE: Final = "liaison.ledger.records"
RECORD_CONTENT_TYPE: Final = "application/msgpack"
#: Header a replay carries (set by ``liaison dead-letters replay`` and the console).
HEADER_REPLAY_OF: Final = "x-liaison-replay-of"
HEADER_REPLAYED_BY: Final = "x-liaison-replayed-by"


class Outcome(enum.StrEnum):
    """What the hub did with a message."""

    DELIVERED = "delivered"
    PARTIAL = "partial"
    REFUSED = "refused"
    DUPLICATE = "duplicate"


class AckReference(msgspec.Struct, frozen=True, kw_only=True):
    """What an ``ack`` message acknowledges, and how far its sender got."""

    ref_sender: str
    ref_distribution_id: str
    level: str


class DecisionRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One hub decision, as the ledger stores it."""

    #: Unique per decision; the ledger's idempotency key (a redelivered record is the same).
    record_id: str
    #: Unix time (seconds) of the decision, by the hub's clock.
    decided_at: float
    outcome: Outcome
    #: The broker-validated account that published the message.
    user_id: str | None = None
    sender: str | None = None
    distribution_id: str | None = None
    message_type: str | None = None
    precedence: str | None = None
    #: Organisations the message was published to (broker-confirmed in their inboxes).
    recipients: list[str] = []
    #: Organisations the addressing named but the hub refused, with the refusal's code.
    refused_recipients: list[str] = []
    code: int | None = None
    reason: str | None = None
    field_path: str | None = None
    #: The organisation told about a refusal (error report), if any.
    reply_to: str | None = None
    ack: AckReference | None = None
    #: Dead-letter id this message replays, and who replayed it (replay headers).
    replay_of: str | None = None
    replayed_by: str | None = None
    #: The message exactly as received.
    body: bytes = b""
    #: The ``x-liaison-signature`` header exactly as received, and the kid its protected header
    #: names (verified for a delivery; for a refusal, what the sender claimed).
    signature: str | None = None
    signature_kid: str | None = None
    #: For a delivery: "verified", or "absent" (an unsigned message from a partner whose
    #: signatures are "when_present", during its migration to signing).
    signature_status: str | None = None


class RecordBatch(msgspec.Struct, frozen=True, kw_only=True):
    """Records published together in one AMQP message."""

    records: list[DecisionRecord]


class _AckBody(msgspec.Struct):
    ref_sender: str
    ref_distribution_id: str
    level: str


class _AckProbe(msgspec.Struct):
    body: _AckBody


#: Record ids: a random prefix drawn once per process and a counter, 32 hex digits like a UUID.
#: uuid4 per record took a quarter of ``decision_record`` (an ``os.urandom`` call each); 64
#: random bits per process keep ids from two hub processes apart as surely.
_RECORD_ID_PREFIX = os.urandom(8).hex()
_record_numbers = itertools.count()

_ack_decoder = msgspec.json.Decoder(_AckProbe)
_batch_encoder = msgspec.msgpack.Encoder()
_batch_decoder = msgspec.msgpack.Decoder(RecordBatch)


def decision_record(
    decision: Verdict,
    body: bytes,
    *,
    duplicate: bool = False,
    user_id: str | None,
    headers: Mapping[str, object] | None,
    decided_at: float,
) -> DecisionRecord:
    """The record of ``decision`` on the message ``body``; pure, never raises.

    ``duplicate``: the hub's memory says the delivery was made before, so nothing was published.
    """
    if headers:
        replay_of = _text(headers.get(HEADER_REPLAY_OF))
        replayed_by = _text(headers.get(HEADER_REPLAYED_BY))
    else:
        headers, replay_of, replayed_by = {}, None, None
    record_id = f"{_RECORD_ID_PREFIX}{next(_record_numbers):016x}"
    if isinstance(decision, Delivery) and not duplicate:
        return _delivery_record(
            decision, body, record_id, user_id, decided_at, replay_of, replayed_by
        )
    # A delivery's signature was verified (the decision holds it); otherwise what was claimed.
    signature = _signature_text(headers.get(HEADER_SIGNATURE))
    signature_kid = _claimed_kid(signature)
    if isinstance(decision, Refusal):
        return DecisionRecord(
            record_id=record_id,
            decided_at=decided_at,
            outcome=Outcome.REFUSED,
            user_id=user_id,
            sender=decision.reply_to,
            distribution_id=decision.distribution_id,
            message_type=decision.message_type,
            refused_recipients=list(decision.refused_recipients),
            code=int(decision.code),
            reason=decision.reason,
            field_path=decision.field_path,
            reply_to=decision.reply_to,
            replay_of=replay_of,
            replayed_by=replayed_by,
            body=body,
            signature=signature,
            signature_kid=signature_kid,
        )
    # A duplicate delivery: nothing was published this time.
    return DecisionRecord(
        record_id=record_id,
        decided_at=decided_at,
        outcome=Outcome.DUPLICATE,
        user_id=user_id,
        sender=decision.sender,
        distribution_id=decision.distribution_id,
        message_type=decision.message_type,
        replay_of=replay_of,
        replayed_by=replayed_by,
        body=body,
        signature=signature,
        signature_kid=signature_kid,
        signature_status=decision.signature_status,
    )


def _delivery_record(
    decision: Delivery,
    body: bytes,
    record_id: str,
    user_id: str | None,
    decided_at: float,
    replay_of: str | None,
    replayed_by: str | None,
) -> DecisionRecord:
    partial = decision.partial
    ack = None
    if decision.message_type == "ack":
        # Receipts: the ledger needs which message and how far; only acks pay this decode.
        try:
            probe = _ack_decoder.decode(body).body
            ack = AckReference(
                ref_sender=probe.ref_sender,
                ref_distribution_id=probe.ref_distribution_id,
                level=probe.level,
            )
        except (msgspec.DecodeError, UnicodeDecodeError):
            ack = None
    return DecisionRecord(
        record_id=record_id,
        decided_at=decided_at,
        outcome=Outcome.DELIVERED if partial is None else Outcome.PARTIAL,
        user_id=user_id,
        sender=decision.sender,
        distribution_id=decision.distribution_id,
        message_type=decision.message_type,
        precedence=decision.precedence,
        recipients=list(decision.recipients),
        refused_recipients=[] if partial is None else list(partial.refused_recipients),
        code=None if partial is None else int(partial.code),
        reason=None if partial is None else partial.reason,
        reply_to=None if partial is None else partial.reply_to,
        ack=ack,
        replay_of=replay_of,
        replayed_by=replayed_by,
        body=body,
        signature=decision.signature,
        signature_kid=decision.signature_kid,
        signature_status=decision.signature_status,
    )


def encode_batch(records: list[DecisionRecord]) -> bytes:
    """A batch as the bytes published to the ledger exchange."""
    return _batch_encoder.encode(RecordBatch(records=records))


#: A record's body from this size on is a piece of its own in ``encode_batch_pieces``.
PIECE_FROM: Final = 16 * 1024
#: Stands in for a large body while its record is encoded: 16 random bytes drawn once per
#: process, as MessagePack bin 8. Nothing else in a record can hold these bytes: every other
#: field is text (and 0xC4 0x10 is not UTF-8), a number or a list of those.
_BODY_MARK = os.urandom(16)
_MARK_BIN = b"\xc4\x10" + _BODY_MARK
#: ``RecordBatch``'s encoding up to its list: a map of one key, "records".
_BATCH_HEAD = b"\x81\xa7records"


def encode_batch_pieces(records: list[DecisionRecord]) -> bytes | list[bytes]:
    """``encode_batch(records)``, as pieces whose join is those very bytes when a record's
    body is ``PIECE_FROM`` or more: each such body is a piece of its own, the body object
    itself, so the batch never copies it (a batch of 237 KB bodies was one of the hub's largest
    copies per KB, into fresh pages each time: bench/README.md, "The hub per KB, fourth pass").
    Bytes as ``encode_batch`` gives them when no body is that large."""
    if not any(len(record.body) >= PIECE_FROM for record in records):
        return encode_batch(records)
    pieces = [_BATCH_HEAD + _array_head(len(records))]
    small: list[DecisionRecord] = []
    for record in records:
        if len(record.body) < PIECE_FROM:
            small.append(record)
            continue
        if small:
            pieces.append(_items(small))
            small = []
        encoded = _batch_encoder.encode(msgspec.structs.replace(record, body=_BODY_MARK))
        at = encoded.find(_MARK_BIN)
        if at < 0 or encoded.find(_MARK_BIN, at + 1) >= 0:
            return encode_batch(records)  # a change in msgspec's encoding: the plain one
        pieces += (
            encoded[:at] + _bin_head(len(record.body)),
            record.body,
            encoded[at + len(_MARK_BIN) :],
        )
    if small:
        pieces.append(_items(small))
    return pieces


def _items(records: list[DecisionRecord]) -> bytes:
    """The records' encodings one after another (a list's encoding without its head)."""
    return _batch_encoder.encode(records)[len(_array_head(len(records))) :]


def _array_head(count: int) -> bytes:
    if count < 16:
        return bytes((0x90 | count,))
    if count < 1 << 16:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")


def _bin_head(size: int) -> bytes:
    if size < 1 << 8:
        return b"\xc4" + size.to_bytes(1, "big")
    if size < 1 << 16:
        return b"\xc5" + size.to_bytes(2, "big")
    return b"\xc6" + size.to_bytes(4, "big")


def decode_batch(data: bytes) -> RecordBatch:
    """A batch read back; raises msgspec.DecodeError (or ValidationError) on bad input."""
    return _batch_decoder.decode(data)


def _signature_text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return value[:1024] if isinstance(value, str) and value else None


def _claimed_kid(signature: str | None) -> str | None:
    if signature is None:
        return None
    try:
        return parse_signature(signature)[1]
    except SignatureError:
        return None


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value[:256] if isinstance(value, str) and value else None
