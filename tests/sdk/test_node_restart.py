"""docs/examples/python/partner.py through a broker-node restart with a backlog in its inbox.

The node is an extra one of this run's own (liaison.nodes), provisioned like production with the
sample directory; the hub runs in-process against it and the example as a partner runs it.
"""

import asyncio
import collections
import re
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import aio_pika
import aiohttp
import pytest

from liaison.common.urls import amqp_url_for
from liaison.directory.credentials import CredentialStore
from liaison.directory.index import DirectoryIndex, load_directory
from liaison.hub.consumer import HubConsumer
from liaison.hub.memory import LocalMemory
from liaison.hub.metrics import HubMetrics
from liaison.hub.router import Router
from liaison.nodes.node import LIAISON_PLUGINS, BrokerNode
from liaison.schemas.wire import inbox_queue
from liaison.sdk import Client
from tests.cluster.conftest import needs_root
from tests.hub.conftest import hub_settings
from tests.hub.support import DEMO_KEYS, demo_kid, demo_signing
from tests.node_provisioning import SAMPLE, VHOST, provision_node, provisioning_env
from tests.sdk.support import queue_depth, spot_report, wait_for_depth
from tests.sdk.test_python_example import EXAMPLE, without_credentials

pytestmark = [pytest.mark.broker, pytest.mark.slow, needs_root]

BACKLOG = 300
#: "handled" count at which the node is killed: mid-backlog, the example's buffer full.
RESTART_AT = 100
#: Seconds the node stays down before its restart: past the example's confirm timeout (the
#: SDK's default 15 s), so a receipt in flight must wait out the whole outage.
DOWN_FOR = 20.0


def password(store: CredentialStore, account: str) -> str:
    """``account``'s password as provisioning wrote it."""
    secret = store.get(account)
    assert secret is not None, f"no password stored for {account}"
    return secret


@pytest.fixture
def node() -> Iterator[BrokerNode]:
    """An extra node with Liaison's plugins, stopped and removed afterwards."""
    with BrokerNode.start(prefix="liaison-test-sdk", plugins=LIAISON_PLUGINS) as started:
        yield started


@pytest.fixture
async def provisioned(node: BrokerNode, tmp_path: Path) -> tuple[DirectoryIndex, CredentialStore]:
    """The sample directory provisioned onto the node; guest reads its queues' depths."""
    credentials = tmp_path / "credentials"
    await provision_node(provisioning_env(node, credentials))
    index = load_directory(SAMPLE)
    auth = {"Authorization": aiohttp.encode_basic_auth("guest", "guest")}
    url = f"{node.management_url}/api/permissions/{quote(VHOST, safe='')}/guest"
    rights = {"configure": ".*", "write": ".*", "read": ".*"}
    async with aiohttp.ClientSession(headers=auth) as session, session.put(url, json=rights) as r:
        r.raise_for_status()
    return index, CredentialStore(credentials)


@pytest.fixture
async def hub(
    node: BrokerNode, provisioned: tuple[DirectoryIndex, CredentialStore]
) -> AsyncIterator[HubConsumer]:
    """An in-process hub on the node as its provisioned account."""
    index, store = provisioned
    account = index.directory.hub_account
    url = amqp_url_for(node.amqp_url(), VHOST, account, password(store, account))
    # The node's own management API: the hub reads its inboxes' length limits there.
    settings = hub_settings(url, SAMPLE, management_url=node.management_url)
    router = Router(index, max_message_bytes=settings.max_message_bytes)
    consumer = HubConsumer(
        settings, router, LocalMemory(seconds=600, max_entries=10_000), HubMetrics()
    )
    task = asyncio.create_task(consumer.run())
    for _ in range(400):
        if consumer.ready:
            break
        await asyncio.sleep(0.05)
    assert consumer.ready, "hub did not start consuming"
    yield consumer
    await consumer.stop()
    await asyncio.wait_for(task, 10)


