"""Certificate login (SASL EXTERNAL) on an extra node: the certificate, not the password, decides.

The node boots deploy/rabbitmq/rabbitmq.conf as shipped (ports and certificate paths rewritten,
management served over TLS): EXTERNAL only, a client certificate required, the user name from
the certificate's subject CN (make-dev-ca.sh issues them).
"""

import asyncio
import ipaddress
import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import aiohttp
import aiormq.exceptions
import pytest

from liaison.directory.credentials import CredentialStore
from liaison.directory.settings import ProvisionSettings
from liaison.nodes.node import BrokerNode
from liaison.schemas.examples import example
from liaison.schemas.wire import INGRESS_EXCHANGE
from liaison.sdk import Client, ConnectFailed, tls_context
from tests.cli.support import liaison, signing
from tests.cli.test_send_tail import SPOT
from tests.conftest import MANAGEMENT_URL
from tests.hub.support import demo_signing
from tests.hub_process import free_port
from tests.tls.conftest import (
    HUB,
    OPERATOR,
    Ca,
    HubProcess,
    module_node,
    needs_root,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow, needs_root]


@pytest.fixture(scope="module")
def node(dev_ca: Ca) -> Iterator[BrokerNode]:
    """An extra node with certificate login only (rabbitmq_auth_mechanism_ssl on it alone)."""
    yield from module_node(dev_ca, cert_login=True, what="certificate-login")


def external(node: BrokerNode, userinfo: str = "") -> str:
    """The node's amqps URL on the liaison vhost asking for certificate login."""
    return f"amqps://{userinfo}localhost:{node.ports.amqps}/liaison?auth=external"


def context_of(ca: Ca, account: str | None) -> ssl.SSLContext:
    """A client context trusting the dev CA, presenting ``account``'s certificate if given."""
    if account is None:
        return tls_context(ca_file=ca.ca)
    return tls_context(ca_file=ca.ca, cert_file=ca.cert(account), key_file=ca.key(account))


async def publish_as(
    connection: aio_pika.abc.AbstractConnection, user_id: str, routing_key: str
) -> None:
    """Publish one confirmed message to the ingress claiming ``user_id``."""
    channel = await connection.channel(publisher_confirms=True)
    exchange = await channel.get_exchange(INGRESS_EXCHANGE, ensure=False)
    await exchange.publish(
        aio_pika.Message(b"{}", user_id=user_id, type="sitrep"), routing_key=routing_key, timeout=10
    )


async def test_certificate_logs_in_as_its_subject(
    provisioned: ProvisionSettings, node: BrokerNode, dev_ca: Ca
) -> None:
    """mag's certificate publishes as mag; a publish claiming user_id unmas closes the channel."""
    connection = await aio_pika.connect(
        external(node), ssl_context=context_of(dev_ca, "mag"), timeout=10
    )
    async with connection:
        await publish_as(connection, "mag", "mag")
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="user_id"):
            await publish_as(connection, "unmas", "mag")


async def test_url_user_and_password_do_not_choose_the_account(
    provisioned: ProvisionSettings, node: BrokerNode, dev_ca: Ca, credentials: Path
) -> None:
    """unmas's certificate with mag's name and password in the URL is still unmas, never mag."""
    mag_password = CredentialStore(credentials).get("mag")
    assert mag_password is not None
    connection = await aio_pika.connect(
        external(node, f"mag:{mag_password}@"), ssl_context=context_of(dev_ca, "unmas"), timeout=10
    )
    async with connection:
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="user_id"):
            await publish_as(connection, "mag", "unmas")
    plain = f"amqps://mag:{mag_password}@localhost:{node.ports.amqps}/liaison"
    with pytest.raises(ConnectFailed):
        await Client.connect("mag", plain, ssl_context=context_of(dev_ca, "unmas"))


async def test_certificate_from_another_ca_is_refused(
    provisioned: ProvisionSettings, node: BrokerNode, dev_ca: Ca, stranger_ca: Ca
) -> None:
    """A certificate with CN=mag from a CA the broker does not trust logs in nowhere."""
    forged = tls_context(
        ca_file=dev_ca.ca, cert_file=stranger_ca.cert("mag"), key_file=stranger_ca.key("mag")
    )
    with pytest.raises(ConnectFailed):
        await Client.connect("mag", external(node), ssl_context=forged)


async def test_no_certificate_is_told_which_parameter(
    provisioned: ProvisionSettings, node: BrokerNode, dev_ca: Ca
) -> None:
    """Without a client certificate the SDK's error names cert_file (with or without a context)."""
    with pytest.raises(ConnectFailed, match="cert_file"):
        await Client.connect("mag", external(node), ssl_context=tls_context(ca_file=dev_ca.ca))
    with pytest.raises(ConnectFailed, match="needs ssl_context with the client certificate"):
        Client.connect("mag", external(node))


