"""LIAISON_SHARD_COUNT reaches every part that builds the topology: provision and the hub."""

from pathlib import Path

import aio_pika
import pytest

from liaison.common.topology import hub_queue
from liaison.directory.credentials import load_credential
from liaison.schemas.wire import inbox_queue
from tests.cli.support import liaison
from tests.conftest import ADMIN_AMQP_URL, MANAGEMENT_URL, _admin_credentials, amqp_url_for
from tests.directory.conftest import admin_client
from tests.hub.support import Partner, drain, envelope
from tests.hub_process import HubProcess

pytestmark = [pytest.mark.broker, pytest.mark.slow]

SHARDS = 8
#: Fixed organisation ids: the consistent-hash exchange places a sender by its routing key (the
#: org id), so these 24 land on every one of the 8 shards on every run.
ORGS = [f"s{n:02d}" for n in range(24)]


def _directory(tag: str) -> str:
    lines = [
        f'version = 1\nhub_account = "hub-{tag}"\noperator_account = "operator-{tag}"\n'
        f'ledger_account = "ledger-{tag}"\n'
    ]
    for org in ORGS:
        lines.append(
            f'[[organisations]]\nid = "{org}"\naccount = "{org}-{tag}"\n'
            f'name = "Organisation {org}"\nkind = "ngo"\n'
        )
    lines.append(
        '[[rules]]\ndescription = "spot reports to anyone"\ntypes = ["hazard.eo_spot_report"]\n'
        "senders = { any = true }\nrecipients = { any = true }\n"
    )
    return "\n".join(lines)


async def _shard_counts(admin: aio_pika.abc.AbstractConnection) -> dict[int, tuple[int, int]]:
    """Exact (messages, consumers) of each shard queue, from a passive declare."""
    channel = await admin.channel()
    counts = {}
    for shard in range(SHARDS):
        ok = (await channel.declare_queue(hub_queue(shard), passive=True)).declaration_result
        counts[shard] = (int(ok.message_count or 0), int(ok.consumer_count or 0))
    await channel.close()
    return counts


async def test_eight_shards_provisioned_consumed_and_routed(
    broker_vhost: str, tag: str, tmp_path: Path
) -> None:
    """`liaison provision` with LIAISON_SHARD_COUNT=8 creates eight shard queues, senders land on
    all of them, and a hub process told to use 8 shards consumes all eight and routes every
    message."""
    (tmp_path / "directory.toml").write_text(_directory(tag))
    store = tmp_path / "credentials"
    user, password = _admin_credentials()
    env = {
        "LIAISON_VHOST": broker_vhost,
        "LIAISON_MANAGEMENT_URL": MANAGEMENT_URL,
        "LIAISON_ADMIN_USER": user,
        "LIAISON_ADMIN_PASSWORD": password,
        "LIAISON_AMQP_URL": ADMIN_AMQP_URL,
        "LIAISON_CREDENTIALS_DIR": str(store),
        "LIAISON_DIRECTORY": str(tmp_path / "directory.toml"),
        "LIAISON_SHARD_COUNT": str(SHARDS),
        "PATH": "/usr/bin:/bin",
    }
    result = await liaison("provision", env=env, timeout=60)
    assert result.code == 0, result
    async with admin_client() as api:
        names = {q.name for q in await api.queues(broker_vhost)}
    assert {hub_queue(n) for n in range(SHARDS)} <= names
    assert hub_queue(SHARDS) not in names

    async with await aio_pika.connect(amqp_url_for(broker_vhost)) as admin:
        for n, org in enumerate(ORGS):
            account = f"{org}-{tag}"
            secret = load_credential(account, {"LIAISON_CREDENTIALS_DIR": str(store)})
            connection = await aio_pika.connect(amqp_url_for(broker_vhost, account, secret))
            async with connection:
                partner = Partner(org, account, connection)
                await partner.send(envelope(org, [ORGS[(n + 1) % len(ORGS)]]))
        waiting = await _shard_counts(admin)
        assert sum(m for m, _ in waiting.values()) == len(ORGS)
        assert all(m > 0 for m, _ in waiting.values()), waiting

        hub = HubProcess(
            {
                "LIAISON_AMQP_URL": f"amqp://hub-{tag}@127.0.0.1:5672/{broker_vhost}",
                "LIAISON_CREDENTIALS_DIR": str(store),
                "LIAISON_DIRECTORY": str(tmp_path / "directory.toml"),
                "LIAISON_SHARD_COUNT": str(SHARDS),
            },
            tmp_path / "hub.log",
        )
        try:
            await hub.wait_ready()
            for org in ORGS:
                got = await drain(admin, inbox_queue(org), expect=1, settle=0.0)
                assert len(got) == 1, f"{org} received {len(got)}"
            consumed = await _shard_counts(admin)
        finally:
            code = hub.stop()
    assert consumed == dict.fromkeys(range(SHARDS), (0, 1))
    assert code == 0, hub.output()[-2000:]
