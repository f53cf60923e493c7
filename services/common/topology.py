"""The broker objects Liaison needs, as data.

One description, applied two ways: ``liaison provision`` through the management HTTP API, and
test fixtures over AMQP. The names partners depend on come from ``liaison.schemas.wire``.

    partner --(routing key = own org, user_id = own account)--> liaison.ingress (topic)
      --'#'--> liaison.ingress.shards (x-consistent-hash on the routing key, internal)
      --> liaison.hub.<n> (quorum, single active consumer): one sender always lands in one
          shard, so its order is kept whichever hub process owns the shard
    hub --(one publish, BCC = other recipients)--> liaison.delivery (topic)
      --> inbox.<org> / inbox.<org>.flash (quorum; classic with LIAISON_QUEUE_TYPE=classic)
    refusals and poison --> liaison.dead (fanout) --> liaison.dead-letters
    operator replays of inbox dead letters --> liaison.replay (topic)
      --'inbox.<org>[.flash]'--> that inbox
    hub decision records --> liaison.ledger (fanout) --> liaison.ledger (quorum), which is also
      bound to liaison.dead: the ledger sees every decision and every dead letter, and is the
      audit trail (it replaced the liaison.audit queue: see RETIRED_QUEUES)
    inbox dead letters (expired, rejected, over the limit) --> liaison.inbox-dead (fanout)
      --> liaison.inbox-dead-letters, read by the hub: it tells the sender of an expired copy,
          then keeps the dead letter in liaison.dead-letters for operators
"""

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from liaison.schemas.wire import (
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE,
    DELIVERY_EXCHANGE,
    INGRESS_EXCHANGE,
    delivery_key,
    flash_inbox_queue,
    inbox_queue,
)

SHARD_EXCHANGE: Final = "liaison.ingress.shards"
#: Where an operator puts an inbox dead letter back into the inbox it died in. Separate from the
#: delivery exchange, so only the hub delivers and the operator can reach nothing but inboxes.
REPLAY_EXCHANGE: Final = "liaison.replay"
HUB_QUEUE_PREFIX: Final = "liaison.hub."
DEFAULT_SHARDS: Final = 4
#: Deliveries of one message to the hub before the broker dead-letters it as poison.
HUB_DELIVERY_LIMIT: Final = 5
INBOX_DELIVERY_LIMIT: Final = 20
HUB_QUEUE_MAX_LENGTH: Final = 1_000_000
#: The hub's decision records (batched) go here; the ledger reads them with the dead letters.
LEDGER_EXCHANGE: Final = "liaison.ledger"
LEDGER_QUEUE: Final = "liaison.ledger"
#: Where inbox queues dead-letter, so the hub can read why (x-death) before operators keep it.
INBOX_DEAD_LETTER_EXCHANGE: Final = "liaison.inbox-dead"
INBOX_DEAD_LETTER_QUEUE: Final = "liaison.inbox-dead-letters"
#: Where the broker puts a new quorum queue's leader: on the node with the fewest leaders, not
#: on the node provisioning happens to talk to (``client-local``, the default, which leaves every
#: leader, and so all the queue work, on one node of a cluster). Placement happens once, when the
#: queue is declared: provisioning does not count a queue without it as changed (see
#: PLACEMENT_ARGUMENTS). The installed 3.10.8 also takes the older name ``least-leaders``.
LEADER_LOCATOR: Final = "balanced"
#: Arguments that only place a queue when it is declared: a declared queue differing only in
#: these is the queue the directory wants (``rabbitmq-queues rebalance quorum`` moves leaders).
PLACEMENT_ARGUMENTS: Final = frozenset({"x-queue-leader-locator"})
#: A quorum queue with nothing else: no length limit, no dead-lettering.
QUORUM: Final = {"x-queue-type": "quorum", "x-queue-leader-locator": LEADER_LOCATOR}
#: The type of the queues the hub's publishes reach (inboxes, ledger, dead letters). ``classic``
#: is for transaction delivery on one node: RabbitMQ 3.10 can drop a killed transaction's
#: committed publishes to a quorum queue (docs/operations.md, "Repeats after a crash"). The
#: hub's shard queues stay quorum whatever this says: poison handling needs their delivery limit.
QueueType = Literal["quorum", "classic"]
#: Queues older versions declared and this one no longer wants. ``liaison.audit`` took a copy of
#: every delivery and replay ('#'), and nothing read it: full, it stopped deliveries. The ledger
#: is the audit trail now; provisioning unbinds these queues and deletes them once empty.
RETIRED_QUEUES: Final = ("liaison.audit",)


