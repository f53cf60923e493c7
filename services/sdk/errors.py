"""Errors the partner SDK raises: every mistake a partner can make is one of these.

    SdkError
     ├── InvalidArgument             a call the SDK cannot act on (ttl and expires_at together, a
     │    │                          duration it cannot read, a closed client, …); says what to
     │    │                          pass instead
     │    └── InvalidMessage          the message breaks the contract (checked before sending);
     │                                names the field path, as the hub would
     ├── ConnectFailed               the broker cannot be reached or refused the connection
     │    ├── LoginRefused            the account or password is wrong
     │    └── VhostRefused            the URL's vhost does not exist or the account may not use it
     ├── PublishFailed               the broker did not take a message
     │    └── ConfirmTimeout          no confirm arrived in time (the send may be retried: the
     │                                distribution id makes a resend idempotent)
     ├── ClientClosed                a send or an inbox on a client after close()
     ├── SettleFailed                ack/reject of a delivery settled already
     ├── SigningKeyMissing           a send needs a signature but the client has no signing key
     ├── SignatureError              a signature does not prove who sent the body (signing.verify)
     │    ├── SignatureMissing        no x-liaison-signature header            (code 208)
     │    ├── SignatureMalformed      not a detached Ed25519 JWS                (code 209)
     │    ├── SignatureUnknownKey     a kid not registered for the sender       (code 210)
     │    ├── SignatureKeyExpired     the key is outside not_before/not_after   (code 211)
     │    └── SignatureMismatch       the body is not what the key signed       (code 212)
     └── NotAnswerable               a receipt for a message that takes none (hub reports,
                                     receipts themselves)

aio-pika, aiormq and msgspec exceptions are translated where the SDK calls them; nothing from
those libraries reaches the caller. The SDK stands alone: it imports the contract
(``liaison.schemas``) and nothing of the hub.
"""


class SdkError(Exception):
    """Root of the partner SDK's errors: ``except SdkError`` catches every one of them."""


class InvalidArgument(SdkError):
    """A call the SDK cannot act on; the message says what to pass instead."""


class InvalidMessage(InvalidArgument):
    """The message breaks the contract; the text names the field path, as the hub would."""

    def __init__(self, reason: str, field_path: str) -> None:
        super().__init__(f"{reason} (at {field_path})")
        self.reason = reason
        self.field_path = field_path


class ConnectFailed(SdkError):
    """The broker could not be reached, or it refused the account or the vhost."""


class LoginRefused(ConnectFailed):
    """The broker refused the account and password."""


class VhostRefused(ConnectFailed):
    """The URL names a vhost that does not exist, or one the account may not use."""


class PublishFailed(SdkError):
    """The broker refused a message (nack, unroutable, or a channel error such as user_id)."""


class ConfirmTimeout(PublishFailed):
    """The broker did not confirm a publish in time; resending the same id is safe."""


class ClientClosed(SdkError):
    """The client was closed: open another with ``Client.connect``."""


class SettleFailed(SdkError):
    """A delivery was settled twice (``ack`` or ``reject`` after the first)."""


class NotAnswerable(SdkError):
    """A receipt was asked for a message that takes none (an error report or a receipt)."""


class SigningKeyMissing(SdkError):
    """The client must sign but was given no private key (``signing_key``/``signing_kid``)."""


class SignatureError(SdkError):
    """A signature does not prove who sent the body; the subclass says why."""


class SignatureMissing(SignatureError):
    """The message carries no ``x-liaison-signature`` header."""


class SignatureMalformed(SignatureError):
    """The header is not a detached, unencoded Ed25519 JWS (``protected..signature``)."""


class SignatureUnknownKey(SignatureError):
    """The key id is not one of the signer's registered keys."""


class SignatureKeyExpired(SignatureError):
    """The key was not valid (not_before/not_after) when the message was received."""


class SignatureMismatch(SignatureError):
    """The signature does not match the body: altered, or a signature from another message."""
