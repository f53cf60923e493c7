"""``provision`` against the real broker: idempotence, dry runs, conflicts and pruning."""

import asyncio
import shutil
from pathlib import Path

import aio_pika
import pytest

from liaison.common.topology import REPLAY_EXCHANGE, RETIRED_QUEUES
from liaison.directory.credentials import load_credential
from liaison.directory.index import load_directory
from liaison.directory.management import Binding, Permission, Queue
from liaison.directory.provision import provision, read_broker_state
from liaison.directory.settings import ProvisionSettings
from liaison.schemas.wire import DELIVERY_EXCHANGE, flash_inbox_queue, inbox_queue
from tests.conftest import amqp_url_for
from tests.directory.conftest import admin_client, directory_text, login_refused

pytestmark = pytest.mark.broker

(RETIRED_AUDIT,) = RETIRED_QUEUES


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "directory.toml"
    path.write_text(text)
    return path


async def _snapshot(vhost: str) -> object:
    async with admin_client() as api:
        state = await read_broker_state(api, vhost, frozenset())
    queues = {name: q.arguments for name, q in state.queues.items()}
    return (
        state.vhost_exists,
        state.permissions,
        state.topic_permissions,
        state.exchanges,
        queues,
        sorted(state.bindings, key=repr),
        {n: u.password_hash for n, u in state.users.items()},
    )


async def test_second_run_changes_nothing(
    settings: ProvisionSettings, tag: str, tmp_path: Path
) -> None:
    """Provisioning the same directory twice: the second run plans nothing and says so."""
    index = load_directory(_write(tmp_path, directory_text(tag, ["alpha", "bravo", "charlie"])))
    await provision(settings, index)
    again = await provision(settings, index)
    assert again.plan.changes == ()
    assert again.applied == ()
    assert again.report()[-1] == f"vhost {settings.vhost}: nothing to change"


async def test_dry_run_changes_nothing(
    settings: ProvisionSettings, tag: str, tmp_path: Path
) -> None:
    """--dry-run plans the new organisation's objects but leaves the broker as it was."""
    await provision(settings, load_directory(_write(tmp_path, directory_text(tag, ["alpha"]))))
    before = await _snapshot(settings.vhost)
    index = load_directory(_write(tmp_path, directory_text(tag, ["alpha", "echo"])))
    result = await provision(settings, index, dry_run=True, prune=True)
    assert any(s.name == f"echo-{tag}" for s in result.plan.changes)
    assert "dry run" in result.report()[-1]
    assert await _snapshot(settings.vhost) == before


async def test_dry_run_on_a_missing_vhost_creates_nothing(
    make_settings: object, tag: str, tmp_path: Path
) -> None:
    """A dry run against a vhost that does not exist plans it and does not create it."""
    settings = make_settings(LIAISON_VHOST=f"liaison-test-dir-{tag}-absent")  # type: ignore[operator]
    index = load_directory(_write(tmp_path, directory_text(tag, ["alpha"])))
    result = await provision(settings, index, dry_run=True)
    assert result.plan.steps[0].describe() == f" + vhost {settings.vhost}"
    async with admin_client() as api:
        assert not await api.vhost_exists(settings.vhost)


async def test_changed_inbox_limit_is_a_conflict_not_a_recreate(
    settings: ProvisionSettings, tag: str, tmp_path: Path
) -> None:
    """A queue argument change is reported as a conflict, and the queue is left untouched."""
    await provision(settings, load_directory(_write(tmp_path, directory_text(tag, ["alpha"]))))
    text = directory_text(tag, ["alpha"]).replace(
        'roles = ["demining"]', 'roles = ["demining"]\ninbox_max_length = 500'
    )
    result = await provision(settings, load_directory(_write(tmp_path, text)))
    conflicts = {s.name: s.detail for s in result.plan.conflicts}
    assert "x-max-length" in conflicts[inbox_queue(f"alpha-{tag}")]
    assert "cannot change in place" in conflicts[inbox_queue(f"alpha-{tag}")]
    async with admin_client() as api:
        queue = await api.queue(settings.vhost, inbox_queue(f"alpha-{tag}"))
    assert queue is not None
    assert queue.arguments["x-max-length"] == 100_000


