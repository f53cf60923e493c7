"""The hub's delivery memory in Redis: shared by every hub process, kept across restarts.

One key per handled message, ``<prefix><sender>/<distribution id>``, holding how it was handled
and who received it, with the dedupe window as its TTL, so Redis forgets on its own and the
store never grows past one window of traffic.

A hub has up to ``LIAISON_PREFETCH`` messages in flight per shard, each asking one question
before it publishes and writing one record after its confirms. Calls are not sent one by one:
every record made while the previous records' round trip is under way joins the next one (one
script call), and likewise every question (one ``MGET``), so the cost per message is a share of
a round trip and of one command's parsing rather than a round trip each (``bench/memory.py``
measures it). Records and questions go in two lanes, so a record never waits behind questions.

Both lanes' commands go over one connection (``_Pipe``), written as they come and answered in
order: redis-py's per-command path (pool, retry, timeouts as tasks, response callbacks) cost
the hub more than the rest of its memory calls when a round trip carries only a few messages,
as it does below full load. redis-py still makes the connection (the URL's host or socket, TLS,
AUTH, SELECT) and everything else (``forget_all``).

Redis out of reach raises ``MemoryUnavailable``: the hub cannot tell a repeat from a first
delivery then, so it stops consuming until Redis answers again rather than risk delivering twice.
"""

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar, cast

import hiredis
import redis.asyncio
import redis.exceptions
import structlog

from liaison.common.config import redact_url
from liaison.hub.memory import Handled, LocalMemory

log = structlog.get_logger("liaison.hub")

DEFAULT_PREFIX = "liaison:memory:"
#: Seconds before an unanswered Redis call counts as Redis being out of reach.
DEFAULT_TIMEOUT = 2.0


#: SET every KEYS[i] to ARGV[i] with the TTL in ms that is the last ARGV. Redis keeps compiled
#: scripts by digest, so sending the text each time costs its bytes, not a compile.
_SET_ALL = """
local ttl = ARGV[#ARGV]
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[i], 'PX', ttl)
end
return #KEYS
"""


#: A key no message has, recalled to check that Redis answers before the hub consumes.
_PROBE = "liaison-hub/memory-probe"


class MemoryUnavailable(ConnectionError):
    """The shared memory cannot be reached; nothing can be decided until it answers again."""


T = TypeVar("T")
R = TypeVar("R")


