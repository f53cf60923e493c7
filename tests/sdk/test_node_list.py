"""A cluster's node URLs in the SDK: parsed as a list or a comma string; a dead node is passed."""

import pytest

from liaison.sdk import Client, InvalidArgument
from liaison.sdk.connection import NodeListConnection, node_urls
from tests.conftest import amqp_url_for
from tests.hub.support import PASSWORD
from tests.hub_process import free_port


def test_nodes_come_as_a_list_or_a_comma_string() -> None:
    """Both spellings give the same nodes, in order, spaces trimmed."""
    urls = ["amqps://hq1.example.org/liaison", "amqps://hq2.example.org/liaison"]
    assert node_urls(urls) == urls
    assert node_urls(" , ".join(urls)) == urls
    assert node_urls(urls[0]) == urls[:1]


@pytest.mark.parametrize(
    "bad",
    [
        "",
        [],
        "amqps://hq1.example.org/liaison,,amqps://hq2.example.org/liaison",
        "amqp://hq1.example.org/liaison,amqps://hq2.example.org/liaison",
        "http://hq1.example.org/liaison",
    ],
)
def test_a_bad_node_list_says_what_to_write(bad: str | list[str]) -> None:
    """Empty entries, mixed schemes and non-AMQP URLs are refused before connecting."""
    with pytest.raises(InvalidArgument):
        node_urls(bad)


@pytest.mark.broker
async def test_a_node_that_does_not_answer_is_passed_over(
    vhost: str, partner_accounts: dict[str, str]
) -> None:
    """With a dead node first in the list, the client connects to the next one."""
    live = amqp_url_for(vhost)
    where = live.split("@")[-1]
    dead = live.replace(where, where.replace(where.split("/")[0], f"127.0.0.1:{free_port()}"))
    client = await Client.connect(
        "mag", [dead, live], account=partner_accounts["mag"], password=PASSWORD
    )
    try:
        connection = client._session.connection
        assert isinstance(connection, NodeListConnection)
        assert connection.connected.is_set()
        assert connection.node.endswith(where)
    finally:
        await client.close()
