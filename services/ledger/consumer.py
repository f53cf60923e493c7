"""The ledger's broker side: read ``liaison.ledger``, commit in batches, then ack.

Per batch: take what has arrived (up to ``batch_size``), turn it into rows (pure), write them
in one transaction, and only then ack the batch with one multiple-ack. If PostgreSQL is down the
write is retried with backoff while the messages stay unacked, so everything waits in RabbitMQ
and the hub never notices; a lost broker connection hands the unacked batch back for
redelivery, and the unique keys make the repeat a no-op.
"""

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aio_pika.abc
import aiormq.exceptions
import asyncpg
import msgspec
import structlog

from liaison.common.config import redact_url
from liaison.common.hub_key import load_hub_key
from liaison.common.reconnect import keep_running
from liaison.common.topology import LEDGER_EXCHANGE, LEDGER_QUEUE
from liaison.directory.index import HUB_SENDER_ID, DirectoryIndex
from liaison.ledger.metrics import LedgerMetrics
from liaison.ledger.records import RECORD_BATCH_TYPE, DecisionRecord, decode_batch
from liaison.ledger.rows import Rows, dead_letter_rows, record_rows
from liaison.ledger.settings import LedgerSettings
from liaison.ledger.status import report_envelope, report_for, status_request
from liaison.ledger.store import LedgerStore, open_pool
from liaison.schemas.messages.system import StatusReport, StatusRequest
from liaison.schemas.wire import (
    CONTENT_TYPE,
    DEAD_LETTER_EXCHANGE,
    DELIVERY_EXCHANGE,
    HEADER_SENDER,
    HEADER_SIGNATURE,
    HEADER_TYPE,
    delivered_message_id,
    delivery_key,
)

log = structlog.get_logger("liaison.ledger")

#: Errors that mean "the database is not there right now": retry, never drop.
DATABASE_DOWN = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