async def test_hub_sdk_and_cli_with_certificate_login(
    provisioned: ProvisionSettings,
    node: BrokerNode,
    dev_ca: Ca,
    credentials: Path,
    hubs: list[HubProcess],
    tmp_path: Path,
) -> None:
    """The hub, an SDK partner and a CLI partner, each by certificate, route a message through."""
    hub = HubProcess(
        {
            "LIAISON_AMQP_URL": external(node),
            # The management API takes a password, not the certificate: the hub reads its
            # inboxes' length limits (transaction delivery) with its provisioned one.
            "LIAISON_MANAGEMENT_URL": node.management_url,
            "LIAISON_CREDENTIALS_DIR": str(credentials),
            "LIAISON_TLS_CA_FILE": str(dev_ca.ca),
            "LIAISON_TLS_CERT_FILE": str(dev_ca.cert(HUB)),
            "LIAISON_TLS_KEY_FILE": str(dev_ca.key(HUB)),
        },
        tmp_path / "hub.log",
        free_port(),
    )
    hubs.append(hub)
    await hub.wait_ready()
    async with Client.connect(
        "mag", external(node), ssl_context=context_of(dev_ca, "mag"), **demo_signing("mag")
    ) as mag:
        await mag.send(example("hazard.eo_spot_report").body, recipients=["org:unmas"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    env.update(LIAISON_DIRECTORY=str(provisioned.directory), LIAISON_TLS_CA_FILE=str(dev_ca.ca))
    sent = await liaison(
        "send", "--as", "mag", *signing("mag"), "--url", external(node),
        "--type", "hazard.eo_spot_report",
        "--body-json", SPOT, "--to", "org:unmas",
        "--cert-file", str(dev_ca.cert("mag")), "--key-file", str(dev_ca.key("mag")), env=env,
    )  # fmt: skip
    tail = await liaison(
        "tail", "--as", "unmas", "--url", external(node), "--count", "2", "--wait", "20",
        "--cert-file", str(dev_ca.cert("unmas")), "--key-file", str(dev_ca.key("unmas")),
        "--ack", env=env,
    )  # fmt: skip
    assert sent.code == 0, sent
    assert tail.code == 0, tail
    assert tail.stdout.count("mag → hazard.eo_spot_report") == 2, tail.stdout


async def test_hub_without_its_certificate_stops_naming_the_setting(
    provisioned: ProvisionSettings,
    node: BrokerNode,
    dev_ca: Ca,
    hubs: list[HubProcess],
    tmp_path: Path,
) -> None:
    """Certificate login without a client certificate: exit 1 naming LIAISON_TLS_CERT_FILE."""
    hub = HubProcess(
        {"LIAISON_AMQP_URL": external(node), "LIAISON_TLS_CA_FILE": str(dev_ca.ca)},
        tmp_path / "hub.log",
        free_port(),
    )
    hubs.append(hub)
    assert await hub.wait_exit() == 1
    assert "liaison hub: LIAISON_TLS_CERT_FILE is required" in hub.output


async def test_operator_reads_dead_letters_by_certificate(
    provisioned: ProvisionSettings, node: BrokerNode, dev_ca: Ca
) -> None:
    """`liaison deadletters list` connects with the operator's certificate and --ca-file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    env.update(LIAISON_DIRECTORY=str(provisioned.directory))
    listed = await liaison(
        "dead-letters", "list", "--url", external(node), "--ca-file", str(dev_ca.ca),
        "--cert-file", str(dev_ca.cert(OPERATOR)), "--key-file", str(dev_ca.key(OPERATOR)),
        env=env,
    )  # fmt: skip
    assert listed.code == 0, listed
    refused = await liaison(
        "dead-letters", "list", "--url", external(node), "--ca-file", str(dev_ca.ca), env=env
    )
    assert refused.code == 1, refused
    assert "needs --cert-file (LIAISON_TLS_CERT_FILE)" in refused.stderr


def listening_on(port: int) -> set[str]:
    """The local addresses a socket listens on ``port`` at (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                # /proc prints each 32-bit word in host (little-endian) order.
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                found.add(str(ipaddress.ip_address(words)))
    return found


def test_shipped_http_listeners_stay_on_loopback(node: BrokerNode) -> None:
    """The shipped file's management-over-TLS and Prometheus listen on 127.0.0.1 only."""
    # Not the management API's own listener list: it reports "::" for the https listener.
    assert listening_on(node.ports.management) == {"127.0.0.1"}
    assert listening_on(node.ports.prometheus) == {"127.0.0.1"}
    assert listening_on(node.ports.amqp) == {"127.0.0.1"}


async def test_the_plugin_is_enabled_on_this_node_only(node: BrokerNode, dev_ca: Ca) -> None:
    """rabbitmq_auth_mechanism_ssl runs here; the shared node's plugin list is as it was."""
    shared_file = Path("/etc/rabbitmq/enabled_plugins")
    assert "rabbitmq_auth_mechanism_ssl" in node.plugins
    assert "rabbitmq_auth_mechanism_ssl" in (node.directory / "enabled_plugins").read_text()
    assert not shared_file.exists() or "auth_mechanism_ssl" not in shared_file.read_text()
    auth = {"Authorization": aiohttp.encode_basic_auth("guest", "guest")}
    running: list[str] = []
    https = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=str(dev_ca.ca)))
    async with aiohttp.ClientSession(headers=auth, connector=https) as session:
        # A node's statistics, plugins included, appear a few seconds after it boots.
        for _ in range(60):
            async with session.get(f"{node.management_url}/api/nodes/{node.name}") as response:
                running = (await response.json()).get("enabled_plugins", [])
            if running:
                break
            await asyncio.sleep(0.5)
    assert "rabbitmq_auth_mechanism_ssl" in running
    async with (
        aiohttp.ClientSession(headers=auth) as session,
        session.get(f"{MANAGEMENT_URL}/api/overview") as response,
    ):
        shared = (await response.json())["node"]
    async with (
        aiohttp.ClientSession(headers=auth) as session,
        session.get(f"{MANAGEMENT_URL}/api/nodes/{shared}") as response,
    ):
        assert "rabbitmq_auth_mechanism_ssl" not in (await response.json())["enabled_plugins"]
