"""A bench run's throwaway vhost: the directory's partners, Liaison's topology and the bench's
copy counter, with a scratch directory for the processes' logs; all of it deleted afterwards.

``bench``, ``bench.sweep`` and ``bench.ledger`` each build theirs on this, with their own
directory of organisations.
"""

import asyncio
import contextlib
import secrets
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import aiormq.exceptions

from bench.broker import (
    COPY_QUEUE,
    Counter,
    amqp_url,
    create_partner,
    create_vhost,
    management_client,
    remove_stale_runs,
    wait_until,
)
from bench.processes import CpuMeter
from liaison.common.errors import LiaisonError
from liaison.common.topology import LEDGER_QUEUE, QueueType, build_topology, hub_queue
from liaison.directory.index import DirectoryIndex
from liaison.directory.topology import apply_topology
from liaison.schemas.wire import DEAD_LETTER_QUEUE, DELIVERY_EXCHANGE

#: How a bench writes its directory file for a run id; each bench has its own organisations.
WriteDirectory = Callable[[str, Path], DirectoryIndex]


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


class BenchVhost:
    """One run's vhost ``{prefix}-{run id}``, its partner users, topology and scratch directory."""

    def __init__(self, prefix: str, write_directory: WriteDirectory) -> None:
        self.run_id = secrets.token_hex(4)
        self.vhost = f"{prefix}-{self.run_id}"
        self.url = amqp_url(self.vhost)
        self.scratch = Path(tempfile.mkdtemp(prefix=f"{self.vhost}-"))
        self.directory_file = self.scratch / "directory.toml"
        self.mgmt = management_client()
        self.counter = Counter(self.url)
        self.index: DirectoryIndex
        self.inboxes: list[str] = []
        self.shards = [hub_queue(n) for n in range(4)]
        #: Type of the inboxes, ledger and dead-letter queues (LIAISON_QUEUE_TYPE); set before
        #: setup. Transaction delivery runs only on classic ones.
        self.queue_type: QueueType = "quorum"
        self._write_directory = write_directory

    def log(self, text: str) -> None:
        log(text)

    async def purge(self) -> None:
        """Empty the queues a round fills. The ledger's too: no ledger reads it in these benches,
        and a quorum queue growing by every hub round's records would make the broker's work
        differ from round to round."""
        for queue in [*self.inboxes, COPY_QUEUE, DEAD_LETTER_QUEUE, LEDGER_QUEUE]:
            await self.counter.purge(queue)

    async def setup(self) -> None:
        """Create everything; on failure, delete what was made."""
        try:
            await self._setup()
        except BaseException:
            with contextlib.suppress(Exception):
                await self.teardown()
            raise

    async def _setup(self) -> None:
        self.index = self._write_directory(self.run_id, self.directory_file)
        await self.mgmt.open()
        for stale in await remove_stale_runs(self.mgmt):
            self.log(f"deleted {stale}, left by a bench run on this host that is gone")
        await create_vhost(self.mgmt, self.vhost)
        for org in self.index.organisations.values():
            await create_partner(self.mgmt, self.vhost, org.broker_account)
        orgs = self.index.organisations
        spec = build_topology(
            {name: org.inbox_max_length for name, org in orgs.items()}, queue_type=self.queue_type
        )
        await apply_topology(self.mgmt, self.vhost, spec)
        self.inboxes = [q.name for q in spec.queues if q.owner is not None]
        # A vhost just created may refuse connections for a moment on a busy node.
        for attempt in range(20):
            try:
                await self.counter.open()
                break
            except aiormq.exceptions.AMQPError:
                if attempt == 19:
                    raise
                await asyncio.sleep(0.5)
        await self.counter.declare_copy_counter(DELIVERY_EXCHANGE)

    async def teardown(self) -> None:
        await self.counter.close()
        for org in self.index.organisations.values():
            try:
                await self.mgmt.delete_user(org.broker_account)
            except LiaisonError as exc:
                self.log(f"could not delete user {org.broker_account}: {exc}")
        await self.mgmt.delete_vhost(self.vhost)
        await self.mgmt.close()

    async def drained(
        self,
        source: list[str],
        n: int,
        copies: int,
        *,
        meters: Sequence[CpuMeter],
        alive: Callable[[], bool],
        limit_seconds: float,
    ) -> tuple[float, float, list[float]]:
        """(start, end, CPU seconds of each meter in between): from the moment ``source``
        first shrinks below ``n`` until it is empty, the copy counter holds ``n`` and the
        inboxes ``copies``. A mover that stops (``alive`` false) fails the round at once."""
        start, end = await wait_until(
            self.counter,
            source=source,
            source_total=n,
            dest=[COPY_QUEUE],
            dest_total=n,
            extra=(self.inboxes, copies),
            limit_seconds=limit_seconds,
            on_start=lambda: [m.mark() for m in meters] and None,
            alive=alive,
        )
        return start, end, [m.read() for m in meters]

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """``setup()``, then ``teardown()`` however the body ends. The scratch directory (the
        hub's decision lines: about 60 MB in a default run) goes when the body ended well; after
        a failure the processes' logs are kept to read."""
        await self.setup()
        try:
            yield
        except BaseException:
            self.log(f"failed; the processes' logs are kept in {self.scratch}")
            raise
        else:
            shutil.rmtree(self.scratch, ignore_errors=True)
        finally:
            await self.teardown()
