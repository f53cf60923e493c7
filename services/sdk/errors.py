"""Errors the partner SDK raises; each is a LiaisonError, so the command line prints one line.

    LiaisonError                         (liaison.common.errors)
     └── SdkError
          ├── ConnectFailed               the broker cannot be reached or refused the login
          ├── InvalidMessage              the envelope breaks the contract (checked before sending)
          ├── PublishFailed               the broker did not take a message
          │    └── ConfirmTimeout         no confirm arrived in time (the send may be retried:
          │                               the distribution id makes a resend idempotent)
          ├── SettleFailed                ack/reject of a delivery settled already
          └── NotAnswerable               a receipt for a message that takes none (hub reports,
                                          receipts themselves)

aio-pika and aiormq exceptions are translated in `liaison.sdk.client` and
`liaison.sdk.delivery`; nothing from those libraries reaches the caller.
"""

from liaison.common.errors import LiaisonError


class SdkError(LiaisonError):
    """Root of the partner SDK's errors."""


class ConnectFailed(SdkError):
    """The broker could not be reached, or it refused the account or the vhost."""


class InvalidMessage(SdkError):
    """The message breaks the contract; the text names the field path, as the hub would."""

    def __init__(self, reason: str, field_path: str) -> None:
        super().__init__(f"{reason} (at {field_path})")
        self.reason = reason
        self.field_path = field_path


class PublishFailed(SdkError):
    """The broker refused a message (nack, unroutable, or a channel error such as user_id)."""


class ConfirmTimeout(PublishFailed):
    """The broker did not confirm a publish in time; resending the same id is safe."""


class SettleFailed(SdkError):
    """A delivery was settled twice (``ack`` or ``reject`` after the first)."""


class NotAnswerable(SdkError):
    """A receipt was asked for a message that takes none (an error report or a receipt)."""
