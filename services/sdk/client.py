"""The partner SDK's client: connect as one organisation, send typed messages, read the inbox.

    async with Client.connect("mag", "amqps://mag:SECRET@broker.example.org/liaison") as client:
        distribution_id = await client.send(report, recipients=["org:unmas"])
        async for delivery in client.inbox():
            ...
            await delivery.ack()

The connection is aio-pika's robust connection: after a broker restart or a dropped link it
reconnects on its own, re-attaches the inbox consumers, and ``send`` waits for it (up to the
confirm timeout) and sends again — safe, because the hub dedupes on the distribution id.
"""

import asyncio
import ssl
from collections.abc import Generator, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import aio_pika
import aio_pika.abc
import aiormq.exceptions
import msgspec
import structlog

from liaison.common.config import redact_url
from liaison.common.dedupe import DedupeWindow
from liaison.common.tls import certificate_login, handshake_failure
from liaison.schemas.envelope import Body, Envelope, decode_envelope, encode, error_path
from liaison.schemas.types import Classification, Precedence
from liaison.schemas.wire import CONTENT_TYPE, INGRESS_EXCHANGE
from liaison.sdk.compose import compose
from liaison.sdk.errors import (
    ConfirmTimeout,
    ConnectFailed,
    InvalidMessage,
    PublishFailed,
)
from liaison.sdk.inbox import Inbox
from liaison.sdk.tls import PARAMETERS

log = structlog.get_logger("liaison.sdk")

_LOST = (
    aiormq.exceptions.ConnectionClosed,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
)
_REFUSED = (
    aiormq.exceptions.ChannelPreconditionFailed,
    aiormq.exceptions.ChannelAccessRefused,
    aiormq.exceptions.ChannelNotFoundEntity,
)


