"""The two ends of ``liaison relay`` as objects to start and stop (the CLI and the tests).

:class:`SiteRelay` (on the site machine): sets up the site broker and its shovels, runs the
tunnel's site end, the sorter and the status poller, and serves ``/status`` and ``/metrics``.
:class:`HqRelay` (at headquarters): the tunnel's headquarters end, with ``/metrics``.
"""

import asyncio
import contextlib
from dataclasses import dataclass, field

import msgspec
from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge

from liaison.common.errors import ConfigError
from liaison.common.health import add_health_routes
from liaison.directory.credentials import CredentialStore, environment_variable
from liaison.directory.index import DirectoryIndex, load_directory
from liaison.directory.management import ManagementClient
from liaison.relay.settings import RelaySettings, split_address
from liaison.relay.site import Link, SitePlan, apply_site, plan_site, site_orgs
from liaison.relay.sorter import Sorter
from liaison.relay.status import RelayMetrics, StatusPoller
from liaison.relay.tunnel import End, Tunnel


def site_link(settings: RelaySettings, index: DirectoryIndex, port: int) -> Link:
    """How the site broker's shovels log in to headquarters through the tunnel on ``port``."""
    if settings.site is None:
        raise ConfigError("LIAISON_SITE must name the site ([[sites]] id) this relay serves")
    site, _ = site_orgs(index, settings.site)
    account = site.broker_account
    password = CredentialStore(settings.credentials_dir).get(account)
    if password is None:
        raise ConfigError(
            f"no credential for site account {account!r}: copy {account}.password from "
            f"headquarters' credentials into {settings.credentials_dir} "
            f"or set {environment_variable(account)}"
        )
    host, _ = split_address(settings.relay_listen)
    return Link(
        host=host,
        port=port,
        account=account,
        password=password,
        vhost=settings.vhost,
        heartbeat=settings.relay_heartbeat_seconds,
    )


def site_plan(settings: RelaySettings, index: DirectoryIndex, link: Link) -> SitePlan:
    """The site broker's objects and shovels under ``settings``."""
    assert settings.site is not None
    return plan_site(
        index,
        settings.site,
        link,
        max_length=settings.relay_queue_max_length,
        flash_prefetch=settings.relay_flash_prefetch,
        routine_prefetch=settings.relay_routine_prefetch,
    )


def management(settings: RelaySettings) -> ManagementClient:
    """A client of the site broker's management API."""
    return ManagementClient(
        settings.site_management_url,
        settings.site_admin_user,
        settings.site_admin_password,
        settings=("LIAISON_SITE_MANAGEMENT_URL", "LIAISON_SITE_ADMIN_USER"),
    )


async def setup_site(settings: RelaySettings, link_port: int | None = None) -> list[str]:
    """Declare the site broker's objects and shovels once (``liaison relay setup``)."""
    index = load_directory(settings.directory)
    link = site_link(settings, index, link_port or split_address(settings.relay_listen)[1])
    plan = site_plan(settings, index, link)
    async with management(settings) as api:
        return await apply_site(
            api,
            index,
            plan,
            vhost=settings.vhost,
            store=CredentialStore(settings.credentials_dir),
            admin_user=settings.site_admin_user,
        )