async def test_prune_keeps_a_removed_partners_messages(
    settings: ProvisionSettings, tag: str, tmp_path: Path
) -> None:
    """--prune deletes the user and closes its connection but keeps its non-empty inbox."""
    vhost = settings.vhost
    await provision(
        settings, load_directory(_write(tmp_path, directory_text(tag, ["alpha", "foxtrot"])))
    )
    account = f"foxtrot-{tag}"
    password = load_credential(account, {"LIAISON_CREDENTIALS_DIR": str(settings.credentials_dir)})
    partner = await aio_pika.connect(amqp_url_for(vhost, account, password))
    async with await aio_pika.connect(amqp_url_for(vhost)) as admin:
        delivery = await (await admin.channel()).get_exchange(DELIVERY_EXCHANGE, ensure=False)
        await delivery.publish(aio_pika.Message(b"undelivered"), routing_key=account)

    stale = await provision(
        settings, load_directory(_write(tmp_path, directory_text(tag, ["alpha"])))
    )
    assert any(s.name == account and "--prune" in s.detail for s in stale.plan.steps)
    result = await provision(settings, load_directory(tmp_path / "directory.toml"), prune=True)

    report = "\n".join(result.report())
    assert f"kept {inbox_queue(account)} with 1 messages for an operator" in report
    assert f"- queue {flash_inbox_queue(account)}: was empty" in report
    for _ in range(50):
        if not partner.connected.is_set():
            break
        await asyncio.sleep(0.1)
    assert not partner.connected.is_set()
    await partner.close()
    async with admin_client() as api:
        assert await api.user(account) is None
        kept = await api.queue(vhost, inbox_queue(account))
        assert kept is not None
        assert await api.queue(vhost, flash_inbox_queue(account)) is None
    assert await login_refused(amqp_url_for(vhost, account, password))
    again = await provision(settings, load_directory(tmp_path / "directory.toml"), prune=True)
    assert any(f"kept {inbox_queue(account)}" in line for line in again.report())


def _own_accounts_text(tag: str, prefix: str, orgs: list[str]) -> str:
    """A directory whose hub and operator accounts are this test's alone (``<prefix>hub-<tag>``)."""
    return (
        directory_text(tag, orgs)
        .replace(f'"hub-{tag}"', f'"{prefix}hub-{tag}"')
        .replace(f'"operator-{tag}"', f'"{prefix}operator-{tag}"')
    )


async def test_demo_reissues_its_accounts_when_the_store_is_gone(
    make_settings: object, tag: str, tmp_path: Path
) -> None:
    """With reissue_missing, a second run after the credential store was deleted resets the
    vhost's own accounts (no conflicts) and the new stored passwords log in; plain provision
    still reports those accounts as conflicts."""
    store = tmp_path / "store"
    settings = make_settings(LIAISON_CREDENTIALS_DIR=str(store))  # type: ignore[operator]
    index = load_directory(_write(tmp_path, _own_accounts_text(tag, "re", ["golf", "hotel"])))
    first = await provision(settings, index, reissue_missing=True)
    assert first.plan.conflicts == ()
    account = f"golf-{tag}"
    env = {"LIAISON_CREDENTIALS_DIR": str(store)}
    old_password = load_credential(account, env)

    shutil.rmtree(store)
    plain = await provision(settings, index, dry_run=True)
    assert {s.name for s in plain.plan.conflicts} >= {account, f"rehub-{tag}"}

    second = await provision(settings, index, reissue_missing=True)
    assert second.plan.conflicts == (), second.report()
    assert f" ~ user {account}: exists but no credential is stored" in "\n".join(second.report())
    new_password = load_credential(account, env)
    assert new_password != old_password
    assert not await login_refused(amqp_url_for(settings.vhost, account, new_password))
    assert await login_refused(amqp_url_for(settings.vhost, account, old_password))
    third = await provision(settings, index, reissue_missing=True)
    assert third.plan.changes == ()


async def test_demo_never_resets_an_account_that_is_not_only_its_own(
    make_settings: object, tag: str, tmp_path: Path, vhost: str
) -> None:
    """reissue_missing leaves alone an account with rights on another vhost or with tags the
    directory did not give it: both stay conflicts and their passwords still work."""
    store = tmp_path / "store"
    settings = make_settings(LIAISON_CREDENTIALS_DIR=str(store))  # type: ignore[operator]
    index = load_directory(_write(tmp_path, _own_accounts_text(tag, "nr", ["india", "juliet"])))
    await provision(settings, index, reissue_missing=True)
    env = {"LIAISON_CREDENTIALS_DIR": str(store)}
    shared, tagged = f"india-{tag}", f"juliet-{tag}"
    passwords = {a: load_credential(a, env) for a in (shared, tagged)}
    async with admin_client() as api:
        # ``vhost`` is this test session's own vhost: a right there makes the account shared.
        await api.put_permission(Permission(shared, vhost, "^$", "^$", "^$"))
        user = await api.user(tagged)
        assert user is not None
        await api.put_user(tagged, user.password_hash, user.hashing_algorithm, ("monitoring",))
    shutil.rmtree(store)

    result = await provision(settings, index, reissue_missing=True)

    assert {s.name for s in result.plan.conflicts} >= {shared, tagged}
    for account, password in passwords.items():
        assert not await login_refused(amqp_url_for(settings.vhost, account, password))


