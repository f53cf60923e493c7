"""Fixtures for the contract tests."""

import pytest
from contract_helpers import TYPE_NAMES


@pytest.fixture(params=TYPE_NAMES)
def type_name(request: pytest.FixtureRequest) -> str:
    """Each wire type name in turn."""
    name: str = request.param
    return name
