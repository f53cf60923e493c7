"""``admin`` and ``partners`` that follow the ``hub`` fixture onto its vhost.

A module whose tests run the hub in both delivery modes imports these two fixtures: they then
stand for the conftest's ``admin`` and ``partners`` in that module, and point at the classic
vhost (``classic_for``) when the hub runs in transaction mode there.
"""

import aio_pika
import pytest

from tests.hub.conftest import classic_for
from tests.hub.support import Partner


@pytest.fixture(name="admin")
def admin_following_hub(
    admin: aio_pika.abc.AbstractConnection, hub_delivery: str, request: pytest.FixtureRequest
) -> aio_pika.abc.AbstractConnection:
    """The admin connection of the vhost the ``hub`` fixture runs on (classic_for)."""
    classic = classic_for(request, hub_delivery)
    return admin if classic is None else classic.admin


@pytest.fixture(name="partners")
def partners_following_hub(
    partners: dict[str, Partner], hub_delivery: str, request: pytest.FixtureRequest
) -> dict[str, Partner]:
    """The partners' connections to the vhost the ``hub`` fixture runs on (classic_for)."""
    classic = classic_for(request, hub_delivery)
    return partners if classic is None else classic.partners