@dataclass(frozen=True, slots=True)
class ExchangeSpec:
    """An exchange to declare."""

    name: str
    type: str
    internal: bool = False
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A durable quorum queue to declare; ``owner`` is the organisation that reads it."""

    name: str
    arguments: dict[str, Any]
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class BindingSpec:
    """A binding from ``source`` exchange to a queue or exchange ``destination``."""

    source: str
    destination: str
    routing_key: str
    destination_type: str = "queue"


@dataclass(frozen=True, slots=True)
class Topology:
    """Everything to declare, in dependency order."""

    exchanges: tuple[ExchangeSpec, ...]
    queues: tuple[QueueSpec, ...]
    bindings: tuple[BindingSpec, ...]


def hub_queue(shard: int) -> str:
    """Name of the hub's ingress shard queue ``shard``."""
    return f"{HUB_QUEUE_PREFIX}{shard}"


def _classic(*, max_length: int | None) -> dict[str, Any]:
    # A classic queue has no delivery limit, no leader to place, and dead-letters at most once
    # (x-dead-letter-strategy is quorum-only).
    args: dict[str, Any] = {
        "x-queue-type": "classic",
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-overflow": "reject-publish",
    }
    if max_length is not None:
        args["x-max-length"] = max_length
    return args


def _quorum(
    *, max_length: int | None, delivery_limit: int | None, overflow: str = "reject-publish"
) -> dict[str, Any]:
    args: dict[str, Any] = {
        **QUORUM,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": overflow,
    }
    if overflow != "reject-publish":
        # at-least-once dead-lettering is only allowed with reject-publish.
        args["x-dead-letter-strategy"] = "at-most-once"
    if max_length is not None:
        args["x-max-length"] = max_length
    if delivery_limit is not None:
        args["x-delivery-limit"] = delivery_limit
    return args


def build_topology(
    inboxes: dict[str, int], *, shards: int = DEFAULT_SHARDS, queue_type: QueueType = "quorum"
) -> Topology:
    """The topology for organisations ``inboxes`` (org id -> inbox max length); the inboxes,
    the ledger queue and the dead-letter queues are of ``queue_type``."""
    plain = {"x-queue-type": "classic"} if queue_type == "classic" else QUORUM
    exchanges = (
        ExchangeSpec(INGRESS_EXCHANGE, "topic"),
        ExchangeSpec(SHARD_EXCHANGE, "x-consistent-hash", internal=True),
        ExchangeSpec(DELIVERY_EXCHANGE, "topic"),
        ExchangeSpec(DEAD_LETTER_EXCHANGE, "fanout"),
        ExchangeSpec(REPLAY_EXCHANGE, "topic"),
        ExchangeSpec(LEDGER_EXCHANGE, "fanout"),
        ExchangeSpec(INBOX_DEAD_LETTER_EXCHANGE, "fanout"),
    )
    queues: list[QueueSpec] = [
        QueueSpec(DEAD_LETTER_QUEUE, dict(plain)),
        QueueSpec(INBOX_DEAD_LETTER_QUEUE, dict(plain)),
        # The audit trail: no length limit and no dead-letter exchange (a rejected record must
        # not loop back through liaison.dead into this queue).
        QueueSpec(LEDGER_QUEUE, dict(plain)),
    ]
    bindings: list[BindingSpec] = [
        BindingSpec(INGRESS_EXCHANGE, SHARD_EXCHANGE, "#", destination_type="exchange"),
        BindingSpec(DEAD_LETTER_EXCHANGE, DEAD_LETTER_QUEUE, ""),
        BindingSpec(INBOX_DEAD_LETTER_EXCHANGE, INBOX_DEAD_LETTER_QUEUE, ""),
        BindingSpec(LEDGER_EXCHANGE, LEDGER_QUEUE, ""),
        BindingSpec(DEAD_LETTER_EXCHANGE, LEDGER_QUEUE, ""),
    ]
    for shard in range(shards):
        args = _quorum(max_length=HUB_QUEUE_MAX_LENGTH, delivery_limit=HUB_DELIVERY_LIMIT)
        args["x-single-active-consumer"] = True
        queues.append(QueueSpec(hub_queue(shard), args))
        # The consistent-hash exchange reads the binding key as the shard's weight.
        bindings.append(BindingSpec(SHARD_EXCHANGE, hub_queue(shard), "1"))
    for org, max_length in sorted(inboxes.items()):
        for flash in (False, True):
            name = flash_inbox_queue(org) if flash else inbox_queue(org)
            if queue_type == "classic":
                args = _classic(max_length=max_length)
            else:
                args = _quorum(max_length=max_length, delivery_limit=INBOX_DELIVERY_LIMIT)
            args["x-dead-letter-exchange"] = INBOX_DEAD_LETTER_EXCHANGE
            queues.append(QueueSpec(name, args, owner=org))
            bindings.append(BindingSpec(DELIVERY_EXCHANGE, name, delivery_key(org, flash=flash)))
            # Replays are addressed by queue name: the inbox the dead letter came from.
            bindings.append(BindingSpec(REPLAY_EXCHANGE, name, name))
    return Topology(tuple(exchanges), tuple(queues), tuple(bindings))
