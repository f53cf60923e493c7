"""Opening the broker connection, and what the broker's refusals mean to a partner.

The one place that opens aio-pika's robust connection and the one mapping of its failures to
the SDK's errors; every connection option (TLS included) is passed here. A cluster is given as
its nodes' URLs: the connection opens on the first that answers and, whenever it fails or is
lost, tries the next one (``NodeListConnection``).
"""

import asyncio
from collections.abc import Sequence
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


def node_urls(url: str | Sequence[str]) -> list[str]:
    """A cluster's node URLs: a list, or one string with the URLs comma-separated (a comma in a
    password is written ``%2C``); InvalidArgument for an empty list or a bad URL."""
    parts = url.split(",") if isinstance(url, str) else list(url)
    urls = [part.strip() for part in parts if isinstance(part, str) and part.strip()]
    if not urls or len(urls) != len(parts):
        raise InvalidArgument(
            "the broker URL looks like amqps://host/vhost; for a cluster, give every node's URL "
            "(a list, or one string with commas between them)"
        )
    schemes = {parse_url(u).scheme for u in urls}
    if len(schemes) > 1:
        raise InvalidArgument("the node URLs mix amqp:// and amqps://; use one scheme")
    return urls


class NodeListConnection(aio_pika.RobustConnection):
    """aio-pika's robust connection over several nodes: after a failed attempt or a lost
    connection the next attempt goes to the next node of the list (round the list)."""

    def __init__(self, nodes: Sequence[str], **kwargs: Any) -> None:
        self._nodes = [URL(node) for node in nodes]
        self._node = 0
        super().__init__(self._nodes[0], **kwargs)

    @property
    def node(self) -> str:
        """The URL (password hidden) of the node this connection is on or tries next."""
        return redact_url(str(self.url))

    def start_at(self, index: int) -> None:
        """Make node ``index`` (of the list) the next one tried."""
        self._node = index % len(self._nodes)
        self.url = self._nodes[self._node]

    async def _on_connection_close(self, closing: "asyncio.Future[Any]") -> None:
        # Called by aio-pika both when a connection attempt fails and when an open connection
        # is lost: either way, the node in self.url is not answering, so the next try goes on.
        if not self._close_called and not self.is_closed and len(self._nodes) > 1:
            self.start_at(self._node + 1)
        await super()._on_connection_close(closing)


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
    urls: Sequence[str],
    *,
    org: str,
    account: str,
    reconnect_interval: float,
    options: dict[str, Any] | None = None,
) -> NodeListConnection:
    """A robust connection as ``account`` to the first of ``urls`` (a cluster's nodes) that
    answers; if none does, the ConnectFailed of the last one tried.

    ``options`` are further keyword arguments of the connection (TLS settings).
    """
    failure: ConnectFailed | None = None
    for index, url in enumerate(urls):
        connection = NodeListConnection(
            urls,
            reconnect_interval=reconnect_interval,
            client_properties={"connection_name": f"liaison-sdk {org}"},
            **(options or {}),
        )
        connection.start_at(index)
        try:
            await connection.connect(timeout=CONNECT_TIMEOUT)
        except (aiormq.exceptions.AMQPError, ConnectionError, OSError, TimeoutError) as exc:
            await connection.close()
            failure = connect_error(exc, url, account)
            if isinstance(failure, LoginRefused | VhostRefused):
                raise failure from None  # the next node would say the same
            continue
        return connection
    assert failure is not None, "no node URL given"
    raise failure


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
