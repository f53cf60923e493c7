"""``liaison demo`` end to end on a throwaway vhost, with its own run-unique accounts."""

import asyncio
import os
import shutil
import signal
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import pytest
import tomli_w

from tests.cli.support import LIAISON
from tests.conftest import admin_client, management
from tests.ledger.conftest import database_url_for, server

pytestmark = [pytest.mark.broker, pytest.mark.postgres]

SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "directory.toml"


@pytest.fixture(scope="module")
async def demo_env(
    run_id: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, str]]:
    """Variables for a demo on its own vhost and accounts; both deleted afterwards."""
    root = tmp_path_factory.mktemp("demo")
    raw = tomllib.loads(SAMPLE.read_text())
    accounts = [f"d-{run_id}-{org['id']}" for org in raw["organisations"]]
    for org, account in zip(raw["organisations"], accounts, strict=True):
        org["account"] = account
    raw["hub_account"] = f"d-{run_id}-hub"
    raw["operator_account"] = f"d-{run_id}-operator"
    raw["ledger_account"] = f"d-{run_id}-ledger"
    accounts += [raw["hub_account"], raw["operator_account"], raw["ledger_account"]]
    (root / "directory.toml").write_text(tomli_w.dumps(raw))
    vhost = f"liaison-demo-{run_id}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    env.update(
        LIAISON_VHOST=vhost,
        LIAISON_AMQP_URL="amqp://127.0.0.1:5672/",
        LIAISON_DIRECTORY=str(root / "directory.toml"),
        LIAISON_CREDENTIALS_DIR=str(root / "credentials"),
        LIAISON_HTTP_PORT="18080",
        # The demo's ledger gets a database of its own, dropped afterwards.
        LIAISON_DATABASE_URL=database_url_for(f"liaison_demo_{run_id}"),
        LIAISON_LEDGER_PORT="18090",
        LIAISON_HUB_SIGNING_KEY=str(root / "hub-signing.key"),
    )
    yield env
    async with admin_client() as api:
        await api.delete_vhost(vhost)
        for account in accounts:
            await api.delete_user(account)
    connection = await server()
    await connection.execute(f'DROP DATABASE IF EXISTS "liaison_demo_{run_id}" WITH (FORCE)')
    await connection.close()


async def test_demo_once_plays_the_scenario(demo_env: dict[str, str]) -> None:
    """--once provisions, routes every step of the story, reports both refusals, and exits 0."""
    process = await asyncio.create_subprocess_exec(
        LIAISON, "demo", "--once", env=demo_env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 90)
    text = out.decode()
    assert process.returncode == 0, err.decode()[-2000:]
    assert "Traceback" not in err.decode()
    assert "provisioned 16 organisations" in text
    assert "mag → hazard.eo_spot_report" in text
    assert "delivered to 6: dpko, minusca, ocha, undp, unicef, unmas" in text
    # Every partner signs (the sample directory requires it) and every recipient verifies.
    assert "signed (mag-demo-2026); signature verified by 6 of 6" in text
    assert "hub signing key liaison-hub-" in text
    assert "FLASH     unmas → hazard.alert" in text
    assert "unmas → access.restriction" in text
    assert "minusca → tasking.order" in text
    assert "delivered to 2: gov-bangladesh, gov-rwanda" in text  # group:minusca-tcc
    assert "gov-bangladesh → resource.response" in text
    assert "mag → ack  accepted minusca/" in text
    assert "minusca → sitrep" in text
    assert "REFUSED 203 type_not_permitted at $.body.type" in text
    assert "(the report is signed by liaison, key liaison-hub-" in text
    assert "REFUSED 301 invalid_body at $.body.quantity" in text
    assert "metrics  http://127.0.0.1:" in text
    assert "ledger console http://127.0.0.1:" in text
    assert text.rstrip().endswith("stopped: hub and clients closed")


async def test_demo_runs_again_after_its_credentials_are_gone(demo_env: dict[str, str]) -> None:
    """A second `make run` after `make clean` (the users exist, their stored passwords do not)
    resets the demo's own accounts and plays the scenario again instead of stopping on
    conflicts."""
    store = Path(demo_env["LIAISON_CREDENTIALS_DIR"])
    for _ in range(2):
        shutil.rmtree(store, ignore_errors=True)
        process = await asyncio.create_subprocess_exec(
            LIAISON, "demo", "--once", env=demo_env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 90)
        assert process.returncode == 0, err.decode()[-2000:]
        assert "conflicts" not in out.decode()
        assert "provisioned 16 organisations" in out.decode()
        assert out.decode().rstrip().endswith("stopped: hub and clients closed")


async def test_demo_stops_cleanly_on_sigint(demo_env: dict[str, str]) -> None:
    """The long-running demo stops on SIGINT with exit 0 and leaves no connection open."""
    process = await asyncio.create_subprocess_exec(
        LIAISON, "demo", env=demo_env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    seen: list[str] = []
    while True:
        line = (await asyncio.wait_for(process.stdout.readline(), 90)).decode()
        assert line, "demo ended before asking for Ctrl-C: " + "".join(seen[-5:])
        seen.append(line)
        if "press Ctrl-C" in line:
            break
    vhost = demo_env["LIAISON_VHOST"]
    process.send_signal(signal.SIGINT)
    rest, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()[-2000:]
    assert "Traceback" not in err.decode()
    assert "stopped: hub and clients closed" in rest.decode()
    for _ in range(50):
        connections = await management("GET", f"/vhosts/{quote(vhost, safe='')}/connections")
        if connections == []:
            break
        await asyncio.sleep(0.2)
    assert connections == [], "the demo left connections open"
