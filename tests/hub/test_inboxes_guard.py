"""Transaction mode's inbox guard (inboxes.py): headroom, own copies, watch and staleness."""

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import aiormq
import pytest

from liaison.common.errors import BrokerError, BrokerUnreachable, ConfigError
from liaison.hub.inboxes import DepthGuard, InboxCensus, LimitReader, headroom_for
from liaison.hub.limits import UNLIMITED, QueueLimits


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def guard(clock: FakeClock) -> DepthGuard:
    """Headroom 10, watched within 10 * 30 / 0.5 = 600 of the limit."""
    return DepthGuard(headroom=10, watch_seconds=0.5, stale_after=30.0, clock=clock)


def test_room_until_the_reading_plus_own_copies_reach_the_headroom() -> None:
    """A copy is refused once depth read + copies let through since >= max - headroom."""
    clock = FakeClock()
    depths = guard(clock)
    depths.read("inbox.a", 85, depths.mark("inbox.a"))
    states = []
    for _ in range(7):
        state = depths.room("inbox.a", 100)
        states.append(state)
        if state == "room":
            depths.sent("inbox.a")
    assert states == ["room"] * 5 + ["full"] * 2
    assert depths.estimate("inbox.a") == 90


def test_copies_settled_before_a_read_was_issued_are_in_its_depth() -> None:
    """A reading replaces the count of copies settled before its issue, not of later ones."""
    clock = FakeClock()
    depths = guard(clock)
    depths.sent("inbox.a", 3)
    depths.settled("inbox.a", 3)  # committed before the read: in the depth it sees
    mark = depths.mark("inbox.a")
    depths.sent("inbox.a", 4)  # let through while the read is answered
    depths.read("inbox.a", 50, mark)
    assert depths.estimate("inbox.a") == 54


def test_copies_unsettled_when_a_read_was_issued_still_count() -> None:
    """This process's copies in flight (uncommitted) at a read may be missing from its depth,
    so they count until a read issued after they settled."""
    clock = FakeClock()
    depths = guard(clock)
    depths.sent("inbox.a", 7)  # in a batch whose commit is in flight
    mark = depths.mark("inbox.a")
    depths.settled("inbox.a", 7)  # committed while the read was on its way
    depths.read("inbox.a", 50, mark)
    assert depths.estimate("inbox.a") == 57
    depths.read("inbox.a", 57, depths.mark("inbox.a"))
    assert depths.estimate("inbox.a") == 57


def test_an_older_read_answering_late_does_not_replace_a_newer_one() -> None:
    """Reads answer out of order (survey and re-read): the later-issued one stands."""
    clock = FakeClock()
    depths = guard(clock)
    old = depths.mark("inbox.a")
    clock.now += 1
    new = depths.mark("inbox.a")
    depths.read("inbox.a", 20, new)
    depths.read("inbox.a", 95, old)
    assert depths.estimate("inbox.a") == 20


def test_no_reading_is_stale() -> None:
    """A queue never read (new, or its reads failing) is never published to on a guess."""
    assert guard(FakeClock()).room("inbox.new", 100_000) == "stale"


def test_a_reading_far_from_the_limit_is_good_for_the_staleness_bound() -> None:
    """Far below the watch level a reading holds for stale_after, then is stale."""
    clock = FakeClock()
    depths = guard(clock)
    depths.read("inbox.a", 1_000, depths.mark("inbox.a"))
    assert not depths.watched("inbox.a", 100_000)
    clock.now += 30.0
    assert depths.room("inbox.a", 100_000) == "room"
    clock.now += 0.01
    assert depths.room("inbox.a", 100_000) == "stale"
    assert depths.room("inbox.a", 100_000, fresh=True) == "room"


def test_a_reading_near_the_limit_is_good_for_the_watch_interval_only() -> None:
    """Within the watch margin (here 600) a reading goes stale after watch_seconds."""
    clock = FakeClock()
    depths = guard(clock)
    depths.read("inbox.a", 99_400, depths.mark("inbox.a"))
    assert depths.watched("inbox.a", 100_000)
    clock.now += 0.5
    assert depths.room("inbox.a", 100_000) == "room"
    clock.now += 0.01
    assert depths.room("inbox.a", 100_000) == "stale"
    # Own copies can carry a queue into the watch zone between readings.
    depths.read("inbox.b", 99_399, depths.mark("inbox.b"))
    clock.now += 1.0
    assert depths.room("inbox.b", 100_000) == "room"
    depths.sent("inbox.b")
    assert depths.room("inbox.b", 100_000) == "stale"


