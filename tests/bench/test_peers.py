"""The peers' routing: the same inboxes the hub delivers each bench message to."""

from pathlib import Path

from bench.peers import route
from bench.workload import build_messages, write_directory
from liaison.common.topology import build_topology


def test_route_flash_and_bcc() -> None:
    """The first recipient is the routing key, the rest go in BCC; flash picks flash keys."""
    assert route(["org:A"], "routine") == ("A", {})
    assert route(["org:A", "org:B", "org:C"], "flash") == (
        "A.flash",
        {"BCC": ["B.flash", "C.flash"]},
    )


def test_route_reaches_the_inboxes_the_hub_delivers_to(tmp_path: Path) -> None:
    """For every bench message, the peers' keys bind to exactly the hub's inboxes for it."""
    index = write_directory("t", tmp_path / "directory.toml")
    topology = build_topology(dict.fromkeys(index.organisations, 10))
    queue_of_key = {
        b.routing_key: b.destination
        for b in topology.bindings
        if b.destination.startswith("inbox.")
    }
    for message in build_messages(index, 200, seed=3, prefix="t"):
        key, headers = route(message.envelope.recipients, message.envelope.precedence)
        keys = [key, *headers.get("BCC", [])]
        assert sorted(queue_of_key[k] for k in keys) == sorted(message.inboxes)
