"""The inbox's record of settled message ids, in memory and in a dedupe file across restarts."""

import stat
from collections.abc import Callable
from pathlib import Path

import aio_pika
import msgspec
import pytest

from liaison.schemas.wire import DELIVERY_EXCHANGE, HEADER_POSSIBLE_REPEAT, inbox_queue
from liaison.sdk import Client
from liaison.sdk.errors import InvalidArgument
from liaison.sdk.settled import SWEEP_EVERY, SettledFile, SettledIds, SettledInMemory
from tests.hub.conftest import RunningHub
from tests.hub.support import drain
from tests.sdk.conftest import Connect
from tests.sdk.support import spot_report


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


Store = Callable[[Clock], SettledIds]


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """Each kind of store, made with a given clock, a 60 s window and 5 entries at most."""
    if request.param == "memory":
        return lambda clock: SettledInMemory(seconds=60, max_entries=5, clock=clock)
    return lambda clock: SettledFile(
        tmp_path / "settled.db", seconds=60, max_entries=5, clock=clock
    )


def test_settled_ids_keep_how_they_were_settled(store: Store) -> None:
    """An acked id reads False, a rejected one True, an unknown one None."""
    settled = store(Clock())
    settled.remember("mag/1", rejected=False)
    settled.remember("mag/2", rejected=True)
    assert settled.outcome("mag/1") is False
    assert settled.outcome("mag/2") is True
    assert settled.outcome("mag/3") is None
    settled.close()


def test_a_later_settle_replaces_the_earlier(store: Store) -> None:
    """Rejected, then acked (a replayed dead letter): the ack is what counts."""
    settled = store(Clock())
    settled.remember("mag/1", rejected=True)
    settled.remember("mag/1", rejected=False)
    assert settled.outcome("mag/1") is False
    settled.close()


def test_ids_leave_the_window_when_it_passes(store: Store) -> None:
    """An id settled more than the window ago is no longer a duplicate."""
    clock = Clock()
    settled = store(clock)
    settled.remember("mag/1", rejected=False)
    clock.now += 59
    assert settled.outcome("mag/1") is False
    clock.now += 2
    assert settled.outcome("mag/1") is None
    settled.close()


def test_the_file_outlives_the_process(tmp_path: Path) -> None:
    """A store opened again on the same file knows what the first one settled."""
    path = tmp_path / "settled.db"
    first = SettledFile(path, seconds=60, max_entries=5)
    first.remember("mag/1", rejected=False)
    first.remember("mag/2", rejected=True)
    first.close()
    again = SettledFile(path, seconds=60, max_entries=5)
    assert (again.outcome("mag/1"), again.outcome("mag/2")) == (False, True)
    again.close()


def test_two_stores_on_one_file_share_it(tmp_path: Path) -> None:
    """Two processes of one organisation sharing the file see each other's settles."""
    path = tmp_path / "settled.db"
    one = SettledFile(path, seconds=60, max_entries=5)
    two = SettledFile(path, seconds=60, max_entries=5)
    one.remember("mag/1", rejected=False)
    assert two.outcome("mag/1") is False
    one.close()
    two.close()


def test_the_file_keeps_at_most_max_entries_after_a_sweep(tmp_path: Path) -> None:
    """The newest max_entries ids survive a sweep; the file does not grow without bound."""
    clock = Clock()
    settled = SettledFile(tmp_path / "settled.db", seconds=3600, max_entries=5, clock=clock)
    for n in range(SWEEP_EVERY):
        clock.now += 0.001
        settled.remember(f"mag/{n}", rejected=False)
    assert len(settled) == 5
    assert settled.outcome(f"mag/{SWEEP_EVERY - 1}") is False
    assert settled.outcome("mag/0") is None
    settled.close()


def test_the_file_is_private_to_its_owner(tmp_path: Path) -> None:
    """Who received what is in the file: it is created readable by its owner only."""
    path = tmp_path / "settled.db"
    SettledFile(path, seconds=60, max_entries=5).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("kind", ["garbage", "directory", "no parent"])
def test_an_unusable_dedupe_file_is_refused_clearly(tmp_path: Path, kind: str) -> None:
    """Not a SQLite file, a directory, or a path in a missing directory: InvalidArgument
    naming the path, before anything is connected."""
    path = tmp_path / "settled.db"
    if kind == "garbage":
        path.write_bytes(b"this is not a database, it is a partner's notes\n" * 100)
    elif kind == "directory":
        path.mkdir()
    else:
        path = tmp_path / "missing" / "settled.db"
    with pytest.raises(InvalidArgument, match="dedupe_file"):
        SettledFile(path, seconds=60, max_entries=5)


async def test_client_refuses_a_bad_dedupe_file_before_connecting(tmp_path: Path) -> None:
    """Client.connect names a dedupe_file it cannot use, without trying the broker."""
    with pytest.raises(InvalidArgument, match="dedupe_file"):
        await Client.connect(
            "mag", "amqp://mag:x@127.0.0.1:1/nowhere", dedupe_file=tmp_path / "no" / "f.db"
        )


async def _repeat(admin: aio_pika.abc.AbstractConnection, body: bytes, message_id: str) -> None:
    # What a hub process repeating a stopped one's copy puts in the inbox: the same message.
    channel = await admin.channel()
    exchange = await channel.get_exchange(DELIVERY_EXCHANGE, ensure=False)
    await exchange.publish(
        aio_pika.Message(body, message_id=message_id, headers={HEADER_POSSIBLE_REPEAT: "true"}),
        routing_key="unmas",
    )
    await channel.close()


@pytest.mark.broker
async def test_a_repeat_after_a_restart_is_dropped_with_a_dedupe_file(
    hub: RunningHub,
    connect: Connect,
    admin: aio_pika.abc.AbstractConnection,
    tmp_path: Path,
) -> None:
    """Acked by one client, repeated, read by a new client on the same dedupe file: dropped;
    the same repeat reaches a client with a fresh file (the file is what drops it)."""
    path = tmp_path / "unmas-settled.db"
    first = await connect("unmas", dedupe_file=path)
    inbox = await first.inbox()
    mag = await connect("mag")
    await mag.send(spot_report(), recipients=["org:unmas"])
    delivery = await inbox.get(10.0)
    assert delivery is not None
    body, message_id = msgspec.json.encode(delivery.envelope), delivery.message_id
    await delivery.ack()
    await first.close()

    await _repeat(admin, body, message_id)
    restarted = await connect("unmas", dedupe_file=path)
    inbox = await restarted.inbox()
    assert await inbox.get(1.5) is None
    assert inbox.duplicates == 1
    assert await drain(admin, inbox_queue("unmas"), expect=0, settle=0.2) == []
    await restarted.close()

    await _repeat(admin, body, message_id)
    forgetful = await connect("unmas", dedupe_file=tmp_path / "another.db")
    inbox = await forgetful.inbox()
    repeat = await inbox.get(10.0)
    assert repeat is not None
    assert (repeat.message_id, repeat.possible_repeat) == (message_id, True)
    await repeat.ack()