def test_a_small_inbox_takes_copies_until_nearly_full() -> None:
    """The headroom is at most a tenth of the limit: a 10-message inbox takes 9 copies."""
    clock = FakeClock()
    depths = guard(clock)
    depths.read("inbox.tiny", 0, depths.mark("inbox.tiny"))
    states = []
    for _ in range(11):
        state = depths.room("inbox.tiny", 10)
        states.append(state)
        if state == "room":
            depths.sent("inbox.tiny")
    assert states == ["room"] * 9 + ["full"] * 2
    assert [headroom_for(4000, limit) for limit in (5, 10, 1_000, 100_000)] == [1, 1, 100, 4000]


def test_an_unlimited_queue_always_has_room() -> None:
    """A queue nothing limits needs no reading at all."""
    assert guard(FakeClock()).room("inbox.free", UNLIMITED) == "room"


class FakeChannel:
    """A channel whose passive declares answer ``depths`` (or fail), counting them."""

    def __init__(self, connection: "FakeConnection") -> None:
        self.connection = connection
        self.is_closed = False

    async def queue_declare(self, name: str, passive: bool) -> Any:
        assert passive
        self.connection.declares += 1
        await asyncio.sleep(self.connection.delay)
        if self.connection.fail:
            raise aiormq.exceptions.ChannelClosed(None, "broker gone")
        return SimpleNamespace(message_count=self.connection.depths[name])

    async def close(self) -> None:
        self.is_closed = True


class FakeConnection:
    """Just enough of an aiormq connection for the census's reads."""

    def __init__(self, depths: dict[str, int]) -> None:
        self.depths = depths
        self.declares = 0
        self.fail = False
        self.delay = 0.01
        self.channels = 0

    async def channel(self) -> FakeChannel:
        self.channels += 1
        return FakeChannel(self)


def limits_of(limits: dict[str, int | None], queue_type: str = "classic") -> LimitReader:
    """A limits reader answering ``limits``, every queue of ``queue_type`` (the management
    API's part is tested on the broker)."""

    async def read() -> QueueLimits:
        return QueueLimits(limits, dict.fromkeys(limits, queue_type))

    return read


LIMIT_100 = limits_of(dict.fromkeys(["inbox.a", "inbox.a.flash", "inbox.b"], 100))


async def test_a_stale_reading_is_read_again_once_for_every_waiting_copy() -> None:
    """Copies to a queue with a stale reading share one re-read, then are judged on it."""
    clock = FakeClock()
    census = InboxCensus(
        check_interval=10.0, headroom=10, watch_seconds=0.5, limits=LIMIT_100, clock=clock
    )
    connection = FakeConnection({"inbox.a": 40, "inbox.a.flash": 0, "inbox.b": 95})
    await census.survey(cast(aiormq.abc.AbstractConnection, connection), ["a"])
    await census.read_limits()
    assert connection.declares == 2
    assert await census.room("inbox.a", 100) == "room"  # fresh: no read
    assert connection.declares == 2
    clock.now += 31.0
    await census.read_limits()  # as the survey every interval would have
    connection.depths["inbox.a"] = 91
    states = await asyncio.gather(*(census.room("inbox.a", 100) for _ in range(5)))
    assert states == ["full"] * 5
    assert connection.declares == 3
    blocked = await census.blocked(["inbox.a", "inbox.b"])
    assert blocked == {"inbox.a": "full", "inbox.b": "full"}


async def test_a_failed_re_read_leaves_the_queue_stale_so_nothing_is_published_blindly() -> None:
    """When the depth cannot be read the guard answers stale (the hub refuses the copy)."""
    clock = FakeClock()
    census = InboxCensus(check_interval=10.0, headroom=10, watch_seconds=0.5, clock=clock)
    connection = FakeConnection({"inbox.a": 0, "inbox.a.flash": 0})
    await census.survey(cast(aiormq.abc.AbstractConnection, connection), ["a"])
    clock.now += 31.0
    connection.fail = True
    assert await census.room("inbox.a", 100) == "stale"
    connection.fail = False
    assert await census.room("inbox.a", 100) == "room"


async def test_a_re_read_that_hangs_is_stale_and_the_next_one_uses_a_new_channel() -> None:
    """A declare unanswered within the read timeout refuses the copy and is not waited on again."""
    clock = FakeClock()
    census = InboxCensus(
        check_interval=10.0, headroom=10, watch_seconds=0.5, read_timeout=0.05, clock=clock
    )
    connection = FakeConnection({"inbox.a": 0, "inbox.a.flash": 0})
    await census.survey(cast(aiormq.abc.AbstractConnection, connection), ["a"])
    clock.now += 31.0
    connection.delay = 1.0
    assert await census.room("inbox.a", 100) == "stale"
    opened = connection.channels
    connection.delay = 0.01
    assert await census.room("inbox.a", 100) == "room"
    assert connection.channels == opened + 1


