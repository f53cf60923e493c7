"""The topology has no queue that nobody reads: the ledger, not a copy queue, is the audit trail."""

import re

from liaison.common.topology import (
    DEFAULT_SHARDS,
    HUB_DELIVERY_LIMIT,
    INBOX_DEAD_LETTER_EXCHANGE,
    INBOX_DEAD_LETTER_QUEUE,
    LEDGER_QUEUE,
    REPLAY_EXCHANGE,
    RETIRED_QUEUES,
    build_topology,
    hub_queue,
)
from liaison.directory.definitions import desired_state
from liaison.directory.index import compile_directory
from liaison.directory.model import Directory, Kind, Organisation
from liaison.schemas.wire import (
    DEAD_LETTER_QUEUE,
    DELIVERY_EXCHANGE,
    flash_inbox_queue,
    inbox_queue,
)

STATE = desired_state(
    compile_directory(
        Directory(
            organisations=[
                Organisation(id=org, name=org.upper(), kind=Kind.NGO) for org in ("mag", "nrc")
            ]
        )
    ),
    "liaison",
)


def test_every_queue_has_an_account_that_reads_it() -> None:
    """Each declared queue is readable by some provisioned account, so none fills unread."""
    for queue in STATE.queues:
        readers = [
            account
            for account, permission in STATE.permissions.items()
            if re.fullmatch(permission.read, queue.name)
        ]
        assert readers, f"{queue.name} has no reader"


def test_no_catch_all_copy_of_deliveries_or_replays() -> None:
    """Nothing is bound with '#' to the delivery or replay exchange, and the retired audit queue
    is neither declared nor bound: a delivery goes to its recipients' inboxes only."""
    names = {q.name for q in STATE.queues}
    assert not names & set(RETIRED_QUEUES)
    for binding in STATE.bindings:
        assert binding.destination not in RETIRED_QUEUES
        if binding.source in (DELIVERY_EXCHANGE, REPLAY_EXCHANGE):
            assert "#" not in binding.routing_key, binding
            assert binding.destination.startswith("inbox."), binding


def test_classic_profile_makes_what_transactions_publish_to_classic() -> None:
    """With queue_type classic the inboxes, the ledger and the dead-letter queues are classic
    with the inboxes' length limit, reject-publish and dead-lettering, and without the
    quorum-only arguments; the hub's shard queues stay quorum with their delivery limit."""
    inboxes = {"mag": 500, "nrc": 700}
    quorum = {q.name: q for q in build_topology(inboxes).queues}
    classic = {q.name: q for q in build_topology(inboxes, queue_type="classic").queues}
    assert classic.keys() == quorum.keys()
    for name in [inbox_queue("mag"), flash_inbox_queue("nrc")]:
        args = classic[name].arguments
        assert args["x-queue-type"] == "classic"
        assert args["x-max-length"] == inboxes["nrc" if "nrc" in name else "mag"]
        assert args["x-overflow"] == "reject-publish"
        assert args["x-dead-letter-exchange"] == INBOX_DEAD_LETTER_EXCHANGE
        assert not {"x-delivery-limit", "x-queue-leader-locator", "x-dead-letter-strategy"} & set(
            args
        )
    for name in (LEDGER_QUEUE, DEAD_LETTER_QUEUE, INBOX_DEAD_LETTER_QUEUE):
        assert classic[name].arguments == {"x-queue-type": "classic"}
        assert quorum[name].arguments["x-queue-type"] == "quorum"
    for shard in range(DEFAULT_SHARDS):
        assert classic[hub_queue(shard)] == quorum[hub_queue(shard)]
        assert classic[hub_queue(shard)].arguments["x-delivery-limit"] == HUB_DELIVERY_LIMIT
