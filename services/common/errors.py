"""Errors shared by every service, and the one mapping from library errors onto them.

    LiaisonError
     ├── ConfigError              a LIAISON_* variable is missing or malformed
     ├── DirectoryError           the directory file cannot be read or is inconsistent
     └── BrokerError              RabbitMQ refused something or cannot be reached
          ├── BrokerUnreachable       no connection (refused, reset, DNS, TLS)
          ├── BrokerTimeout           no answer in time
          ├── BrokerAccessRefused     login or permission refused (AMQP 403, HTTP 401/403)
          ├── BrokerNotFound          no such queue or exchange (AMQP 404)
          ├── BrokerPreconditionFailed  the broker refused the request as asked (AMQP 406)
          └── DeliveryRefused         a publish was nacked or returned

Library errors (aiormq, aio-pika — whose exceptions are aiormq's — and aiohttp's client) are
translated in one place, :func:`broker_errors`, as httpx's ``map_exceptions`` does: the most
specific entry of :data:`BROKER_ERRORS` wins, and the message says what was being done. The SDK
keeps its own tree under its own root error.
"""

import contextlib
from collections.abc import Iterator

import aiohttp
import aiormq.exceptions


class LiaisonError(Exception):
    """Root of every error Liaison raises on purpose."""


class ConfigError(LiaisonError):
    """A setting is missing or malformed; the message names the variable."""


class DirectoryError(LiaisonError):
    """The directory of organisations is unreadable or inconsistent; the message names where."""


class BrokerError(LiaisonError):
    """The broker could not be reached or refused an operation."""

    #: What the library said, when this translates a library error.
    detail: str = ""


class BrokerUnreachable(BrokerError):
    """No connection to the broker (or its management API) could be made or kept."""


class BrokerTimeout(BrokerError):
    """The broker did not answer in time."""


class BrokerAccessRefused(BrokerError):
    """The broker refused the login, or the account lacks the permission."""


class BrokerNotFound(BrokerError):
    """The queue or exchange does not exist."""


class BrokerPreconditionFailed(BrokerError):
    """The broker refused the request as made (arguments, a foreign user_id, …)."""


class DeliveryRefused(BrokerError):
    """The broker nacked or returned a publish."""


#: Library error -> Liaison error; the most specific (earliest in the MRO) match wins.
BROKER_ERRORS: dict[type[BaseException], type[BrokerError]] = {
    aiormq.exceptions.ProbableAuthenticationError: BrokerAccessRefused,
    aiormq.exceptions.ChannelAccessRefused: BrokerAccessRefused,
    aiormq.exceptions.ChannelNotFoundEntity: BrokerNotFound,
    aiormq.exceptions.ChannelPreconditionFailed: BrokerPreconditionFailed,
    aiormq.exceptions.DeliveryError: DeliveryRefused,
    aiormq.exceptions.ChannelInvalidStateError: BrokerUnreachable,
    aiormq.exceptions.AMQPConnectionError: BrokerUnreachable,
    aiormq.exceptions.AMQPError: BrokerError,
    aiohttp.ClientConnectorError: BrokerUnreachable,
    aiohttp.ServerDisconnectedError: BrokerUnreachable,
    aiohttp.ClientError: BrokerError,
    TimeoutError: BrokerTimeout,
    ConnectionError: BrokerUnreachable,
    OSError: BrokerUnreachable,
}


def translate(exc: BaseException) -> type[BrokerError] | None:
    """The Liaison error class for a library error, or None when it is not one."""
    for kind in type(exc).__mro__:
        if kind in BROKER_ERRORS:
            return BROKER_ERRORS[kind]
    return None


def describe(exc: BaseException) -> str:
    """A one-line account of a library error, without the library's class path."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return exc.os_error.strerror or str(exc)
    text = str(exc).strip()
    return text or type(exc).__name__


@contextlib.contextmanager
def broker_errors(what: str) -> Iterator[None]:
    """Run the block; a library error in it becomes the matching BrokerError, saying ``what``
    was being done. Liaison's own errors and anything unrelated pass through unchanged."""
    try:
        yield
    except LiaisonError:
        raise
    except Exception as exc:
        kind = translate(exc)
        if kind is None:
            raise
        error = kind(f"{what}: {describe(exc)}")
        error.detail = describe(exc)
        raise error from None
