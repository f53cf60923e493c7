"""Opening the broker connection, and what the broker's refusals mean to a partner.

The one place that calls ``aio_pika.connect_robust`` and the one mapping of its failures to the
SDK's errors; every connection option (TLS included) is passed here.
"""

from typing import Any

import aio_pika
import aio_pika.abc
import aiormq.exceptions
from yarl import URL

from liaison.sdk.errors import (
    ConnectFailed,
    InvalidArgument,
    LoginRefused,
    PublishFailed,
    VhostRefused,
)
from liaison.sdk.tls import certificate_login, handshake_failure

CONNECT_TIMEOUT = 15.0
_LOGIN_REFUSED = (
    aiormq.exceptions.ProbableAuthenticationError,
    aiormq.exceptions.AuthenticationError,
)


def partner_url(url: str, account: str | None, password: str | None) -> str:
    """``url`` with ``account`` and ``password`` put in (URL-quoted) when given."""
    parsed = parse_url(url)
    if account is None and password is None:
        return url
    user = account if account is not None else (parsed.user or "")
    secret = password if password is not None else (parsed.password or "")
    return str(parsed.with_user(user).with_password(secret))


def parse_url(url: str) -> URL:
    """``url`` parsed, or InvalidArgument when it is not an amqp:// or amqps:// URL."""
    try:
        parsed = URL(url)
    except (TypeError, ValueError):
        raise InvalidArgument("the broker URL looks like amqps://host/vhost") from None
    if parsed.scheme not in ("amqp", "amqps") or not parsed.host:
        raise InvalidArgument(
            f"the broker URL must be amqp:// or amqps://host/vhost, not {redact_url(url)!r}"
        )
    return parsed


def redact_url(url: str) -> str:
    """The URL with any password replaced, safe for a log line or an error message."""
    try:
        parsed = URL(url)
    except (TypeError, ValueError):
        return "<unparsable URL>"
    return str(parsed.with_password("***")) if parsed.password is not None else url


def vhost_of(url: str) -> str:
    """The vhost a URL names: its path without the leading slash, ``/`` when it has none."""
    return URL(url).path[1:] or "/"


async def open_connection(
    url: str,
    *,
    org: str,
    account: str,
    reconnect_interval: float,
    options: dict[str, Any] | None = None,
) -> aio_pika.abc.AbstractRobustConnection:
    """A robust connection to the broker as ``account``; every failure is a ConnectFailed.

    ``options`` are further keyword arguments of ``aio_pika.connect_robust`` (TLS settings).
    """
    try:
        connection: aio_pika.abc.AbstractRobustConnection = await aio_pika.connect_robust(
            url,
            reconnect_interval=reconnect_interval,
            client_properties={"connection_name": f"liaison-sdk {org}"},
            timeout=CONNECT_TIMEOUT,
            **(options or {}),
        )
    except (aiormq.exceptions.AMQPError, ConnectionError, OSError, TimeoutError) as exc:
        raise connect_error(exc, url, account) from None
    return connection


def connect_error(exc: BaseException, url: str, account: str) -> ConnectFailed:
    """The SDK error for a failure to connect, saying what to change."""
    where = redact_url(url)
    if (reason := handshake_failure(exc, "url")) is not None:
        return ConnectFailed(f"cannot connect to {where}: {reason}")
    if certificate_login(url) and not isinstance(exc, TimeoutError):
        # A refused client certificate often shows only as a reset connection (the broker's
        # TLS 1.3 alert can be lost with it): say what to check.
        return ConnectFailed(
            f"cannot connect to {where} by certificate: {frame_text(exc)}; check that "
            "ssl_context presents a client certificate (cert_file, key_file) issued by the "
            "broker's CA for an existing account"
        )
    if isinstance(
        exc, aiormq.exceptions.ProbableAuthenticationError | aiormq.exceptions.AuthenticationError
    ):
        return LoginRefused(
            f"the broker at {where} refused the login of account {account!r}: check the "
            "account and password your operator gave you"
        )
    if isinstance(exc, aiormq.exceptions.InvalidFrameError) and "Connection.Close" in str(exc):
        # RabbitMQ closes the connection instead of opening the vhost; aiormq keeps no reason.
        vhost = vhost_of(url)
        return VhostRefused(
            f"the broker refused vhost {vhost!r} to account {account!r}: it does not exist or "
            "the account may not use it. Put the vhost your operator gave you in the URL's "
            "path, e.g. amqps://broker.example.org/liaison (no path means vhost '/')"
        )
    if isinstance(exc, TimeoutError):
        return ConnectFailed(f"no answer from {where} within {CONNECT_TIMEOUT:g}s")
    return ConnectFailed(f"cannot connect to {where} as {account!r}: {frame_text(exc)}")


def frame_text(exc: BaseException) -> str:
    """The readable part of an aiormq exception, without object reprs."""
    args = [str(a) for a in exc.args if a]
    return "; ".join(args) or type(exc).__name__


def publish_error(exc: aiormq.exceptions.DeliveryError, org: str) -> PublishFailed:
    """The SDK error for a publish the broker returned or nacked, saying what to do."""
    frame = exc.frame
    if isinstance(frame, aiormq.spec.Basic.Return):
        return PublishFailed(
            f"the broker could not route the message ({frame.reply_text}): nothing on "
            f"{frame.exchange!r} takes routing key {frame.routing_key!r}; check that {org!r} "
            "is your organisation id and that the operator has provisioned it"
        )
    if isinstance(frame, aiormq.spec.Basic.Nack):
        return PublishFailed(
            "the broker could not take the message (nack); sending it again with the same "
            "distribution id is safe"
        )
    return PublishFailed(f"the broker did not take the message: {exc}")
