"""Provisioning onto an extra node of this run (liaison.nodes), as an operator runs it.

The node is private to the run, so Liaison's own vhost and the sample directory's account names
are used as they are, and the harness's guest user is the admin.
"""

from pathlib import Path

from liaison.directory.index import load_directory
from liaison.directory.provision import provision
from liaison.directory.settings import ProvisionSettings, load_settings
from liaison.nodes.node import BrokerNode

SAMPLE = Path(__file__).resolve().parents[1] / "deploy" / "directory.toml"
VHOST = "liaison"


def provisioning_env(
    node: BrokerNode, credentials: Path, *, directory: Path = SAMPLE, amqp_url: str | None = None
) -> dict[str, str]:
    """Provisioning's environment for ``node``: its management API, Liaison's vhost, the
    passwords kept in ``credentials``; ``amqp_url`` if not the node's plain AMQP port."""
    return {
        "LIAISON_VHOST": VHOST,
        "LIAISON_MANAGEMENT_URL": node.management_url,
        "LIAISON_ADMIN_USER": "guest",
        "LIAISON_ADMIN_PASSWORD": "guest",
        "LIAISON_AMQP_URL": amqp_url or node.amqp_url(vhost=VHOST),
        "LIAISON_CREDENTIALS_DIR": str(credentials),
        "LIAISON_DIRECTORY": str(directory),
    }


async def provision_node(env: dict[str, str]) -> ProvisionSettings:
    """``liaison provision`` with ``env``'s settings and directory; it must meet no conflict."""
    settings = load_settings(env)
    result = await provision(settings, load_directory(settings.directory))
    assert not result.plan.conflicts
    return settings
