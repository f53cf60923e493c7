"""``liaison send`` and ``liaison tail`` against the real broker and an in-process hub."""

import asyncio
import json
import signal
from pathlib import Path

import aio_pika
import msgspec
import pytest

from liaison.directory.credentials import environment_variable
from liaison.schemas.examples import example
from liaison.schemas.wire import inbox_queue
from tests.cli.support import LIAISON, assert_one_line_failure, liaison, signing
from tests.conftest import amqp_url_for
from tests.hub.conftest import RunningHub
from tests.hub.support import PASSWORD, decode, drain

pytestmark = pytest.mark.broker

SPOT = json.dumps(
    {
        k: v
        for k, v in msgspec.to_builtins(example("hazard.eo_spot_report").body).items()
        if k != "type"
    }
)


async def test_send_prints_id_and_delivers(
    hub: RunningHub, cli_env: dict[str, str], admin: aio_pika.abc.AbstractConnection
) -> None:
    """send prints the distribution id and the recipient's inbox receives that message."""
    result = await liaison(
        "send", "--as", "mag", *signing("mag"),
        "--type", "hazard.eo_spot_report", "--body-json", SPOT,
        "--to", "org:unmas", "--precedence", "immediate", "--ttl", "1h", env=cli_env,
    )  # fmt: skip
    assert result.code == 0, result
    distribution_id = result.stdout.strip()
    got = await drain(admin, inbox_queue("unmas"), expect=1)
    assert [decode(m)["distribution_id"] for m in got] == [distribution_id]
    assert decode(got[0])["precedence"] == "immediate"


async def test_send_file_envelope(
    hub: RunningHub, cli_env: dict[str, str], admin: aio_pika.abc.AbstractConnection, tmp_path: Path
) -> None:
    """--file takes a whole envelope: its recipients and id are used, the sender is --as."""
    doc = msgspec.to_builtins(example("hazard.eo_spot_report"))
    doc.update(sender="mag", recipients=["org:unmas"], distribution_id="mag-file-1")
    path = tmp_path / "msg.json"
    path.write_text(json.dumps(doc))
    result = await liaison("send", "--as", "mag", *signing("mag"), "--file", str(path), env=cli_env)
    assert (result.code, result.stdout.strip()) == (0, "mag-file-1")
    assert len(await drain(admin, inbox_queue("unmas"), expect=1)) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["send", "--type", "sitrep", "--body-json", "{}", "--to", "org:unmas"],
        ["send", "--as", "mag", *signing("mag"), "--type", "sitrep", "--to", "org:unmas"],
        ["send", "--as", "mag", *signing("mag"), "--type", "no.such", "--body-json", "{}"],
        [
            "send",
            "--as",
            "mag",
            *signing("mag"),
            "--type",
            "hazard.eo_spot_report",
            "--body-json",
            SPOT,
        ],
        ["tail", "--as", "mag", "--count", "0"],
        ["tail"],
    ],
)
async def test_bad_arguments_exit_2(args: list[str], cli_env: dict[str, str]) -> None:
    """Missing or malformed arguments are a usage error: exit 2, no traceback."""
    result = await liaison(*args, env=cli_env)
    assert result.code == 2, result
    assert "Traceback" not in result.stderr


async def test_send_invalid_body_names_field(cli_env: dict[str, str]) -> None:
    """A body breaking the contract fails before sending, naming the field path."""
    bad = json.loads(SPOT) | {"quantity": 0}
    result = await liaison(
        "send", "--as", "mag", *signing("mag"),
        "--type", "hazard.eo_spot_report", "--body-json", json.dumps(bad),
        "--to", "org:unmas", env=cli_env,
    )  # fmt: skip
    assert_one_line_failure(result)
    assert "$.body.quantity" in result.stderr


@pytest.mark.parametrize("command", ["send", "tail"])
async def test_unreachable_broker_is_one_line(command: str, cli_env: dict[str, str]) -> None:
    """With no broker at the URL, the command fails in one line, exit 1, password hidden."""
    send = ["--type", "hazard.eo_spot_report", "--body-json", SPOT, "--to", "org:unmas"]
    result = await liaison(
        command, "--as", "mag", "--url", "amqp://guest:s3cret@127.0.0.1:1/",
        *(send if command == "send" else []), env=cli_env,
    )  # fmt: skip
    assert_one_line_failure(result)
    assert "s3cret" not in result.stderr


