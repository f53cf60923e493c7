"""Receipts: an ``ack`` must refer to a message its sender really received.

An ack skips policy and clearance (any recipient may answer the message's sender), so without
this check any partner could send any organisation a 4,000-character note by acknowledging a
message that never existed. The hub's delivery memory knows who received what within the
dedupe window; an ack whose (ref_sender, ref_distribution_id) was not delivered to the acking
organisation in that window is refused with 207 and the field path of the referenced id.
"""

import msgspec

from liaison.hub.decisions import Delivery, Refusal
from liaison.hub.memory import DeliveryMemory
from liaison.schemas.codes import ErrorCode
from liaison.schemas.wire import delivered_message_id

ACK_TYPE = "ack"
REFERENCE_PATH = "$.body.ref_distribution_id"


class _Reference(msgspec.Struct):
    ref_sender: str
    ref_distribution_id: str


class _AckEnvelope(msgspec.Struct):
    """The two fields of an already validated ack that name what it acknowledges."""

    body: _Reference


_decoder = msgspec.json.Decoder(_AckEnvelope)


def acknowledged(delivery: Delivery, body: bytes) -> str | None:
    """The message id an ack acknowledges (``<sender>/<distribution id>``); None for others.

    Only called on a message the router already decoded and validated, so reading its
    reference again cannot fail on input the router accepted.
    """
    if delivery.message_type != ACK_TYPE:
        return None
    reference = _decoder.decode(body).body
    return delivered_message_id(reference.ref_sender, reference.ref_distribution_id)


async def check_receipt(
    memory: DeliveryMemory, delivery: Delivery, body: bytes
) -> Delivery | Refusal:
    """``delivery`` unchanged, or a refusal when it acknowledges a message its sender never got."""
    if delivery.message_type != ACK_TYPE:
        return delivery
    reference = _decoder.decode(body).body
    key = delivered_message_id(reference.ref_sender, reference.ref_distribution_id)
    if await memory.received(delivery.sender, key):
        return delivery
    return Refusal(
        ErrorCode.NOT_RECEIVED,
        f"{delivery.sender} was not delivered {reference.ref_distribution_id!r} from "
        f"{reference.ref_sender} within the hub's memory window; an ack must refer to a "
        "message you received",
        REFERENCE_PATH,
        delivery.distribution_id,
        ACK_TYPE,
        delivery.sender,
    )