@pytest.mark.parametrize("depth", [0, 89])
async def test_the_guard_passes_copies_below_the_headroom(depth: int) -> None:
    """An inbox below max - headroom takes the copy, and the copy counts from then on."""
    clock = FakeClock()
    census = InboxCensus(
        check_interval=10.0, headroom=10, watch_seconds=0.5, limits=LIMIT_100, clock=clock
    )
    connection = FakeConnection({"inbox.a": depth, "inbox.a.flash": depth})
    await census.survey(cast(aiormq.abc.AbstractConnection, connection), ["a"])
    await census.read_limits()
    assert await census.blocked(["inbox.a.flash"]) == {}
    census.sent(["inbox.a.flash"])
    assert census.depths.estimate("inbox.a.flash") == depth + 1
    assert census.depths.estimate("inbox.a") == depth


async def test_an_unknown_or_stale_limit_refuses_the_copy() -> None:
    """No limit read yet, a limit that cannot be told, or a reading three intervals old: the
    guard refuses rather than guess; a failed read keeps the last one until then."""
    clock = FakeClock()
    answers: list[dict[str, int | None] | Exception] = [
        {"inbox.a": 100, "inbox.a.flash": None},
        BrokerUnreachable("management API down"),
    ]

    async def read() -> QueueLimits:
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        return QueueLimits(answer, dict.fromkeys(answer, "classic"))

    census = InboxCensus(
        check_interval=10.0, headroom=10, watch_seconds=0.5, limits=read, clock=clock
    )
    assert await census.blocked(["inbox.a"]) == {"inbox.a": "unknown-limit"}
    connection = FakeConnection({"inbox.a": 0, "inbox.a.flash": 0})
    await census.survey(cast(aiormq.abc.AbstractConnection, connection), ["a"])
    await census.read_limits()
    assert await census.blocked(["inbox.a", "inbox.a.flash", "inbox.gone"]) == {
        "inbox.a.flash": "unknown-limit",
        "inbox.gone": "unknown-limit",
    }
    clock.now += 20.0
    await census.read_limits()  # fails: the last reading stands
    assert census.limit("inbox.a") == 100
    clock.now += 10.1
    assert census.limit("inbox.a") is None
    assert await census.blocked(["inbox.a"]) == {"inbox.a": "unknown-limit"}


async def test_only_classic_inboxes_take_copies_when_classic_only() -> None:
    """With classic_only (transaction mode) a copy to a quorum inbox is refused as not
    classic, whatever its room, while a classic inbox with room takes it."""
    reading = QueueLimits(
        {"inbox.a": 100, "inbox.b": 100}, {"inbox.a": "quorum", "inbox.b": "classic"}
    )

    async def read() -> QueueLimits:
        return reading

    census = InboxCensus(check_interval=10.0, headroom=10, limits=read, classic_only=True)
    connection = FakeConnection(
        dict.fromkeys(["inbox.a", "inbox.a.flash", "inbox.b", "inbox.b.flash"], 0)
    )
    await census.survey(cast(aiormq.abc.AbstractConnection, connection), ["a", "b"])
    await census.read_limits()
    assert await census.blocked(["inbox.a", "inbox.b"]) == {"inbox.a": "not-classic"}
    lenient = InboxCensus(check_interval=10.0, headroom=10, limits=read)
    await lenient.survey(cast(aiormq.abc.AbstractConnection, connection), ["a", "b"])
    await lenient.read_limits()
    assert await lenient.blocked(["inbox.a", "inbox.b"]) == {}


async def test_require_classic_names_the_setting_or_waits_for_a_reading() -> None:
    """require_classic passes classic queues, refuses a quorum or missing one with a ConfigError
    naming LIAISON_QUEUE_TYPE=classic, and, before any reading, raises a (retried) BrokerError."""
    types = {"liaison.ledger": "classic", "liaison.dead-letters": "quorum"}

    async def read() -> QueueLimits:
        return QueueLimits(dict.fromkeys(types, 10), types)

    census = InboxCensus(check_interval=10.0, limits=read, classic_only=True)
    with pytest.raises(BrokerError) as unread:
        census.require_classic(["liaison.ledger"])
    assert not isinstance(unread.value, ConfigError)
    await census.read_limits()
    census.require_classic(["liaison.ledger"])
    with pytest.raises(ConfigError, match="LIAISON_QUEUE_TYPE=classic") as caught:
        census.require_classic(["liaison.ledger", "liaison.dead-letters", "liaison.gone"])
    assert "liaison.dead-letters is quorum" in str(caught.value)
    assert "liaison.gone is missing" in str(caught.value)