def partner_url(url: str, account: str | None, password: str | None) -> str:
    """``url`` with ``account`` and ``password`` put in (URL-quoted) when given."""
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise ConnectFailed(f"not an amqp:// or amqps:// URL: {redact_url(url)!r}")
    if account is None and password is None:
        return url
    user = account if account is not None else unquote(parts.username or "")
    secret = password if password is not None else unquote(parts.password or "")
    netloc = f"{quote(user, safe='')}:{quote(secret, safe='')}@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class Client:
    """One organisation's connection to Liaison."""

    def __init__(
        self,
        org: str,
        account: str,
        connection: aio_pika.abc.AbstractRobustConnection,
        channel: aio_pika.abc.AbstractRobustChannel,
        exchange: aio_pika.abc.AbstractExchange,
        *,
        confirm_timeout: float,
        prefetch: int,
        seen: DedupeWindow,
    ) -> None:
        self.org = org
        self.account = account
        self.connection = connection
        self._channel = channel
        self._exchange = exchange
        self._confirm_timeout = confirm_timeout
        self._prefetch = prefetch
        self._seen = seen
        self._inboxes: list[Inbox] = []

    @classmethod
    def connect(
        cls,
        org: str,
        url: str,
        *,
        account: str | None = None,
        password: str | None = None,
        confirm_timeout: float = 15.0,
        prefetch: int = 32,
        reconnect_interval: float = 1.0,
        dedupe_seconds: float = 3600.0,
        dedupe_max_entries: int = 50_000,
        ssl_context: ssl.SSLContext | None = None,
    ) -> "_Connecting":
        """Connect as ``org``: ``async with Client.connect(...) as client`` (or ``await`` it).

        Credentials come from the URL or from ``account``/``password``; the account defaults to
        the URL's user name, else the organisation id. For ``amqps://`` with a private CA or a
        client certificate pass ``ssl_context`` (``liaison.sdk.tls_context(...)`` builds one);
        with certificate login the URL ends in ``?auth=external`` and carries no password.
        """
        if ssl_context is not None and urlsplit(url).scheme != "amqps":
            raise ConnectFailed("ssl_context is given but the URL is not amqps://")
        if ssl_context is None and certificate_login(url):
            raise ConnectFailed(
                "certificate login (?auth=external) needs ssl_context with the client "
                "certificate: tls_context(ca_file=..., cert_file=..., key_file=...)"
            )
        full_url = partner_url(url, account, password)
        login = account or unquote(urlsplit(full_url).username or "") or org
        return _Connecting(
            cls,
            org,
            login,
            full_url,
            {
                "confirm_timeout": confirm_timeout,
                "prefetch": prefetch,
                "seen": DedupeWindow(seconds=dedupe_seconds, max_entries=dedupe_max_entries),
            },
            reconnect_interval,
            ssl_context,
        )

    async def close(self) -> None:
        """Stop the inbox consumers and close the connection."""
        for inbox in self._inboxes:
            await inbox.close()
        self._inboxes.clear()
        if not self.connection.is_closed:
            await self.connection.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def send(
        self,
        body: Body,
        *,
        recipients: Sequence[str],
        precedence: Precedence | str = Precedence.ROUTINE,
        classification: Classification | str = Classification.UNCLASSIFIED,
        expires_at: datetime | None = None,
        ttl: timedelta | None = None,
        incident_id: str | None = None,
        in_reply_to: str | None = None,
        distribution_id: str | None = None,
    ) -> str:
        """Send ``body``; returns its distribution id once the broker has confirmed it."""
        envelope = compose(
            body,
            sender=self.org,
            recipients=recipients,
            precedence=precedence,
            classification=classification,
            expires_at=expires_at,
            ttl=ttl,
            incident_id=incident_id,
            in_reply_to=in_reply_to,
            distribution_id=distribution_id,
        )
        return await self.send_envelope(envelope)

    async def send_envelope(self, envelope: Envelope) -> str:
        """Validate and send a complete envelope; its sender must be this organisation."""
        data = encode(envelope)
        try:
            decode_envelope(data)
        except msgspec.ValidationError as exc:
            raise InvalidMessage(str(exc).split(" - at ")[0], error_path(exc)) from None
        if envelope.sender != self.org:
            raise InvalidMessage(
                f"sender must be {self.org!r}, not {envelope.sender!r}", "$.sender"
            )
        await self.publish_bytes(data, message_id=envelope.distribution_id)
        log.debug("sent", distribution_id=envelope.distribution_id, sender=self.org)
        return envelope.distribution_id

    async def publish_bytes(self, data: bytes, *, message_id: str | None = None) -> None:
        """Publish a document as is, unchecked: the hub validates it and answers any refusal.

        For documents built outside the SDK; ``send`` is the checked way.
        """
        message = aio_pika.Message(
            data,
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            user_id=self.account,
            message_id=message_id,
            timestamp=datetime.now(UTC),
            app_id="liaison-sdk",
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._confirm_timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ConfirmTimeout(
                    f"the broker did not confirm within {self._confirm_timeout:g}s; "
                    "sending again with the same distribution id is safe"
                )
            try:
                confirm = await self._exchange.publish(
                    message, routing_key=self.org, mandatory=True, timeout=remaining
                )
            except TimeoutError:
                continue  # loops once more and raises ConfirmTimeout
            except _REFUSED as exc:
                raise PublishFailed(f"the broker refused the message: {_frame_text(exc)}") from None
            except aiormq.exceptions.DeliveryError as exc:
                raise PublishFailed(f"the broker did not take the message: {exc}") from None
            except _LOST as exc:
                log.info("send_waiting_for_reconnect", error=str(exc) or type(exc).__name__)
                await self._wait_reconnected(deadline - loop.time())
                continue
            if not isinstance(confirm, aiormq.spec.Basic.Ack):
                raise PublishFailed(f"the broker did not confirm the message: {confirm!r}")
            return

    async def _wait_reconnected(self, budget: float) -> None:
        try:
            async with asyncio.timeout(max(budget, 0.01)):
                await self.connection.ready()
                await self._channel.ready()
        except TimeoutError:
            pass
        await asyncio.sleep(0.05)

    async def inbox(self) -> Inbox:
        """Start reading ``inbox.<org>`` and ``inbox.<org>.flash``: ``async for d in inbox``."""
        inbox = Inbox(
            self.connection,
            self.org,
            reply=self._reply,
            seen=self._seen,
            prefetch=self._prefetch,
        )
        await inbox.start()
        self._inboxes.append(inbox)
        return inbox

    async def _reply(self, body: Body, *, recipients: list[str], in_reply_to: str | None) -> str:
        return await self.send(body, recipients=recipients, in_reply_to=in_reply_to)


def _frame_text(exc: BaseException) -> str:
    args = [str(a) for a in exc.args if a]
    return "; ".join(args) or type(exc).__name__


class _Connecting:
    """``Client.connect(...)``: awaitable, and an async context manager that closes."""

    def __init__(
        self,
        cls: type[Client],
        org: str,
        account: str,
        url: str,
        options: dict[str, Any],
        reconnect_interval: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._cls = cls
        self._ssl_context = ssl_context
        self._org = org
        self._account = account
        self._url = url
        self._options = options
        self._reconnect_interval = reconnect_interval
        self._client: Client | None = None

    async def _open(self) -> Client:
        try:
            connection = await aio_pika.connect_robust(
                self._url,
                reconnect_interval=self._reconnect_interval,
                client_properties={"connection_name": f"liaison-sdk {self._org}"},
                timeout=15,
                ssl_context=self._ssl_context,
            )
        except (aiormq.exceptions.AMQPError, ConnectionError, OSError, TimeoutError) as exc:
            if (tls := handshake_failure(exc, "url", PARAMETERS)) is not None:
                raise ConnectFailed(f"cannot connect to {redact_url(self._url)}: {tls}") from None
            if certificate_login(self._url) and not isinstance(exc, TimeoutError):
                # A refused client certificate often shows only as a reset connection (the
                # broker's TLS 1.3 alert can be lost with it): say what to check.
                raise ConnectFailed(
                    f"cannot connect to {redact_url(self._url)} by certificate: "
                    f"{_frame_text(exc)}; check that ssl_context presents a client certificate "
                    "(cert_file, key_file) issued by the broker's CA for an existing account"
                ) from None
            raise ConnectFailed(
                f"cannot connect to {redact_url(self._url)} as {self._account}: {_frame_text(exc)}"
            ) from None
        try:
            channel = await connection.channel(publisher_confirms=True)
        except (aiormq.exceptions.AMQPError, ConnectionError) as exc:
            await connection.close()
            raise ConnectFailed(f"cannot open a channel: {_frame_text(exc)}") from None
        assert isinstance(channel, aio_pika.abc.AbstractRobustChannel)
        exchange = await channel.get_exchange(INGRESS_EXCHANGE, ensure=False)
        return self._cls(self._org, self._account, connection, channel, exchange, **self._options)

    def __await__(self) -> Generator[Any, None, Client]:
        return self._open().__await__()

    async def __aenter__(self) -> Client:
        self._client = await self._open()
        return self._client

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.close()
