"""The hub's configuration, read once from ``LIAISON_*`` variables."""

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

import msgspec

from liaison.common.config import (
    amqp_url,
    env_float,
    env_int,
    env_str,
    redact_url,
    with_credentials,
)
from liaison.common.errors import ConfigError
from liaison.common.topology import DEFAULT_SHARDS
from liaison.directory.credentials import load_credential
from liaison.hub.admin import admin_token_from_env
from liaison.schemas.wire import MAX_MESSAGE_BYTES

DEFAULT_AMQP_URL = "amqp://liaison-hub@127.0.0.1:5672/liaison"


class HubSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the hub reads from its environment."""

    amqp_url: str = DEFAULT_AMQP_URL
    directory: Path = Path("deploy/directory.toml")
    shard_count: int = DEFAULT_SHARDS
    #: Shards this process consumes; several processes split the shards between them.
    shards: tuple[int, ...] = tuple(range(DEFAULT_SHARDS))
    prefetch: int = 256
    dedupe_window_seconds: float = 3600.0
    dedupe_max_entries: int = 200_000
    max_message_bytes: int = MAX_MESSAGE_BYTES
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    log_level: str = "info"
    shutdown_grace_seconds: float = 15.0
    reconnect_max_seconds: float = 10.0
    confirm_timeout_seconds: float = 30.0
    #: Bearer token for /admin/*; without one, only loopback callers may administer.
    admin_token: str | None = None
    #: Redis holding what the hub delivered, shared by all hub processes; None: in-process only.
    redis_url: str | None = None
    redis_prefix: str = "liaison:memory:"
    #: Seconds between checks that every inbox queue exists (a missing one is reported).
    inbox_check_seconds: float = 10.0

    def __repr__(self) -> str:
        # Settings get logged and printed in tracebacks: never with the secret in them.
        fields = {f: getattr(self, f) for f in self.__struct_fields__}
        fields["amqp_url"] = redact_url(self.amqp_url)
        fields["admin_token"] = None if self.admin_token is None else "***"
        fields["redis_url"] = None if self.redis_url is None else redact_url(self.redis_url)
        return "HubSettings(" + ", ".join(f"{k}={v!r}" for k, v in fields.items()) + ")"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "HubSettings":
        """Parse the environment; a bad value raises ConfigError naming the variable."""
        shard_count = env_int("LIAISON_SHARD_COUNT", DEFAULT_SHARDS, env, minimum=1)
        return cls(
            amqp_url=_with_credential(amqp_url("LIAISON_AMQP_URL", DEFAULT_AMQP_URL, env), env),
            directory=Path(env_str("LIAISON_DIRECTORY", "deploy/directory.toml", env)),
            shard_count=shard_count,
            shards=parse_shards(env_str("LIAISON_HUB_SHARDS", "all", env), shard_count),
            prefetch=env_int("LIAISON_PREFETCH", 256, env, minimum=1),
            dedupe_window_seconds=env_float("LIAISON_DEDUPE_WINDOW_SECONDS", 3600.0, env),
            dedupe_max_entries=env_int("LIAISON_DEDUPE_MAX_ENTRIES", 200_000, env, minimum=1),
            max_message_bytes=env_int(
                "LIAISON_MAX_MESSAGE_BYTES", MAX_MESSAGE_BYTES, env, minimum=1024
            ),
            http_host=env_str("LIAISON_HTTP_HOST", "127.0.0.1", env),
            http_port=env_int("LIAISON_HTTP_PORT", 8080, env),
            log_level=env_str("LIAISON_LOG_LEVEL", "info", env),
            shutdown_grace_seconds=env_float("LIAISON_SHUTDOWN_GRACE_SECONDS", 15.0, env),
            admin_token=admin_token_from_env(os.environ if env is None else env),
            redis_url=redis_url("LIAISON_REDIS_URL", env),
            redis_prefix=env_str("LIAISON_REDIS_PREFIX", "liaison:memory:", env),
            inbox_check_seconds=env_float("LIAISON_INBOX_CHECK_SECONDS", 10.0, env, minimum=0.1),
        )


def redis_url(name: str, env: Mapping[str, str] | None) -> str | None:
    """A redis://, rediss:// or unix:// URL, or None when unset; errors never show the password."""
    url = (os.environ if env is None else env).get(name, "").strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
        raise ConfigError(
            f"{name} must be a redis://, rediss:// or unix:// URL, got {redact_url(url)!r}"
        )
    return url


def _with_credential(url: str, env: Mapping[str, str] | None) -> str:
    # A URL without a password takes the account's provisioned credential, so the secret
    # never has to sit in an environment variable or a process listing.
    parts = urlsplit(url)
    if parts.password is not None or not parts.username:
        return url
    account = unquote(parts.username)
    return with_credentials(url, account, load_credential(account, env))


def parse_shards(raw: str, shard_count: int) -> tuple[int, ...]:
    """``all`` or a comma list such as ``0,2``; each shard below ``shard_count``."""
    if raw.strip() == "all":
        return tuple(range(shard_count))
    try:
        shards = tuple(sorted({int(part) for part in raw.split(",") if part.strip()}))
    except ValueError:
        raise ConfigError(
            f"LIAISON_HUB_SHARDS must be 'all' or a list like 0,2; got {raw!r}"
        ) from None
    if not shards or any(s < 0 or s >= shard_count for s in shards):
        raise ConfigError(f"LIAISON_HUB_SHARDS must name shards 0..{shard_count - 1}; got {raw!r}")
    return shards
