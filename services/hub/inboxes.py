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

The same declares return each queue's depth (ready messages, which is what ``x-max-length``
counts). In transaction mode the broker never says that a full inbox refused a publish: the
commit succeeds and the copy is gone. So there the hub refuses a copy itself when the inbox
is within a headroom of its length limit (:class:`DepthGuard`, pure), re-reading the depth of
an inbox near its limit whenever its reading is older than ``watch_seconds``; the limits, as
the broker enforces them with policies and operator policies, come from a ``limits`` reader
(limits.py) every ``inbox_limits_seconds``, with each queue's type: with ``classic_only``
(transaction mode) a copy to an inbox that is not a classic queue is refused too, since RabbitMQ
3.10 can drop a killed transaction's committed publishes to a quorum queue.
"""

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, cast

import aiormq
import structlog

from liaison.common.errors import BrokerAccessRefused, BrokerError, ConfigError, LiaisonError
from liaison.hub.decisions import Delivery, Refusal
from liaison.hub.limits import UNLIMITED, QueueLimits
from liaison.schemas.codes import ErrorCode
from liaison.schemas.wire import flash_inbox_queue, inbox_queue

log = structlog.get_logger("liaison.hub")

#: What the guard says of one more copy to a queue: take it, the queue is (nearly) full, the
#: depth reading is too old to tell (read it again first), its length limit is unknown, or it
#: is not a classic queue where only classic ones are safe (``classic_only``).
Room = Literal["room", "full", "stale", "unknown-limit", "not-classic"]
#: Reads every queue's length limit and type (limits.read_limits).
LimitReader = Callable[[], Awaitable[QueueLimits]]


@dataclass(frozen=True, slots=True)
class Reading:
    """A queue's depth as read, when the read was issued, and how many of this process's copies
    to the queue had been settled (committed or discarded) by then (:meth:`DepthGuard.mark`)."""

    depth: int
    at: float
    mark: int


def headroom_for(headroom: int, max_length: int) -> int:
    """The headroom kept below ``max_length``: ``headroom``, but at most a tenth of the limit
    (at least one), so that a small inbox still takes copies until it is nearly full."""
    return min(headroom, max(1, max_length // 10))


class DepthGuard:
    """Whether an inbox can take one more copy, from its last depth reading (pure).

    The estimate is the reading plus every copy this process let through that was not yet
    settled (committed or discarded) when the read was issued: a settled copy is in the depth
    read (or already consumed), an unsettled one may or may not be, so it is counted. So this
    process's own copies are never missed, however many are in flight. The headroom (at most a
    tenth of the limit, :func:`headroom_for`) covers what the estimate cannot see: other
    publishers' copies (other hub processes, the ledger's status reports, operators' replays)
    uncommitted at the reading or sent since. A queue is *watched* once its estimate is within
    ``headroom * stale_after / watch_seconds`` of its max length (the distance copies arriving at
    ``headroom`` per ``watch_seconds`` cover before an unwatched reading goes stale); a watched
    queue's reading is good for ``watch_seconds``, any other's for ``stale_after``. An older (or
    missing) reading is ``stale``: read again.
    """

    def __init__(
        self,
        *,
        headroom: int,
        watch_seconds: float,
        stale_after: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.headroom = headroom
        self.watch_seconds = watch_seconds
        self.stale_after = stale_after
        self.clock = clock
        self._readings: dict[str, Reading] = {}
        #: Copies let through per queue since this guard began (never reset).
        self._sent: dict[str, int] = {}
        #: Of those, the ones whose batch has committed or failed.
        self._settled: dict[str, int] = {}

    def mark(self, queue: str) -> tuple[float, int]:
        """Taken when a read of ``queue`` is issued, and handed back to :meth:`read`."""
        return self.clock(), self._settled.get(queue, 0)

    def read(self, queue: str, depth: int, mark: tuple[float, int]) -> None:
        """``queue`` held ``depth`` ready messages when the read issued at ``mark`` answered."""
        at, settled = mark
        current = self._readings.get(queue)
        if current is not None and current.at > at:
            return  # a read issued later has already answered
        self._readings[queue] = Reading(depth, at, settled)

    def forget(self, queue: str) -> None:
        """Drop ``queue``'s reading (the queue is gone)."""
        self._readings.pop(queue, None)

    def estimate(self, queue: str) -> int | None:
        """The depth of ``queue`` as far as this process knows; None without a reading."""
        reading = self._readings.get(queue)
        if reading is None:
            return None
        return reading.depth + self._sent.get(queue, 0) - reading.mark

    def _margin(self, max_length: int) -> float:
        return headroom_for(self.headroom, max_length) * self.stale_after / self.watch_seconds

    def watched(self, queue: str, max_length: int) -> bool:
        """Whether ``queue`` is near enough to ``max_length`` to be read every watch interval."""
        estimate = self.estimate(queue)
        return estimate is not None and estimate >= max_length - self._margin(max_length)

    def room(self, queue: str, max_length: int, *, fresh: bool = False) -> Room:
        """Whether one more copy may go to ``queue`` (whose limit is ``max_length``); ``fresh``:
        the reading was just taken, whatever its age."""
        if max_length == UNLIMITED:
            return "room"
        reading = self._readings.get(queue)
        if reading is None:
            return "stale"
        estimate = reading.depth + self._sent.get(queue, 0) - reading.mark
        near = estimate >= max_length - self._margin(max_length)
        good_for = self.watch_seconds if near else self.stale_after
        if not fresh and self.clock() - reading.at > good_for:
            return "stale"
        headroom = headroom_for(self.headroom, max_length)
        return "full" if estimate >= max_length - headroom else "room"

    def sent(self, queue: str, copies: int = 1) -> None:
        """``copies`` more were let through to ``queue``."""
        self._sent[queue] = self._sent.get(queue, 0) + copies

    def settled(self, queue: str, copies: int = 1) -> None:
        """``copies`` let through to ``queue`` were committed, or discarded with their batch."""
        self._settled[queue] = self._settled.get(queue, 0) + copies


