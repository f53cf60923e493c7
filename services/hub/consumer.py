"""The hub's broker side: consume the ingress shards, carry out each verdict, ack in order.

One message, top to bottom (``_on_message``):

    receive -> decide (router.py, pure) -> recall (memory.py) -> plan (effects.py, pure)
            -> publish all (outbox.py) -> await confirms -> remember -> ack (acks.py)

or, with LIAISON_DELIVERY=transaction (``_commit``):

            -> publish all + ledger record + ack, into the current batch -> await its
               tx.commit (TxOutbox) -> remember

This talks to aiormq, the AMQP layer under aio-pika, directly: the hub's cost is Python work per
message, and aiormq hands over the raw frames without building an aio-pika Message for each.
Publishes go out without waiting for the socket (so many confirms are in flight) and leave in
the order received, so each shard's order is kept; the longest finished prefix of ingress
messages is acked in one frame. A lost connection drops every unacked message back to the
broker, which redelivers it; the memory keeps a redelivery from reaching anyone twice.
"""

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import cast

import aiormq
import structlog
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

from liaison.common.config import redact_url
from liaison.common.errors import ConfigError
from liaison.common.tls import handshake_failure
from liaison.common.topology import LEDGER_QUEUE, hub_queue
from liaison.directory.index import HUB_SENDER_ID
from liaison.hub.acks import AckTracker
from liaison.hub.channel import AiormqChannel, Deliveries, TxChannel
from liaison.hub.decisions import Delivery, Refusal, Verdict
from liaison.hub.effects import Effects, Publisher, memory_key, plan, publish_all, settle
from liaison.hub.inboxes import InboxCensus
from liaison.hub.ledger_feed import LedgerFeed
from liaison.hub.limits import LimitReader
from liaison.hub.memory import DeliveryMemory, Handled
from liaison.hub.metrics import HubMetrics
from liaison.hub.outbox import Outbox, TxOutbox
from liaison.hub.receipts import acknowledged, check_receipt
from liaison.hub.redis_memory import MemoryUnavailable
from liaison.hub.retry import Holdback, NackRetry
from liaison.hub.router import Router
from liaison.hub.settings import HubSettings
from liaison.hub.transport import HubTransport
from liaison.hub.transport import install as install_frame_stream
from liaison.hub.turns import Turns
from liaison.ledger.records import decision_record
from liaison.schemas.catalogue import MESSAGE_TYPES
from liaison.schemas.codes import ErrorCode
from liaison.schemas.wire import DEAD_LETTER_QUEUE, HEADER_SIGNATURE, flash_inbox_queue, inbox_queue

log = structlog.get_logger("liaison.hub")

#: Seconds of nacks for one message after which the hub publishes on a new channel (a broker
#: channel can keep addressing a lost node as a queue's leader: see _renew_outbox).
RENEW_AFTER_SECONDS = 2.0
#: Frames a channel's reader may have waiting: none is the limit. aiormq's default, 10, made
#: the connection's reader stop after about three deliveries (three frames each) until the
#: channel's reader took them, so each event-loop turn dispatched only a few: every later
#: step (the memory's recalls, the publishes, the acks) went in as many small batches. The
#: broker bounds what arrives: at most the prefetch of unacked deliveries per shard, and one
#: confirm per publish.
FRAME_BUFFER = 0
#: At most one renewal in this many seconds: a full queue nacks on every channel, and a channel
#: opened before the new leader's election may need one more renewal.
RENEW_EVERY_SECONDS = 5.0


