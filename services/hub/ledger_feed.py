"""The hub's side of the ledger seam: decision records, batched into the hub's outbox.

Every decision's record must be confirmed by the broker before the hub acks the ingress message
(so the ledger never misses a decision), but one publish per record would double the hub's
publishes. Records leave as MessagePack batches to the ``liaison.ledger`` exchange, and each
caller awaits its batch's confirm.

Batches are sized by the broker's own pace (group commit): while ``max_in_flight`` batches
await their confirm, new records wait, and the next batch leaves when one of those is
confirmed (or at once when it reaches ``max_batch`` records or ``max_batch_bytes`` of bodies).
An idle hub therefore sends a record at the end of the event-loop turn that made it, as before,
while a busy one sends what arrived during a confirm round trip as one message: one publish
per event-loop turn averaged ~3.3 records under ``make bench-ledger`` load, and each broker
message on the quorum queue costs the broker (and the ledger) far more than one more record in
it. The wait adds at most one confirm round trip to the ingress ack, never to the deliveries,
which are published before it.
PostgreSQL is never on this path: if the ledger is down, the batches wait in its queue.

The byte bound matters for large bodies: each record carries the message's bytes, and while a
batch of 237 KB polygons awaits its confirm, hundreds of records used to join the next one (a
60 MB message). Encoding 256 such records cost 106 µs a record against 5 to 9 µs for up to 64
(fresh pages for the buffer, then pamqp's copy of it), and the broker and the ledger got
one huge message; 1 MiB keeps small bodies' batches as they were (256 records of 1 KB).
"""

import asyncio
from typing import Any

from pamqp import commands as spec

from liaison.common.topology import LEDGER_EXCHANGE
from liaison.hub.outbox import Outbox
from liaison.ledger.records import (
    RECORD_BATCH_TYPE,
    RECORD_CONTENT_TYPE,
    DecisionRecord,
    encode_batch_pieces,
)
from liaison.schemas.wire import HUB_SENDER

_PROPERTIES = spec.Basic.Properties(
    content_type=RECORD_CONTENT_TYPE,
    delivery_mode=2,
    message_type=RECORD_BATCH_TYPE,
    app_id=HUB_SENDER,
)


class LedgerFeed:
    """Collects decision records and publishes them in batches through ``outbox``."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        max_batch: int = 256,
        max_batch_bytes: int = 1 << 20,
        max_in_flight: int = 1,
    ) -> None:
        self._outbox = outbox
        self._max_batch = max_batch
        self._max_batch_bytes = max_batch_bytes
        #: Body bytes of the pending records.
        self._pending_bytes = 0
        self._max_in_flight = max_in_flight
        self._pending: list[DecisionRecord] = []
        self._confirmed: asyncio.Future[Any] | None = None
        #: Batches published and not yet confirmed (or refused).
        self._in_flight = 0
        self._flush_scheduled = False

    def record(self, record: DecisionRecord) -> "asyncio.Future[Any]":
        """Queue ``record``; the future resolves when the broker confirms its batch."""
        confirmed = self._confirmed
        if confirmed is None:
            confirmed = self._confirmed = asyncio.get_running_loop().create_future()
        pending = self._pending
        pending.append(record)
        self._pending_bytes += len(record.body)
        if len(pending) >= self._max_batch or self._pending_bytes >= self._max_batch_bytes:
            self.flush()
        elif not self._flush_scheduled and (
            self._in_flight < self._max_in_flight
            # A replaced outbox (the hub renewed its publishing channel) forwards to the new
            # channel: its batch in flight may wait for a lost queue leader, these need not.
            or getattr(self._outbox, "replaced_by", None) is not None
        ):
            # Let the rest of this turn's records join, then send.
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._scheduled_flush)
        return confirmed

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self.flush()

    def flush(self) -> None:
        """Publish what is pending as one batch."""
        confirmed, records = self._confirmed, self._pending
        if confirmed is None or not records:
            return
        self._confirmed, self._pending, self._pending_bytes = None, [], 0
        try:
            publish = self._outbox.publish(
                encode_batch_pieces(records),
                exchange=LEDGER_EXCHANGE,
                routing_key="",
                properties=_PROPERTIES,
            )
        except Exception as exc:  # the channel is gone: every waiter fails, the broker redelivers
            # Already cancelled when a waiter was (a session ending cancels its handlers).
            if not confirmed.done():
                confirmed.set_exception(exc)
            return
        self._in_flight += 1
        publish.add_done_callback(lambda done: self._settled(confirmed, done))

    def _settled(self, target: "asyncio.Future[Any]", done: "asyncio.Future[Any]") -> None:
        self._in_flight -= 1
        _settle(target, done)
        # Records that waited for this confirm leave now, with whatever joins them this turn.
        if self._pending and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._scheduled_flush)


def _settle(target: "asyncio.Future[Any]", done: "asyncio.Future[Any]") -> None:
    if target.done():
        return
    if done.cancelled():
        target.cancel()
    elif (exc := done.exception()) is not None:
        target.set_exception(exc)
    else:
        target.set_result(done.result())
