"""CLI fixtures: the hub fixtures, and an environment for ``liaison`` on the test vhost."""

import os
from pathlib import Path

import pytest

from liaison.directory.credentials import environment_variable
from tests.cli.support import directory_with_accounts
from tests.hub.conftest import (  # noqa: F401  (fixtures, used by name)
    admin,
    directory,
    hub,
    hub_broker_url,
    hub_delivery,
    hub_key_file,
    partner_accounts,
    partners,
    topology,
)
from tests.hub.support import PASSWORD


@pytest.fixture(scope="session")
def directory_file(tmp_path_factory: pytest.TempPathFactory, run_id: str) -> Path:
    """The sample directory with this package's own run-unique accounts (c-<run>-<org>)."""
    return directory_with_accounts(tmp_path_factory.mktemp("directory"), f"c-{run_id}-")


@pytest.fixture
def cli_env(
    vhost: str,
    directory_file: Path,
    partner_accounts: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> dict[str, str]:
    """Variables pointing ``liaison`` at the test vhost, directory and partner passwords."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    env.update(
        LIAISON_AMQP_URL="amqp://127.0.0.1:5672/",
        LIAISON_VHOST=vhost,
        LIAISON_DIRECTORY=str(directory_file),
        LIAISON_CREDENTIALS_DIR=str(tmp_path / "credentials"),
        LIAISON_REPLAY_LOG=str(tmp_path / "replays.jsonl"),
        NO_COLOR="1",
    )
    for account in partner_accounts.values():
        env[environment_variable(account)] = PASSWORD
    return env
