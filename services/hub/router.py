"""The hub's verdict on one ingress message, as a pure function of its bytes and properties.

Checks run cheapest and most fundamental first: the delivery limit (poison), size and content
type, who really sent it (the broker-validated ``user_id``), the contract, expiry, then
addressing and policy. No I/O and no state but the directory in force, so every rule is
unit-testable and property-testable without a broker. Whether a message was handled before is
the hub's memory's to say (memory.py), not the router's.
"""

import time
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from liaison.common.topology import HUB_DELIVERY_LIMIT
from liaison.directory.index import HUB_ONLY_TYPES, HUB_SENDER_ID, DirectoryIndex
from liaison.hub.decisions import Delivery, Refusal, Verdict
from liaison.hub.decoding import SMALL_BODY_BYTES, CollectorHeldOff
from liaison.hub.geo import ROUTING_TAGS, decode_for_routing
from liaison.schemas.codes import ErrorCode
from liaison.schemas.envelope import Envelope, error_message, error_path
from liaison.schemas.messages.system import Ack, StatusRequest
from liaison.schemas.probe import probe as probe  # consumer.py imports it from here
from liaison.schemas.types import Precedence
from liaison.schemas.wire import CONTENT_TYPE, HEADER_SIGNATURE, delivered_message_id
from liaison.sdk.errors import (
    SignatureError,
    SignatureKeyExpired,
    SignatureMalformed,
    SignatureMismatch,
    SignatureMissing,
    SignatureUnknownKey,
)
from liaison.sdk.signing import verify

#: Body classes by wire type name, the decoder's Raw-geometry subclasses too (geo.py).
_TAGS = ROUTING_TAGS
_ACCEPTED_CONTENT_TYPES = frozenset({CONTENT_TYPE, "application/json; charset=utf-8"})
#: The delivery count (``x-delivery-count``) of a message's last delivery before the broker
#: gives up on it: the hub answers and dead-letters it itself instead of routing it again.
LAST_DELIVERY = HUB_DELIVERY_LIMIT - 1
#: Where a signature refusal points: the AMQP header, not the body.
SIGNATURE_FIELD = f"headers.{HEADER_SIGNATURE}"
_SIGNATURE_CODES: dict[type[SignatureError], ErrorCode] = {
    SignatureMissing: ErrorCode.SIGNATURE_MISSING,
    SignatureMalformed: ErrorCode.SIGNATURE_MALFORMED,
    SignatureUnknownKey: ErrorCode.SIGNATURE_UNKNOWN_KEY,
    SignatureKeyExpired: ErrorCode.SIGNATURE_KEY_EXPIRED,
    SignatureMismatch: ErrorCode.SIGNATURE_MISMATCH,
}


