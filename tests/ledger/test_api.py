"""The ledger's HTTP API and CLI against a running ledger, hub, broker and PostgreSQL."""

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import jsonschema
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from liaison.directory.index import DirectoryIndex
from liaison.ledger.app import CONSUMER, create_app
from tests.hub.conftest import RunningHub
from tests.hub.support import Partner, envelope, sample_body
from tests.ledger.conftest import ledger_settings, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.postgres]

TOKEN = "operator-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def api(
    topology: str,
    database_url: str,
    db: asyncpg.Connection,
    directory: DirectoryIndex,
    vhost: str,
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The ledger app (consumer included) behind a test HTTP server, with an operator token."""
    settings = ledger_settings(topology, database_url, token=TOKEN, vhost=vhost)
    app = create_app(settings, directory=directory)
    client = TestClient(TestServer(app))
    await client.start_server()
    consumer = app[CONSUMER]
    for _ in range(200):
        if consumer.connected:
            break
        await asyncio.sleep(0.05)
    yield client
    await client.close()


async def send_recorded(
    partner: Partner, db: asyncpg.Connection, count: int, **fields: object
) -> list[str]:
    """Send ``count`` messages to unmas and wait until the ledger has them all."""
    ids = []
    for _ in range(count):
        doc = envelope(partner.org, ["org:unmas"], **fields)
        await partner.send(doc)
        ids.append(f"{partner.org}/{doc['distribution_id']}")
    await wait_for(
        db, "SELECT count(*) FROM messages WHERE message_id = ANY($1)", ids, expect=count
    )
    return ids


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": TOKEN}],
)
async def test_operator_endpoints_refuse_missing_or_wrong_token(
    api: TestClient[web.Request, web.Application], headers: dict[str, str]
) -> None:
    """Every /api path answers 401 without the right bearer token, even from loopback."""
    for path in ("/api/messages", "/api/partners", "/api/messages/mag/x", "/api/dead-letters"):
        response = await api.get(path, headers=headers)
        assert response.status == 401, path
        assert (await response.json())["status"] == "refused"
    assert (await api.get("/healthz")).status == 200


async def test_search_pages_with_keyset_cursors(
    api: TestClient[web.Request, web.Application],
    hub: RunningHub,
    partners: dict[str, Partner],
    db: asyncpg.Connection,
) -> None:
    """Pages of two walk every match exactly once, newest first; filters narrow the result."""
    ids = await send_recorded(partners["mag"], db, 5, incident_id="INC-PAGE")
    seen: list[str] = []
    params = {"incident": "INC-PAGE", "limit": "2"}
    times: list[str] = []
    while True:
        response = await api.get("/api/messages", params=params, headers=AUTH)
        assert response.status == 200
        page = await response.json()
        seen += [item["message_id"] for item in page["items"]]
        times += [item["decided_at"] for item in page["items"]]
        if page["next"] is None:
            break
        params["after"] = page["next"]
    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(set(seen))
    assert times == sorted(times, reverse=True)
    narrowed = await api.get(
        "/api/messages",
        params={
            "incident": "INC-PAGE",
            "recipient": "unmas",
            "sender": "mag",
            "status": "delivered",
        },
        headers=AUTH,
    )
    assert len((await narrowed.json())["items"]) == 5
    other = await api.get(
        "/api/messages", params={"incident": "INC-PAGE", "recipient": "undp"}, headers=AUTH
    )
    assert (await other.json())["items"] == []


async def test_text_search_and_csv_export(
    api: TestClient[web.Request, web.Application],
    hub: RunningHub,
    partners: dict[str, Partner],
    db: asyncpg.Connection,
) -> None:
    """Words of the body's text find the message, the envelope's do not; its page shows the
    whole message; the CSV holds every match and defuses formulas."""
    body = sample_body("hazard.alert")
    body["headline"] = "=cmd zebracrossing collapsed"
    doc = envelope(
        "dpko", ["org:unmas"], body=body, incident_id="INC-CSV", distribution_id="okapi-7"
    )
    await partners["dpko"].send(doc)
    message_id = f"dpko/{doc['distribution_id']}"
    await wait_for(db, "SELECT count(*) FROM messages WHERE message_id = $1", message_id, expect=1)
    found = await api.get("/api/messages", params={"text": "zebracrossing"}, headers=AUTH)
    assert [i["message_id"] for i in (await found.json())["items"]] == [message_id]
    envelope_word = await api.get("/api/messages", params={"text": "okapi"}, headers=AUTH)
    assert (await envelope_word.json())["items"] == []
    detail = await (await api.get(f"/api/messages/{message_id}", headers=AUTH)).json()
    shown = json.loads(detail["body"])
    assert (shown["distribution_id"], shown["body"]["headline"]) == ("okapi-7", body["headline"])
    exported = await api.get("/api/messages.csv", params={"incident": "INC-CSV"}, headers=AUTH)
    assert exported.status == 200
    lines = (await exported.text()).strip().splitlines()
    assert lines[0].startswith("record_id,decided_at,outcome,message_id")
    assert len(lines) == 2
    assert message_id in lines[1]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "100000"},
        {"since": "yesterday"},
        {"after": "not-a-cursor"},
        {"after": "MjAyNi0xMS0yM3x4"},  # decodes, but to a naive time
        {"sender": "MAG'; DROP TABLE messages;--"},
        {"status": "lost"},
        {"nonsense": "1"},
        {"text": "x" * 500},
    ],
)
async def test_bad_filters_are_400_naming_the_problem(
    api: TestClient[web.Request, web.Application], params: dict[str, str]
) -> None:
    """Malformed, oversized or forged filters get a 400, never a database error."""
    response = await api.get("/api/messages", params=params, headers=AUTH)
    assert response.status == 400
    assert (await response.json())["error"]


async def test_timeline_and_partner_view(
    api: TestClient[web.Request, web.Application],
    hub: RunningHub,
    partners: dict[str, Partner],
    db: asyncpg.Connection,
) -> None:
    """A message's detail names each recipient's state; the partner view counts the inbox."""
    (message_id,) = await send_recorded(partners["mag"], db, 1)
    sender, distribution_id = message_id.split("/")
    response = await api.get(f"/api/messages/{sender}/{distribution_id}", headers=AUTH)
    assert response.status == 200
    detail = await response.json()
    assert [(r["org"], r["state"], r["via"]) for r in detail["recipients"]] == [
        ("unmas", "in_inbox", ["org:unmas"])
    ]
    assert [e["kind"] for e in detail["timeline"]] == ["in_inbox"]
    missing = await api.get("/api/messages/mag/no-such-message", headers=AUTH)
    assert missing.status == 404
    for _ in range(50):  # the management API's counts lag by a statistics interval
        partners_view = await (await api.get("/api/partners", headers=AUTH)).json()
        unmas = next(p for p in partners_view if p["org"] == "unmas")
        if unmas["backlog"]:
            break
        await asyncio.sleep(0.2)
    assert unmas["backlog"] >= 1
    assert unmas["oldest_unread_age_seconds"] is not None
    assert unmas["last_received"] is not None
    mag = next(p for p in partners_view if p["org"] == "mag")
    assert mag["last_sent"] is not None


async def test_openapi_document_describes_the_api(
    api: TestClient[web.Request, web.Application],
) -> None:
    """/openapi.json is OpenAPI 3.1 whose schemas validate what the API answers."""
    doc = await (await api.get("/openapi.json")).json()
    assert doc["openapi"] == "3.1.0"
    assert {"/api/messages", "/api/messages/{sender}/{distribution_id}", "/api/partners"} <= set(
        doc["paths"]
    )
    page = await (await api.get("/api/messages", headers=AUTH)).json()
    schema = {"$ref": "#/components/schemas/SearchPage", "components": doc["components"]}
    jsonschema.validate(page, schema)
    params = {p["name"] for p in doc["paths"]["/api/messages"]["get"]["parameters"]}
    assert {"sender", "recipient", "type", "incident", "precedence", "status", "text"} <= params


async def test_cli_track_and_audit_search(
    api: TestClient[web.Request, web.Application],
    hub: RunningHub,
    partners: dict[str, Partner],
    db: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    """``liaison track`` prints recipients and timeline; ``audit search`` a table, JSON, CSV."""
    (message_id,) = await send_recorded(partners["mag"], db, 1, incident_id="INC-CLI")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    env.update(LIAISON_LEDGER_URL=str(api.make_url("/")), LIAISON_LEDGER_TOKEN=TOKEN)

    def liaison(*args: str, token: bool = True) -> subprocess.CompletedProcess[str]:
        run_env = env if token else {k: v for k, v in env.items() if k != "LIAISON_LEDGER_TOKEN"}
        return subprocess.run(
            [sys.executable, "-m", "liaison.cli", *args],
            env=run_env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    tracked = await asyncio.to_thread(liaison, "track", message_id)
    assert tracked.returncode == 0, tracked.stderr
    assert "unmas" in tracked.stdout
    assert "in_inbox" in tracked.stdout
    table = await asyncio.to_thread(liaison, "audit", "search", "--incident", "INC-CLI")
    assert message_id in table.stdout
    as_csv = await asyncio.to_thread(liaison, "audit", "search", "--incident", "INC-CLI", "--csv")
    assert len(as_csv.stdout.strip().splitlines()) == 2
    refused = await asyncio.to_thread(liaison, "track", message_id, token=False)
    assert refused.returncode == 1
    assert "401" in refused.stderr
    malformed = await asyncio.to_thread(liaison, "track", "no-slash")
    assert malformed.returncode == 1


async def test_readiness_health_and_lag_metric(
    api: TestClient[web.Request, web.Application],
    hub: RunningHub,
    partners: dict[str, Partner],
    db: asyncpg.Connection,
) -> None:
    """/readyz is ready once a batch committed; /metrics has the lag; /api/health says so."""
    await send_recorded(partners["mag"], db, 1)
    for _ in range(50):
        ready = await api.get("/readyz")
        if ready.status == 200:
            break
        await asyncio.sleep(0.1)
    assert ready.status == 200
    assert (await ready.json())["checks"] == {"broker_connected": True, "database": True}
    metrics = await (await api.get("/metrics")).text()
    assert "liaison_ledger_lag_seconds" in metrics
    assert "liaison_ledger_records_total" in metrics
    health = await (await api.get("/api/health", headers=AUTH)).json()
    assert health["ledger_ready"] is True
    assert health["lag_seconds"] >= 0


async def test_replay_endpoint_refuses_bad_requests_and_rolls_back(
    api: TestClient[web.Request, web.Application],
    hub: RunningHub,
    partners: dict[str, Partner],
    db: asyncpg.Connection,
) -> None:
    """Replay needs the token, a known id, and an account that may impersonate; a refused
    publish leaves the dead letter unreplayed."""
    refused = envelope("mag", ["org:not-registered"])
    await partners["mag"].send(refused)
    message_id = f"mag/{refused['distribution_id']}"
    await wait_for(
        db, "SELECT count(*) FROM dead_letters WHERE message_id = $1", message_id, expect=1
    )
    letter = await db.fetchval(
        "SELECT dead_letter_id FROM dead_letters WHERE message_id = $1", message_id
    )
    path = f"/api/dead-letters/{letter}/replay"
    assert (await api.post(path)).status == 401
    assert (await api.post("/api/dead-letters/nope/replay", headers=AUTH)).status == 404
    assert (await api.post(f"/api/dead-letters/{'x' * 100}/replay", headers=AUTH)).status == 400
    # The test ledger runs as the broker admin, who lacks the impersonator tag.
    response = await api.post(path, headers=AUTH)
    assert response.status == 503
    assert "impersonator" in (await response.json())["error"]
    assert (
        await db.fetchval("SELECT replayed_at FROM dead_letters WHERE dead_letter_id = $1", letter)
        is None
    )
