"""What operators use: health, readiness, metrics, and directory reload without a restart."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from liaison.hub.app import ROUTER, create_app
from liaison.hub.settings import HubSettings
from liaison.schemas.wire import inbox_queue
from tests.hub.conftest import hub_settings, purge_all
from tests.hub.support import Partner, drain, envelope

pytestmark = pytest.mark.broker


@pytest.fixture
async def hub_app(
    admin: aio_pika.abc.AbstractConnection,
    partners: dict[str, Partner],
    directory_file: Path,
    tmp_path: Path,
    topology: str,
) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], Path]]:
    """The hub's aiohttp app, served on a random port, with a directory file it may reload."""
    live = tmp_path / "directory.toml"
    live.write_text(directory_file.read_text())
    async with _serve(admin, hub_settings(topology, live)) as client:
        yield client, live


@contextlib.asynccontextmanager
async def _serve(
    admin: aio_pika.abc.AbstractConnection, settings: HubSettings
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = create_app(settings)
    await purge_all(admin, app[ROUTER].directory)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        for _ in range(100):
            response = await client.get("/readyz")
            if response.status == 200:
                break
            await asyncio.sleep(0.05)
        yield client
    finally:
        await client.close()


async def test_health_ready_and_metrics(
    hub_app: tuple[TestClient[web.Request, web.Application], Path],
    partners: dict[str, Partner],
    admin: aio_pika.abc.AbstractConnection,
) -> None:
    """/healthz lives, /readyz reports consuming, /metrics counts decisions by type and outcome
    and shows the delivery mode in force."""
    client, _ = hub_app
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["checks"] == {"broker_connected": True, "consuming": True}
    await partners["mag"].send(envelope("mag", ["org:unmas"]))
    await partners["mag"].send(b"junk")
    await drain(admin, inbox_queue("unmas"), expect=1)
    await drain(admin, inbox_queue("mag"), expect=1)
    text = await (await client.get("/metrics")).text()
    assert (
        'liaison_hub_messages_total{outcome="delivered",type="hazard.eo_spot_report"} 1.0' in text
    )
    assert 'liaison_hub_messages_total{outcome="refused",type="unknown"} 1.0' in text
    assert "liaison_hub_decision_seconds_bucket" in text
    assert "liaison_hub_in_flight 0.0" in text
    # The default delivery is confirm (transaction mode can lose copies on a kill).
    assert 'liaison_hub_delivery_mode{mode="confirm"} 1.0' in text
    # The memory holds the delivery and, since a redelivered refusal must not be answered
    # twice, the refusal too.
    assert "liaison_hub_dedupe_window_entries 2.0" in text


async def test_bad_directory_is_refused_and_the_old_one_stays(
    hub_app: tuple[TestClient[web.Request, web.Application], Path],
) -> None:
    """Reloading a broken directory file answers 422 naming the problem; routing is unchanged."""
    client, live = hub_app
    before = client.app[ROUTER].directory  # type: ignore[index]
    good = live.read_text()
    live.write_text(good + "\n[[organisations]]\nid = 'mag'\n")
    response = await client.post("/admin/reload")
    assert response.status == 422
    assert "organisations" in (await response.json())["error"]
    assert client.app[ROUTER].directory is before  # type: ignore[index]
    live.write_text(good.replace('name = "Norwegian Refugee Council"', 'name = "NRC"'))
    response = await client.post("/admin/reload")
    assert response.status == 200
    after = client.app[ROUTER].directory  # type: ignore[index]
    assert after is not before
    assert after.organisations["nrc"].name == "NRC"


async def test_reload_with_an_admin_token_needs_it(
    admin: aio_pika.abc.AbstractConnection,
    partners: dict[str, Partner],
    directory_file: Path,
    topology: str,
) -> None:
    """With LIAISON_ADMIN_TOKEN set, reload answers 401 without the bearer token or with a wrong
    one (the directory untouched), and reloads with it; health and metrics stay open."""
    token = "correct-horse-battery-staple"
    settings = msgspec.structs.replace(hub_settings(topology, directory_file), admin_token=token)
    async with _serve(admin, settings) as client:
        before = client.app[ROUTER].directory  # type: ignore[index]
        for headers in ({}, {"Authorization": "Bearer wrong-token-of-some-length"}):
            response = await client.post("/admin/reload", headers=headers)
            assert response.status == 401
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert "Authorization: Bearer" in (await response.json())["error"]
        assert client.app[ROUTER].directory is before  # type: ignore[index]
        response = await client.post("/admin/reload", headers={"Authorization": f"Bearer {token}"})
        assert response.status == 200
        assert client.app[ROUTER].directory is not before  # type: ignore[index]
        assert (await client.get("/metrics")).status == 200