class _Lane(Generic[T, R]):
    """Calls of one kind gathered while the lane's previous round trip was under way.

    ``trip`` sends every gathered call in one round trip and returns one answer per call.
    """

    def __init__(self, name: str, trip: Callable[[list[T]], Awaitable[list[R]]]) -> None:
        self._name = name
        self._trip = trip
        self._calls: list[T] = []
        self._answers: list[asyncio.Future[R]] = []
        self._flusher: asyncio.Task[None] | None = None

    def call(self, item: T) -> "asyncio.Future[R]":
        """Join the next round trip; the future holds this call's answer."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._calls.append(item)
        self._answers.append(future)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name=self._name)
        return future

    async def drain(self) -> None:
        """Wait for the round trip under way, if any."""
        if self._flusher is not None:
            with contextlib.suppress(BaseException):
                await self._flusher

    async def _flush(self) -> None:
        # One round trip at a time; whatever arrives meanwhile waits for the next one.
        while self._calls:
            calls, answers = self._calls, self._answers
            self._calls, self._answers = [], []
            try:
                results = await self._trip(calls)
            except (redis.exceptions.RedisError, OSError) as exc:
                failure = MemoryUnavailable(f"redis: {type(exc).__name__}: {exc}")
                for answer in answers:
                    if not answer.done():
                        answer.set_exception(failure)
                continue
            for answer, result in zip(answers, results, strict=True):
                if not answer.done():
                    answer.set_result(result)


class _Pipe:
    """One Redis connection, made by redis-py, carrying commands pipelined: each written at
    once, each answer matched to its call by order. A failure or a timeout closes the
    connection and fails every call waiting on it; the next call connects again."""

    def __init__(self, pool: "redis.asyncio.ConnectionPool", timeout: float) -> None:
        self._pool = pool
        self._timeout = timeout
        self._connection: Any = None
        self._connecting: asyncio.Lock = asyncio.Lock()
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._reader: asyncio.Task[None] | None = None

    async def call(self, *args: str | int) -> Any:
        """The answer to one command; raises RedisError (or OSError) when it cannot have one."""
        try:
            async with asyncio.timeout(self._timeout):
                connection = self._connection or await self._connect()
                answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                self._waiting.append(answer)
                writer = connection._writer
                writer.writelines(connection.pack_command(*args))
                await writer.drain()
                return await answer
        except TimeoutError:
            # Answers to calls after this one would be read as this one's: start afresh.
            await self._drop(redis.exceptions.TimeoutError("no answer from redis in time"))
            raise redis.exceptions.TimeoutError(
                f"no answer from redis in {self._timeout}s"
            ) from None

    async def _connect(self) -> Any:
        async with self._connecting:
            if self._connection is None:
                connection = self._pool.make_connection()  # type: ignore[no-untyped-call]
                await connection.connect()
                self._connection = connection
                self._reader = asyncio.create_task(
                    self._read(connection), name="hub-memory-answers"
                )
            return self._connection

    async def _read(self, connection: Any) -> None:
        parser = hiredis.Reader(encoding="utf-8")
        waiting = self._waiting
        try:
            while True:
                data = await connection._reader.read(65536)
                if not data:
                    raise redis.exceptions.ConnectionError("redis closed the connection")
                parser.feed(data)
                while (reply := parser.gets()) is not False:
                    answer = waiting.popleft()
                    if answer.done():
                        continue
                    if isinstance(reply, hiredis.ReplyError):
                        answer.set_exception(redis.exceptions.ResponseError(str(reply)))
                    else:
                        answer.set_result(reply)
        except asyncio.CancelledError:
            raise
        except (redis.exceptions.RedisError, OSError, hiredis.ProtocolError, IndexError) as exc:
            failure = (
                exc
                if isinstance(exc, redis.exceptions.RedisError)
                else redis.exceptions.ConnectionError(f"{type(exc).__name__}: {exc}")
            )
            await self._drop(failure, reading=True)

    async def _drop(self, failure: Exception, *, reading: bool = False) -> None:
        connection, self._connection = self._connection, None
        reader, self._reader = self._reader, None
        waiting, self._waiting = self._waiting, deque()
        for answer in waiting:
            if not answer.done():
                answer.set_exception(failure)
        if reader is not None and not reading:
            reader.cancel()
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.disconnect(nowait=True)

    async def close(self) -> None:
        await self._drop(redis.exceptions.ConnectionError("closed"))


class RedisMemory:
    """``DeliveryMemory`` over one Redis: records in one lane, questions in another, each
    lane's calls of a moment in one round trip."""

    def __init__(
        self,
        client: "redis.asyncio.Redis",
        *,
        prefix: str,
        window_seconds: float,
        where: str = "redis",
    ) -> None:
        if window_seconds <= 0:
            raise ValueError(f"the dedupe window must be positive, not {window_seconds}")
        self._client = client
        self._pipe = _Pipe(client.connection_pool, _timeout_of(client))
        self._prefix = prefix
        self._ttl_ms = max(1, int(window_seconds * 1000))
        # Records never wait behind questions: the time between a delivery's confirm and its
        # record is when a crash makes the next hub deliver it again (the window a kill
        # repeats), while a question only delays a message nobody has received yet.
        self._writes: _Lane[tuple[str, str], None] = _Lane("hub-memory-records", self._record)
        self._reads: _Lane[str, str | None] = _Lane("hub-memory-questions", self._ask)
        #: The Redis this memory uses, safe for a log line.
        self.where = where
        #: Round trips made, for tests and the benchmark (how well calls are batched).
        self.round_trips = 0

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        window_seconds: float,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> "RedisMemory":
        """A memory on the Redis at ``url`` (``redis://``, ``rediss://`` or ``unix://``)."""
        client = redis.asyncio.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
        )
        return cls(client, prefix=prefix, window_seconds=window_seconds, where=redact_url(url))

    async def recall(self, key: str) -> Handled | None:
        value = await self._reads.call(self._prefix + key)
        if value is None:
            return None
        handled, _, _ = value.partition(":")
        try:
            return Handled(handled)
        except ValueError:
            # Written by something else under our prefix: treat as unknown, not as handled.
            return None

    async def remember(self, key: str, handled: Handled, recipients: Sequence[str] = ()) -> None:
        # Organisation ids never contain ',' or ':' (the contract's pattern), so this parses back.
        value = f"{handled.value}:{','.join(sorted(set(recipients)))}"
        await self._writes.call((self._prefix + key, value))

    async def received(self, recipient: str, key: str) -> bool:
        value = await self._reads.call(self._prefix + key)
        if value is None:
            return False
        handled, _, recipients = value.partition(":")
        return handled == Handled.DELIVERED.value and recipient in recipients.split(",")

    async def ping(self) -> None:
        """A recall of a key no message has: it answers, or raises MemoryUnavailable."""
        await self.recall(_PROBE)

    async def close(self) -> None:
        await self._writes.drain()
        await self._reads.drain()
        await self._pipe.close()
        await self._client.aclose()

    async def forget_all(self) -> int:
        """Delete every key under this memory's prefix (tests and benchmarks clean up with it)."""
        deleted = 0
        async for key in self._client.scan_iter(match=self._prefix + "*", count=1000):
            deleted += await self._client.delete(key)
        return deleted

    async def _record(self, writes: list[tuple[str, str]]) -> list[None]:
        self.round_trips += 1
        # One command for every record: redis-py's per-command work (packing, parsing,
        # bookkeeping) was most of the memory's cost with one SET per record.
        keys = [key for key, _ in writes]
        values = [value for _, value in writes]
        await self._pipe.call("EVAL", _SET_ALL, len(keys), *keys, *values, self._ttl_ms)
        return [None] * len(writes)

    async def _ask(self, keys: list[str]) -> list[str | None]:
        self.round_trips += 1
        # The answers are decoded as UTF-8: str, never bytes.
        return cast("list[str | None]", await self._pipe.call("MGET", *keys))


def _timeout_of(client: "redis.asyncio.Redis") -> float:
    # The socket timeout from_url was given: how long a call may wait for its answer.
    timeout = client.connection_pool.connection_kwargs.get("socket_timeout")
    return float(timeout) if timeout else DEFAULT_TIMEOUT


def open_memory(
    redis_url: str | None, *, prefix: str, window_seconds: float, max_entries: int
) -> "RedisMemory | LocalMemory":
    """The hub's memory: Redis when ``LIAISON_REDIS_URL`` is set, else this process's own."""
    if redis_url is None:
        log.info(
            "delivery_memory",
            store="local",
            note="this process only: a restart or a standby may deliver a message again",
        )
        return LocalMemory(seconds=window_seconds, max_entries=max_entries)
    memory = RedisMemory.from_url(redis_url, prefix=prefix, window_seconds=window_seconds)
    log.info("delivery_memory", store="redis", url=memory.where, prefix=prefix)
    return memory
