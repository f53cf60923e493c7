"""The topology has no queue that nobody reads: the ledger, not a copy queue, is the audit trail."""

import re

from liaison.common.topology import REPLAY_EXCHANGE, RETIRED_QUEUES
from liaison.directory.definitions import desired_state
from liaison.directory.index import compile_directory
from liaison.directory.model import Directory, Kind, Organisation
from liaison.schemas.wire import DELIVERY_EXCHANGE

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
