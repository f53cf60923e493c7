"""One settings pattern for every service: read from LIAISON_*, validated, secrets hidden,
every variable in the table of docs/operations.md."""

import re
import subprocess
from pathlib import Path

import pytest

from liaison.common.errors import ConfigError
from liaison.common.settings import Secret, Settings
from liaison.directory.settings import OperatorSettings, ProvisionSettings
from liaison.hub.settings import HubSettings
from liaison.ledger.settings import LedgerSettings
from liaison.relay.settings import RelaySettings

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ROOT / "docs" / "operations.md"
#: Where services read LIAISON_* variables (the SDK documents its own in partners.md).
SERVICES = [
    ROOT / "services" / name
    for name in ("common", "directory", "cli", "demo", "hub", "ledger", "relay")
]
HUB_PASSWORD = {"LIAISON_PASSWORD_LIAISON_HUB": "x"}

#: A valid value for every variable of every settings class, each different from the default.
SAMPLES: dict[type[Settings], dict[str, str]] = {
    ProvisionSettings: {
        "LIAISON_VHOST": "elsewhere",
        "LIAISON_MANAGEMENT_URL": "https://broker.example.org:15671",
        "LIAISON_ADMIN_USER": "root",
        "LIAISON_ADMIN_PASSWORD": "s3cret-admin",
        "LIAISON_AMQP_URL": "amqps://broker.example.org:5671/",
        "LIAISON_CREDENTIALS_DIR": "/srv/liaison/credentials",
        "LIAISON_DIRECTORY": "/etc/liaison/directory.toml",
        "LIAISON_SHARD_COUNT": "8",
        "LIAISON_QUEUE_TYPE": "classic",
        "LIAISON_HUB_SIGNING_KEY": "/etc/liaison/hub-signing.key",
    },
    OperatorSettings: {
        "LIAISON_OPERATOR_URL": "amqp://op:pw@127.0.0.1:5672/liaison",
        "LIAISON_REPLAY_LOG": "/var/log/liaison/replays.jsonl",
        "LIAISON_LOG_LEVEL": "debug",
        "LIAISON_HTTP_PORT": "9090",
        "LIAISON_DEMO_KEYS": "/srv/demo-keys",
    },
    HubSettings: {
        "LIAISON_AMQP_URL": "amqps://hub:pw@broker:5671/liaison",
        "LIAISON_DIRECTORY": "/etc/liaison/directory.toml",
        "LIAISON_SHARD_COUNT": "8",
        "LIAISON_HUB_SHARDS": "1,5",
        "LIAISON_PREFETCH": "64",
        "LIAISON_DEDUPE_WINDOW_SECONDS": "60",
        "LIAISON_DEDUPE_MAX_ENTRIES": "10",
        "LIAISON_MAX_MESSAGE_BYTES": "2048",
        "LIAISON_HTTP_HOST": "0.0.0.0",  # noqa: S104  (a value under test, not a bind)
        "LIAISON_HTTP_PORT": "9090",
        "LIAISON_LOG_LEVEL": "debug",
        "LIAISON_SHUTDOWN_GRACE_SECONDS": "3",
        "LIAISON_RECONNECT_MAX_SECONDS": "2",
        "LIAISON_CONFIRM_TIMEOUT_SECONDS": "5",
        "LIAISON_NACK_RETRY_SECONDS": "7",
        "LIAISON_DELIVERY": "transaction",
        "LIAISON_ADMIN_TOKEN": "0123456789abcdef-token",
        "LIAISON_REDIS_URL": "redis://:pw@redis.example.org:6379/2",
        "LIAISON_REDIS_PREFIX": "mission-a:memory:",
        "LIAISON_INBOX_CHECK_SECONDS": "30",
        "LIAISON_INBOX_HEADROOM": "500",
        "LIAISON_INBOX_WATCH_SECONDS": "0.25",
        "LIAISON_INBOX_LIMITS_SECONDS": "2.5",
        "LIAISON_MANAGEMENT_URL": "https://broker.example.org:15671",
        "LIAISON_HUB_SIGNING_KEY": "/etc/liaison/hub-signing.key",
    },
    LedgerSettings: {
        "LIAISON_DATABASE_URL": "postgresql://ledger@db.example.org/audit",
        "LIAISON_LEDGER_AMQP_URL": "amqps://ledger:pw@broker:5671/liaison",
        "LIAISON_LEDGER_REPLAY_URL": "amqps://ops:pw@broker:5671/liaison",
        "LIAISON_DIRECTORY": "/etc/liaison/directory.toml",
        "LIAISON_LEDGER_HOST": "0.0.0.0",  # noqa: S104  (a value under test, not a bind)
        "LIAISON_LEDGER_PORT": "9191",
        "LIAISON_LEDGER_TOKEN": "0123456789abcdef-ledger",
        "LIAISON_MANAGEMENT_URL": "https://broker.example.org:15671",
        "LIAISON_ADMIN_USER": "root",
        "LIAISON_ADMIN_PASSWORD": "s3cret-admin",
        "LIAISON_VHOST": "elsewhere",
        "LIAISON_LEDGER_PREFETCH": "100",
        "LIAISON_LEDGER_BATCH": "50",
        "LIAISON_LEDGER_BATCH_WAIT_SECONDS": "0.5",
        "LIAISON_LEDGER_BATCH_BYTES": "65536",
        "LIAISON_LEDGER_KEEP_BODY": "false",
        "LIAISON_LEDGER_RETENTION_MONTHS": "6",
        "LIAISON_HUB_URL": "http://127.0.0.1:8080",
        "LIAISON_LEDGER_STALE_SECONDS": "60",
        "LIAISON_LEDGER_RECONNECT_MAX_SECONDS": "2",
        "LIAISON_LEDGER_HEAD_SECONDS": "300",
        "LIAISON_LOG_LEVEL": "debug",
        "LIAISON_HUB_SIGNING_KEY": "/etc/liaison/hub-signing.key",
    },
    RelaySettings: {
        "LIAISON_SITE": "bria",
        "LIAISON_DIRECTORY": "/etc/liaison/directory.toml",
        "LIAISON_VHOST": "elsewhere",
        "LIAISON_CREDENTIALS_DIR": "/srv/liaison/credentials",
        "LIAISON_SITE_MANAGEMENT_URL": "http://10.0.0.2:15672",
        "LIAISON_SITE_ADMIN_USER": "root",
        "LIAISON_SITE_ADMIN_PASSWORD": "s3cret-site",
        "LIAISON_SITE_AMQP_URL": "amqp://root:pw@10.0.0.2:5672/liaison",
        "LIAISON_RELAY_LISTEN": "127.0.0.1:6673",
        "LIAISON_RELAY_LINK": "hq.example.org:5681",
        "LIAISON_RELAY_BROKER": "10.1.0.5:5672",
        "LIAISON_RELAY_ZSTD_LEVEL": "3",
        "LIAISON_RELAY_QUEUE_MAX_LENGTH": "5000",
        "LIAISON_RELAY_FLASH_PREFETCH": "5",
        "LIAISON_RELAY_ROUTINE_PREFETCH": "800",
        "LIAISON_RELAY_HEARTBEAT_SECONDS": "30",
        "LIAISON_RELAY_HTTP_HOST": "0.0.0.0",  # noqa: S104  (a value under test, not a bind)
        "LIAISON_RELAY_HTTP_PORT": "9999",
        "LIAISON_LOG_LEVEL": "debug",
    },
}


