"""The partner SDK's client: connect as one organisation, send typed messages, read the inbox.

The connection is aio-pika's robust connection: after a broker restart or a dropped link it
reconnects on its own, re-attaches the inbox consumers, and ``send`` waits for it (however
long the broker is away; the confirm timeout counts from the reconnect) and sends again — safe,
because the hub dedupes on the distribution id.
"""

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import ssl
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
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
from liaison.schemas.wire import CONTENT_TYPE, HEADER_SIGNATURE, INGRESS_EXCHANGE
from liaison.sdk.compose import compose
from liaison.sdk.connection import (
    frame_text,
    node_urls,
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
    SigningKeyMissing,
)
from liaison.sdk.inbox import Inbox
from liaison.sdk.settled import SettledFile, SettledIds, SettledInMemory
from liaison.sdk.signing import (
    Ed25519PrivateKey,
    TrustedKey,
    load_private_key,
    load_trusted_keys,
    sign,
)
from liaison.sdk.tls import certificate_login

log = logging.getLogger("liaison.sdk.client")

#: Seconds of nacks for one message after which the SDK publishes on a new channel.
RENEW_CHANNEL_AFTER_NACKS_S = 2.0

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
    #: Ids the inbox settled (in memory, or in ``dedupe_file``): shared by every inbox opened.
    settled: SettledIds
    signer: "_Signer | None"
    #: Whether a send without a signing key is an error (the default) or goes unsigned.
    sign: bool
    trusted_keys: Mapping[str, TrustedKey] | None