class Router:
    """Decides what happens to each message, against the directory in force."""

    def __init__(
        self,
        directory: DirectoryIndex,
        *,
        max_message_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self._max_bytes = max_message_bytes
        self._clock = clock

    def decide(
        self,
        body: bytes,
        *,
        user_id: str | None,
        routing_key: str,
        content_type: str | None,
        delivery_count: int = 0,
        signature: object = None,
    ) -> Verdict:
        """The verdict on one message; never raises for any input.

        ``delivery_count`` is how often the broker delivered it before (``x-delivery-count``);
        ``signature`` the ``x-liaison-signature`` header's value, if any.
        """
        if delivery_count >= LAST_DELIVERY:
            return self.give_up(body, user_id=user_id, routing_key=routing_key)
        return self.route(
            body,
            user_id=user_id,
            routing_key=routing_key,
            content_type=content_type,
            signature=signature,
        )

    def give_up(self, body: bytes, *, user_id: str | None, routing_key: str) -> Refusal:
        """Refuse a message whose handling failed every time (poison), telling its sender.

        The routing that failed on it before is not run again; only the lenient probe reads
        it, so the sender learns which message it was.
        """
        distribution_id, message_type = probe(body)
        return Refusal(
            ErrorCode.POISON,
            f"processing failed {LAST_DELIVERY} times; kept for an operator",
            distribution_id=distribution_id,
            message_type=message_type,
            reply_to=self._reply_to(user_id, routing_key),
        )

    def route(
        self,
        body: bytes,
        *,
        user_id: str | None,
        routing_key: str,
        content_type: str | None,
        signature: object = None,
    ) -> Verdict:
        """Where a message goes, or why it goes nowhere, under the directory in force."""
        directory = self.directory
        account_org = directory.org_for_account(user_id) if user_id else None
        # A field site's relay publishes for the organisations registered at its site.
        site_orgs = (
            directory.orgs_for_site_account(user_id) if user_id and not account_org else None
        )
        reply_to = account_org or self._reply_to(user_id, routing_key)

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
        if account_org is None and site_orgs is None:
            return _refuse_probed(
                body,
                ErrorCode.UNKNOWN_ACCOUNT,
                f"broker account {user_id[:64]!r} belongs to no organisation in the directory",
                None,
                None,
            )
        # A site relay's message is signed by the partner its routing key names (the site let
        # that partner publish only with its own id); any other key is refused after decoding.
        signer = account_org or (routing_key if site_orgs and routing_key in site_orgs else None)
        signed: tuple[str, str] | None = None
        if signer is not None:
            # Verified before the body is parsed: what is read next is what the sender signed.
            checked = self._check_signature(body, signature, signer)
            if isinstance(checked, Refusal):
                return checked
            signed = checked

        def decide() -> Verdict:
            return self._decode_and_route(
                body,
                account_org,
                site_orgs,
                user_id=user_id,
                routing_key=routing_key,
                reply_to=reply_to,
            )

        if len(body) < SMALL_BODY_BYTES:
            verdict = decide()
        else:
            # The decoded envelope is dropped before the collector may run again (decoding.py).
            with CollectorHeldOff():
                verdict = decide()
        if isinstance(verdict, Delivery) and signed is not None:
            verdict.signature, verdict.signature_kid = signed
            verdict.signature_status = "verified"
        elif isinstance(verdict, Delivery):
            verdict.signature_status = "absent"
        return verdict

    def _decode_and_route(
        self,
        body: bytes,
        account_org: str | None,
        site_orgs: frozenset[str] | None,
        *,
        user_id: str,
        routing_key: str,
        reply_to: str | None,
    ) -> Verdict:
        try:
            # The contract's decoder, or its errors, with coordinates checked on the raw bytes.
            envelope = decode_for_routing(body)
        except msgspec.ValidationError as exc:
            return _refuse_invalid(body, exc, reply_to)
        except msgspec.DecodeError as exc:
            return _refuse_probed(
                body, ErrorCode.MALFORMED, f"not a JSON document: {exc}", None, reply_to
            )
        except RecursionError:
            # msgspec gives up on documents nested deeper than the interpreter's stack allows.
            return _refuse_probed(
                body,
                ErrorCode.MALFORMED,
                "the JSON document is nested too deeply",
                None,
                reply_to,
            )

        if site_orgs is not None:
            # The site's broker checked the partner's user_id and let it publish only with its
            # own org id as routing key, which the relay keeps: the routing key is the partner.
            # A compromised site can claim only its own organisations (headquarters' topic
            # permission and this check), never another site's or headquarters' ones.
            if envelope.sender not in site_orgs or envelope.sender != routing_key:
                return Refusal(
                    ErrorCode.SENDER_MISMATCH,
                    f"sender is {envelope.sender[:64]!r} but the site relay {user_id!r} "
                    f"carried it for {routing_key[:64]!r}",
                    "$.sender",
                    envelope.distribution_id,
                    _TAGS[type(envelope.body)],
                    reply_to,
                )
            return self._route(envelope, envelope.sender)
        assert account_org is not None  # narrowed: unknown accounts were refused above
        return self._route(envelope, account_org)

    def _check_signature(
        self, body: bytes, header: object, sender: str
    ) -> tuple[str, str] | Refusal | None:
        """(header, kid) of a valid signature by ``sender``; None for an unsigned message its
        sender may send unsigned; else the refusal with the signature's code."""
        directory = self.directory
        if header is None and sender not in directory.signatures_required:
            return None
        try:
            key = verify(
                body,
                header,
                directory.signing_keys,
                signer=sender,
                at=datetime.fromtimestamp(self._clock(), UTC),
            )
        except SignatureError as exc:
            code = _SIGNATURE_CODES[type(exc)]
            return _refuse_probed(body, code, str(exc), SIGNATURE_FIELD, sender)
        assert isinstance(header, str | bytes)
        text = header if isinstance(header, str) else header.decode("ascii")
        return text, key.kid

    def _reply_to(self, user_id: str | None, routing_key: str) -> str | None:
        # Who hears of a refusal: the account's organisation; without user_id, the routing key
        # still names the publisher (topic permissions only let a partner publish with its own
        # organisation id).
        directory = self.directory
        if user_id:
            site_orgs = directory.orgs_for_site_account(user_id)
            if site_orgs is not None:
                # A site's relay keeps the partner's routing key, its own org id at the site.
                return routing_key if routing_key in site_orgs else None
            return directory.org_for_account(user_id)
        return routing_key if routing_key in directory.organisations else None

    def _route(self, envelope: Envelope, sender: str) -> Verdict:
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
    ) -> Verdict:
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


def _refuse_invalid(body: bytes, error: msgspec.ValidationError, sender: str | None) -> Refusal:
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