def documented_variables() -> set[str]:
    """The variables named in the first column of the table under '## Settings'."""
    text = OPERATIONS.read_text()
    section = text.split("## Settings", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`(LIAISON_[A-Z_<>]+)`", line.split("|")[1]))
    return names


def test_every_settings_field_is_in_the_table() -> None:
    """Each field of each settings class has its variable in the table in docs/operations.md."""
    documented = documented_variables()
    for cls in SAMPLES:
        missing = set(cls.variables().values()) - documented
        assert not missing, f"{cls.__name__}: {sorted(missing)} not in docs/operations.md"


def test_every_variable_the_services_read_is_in_the_table() -> None:
    """No LIAISON_* variable is read anywhere in the services without a row in the table."""
    documented = documented_variables()
    prefixes = {name.split("<")[0] for name in documented if "<" in name}
    read = {
        name
        for folder in SERVICES
        for path in folder.rglob("*.py")
        for name in re.findall(r"LIAISON_[A-Z_]+", path.read_text())
    }
    missing = {n for n in read if n not in documented and n not in prefixes}
    assert not missing, f"read but not documented: {sorted(missing)}"


#: Settings classes that read the LIAISON_TLS_* files (their samples are made per run).
TLS_READERS = (ProvisionSettings, HubSettings)


@pytest.fixture(scope="module")
def tls_samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CA and a client certificate with its key, real files (settings check them at once)."""
    folder = tmp_path_factory.mktemp("tls")
    ca_key, ca, key, cert = (folder / n for n in ("ca.key", "ca.pem", "client.key", "client.pem"))
    subj = ["-subj", "/CN=settings-test"]
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2", *subj],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key, "-out", cert, "-days", "2", *subj],
        check=True, capture_output=True,
    )  # fmt: skip
    return {
        "LIAISON_TLS_CA_FILE": str(ca),
        "LIAISON_TLS_CERT_FILE": str(cert),
        "LIAISON_TLS_KEY_FILE": str(key),
    }


@pytest.mark.parametrize("cls", list(SAMPLES))
def test_every_setting_is_reachable_from_the_environment(
    cls: type[Settings], tls_samples: dict[str, str]
) -> None:
    """Setting each variable changes its field: no setting is only reachable in code."""
    samples = {**SAMPLES[cls], **(tls_samples if cls in TLS_READERS else {})}
    assert set(samples) == set(cls.variables().values()), "a field has no sample here"
    default = cls.from_env(HUB_PASSWORD)
    configured = cls.from_env({**HUB_PASSWORD, **samples})
    for field, variable in cls.variables().items():
        assert getattr(configured, field) != getattr(default, field), variable


@pytest.mark.parametrize(
    ("cls", "variable", "value"),
    [
        (ProvisionSettings, "LIAISON_SHARD_COUNT", "0"),
        (ProvisionSettings, "LIAISON_SHARD_COUNT", "eight"),
        (ProvisionSettings, "LIAISON_VHOST", "x" * 300),
        (ProvisionSettings, "LIAISON_QUEUE_TYPE", "stream"),
        (ProvisionSettings, "LIAISON_MANAGEMENT_URL", "http://admin:hunter2@broker:15672"),
        (OperatorSettings, "LIAISON_LOG_LEVEL", "chatty"),
        (OperatorSettings, "LIAISON_HTTP_PORT", "70000"),
        (OperatorSettings, "LIAISON_OPERATOR_URL", "http://op:hunter2@x/"),
        (HubSettings, "LIAISON_CONFIRM_TIMEOUT_SECONDS", "0"),
        (HubSettings, "LIAISON_RECONNECT_MAX_SECONDS", "-1"),
        (HubSettings, "LIAISON_ADMIN_TOKEN", "hunter2"),
    ],
)
def test_bad_values_name_the_variable_and_not_the_value(
    cls: type[Settings], variable: str, value: str
) -> None:
    """A malformed or out-of-range value fails fast naming the variable, never echoing it."""
    with pytest.raises(ConfigError) as caught:
        cls.from_env({**HUB_PASSWORD, variable: value})
    assert variable in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_settings_built_in_code_are_validated_too() -> None:
    """The same constraints apply to a settings object built directly, not only from_env."""
    with pytest.raises(ConfigError, match="LIAISON_SHARD_COUNT"):
        ProvisionSettings(shard_count=0)
    with pytest.raises(ConfigError, match="LIAISON_PREFETCH"):
        HubSettings(prefetch=0)
    with pytest.raises(ConfigError, match="LIAISON_HUB_SHARDS"):
        HubSettings(shard_count=2, shards=(0, 3))
    assert HubSettings(shard_count=8).shards == tuple(range(8))


@pytest.mark.parametrize(
    ("raw", "expected"), [("all", (0, 1, 2)), (" all ", (0, 1, 2)), ("2,0", (0, 2))]
)
def test_hub_shards_from_the_environment(raw: str, expected: tuple[int, ...]) -> None:
    """LIAISON_HUB_SHARDS as an operator writes it: 'all' or a list, with the shard count."""
    env = {**HUB_PASSWORD, "LIAISON_SHARD_COUNT": "3", "LIAISON_HUB_SHARDS": raw}
    assert HubSettings.from_env(env).shards == expected


def test_secrets_are_hidden_one_way() -> None:
    """Secret fields, secret strings and URL passwords all print as *** in a settings repr."""
    provision = ProvisionSettings(admin_password=Secret("hunter2-admin"))
    hub = HubSettings(
        amqp_url="amqp://hub:hunter2-url@broker/liaison", admin_token="hunter2-admin-token-x"
    )
    operator = OperatorSettings(operator_url="amqp://op:hunter2-op@broker/liaison")
    for shown in (repr(provision), repr(hub), repr(operator), str(hub)):
        assert "hunter2" not in shown
    assert provision.admin_password.reveal() == "hunter2-admin"
