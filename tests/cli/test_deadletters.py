"""``liaison dead-letters``: list, show and replay, against the real broker and hub."""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import aio_pika
import msgspec
import pytest

from liaison.cli.dead_letter_store import read
from liaison.directory.definitions import operator_permission
from liaison.ledger.rows import Rows
from liaison.ledger.rows import dead_letter_rows as ledger_rows
from liaison.schemas.examples import example
from liaison.schemas.wire import DEAD_LETTER_QUEUE, HEADER_SENDER, flash_inbox_queue, inbox_queue
from tests.cli.support import Result, assert_one_line_failure, liaison
from tests.conftest import amqp_url_for, management
from tests.hub.conftest import RunningHub
from tests.hub.support import Partner, decode, drain, envelope, now_iso

pytestmark = pytest.mark.broker

REPLAYER_PASSWORD = "replayer-password"


@pytest.fixture(scope="session")
async def replayer_url(vhost: str, run_id: str) -> AsyncIterator[str]:
    """An operator account with the 'impersonator' tag and only the rights replay needs."""
    account = f"t-{run_id}-replayer"
    await management(
        "PUT", f"/users/{account}", {"password": REPLAYER_PASSWORD, "tags": "impersonator"}
    )
    rights = operator_permission(account, vhost)  # the rights provisioning gives operators
    await management(
        "PUT",
        f"/permissions/{quote(vhost, safe='')}/{account}",
        {"configure": rights.configure, "write": rights.write, "read": rights.read},
    )
    yield amqp_url_for(vhost, account, REPLAYER_PASSWORD)
    await management("DELETE", f"/users/{account}")


async def refuse_one(partners: dict[str, Partner], distribution_id: str) -> None:
    """Have gov-car send a hazard alert it may not send, so the hub dead-letters it."""
    body = msgspec.to_builtins(example("hazard.alert").body)
    doc = envelope("gov-car", ["mission:minusca"], body, distribution_id=distribution_id)
    await partners["gov-car"].send(doc)


async def dead_letter_rows(url: str, env: dict[str, str], expect: int) -> list[str]:
    """The data rows of ``dead-letters list``, once ``expect`` of them are there."""
    rows: list[str] = []
    for _ in range(50):
        result = await liaison("dead-letters", "list", "--url", url, env=env)
        assert result.code == 0, result
        rows = result.stdout.splitlines()[1:]
        if len(rows) >= expect:
            break
        await asyncio.sleep(0.2)
    return rows


async def test_list_and_show(
    hub: RunningHub, partners: dict[str, Partner], cli_env: dict[str, str], admin_url: str
) -> None:
    """list shows code, reason, sender and id; show prints the refusal and the body."""
    await refuse_one(partners, "gov-car-dl-1")
    rows = await dead_letter_rows(admin_url, cli_env, expect=1)
    assert len(rows) == 1
    assert "203" in rows[0]
    assert "gov-car-dl-1" in rows[0]
    assert "hazard.alert" in rows[0]
    letter_id = rows[0].split()[0]
    shown = await liaison("dead-letters", "show", letter_id, "--url", admin_url, env=cli_env)
    assert shown.code == 0, shown
    assert "field         $.body.type" in shown.stdout
    assert '"distribution_id": "gov-car-dl-1"' in shown.stdout
    by_distribution = await liaison(
        "dead-letters", "show", "gov-car-dl-1", "--url", admin_url, env=cli_env
    )
    assert by_distribution.stdout.splitlines()[0] == f"dead letter   {letter_id}"
    assert len(await dead_letter_rows(admin_url, cli_env, expect=1)) == 1, "browsing kept it"


async def test_replay_as_original_sender_once(
    hub: RunningHub,
    partners: dict[str, Partner],
    cli_env: dict[str, str],
    admin: aio_pika.abc.AbstractConnection,
    admin_url: str,
    replayer_url: str,
) -> None:
    """Replay reaches the hub as the original sender, leaves the queue, and is not repeated."""
    await refuse_one(partners, "gov-car-dl-2")
    letter_id = (await dead_letter_rows(admin_url, cli_env, expect=1))[0].split()[0]
    await drain(admin, inbox_queue("gov-car"), expect=1)  # the first error report
    replay = await liaison("dead-letters", "replay", letter_id, "--url", replayer_url, env=cli_env)
    assert replay.code == 0, replay
    assert f"replayed {letter_id} as gov-car" in replay.stderr
    # The hub judged it again as gov-car's: a second error report, and a new dead letter.
    reports = await drain(admin, inbox_queue("gov-car"), expect=1)
    assert [decode(m)["body"]["ref_distribution_id"] for m in reports] == ["gov-car-dl-2"]
    dead = await drain(admin, DEAD_LETTER_QUEUE, expect=1)
    assert len(dead) == 1
    headers = dead[0].headers or {}
    assert headers["x-liaison-replay-of"] == letter_id
    assert headers["x-liaison-original-user-id"] == partners["gov-car"].account
    log = Path(cli_env["LIAISON_REPLAY_LOG"]).read_text().splitlines()
    assert json.loads(log[-1])["dead_letter_id"] == letter_id


