"""``liaison send`` signs, ``liaison tail --trusted-keys`` says who signed each message."""

import json
from pathlib import Path

import msgspec
import pytest

from liaison.common.hub_key import load_hub_key
from liaison.directory.index import DirectoryIndex
from liaison.directory.keys import published_keys
from liaison.schemas.examples import example
from tests.cli.support import liaison, signing
from tests.hub.conftest import RunningHub

SPOT = json.dumps(
    {
        k: v
        for k, v in msgspec.to_builtins(example("hazard.eo_spot_report").body).items()
        if k != "type"
    }
)


@pytest.fixture
def trusted_keys(tmp_path: Path, directory: DirectoryIndex, hub_key_file: Path) -> Path:
    """signing-keys.json of the test directory and the test hub."""
    path = tmp_path / "signing-keys.json"
    path.write_bytes(published_keys(directory, load_hub_key(hub_key_file)))
    return path


async def test_signed_send_is_verified_and_unsigned_is_refused_by_a_signed_report(
    hub: RunningHub, cli_env: dict[str, str], trusted_keys: Path
) -> None:
    """A signed send reaches unmas verified as mag's; an --unsigned one is refused (208), and
    mag's tail shows the hub's report verified as signed by the hub."""
    sent = await liaison(
        "send", "--as", "mag", *signing("mag"), "--type", "hazard.eo_spot_report",
        "--body-json", SPOT, "--to", "org:unmas", env=cli_env,
    )  # fmt: skip
    assert sent.code == 0, sent
    shown = await liaison(
        "tail", "--as", "unmas", "--count", "1", "--ack", "--wait", "10",
        "--trusted-keys", str(trusted_keys), env=cli_env,
    )  # fmt: skip
    assert shown.code == 0, shown
    assert "[signed by mag, mag-demo-2026]" in shown.stdout, shown.stdout

    unsigned = await liaison(
        "send", "--as", "mag", "--unsigned", "--type", "hazard.eo_spot_report",
        "--body-json", SPOT, "--to", "org:unmas", env=cli_env,
    )  # fmt: skip
    assert unsigned.code == 0, unsigned  # the broker took it; the hub answers
    report = await liaison(
        "tail", "--as", "mag", "--count", "1", "--ack", "--wait", "10",
        "--trusted-keys", str(trusted_keys), env=cli_env,
    )  # fmt: skip
    assert "208" in report.stdout, report.stdout
    assert "[signed by liaison, liaison-hub-" in report.stdout, report.stdout


async def test_send_without_a_key_says_how_to_sign(
    hub: RunningHub, cli_env: dict[str, str]
) -> None:
    """Without --signing-key (and not --unsigned) send fails in one line naming the fix."""
    result = await liaison(
        "send", "--as", "mag", "--type", "hazard.eo_spot_report", "--body-json", SPOT,
        "--to", "org:unmas", env=cli_env,
    )  # fmt: skip
    assert result.code == 1, result
    assert "must sign" in result.stderr
    assert "--signing-key" in result.stderr
    assert "Traceback" not in result.stderr