@pytest.mark.parametrize("command", ["send", "tail"])
async def test_unknown_partner_exit_1(command: str, cli_env: dict[str, str]) -> None:
    """--as an organisation not in the directory fails in one line, exit 1."""
    extra = ["--type", "hazard.eo_spot_report", "--body-json", SPOT, "--to", "org:unmas"]
    result = await liaison(
        command, "--as", "nobody", *(extra if command == "send" else []), env=cli_env
    )
    assert_one_line_failure(result)
    assert "unknown partner 'nobody'" in result.stderr


async def test_tail_shows_messages_and_error_reports(
    hub: RunningHub, cli_env: dict[str, str]
) -> None:
    """tail prints a readable line per message, and the hub's refusals with code and field."""
    sent = await liaison(
        "send", "--as", "mag", *signing("mag"),
        "--type", "hazard.eo_spot_report", "--body-json", SPOT,
        "--to", "org:gov-car", env=cli_env,
    )  # fmt: skip
    assert sent.code == 0, sent
    alert = {
        k: v for k, v in msgspec.to_builtins(example("hazard.alert").body).items() if k != "type"
    }
    refused = await liaison(
        "send", "--as", "gov-car", *signing("gov-car"),
        "--type", "hazard.alert", "--body-json", json.dumps(alert),
        "--to", "mission:minusca", env=cli_env,
    )  # fmt: skip
    assert refused.code == 0, refused
    result = await liaison(
        "tail", "--as", "gov-car", "--count", "2", "--ack", "--wait", "10", env=cli_env
    )
    assert result.code == 0, result
    lines = result.stdout.splitlines()
    assert any("mag → hazard.eo_spot_report" in line and "TM-57" in line for line in lines)
    refusal = [line for line in lines if "REFUSED" in line]
    assert len(refusal) == 1
    assert "203 type_not_permitted" in refusal[0]
    assert "[at $.body.type]" in refusal[0]
    assert refused.stdout.strip() in refusal[0]


async def test_send_file_from_another_sender_is_refused(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """--file with an envelope another organisation sent is refused, not rewritten as --as."""
    doc = msgspec.to_builtins(example("hazard.eo_spot_report"))
    doc.update(sender="unmas", recipients=["org:mag"], distribution_id="unmas-file-1")
    path = tmp_path / "theirs.json"
    path.write_text(json.dumps(doc))
    result = await liaison("send", "--as", "mag", *signing("mag"), "--file", str(path), env=cli_env)
    assert_one_line_failure(result)
    assert "'unmas'" in result.stderr
    assert "$.sender" in result.stderr


@pytest.mark.parametrize("with_password", [True, False])
async def test_as_org_logs_in_with_the_urls_account(
    hub: RunningHub,
    cli_env: dict[str, str],
    admin: aio_pika.abc.AbstractConnection,
    vhost: str,
    partner_accounts: dict[str, str],
    with_password: bool,
) -> None:
    """--as ORG with --url carrying an account (and password) logs in as that account."""
    account = partner_accounts["mag"]
    env = {k: v for k, v in cli_env.items() if not k.startswith("LIAISON_PASSWORD_")}
    if with_password:
        url = amqp_url_for(vhost, account, PASSWORD)
    else:
        url = amqp_url_for(vhost, account, "x").replace(":x@", "@")
        env[environment_variable(account)] = PASSWORD
    env["LIAISON_DIRECTORY"] = "/nonexistent/directory.toml"  # a partner's machine has none
    result = await liaison(
        "send", "--as", "mag", *signing("mag"),
        "--url", url, "--type", "hazard.eo_spot_report",
        "--body-json", SPOT, "--to", "org:unmas", env=env,
    )  # fmt: skip
    assert result.code == 0, result
    got = await drain(admin, inbox_queue("unmas"), expect=1)
    assert [decode(m)["distribution_id"] for m in got] == [result.stdout.strip()]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_tail_stops_cleanly_on_signals(
    hub: RunningHub, cli_env: dict[str, str], signum: signal.Signals
) -> None:
    """Ctrl-C or SIGTERM ends a waiting tail with exit 0 and no traceback."""
    process = await asyncio.create_subprocess_exec(
        LIAISON, "tail", "--as", "unmas", env=cli_env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    first = await asyncio.wait_for(process.stdout.readline(), 30)
    assert b"watching inbox.unmas" in first
    process.send_signal(signum)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    assert err == b""
