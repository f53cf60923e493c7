"""The link's state as a site sees it: connected, backlog each way, age of the oldest waiting.

Read every few seconds by the site relay from the site broker's management API (shovel states,
queue depths, ``head_message_timestamp``, alarms) and, through the tunnel with the site's own
account, from headquarters (passive declares of the site organisations' inboxes: how much
waits to come down). Served as JSON on ``/status`` (``liaison relay status`` prints it) and as
Prometheus gauges on ``/metrics``.

Headquarters' inboxes are quorum queues, which report no head timestamp: the inbound age is
how long the inbound backlog has been non-empty, an upper bound on the oldest message's wait.
"""

import asyncio
import time
from urllib.parse import quote

import aio_pika
import aio_pika.abc
import msgspec
import structlog
from prometheus_client import CollectorRegistry, Gauge

from liaison.common.errors import LiaisonError
from liaison.directory.management import ManagementClient
from liaison.relay.site import FLASH_QUEUE, SitePlan
from liaison.relay.sorter import Sorter
from liaison.relay.tunnel import WireCounters

log = structlog.get_logger("liaison.relay.status")

#: Longest a reading of headquarters' backlog may take before it counts as unknown.
READ_TIMEOUT = 8.0


class LinkStatus(msgspec.Struct, kw_only=True):
    """One reading of the link, as ``/status`` serves it."""

    site: str
    #: Every shovel running: both brokers reachable through the link.
    connected: bool
    shovels: dict[str, str]
    #: Messages waiting on the site for the link (sorted or not), of which flash.
    outbound_backlog: int
    outbound_flash_backlog: int
    #: Seconds the oldest waiting outbound message has waited (None: nothing waits).
    outbound_oldest_seconds: float | None
    #: Messages waiting at headquarters for the site (None: unknown, link down).
    inbound_backlog: int | None
    inbound_oldest_seconds: float | None
    disk_alarm: bool
    memory_alarm: bool
    #: Bytes through the tunnel: plain AMQP and compressed on the link, each way.
    up_plain_bytes: int
    up_wire_bytes: int
    down_plain_bytes: int
    down_wire_bytes: int
    sorted_flash: int
    sorted_routine: int
    checked_at: float


class _QueueInfo(msgspec.Struct):
    name: str
    messages: int = 0
    head_message_timestamp: int | None = None


class _ShovelInfo(msgspec.Struct):
    name: str
    state: str = "unknown"


class _NodeInfo(msgspec.Struct):
    disk_free_alarm: bool = False
    mem_alarm: bool = False