class InboxCensus:
    """The inbox queues found missing at the last check, every inbox's depth reading
    (``depths``, consulted by transaction mode's guard through :meth:`room`) and, with a
    ``limits`` reader, every inbox's length limit as the broker enforces it (:meth:`limit`)."""

    def __init__(
        self,
        *,
        check_interval: float,
        recheck_after: float = 1.0,
        headroom: int = 4000,
        watch_seconds: float = 0.5,
        read_timeout: float = 5.0,
        limits: LimitReader | None = None,
        classic_only: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = check_interval
        self._read_limits = limits
        self._classic_only = classic_only
        self._limits: Mapping[str, int | None] = {}
        self._types: Mapping[str, str | None] = {}
        self._limits_at: float | None = None
        self._limits_failing = False
        self._recheck_after = recheck_after
        self._clock = clock
        # Three intervals: one survey may be late or fail without refusing anything.
        self.depths = DepthGuard(
            headroom=headroom,
            watch_seconds=watch_seconds,
            stale_after=3 * check_interval,
            clock=clock,
        )
        self._read_timeout = read_timeout
        self._rereads: dict[str, asyncio.Future[None]] = {}
        self._read_channel: aiormq.abc.AbstractChannel | None = None
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
                mark = self.depths.mark(name)
                depth = await _declared(channel, name)
                if depth is None:
                    missing[name] = self._clock()
                    self.depths.forget(name)
                else:
                    self.depths.read(name, depth, mark)
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

    async def read_limits(self, *, strict: bool = False) -> None:
        """Read every queue's length limit again (with a ``limits`` reader); a failed read is
        logged (once, until a read succeeds) and the last reading stands until it is stale
        (:meth:`limit`). ``strict`` (a session's first read): a refused login or a missing
        credential does not heal by retrying, so it raises ConfigError."""
        if self._read_limits is None:
            return
        issued = self._clock()
        try:
            async with asyncio.timeout(self._read_timeout):
                reading = await self._read_limits()
        except (BrokerAccessRefused, ConfigError) as exc:
            if strict:
                raise ConfigError(
                    f"{exc}; in transaction delivery the hub reads its inboxes' length limits "
                    "from the management API (LIAISON_MANAGEMENT_URL) with its own account, "
                    "which needs the management tag ('liaison provision' gives it), or set "
                    "LIAISON_DELIVERY=confirm"
                ) from None
            self._limits_failed(exc)
            return
        except (LiaisonError, TimeoutError) as exc:
            self._limits_failed(exc)
            return
        if self._limits_failing:
            log.info("inbox_limits_read", queues=len(reading.limits))
        self._limits_failing = False
        self._limits, self._types, self._limits_at = reading.limits, reading.types, issued

    def _limits_failed(self, exc: Exception) -> None:
        # Read every second or so: one line when it starts failing, not one per attempt.
        if not self._limits_failing:
            log.warning("inbox_limits_unknown", error=f"{type(exc).__name__}: {exc}")
        self._limits_failing = True

    async def watch_limits(self, interval: float) -> None:
        """Read the limits every ``interval`` seconds (with a ``limits`` reader), until cancelled:
        a policy set while the hub runs is seen within about that long."""
        if self._read_limits is None:
            return
        while True:
            await asyncio.sleep(interval)
            await self.read_limits()

    def require_classic(self, queues: Iterable[str]) -> None:
        """Transaction mode's start: ``queues`` (what its transactions publish to besides the
        inboxes) must be classic as last read; ConfigError naming the fix if one is not,
        BrokerError (retried) if no reading tells."""
        if self._limits_at is None:
            raise BrokerError("the queues' types could not be read from the management API")
        other = {q: self._types.get(q) for q in queues if self._types.get(q) != "classic"}
        if other:
            found = ", ".join(f"{q} is {t or 'missing'}" for q, t in sorted(other.items()))
            raise ConfigError(
                f"transaction delivery publishes only to classic queues, but {found}: RabbitMQ "
                "3.10 can drop a killed hub's committed copies to a quorum queue; provision "
                "with LIAISON_QUEUE_TYPE=classic (single node), or set LIAISON_DELIVERY=confirm"
            )

    def limit(self, queue: str) -> int | None:
        """``queue``'s length limit as last read; None when unknown: no reading in the last
        three check intervals, or one that could not tell (limits.py)."""
        if self._limits_at is None or self._clock() - self._limits_at > self.depths.stale_after:
            return None
        return self._limits.get(queue)

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

    async def room(self, queue: str, max_length: int) -> Room:
        """Whether one more copy may go to ``queue`` (transaction mode's guard).

        A stale reading is read again first (one read per queue at a time); ``stale`` when that
        read fails or times out, so that nothing is published on a guess.
        """
        depths = self.depths
        state = depths.room(queue, max_length)
        if state != "stale" or self._connection is None:
            return state
        pending = self._rereads.get(queue)
        if pending is None:
            pending = asyncio.ensure_future(self._reread(self._connection, queue))
            self._rereads[queue] = pending
            pending.add_done_callback(lambda _: self._rereads.pop(queue, None))
        try:
            await asyncio.shield(pending)
        except (aiormq.exceptions.AMQPError, ConnectionError, TimeoutError) as exc:
            log.warning("inbox_depth_unknown", queue=queue, error=f"{type(exc).__name__}: {exc}")
            return "stale"
        # The reading just taken is as fresh as any can be, however long the read took.
        return depths.room(queue, max_length, fresh=True)

    async def blocked(self, queues: Iterable[str]) -> dict[str, Room]:
        """The ``queues`` that cannot safely take one more copy each, with why."""
        depths = self.depths
        found: dict[str, Room] = {}
        for queue in queues:
            limit = self.limit(queue)
            if limit is None:
                found[queue] = "unknown-limit"
                continue
            if self._classic_only and self._types.get(queue) != "classic":
                found[queue] = "not-classic"
                continue
            # The hot path: a fresh reading needs no coroutine of its own.
            state = depths.room(queue, limit)
            if state == "stale":
                state = await self.room(queue, limit)
            if state != "room":
                found[queue] = state
        return found

    def sent(self, queues: Iterable[str]) -> None:
        """One copy each went to ``queues`` (counted until it is settled and read)."""
        for queue in queues:
            self.depths.sent(queue)

    def settled(self, queues: Iterable[str]) -> None:
        """The copies counted by :meth:`sent` for ``queues`` were committed or discarded."""
        for queue in queues:
            self.depths.settled(queue)

    async def _reread(self, connection: aiormq.abc.AbstractConnection, name: str) -> None:
        try:
            async with asyncio.timeout(self._read_timeout):
                # One channel for every re-read, reopened after a 404 closed it: a watched
                # inbox is read every watch interval, too often to open a channel each time.
                channel = self._read_channel
                if channel is None or channel.is_closed or channel.connection is not connection:
                    channel = self._read_channel = await connection.channel()
                mark = self.depths.mark(name)
                depth = await _declared(channel, name)
        except TimeoutError:
            # A declare abandoned mid-way may still be answered: the next read starts afresh.
            self._read_channel = None
            raise
        if depth is None:
            self.depths.forget(name)
            raise ConnectionError(f"queue {name} not found")
        self.depths.read(name, depth, mark)

    async def _recheck(self, connection: aiormq.abc.AbstractConnection, name: str) -> bool:
        channel = await connection.channel()
        try:
            mark = self.depths.mark(name)
            depth = await _declared(channel, name)
        finally:
            if not channel.is_closed:
                await channel.close()
        exists = depth is not None
        if depth is not None:
            self.depths.read(name, depth, mark)
            self._missing.pop(name, None)
            log.info("inbox_found", queue=name)
        else:
            self._missing[name] = self._clock()
        return exists


async def _declared(channel: aiormq.abc.AbstractChannel, name: str) -> int | None:
    # The queue's ready messages, or None when it is missing: a passive declare of a missing
    # queue closes the channel with 404, and the caller reopens it.
    try:
        declared = await cast(aiormq.Channel, channel).queue_declare(name, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return None
    return int(declared.message_count or 0)
