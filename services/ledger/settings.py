"""The ledger's configuration, read once from ``LIAISON_*`` variables."""

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import msgspec

from liaison.common.config import amqp_url, env_float, env_int, env_str, redact_url
from liaison.common.errors import ConfigError
from liaison.hub.admin import admin_token_from_env

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/liaison"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/liaison"


class LedgerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the ledger reads from its environment."""

    database_url: str = DEFAULT_DATABASE_URL
    amqp_url: str = DEFAULT_AMQP_URL
    #: Account that replays dead letters (needs the 'impersonator' tag); default: amqp_url.
    replay_amqp_url: str | None = None
    #: The directory, to name the address each recipient was resolved from (optional).
    directory: Path | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 8090
    #: Bearer token for the API and console; without one, only loopback callers are served.
    token: str | None = None
    #: Management API, for inbox backlogs in the partner view.
    management_url: str = "http://127.0.0.1:15672"
    management_user: str = "guest"
    management_password: str = "guest"  # noqa: S105 - RabbitMQ's local default account
    vhost: str = "liaison"
    prefetch: int = 2000
    batch_size: int = 500
    batch_wait_seconds: float = 0.02
    #: Keep message bodies (the default); off stores metadata and lifecycle only.
    keep_body: bool = True
    #: Whole months of partitions kept by ``liaison ledger retention``.
    retention_months: int = 24
    #: The hub's HTTP base (its /readyz shows in the console), if known.
    hub_url: str | None = None
    #: An inbox whose oldest unread copy is older than this is flagged stale.
    stale_seconds: float = 900.0
    reconnect_max_seconds: float = 5.0
    log_level: str = "info"

    def __repr__(self) -> str:
        # Settings get logged: never with a secret in them.
        fields = {f: getattr(self, f) for f in self.__struct_fields__}
        fields["database_url"] = redact_url(self.database_url)
        fields["amqp_url"] = redact_url(self.amqp_url)
        fields["replay_amqp_url"] = self.replay_amqp_url and redact_url(self.replay_amqp_url)
        fields["token"] = None if self.token is None else "***"
        fields["management_password"] = "***"  # noqa: S105 - the mask, not a password
        return "LedgerSettings(" + ", ".join(f"{k}={v!r}" for k, v in fields.items()) + ")"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "LedgerSettings":
        """Parse the environment; a bad value raises ConfigError naming the variable."""
        source = os.environ if env is None else env
        database_url = env_str("LIAISON_DATABASE_URL", DEFAULT_DATABASE_URL, env)
        if urlsplit(database_url).scheme not in ("postgresql", "postgres"):
            raise ConfigError(
                "LIAISON_DATABASE_URL must be a postgresql:// URL, "
                f"got {redact_url(database_url)!r}"
            )
        directory = source.get("LIAISON_DIRECTORY")
        keep = env_str("LIAISON_LEDGER_KEEP_BODY", "true", env).lower()
        if keep not in ("true", "false", "1", "0", "yes", "no"):
            raise ConfigError(f"LIAISON_LEDGER_KEEP_BODY must be true or false, got {keep!r}")
        token_env = dict(source)
        # The ledger's own token when set, else the hub's admin token: one operator secret.
        if source.get("LIAISON_LEDGER_TOKEN") or source.get("LIAISON_LEDGER_TOKEN_FILE"):
            token_env["LIAISON_ADMIN_TOKEN"] = source.get("LIAISON_LEDGER_TOKEN", "")
            token_env["LIAISON_ADMIN_TOKEN_FILE"] = source.get("LIAISON_LEDGER_TOKEN_FILE", "")
        return cls(
            database_url=database_url,
            amqp_url=amqp_url("LIAISON_LEDGER_AMQP_URL", DEFAULT_AMQP_URL, env),
            replay_amqp_url=(
                amqp_url("LIAISON_LEDGER_REPLAY_URL", DEFAULT_AMQP_URL, env)
                if source.get("LIAISON_LEDGER_REPLAY_URL")
                else None
            ),
            directory=Path(directory) if directory else None,
            http_host=env_str("LIAISON_LEDGER_HOST", "127.0.0.1", env),
            http_port=env_int("LIAISON_LEDGER_PORT", 8090, env),
            token=admin_token_from_env(token_env),
            management_url=env_str("LIAISON_MANAGEMENT_URL", "http://127.0.0.1:15672", env),
            management_user=env_str("LIAISON_ADMIN_USER", "guest", env),
            management_password=env_str("LIAISON_ADMIN_PASSWORD", "guest", env),
            vhost=env_str("LIAISON_VHOST", "liaison", env),
            batch_size=env_int("LIAISON_LEDGER_BATCH", 500, env, minimum=1),
            keep_body=keep in ("true", "1", "yes"),
            retention_months=env_int("LIAISON_LEDGER_RETENTION_MONTHS", 24, env, minimum=1),
            hub_url=source.get("LIAISON_HUB_URL") or None,
            stale_seconds=env_float("LIAISON_LEDGER_STALE_SECONDS", 900.0, env, minimum=1),
            log_level=env_str("LIAISON_LOG_LEVEL", "info", env),
        )
