"""What the router decides for one ingress message.

    Verdict = Delivery | Refusal

A Refusal carries everything the sender's error report and the dead-letter copy need; a
Delivery may carry a partial Refusal for the recipients it left out. Whether the message was
handled before is not the router's to say: the consumer asks the hub's memory (memory.py).
"""

from dataclasses import dataclass

from liaison.schemas.codes import ErrorCode


@dataclass(slots=True)
class Refusal:
    """The hub refuses a message, or part of its addressing, with one code."""

    code: ErrorCode
    reason: str
    field_path: str | None = None
    distribution_id: str | None = None
    message_type: str | None = None
    #: Organisation that gets the error report; None when nobody can be told.
    reply_to: str | None = None
    #: Organisation ids left out (for logs and metrics).
    refused_recipients: tuple[str, ...] = ()
    #: The sender's addresses, as written, that reached an organisation left out: what the
    #: report's `refused_recipients` carries. Empty: `org:<id>` of each refused_recipients.
    refused_addresses: tuple[str, ...] = ()


@dataclass(slots=True)
class Delivery:
    """Deliver the original bytes to ``recipients`` in one publish."""

    sender: str
    distribution_id: str
    message_type: str
    message_id: str
    recipients: list[str]
    flash: bool
    precedence: str
    expiration_ms: int | None
    #: Recipients the policy left out: reported to the sender.
    partial: Refusal | None = None
    #: Recipients no inbox would take (the hub's inbox census): reported to the sender too.
    unrouted: Refusal | None = None
    #: The sender's ``x-liaison-signature`` as received, forwarded unchanged to recipients.
    signature: str | None = None
    #: The key that signed it (verified), None when unsigned.
    signature_kid: str | None = None
    #: "verified", or "absent" for an unsigned message its sender may send unsigned
    #: (``signatures = "when_present"``); set by the router's signature step.
    signature_status: str | None = None


#: The router's answer for one message (named apart from the resources family's ``Decision``).
Verdict = Delivery | Refusal