async def test_example_survives_a_node_restart_with_a_backlog(
    node: BrokerNode,
    provisioned: tuple[DirectoryIndex, CredentialStore],
    hub: HubConsumer,
    tmp_path: Path,
) -> None:
    """The example handles and answers each of 300 messages once through a 20 s node outage."""
    index, store = provisioned
    org = index.organisations
    account = {o: org[o].broker_account for o in ("mag", "unmas")}
    admin = await aio_pika.connect(node.amqp_url(vhost=VHOST))
    try:
        async with Client.connect(
            "mag",
            node.amqp_url(vhost=VHOST),
            account=account["mag"],
            password=password(store, account["mag"]),
            **demo_signing("mag"),
        ) as mag:
            sent = {await mag.send(spot_report(), recipients=["org:unmas"]) for _ in range(BACKLOG)}
        await wait_for_depth(admin, inbox_queue("unmas"), BACKLOG)
        await admin.close()  # the node goes away under it; a fresh one reads the result
        script = tmp_path / "partner.py"  # as a partner has it: the file alone
        shutil.copy(EXAMPLE, script)
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(script), cwd=tmp_path,
            env={
                "LIAISON_AMQP_URL": without_credentials(node.amqp_url(vhost=VHOST)),
                "LIAISON_ORG": "unmas",
                "LIAISON_ACCOUNT": account["unmas"],
                "LIAISON_PASSWORD": password(store, account["unmas"]),
                "LIAISON_PREFETCH": "100",
                "LIAISON_SIGNING_KEY": str(DEMO_KEYS / "unmas.key"),
                "LIAISON_SIGNING_KID": demo_kid("unmas"),
                "PATH": "/usr/bin:/bin",
            },
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert process.stdout is not None
        handled: collections.Counter[str] = collections.Counter()
        lines = []
        down_for = 0.0
        try:
            async with asyncio.timeout(300):
                while len(handled) < BACKLOG:
                    line = (await process.stdout.readline()).decode()
                    if not line:
                        _, err = await process.communicate()
                        raise AssertionError(f"the example ended early: {err.decode()[-2000:]}")
                    lines.append(line)
                    if found := re.match(r"handled (\S+) hazard\.eo_spot_report from mag, ", line):
                        handled[found.group(1)] += 1
                        if sum(handled.values()) == RESTART_AT:
                            # Paused, so the kill finds it mid-backlog however fast it runs;
                            # it resumes against a dead node and must wait out the restart.
                            process.send_signal(signal.SIGSTOP)
                            try:
                                began = time.monotonic()
                                await asyncio.to_thread(node.kill)
                            finally:
                                process.send_signal(signal.SIGCONT)
                            await asyncio.sleep(DOWN_FOR)
                            await asyncio.to_thread(node.restart)
                            down_for = time.monotonic() - began
                process.send_signal(signal.SIGTERM)
                rest, err = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        lines += rest.decode().splitlines(keepends=True)
        print(f"\nnode down for {down_for:.1f}s; {lines[-1].strip()}")
        assert down_for > 0, "the node was not restarted"
        assert process.returncode == 0, err.decode()
        assert err.decode() == ""  # no traceback, no SDK chatter
        assert set(handled) == sent
        assert set(handled.values()) == {1}, "a message was handled twice"
        stopped = re.search(r"stopped: (\d+) duplicates skipped, (\d+) deliveries", "".join(lines))
        assert stopped is not None, lines[-3:]
        assert int(stopped.group(2)) > 0, "no buffered delivery was dropped: no backlog at the kill"
        # Every message answered once, as mag's own SDK reads its inbox. The hub may route a
        # receipt twice (the node died between storing it and confirming it, so the hub routes
        # the redelivered copy again); both copies carry the receipt's one distribution id and
        # mag's inbox skips the second, which is the exactly-once a partner sees.
        admin = await aio_pika.connect(node.amqp_url(vhost=VHOST))
        await wait_for_depth(admin, inbox_queue("mag"), BACKLOG)
        answered: collections.Counter[str] = collections.Counter()
        async with (
            Client.connect(
                "mag",
                node.amqp_url(vhost=VHOST),
                account=account["mag"],
                password=password(store, account["mag"]),
                **demo_signing("mag"),
            ) as mag,
            mag.inbox() as inbox,
            asyncio.timeout(60),
        ):
            # Until nothing more comes: a late copy is then skipped (counted), not left queued.
            while (delivery := await inbox.get(within=3.0)) is not None:
                receipt = delivery.acknowledgement
                assert receipt is not None, f"{delivery.type} in mag's inbox"
                answered[receipt.ref_distribution_id] += 1
                await delivery.ack()
            skipped = inbox.duplicates
        print(f"receipts: {sum(answered.values())} read, {skipped} duplicates skipped by mag")
        assert set(answered) == sent
        assert set(answered.values()) == {1}, "a message was answered twice"
        assert await queue_depth(admin, inbox_queue("mag")) == 0, "more than one receipt each"
        assert await queue_depth(admin, inbox_queue("unmas")) == 0
    finally:
        await admin.close()
