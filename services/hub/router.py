"""The hub's decision for one ingress message, as a pure function of its bytes and properties.

Checks run cheapest and most fundamental first: size and content type, who really sent it
(the broker-validated ``user_id``), the contract, expiry, dedupe, then addressing and policy.
No I/O here, so every rule is unit-testable and property-testable without a broker.
"""

import time
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from liaison.common.dedupe import DedupeWindow
from liaison.directory.index import HUB_ONLY_TYPES, HUB_SENDER_ID, DirectoryIndex
from liaison.hub.refusal import (
    Decision,
    Delivery,
    Duplicate,
    Refusal,
)
from liaison.schemas.catalogue import MESSAGE_TYPES
from liaison.schemas.codes import ErrorCode
from liaison.schemas.envelope import Envelope, decode_envelope, error_message, error_path
from liaison.schemas.messages.system import Ack, StatusRequest
from liaison.schemas.probe import probe as probe  # consumer.py imports it from here
from liaison.schemas.types import Precedence
from liaison.schemas.wire import CONTENT_TYPE, delivered_message_id

_TAGS = {cls: tag for tag, cls in MESSAGE_TYPES.items()}
_ACCEPTED_CONTENT_TYPES = frozenset({CONTENT_TYPE, "application/json; charset=utf-8"})


