"""TLS fixtures: a development CA (make-dev-ca.sh), a stranger's CA, and extra broker nodes.

Every TLS test runs on an extra node of its own (liaison.nodes), never on the broker on 5672:
the node is private to the run, so the sample directory's account names are used as they are.
"""

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from liaison.directory.settings import ProvisionSettings
from liaison.nodes.node import LIAISON_PLUGINS, BrokerNode, NodeTls
from tests.node_provisioning import provision_node, provisioning_env

ROOT = Path(__file__).resolve().parents[2]
MAKE_DEV_CA = ROOT / "deploy" / "rabbitmq" / "make-dev-ca.sh"
SHIPPED_CONF = ROOT / "deploy" / "rabbitmq" / "rabbitmq.conf"
DIRECTORY = ROOT / "deploy" / "directory.toml"
HUB = "liaison-hub"
OPERATOR = "liaison-operator"
ACCOUNTS = (HUB, OPERATOR, "mag", "unmas")

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="an extra RabbitMQ node is started as root (then as rabbitmq)"
)


def make_dev_ca(folder: Path, *accounts: str) -> subprocess.CompletedProcess[str]:
    """Run deploy/rabbitmq/make-dev-ca.sh into ``folder`` for ``accounts``."""
    return subprocess.run(
        ["bash", str(MAKE_DEV_CA), str(folder), "localhost", *accounts],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@dataclass(frozen=True)
class Ca:
    """The files make-dev-ca.sh wrote."""

    folder: Path

    @property
    def ca(self) -> Path:
        """The CA certificate."""
        return self.folder / "ca_certificate.pem"

    def cert(self, account: str) -> Path:
        """``account``'s client certificate."""
        return self.folder / f"client-{account}_certificate.pem"

    def key(self, account: str) -> Path:
        """``account``'s client key."""
        return self.folder / f"client-{account}_key.pem"


@pytest.fixture(scope="session")
def dev_ca(tmp_path_factory: pytest.TempPathFactory) -> Ca:
    """The development CA with a server certificate for localhost and the accounts' certs."""
    folder = tmp_path_factory.mktemp("dev-ca") / "tls"
    result = make_dev_ca(folder, *ACCOUNTS)
    assert result.returncode == 0, result.stderr
    return Ca(folder)


@pytest.fixture(scope="session")
def stranger_ca(tmp_path_factory: pytest.TempPathFactory) -> Ca:
    """Another CA, unknown to the broker, that issues a certificate named like a partner."""
    folder = tmp_path_factory.mktemp("stranger-ca") / "tls"
    result = make_dev_ca(folder, "mag", HUB)
    assert result.returncode == 0, result.stderr
    return Ca(folder)


def shipped_template() -> str:
    """deploy/rabbitmq/rabbitmq.conf with this node's ports and certificate folder put in, and
    its commented management-over-TLS block switched on in place of the plain one."""
    lines = []
    for line in SHIPPED_CONF.read_text().splitlines():
        if line.startswith("management.tcp."):
            line = "# " + line
        elif line.startswith("# management.ssl."):
            line = line[2:]
        lines.append(line)
    return (
        "\n".join(lines)
        .replace("/etc/rabbitmq/tls", "{tls_dir}")
        .replace("127.0.0.1:5672", "127.0.0.1:{amqp}")
        # Loopback here: the test machine's other interfaces are none of this test's business.
        .replace("listeners.ssl.default = 5671", "listeners.ssl.default = 127.0.0.1:{amqps}")
        .replace("15671", "{management}")
        .replace("15692", "{prometheus}")
    ) + "\n"


def start_node(ca: Ca, *, cert_login: bool) -> BrokerNode:
    """A node with amqps and the management API over https, both signed by ``ca``.

    With certificate login it boots the shipped deploy/rabbitmq/rabbitmq.conf itself.
    """
    return BrokerNode.start(
        prefix="liaison-tls",
        plugins=(*LIAISON_PLUGINS, "rabbitmq_prometheus") if cert_login else LIAISON_PLUGINS,
        tls=NodeTls(
            ca_file=ca.ca,
            cert_file=ca.folder / "server_certificate.pem",
            key_file=ca.folder / "server_key.pem",
            cert_login=cert_login,
            management_over_tls=True,
        ),
        config_template=shipped_template() if cert_login else None,
    )


def provision_env(node: BrokerNode, ca: Ca, credentials: Path, url: str) -> dict[str, str]:
    """Provisioning's environment for ``node``: management over https trusting ``ca``."""
    return {**provisioning_env(node, credentials, amqp_url=url), "LIAISON_TLS_CA_FILE": str(ca.ca)}


def module_node(ca: Ca, *, cert_login: bool, what: str) -> Iterator[BrokerNode]:
    """A module's node fixture: ``start_node``, its start-up time printed, stopped at the end."""
    with start_node(ca, cert_login=cert_login) as started:
        print(f"{what} node {started.name} started in {started.started_in:.1f}s")
        yield started


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where provisioning stores the module's passwords."""
    return tmp_path_factory.mktemp("credentials") / "store"


@pytest.fixture(scope="module")
async def provisioned(node: BrokerNode, dev_ca: Ca, credentials: Path) -> ProvisionSettings:
    """The sample directory's accounts, rights and topology on the module's ``node``, through
    the management API over https."""
    return await provision_node(provision_env(node, dev_ca, credentials, node.amqps_url("liaison")))


class HubProcess:
    """``python -m liaison.hub`` against an extra node, as an operator runs it."""

    def __init__(self, env: dict[str, str], log: Path, port: int) -> None:
        self.port = port
        self.log_path = log
        full = {**os.environ, **env, "LIAISON_HTTP_PORT": str(port), "LIAISON_LOG_LEVEL": "info"}
        full["LIAISON_DIRECTORY"] = str(DIRECTORY)
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "liaison.hub"],
                cwd=ROOT,
                env=full,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def output(self) -> str:
        """Everything the hub wrote so far."""
        return self.log_path.read_text(errors="replace")

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Poll /readyz until the hub consumes."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.process.poll() is None, f"hub exited:\n{self.output}"
                try:
                    async with session.get(f"http://127.0.0.1:{self.port}/readyz") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError(f"hub never became ready:\n{self.output}")

    async def wait_exit(self, timeout: float = 30.0) -> int:
        """The exit code, once the hub stops by itself."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            assert time.monotonic() < deadline, f"hub still running:\n{self.output}"
            await asyncio.sleep(0.2)
        return self.process.returncode

    def stop(self) -> None:
        """SIGTERM, then wait; kill if it hangs."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def hubs() -> Iterator[list[HubProcess]]:
    """Hub processes a test starts; stopped afterwards."""
    started: list[HubProcess] = []
    yield started
    for hub in started:
        hub.stop()
