"""Fixtures for tests of the shared parts that need a running hub: the hub package's own."""

from tests.hub.conftest import (  # noqa: F401  (fixtures, used by name)
    admin,
    directory,
    directory_file,
    hub,
    hub_broker_url,
    hub_delivery,
    hub_key_file,
    partner_accounts,
    partners,
    topology,
)