@dataclass
class SiteRelay:
    """The site end: setup, tunnel, sorter, status; ``start`` then ``stop``."""

    settings: RelaySettings
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    tunnel: Tunnel | None = None
    sorter: Sorter | None = None
    poller: StatusPoller | None = None
    setup_lines: list[str] = field(default_factory=list)
    _api: ManagementClient | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    http_port: int = 0

    async def start(self) -> None:
        """Start the tunnel, set the site broker up, then sort and poll."""
        settings = self.settings
        index = load_directory(settings.directory)
        self.tunnel = Tunnel(
            End.SITE,
            split_address(settings.relay_listen),
            split_address(settings.relay_link),
            level=settings.relay_zstd_level,
        )
        await self.tunnel.start()
        link = site_link(settings, index, self.tunnel.port)
        plan = site_plan(settings, index, link)
        self._api = await management(settings).open()
        self.setup_lines = await apply_site(
            self._api,
            index,
            plan,
            vhost=settings.vhost,
            store=CredentialStore(settings.credentials_dir),
            admin_user=settings.site_admin_user,
        )
        self.sorter = Sorter(settings.site_amqp_url)
        self.poller = StatusPoller(
            plan=plan,
            api=self._api,
            vhost=settings.vhost,
            hq_url=link.uri(),
            counters=self.tunnel.counters,
            sorter=self.sorter,
            metrics=RelayMetrics(self.registry),
        )
        self._tasks = [
            asyncio.create_task(self.sorter.run()),
            asyncio.create_task(self.poller.run()),
        ]
        app = web.Application()
        add_health_routes(app, ready=self._ready, registry=self.registry)
        app.router.add_get("/status", self._status)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        http = web.TCPSite(self._runner, settings.relay_http_host, settings.relay_http_port)
        await http.start()
        self.http_port = _bound_port(self._runner)

    def _ready(self) -> dict[str, bool]:
        return {"sorter": bool(self.sorter and self.sorter.connected)}

    async def _status(self, _: web.Request) -> web.Response:
        latest = self.poller.latest if self.poller else None
        if latest is None:
            return web.json_response({"status": "no reading yet"}, status=503)
        return web.Response(body=msgspec.json.encode(latest), content_type="application/json")

    async def stop(self) -> None:
        """Stop everything this end started (the shovels stay defined on the site broker)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        if self.tunnel is not None:
            await self.tunnel.close()
        if self._api is not None:
            await self._api.close()


@dataclass
class HqRelay:
    """The headquarters end: the tunnel from the link to the broker, and its byte counts."""

    settings: RelaySettings
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    tunnel: Tunnel | None = None
    _runner: web.AppRunner | None = None
    http_port: int = 0

    async def start(self) -> None:
        """Listen on the link address and serve ``/metrics``."""
        settings = self.settings
        self.tunnel = Tunnel(
            End.HQ,
            split_address(settings.relay_link),
            split_address(settings.relay_broker),
            level=settings.relay_zstd_level,
        )
        await self.tunnel.start()
        counters = self.tunnel.counters
        link_bytes = Gauge(
            "liaison_relay_link_bytes",
            "bytes through the tunnel since start: plain AMQP and compressed on the wire",
            ["direction", "kind"],
            registry=self.registry,
        )
        link_bytes.labels("up", "plain").set_function(lambda: counters.up_plain)
        link_bytes.labels("up", "wire").set_function(lambda: counters.up_wire)
        link_bytes.labels("down", "plain").set_function(lambda: counters.down_plain)
        link_bytes.labels("down", "wire").set_function(lambda: counters.down_wire)
        Gauge(
            "liaison_relay_tunnel_connections",
            "open connections through the tunnel",
            registry=self.registry,
        ).set_function(lambda: counters.connections)
        app = web.Application()
        add_health_routes(app, ready=lambda: {"listening": True}, registry=self.registry)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        http = web.TCPSite(self._runner, settings.relay_http_host, settings.relay_http_port)
        await http.start()
        self.http_port = _bound_port(self._runner)

    async def stop(self) -> None:
        """Stop listening and close the tunnel's connections."""
        if self._runner is not None:
            await self._runner.cleanup()
        if self.tunnel is not None:
            await self.tunnel.close()


def _bound_port(runner: web.AppRunner) -> int:
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            port: int = server.sockets[0].getsockname()[1]
            return port
    return 0


async def run_until_stopped(relay: SiteRelay | HqRelay) -> None:
    """Start ``relay`` and run until SIGINT or SIGTERM."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await relay.start()
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await relay.stop()