class RelayMetrics:
    """The status as Prometheus gauges (``liaison_relay_*``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.connected = Gauge(
            "liaison_relay_connected", "1 when every shovel of the site runs", registry=registry
        )
        self.backlog = Gauge(
            "liaison_relay_backlog_messages",
            "messages waiting for the link",
            ["direction"],
            registry=registry,
        )
        self.oldest = Gauge(
            "liaison_relay_oldest_waiting_seconds",
            "age of the oldest message waiting for the link (0: none)",
            ["direction"],
            registry=registry,
        )
        self.link_bytes = Gauge(
            "liaison_relay_link_bytes",
            "bytes through the tunnel since start: plain AMQP and compressed on the wire",
            ["direction", "kind"],
            registry=registry,
        )
        self.alarm = Gauge(
            "liaison_relay_site_alarm",
            "1 while the site broker's alarm is on",
            ["alarm"],
            registry=registry,
        )

    def update(self, status: LinkStatus) -> None:
        """Set every gauge from one reading."""
        self.connected.set(1 if status.connected else 0)
        self.backlog.labels("up").set(status.outbound_backlog)
        self.backlog.labels("down").set(status.inbound_backlog or 0)
        self.oldest.labels("up").set(status.outbound_oldest_seconds or 0)
        self.oldest.labels("down").set(status.inbound_oldest_seconds or 0)
        for direction, plain, wire in (
            ("up", status.up_plain_bytes, status.up_wire_bytes),
            ("down", status.down_plain_bytes, status.down_wire_bytes),
        ):
            self.link_bytes.labels(direction, "plain").set(plain)
            self.link_bytes.labels(direction, "wire").set(wire)
        self.alarm.labels("disk").set(1 if status.disk_alarm else 0)
        self.alarm.labels("memory").set(1 if status.memory_alarm else 0)


class StatusPoller:
    """Reads the link's state every ``interval`` seconds; ``latest`` is the last reading."""

    def __init__(
        self,
        *,
        plan: SitePlan,
        api: ManagementClient,
        vhost: str,
        hq_url: str,
        counters: WireCounters,
        sorter: Sorter,
        metrics: RelayMetrics,
        interval: float = 2.0,
    ) -> None:
        self._plan = plan
        self._api = api
        self._vhost = vhost
        self._hq_url = hq_url
        self._counters = counters
        self._sorter = sorter
        self._metrics = metrics
        self._interval = interval
        self._hq: aio_pika.abc.AbstractConnection | None = None
        self._inbound_since: float | None = None
        self._inbound: tuple[int, float] | None = None
        self._closing: set[asyncio.Future[None]] = set()
        self.latest: LinkStatus | None = None

    async def run(self) -> None:
        """Poll until cancelled."""
        watcher = asyncio.create_task(self._watch_inbound())
        try:
            while True:
                try:
                    self.latest = await self.read()
                    self._metrics.update(self.latest)
                except LiaisonError as exc:
                    log.warning("status reading failed", reason=str(exc))
                await asyncio.sleep(self._interval)
        finally:
            watcher.cancel()
            # Not forever: a call hung on a dead link may ignore the cancellation.
            await asyncio.wait([watcher], timeout=2)
            self._drop_hq()

    async def read(self) -> LinkStatus:
        """One reading of the link."""
        now = time.time()
        vhost = quote(self._vhost, safe="")
        shovels = msgspec.convert(
            await self._api.request("GET", f"/shovels/{vhost}") or [], list[_ShovelInfo]
        )
        states = {s.name: s.state for s in shovels if s.name in self._plan.shovels}
        for name in self._plan.shovels:
            states.setdefault(name, "absent")
        queues = msgspec.convert(
            await self._api.request(
                "GET", f"/queues/{vhost}?columns=name,messages,head_message_timestamp"
            )
            or [],
            list[_QueueInfo],
        )
        outbound = [q for q in queues if q.name in self._plan.outbound_queues]
        heads = [
            q.head_message_timestamp for q in outbound if q.messages and q.head_message_timestamp
        ]
        nodes = msgspec.convert(await self._api.request("GET", "/nodes") or [], list[_NodeInfo])
        inbound = self._inbound_backlog()
        if inbound:
            self._inbound_since = self._inbound_since or now
        elif inbound == 0:
            self._inbound_since = None
        counters = self._counters
        return LinkStatus(
            site=self._plan.site.id,
            connected=all(state == "running" for state in states.values()),
            shovels=states,
            outbound_backlog=sum(q.messages for q in outbound),
            outbound_flash_backlog=sum(q.messages for q in outbound if q.name == FLASH_QUEUE),
            outbound_oldest_seconds=max(0.0, now - min(heads)) if heads else None,
            inbound_backlog=inbound,
            inbound_oldest_seconds=(now - self._inbound_since) if self._inbound_since else None,
            disk_alarm=any(n.disk_free_alarm for n in nodes),
            memory_alarm=any(n.mem_alarm for n in nodes),
            up_plain_bytes=counters.up_plain,
            up_wire_bytes=counters.up_wire,
            down_plain_bytes=counters.down_plain,
            down_wire_bytes=counters.down_wire,
            sorted_flash=self._sorter.sorted_flash,
            sorted_routine=self._sorter.sorted_routine,
            checked_at=now,
        )

    def _inbound_backlog(self) -> int | None:
        # The last count read from headquarters, if recent: a silent link makes it unknown.
        if self._inbound is None:
            return None
        count, read_at = self._inbound
        return count if time.monotonic() - read_at < self._interval * 2 + READ_TIMEOUT else None

    async def _watch_inbound(self) -> None:
        # Apart from the main reading: over a cut link an AMQP call can hang past any timeout
        # (aiormq may swallow the cancellation), and the rest of the status must go on.
        while True:
            try:
                count = await asyncio.wait_for(self._count_inbound(), READ_TIMEOUT)
                self._inbound = (count, time.monotonic())
            except (TimeoutError, OSError, aio_pika.exceptions.AMQPError) as exc:
                log.info("headquarters backlog unknown", reason=str(exc) or type(exc).__name__)
                self._drop_hq()
            await asyncio.sleep(self._interval)

    def _drop_hq(self) -> None:
        if self._hq is not None:
            closing = asyncio.ensure_future(self._hq.close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
            self._hq = None

    async def _count_inbound(self) -> int:
        if self._hq is None or self._hq.is_closed:
            self._hq = await aio_pika.connect(self._hq_url, timeout=READ_TIMEOUT)
        channel = await self._hq.channel()
        try:
            total = 0
            for name in self._plan.inbound_sources:
                queue = await channel.declare_queue(name, passive=True)
                total += queue.declaration_result.message_count or 0
            return total
        finally:
            await channel.close()