class HubConsumer:
    """Owns the connection, the consumers on this process's shards, and in-flight work."""

    def __init__(
        self,
        settings: HubSettings,
        router: Router,
        memory: DeliveryMemory,
        metrics: HubMetrics,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.router = router
        self.memory = memory
        # What the hub originates (error reports) is signed with its own key.
        self._hub_key = settings.hub_key()
        # Set when the memory stops answering: the session ends rather than risk duplicates.
        self._memory_lost: asyncio.Future[None] | None = None
        # Which recipients' inbox queues exist, to report copies no inbox would take.
        # In transaction mode it also reads their depths: a full inbox is refused by the hub,
        # since a transaction is never told that the broker dropped the copy (_guard).
        # Its length limits come from the management API (policies lower them unseen by AMQP).
        self.inboxes = InboxCensus(
            check_interval=settings.inbox_check_seconds,
            headroom=settings.inbox_headroom,
            watch_seconds=settings.inbox_watch_seconds,
            limits=(
                LimitReader(settings, router.directory.directory.hub_account)
                if settings.delivery == "transaction"
                else None
            ),
            # A transaction's copies to a quorum queue can vanish when the hub is killed.
            classic_only=settings.delivery == "transaction",
        )
        self.metrics = metrics
        # The in-flight gauge reads _active when scraped, instead of two locked updates a message.
        metrics.in_flight.set_function(lambda: self._active)
        self._clock = clock
        # LIAISON_DELIVERY=transaction: publishes and acks commit together (TxOutbox).
        self._tx = settings.delivery == "transaction"
        # Deliveries begun and not yet settled (in transaction mode a delivery is acked, in its
        # batch, before its commit and its memory record are done).
        self._active = 0
        # The memory's size for the dedupe gauge, when it can tell (a shared store may not).
        self._memory_size: Callable[[], int] | None = getattr(memory, "__len__", None)
        # Keys of deliveries being carried out in this process: a second copy of the same
        # message (republished before the first was confirmed) waits for the first's outcome.
        self._claims: dict[str, asyncio.Future[None] | None] = {}
        self._acks = AckTracker()
        self._channel: aiormq.Channel | None = None
        self._outbox: Outbox | None = None
        # Publishing turns of the current channel (turns.py); a new channel starts afresh.
        self._turns = Turns()
        # Nacked publishes are retried in place (retry.py); later ones wait behind them.
        self._nack_retry = NackRetry(settings.nack_retry_seconds)
        self._holdback = Holdback()
        # The session's connection and background tasks; the publishing channel is renewed
        # when it keeps being nacked (_renew_outbox).
        self._connection: aiormq.abc.AbstractConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._publishing_lost: asyncio.Future[None] | None = None
        self._renewing = False
        self._renewed_at = -RENEW_EVERY_SECONDS
        # Decision records for the ledger, batched into the current session's outbox.
        self._ledger: LedgerFeed | None = None
        self._stopping = asyncio.Event()
        self._stop_requested = False
        # Set by stop(): deliveries arriving from then on are left unstarted (and unacked).
        self._draining = False
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
                    # Redis out of reach stops consuming too; say which one is missing.
                    "memory_unavailable"
                    if isinstance(exc, MemoryUnavailable)
                    else "broker_unavailable",
                    url=redact_url(self._broker_url),
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in=round(backoff, 2),
                )
                self._node += 1
            finally:
                self.connected = self.consuming = False
                self._channel = None
                self._acks.reset()
                self._active = 0
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
        """Hand this process's shards over without reordering anyone's messages.

        Start no new deliveries, finish and ack the started ones (bounded by the grace period),
        then close the connection: the deliveries never started go back to their queue, and a
        quorum queue gives returned messages to the next active consumer first, in order
        (tests/hub/test_handover.py pins this on the broker). Cancelling the consumers first
        would promote a standby at once, which would route newer messages while this process
        still worked through older ones.
        """
        self._stop_requested = True
        self._draining = True
        self.consuming = False
        channel = self._channel
        if channel is not None and not channel.is_closed:
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
        # The socket is read into the hub's own buffers and frames decoded by frames.py, not by
        # aiormq's StreamReader and per-frame reader (transport.py).
        install_frame_stream()
        connection = await aiormq.connect(
            self._broker_url,
            transport_factory=HubTransport(),
            context=self.settings.ssl_context(),
            client_properties={"connection_name": f"liaison-hub shards={shards}"},
        )
        ack_sender: asyncio.Task[None] | None = None
        self._tasks = senders = []
        self._publishing_lost = publishing_lost = asyncio.get_running_loop().create_future()
        try:
            # Consuming and acking on one channel, publishing on another: the publishing one
            # can be replaced (_renew_outbox) without giving back the unacked deliveries.
            # (aiormq opens channels in confirm mode unless told not to; tx mode excludes it.)
            channel = cast(
                aiormq.Channel,
                await connection.channel(
                    publisher_confirms=not self._tx, frame_buffer_size=FRAME_BUFFER
                ),
            )
            # Each delivery's _on_message runs in a task that the channel's closing cancels.
            Deliveries(channel)
            await channel.basic_qos(prefetch_count=self.settings.prefetch)
            if self._tx:
                # Acks are channel-scoped: only on the consuming channel can the copies and
                # the ack of what caused them be one transaction.
                await channel.tx_select()
            self._channel = channel
            self._connection = connection
            self._ack_upto = self._ack_sent = 0
            if self._tx:
                self._open_tx_outbox(channel)
            else:
                await self._open_outbox(connection)
            self._turns = Turns()
            self._holdback = Holdback()
            self._acks_flushed.set()
            if not self._tx:
                ack_sender = asyncio.create_task(self._send_acks(channel), name="hub-acks")
            self.connected = True
            # Consume only while the delivery memory answers (raises MemoryUnavailable).
            self._memory_lost = memory_lost = asyncio.get_running_loop().create_future()
            await self.memory.ping()
            # Know which inboxes exist before the first decision, then keep checking.
            await self.inboxes.survey(connection, self.router.directory.organisations)
            await self.inboxes.read_limits(strict=True)
            if self._tx:
                # Every refusal and record goes there in the same transactions as the copies.
                self.inboxes.require_classic((LEDGER_QUEUE, DEAD_LETTER_QUEUE))
            senders.append(
                asyncio.create_task(
                    self.inboxes.watch(connection, lambda: self.router.directory.organisations),
                    name="hub-inbox-census",
                )
            )
            senders.append(
                asyncio.create_task(
                    self.inboxes.watch_limits(self.settings.inbox_limits_seconds),
                    name="hub-inbox-limits",
                )
            )
            for shard in self.settings.shards:
                await channel.basic_consume(hub_queue(shard), self._on_message, no_ack=False)
            self.consuming = True
            log.info(
                "consuming",
                shards=list(self.settings.shards),
                url=redact_url(self._broker_url),
                delivery=self.settings.delivery,
            )
            stopping = asyncio.ensure_future(self._stopping.wait())
            try:
                await asyncio.wait(
                    [connection.closing, channel.closing, stopping, memory_lost, publishing_lost],
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                stopping.cancel()
            if memory_lost.done():
                raise memory_lost.exception() or MemoryUnavailable("memory lost")
            if not self._stopping.is_set():
                if publishing_lost.done():
                    raise ConnectionError("the publishing channel closed")
                reason = channel.closing.exception() if channel.closing.done() else None
                raise ConnectionError(f"broker connection lost: {reason or 'closed'}")
        finally:
            self.connected = self.consuming = False
            self._memory_lost = None  # late failures belong to no session
            self._connection = None
            if ack_sender is not None:
                senders.append(ack_sender)
            for task in senders:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            if not connection.is_closed:
                await connection.close()

    async def _open_outbox(self, connection: aiormq.abc.AbstractConnection) -> Outbox:
        """A new publishing channel and its outbox (and ledger feed), made the current one."""
        publishing = cast(
            aiormq.Channel,
            await connection.channel(publisher_confirms=True, frame_buffer_size=FRAME_BUFFER),
        )
        outbox = Outbox(AiormqChannel(publishing), self.settings.confirm_timeout_seconds)
        self._tasks.append(asyncio.create_task(outbox.send(), name="hub-publishes"))
        self._tasks.append(asyncio.create_task(outbox.watch(), name="hub-confirm-watch"))
        lost = self._publishing_lost

        def closed(_: object) -> None:
            # The current publishing channel closing (confirm timeout, broker error) ends the
            # session as a lost connection does; a replaced one closing is expected.
            if self._outbox is outbox and lost is not None and not lost.done():
                lost.set_result(None)

        publishing.closing.add_done_callback(closed)
        self._outbox = outbox
        self._ledger = LedgerFeed(outbox)
        return outbox

    def _open_tx_outbox(self, channel: aiormq.Channel) -> TxOutbox:
        """The transaction-mode outbox on the consuming ``channel`` (already in tx mode)."""
        outbox = TxOutbox(
            TxChannel(channel), self.settings.confirm_timeout_seconds, committed=self._committed
        )
        ledger = LedgerFeed(outbox)
        # The records of a batch's decisions are published (flushed) into that same batch.
        outbox.before_commit = ledger.flush
        sender = asyncio.create_task(outbox.send(), name="hub-commits")
        self._tasks.append(sender)
        lost = self._publishing_lost

        def ended(_: object) -> None:
            # A failed commit ends the session as a lost channel does.
            if self._outbox is outbox and lost is not None and not lost.done():
                lost.set_result(None)

        sender.add_done_callback(ended)
        self._outbox = outbox
        self._ledger = ledger
        return outbox

    def _committed(self, tag: int) -> None:
        # Transaction mode: a commit acked the ingress deliveries up to ``tag``.
        self._ack_sent = max(self._ack_sent, tag)
        if self._ack_sent >= self._ack_upto:
            self._acks_flushed.set()

    def _stage(self, tag: int) -> "asyncio.Future[object]":
        """Transaction mode: ack ``tag`` (with the finished prefix) in the batch that holds its
        publishes; the future of that batch's commit."""
        outbox = self._outbox
        if not isinstance(outbox, TxOutbox):
            raise aiormq.exceptions.ChannelInvalidStateError("no session: nothing to commit")
        last = self._acks.finish(tag)
        if last is not None and last > self._ack_upto:
            self._ack_upto = last
            self._acks_flushed.clear()
        return outbox.ack(last or 0)

    async def _renew_outbox(self, nacked: Publisher) -> None:
        """Publish on a new channel from now on, if ``nacked`` is still the current outbox.

        RabbitMQ 3.10 keeps, per channel, the quorum queue leader it first found; a channel
        opened while a lost node still led a queue can be nacked by that queue until the node
        comes back (over 60 s in one run of tests/cluster/test_failover.py), while a channel
        opened after the new leader's election publishes at once. The old channel is closed
        once its last confirm is in.
        """
        connection = self._connection
        if self._tx:
            return  # a transactional channel is never nacked
        if nacked is not self._outbox or connection is None or self._renewing:
            return
        if time.monotonic() - self._renewed_at < RENEW_EVERY_SECONDS:
            return
        self._renewing = True
        self._renewed_at = time.monotonic()
        try:
            old = self._outbox
            new = await self._open_outbox(connection)
            self.metrics.publish_channels.inc()
            log.warning("publishing_channel_renewed")
            if isinstance(old, Outbox):
                # Messages that took the old outbox before the renewal publish on the new one.
                old.replaced_by = new
                self._tasks.append(asyncio.create_task(_retire(old, self._nack_retry.limit)))
        finally:
            self._renewing = False

    async def _on_message(self, message: DeliveredMessage) -> None:
        if self._draining:
            # Stopping: leave it unacked; closing the channel gives it back to the queue, ahead
            # of everything newer, for whichever consumer is active next.
            return
        # Receive.
        channel = cast(aiormq.Channel, message.channel)
        deliver = cast(spec.Basic.Deliver, message.delivery)
        tag = deliver.delivery_tag
        assert tag is not None
        started = time.perf_counter()
        self._acks.begin(tag)
        self._active += 1
        turns = self._turns
        ticket = turns.ticket()
        self._idle.clear()
        props = message.header.properties
        body = message.body
        routing_key = deliver.routing_key or ""
        redelivered = bool(deliver.redelivered)
        verdict: Verdict | None = None
        try:
            publisher = self._publisher_of(channel)
            headers = props.headers
            count = headers.get("x-delivery-count", 0) if headers else 0
            # Decide.
            verdict = self.router.decide(
                body,
                user_id=props.user_id,
                routing_key=routing_key,
                content_type=props.content_type,
                delivery_count=count if isinstance(count, int) else 0,
                signature=headers.get(HEADER_SIGNATURE) if headers else None,
            )
            if isinstance(verdict, Delivery):
                # A receipt must refer to a message its sender really received. A recipient
                # can read the original before this process has recorded it (the record
                # follows the broker's confirm): wait for that record first.
                original = acknowledged(verdict, body)
                while original is not None and original in self._claims:
                    await self._wait_for_claim(original)
                verdict = await check_receipt(self.memory, verdict, body)
            if isinstance(verdict, Delivery):
                # Recipients no inbox would take are left out and named to the sender.
                kept, unrouted = await self.inboxes.check(verdict)
                if kept is None:
                    assert unrouted is not None
                    verdict = unrouted
                else:
                    kept.unrouted = unrouted
            # Recall, plan, publish, await the confirms, remember.
            outcome = await self._handle(
                verdict,
                publisher,
                body,
                props,
                routing_key,
                redelivered=redelivered,
                turn=(turns, ticket),
                tag=tag,
            )
        except (InboxFull, aiormq.exceptions.DeliveryError) as exc:
            # An inbox cannot take the copy: tell the sender; keep the original. In transaction
            # mode the hub refused it itself, before publishing anything, and the answer keeps
            # the message's turn in the batch; in confirm mode the broker refused it (full).
            if isinstance(exc, InboxFull):
                verdict, turn = exc.refusal, (turns, ticket)
            else:
                assert verdict is not None
                verdict, turn = _broker_refusal(verdict, exc), None
            try:
                await self._handle(
                    verdict,
                    publisher,
                    body,
                    props,
                    routing_key,
                    redelivered=redelivered,
                    turn=turn,
                    tag=tag if turn is not None else None,
                )
                outcome = "undeliverable"
            except Exception:
                await self._requeue(channel, tag)
                return
        except (aiormq.exceptions.AMQPError, ConnectionError, asyncio.CancelledError) as exc:
            # The channel is gone; the broker redelivers everything unacked on reconnect.
            self._settled()
            # Without the memory a redelivery cannot be told from a first delivery: end the
            # session (the broker takes back what is unacked) and retry with backoff.
            lost = self._memory_lost
            if isinstance(exc, MemoryUnavailable) and lost is not None and not lost.done():
                lost.set_exception(exc)
            raise
        except Exception:
            log.exception("hub_failure", delivery_tag=tag, user_id=props.user_id)
            label = "unknown" if verdict is None else _type_label(verdict.message_type)
            self.metrics.count(label, "crashed")
            await self._requeue(channel, tag)
            return
        finally:
            # Failed before its turn, or published nothing: the next message may go.
            turns.done(ticket)
        # Ack (in transaction mode the commit that published its copies acked it).
        if not self._tx:
            last = self._acks.finish(tag)
            if last is not None:
                self._ack(last)
        self._settled()
        self._account(verdict, outcome, time.perf_counter() - started)

    async def _handle(
        self,
        verdict: Verdict,
        publisher: Publisher,
        body: bytes,
        props: spec.Basic.Properties,
        routing_key: str,
        *,
        redelivered: bool,
        turn: tuple[Turns, int] | None = None,
        tag: int | None = None,
    ) -> str:
        """Recall, plan, publish (on its ``turn``), await the confirms, remember; the outcome
        for the log line. In transaction mode, InboxFull when an inbox would drop the copy."""
        memory = self.memory
        if isinstance(verdict, Delivery):
            # A partner may republish a distribution id: deliveries are always recalled. A
            # refusal is recalled only on redelivery, so identical bad inputs published twice
            # are answered twice, but a redelivered refusal is not answered again.
            is_delivery = True
            key = verdict.message_id
            claims = self._claims
            while key in claims:
                await self._wait_for_claim(key)
            claims[key] = None
        else:
            is_delivery = False
            key = memory_key(verdict, body)
        try:
            handled = await memory.recall(key) if is_delivery or redelivered else None
            reports = True
            counted: list[str] = []
            if self._tx and handled is None and turn is not None:
                # After the recall: a repeat of a delivered message is a duplicate, not a 502.
                guarded, reports, counted = await self._guard(verdict)
                if guarded is not verdict:
                    assert isinstance(guarded, Refusal)
                    raise InboxFull(guarded)
            try:
                return await self._carry_out(
                    verdict,
                    handled,
                    key,
                    publisher,
                    body,
                    props,
                    routing_key,
                    reports,
                    turn,
                    tag,
                    # A transaction's copies are visible only with its ack: a redelivered
                    # message was never committed, so nothing of it can repeat.
                    redelivered=redelivered and not self._tx,
                )
            finally:
                # Committed or discarded: the census's next reading shows them, or never will.
                self.inboxes.settled(counted)
        finally:
            if is_delivery:
                waiter = self._claims.pop(key, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

    async def _carry_out(
        self,
        verdict: Verdict,
        handled: Handled | None,
        key: str,
        publisher: Publisher,
        body: bytes,
        props: spec.Basic.Properties,
        routing_key: str,
        reports: bool,
        turn: tuple[Turns, int] | None,
        tag: int | None,
        *,
        redelivered: bool,
    ) -> str:
        """Plan, publish (on its ``turn``), await the confirms or the commit, remember."""
        memory = self.memory
        effects = plan(
            verdict,
            handled,
            key=key,
            original=body,
            properties=props,
            routing_key=routing_key,
            now=self._clock(),
            hub_key=self._hub_key,
            redelivered=redelivered,
        )

        # The ledger's record of this verdict joins the current batch; its confirm, like the
        # publishes', comes before the ingress ack, so the ledger never misses a decision.
        def record() -> "asyncio.Future[object]":
            return self._record(verdict, handled is not None, body, props)

        if not reports:
            # A plan's first publish is the copy or the dead letter; the rest are reports.
            del effects.publishes[1:]
        ticket: int | None = None
        if self._tx and turn is not None and tag is not None:
            await self._commit(effects, publisher, record, turn, tag)
            await settle(effects, None, memory)
            return effects.outcome
        if turn is None:
            confirms = publish_all(effects, publisher)
        else:
            # Publish in the order received, however long the recall took, and behind any
            # earlier message the broker nacked and the hub is publishing again.
            turns, ticket = turn
            if ticket != turns.serving:
                await turns.wait(ticket)
            try:
                if self._holdback.held:
                    await self._holdback.clear(ticket)
                confirms = publish_all(effects, publisher)
            finally:
                turns.done(ticket)
        await self._confirmed(effects, confirms, record, publisher, ticket)
        await settle(effects, None, memory)
        return effects.outcome

    async def _guard(self, verdict: Verdict) -> tuple[Verdict, bool, list[str]]:
        """Transaction mode: ``verdict``, refused 502 if an inbox it would reach is (nearly) full
        or of unknown depth or limit; whether its error reports may go to the sender's inbox;
        and the inbox queues of the copies let through (settled once their batch is done).

        A transaction commits even when a quorum queue at its max length dropped the copy, so
        the hub checks the census's depth reading and limit first, and answers as confirm mode
        does when the broker nacks a copy (retry.py, then 502). A report the sender's own
        inbox has no room for is left out: the refused message is still dead-lettered and
        recorded in the ledger, where confirm mode, after its retries, ends up too.
        """
        census = self.inboxes
        counted: list[str] = []
        if isinstance(verdict, Delivery):
            # A status.request's one recipient is the ledger, which reads it from the decision
            # record: no inbox takes that copy, so there is none to fill.
            queue_of = flash_inbox_queue if verdict.flash else inbox_queue
            queues = {queue_of(org): org for org in verdict.recipients if org != HUB_SENDER_ID}
            blocked = await census.blocked(queues)
            if blocked:
                full = [queues[q] for q, why in blocked.items() if why == "full"]
                depth = [queues[q] for q, why in blocked.items() if why == "stale"]
                limit = [queues[q] for q, why in blocked.items() if why == "unknown-limit"]
                other = [queues[q] for q, why in blocked.items() if why == "not-classic"]
                log.warning(
                    "inbox_guard_refused",
                    full=full,
                    unknown=depth,
                    unknown_limit=limit,
                    not_classic=other,
                )
                self.metrics.inbox_guard_refusals.inc()
                # Its report is checked when the refusal itself is handled (InboxFull).
                return (
                    Refusal(
                        ErrorCode.DELIVERY_REFUSED,
                        "the broker would refuse delivery: "
                        + "; ".join(
                            part
                            for part in (
                                _inboxes("full", full),
                                _inboxes("of unknown depth (the hub cannot read it)", depth),
                                _inboxes("of unknown length limit (the hub cannot read it)", limit),
                                _inboxes("not classic queues (transaction delivery)", other),
                            )
                            if part
                        ),
                        None,
                        verdict.distribution_id,
                        verdict.message_type,
                        verdict.sender,
                        refused_recipients=tuple(queues[q] for q in blocked),
                    ),
                    True,
                    counted,
                )
            counted.extend(queues)
            census.sent(counted)
            reports = (verdict.partial is not None) + (verdict.unrouted is not None)
            reply_to = verdict.sender if reports else None
        else:
            reports, reply_to = 1, verdict.reply_to
        if reply_to is None:
            return verdict, True, counted
        sender_inbox = inbox_queue(reply_to)
        blocked = await census.blocked([sender_inbox])
        if blocked:
            log.warning(
                "report_undeliverable",
                sender=reply_to,
                inbox=blocked[sender_inbox],
                distribution_id=verdict.distribution_id,
            )
            return verdict, False, counted
        census.sent([sender_inbox] * reports)
        counted.extend([sender_inbox] * reports)
        return verdict, True, counted

    async def _commit(
        self,
        effects: Effects,
        publisher: Publisher,
        record: Callable[[], "asyncio.Future[object]"],
        turn: tuple[Turns, int],
        tag: int,
    ) -> None:
        """Transaction mode: on its turn, hand the publishes, the ledger record and the ack to
        the current batch in one step (nothing can commit between them), then await the commit.
        A transactional channel has no nacks, so nothing here is retried."""
        turns, ticket = turn
        if ticket != turns.serving:
            await turns.wait(ticket)
        try:
            for exchange, routing_key, properties, body in effects.publishes:
                publisher.publish(
                    body, exchange=exchange, routing_key=routing_key, properties=properties
                )
            recorded = record()
            committed = self._stage(tag)
        finally:
            turns.done(ticket)
        await committed
        await recorded

    async def _confirmed(
        self,
        effects: Effects,
        confirms: Awaitable[object] | None,
        record: Callable[[], "asyncio.Future[object]"],
        publisher: Publisher,
        ticket: int | None,
    ) -> None:
        """Await the publishes' and the ledger record's confirms; publish again in place what
        the broker nacked (retry.py), raising its DeliveryError once the retry limit is past."""
        recorded: Awaitable[object] | None = record()
        began = 0.0
        attempt = 0
        held = False
        try:
            while True:
                # Both are awaited in turn, not gathered (two tasks a message): whichever fails,
                # the other is still awaited, so a retry knows what the broker took.
                published = await _outcome(confirms)
                logged = await _outcome(recorded)
                failures = [r for r in (published, logged) if r is not None]
                nacks = [f for f in failures if isinstance(f, aiormq.exceptions.DeliveryError)]
                if len(nacks) < len(failures):
                    # The channel is gone (or worse): not the broker's answer, the session's end.
                    raise next(f for f in failures if f not in nacks)
                if not nacks:
                    if attempt:
                        log.info(
                            "nack_retry_delivered",
                            attempts=attempt,
                            waited_s=round(time.monotonic() - began, 2),
                        )
                    return
                now = time.monotonic()
                if attempt == 0:
                    began = now
                    if ticket is not None:
                        self._holdback.hold(ticket)
                        held = True
                delay = self._nack_retry.delay(attempt, now - began)
                if delay is None:
                    log.warning(
                        "nack_retry_gave_up", attempts=attempt, waited_s=round(now - began, 2)
                    )
                    raise nacks[0]
                self.metrics.nack_retries.inc()
                if now - began >= RENEW_AFTER_SECONDS:
                    await self._renew_outbox(publisher)
                await asyncio.sleep(delay)
                if ticket is not None:
                    # Older messages being retried go first: the sender's order holds.
                    await self._holdback.clear(ticket)
                attempt += 1
                publisher = self._current_publisher()
                # Only what failed is sent again: an acked ledger batch is not recorded twice.
                confirms = (
                    publish_all(effects, publisher)
                    if isinstance(published, BaseException)
                    else None
                )
                recorded = record() if isinstance(logged, BaseException) else None
        finally:
            if held and ticket is not None:
                await self._holdback.release(ticket)

    async def _wait_for_claim(self, key: str) -> None:
        waiter = self._claims[key]
        if waiter is None:
            waiter = self._claims[key] = asyncio.get_running_loop().create_future()
        await asyncio.shield(waiter)

    def _account(self, verdict: Verdict, outcome: str, elapsed: float) -> None:
        # The canonical log line and the metrics of one handled message.
        metrics = self.metrics
        metrics.decision_seconds.observe(elapsed)
        metrics.count(_type_label(verdict.message_type), outcome)
        if self._memory_size is not None:
            metrics.dedupe_entries.set(self._memory_size())
        if isinstance(verdict, Delivery):
            sender: str | None = verdict.sender
            code = None
            recipients = 0 if outcome == "duplicate" else len(verdict.recipients)
        else:
            sender, code, recipients = verdict.reply_to, int(verdict.code), 0
        log.info(
            "decision",
            distribution_id=verdict.distribution_id,
            sender=sender,
            type=verdict.message_type,
            outcome=outcome,
            code=code,
            recipients=recipients,
            duration_ms=round(elapsed * 1000, 3),
        )

    def _record(
        self, verdict: Verdict, duplicate: bool, body: bytes, props: spec.Basic.Properties
    ) -> "asyncio.Future[object]":
        ledger = self._ledger
        if ledger is None:
            raise aiormq.exceptions.ChannelInvalidStateError("no session: nothing to record into")
        record = decision_record(
            verdict,
            body,
            duplicate=duplicate and isinstance(verdict, Delivery),
            user_id=props.user_id,
            headers=props.headers,
            decided_at=self._clock(),
        )
        return ledger.record(record)

    def _current_publisher(self) -> Publisher:
        outbox = self._outbox
        if outbox is None or self._channel is None:
            raise aiormq.exceptions.ChannelInvalidStateError("no session: nothing to publish on")
        return outbox

    def _publisher_of(self, channel: aiormq.Channel) -> Publisher:
        outbox = self._outbox
        if outbox is None or self._channel is not channel:
            # A message of a session that has ended: its channel is gone, and so is its delivery.
            raise aiormq.exceptions.ChannelInvalidStateError(f"{channel!r} is not current")
        return outbox

    async def _requeue(self, channel: aiormq.Channel, tag: int) -> None:
        try:
            outbox = self._outbox
            if self._tx and isinstance(outbox, TxOutbox):
                if outbox.channel.is_closed or self._channel is not channel:
                    return
                # A transactional reject takes effect with the next commit, which this asks for;
                # its frame goes before any later ack, so the multiple-ack below skips it.
                outbox.reject(tag).add_done_callback(_retrieved)
                last = self._acks.forget(tag)
                if last is not None:
                    self._ack(last)
            elif not channel.is_closed:
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
            outbox = self._outbox
            if self._tx and isinstance(outbox, TxOutbox):
                outbox.ack(tag)
            else:
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
        self._active = max(0, self._active - 1)
        if not self._acks and not self._active:
            self._idle.set()


async def _retire(outbox: Outbox, within: float) -> None:
    """Close a replaced publishing channel once nothing on it waits for a confirm (closing it
    earlier would fail those publishes); left open if that takes longer than ``within``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while outbox.channel.oldest_unconfirmed() is not None:
        if loop.time() > deadline:
            return
        await asyncio.sleep(0.1)
    with contextlib.suppress(Exception):
        await outbox.channel.close(ConnectionError("publishing channel replaced"))


def _retrieved(done: "asyncio.Future[object]") -> None:
    # Nobody awaits this commit: a failure ends the session anyway (the channel is gone).
    if not done.cancelled():
        done.exception()


async def _outcome(confirm: Awaitable[object] | None) -> Exception | None:
    """How ``confirm`` ended: None when it succeeded (or there was none), else its exception.

    A cancellation is raised, not returned: the session is ending, as when gathering them.
    """
    if confirm is None:
        return None
    try:
        await confirm
    except Exception as exc:
        return exc
    return None


class InboxFull(Exception):
    """Transaction mode: the hub refuses a delivery an inbox would drop (``refusal`` says so)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal


def _inboxes(what: str, orgs: list[str]) -> str:
    if not orgs:
        return ""
    return "the inbox of " + ", ".join(f"org:{org}" for org in orgs) + " is " + what


def _broker_refusal(verdict: Verdict, exc: aiormq.exceptions.DeliveryError) -> Refusal:
    """The 502 answering ``verdict`` once the broker refused (nacked) its copy."""
    return Refusal(
        ErrorCode.DELIVERY_REFUSED,
        f"the broker refused delivery: {exc}",
        None,
        verdict.distribution_id,
        verdict.message_type,
        verdict.sender if isinstance(verdict, Delivery) else None,
    )


def _type_label(message_type: str | None) -> str:
    # Label values must stay a small fixed set whatever a sender writes.
    return message_type if message_type in MESSAGE_TYPES else "unknown"