class Router:
    """Decides what happens to each message, against the directory in force."""

    def __init__(
        self,
        directory: DirectoryIndex,
        dedupe: DedupeWindow,
        *,
        max_message_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.dedupe = dedupe
        self._max_bytes = max_message_bytes
        self._clock = clock

    def decide(
        self,
        body: bytes,
        *,
        user_id: str | None,
        routing_key: str,
        content_type: str | None,
    ) -> Decision:
        """The decision for one message; never raises for any input."""
        directory = self.directory
        account_org = directory.org_for_account(user_id) if user_id else None
        # Without user_id, the routing key still names the publisher: topic permissions only
        # let a partner publish with its own organisation id, so it is who to answer.
        reply_to = account_org or (
            routing_key if user_id is None and routing_key in directory.organisations else None
        )

        if len(body) > self._max_bytes:
            return self._refuse_unread(
                ErrorCode.OVERSIZED,
                f"the body is {len(body)} bytes; the limit is {self._max_bytes}",
                reply_to,
            )
        if content_type and content_type.lower() not in _ACCEPTED_CONTENT_TYPES:
            return _refuse_probed(
                body,
                ErrorCode.UNSUPPORTED_CONTENT_TYPE,
                f"content_type is {content_type[:64]!r}; send {CONTENT_TYPE}",
                None,
                reply_to,
            )
        if user_id is None:
            return _refuse_probed(
                body,
                ErrorCode.MISSING_USER_ID,
                "the user_id property is missing; set it to your broker account",
                None,
                reply_to,
            )
        if account_org is None:
            return _refuse_probed(
                body,
                ErrorCode.UNKNOWN_ACCOUNT,
                f"broker account {user_id[:64]!r} belongs to no organisation in the directory",
                None,
                None,
            )

        try:
            envelope = decode_envelope(body)
        except msgspec.ValidationError as exc:
            return _refuse_invalid(body, exc, account_org)
        except msgspec.DecodeError as exc:
            return _refuse_probed(
                body, ErrorCode.MALFORMED, f"not a JSON document: {exc}", None, account_org
            )

        return self._route(envelope, account_org)

    def _route(self, envelope: Envelope, sender: str) -> Decision:
        directory = self.directory
        message_type = _TAGS[type(envelope.body)]
        distribution_id = envelope.distribution_id

        def refuse(code: ErrorCode, reason: str, path: str | None = None) -> Refusal:
            return Refusal(code, reason, path, distribution_id, message_type, sender)

        if envelope.sender != sender:
            return refuse(
                ErrorCode.SENDER_MISMATCH,
                f"sender is {envelope.sender!r} but you are authenticated as {sender!r}",
                "$.sender",
            )
        if message_type in HUB_ONLY_TYPES:
            return refuse(
                ErrorCode.RESERVED_TYPE, f"only the hub sends {message_type}", "$.body.type"
            )
        now = self._clock()
        expiration_ms: int | None = None
        if envelope.expires_at is not None:
            remaining = envelope.expires_at.timestamp() - now
            if envelope.expires_at <= envelope.sent_at:
                return refuse(
                    ErrorCode.INCONSISTENT, "expires_at is not after sent_at", "$.expires_at"
                )
            if remaining <= 0:
                return refuse(
                    ErrorCode.EXPIRED,
                    f"expired at {envelope.expires_at.isoformat()}, {-remaining:.0f}s ago",
                    "$.expires_at",
                )
            expiration_ms = max(1, int(remaining * 1000))

        message_id = delivered_message_id(sender, distribution_id)
        if message_id in self.dedupe:
            return Duplicate(sender, distribution_id, message_type, message_id)

        if isinstance(envelope.body, Ack):
            return self._route_ack(envelope, envelope.body, sender, message_id, expiration_ms)
        if isinstance(envelope.body, StatusRequest):
            # Ledger route: addressed to the hub's id; the ledger answers from the decision
            # record, so any partner may ask (the ledger decides what it may learn).
            if envelope.recipients != [f"org:{HUB_SENDER_ID}"]:
                return refuse(
                    ErrorCode.INCONSISTENT,
                    f"a status.request goes to the ledger: recipients must be "
                    f"['org:{HUB_SENDER_ID}']",
                    "$.recipients",
                )
            return Delivery(
                sender=sender,
                distribution_id=distribution_id,
                message_type=message_type,
                message_id=message_id,
                recipients=[HUB_SENDER_ID],
                flash=False,
                precedence=envelope.precedence.value,
                expiration_ms=expiration_ms,
            )

        resolved: set[str] = set()
        reached: dict[str, frozenset[str]] = {}
        for index, address in enumerate(envelope.recipients):
            members = directory.resolve(address)
            if members is None:
                return refuse(
                    ErrorCode.UNKNOWN_RECIPIENT,
                    f"{address!r} names no organisation, group, role or mission in the directory",
                    f"$.recipients[{index}]",
                )
            resolved |= members
            reached[address] = members
        resolved.discard(sender)
        if not resolved:
            return refuse(
                ErrorCode.NO_RECIPIENTS, "the addressing resolves to nobody but you", "$.recipients"
            )
        permitted = directory.permitted_recipients(sender, message_type)
        if not permitted:
            return refuse(
                ErrorCode.TYPE_NOT_PERMITTED,
                f"{sender} may not send {message_type}",
                "$.body.type",
            )
        not_permitted = resolved - permitted
        allowed = resolved & permitted
        uncleared = allowed - directory.cleared_for(envelope.classification)
        deliver = allowed - uncleared
        partial: Refusal | None = None
        if not_permitted or uncleared:
            code = (
                ErrorCode.RECIPIENT_NOT_PERMITTED
                if not_permitted
                else (ErrorCode.INSUFFICIENT_CLEARANCE)
            )
            reasons = []
            if not_permitted:
                reasons.append(
                    f"{sender} may not send {message_type} to {', '.join(sorted(not_permitted))}"
                )
            if uncleared:
                reasons.append(
                    f"not cleared for {envelope.classification.value}: "
                    + ", ".join(sorted(uncleared))
                )
            partial = refuse(code, "; ".join(reasons), "$.recipients")
            partial.refused_recipients = tuple(sorted(not_permitted | uncleared))
            # The report names the sender's own addresses that reached someone left out.
            partial.refused_addresses = tuple(
                a for a, members in reached.items() if members & (not_permitted | uncleared)
            )
            if not deliver:
                return partial
            partial.reason = f"delivered to {len(deliver)}, refused: " + partial.reason
        return Delivery(
            sender=sender,
            distribution_id=distribution_id,
            message_type=message_type,
            message_id=message_id,
            recipients=sorted(deliver),
            flash=envelope.precedence is Precedence.FLASH,
            precedence=envelope.precedence.value,
            expiration_ms=expiration_ms,
            partial=partial,
        )

    def _route_ack(
        self,
        envelope: Envelope,
        ack: Ack,
        sender: str,
        message_id: str,
        expiration_ms: int | None,
    ) -> Decision:
        def refuse(code: ErrorCode, reason: str, path: str) -> Refusal:
            return Refusal(code, reason, path, envelope.distribution_id, "ack", sender)

        if ack.ref_sender not in self.directory.organisations:
            return refuse(
                ErrorCode.UNKNOWN_RECIPIENT,
                f"{ack.ref_sender!r} is not an organisation in the directory",
                "$.body.ref_sender",
            )
        if envelope.recipients != [f"org:{ack.ref_sender}"]:
            return refuse(
                ErrorCode.INCONSISTENT,
                f"an ack goes only to the original sender: recipients must be "
                f"['org:{ack.ref_sender}']",
                "$.recipients",
            )
        return Delivery(
            sender=sender,
            distribution_id=envelope.distribution_id,
            message_type="ack",
            message_id=message_id,
            recipients=[ack.ref_sender],
            flash=False,
            precedence=envelope.precedence.value,
            expiration_ms=expiration_ms,
        )

    def _refuse_unread(self, code: ErrorCode, reason: str, reply_to: str | None) -> Refusal:
        return Refusal(code, reason, None, None, None, reply_to)


def _refuse_probed(
    body: bytes, code: ErrorCode, reason: str, path: str | None, reply_to: str | None
) -> Refusal:
    distribution_id, message_type = probe(body)
    return Refusal(code, reason, path, distribution_id, message_type, reply_to)


def _refuse_invalid(body: bytes, error: msgspec.ValidationError, sender: str) -> Refusal:
    path = error_path(error)
    if path == "$":
        code = ErrorCode.INVALID_ENVELOPE
    elif path == "$.schema_version":
        code = ErrorCode.UNSUPPORTED_SCHEMA_VERSION
    elif path == "$.body.type":
        code = ErrorCode.UNKNOWN_MESSAGE_TYPE
    elif path.startswith("$.body"):
        code = ErrorCode.INVALID_BODY
    else:
        code = ErrorCode.INVALID_ENVELOPE
    return _refuse_probed(body, code, error_message(error), path, sender)


def utc_now(clock: Callable[[], float] = time.time) -> datetime:
    """The clock as an aware datetime, for stamping the hub's own messages."""
    return datetime.fromtimestamp(clock(), UTC)