async def test_second_replay_needs_force(
    hub: RunningHub, partners: dict[str, Partner], cli_env: dict[str, str], replayer_url: str
) -> None:
    """The same message is not replayed twice unless --force is given."""
    await refuse_one(partners, "gov-car-dl-3")
    first_id = (await dead_letter_rows(replayer_url, cli_env, expect=1))[0].split()[0]
    ok = await liaison("dead-letters", "replay", first_id, "--url", replayer_url, env=cli_env)
    assert ok.code == 0, ok
    rows = await dead_letter_rows(replayer_url, cli_env, expect=1)  # refused again by the hub
    again_id = rows[0].split()[0]
    assert again_id != first_id
    refused = await liaison("dead-letters", "replay", again_id, "--url", replayer_url, env=cli_env)
    assert_one_line_failure(refused)
    assert "--force" in refused.stderr
    forced = await liaison(
        "dead-letters", "replay", again_id, "--force", "--url", replayer_url, env=cli_env
    )
    assert forced.code == 0, forced


async def test_replay_all_shows_progress(
    hub: RunningHub, partners: dict[str, Partner], cli_env: dict[str, str], replayer_url: str
) -> None:
    """--all --yes replays every dead letter and reports progress per message."""
    for n in range(3):
        await refuse_one(partners, f"gov-car-all-{n}")
    await dead_letter_rows(replayer_url, cli_env, expect=3)
    result = await liaison(
        "dead-letters", "replay", "--all", "--yes", "--url", replayer_url, env=cli_env
    )
    assert result.code == 0, result
    assert "[3/3] replayed" in result.stderr
    assert "replayed 3, skipped 0" in result.stdout


async def test_replay_without_impersonator_is_explained(
    hub: RunningHub, partners: dict[str, Partner], cli_env: dict[str, str], admin_url: str
) -> None:
    """An operator account without the impersonator tag gets a one-line explanation."""
    await refuse_one(partners, "gov-car-dl-4")
    letter_id = (await dead_letter_rows(admin_url, cli_env, expect=1))[0].split()[0]
    result = await liaison("dead-letters", "replay", letter_id, "--url", admin_url, env=cli_env)
    assert_one_line_failure(result)
    assert "impersonator" in result.stderr
    assert len(await dead_letter_rows(admin_url, cli_env, expect=1)) == 1, "still kept"


async def die_in_inbox(admin: aio_pika.abc.AbstractConnection, inbox: str, how: str) -> None:
    """Make the one message in ``inbox`` leave it unread: ``rejected``, ``delivery_limit`` or
    ``expired`` (nothing to do: its expiration runs out)."""
    if how == "expired":
        return
    channel = await admin.channel()
    queue = await channel.get_queue(inbox, ensure=False)
    for _ in range(50):
        message = await queue.get(no_ack=False, fail=False)
        if message is None:
            if how == "rejected":
                await asyncio.sleep(0.1)
                continue
            break  # delivery_limit: the broker dead-lettered it after the last requeue
        await message.nack(requeue=how != "rejected")
        if how == "rejected":
            break
    await channel.close()


@pytest.mark.parametrize("how", ["rejected", "delivery_limit", "expired"])
async def test_inbox_dead_letter_is_replayed_into_its_inbox(
    how: str,
    hub: RunningHub,
    partners: dict[str, Partner],
    cli_env: dict[str, str],
    admin: aio_pika.abc.AbstractConnection,
    replayer_url: str,
) -> None:
    """A delivery that died in a (BCC) recipient's inbox keeps the hub's sender header and says
    which inbox; replay puts it back into that inbox as the hub delivered it, not through the
    hub (no refusal, no report to anyone) and not to the first recipient."""
    distribution_id = f"mag-inbox-{how}"
    doc = envelope("mag", ["org:unmas", "org:ocha"], distribution_id=distribution_id)
    if how == "expired":
        doc["expires_at"] = now_iso(2)
    await partners["mag"].send(doc)
    (first,) = await drain(admin, inbox_queue("unmas"), expect=1)
    await die_in_inbox(admin, inbox_queue("ocha"), how)
    (row,) = await dead_letter_rows(replayer_url, cli_env, expect=1)
    assert f"mag → {inbox_queue('ocha')}" in row
    reasons = {
        "rejected": "rejected by the recipient",
        "delivery_limit": "over the delivery",
        "expired": "expired unread",
    }
    assert reasons[how] in row
    letter_id = row.split()[0]
    shown = await liaison("dead-letters", "show", letter_id, "--url", replayer_url, env=cli_env)
    assert f"header        {HEADER_SENDER}: mag" in shown.stdout
    assert f"died in       {inbox_queue('ocha')}" in shown.stdout

    if how == "expired":
        # The expiry itself was reported to the sender (401), before any replay.
        (report,) = await drain(admin, inbox_queue("mag"), expect=1)
        assert report.type == "error.report"
        assert json.loads(report.body)["body"]["code"] == 401
    replay = await liaison("dead-letters", "replay", letter_id, "--url", replayer_url, env=cli_env)
    assert replay.code == 0, replay
    assert f"replayed {letter_id} into {inbox_queue('ocha')}" in replay.stderr
    (back,) = await drain(admin, inbox_queue("ocha"), expect=1)
    assert back.body == first.body
    assert back.message_id == first.message_id
    assert back.type == first.type
    headers = back.headers or {}
    assert headers[HEADER_SENDER] == "mag"
    assert headers["x-liaison-replay-of"] == letter_id
    assert "x-death" not in headers
    for elsewhere in ("unmas", "mag"):  # no second copy, no error report
        assert await drain(admin, inbox_queue(elsewhere), expect=0) == []
    assert await drain(admin, flash_inbox_queue("ocha"), expect=0) == []
    assert await dead_letter_rows(replayer_url, cli_env, expect=0) == []
    log = Path(cli_env["LIAISON_REPLAY_LOG"]).read_text().splitlines()
    assert json.loads(log[-1])["inbox"] == inbox_queue("ocha")


