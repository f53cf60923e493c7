"""The hub's settings: parsed once from the environment, failing fast with the variable name."""

import pytest

from liaison.common.errors import ConfigError
from liaison.hub.settings import HubSettings, parse_shards

HUB_PASSWORD = {"LIAISON_PASSWORD_LIAISON_HUB": "x"}


def test_defaults_take_the_provisioned_credential() -> None:
    """A URL without a password gets the hub account's credential from the environment."""
    settings = HubSettings.from_env({"LIAISON_PASSWORD_LIAISON_HUB": "p@ss/word"})
    assert settings.amqp_url == "amqp://liaison-hub:p%40ss%2Fword@127.0.0.1:5672/liaison"
    assert settings.shards == (0, 1, 2, 3)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({**HUB_PASSWORD, "LIAISON_PREFETCH": "lots"}, "LIAISON_PREFETCH"),
        ({**HUB_PASSWORD, "LIAISON_PREFETCH": "0"}, "LIAISON_PREFETCH"),
        ({"LIAISON_AMQP_URL": "http://x"}, "LIAISON_AMQP_URL"),
        ({**HUB_PASSWORD, "LIAISON_HUB_SHARDS": "0,9"}, "LIAISON_HUB_SHARDS"),
        ({**HUB_PASSWORD, "LIAISON_HUB_SHARDS": "one"}, "LIAISON_HUB_SHARDS"),
        ({"LIAISON_CREDENTIALS_DIR": "/nonexistent"}, "LIAISON_PASSWORD_LIAISON_HUB"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    """Each malformed setting is a ConfigError that names what to fix."""
    with pytest.raises(ConfigError, match=variable):
        HubSettings.from_env(
            {"LIAISON_PASSWORD_LIAISON_HUB": "x", **env} if "CREDENTIALS" not in str(env) else env
        )


def test_password_never_appears_in_config_errors() -> None:
    """A malformed URL's error message does not repeat its password."""
    with pytest.raises(ConfigError) as error:
        HubSettings.from_env({"LIAISON_AMQP_URL": "http://user:hunter2@host/"})
    assert "hunter2" not in str(error.value)


def test_shards_list() -> None:
    """Shard lists are deduplicated and sorted."""
    assert parse_shards("3, 1,1", 4) == (1, 3)


def test_a_cluster_is_a_comma_separated_list_each_taking_the_credential() -> None:
    """Every node of a comma-separated LIAISON_AMQP_URL gets the account's credential, in order."""
    settings = HubSettings.from_env(
        {
            **HUB_PASSWORD,
            "LIAISON_AMQP_URL": "amqp://liaison-hub@a:5672/liaison, amqp://liaison-hub@b:5673/liaison",
        }
    )
    assert settings.amqp_urls == (
        "amqp://liaison-hub:x@a:5672/liaison",
        "amqp://liaison-hub:x@b:5673/liaison",
    )
    assert "x@" not in repr(settings)


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("amqp://u:secret@a/v,", "empty entry"),
        ("amqp://u:secret@a/v,,amqp://u:secret@b/v", "empty entry"),
        ("amqp://u:secret@a/v,amqps://u:secret@b/v", "mixes"),
        ("amqp://u:secret@a/v,http://u:secret@b/v", "must be an amqp"),
        ("amqp://u:secret@a/v,amqp://", "must be an amqp"),
        (",".join(["amqp://u:secret@a/v"] * 17), "at most 16"),
    ],
)
def test_a_malformed_node_list_is_refused_without_its_passwords(url: str, complaint: str) -> None:
    """An empty, mixed-scheme, non-AMQP or oversized node list names the variable, not a secret."""
    with pytest.raises(ConfigError) as caught:
        HubSettings.from_env({"LIAISON_AMQP_URL": url})
    assert "LIAISON_AMQP_URL" in str(caught.value)
    assert complaint in str(caught.value)
    assert "secret" not in str(caught.value)


def test_transaction_delivery_is_refused_with_several_nodes() -> None:
    """LIAISON_DELIVERY=transaction with a node list is a ConfigError (copies were lost when a
    node died); with one node it is accepted."""
    nodes = "amqp://u:secret@a:5672/liaison,amqp://u:secret@b:5673/liaison"
    with pytest.raises(ConfigError, match="LIAISON_DELIVERY=transaction") as caught:
        HubSettings.from_env({"LIAISON_AMQP_URL": nodes, "LIAISON_DELIVERY": "transaction"})
    assert "secret" not in str(caught.value)
    one = HubSettings.from_env(
        {"LIAISON_AMQP_URL": "amqp://u:secret@a/liaison", "LIAISON_DELIVERY": "transaction"}
    )
    assert one.delivery == "transaction"
    confirm = HubSettings.from_env({"LIAISON_AMQP_URL": nodes, "LIAISON_DELIVERY": "confirm"})
    assert confirm.delivery == "confirm"


def test_delivery_defaults_to_confirm() -> None:
    """Without LIAISON_DELIVERY the hub uses confirm delivery, on one node as on several
    (transaction mode can lose copies when the hub is killed during a commit)."""
    for url in ("amqp://u:secret@a/liaison", "amqp://u:secret@a/liaison,amqp://u:secret@b/l"):
        assert HubSettings.from_env({"LIAISON_AMQP_URL": url}).delivery == "confirm"