@dataclass(frozen=True, slots=True)
class _Signer:
    key: Ed25519PrivateKey
    kid: str


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
        url: str | Sequence[str],
        *,
        account: str | None = None,
        password: str | None = None,
        confirm_timeout: float = 15.0,
        prefetch: int = 32,
        reconnect_interval: float = 1.0,
        dedupe_seconds: float = 3600.0,
        dedupe_max_entries: int = 50_000,
        dedupe_file: "str | os.PathLike[str] | None" = None,
        ssl_context: ssl.SSLContext | None = None,
        signing_key: "str | os.PathLike[str] | Ed25519PrivateKey | None" = None,
        signing_kid: str | None = None,
        sign: bool = True,
        trusted_keys: "str | os.PathLike[str] | Mapping[str, TrustedKey] | None" = None,
    ) -> "Opening[Client]":
        """Connect as ``org``: ``async with Client.connect(...) as client`` (or ``await`` it).

        ``url`` is the broker's URL, or a cluster's: every node's URL, as a list or one string
        with commas between them. The client connects to the first node that answers and,
        when its node goes away, moves on to the next one by itself.

        Credentials come from the URL or from ``account``/``password``; the account defaults to
        the URL's user name, else the organisation id. The URL's path is the vhost your operator
        gave you (``amqps://broker.example.org/liaison``). For ``amqps://`` with a private CA or a
        client certificate pass ``ssl_context`` (``liaison.sdk.tls_context(...)`` builds one);
        with certificate login the URL ends in ``?auth=external`` and carries no password.
        Raises ``LoginRefused`` for a wrong account or password, ``VhostRefused`` for a wrong
        vhost, ``ConnectFailed`` otherwise.

        Every message is signed (``x-liaison-signature``) with ``signing_key`` (your private
        key's PEM file, or the key) as ``signing_kid``, the id registered in the directory; a
        send without them raises ``SigningKeyMissing`` unless ``sign=False`` (only for an
        organisation whose signatures are "when_present"). ``trusted_keys`` (the
        ``signing-keys.json`` of your partner bundle, or a mapping kid -> ``TrustedKey``) lets
        the inbox verify who signed each delivery (``delivery.verified``, ``signed_by``).

        The inbox drops a copy of a message it settled in the last ``dedupe_seconds`` (at most
        ``dedupe_max_entries`` ids), by its ``message_id``. It remembers them in memory, for as
        long as the process runs; with ``dedupe_file`` (a path) in a SQLite file, so a repeat
        that comes after a restart, or to another process sharing the file, is dropped too.
        """
        urls = node_urls(url)
        if ssl_context is not None and parse_url(urls[0]).scheme != "amqps":
            raise ConnectFailed("ssl_context is given but the URL is not amqps://")
        if ssl_context is None and certificate_login(urls[0]):
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
        signer = _signer(signing_key, signing_kid)
        trusted = (
            None
            if trusted_keys is None
            else dict(trusted_keys)
            if isinstance(trusted_keys, Mapping)
            else load_trusted_keys(trusted_keys)
        )
        full_urls = [partner_url(u, account, password) for u in urls]
        login = account or parse_url(full_urls[0]).user or org
        return Opening(
            functools.partial(
                _open_client,
                org=org,
                account=login,
                urls=full_urls,
                reconnect_interval=reconnect_interval,
                dedupe={
                    "seconds": dedupe_seconds,
                    "max_entries": dedupe_max_entries,
                    "path": dedupe_file,
                },
                # Further aio_pika.connect_robust arguments.
                connection_options={} if ssl_context is None else {"ssl_context": ssl_context},
                settings={
                    "confirm_timeout": confirm_timeout,
                    "prefetch": prefetch,
                    "signer": signer,
                    "sign": sign,
                    "trusted_keys": trusted,
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

    @property
    def signing_kid(self) -> str | None:
        """The key id this client signs with, None when it has no signing key."""
        signer = self._session.signer
        return None if signer is None else signer.kid

    async def close(self) -> None:
        """Stop the inbox consumers and close the connection."""
        self._closed = True
        if self._inbox is not None:
            await self._inbox.close()
        connection = self._session.connection
        try:
            if not connection.is_closed:
                await connection.close()
        finally:
            self._session.settled.close()

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
        headers: dict[str, aio_pika.abc.FieldValue] = {}
        if session.signer is not None:
            headers[HEADER_SIGNATURE] = sign(data, session.signer.key, session.signer.kid)
        elif session.sign:
            raise SigningKeyMissing(
                f"{session.org} must sign what it sends: pass signing_key= (your private key "
                "file) and signing_kid= (its id in the directory) to Client.connect, or "
                "sign=False while your organisation's signatures are 'when_present'"
            )
        message = aio_pika.Message(
            data,
            headers=headers or None,
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            user_id=session.account,
            message_id=message_id,
            timestamp=datetime.now(UTC),
            app_id="liaison-sdk",
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + session.confirm_timeout
        nacks = 0
        first_nack: float | None = None
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
                if isinstance(exc.frame, aiormq.spec.Basic.Nack) and not self._closed:
                    # A nack says the broker could not take it now: in a cluster, for some
                    # seconds after a node is lost, while a channel opened since still addresses
                    # a queue's old leader. Sent again until the confirm timeout is spent; a
                    # channel nacked for seconds is replaced, as a new one finds the new leader
                    # (RabbitMQ 3.10; the hub does the same, docs/operations.md).
                    nacks += 1
                    first_nack = first_nack or loop.time()
                    if loop.time() - first_nack >= RENEW_CHANNEL_AFTER_NACKS_S:
                        first_nack = None
                        await self._renew_channel()
                        session = self._session
                    pause = min(1.0, 0.05 * 2.0 ** min(nacks, 32), deadline - loop.time())
                    if pause > 0:
                        await asyncio.sleep(pause)
                        continue
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

    async def _renew_channel(self) -> None:
        """Publish on a new channel from now on; the old one is closed (nothing waits on it)."""
        old = self._session
        try:
            channel = await old.connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(INGRESS_EXCHANGE, ensure=False)
        except (aiormq.exceptions.AMQPError, ConnectionError, OSError) as exc:
            log.info("could not renew the publishing channel: %s", exc)
            return
        assert isinstance(channel, aio_pika.abc.AbstractRobustChannel)
        self._session = dataclasses.replace(old, channel=channel, exchange=exchange)
        log.info("publishing moved to a new channel after seconds of nacks")
        with contextlib.suppress(Exception):
            await old.channel.close()

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
                settled=session.settled,
                trusted_keys=session.trusted_keys,
            )
            await inbox.start()
            self._inbox = inbox
            return inbox


def _signer(
    key: "str | os.PathLike[str] | Ed25519PrivateKey | None", kid: str | None
) -> _Signer | None:
    if key is None and kid is None:
        return None
    if key is None or not kid or not isinstance(kid, str):
        raise InvalidArgument(
            "signing needs both signing_key (the private key file) and signing_kid (its id)"
        )
    private = key if isinstance(key, Ed25519PrivateKey) else load_private_key(key)
    return _Signer(private, kid)


async def _open_client(
    *,
    org: str,
    account: str,
    urls: list[str],
    reconnect_interval: float,
    dedupe: dict[str, Any],
    connection_options: dict[str, Any],
    settings: dict[str, Any],
) -> Client:
    """Open the dedupe store, connect, open the publishing channel, and wrap them in a Client."""
    path = dedupe["path"]
    # A bad dedupe_file fails here, before anything goes over the network.
    settled: SettledIds = (
        SettledInMemory(seconds=dedupe["seconds"], max_entries=dedupe["max_entries"])
        if path is None
        else SettledFile(path, seconds=dedupe["seconds"], max_entries=dedupe["max_entries"])
    )
    try:
        connection = await open_connection(
            urls,
            org=org,
            account=account,
            reconnect_interval=reconnect_interval,
            options=connection_options,
        )
    except BaseException:
        settled.close()
        raise
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(INGRESS_EXCHANGE, ensure=False)
    except (aiormq.exceptions.AMQPError, ConnectionError) as exc:
        await connection.close()
        settled.close()
        raise ConnectFailed(f"cannot open a channel: {frame_text(exc)}") from None
    assert isinstance(channel, aio_pika.abc.AbstractRobustChannel)
    return Client(
        _Session(
            org=org,
            account=account,
            connection=connection,
            channel=channel,
            exchange=exchange,
            settled=settled,
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
