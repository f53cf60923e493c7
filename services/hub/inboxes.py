"""Which recipients have an inbox on the broker, so a copy no inbox takes is reported.

An organisation in the directory without its inbox queue (removed, not yet provisioned, hub
not reloaded) would silently get nothing: the hub publishes one message for all recipients
(BCC), and the broker returns a ``mandatory`` message only when no queue at all took it, which
says nothing of one missing inbox among several. Per-recipient publishes with ``mandatory``
would tell exactly, at the price of one publish and one confirm per recipient instead of one
per message (~2.9 recipients per message).

Instead the hub keeps a census of the inbox queues, taken with passive declares (which need no
permission and change nothing): when it starts consuming, after every directory reload, every
``check_interval`` seconds, and again for a queue found missing before a message is refused for
it (unless that queue was checked within ``recheck_after`` seconds), so an inbox provisioned
since is never reported missing. A queue deleted while the hub runs is noticed within
``check_interval``; copies routed to it in between are lost silently, as before.
"""

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from typing import cast

import aiormq
import structlog

from liaison.hub.decisions import Delivery, Refusal
from liaison.schemas.codes import ErrorCode
from liaison.schemas.wire import flash_inbox_queue, inbox_queue

log = structlog.get_logger("liaison.hub")


class InboxCensus:
    """The inbox queues found missing at the last check, and when each was checked."""

    def __init__(
        self,
        *,
        check_interval: float,
        recheck_after: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = check_interval
        self._recheck_after = recheck_after
        self._clock = clock
        #: Queue name -> when it was last found missing.
        self._missing: dict[str, float] = {}
        self._rechecks: dict[str, asyncio.Future[bool]] = {}
        self._connection: aiormq.abc.AbstractConnection | None = None
        self._wanted = asyncio.Event()
        #: Completed surveys, for tests that wait for one.
        self.surveys = 0

    @property
    def missing(self) -> frozenset[str]:
        """Inbox queues missing at the last check."""
        return frozenset(self._missing)

    def resurvey(self) -> None:
        """Check every inbox again soon (after a directory reload)."""
        self._wanted.set()

    async def survey(self, connection: aiormq.abc.AbstractConnection, orgs: Iterable[str]) -> None:
        """Check every inbox queue of ``orgs`` (routine and flash) on a channel of its own."""
        self._connection = connection
        names = [
            name for org in sorted(orgs) for name in (inbox_queue(org), flash_inbox_queue(org))
        ]
        started = time.perf_counter()
        missing: dict[str, float] = {}
        channel: aiormq.abc.AbstractChannel | None = None
        try:
            for name in names:
                if channel is None or channel.is_closed:
                    channel = await connection.channel()
                if not await _declared(channel, name):
                    missing[name] = self._clock()
        finally:
            if channel is not None and not channel.is_closed:
                await channel.close()
        for name in sorted(missing.keys() - self._missing.keys()):
            log.warning("inbox_missing", queue=name)
        for name in sorted(self._missing.keys() - missing.keys()):
            log.info("inbox_found", queue=name)
        self._missing = missing
        self.surveys += 1
        log.debug(
            "inbox_survey",
            queues=len(names),
            missing=len(missing),
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )

    async def watch(
        self, connection: aiormq.abc.AbstractConnection, orgs: Callable[[], Iterable[str]]
    ) -> None:
        """Survey every ``check_interval`` seconds, or at once when asked to; until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wanted.wait(), self._interval)
            self._wanted.clear()
            try:
                await self.survey(connection, orgs())
            except (aiormq.exceptions.AMQPError, ConnectionError) as exc:
                # The session is ending; the next one surveys before consuming.
                log.debug("inbox_survey_failed", error=str(exc))
                return

    async def check(self, delivery: Delivery) -> tuple[Delivery | None, Refusal | None]:
        """``delivery`` without the recipients no inbox would take, and the sender's report.

        ``(delivery, None)`` when every inbox exists; ``(None, refusal)`` when none does.
        """
        if not self._missing:
            return delivery, None
        queue_of = flash_inbox_queue if delivery.flash else inbox_queue
        absent = [org for org in delivery.recipients if not await self._exists(queue_of(org))]
        if not absent:
            return delivery, None
        present = [org for org in delivery.recipients if org not in absent]
        addresses = tuple(f"org:{org}" for org in absent)
        refusal = Refusal(
            ErrorCode.NO_INBOX,
            ("delivered to " + ", ".join(f"org:{org}" for org in present) + "; " if present else "")
            + "no inbox took it for "
            + ", ".join(addresses)
            + " (not provisioned, or removed); ask the operators",
            "$.recipients",
            delivery.distribution_id,
            delivery.message_type,
            delivery.sender,
            refused_recipients=tuple(absent),
            refused_addresses=addresses,
        )
        if not present:
            return None, refusal
        delivery.recipients = present
        return delivery, refusal

    async def _exists(self, name: str) -> bool:
        found_missing = self._missing.get(name)
        if found_missing is None:
            return True
        if self._clock() - found_missing < self._recheck_after or self._connection is None:
            return False
        # One check per queue at a time, whatever the number of messages waiting on it.
        pending = self._rechecks.get(name)
        if pending is None:
            pending = asyncio.ensure_future(self._recheck(self._connection, name))
            self._rechecks[name] = pending
            pending.add_done_callback(lambda _: self._rechecks.pop(name, None))
        return await asyncio.shield(pending)

    async def _recheck(self, connection: aiormq.abc.AbstractConnection, name: str) -> bool:
        channel = await connection.channel()
        try:
            exists = await _declared(channel, name)
        finally:
            if not channel.is_closed:
                await channel.close()
        if exists:
            self._missing.pop(name, None)
            log.info("inbox_found", queue=name)
        else:
            self._missing[name] = self._clock()
        return exists


async def _declared(channel: aiormq.abc.AbstractChannel, name: str) -> bool:
    # A passive declare of a missing queue closes the channel with 404; the caller reopens it.
    try:
        await cast(aiormq.Channel, channel).queue_declare(name, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return False
    return True
