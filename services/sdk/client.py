"""The partner SDK's client: connect as one organisation, send typed messages, read the inbox.

The connection is aio-pika's robust connection: after a broker restart or a dropped link it
reconnects on its own, re-attaches the inbox consumers, and ``send`` waits for it (however
long the broker is away; the confirm timeout counts from the reconnect) and sends again — safe,
because the hub dedupes on the distribution id.
"""

import asyncio
import functools
import logging
import ssl
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

import aio_pika
import aio_pika.abc
import aiormq.exceptions
import msgspec

from liaison.schemas.envelope import Body, Envelope, decode_envelope, encode, error_path
from liaison.schemas.types import Classification, Precedence
from liaison.schemas.wire import CONTENT_TYPE, INGRESS_EXCHANGE
from liaison.sdk.compose import compose
from liaison.sdk.connection import (
    frame_text,
    open_connection,
    parse_url,
    partner_url,
    publish_error,
)
from liaison.sdk.errors import (
    ClientClosed,
    ConfirmTimeout,
    ConnectFailed,
    InvalidArgument,
    InvalidMessage,
    PublishFailed,
)
from liaison.sdk.inbox import Inbox
from liaison.sdk.tls import certificate_login

log = logging.getLogger("liaison.sdk.client")

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


@dataclass(frozen=True, slots=True)
class _Session:
    """What ``Client.connect`` opened: internals a partner never builds by hand."""

    org: str
    account: str
    connection: aio_pika.abc.AbstractRobustConnection
    channel: aio_pika.abc.AbstractRobustChannel
    exchange: aio_pika.abc.AbstractExchange
    confirm_timeout: float
    prefetch: int
    dedupe_seconds: float
    dedupe_max_entries: int


