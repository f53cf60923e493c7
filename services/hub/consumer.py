"""The hub's broker side: consume the ingress shards, carry out each decision, ack in order.

This talks to aiormq, the AMQP layer under aio-pika, directly: the hub's cost is Python work per
message, and aiormq hands over the raw frames without building an aio-pika Message per delivery.
Per message: decide (pure), publish what the decision causes without waiting for the socket
(so many confirms are in flight), await those confirms, then ack the longest finished prefix of
deliveries in one frame. Publishes leave in delivery order, so each shard's order is kept.
A lost connection drops every unacked delivery back to the broker, which redelivers it.
"""

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import cast

import aiormq
import structlog
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

from liaison.common.config import redact_url
from liaison.common.errors import ConfigError
from liaison.common.tls import handshake_failure
from liaison.common.topology import HUB_DELIVERY_LIMIT, hub_queue
from liaison.hub.acks import AckTracker
from liaison.hub.metrics import HubMetrics
from liaison.hub.outbox import Outbox, delivery_properties
from liaison.hub.refusal import HUB_SENDER, Delivery, Duplicate, Refusal, error_report
from liaison.hub.router import Router, probe
from liaison.hub.settings import HubSettings
from liaison.schemas.catalogue import MESSAGE_TYPES
from liaison.schemas.codes import ErrorCode
from liaison.schemas.wire import (
    CONTENT_TYPE,
    DEAD_LETTER_EXCHANGE,
    DELIVERY_EXCHANGE,
    HEADER_ERROR_CODE,
    HEADER_ERROR_FIELD,
    HEADER_ERROR_REASON,
    HEADER_ORIGINAL_USER,
    HEADER_PRECEDENCE,
    HEADER_REFUSED_AT,
    HEADER_SENDER,
    HEADER_TYPE,
    delivered_message_id,
    delivery_key,
)

log = structlog.get_logger("liaison.hub")


