"""SIGHUP on a real hub process: a new directory file applies, a broken one is refused."""

import asyncio
import shutil
import signal
import time
from pathlib import Path

import aio_pika
import aiohttp
import pytest

from liaison.directory.index import DirectoryIndex
from liaison.schemas.wire import inbox_queue
from tests.hub.conftest import purge_all
from tests.hub.support import Partner, decode, drain, envelope, sample_body
from tests.hub_process import HubProcess

pytestmark = [pytest.mark.broker, pytest.mark.slow]

NEW_RULE = """
[[rules]]
description = "From today MAG may also circulate mandate updates"
types = ["mandate.update"]
senders = { organisations = ["mag"] }
recipients = { any = true }
"""


async def reloads(hub: HubProcess, result: str) -> float:
    """``liaison_hub_directory_reloads_total{result=...}`` from the hub's /metrics."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{hub.base_url}/metrics") as response,
    ):
        text = await response.text()
    prefix = f'liaison_hub_directory_reloads_total{{result="{result}"}} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


async def sighup_and_wait(hub: HubProcess, result: str) -> None:
    """Send SIGHUP and wait until the hub counted one more reload with ``result``."""
    before = await reloads(hub, result)
    hub.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while await reloads(hub, result) == before:
        assert time.monotonic() < deadline, f"no {result} reload after SIGHUP"
        await asyncio.sleep(0.05)


async def mandate_update_reaches_minusca(
    partners: dict[str, Partner], admin: aio_pika.abc.AbstractConnection
) -> bool:
    """MAG sends minusca a mandate update: True if delivered, False if refused with 203."""
    await partners["mag"].send(envelope("mag", ["org:minusca"], body=sample_body("mandate.update")))
    delivered = await drain(admin, inbox_queue("minusca"), expect=1, timeout=5, settle=0.0)
    if delivered:
        return True
    (report,) = [decode(m) for m in await drain(admin, inbox_queue("mag"), expect=1)]
    assert report["body"]["code"] == 203, report
    return False


async def test_sighup_applies_a_new_directory_and_refuses_a_broken_one(
    topology: str,
    admin: aio_pika.abc.AbstractConnection,
    partners: dict[str, Partner],
    directory: DirectoryIndex,
    directory_file: Path,
    tmp_path: Path,
) -> None:
    """After SIGHUP a rule added to the file applies; after a SIGHUP with a broken file the
    hub keeps running on the directory it had, and says so in a log line."""
    await purge_all(admin, directory)
    path = tmp_path / "directory.toml"
    shutil.copy(directory_file, path)
    hub = HubProcess(
        {"LIAISON_AMQP_URL": topology, "LIAISON_DIRECTORY": str(path)}, tmp_path / "hub.log"
    )
    try:
        await hub.wait_ready()
        assert not await mandate_update_reaches_minusca(partners, admin)

        path.write_text(path.read_text() + NEW_RULE)
        await sighup_and_wait(hub, "loaded")
        assert await mandate_update_reaches_minusca(partners, admin)

        path.write_text(path.read_text() + "\n[[organisations]\nid = \n")
        await sighup_and_wait(hub, "refused")
        assert hub.process.poll() is None
        assert await mandate_update_reaches_minusca(partners, admin)
    finally:
        code = hub.stop()
    assert code == 0
    assert '"event":"directory_refused"' in hub.output()
