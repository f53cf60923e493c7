"""What the relay declares on a site broker and which shovels it defines there (pure)."""

import pytest

from liaison.common.errors import DirectoryError
from liaison.directory.index import DirectoryIndex, load_directory
from liaison.relay.site import FLASH_QUEUE, OUTBOUND_QUEUE, ROUTINE_QUEUE, Link, plan_site
from tests.relay.conftest import write_directory

LINK = Link(host="127.0.0.1", port=5673, account="site-bria", password="p@ss", vhost="liaison")


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> DirectoryIndex:
    """The sample directory with the example sites."""
    return load_directory(write_directory(tmp_path_factory.mktemp("plan")))


def test_outbound_shovels_keep_the_key_and_speak_as_the_site(index: DirectoryIndex) -> None:
    """Both outbound shovels: on-confirm, routing key kept, user_id the site's account."""
    plan = plan_site(index, "bria", LINK, max_length=1000, flash_prefetch=5, routine_prefetch=300)
    flash, routine = plan.shovels["relay-out-flash"], plan.shovels["relay-out-routine"]
    assert (flash["src-queue"], flash["src-prefetch-count"]) == (FLASH_QUEUE, 5)
    assert (routine["src-queue"], routine["src-prefetch-count"]) == (ROUTINE_QUEUE, 300)
    for shovel in (flash, routine):
        assert shovel["ack-mode"] == "on-confirm"
        assert shovel["dest-exchange"] == "liaison.ingress"
        assert "dest-exchange-key" not in shovel
        assert shovel["dest-publish-properties"]["user_id"] == "site-bria"
        # The password is URL-quoted into the link's URI.
        assert shovel["dest-uri"].startswith("amqp://site-bria:p%40ss@127.0.0.1:5673/liaison?")
    for name in (OUTBOUND_QUEUE, FLASH_QUEUE, ROUTINE_QUEUE):
        (queue,) = [q for q in plan.queues if q.name == name]
        assert queue.arguments == {"x-max-length": 1000, "x-overflow": "reject-publish"}


def test_inbound_shovels_bring_each_site_inbox_down(index: DirectoryIndex) -> None:
    """One shovel per inbox of each organisation at the site, none for anyone else."""
    plan = plan_site(index, "bria", LINK, max_length=1000, flash_prefetch=5, routine_prefetch=9)
    inbound = {n: s for n, s in plan.shovels.items() if n.startswith("relay-in-")}
    assert sorted(s["src-queue"] for s in inbound.values()) == [
        "inbox.mag-bria",
        "inbox.mag-bria.flash",
        "inbox.unmas-bria",
        "inbox.unmas-bria.flash",
    ]
    for shovel in inbound.values():
        assert shovel["dest-queue"] == shovel["src-queue"]
        assert shovel["dest-uri"] == "amqp:///liaison"
        assert shovel["src-prefetch-count"] == (5 if shovel["src-queue"].endswith("flash") else 9)


def test_an_unknown_site_is_named(index: DirectoryIndex) -> None:
    """A relay started for a site the directory lacks says which."""
    with pytest.raises(DirectoryError, match="'kaga-bandoro'"):
        plan_site(
            index, "kaga-bandoro", LINK, max_length=1000, flash_prefetch=1, routine_prefetch=1
        )
