"""The hub's side of the ledger seam: decision records, batched into the hub's outbox.

Every decision's record must be confirmed by the broker before the hub acks the ingress message
(so the ledger never misses a decision), but one publish per record would double the hub's
publishes. Records added in the same event-loop turn (or up to ``max_batch``) leave as one
MessagePack publish to the ``liaison.ledger`` exchange; each caller awaits its batch's confirm.
PostgreSQL is never on this path: if the ledger is down, the batches wait in its queue.
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
    encode_batch,
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

    def __init__(self, outbox: Outbox, *, max_batch: int = 256) -> None:
        self._outbox = outbox
        self._max_batch = max_batch
        self._pending: list[DecisionRecord] = []
        self._confirmed: asyncio.Future[Any] | None = None

    def record(self, record: DecisionRecord) -> "asyncio.Future[Any]":
        """Queue ``record``; the future resolves when the broker confirms its batch."""
        if self._confirmed is None:
            loop = asyncio.get_running_loop()
            self._confirmed = loop.create_future()
            loop.call_soon(self.flush)
        confirmed = self._confirmed
        self._pending.append(record)
        if len(self._pending) >= self._max_batch:
            self.flush()
        return confirmed

    def flush(self) -> None:
        """Publish what is pending as one batch."""
        confirmed, records = self._confirmed, self._pending
        if confirmed is None or not records:
            return
        self._confirmed, self._pending = None, []
        try:
            publish = self._outbox.publish(
                encode_batch(records),
                exchange=LEDGER_EXCHANGE,
                routing_key="",
                properties=_PROPERTIES,
            )
        except Exception as exc:  # the channel is gone: every waiter fails, the broker redelivers
            # Already cancelled when a waiter was (a session ending cancels its handlers).
            if not confirmed.done():
                confirmed.set_exception(exc)
            return
        publish.add_done_callback(lambda done: _settle(confirmed, done))


def _settle(target: "asyncio.Future[Any]", done: "asyncio.Future[Any]") -> None:
    if target.done():
        return
    if done.cancelled():
        target.cancel()
    elif (exc := done.exception()) is not None:
        target.set_exception(exc)
    else:
        target.set_result(done.result())
