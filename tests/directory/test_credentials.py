"""Password hashing the broker's way, and the credential store (no broker needed)."""

import base64
import hashlib
import stat
from pathlib import Path

import pytest

from liaison.common.errors import ConfigError
from liaison.common.settings import Secret
from liaison.directory.credentials import (
    CredentialStore,
    environment_variable,
    generate_password,
    hash_matches,
    load_credential,
    password_hash,
)
from liaison.directory.settings import load_settings

#: What RabbitMQ 3.10 itself stored for the password "guest" (GET /api/users/guest).
BROKER_HASH_OF_GUEST = "mtmHR3sZAvkxA5bVTSJn0IR2eoMeqBT79GHZ9VRpDybjAVDl"


def test_hash_matches_a_hash_made_by_rabbitmq() -> None:
    """A hash produced by the broker itself verifies with the same password, not another."""
    assert hash_matches("guest", BROKER_HASH_OF_GUEST)
    assert not hash_matches("guesT", BROKER_HASH_OF_GUEST)


def test_hash_is_salt_then_sha256_of_salt_and_password() -> None:
    """The layout is base64(4-byte salt + SHA-256(salt + UTF-8 password))."""
    salt = bytes([0xDE, 0xAD, 0xBE, 0xEF])
    expected = base64.b64encode(salt + hashlib.sha256(salt + "pässword".encode()).digest())
    assert password_hash("pässword", salt) == expected.decode()
    assert hash_matches("pässword", password_hash("pässword"))


def test_generated_passwords_are_long_and_fresh() -> None:
    """Generated passwords carry 256 bits and never repeat."""
    passwords = {generate_password() for _ in range(50)}
    assert len(passwords) == 50
    assert all(len(p) >= 43 for p in passwords)


def test_store_writes_private_files(tmp_path: Path) -> None:
    """A stored credential is a 0600 file in a 0700 directory, read back as written."""
    store = CredentialStore(tmp_path / "credentials", env={})
    path = store.put("unmas", "s3cret")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert store.get("unmas") == "s3cret"
    assert store.get("wfp") is None


def test_environment_wins_and_cannot_be_rotated(tmp_path: Path) -> None:
    """LIAISON_PASSWORD_<ACCOUNT> overrides the file, and put() refuses to shadow it."""
    env = {"LIAISON_PASSWORD_GOV_CAR": "from-env"}
    store = CredentialStore(tmp_path, env=env)
    assert environment_variable("gov-car") == "LIAISON_PASSWORD_GOV_CAR"
    assert store.get("gov-car") == "from-env"
    with pytest.raises(ConfigError, match="LIAISON_PASSWORD_GOV_CAR"):
        store.put("gov-car", "other")


def test_load_credential_names_both_places_when_missing(tmp_path: Path) -> None:
    """load_credential of an unknown account names the variable and the file to use."""
    env = {"LIAISON_CREDENTIALS_DIR": str(tmp_path)}
    with pytest.raises(ConfigError, match=r"LIAISON_PASSWORD_LIAISON_HUB.*liaison-hub\.password"):
        load_credential("liaison-hub", env)
    CredentialStore(tmp_path, env={}).put("liaison-hub", "hub-secret")
    assert load_credential("liaison-hub", env) == "hub-secret"


def test_account_names_cannot_escape_the_directory(tmp_path: Path) -> None:
    """An account name with a path separator is refused, not turned into a path."""
    with pytest.raises(ConfigError):
        CredentialStore(tmp_path, env={}).path("../etc/passwd")


def test_settings_never_show_the_admin_password() -> None:
    """The admin password is wrapped: repr and str of the settings do not contain it."""
    settings = load_settings({"LIAISON_ADMIN_PASSWORD": "hunter2-admin"})
    assert "hunter2-admin" not in repr(settings)
    assert str(Secret("x")) == "Secret('***')"
    assert settings.admin_password.reveal() == "hunter2-admin"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LIAISON_MANAGEMENT_URL", "ftp://broker"),
        ("LIAISON_MANAGEMENT_URL", "http://admin:pw@broker:15672"),
        ("LIAISON_AMQP_URL", "http://broker"),
    ],
)
def test_bad_settings_name_their_variable(variable: str, value: str) -> None:
    """A malformed setting fails fast with the variable's name (and no password)."""
    with pytest.raises(ConfigError, match=variable) as error:
        load_settings({variable: value})
    assert "pw@" not in str(error.value)


def test_amqps_urls_are_accepted() -> None:
    """A TLS broker URL (amqps://, port 5671) is a valid LIAISON_AMQP_URL."""
    settings = load_settings({"LIAISON_AMQP_URL": "amqps://broker.example.org:5671/"})
    assert settings.amqp_url.startswith("amqps://")