async def test_demo_recreates_an_empty_queue_whose_arguments_changed(
    settings: ProvisionSettings, tag: str, tmp_path: Path
) -> None:
    """An inbox left by an older version (dead-lettering to liaison.dead) is a conflict for
    provision; with recreate_empty it is re-created with today's arguments and bindings while
    empty, and kept untouched while it holds a message."""
    index = load_directory(_write(tmp_path, directory_text(tag, ["alpha"])))
    await provision(settings, index)
    inbox = inbox_queue(f"alpha-{tag}")
    async with admin_client() as api:
        today = await api.queue(settings.vhost, inbox)
        assert today is not None
        old = {**today.arguments, "x-dead-letter-exchange": "liaison.dead"}
        await api.delete_queue(settings.vhost, inbox)
        await api.put_queue(settings.vhost, Queue(name=inbox, arguments=old))
    plain = await provision(settings, index, dry_run=True)
    assert inbox in {s.name for s in plain.plan.conflicts}

    async with await aio_pika.connect(amqp_url_for(settings.vhost)) as admin:
        channel = await admin.channel()
        await channel.default_exchange.publish(aio_pika.Message(b"kept"), routing_key=inbox)
        held = await provision(settings, index, recreate_empty=True)
        assert f" = kept {inbox} with 1 messages for an operator" in "\n".join(held.report())
        async with admin_client() as api:
            queue = await api.queue(settings.vhost, inbox)
        assert queue is not None
        assert queue.arguments["x-dead-letter-exchange"] == "liaison.dead"
        await (await channel.get_queue(inbox, ensure=False)).purge()

    result = await provision(settings, index, recreate_empty=True)
    assert f" ~ queue {inbox}: was empty, re-created" in "\n".join(result.report())
    async with admin_client() as api:
        queue = await api.queue(settings.vhost, inbox)
        bindings = await api.bindings(settings.vhost)
    bound = {b.source for b in bindings if b.destination == inbox and b.source}
    assert queue is not None
    assert queue.arguments == today.arguments
    assert bound == {DELIVERY_EXCHANGE, REPLAY_EXCHANGE}
    assert (await provision(settings, index)).plan.changes == ()


async def test_the_retired_audit_queue_is_unbound_at_once_and_deleted_once_empty(
    settings: ProvisionSettings, tag: str, tmp_path: Path
) -> None:
    """A broker provisioned before the ledger has liaison.audit bound with '#': provisioning
    (no --prune) removes its bindings at once, keeps it while it holds a copy with the command
    to run, deletes it once empty, and plans nothing after that."""
    index = load_directory(_write(tmp_path, directory_text(tag, ["alpha"])))
    await provision(settings, index)
    old = {"x-queue-type": "quorum", "x-max-length": 1_000_000, "x-overflow": "drop-head"}
    async with admin_client() as api:
        await api.put_queue(settings.vhost, Queue(name=RETIRED_AUDIT, arguments=old))
        for exchange in (DELIVERY_EXCHANGE, REPLAY_EXCHANGE):
            await api.post_binding(
                settings.vhost, Binding(exchange, RETIRED_AUDIT, "queue", routing_key="#")
            )
    async with await aio_pika.connect(amqp_url_for(settings.vhost)) as admin:
        channel = await admin.channel()
        delivery = await channel.get_exchange(DELIVERY_EXCHANGE, ensure=False)
        await delivery.publish(aio_pika.Message(b"old copy"), routing_key=f"alpha-{tag}")

        held = "\n".join((await provision(settings, index)).report())
        assert f"- binding {DELIVERY_EXCHANGE} -> {RETIRED_AUDIT} [#]" in held
        assert f"- binding {REPLAY_EXCHANGE} -> {RETIRED_AUDIT} [#]" in held
        assert f" = kept {RETIRED_AUDIT} with 1 messages for an operator" in held
        assert f"rabbitmqctl delete_queue --vhost {settings.vhost} {RETIRED_AUDIT}" in held
        async with admin_client() as api:
            bindings = await api.bindings(settings.vhost)
        assert not [b for b in bindings if b.destination == RETIRED_AUDIT and b.source]
        # Unbound: a new delivery reaches the inbox only, the old copy stays for the operator.
        await delivery.publish(aio_pika.Message(b"new"), routing_key=f"alpha-{tag}")
        audit = await channel.declare_queue(RETIRED_AUDIT, passive=True)
        assert audit.declaration_result.message_count == 1
        await (await channel.get_queue(RETIRED_AUDIT, ensure=False)).purge()
        await (await channel.get_queue(inbox_queue(f"alpha-{tag}"), ensure=False)).purge()

    deleted = "\n".join((await provision(settings, index)).report())
    assert f"- queue {RETIRED_AUDIT}: was empty" in deleted
    async with admin_client() as api:
        assert await api.queue(settings.vhost, RETIRED_AUDIT) is None
    assert (await provision(settings, index)).plan.changes == ()