class HubConsumer:
    """Owns the connection, the consumers on this process's shards, and in-flight work."""

    def __init__(
        self,
        settings: HubSettings,
        router: Router,
        metrics: HubMetrics,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.router = router
        self.metrics = metrics
        self._clock = clock
        self._acks = AckTracker()
        self._channel: aiormq.Channel | None = None
        self._outbox: Outbox | None = None
        self._consumer_tags: list[str] = []
        self._stopping = asyncio.Event()
        self._stop_requested = False
        self._idle = asyncio.Event()
        self._idle.set()
        # Acks go out from one task only: frames written from many tasks could reach the broker
        # out of order, and a multiple-ack overtaken by a lower one is a channel error.
        self._ack_upto = 0
        self._ack_sent = 0
        self._ack_wanted = asyncio.Event()
        self._acks_flushed = asyncio.Event()
        self._acks_flushed.set()
        self.connected = False
        self.consuming = False
        # Which of the settings' broker nodes to connect to; moves on past one that failed.
        self._node = 0

    @property
    def ready(self) -> bool:
        """Connected to the broker and attached to every shard this process owns."""
        return self.connected and self.consuming

    async def run(self) -> None:
        """Consume until ``stop``; reconnect with backoff whenever the broker goes away."""
        backoff = 0.2
        while True:
            try:
                await self._session()
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except ConfigError as exc:
                # A bad TLS file does not heal by retrying: stop, naming the setting.
                log.error("stopping_on_config_error", error=str(exc))
                raise
            except Exception as exc:
                if (fatal := handshake_failure(exc)) is not None:
                    log.error("stopping_on_config_error", error=str(fatal))
                    raise fatal from None
                log.warning(
                    "broker_unavailable",
                    url=redact_url(self._broker_url),
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in=round(backoff, 2),
                )
                self._node += 1
            finally:
                self.connected = self.consuming = False
                self._channel = None
                self._acks.reset()
                self.metrics.in_flight.set(0)
                self._idle.set()
            if self._stop_requested:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff)
            backoff = min(backoff * 2, self.settings.reconnect_max_seconds)
            self.metrics.reconnects.inc()

    @property
    def _broker_url(self) -> str:
        # A cluster's nodes are tried in turn, starting after the last that failed.
        urls = self.settings.amqp_urls
        return urls[self._node % len(urls)]

    async def stop(self) -> None:
        """Stop consuming, let in-flight messages finish (bounded), then close."""
        self._stop_requested = True
        channel = self._channel
        if channel is not None and not channel.is_closed:
            for tag in self._consumer_tags:
                try:
                    await channel.basic_cancel(tag)
                except Exception as exc:  # the connection may already be gone
                    log.debug("cancel_failed", consumer_tag=tag, error=str(exc))
            self.consuming = False
            try:
                await asyncio.wait_for(self._idle.wait(), self.settings.shutdown_grace_seconds)
                await asyncio.wait_for(self._acks_flushed.wait(), 5)
            except TimeoutError:
                log.warning("shutdown_grace_expired", in_flight=len(self._acks))
        # Only now let the session close the connection: acks of finished work have been sent.
        self._stopping.set()

    async def _session(self) -> None:
        # Named, so operators (and tests) can find the hub's connection in the management UI.
        shards = ",".join(map(str, self.settings.shards))
        connection = await aiormq.connect(
            self._broker_url,
            context=self.settings.ssl_context(),
            client_properties={"connection_name": f"liaison-hub shards={shards}"},
        )
        ack_sender: asyncio.Task[None] | None = None
        senders: list[asyncio.Task[None]] = []
        try:
            channel = cast(aiormq.Channel, await connection.channel(publisher_confirms=True))
            await channel.basic_qos(prefetch_count=self.settings.prefetch)
            self._channel = channel
            self._outbox = outbox = Outbox(channel, self.settings.confirm_timeout_seconds)
            senders.append(asyncio.create_task(outbox.send(), name="hub-publishes"))
            senders.append(asyncio.create_task(outbox.watch(), name="hub-confirm-watch"))
            self._ack_upto = self._ack_sent = 0
            self._acks_flushed.set()
            ack_sender = asyncio.create_task(self._send_acks(channel), name="hub-acks")
            self.connected = True
            self._consumer_tags = []
            for shard in self.settings.shards:
                ok = await channel.basic_consume(hub_queue(shard), self._on_message, no_ack=False)
                self._consumer_tags.append(str(ok.consumer_tag))
            self.consuming = True
            log.info(
                "consuming",
                shards=list(self.settings.shards),
                url=redact_url(self._broker_url),
            )
            stopping = asyncio.ensure_future(self._stopping.wait())
            try:
                await asyncio.wait(
                    [connection.closing, channel.closing, stopping],
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                stopping.cancel()
            if not self._stopping.is_set():
                reason = channel.closing.exception() if channel.closing.done() else None
                raise ConnectionError(f"broker connection lost: {reason or 'closed'}")
        finally:
            self.connected = self.consuming = False
            if ack_sender is not None:
                senders.append(ack_sender)
            for task in senders:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            if not connection.is_closed:
                await connection.close()

    async def _on_message(self, message: DeliveredMessage) -> None:
        channel = cast(aiormq.Channel, message.channel)
        delivery = cast(spec.Basic.Deliver, message.delivery)
        tag = delivery.delivery_tag
        assert tag is not None
        started = time.perf_counter()
        acks = self._acks
        acks.begin(tag)
        self._idle.clear()
        self.metrics.in_flight.inc()
        props = message.header.properties
        headers = props.headers or {}
        user_id = props.user_id
        outcome = "error"
        message_type = "unknown"
        try:
            count = headers.get("x-delivery-count", 0)
            if isinstance(count, int) and count >= HUB_DELIVERY_LIMIT - 1:
                decision: Delivery | Refusal | Duplicate = self._poison(message)
            else:
                decision = self.router.decide(
                    message.body,
                    user_id=user_id,
                    routing_key=delivery.routing_key or "",
                    content_type=props.content_type,
                )
            message_type = _type_label(decision.message_type)
            if isinstance(decision, Delivery):
                await self._deliver(channel, message.body, decision)
                outcome = "partial" if decision.partial else "delivered"
            elif isinstance(decision, Refusal):
                await self._refuse(channel, message, decision)
                outcome = "refused"
            else:
                outcome = "duplicate"
        except aiormq.exceptions.DeliveryError as exc:
            # A recipient inbox refused it (full). Tell the sender; keep the original.
            refusal = Refusal(
                ErrorCode.DELIVERY_REFUSED,
                f"the broker refused delivery: {exc}",
                None,
                getattr(decision, "distribution_id", None),
                getattr(decision, "message_type", None),
                getattr(decision, "sender", None),
            )
            try:
                await self._refuse(channel, message, refusal)
                outcome = "undeliverable"
            except Exception:
                await self._requeue(channel, tag)
                return
        except (aiormq.exceptions.AMQPError, ConnectionError, asyncio.CancelledError):
            # The channel is gone; the broker redelivers everything unacked on reconnect.
            self._settled()
            raise
        except Exception:
            log.exception("hub_failure", delivery_tag=tag, user_id=user_id)
            self.metrics.count(message_type, "crashed")
            await self._requeue(channel, tag)
            return
        last = acks.finish(tag)
        if last is not None:
            self._ack(last)
        self._settled()
        elapsed = time.perf_counter() - started
        self.metrics.decision_seconds.observe(elapsed)
        self.metrics.count(message_type, outcome)
        self.metrics.dedupe_entries.set(len(self.router.dedupe))
        log.info(
            "decision",
            distribution_id=getattr(decision, "distribution_id", None),
            sender=getattr(decision, "sender", None) or getattr(decision, "reply_to", None),
            type=decision.message_type,
            outcome=outcome,
            code=int(decision.code) if isinstance(decision, Refusal) else None,
            recipients=len(decision.recipients) if not isinstance(decision, Refusal) else 0,
            duration_ms=round(elapsed * 1000, 3),
        )

    async def _deliver(self, channel: aiormq.Channel, body: bytes, delivery: Delivery) -> None:
        dedupe = self.router.dedupe
        dedupe.add(delivery.message_id)
        keys = [delivery_key(org, flash=delivery.flash) for org in delivery.recipients]
        headers: dict[str, str | list[str]] = {
            HEADER_SENDER: delivery.sender,
            HEADER_TYPE: delivery.message_type,
            HEADER_PRECEDENCE: delivery.precedence,
        }
        if len(keys) > 1:
            # Sender-selected distribution: one publish reaches every inbox named here, and the
            # broker strips the header before delivery.
            headers["BCC"] = keys[1:]
        properties = delivery_properties(
            message_id=delivery.message_id,
            message_type=delivery.message_type,
            timestamp=int(self._clock()),
            expiration=None if delivery.expiration_ms is None else str(delivery.expiration_ms),
            headers=headers,
        )
        try:
            confirm = self._outbox_of(channel).publish(
                body, exchange=DELIVERY_EXCHANGE, routing_key=keys[0], properties=properties
            )
            if delivery.partial is None:
                await confirm
            else:
                await asyncio.gather(confirm, self._answer(channel, delivery.partial, body))
        except BaseException:
            dedupe.discard(delivery.message_id)
            raise

    async def _refuse(
        self, channel: aiormq.Channel, message: DeliveredMessage, refusal: Refusal
    ) -> None:
        props = message.header.properties
        headers = dict(props.headers or {})
        headers.update(
            {
                HEADER_ERROR_CODE: int(refusal.code),
                HEADER_ERROR_REASON: refusal.reason[:1000],
                HEADER_ORIGINAL_USER: props.user_id or "",
                HEADER_REFUSED_AT: datetime.fromtimestamp(self._clock(), UTC).isoformat(),
            }
        )
        if refusal.field_path:
            headers[HEADER_ERROR_FIELD] = refusal.field_path
        kept = spec.Basic.Properties(
            content_type=props.content_type,
            delivery_mode=2,
            message_id=props.message_id,
            message_type=refusal.message_type,
            timestamp=props.timestamp,
            headers=headers,
        )
        dead_letter = self._outbox_of(channel).publish(
            message.body,
            exchange=DEAD_LETTER_EXCHANGE,
            routing_key=cast(spec.Basic.Deliver, message.delivery).routing_key or "",
            properties=kept,
        )
        if refusal.reply_to is None:
            await dead_letter
        else:
            await asyncio.gather(dead_letter, self._answer(channel, refusal, message.body))

    async def _answer(self, channel: aiormq.Channel, refusal: Refusal, original: bytes) -> None:
        assert refusal.reply_to is not None
        now = datetime.fromtimestamp(self._clock(), UTC)
        report_id, body = error_report(refusal, now=now, original=original)
        await self._outbox_of(channel).publish(
            body,
            exchange=DELIVERY_EXCHANGE,
            routing_key=delivery_key(refusal.reply_to, flash=False),
            properties=spec.Basic.Properties(
                content_type=CONTENT_TYPE,
                delivery_mode=2,
                message_id=delivered_message_id(HUB_SENDER, report_id),
                message_type="error.report",
                app_id=HUB_SENDER,
                timestamp=now,
                headers={HEADER_SENDER: HUB_SENDER, HEADER_TYPE: "error.report"},
            ),
        )

    def _outbox_of(self, channel: aiormq.Channel) -> Outbox:
        outbox = self._outbox
        if outbox is None or outbox.channel is not channel:
            # A message of a session that has ended: its channel is gone, and so is its delivery.
            raise aiormq.exceptions.ChannelInvalidStateError(f"{channel!r} is not current")
        return outbox

    def _poison(self, message: DeliveredMessage) -> Refusal:
        # Its last delivery before the broker gives up on it: answer and dead-letter it
        # ourselves without running the routing that failed on it before; only the lenient
        # probe reads it, so the sender learns which message it was.
        props = message.header.properties
        router = self.router
        account_org = router.directory.org_for_account(props.user_id) if props.user_id else None
        distribution_id, message_type = probe(message.body)
        return Refusal(
            ErrorCode.POISON,
            f"processing failed {HUB_DELIVERY_LIMIT - 1} times; kept for an operator",
            distribution_id=distribution_id,
            message_type=message_type,
            reply_to=account_org,
        )

    async def _requeue(self, channel: aiormq.Channel, tag: int) -> None:
        try:
            if not channel.is_closed:
                await channel.basic_reject(tag, requeue=True)
                last = self._acks.forget(tag)
                if last is not None:
                    self._ack(last)
        finally:
            self._settled()

    def _ack(self, tag: int) -> None:
        if tag > self._ack_upto:
            self._ack_upto = tag
            self._acks_flushed.clear()
            self._ack_wanted.set()

    async def _send_acks(self, channel: aiormq.Channel) -> None:
        # Under load many finishes land between two wake-ups: one frame acks them all.
        while True:
            await self._ack_wanted.wait()
            self._ack_wanted.clear()
            upto = self._ack_upto
            if upto > self._ack_sent:
                await channel.basic_ack(upto, multiple=True, wait=False)
                self._ack_sent = upto
            if self._ack_sent == self._ack_upto:
                self._acks_flushed.set()

    def _settled(self) -> None:
        self.metrics.in_flight.dec()
        if not self._acks:
            self._idle.set()


def _type_label(message_type: str | None) -> str:
    # Label values must stay a small fixed set whatever a sender writes.
    return message_type if message_type in MESSAGE_TYPES else "unknown"
