"""docs/operations.md, "Field sites", tried as a new user would: the same commands and settings.

``liaison relay hq`` and ``liaison relay site`` run as processes (with an emulated link between
them, cut for a while); the site gets the directory and a copy of the site's credentials as the
section says; a site partner's question reaches a headquarters partner and the answer comes
back; ``liaison relay status`` shows the link down with the message waiting, then up and empty.
"""

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from liaison.nodes.node import BrokerNode
from liaison.relay.faults import LinkEmulator
from liaison.schemas.messages.coordination import InformationRequest, InformationResponse
from liaison.sdk import Client
from tests.hub.support import demo_signing
from tests.hub_process import free_port
from tests.relay.conftest import (
    VHOST,
    Headquarters,
    needs_root,
    purge_inboxes,
    remove_shovel_parameters,
)

pytestmark = [pytest.mark.slow, needs_root]

LIAISON = str(Path(sys.executable).parent / "liaison")


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``liaison …`` with only ``env`` as its LIAISON_* settings."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    full.update(env)
    with log.open("ab") as out:
        return subprocess.Popen([LIAISON, *args], env=full, stdout=out, stderr=subprocess.STDOUT)


async def status(env: dict[str, str]) -> tuple[int, str]:
    """``liaison relay status``: exit code and output."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    full.update(env)
    process = await asyncio.create_subprocess_exec(
        LIAISON,
        "relay",
        "status",
        env=full,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


async def status_until(env: dict[str, str], *wanted: str, code: int, timeout: float = 60) -> str:
    """Run ``liaison relay status`` until it exits ``code`` with every ``wanted`` text in it."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        got, last = await status(env)
        if got == code and all(w in last for w in wanted):
            return last
        await asyncio.sleep(1)
    raise AssertionError(f"status never showed {wanted} (exit {code}):\n{last}")


@pytest.fixture
async def link(
    tmp_path: Path, hq: Headquarters, site_node: BrokerNode
) -> AsyncIterator[tuple[LinkEmulator, dict[str, str]]]:
    """Both ends running as the section says; yields the link and the site end's settings."""
    await purge_inboxes(hq.node, site_node)
    hq_env = {
        "LIAISON_RELAY_LINK": f"127.0.0.1:{free_port()}",
        "LIAISON_RELAY_BROKER": f"127.0.0.1:{hq.node.ports.amqp}",
        "LIAISON_RELAY_HTTP_PORT": str(free_port()),
    }
    hq_end = spawn(["relay", "hq"], hq_env, tmp_path / "relay-hq.log")
    host, port = hq_env["LIAISON_RELAY_LINK"].split(":")
    emulated = LinkEmulator(target=(host, int(port)))
    await emulated.start()
    # The site's copy: the directory and the site's credentials, nothing else.
    site_dir = tmp_path / "site"
    credentials = site_dir / "credentials"
    credentials.mkdir(parents=True, mode=0o700)
    shutil.copy(hq.directory, site_dir / "directory.toml")
    for account in ("site-bria", "mag-bria", "unmas-bria"):
        shutil.copy(hq.credentials / f"{account}.password", credentials)
    site_env = {
        "LIAISON_SITE": "bria",
        "LIAISON_DIRECTORY": str(site_dir / "directory.toml"),
        "LIAISON_CREDENTIALS_DIR": str(credentials),
        "LIAISON_SITE_MANAGEMENT_URL": site_node.management_url,
        "LIAISON_SITE_AMQP_URL": site_node.amqp_url(vhost=VHOST),
        "LIAISON_RELAY_LINK": f"127.0.0.1:{emulated.port}",
        "LIAISON_RELAY_LISTEN": f"127.0.0.1:{free_port()}",
        "LIAISON_RELAY_HTTP_PORT": str(free_port()),
        "LIAISON_RELAY_HEARTBEAT_SECONDS": "5",
    }
    site_end = spawn(["relay", "site"], site_env, tmp_path / "relay-site.log")
    try:
        yield emulated, site_env
    finally:
        for process in (site_end, hq_end):
            process.send_signal(signal.SIGTERM)
        for process in (site_end, hq_end):
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        await emulated.close()
        await remove_shovel_parameters(site_node)


async def test_round_trip_survives_a_cut_link(
    hq: Headquarters, site_node: BrokerNode, link: tuple[LinkEmulator, dict[str, str]]
) -> None:
    """Sent at the site while the link is down, the message waits, then crosses; the answer too."""
    emulated, env = link
    await status_until(env, "link        connected", code=0, timeout=90)
    emulated.cut()
    cut_at = time.monotonic()
    await status_until(env, "link        DOWN", code=1)
    site_url = f"amqp://127.0.0.1:{site_node.ports.amqp}/{VHOST}"
    hq_url = f"amqp://127.0.0.1:{hq.node.ports.amqp}/{VHOST}"
    async with (
        Client.connect(
            "mag-bria", site_url, account="mag-bria", password=hq.password("mag-bria"), sign=False
        ) as field,
        Client.connect(
            "unmas", hq_url, account="unmas", password=hq.password("unmas"), **demo_signing("unmas")
        ) as office,
    ):
        asked = await field.send(
            InformationRequest(question="Is the Bria-Ippy road cleared past km 40?"),
            recipients=["org:unmas"],
        )
        shown = await status_until(env, "link        DOWN", "1 (0 flash)", code=1)
        print(f"\nwhile the link is down:\n{shown}")
        emulated.restore()
        print(f"link down {time.monotonic() - cut_at:.1f}s")

        async with office.inbox() as inbox:
            question = await asyncio.wait_for(anext(aiter(inbox)), 60)
            assert question.sender == "mag-bria"
            assert question.envelope.distribution_id == asked
            await question.ack()
            answered = await office.send(
                InformationResponse(request_ref=asked, answer="Cleared to km 52 on 23 Nov."),
                recipients=["org:mag-bria"],
                in_reply_to=asked,
            )
        async with field.inbox() as inbox:
            answer = await asyncio.wait_for(anext(aiter(inbox)), 60)
            assert answer.sender == "unmas"
            assert answer.envelope.distribution_id == answered
            await answer.ack()
    shown = await status_until(env, "link        connected", "0 (0 flash)", code=0)
    print(f"after the round trip:\n{shown}")
    metrics_url = f"http://127.0.0.1:{env['LIAISON_RELAY_HTTP_PORT']}/metrics"
    async with aiohttp.ClientSession() as session, session.get(metrics_url) as response:
        metrics = await response.text()
    assert "liaison_relay_connected 1.0" in metrics
    assert 'liaison_relay_backlog_messages{direction="up"} 0.0' in metrics
    wire = re.search(r'liaison_relay_link_bytes\{direction="up",kind="wire"\} ([0-9.e+]+)', metrics)
    assert wire is not None
    assert float(wire.group(1)) > 0
