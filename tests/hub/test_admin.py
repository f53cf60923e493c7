"""Who may call the hub's admin endpoints, and where the admin token comes from."""

from pathlib import Path

import pytest

from liaison.common.errors import ConfigError
from liaison.hub.admin import AdminRefusal, admin_token_from_env, check_admin_access
from liaison.hub.settings import HubSettings

TOKEN = "0123456789abcdef-token"


@pytest.mark.parametrize("remote", ["127.0.0.1", "127.8.9.10", "::1"])
def test_loopback_may_administer_without_a_token(remote: str) -> None:
    """No token configured: a caller on the hub's own machine is let through."""
    check_admin_access(remote, None, None)


@pytest.mark.parametrize("remote", ["10.0.0.7", "192.168.1.2", "2001:db8::1", "", None, "junk"])
def test_other_hosts_are_refused_without_a_token(remote: str | None) -> None:
    """No token configured: any other (or unknown) address gets 403 saying what to set."""
    with pytest.raises(AdminRefusal) as refused:
        check_admin_access(remote, f"Bearer {TOKEN}", None)
    assert refused.value.status == 403
    assert "LIAISON_ADMIN_TOKEN" in refused.value.reason


@pytest.mark.parametrize(
    "header",
    [None, "", TOKEN, f"Basic {TOKEN}", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer"],
)
def test_a_token_is_required_from_everyone_once_set(header: str | None) -> None:
    """With a token, even loopback callers need exactly 'Bearer <token>': else 401."""
    with pytest.raises(AdminRefusal) as refused:
        check_admin_access("127.0.0.1", header, TOKEN)
    assert refused.value.status == 401


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"Bearer  {TOKEN} "])
def test_the_right_token_is_accepted_from_anywhere(header: str) -> None:
    """The scheme is case-insensitive and surrounding blanks do not matter."""
    check_admin_access("10.0.0.7", header, TOKEN)


def test_token_from_environment_or_file(tmp_path: Path) -> None:
    """LIAISON_ADMIN_TOKEN_FILE (first line) wins over LIAISON_ADMIN_TOKEN; unset means None."""
    assert admin_token_from_env({}) is None
    assert admin_token_from_env({"LIAISON_ADMIN_TOKEN": TOKEN}) == TOKEN
    secret = tmp_path / "admin-token"
    secret.write_text(TOKEN + "-file\n")
    env = {"LIAISON_ADMIN_TOKEN": TOKEN, "LIAISON_ADMIN_TOKEN_FILE": str(secret)}
    assert admin_token_from_env(env) == TOKEN + "-file"


def test_short_or_unreadable_tokens_are_configuration_errors(tmp_path: Path) -> None:
    """A guessable token or a missing token file stops the hub at start, naming the problem."""
    with pytest.raises(ConfigError, match="16 characters"):
        admin_token_from_env({"LIAISON_ADMIN_TOKEN": "short"})
    with pytest.raises(ConfigError, match="LIAISON_ADMIN_TOKEN_FILE"):
        admin_token_from_env({"LIAISON_ADMIN_TOKEN_FILE": str(tmp_path / "absent")})


def test_settings_never_show_the_secrets() -> None:
    """repr() of the settings (logs, tracebacks) hides the admin token and the AMQP password."""
    settings = HubSettings.from_env(
        {
            "LIAISON_AMQP_URL": "amqp://hub:hunter2-password@broker:5672/liaison",
            "LIAISON_ADMIN_TOKEN": TOKEN,
        }
    )
    assert settings.admin_token == TOKEN
    shown = repr(settings)
    assert TOKEN not in shown
    assert "hunter2-password" not in shown
    assert "admin_token='***'" in shown