async def test_replay_of_an_inbox_dead_letter_whose_inbox_is_gone(
    hub: RunningHub,
    cli_env: dict[str, str],
    admin: aio_pika.abc.AbstractConnection,
    replayer_url: str,
) -> None:
    """A forged or stale dead letter naming an inbox that does not exist is not replayed (the
    replay exchange would route it nowhere) and stays in the queue."""
    channel = await admin.channel()
    dead = await channel.get_exchange("liaison.dead", ensure=False)
    await dead.publish(
        aio_pika.Message(
            b'{"sender": "mag", "distribution_id": "ghost"}',
            headers={
                HEADER_SENDER: "mag",
                "x-death": [{"queue": "inbox.nobody-here", "reason": "rejected", "count": 1}],
            },
        ),
        routing_key="nobody-here",
    )
    await channel.close()
    (row,) = await dead_letter_rows(replayer_url, cli_env, expect=1)
    letter_id = row.split()[0]
    result = await liaison("dead-letters", "replay", letter_id, "--url", replayer_url, env=cli_env)
    assert_one_line_failure(result)
    assert "inbox.nobody-here, which no longer exists" in result.stderr
    assert len(await dead_letter_rows(replayer_url, cli_env, expect=1)) == 1


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["dead-letters"], 2),
        (["dead-letters", "replay"], 2),
        (["dead-letters", "list", "--limit", "0"], 2),
        (["dead-letters", "show", "nope"], 1),
        (["dead-letters", "list", "--url", "amqp://guest:guest@127.0.0.1:1/"], 1),
        (["dead-letters", "replay", "--all", "--url", "amqp://guest:guest@127.0.0.1:1/"], 1),
    ],
)
async def test_failures(
    args: list[str], code: int, cli_env: dict[str, str], admin_url: str, topology: str
) -> None:
    """Usage errors exit 2; an unknown id or an unreachable broker exit 1 in one line."""
    if args[-1] == "nope":
        args = [*args, "--url", admin_url]
    result: Result = await liaison(*args, env=cli_env)
    if code == 1:
        assert_one_line_failure(result)
    else:
        assert result.code == 2, result
        assert "Traceback" not in result.stderr


async def test_the_cli_and_the_ledger_name_a_dead_letter_the_same(
    hub: RunningHub, partners: dict[str, Partner], admin: aio_pika.abc.AbstractConnection
) -> None:
    """A refusal and two copies of one fan-out that died in their inboxes: the CLI and the
    ledger give each the same id, and the two copies (same routing key) different ones."""
    await refuse_one(partners, "gov-car-refused-for-ids")
    doc = envelope("mag", ["org:unmas", "org:ocha"])
    await partners["mag"].send(doc)
    for org in ("unmas", "ocha"):
        await die_in_inbox(admin, inbox_queue(org), "rejected")
    letters = await drain(admin, DEAD_LETTER_QUEUE, expect=3, timeout=20)
    assert len(letters) == 3
    ids = []
    for letter in letters:
        rows = Rows()
        ledger_rows(
            rows,
            body=letter.body,
            routing_key=letter.routing_key or "",
            user_id=letter.user_id,
            message_id=letter.message_id,
            message_type=letter.type,
            headers=dict(letter.headers or {}),
            org_for_account=lambda _: None,
            received_at=datetime.now(UTC),
        )
        ((ledger_id, *_),) = rows.dead_letters
        assert read(letter).id == ledger_id
        ids.append(ledger_id)
    assert len(set(ids)) == 3