class LedgerConsumer:
    """Owns the broker connection, the batch in hand and the database pool."""

    def __init__(
        self,
        settings: LedgerSettings,
        metrics: LedgerMetrics,
        directory: DirectoryIndex | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.directory = directory
        self.store: LedgerStore | None = None
        self._arrived: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
        self._stopping = asyncio.Event()
        self.connected = False
        self.database_ok = False
        self.last_commit: float | None = None
        #: Writes that failed since start (each retried), for health pages and tests.
        self.failed_writes = 0
        #: Messages waiting in the ledger queue (sampled) and the last batch's lag, in seconds.
        self.backlog = 0
        self.lag = 0.0
        self._reports: aio_pika.abc.AbstractExchange | None = None
        # Status reports speak for the hub: signed with the hub's key.
        self._hub_key = (
            None if settings.hub_signing_key is None else load_hub_key(settings.hub_signing_key)
        )
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._pool_lock = asyncio.Lock()

    async def run(self) -> None:
        """Consume until ``stop``; reconnect to the broker with backoff."""
        await keep_running(
            self._session,
            stopping=self._stopping,
            max_backoff=self.settings.reconnect_max_seconds,
            on_failure=self._failed,
            on_end=self._ended,
        )

    def _failed(self, exc: Exception, retry_in: float) -> None:
        log.warning(
            "broker_unavailable",
            url=redact_url(self.settings.amqp_url),
            error=f"{type(exc).__name__}: {exc}",
            retry_in=round(retry_in, 2),
        )

    def _ended(self) -> None:
        self.connected = False

    async def stop(self) -> None:
        """Finish the batch in hand (if the database lets it), then close."""
        self._stopping.set()

    async def close(self) -> None:
        """Close the database pool."""
        if self.store is not None:
            await self.store.pool.close()
            self.store = None

    async def _session(self) -> None:
        connection = await aio_pika.connect(
            self.settings.amqp_url, client_properties={"connection_name": "liaison-ledger"}
        )
        self._arrived = asyncio.Queue()
        self._connection = connection
        try:
            # Status reports go out on their own confirmed channel, before the batch is acked.
            publisher = await connection.channel(publisher_confirms=True)
            self._reports = await publisher.get_exchange(DELIVERY_EXCHANGE, ensure=False)
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self.settings.prefetch)
            queue = await channel.declare_queue(LEDGER_QUEUE, passive=True)
            await queue.consume(self._arrived.put, no_ack=False)
            self.connected = True
            log.info("consuming", queue=LEDGER_QUEUE, url=redact_url(self.settings.amqp_url))
            sampler = asyncio.create_task(self._sample_backlog(channel))
            try:
                await self._batches(channel)
            finally:
                sampler.cancel()
                with contextlib.suppress(BaseException):
                    await sampler
        finally:
            self.connected = False
            if not connection.is_closed:
                await connection.close()

    async def _batches(self, channel: aio_pika.abc.AbstractChannel) -> None:
        closed = asyncio.ensure_future(_closed(channel))
        stopping = asyncio.ensure_future(self._stopping.wait())
        # The batch being written, committed and acked. The next one is gathered and turned
        # into rows meanwhile, so this process's work overlaps PostgreSQL's instead of
        # alternating with it; writes (and so the chain's appends and the acks) stay in order.
        writing: asyncio.Task[None] | None = None
        try:
            while True:
                first = asyncio.ensure_future(self._arrived.get())
                while True:
                    watch: set[asyncio.Future[Any]] = {first, closed, stopping}
                    if writing is not None and not writing.done():
                        watch.add(writing)
                    done, _ = await asyncio.wait(watch, return_when=asyncio.FIRST_COMPLETED)
                    if writing is not None and writing.done() and writing.exception():
                        # A failed write ends the session as it did inline (nothing acked).
                        first.cancel()
                        writing.result()
                    if done - {writing}:
                        break
                if first not in done:
                    first.cancel()
                    if closed in done:
                        raise ConnectionError("broker channel closed")
                    # Stopping: finish the batch in hand first (its ack included).
                    if writing is not None:
                        await writing
                    return
                batch = [first.result()]
                await self._fill(batch)
                prepared = self.rows_of(batch)
                if writing is not None:
                    await writing
                writing = asyncio.create_task(self._commit(batch, prepared))
        except BaseException:
            if writing is not None and not writing.done():
                # Unacked, so the broker hands the batch back; the keys make a repeat a no-op.
                writing.cancel()
                with contextlib.suppress(BaseException):
                    await writing
            raise
        finally:
            closed.cancel()
            stopping.cancel()

    async def _fill(self, batch: list[aio_pika.abc.AbstractIncomingMessage]) -> None:
        settings = self.settings
        deadline = time.monotonic() + settings.batch_wait_seconds
        size = sum(len(message.body) for message in batch)
        while len(batch) < settings.batch_size and size < settings.batch_bytes:
            try:
                message = self._arrived.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                try:
                    message = await asyncio.wait_for(self._arrived.get(), remaining)
                except TimeoutError:
                    return
            batch.append(message)
            size += len(message.body)

    async def _commit(
        self,
        batch: list[aio_pika.abc.AbstractIncomingMessage],
        prepared: tuple[Rows, int, int, list[tuple[DecisionRecord, StatusRequest]]],
    ) -> None:
        rows, records, letters, requests = prepared
        backoff = 0.2
        while True:
            try:
                store = await self._store()
                await store.write(rows)
                reports = [
                    (record, await report_for(store.pool, record, request))
                    for record, request in requests
                ]
                break
            except DATABASE_DOWN as exc:
                self.database_ok = False
                self.failed_writes += 1
                self.metrics.database_errors.inc()
                log.warning(
                    "database_unavailable",
                    error=f"{type(exc).__name__}: {exc}",
                    waiting=len(batch),
                    retry_in=round(backoff, 2),
                )
                await self._drop_pool()
                if self._stopping.is_set():
                    # Leave the batch unacked: closing the channel hands it back to the queue.
                    raise ConnectionError("stopping with the database unavailable") from exc
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.settings.reconnect_max_seconds)
        self.database_ok = True
        for record, report in reports:
            try:
                await self._send_report(record, report)
            except (
                aiormq.exceptions.AMQPChannelError,
                aiormq.exceptions.ChannelInvalidStateError,
            ) as exc:
                # The broker refused the answer (the account may not write liaison.delivery):
                # the request stays recorded; only this answer is missing, and said so.
                self._reports = None
                log.error(
                    "status_report_refused",
                    asker=record.sender,
                    request=record.distribution_id,
                    error=f"{type(exc).__name__}: {exc}",
                )
        await batch[-1].ack(multiple=True)
        now = time.time()
        self.last_commit = now
        self.metrics.batches.inc()
        self.metrics.records.inc(records)
        self.metrics.dead_letters.inc(letters)
        self.metrics.unreadable.inc(len(rows.unreadable))
        if rows.newest is not None:
            lag = self.lag = max(0.0, now - rows.newest.timestamp())
            self.metrics.lag.set(lag)
            self.metrics.record_lag.observe(lag)

    def rows_of(
        self, batch: list[aio_pika.abc.AbstractIncomingMessage]
    ) -> tuple[Rows, int, int, list[tuple[DecisionRecord, StatusRequest]]]:
        """A batch's rows, counts of records and dead letters, and status requests to answer."""
        requests: list[tuple[DecisionRecord, StatusRequest]] = []
        rows = Rows()
        records = letters = 0
        directory = self.directory
        resolve = directory.resolve if directory is not None else None
        org_for_account = directory.org_for_account if directory is not None else _nobody
        for message in batch:
            if message.exchange == LEDGER_EXCHANGE:
                try:
                    if message.type != RECORD_BATCH_TYPE:
                        raise ValueError(f"type {str(message.type)[:64]!r} is not a record batch")
                    decoded = decode_batch(message.body)
                except (msgspec.DecodeError, ValueError) as exc:
                    rows.unreadable.append(
                        (f"bad record batch: {exc}"[:500], _props(message), message.body)
                    )
                    continue
                for record in decoded.records:
                    record_rows(rows, record, resolve=resolve, keep_body=self.settings.keep_body)
                    request = status_request(record)
                    if request is not None and record.sender is not None:
                        requests.append((record, request))
                records += len(decoded.records)
            elif message.exchange == DEAD_LETTER_EXCHANGE:
                dead_letter_rows(
                    rows,
                    body=message.body,
                    routing_key=message.routing_key or "",
                    user_id=message.user_id,
                    message_id=message.message_id,
                    message_type=message.type,
                    headers=dict(message.headers or {}),
                    org_for_account=org_for_account,
                    received_at=datetime.now(UTC),
                )
                letters += 1
            else:
                reason = f"from exchange {str(message.exchange)[:64]!r}, not a ledger source"
                rows.unreadable.append((reason, _props(message), message.body))
        return rows, records, letters, requests

    async def _send_report(self, record: DecisionRecord, report: StatusReport) -> None:
        assert record.sender is not None
        if self._reports is None:
            assert self._connection is not None
            publisher = await self._connection.channel(publisher_confirms=True)
            self._reports = await publisher.get_exchange(DELIVERY_EXCHANGE, ensure=False)
        report_id, body = report_envelope(record, report)
        headers: dict[str, aio_pika.abc.FieldValue] = {
            HEADER_SENDER: HUB_SENDER_ID,
            HEADER_TYPE: "status.report",
        }
        if self._hub_key is not None:
            headers[HEADER_SIGNATURE] = self._hub_key.sign(body)
        await self._reports.publish(
            aio_pika.Message(
                body,
                content_type=CONTENT_TYPE,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=delivered_message_id(HUB_SENDER_ID, report_id),
                type="status.report",
                app_id=HUB_SENDER_ID,
                headers=headers,
            ),
            routing_key=delivery_key(record.sender, flash=False),
        )

    async def _store(self) -> LedgerStore:
        # One pool at a time: the writer and the readiness ping may both ask at once.
        async with self._pool_lock:
            if self.store is None:
                self.store = LedgerStore(await open_pool(self.settings.database_url))
            return self.store

    async def _drop_pool(self) -> None:
        store, self.store = self.store, None
        if store is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(store.pool.close(), 2)
            store.pool.terminate()

    async def _ping_database(self) -> None:
        # Readiness reflects the database even when no batch is being written.
        try:
            store = await self._store()
            await store.pool.fetchval("SELECT 1")
        except DATABASE_DOWN:
            self.database_ok = False
            await self._drop_pool()
        else:
            self.database_ok = True

    async def _sample_backlog(self, channel: aio_pika.abc.AbstractChannel) -> None:
        await self._ping_database()
        while True:
            await asyncio.sleep(2)
            try:
                queue = await channel.declare_queue(LEDGER_QUEUE, passive=True)
            except Exception:
                return
            await self._ping_database()
            waiting = self.backlog = queue.declaration_result.message_count or 0
            self.metrics.backlog.set(waiting)
            if waiting == 0 and self._arrived.empty():
                self.lag = 0.0
                self.metrics.lag.set(0)


async def _closed(channel: aio_pika.abc.AbstractChannel) -> None:
    await channel.closed()


def _nobody(_: str) -> None:
    return None


def _props(message: aio_pika.abc.AbstractIncomingMessage) -> dict[str, object]:
    return {
        "type": message.type,
        "message_id": message.message_id,
        "routing_key": message.routing_key,
        "exchange": message.exchange,
        "app_id": message.app_id,
    }