class Client:
    """One organisation's connection to Liaison; open it with ``Client.connect``.

        async with Client.connect("mag", "amqps://mag:SECRET@broker.example.org/liaison") as client:
            distribution_id = await client.send(report, recipients=["org:unmas"])
            async with client.inbox() as inbox:
                inbox.stop_on_signals()           # Ctrl-C / SIGTERM end the loop cleanly
                async for delivery in inbox:
                    ...
                    await delivery.ack()

    Every mistake raises a ``liaison.sdk.SdkError`` that says what to change.
    """

    def __init__(self, session: _Session) -> None:
        """Internal: use ``await Client.connect(...)`` or ``async with Client.connect(...)``."""
        if not isinstance(session, _Session):
            raise InvalidArgument("open a client with Client.connect(org, url, ...)")
        self._session = session
        self._inbox: Inbox | None = None
        self._inbox_lock = asyncio.Lock()
        self._closed = False

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
    ) -> "Opening[Client]":
        """Connect as ``org``: ``async with Client.connect(...) as client`` (or ``await`` it).

        Credentials come from the URL or from ``account``/``password``; the account defaults to
        the URL's user name, else the organisation id. The URL's path is the vhost your operator
        gave you (``amqps://broker.example.org/liaison``). For ``amqps://`` with a private CA or a
        client certificate pass ``ssl_context`` (``liaison.sdk.tls_context(...)`` builds one);
        with certificate login the URL ends in ``?auth=external`` and carries no password.
        Raises ``LoginRefused`` for a wrong account or password, ``VhostRefused`` for a wrong
        vhost, ``ConnectFailed`` otherwise.
        """
        if ssl_context is not None and parse_url(url).scheme != "amqps":
            raise ConnectFailed("ssl_context is given but the URL is not amqps://")
        if ssl_context is None and certificate_login(url):
            raise ConnectFailed(
                "certificate login (?auth=external) needs ssl_context with the client "
                "certificate: tls_context(ca_file=..., cert_file=..., key_file=...)"
            )
        if not org or not isinstance(org, str):
            raise InvalidArgument("org is your organisation id, e.g. 'mag'")
        for name, value in (
            ("confirm_timeout", confirm_timeout),
            ("reconnect_interval", reconnect_interval),
            ("dedupe_seconds", dedupe_seconds),
        ):
            if not value > 0:
                raise InvalidArgument(f"{name} must be a positive number of seconds, not {value}")
        for name, count in (("prefetch", prefetch), ("dedupe_max_entries", dedupe_max_entries)):
            if not isinstance(count, int) or count < 1:
                raise InvalidArgument(f"{name} must be a whole number of at least 1, not {count}")
        full_url = partner_url(url, account, password)
        login = account or parse_url(full_url).user or org
        return Opening(
            functools.partial(
                _open_client,
                org=org,
                account=login,
                url=full_url,
                reconnect_interval=reconnect_interval,
                # Further aio_pika.connect_robust arguments.
                connection_options={} if ssl_context is None else {"ssl_context": ssl_context},
                settings={
                    "confirm_timeout": confirm_timeout,
                    "prefetch": prefetch,
                    "dedupe_seconds": dedupe_seconds,
                    "dedupe_max_entries": dedupe_max_entries,
                },
            )
        )

    @property
    def org(self) -> str:
        """The organisation this client sends as."""
        return self._session.org

    @property
    def account(self) -> str:
        """The broker account it logged in with."""
        return self._session.account

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    async def close(self) -> None:
        """Stop the inbox consumers and close the connection."""
        self._closed = True
        if self._inbox is not None:
            await self._inbox.close()
        connection = self._session.connection
        if not connection.is_closed:
            await connection.close()

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
        """Send ``body``; returns its distribution id once the broker has confirmed it.

        Checked before anything is published (``InvalidMessage``/``InvalidArgument``): the
        contract, a type only the hub sends, the precedence and classification values, an
        ``expires_at`` already past or without a time zone, a ``ttl`` that is not positive.
        """
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
        if not isinstance(envelope, Envelope):
            raise InvalidArgument(f"send_envelope takes an Envelope, not {type(envelope).__name__}")
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
        log.debug("sent %s as %s", envelope.distribution_id, self.org)
        return envelope.distribution_id

    async def publish_bytes(self, data: bytes, *, message_id: str | None = None) -> None:
        """Publish a document as is, unchecked: the hub validates it and answers any refusal.

        For documents built outside the SDK; ``send`` is the checked way.
        """
        if self._closed:
            raise ClientClosed("this client is closed; open another with Client.connect")
        session = self._session
        message = aio_pika.Message(
            data,
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            user_id=session.account,
            message_id=message_id,
            timestamp=datetime.now(UTC),
            app_id="liaison-sdk",
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + session.confirm_timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ConfirmTimeout(
                    f"the broker did not confirm within {session.confirm_timeout:g}s; "
                    "sending again with the same distribution id is safe"
                )
            try:
                confirm = await session.exchange.publish(
                    message, routing_key=session.org, mandatory=True, timeout=remaining
                )
            except TimeoutError:
                if not self._closed and not session.connection.connected.is_set():
                    # The broker went away while we waited: not its late answer but its absence.
                    await self._wait_reconnected()
                    deadline = loop.time() + session.confirm_timeout
                continue  # else loops once more and raises ConfirmTimeout
            except _REFUSED as exc:
                raise PublishFailed(f"the broker refused the message: {frame_text(exc)}") from None
            except aiormq.exceptions.DeliveryError as exc:
                raise publish_error(exc, session.org) from None
            except _LOST as exc:
                if self._closed:
                    raise ClientClosed("the client was closed while sending") from None
                log.info("send waits for the reconnect: %s", str(exc) or type(exc).__name__)
                await self._wait_reconnected()
                # The confirm timeout is for a live broker's answer: a broker restart can take
                # longer, and the send (like the inbox) waits it out and starts afresh.
                deadline = loop.time() + session.confirm_timeout
                continue
            if not isinstance(confirm, aiormq.spec.Basic.Ack):
                raise PublishFailed(
                    f"the broker did not confirm the message ({type(confirm).__name__}); "
                    "sending it again with the same distribution id is safe"
                )
            return

    async def _wait_reconnected(self) -> None:
        """Until the connection and channel are back, however long; ``close`` ends the wait."""
        while not self._closed:
            try:
                async with asyncio.timeout(1.0):
                    await self._session.connection.ready()
                    await self._session.channel.ready()
            except TimeoutError:
                continue
            break
        await asyncio.sleep(0.05)

    def inbox(self) -> "Opening[Inbox]":
        """Read ``inbox.<org>`` and ``inbox.<org>.flash`` as one stream, flash first.

        ``async with client.inbox() as inbox`` (closes it at the end) or ``await
        client.inbox()``. A client has one inbox: while it is open, calling this again gives
        the same one, not a second pair of consumers.
        """
        return Opening(self._open_inbox)

    async def _open_inbox(self) -> Inbox:
        if self._closed:
            raise ClientClosed("this client is closed; open another with Client.connect")
        async with self._inbox_lock:
            if self._inbox is not None and not self._inbox.closed:
                return self._inbox
            session = self._session
            inbox = Inbox(
                session.connection,
                session.org,
                reply=self.send,
                prefetch=session.prefetch,
                dedupe_seconds=session.dedupe_seconds,
                dedupe_max_entries=session.dedupe_max_entries,
            )
            await inbox.start()
            self._inbox = inbox
            return inbox


async def _open_client(
    *,
    org: str,
    account: str,
    url: str,
    reconnect_interval: float,
    connection_options: dict[str, Any],
    settings: dict[str, Any],
) -> Client:
    """Connect, open the publishing channel, and wrap both in a Client."""
    connection = await open_connection(
        url,
        org=org,
        account=account,
        reconnect_interval=reconnect_interval,
        options=connection_options,
    )
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(INGRESS_EXCHANGE, ensure=False)
    except (aiormq.exceptions.AMQPError, ConnectionError) as exc:
        await connection.close()
        raise ConnectFailed(f"cannot open a channel: {frame_text(exc)}") from None
    assert isinstance(channel, aio_pika.abc.AbstractRobustChannel)
    return Client(
        _Session(
            org=org,
            account=account,
            connection=connection,
            channel=channel,
            exchange=exchange,
            **settings,
        )
    )


class _Closable(Protocol):
    async def close(self) -> None: ...


_T = TypeVar("_T", bound=_Closable)


class Opening(Generic[_T]):
    """Opening a client or an inbox: ``await`` it, or ``async with`` it to close it at the end."""

    def __init__(self, open_it: Callable[[], Awaitable[_T]]) -> None:
        self._open_it = open_it
        self._opened: _T | None = None

    def __await__(self) -> Generator[Any, None, _T]:
        return self._open_it().__await__()

    async def __aenter__(self) -> _T:
        self._opened = await self._open_it()
        return self._opened

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._opened is not None:
            await self._opened.close()
