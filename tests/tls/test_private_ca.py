"""amqps and the management API over https with a private CA, on an extra node of this run.

Partners log in with a password over TLS here (the node offers PLAIN); the CA is the dev CA
from make-dev-ca.sh. Provisioning goes over https, the hub, the SDK and the CLI over amqps.
"""

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from liaison.common.errors import ConfigError
from liaison.directory.credentials import CredentialStore
from liaison.directory.model import Organisation
from liaison.directory.partners import add_partner
from liaison.directory.settings import ProvisionSettings, load_settings
from liaison.nodes.node import BrokerNode
from liaison.schemas.examples import example
from liaison.sdk import Client, ConnectFailed, tls_context
from tests.cli.support import liaison
from tests.hub.support import demo_signing
from tests.hub_process import free_port
from tests.tls.conftest import (
    Ca,
    HubProcess,
    module_node,
    needs_root,
    provision_env,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow, needs_root]


@pytest.fixture(scope="module")
def node(dev_ca: Ca) -> Iterator[BrokerNode]:
    """An extra node with amqps (client certificates optional) and management over https."""
    yield from module_node(dev_ca, cert_login=False, what="TLS")


def password(credentials: Path, account: str) -> str:
    """The password provisioning stored for ``account``."""
    stored = CredentialStore(credentials).get(account)
    assert stored is not None
    return stored


def amqps(node: BrokerNode, account: str, secret: str) -> str:
    """The node's amqps URL on the liaison vhost as ``account``."""
    return f"amqps://{account}:{secret}@localhost:{node.ports.amqps}/liaison"


async def test_provisioning_over_https_trusts_the_private_ca(
    provisioned: ProvisionSettings, node: BrokerNode
) -> None:
    """Provisioning reached the https management API with LIAISON_TLS_CA_FILE: nothing left."""
    assert node.management_url.startswith("https://")
    from liaison.directory.index import load_directory
    from liaison.directory.provision import provision

    again = await provision(provisioned, load_directory(provisioned.directory), dry_run=True)
    assert not again.plan.changes


async def test_provisioning_without_the_ca_names_the_setting(
    node: BrokerNode, stranger_ca: Ca, credentials: Path
) -> None:
    """Against a CA that did not sign the management certificate, the error names the CA file."""
    from liaison.directory.provision import management_client

    env = provision_env(node, stranger_ca, credentials, node.amqps_url("liaison"))
    with pytest.raises(ConfigError, match=r"^LIAISON_TLS_CA_FILE: .*not signed by a trusted CA"):
        async with management_client(load_settings(env)) as api:
            await api.vhost_exists("liaison")


async def test_hub_sdk_and_cli_over_amqps_with_a_private_ca(
    provisioned: ProvisionSettings,
    node: BrokerNode,
    dev_ca: Ca,
    credentials: Path,
    hubs: list[HubProcess],
    tmp_path: Path,
) -> None:
    """The hub consumes over amqps; an SDK partner's message reaches a CLI partner through it."""
    hub = HubProcess(
        {
            "LIAISON_AMQP_URL": f"amqps://liaison-hub@localhost:{node.ports.amqps}/liaison",
            "LIAISON_CREDENTIALS_DIR": str(credentials),
            "LIAISON_TLS_CA_FILE": str(dev_ca.ca),
            # The inboxes' length limits, over https trusting the same CA.
            "LIAISON_MANAGEMENT_URL": node.management_url,
        },
        tmp_path / "hub.log",
        free_port(),
    )
    hubs.append(hub)
    await hub.wait_ready()
    context = tls_context(ca_file=dev_ca.ca)
    url = amqps(node, "mag", password(credentials, "mag"))
    async with Client.connect("mag", url, ssl_context=context, **demo_signing("mag")) as mag:
        await mag.send(example("hazard.eo_spot_report").body, recipients=["org:unmas"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    env.update(
        LIAISON_DIRECTORY=str(provisioned.directory),
        LIAISON_CREDENTIALS_DIR=str(credentials),
    )
    tail = await liaison(
        "tail", "--as", "unmas", "--url", node.amqps_url("liaison"),
        "--ca-file", str(dev_ca.ca), "--count", "1", "--wait", "20", "--ack", env=env,
    )  # fmt: skip
    assert tail.code == 0, tail
    assert "mag → hazard.eo_spot_report" in tail.stdout


async def test_sdk_without_the_ca_is_told_which_parameter(
    provisioned: ProvisionSettings, node: BrokerNode, stranger_ca: Ca, credentials: Path
) -> None:
    """Trusting the wrong CA fails the connect with ConnectFailed naming ca_file."""
    url = amqps(node, "mag", password(credentials, "mag"))
    with pytest.raises(ConnectFailed, match="ca_file: the broker's certificate is not signed"):
        await Client.connect("mag", url, ssl_context=tls_context(ca_file=stranger_ca.ca))


async def test_hub_stops_on_an_unknown_ca(
    provisioned: ProvisionSettings,
    node: BrokerNode,
    stranger_ca: Ca,
    credentials: Path,
    hubs: list[HubProcess],
    tmp_path: Path,
) -> None:
    """A CA that did not sign the broker's certificate stops the hub, exit 1, naming the setting."""
    hub = HubProcess(
        {
            "LIAISON_AMQP_URL": f"amqps://liaison-hub@localhost:{node.ports.amqps}/liaison",
            "LIAISON_CREDENTIALS_DIR": str(credentials),
            "LIAISON_TLS_CA_FILE": str(stranger_ca.ca),
        },
        tmp_path / "hub.log",
        free_port(),
    )
    hubs.append(hub)
    assert await hub.wait_exit() == 1
    assert "stopping_on_config_error" in hub.output
    assert "liaison hub: LIAISON_TLS_CA_FILE: the broker's certificate" in hub.output
    assert "broker_unavailable" not in hub.output


async def test_partner_add_snippet_connects_with_the_private_ca(
    provisioned: ProvisionSettings, node: BrokerNode, tmp_path: Path
) -> None:
    """The snippet `liaison partner add` prints, run as printed, connects over amqps."""
    directory = tmp_path / "directory.toml"
    directory.write_text(provisioned.directory.read_text())
    org = Organisation(id="tls-ngo", name="TLS NGO", kind="ngo", roles=("demining",))
    _, issued = await add_partner(provisioned, directory, org)
    assert issued is not None
    lines = issued.announcement()
    start = lines.index("Connect from Python with the Liaison SDK (in an async function):")
    snippet = textwrap.dedent("\n".join(lines[start + 1 : start + 5]))
    assert "tls_context(ca_file=" in snippet
    code = "async def partner():\n" + textwrap.indent(
        snippet.replace("...", "return client.org"), "    "
    )
    scope: dict[str, object] = {}
    exec(code, scope)  # noqa: S102 - the printed snippet itself is what is under test
    assert await scope["partner"]() == "tls-ngo"  # type: ignore[operator]
