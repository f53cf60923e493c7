"""The one topology applier: a :class:`~liaison.common.topology.Topology` onto a vhost.

``desired_state`` (provisioning's diff), the bench and the tests all turn the same description
into broker objects here, and declare them through the one management client. Every call is
idempotent (a PUT of an equal exchange or queue, a POST of an existing binding, change
nothing), so applying twice is harmless; provisioning goes through its plan instead, which
also reports what differs.
"""

from dataclasses import dataclass

from liaison.common.topology import Topology
from liaison.directory.management import Binding, Exchange, ManagementClient, Queue


@dataclass(frozen=True, slots=True)
class BrokerObjects:
    """A topology as the management API's objects."""

    exchanges: tuple[Exchange, ...]
    queues: tuple[Queue, ...]
    bindings: tuple[Binding, ...]


def broker_objects(topology: Topology) -> BrokerObjects:
    """The exchanges, queues and bindings of ``topology``, as the broker reports them."""
    return BrokerObjects(
        exchanges=tuple(
            Exchange(name=e.name, type=e.type, internal=e.internal, arguments=dict(e.arguments))
            for e in topology.exchanges
        ),
        queues=tuple(Queue(name=q.name, arguments=dict(q.arguments)) for q in topology.queues),
        bindings=tuple(
            Binding(
                source=b.source,
                destination=b.destination,
                destination_type=b.destination_type,
                routing_key=b.routing_key,
            )
            for b in topology.bindings
        ),
    )


async def apply_topology(api: ManagementClient, vhost: str, topology: Topology) -> None:
    """Declare every exchange, queue and binding of ``topology`` on ``vhost``, in order."""
    objects = broker_objects(topology)
    for exchange in objects.exchanges:
        await api.put_exchange(vhost, exchange)
    for queue in objects.queues:
        await api.put_queue(vhost, queue)
    for binding in objects.bindings:
        await api.post_binding(vhost, binding)
