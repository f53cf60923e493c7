"""docs/examples/python/partner.py against the real broker and hub: a backlog, forced closes."""

import asyncio
import collections
import re
import shutil
import signal
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import pytest

from liaison.schemas.wire import inbox_queue
from tests.conftest import amqp_url_for
from tests.hub.conftest import RunningHub
from tests.hub.support import DEMO_KEYS, PASSWORD, demo_kid
from tests.sdk.conftest import Connect
from tests.sdk.support import force_close, queue_depth, spot_report, wait_for_depth

pytestmark = [pytest.mark.broker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "python" / "partner.py"
BACKLOG = 500
#: "handled" counts at which the broker drops the example's connection. The example is paused
#: (SIGSTOP) meanwhile, so the close finds it mid-backlog however fast it runs: its buffer full,
#: one message in hand.
CLOSE_AT = (1, 100, 250)


def without_credentials(url: str) -> str:
    """The URL with its user and password taken out, as the example expects it."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.hostname}:{parts.port or 5672}"))


async def test_example_survives_forced_closes_with_a_backlog(
    hub: RunningHub,
    connect: Connect,
    admin: aio_pika.abc.AbstractConnection,
    vhost: str,
    partner_accounts: dict[str, str],
    tmp_path: Path,
    trusted_keys: Path,
) -> None:
    """The example handles and answers each of 500 messages once through 3 forced closes."""
    mag = await connect("mag")
    sent = {await mag.send(spot_report(), recipients=["org:unmas"]) for _ in range(BACKLOG)}
    await wait_for_depth(admin, inbox_queue("unmas"), BACKLOG)
    script = tmp_path / "partner.py"  # as a partner has it: the file alone
    shutil.copy(EXAMPLE, script)
    account = partner_accounts["unmas"]
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), cwd=tmp_path,
        env={
            "LIAISON_AMQP_URL": without_credentials(amqp_url_for(vhost)),
            "LIAISON_ORG": "unmas",
            "LIAISON_ACCOUNT": account,
            "LIAISON_PASSWORD": PASSWORD,
            "LIAISON_PREFETCH": "200",
            "LIAISON_SIGNING_KEY": str(DEMO_KEYS / "unmas.key"),
            "LIAISON_SIGNING_KID": demo_kid("unmas"),
            "LIAISON_TRUSTED_KEYS": str(trusted_keys),
            "PATH": "/usr/bin:/bin",
        },
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    handled: collections.Counter[str] = collections.Counter()
    lines = []
    try:
        async with asyncio.timeout(180):
            while len(handled) < BACKLOG:
                line = (await process.stdout.readline()).decode()
                if not line:
                    _, err = await process.communicate()
                    raise AssertionError(f"the example ended early: {err.decode()[-2000:]}")
                lines.append(line)
                # Verified end to end: mag's signature, forwarded unchanged by the hub.
                signed = r", signed by mag \(mag-demo-2026\)$"
                spot = r"handled (\S+) hazard\.eo_spot_report from mag"
                if found := re.match(spot + signed, line):
                    handled[found.group(1)] += 1
                    if sum(handled.values()) in CLOSE_AT:
                        process.send_signal(signal.SIGSTOP)
                        try:
                            await force_close(vhost, account)
                        finally:
                            process.send_signal(signal.SIGCONT)
            process.send_signal(signal.SIGTERM)
            rest, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    lines += rest.decode().splitlines(keepends=True)
    assert process.returncode == 0, err.decode()
    assert err.decode() == ""  # no traceback, no SDK chatter
    assert set(handled) == sent
    assert set(handled.values()) == {1}, "a message was handled twice"
    stopped = re.search(r"stopped: (\d+) duplicates skipped, (\d+) deliveries", "".join(lines))
    assert stopped is not None, lines[-3:]
    assert int(stopped.group(2)) > 0, "no buffered delivery was dropped: no backlog at a close"
    # Every message answered once: resent receipts were deduplicated by the hub.
    await wait_for_depth(admin, inbox_queue("mag"), BACKLOG)
    await asyncio.sleep(0.5)
    assert await queue_depth(admin, inbox_queue("mag")) == BACKLOG
    assert await queue_depth(admin, inbox_queue("unmas")) == 0
