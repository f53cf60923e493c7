"""The hub's configuration, read once from ``LIAISON_*`` variables."""

import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec

from liaison.common.config import (
    env_float,
    env_int,
    env_str,
    redact_url,
    with_credentials,
)
from liaison.common.errors import ConfigError
from liaison.common.tls import TlsFiles
from liaison.common.topology import DEFAULT_SHARDS
from liaison.common.urls import AMQP_SCHEMES, parse_url
from liaison.directory.credentials import load_credential
from liaison.hub.admin import admin_token_from_env
from liaison.schemas.wire import MAX_MESSAGE_BYTES

DEFAULT_AMQP_URL = "amqp://liaison-hub@127.0.0.1:5672/liaison"
#: More nodes than any cluster Liaison runs on: a longer list is a mistake, not a cluster.
MAX_BROKER_URLS = 16


class HubSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the hub reads from its environment."""

    #: One broker URL, or a cluster's nodes comma-separated: the hub connects to one at a time
    #: and moves on to the next when it cannot reach it or loses it.
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
    #: LIAISON_TLS_CA_FILE / _CERT_FILE / _KEY_FILE: the CA to trust, the certificate to show.
    tls: TlsFiles = TlsFiles()

    def __repr__(self) -> str:
        # Settings get logged and printed in tracebacks: never with the secret in them.
        fields = {f: getattr(self, f) for f in self.__struct_fields__}
        fields["amqp_url"] = ",".join(redact_url(u) for u in self.amqp_urls)
        fields["admin_token"] = None if self.admin_token is None else "***"
        return "HubSettings(" + ", ".join(f"{k}={v!r}" for k, v in fields.items()) + ")"

    @property
    def amqp_urls(self) -> tuple[str, ...]:
        """The broker nodes to try, in order (one for a single broker)."""
        return tuple(part.strip() for part in self.amqp_url.split(",") if part.strip())

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "HubSettings":
        """Parse the environment; a bad value raises ConfigError naming the variable."""
        shard_count = env_int("LIAISON_SHARD_COUNT", DEFAULT_SHARDS, env, minimum=1)
        url = ",".join(
            _with_credential(part, env)
            for part in broker_urls(env_str("LIAISON_AMQP_URL", DEFAULT_AMQP_URL, env))
        )
        return cls(
            amqp_url=url,
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
            tls=tls_files(url, env),
        )

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for an amqps:// URL (built from the files each time, so a renewed
        certificate is picked up on reconnect); None for amqp://."""
        if urlsplit(self.amqp_url).scheme != "amqps":
            return None
        return self.tls.context()


def broker_urls(raw: str) -> tuple[str, ...]:
    """``LIAISON_AMQP_URL`` as its comma-separated nodes, each checked, all of one scheme.

    A comma inside a password must be written ``%2C`` (as any reserved character in a URL).
    """
    parts = [part.strip() for part in raw.split(",")]
    if any(not part for part in parts):
        raise ConfigError("LIAISON_AMQP_URL has an empty entry in its comma-separated list")
    if len(parts) > MAX_BROKER_URLS:
        raise ConfigError(
            f"LIAISON_AMQP_URL lists {len(parts)} URLs; at most {MAX_BROKER_URLS} broker nodes"
        )
    schemes = {parse_url("LIAISON_AMQP_URL", part, AMQP_SCHEMES).scheme for part in parts}
    if len(schemes) > 1:
        # One TLS setting serves every node: a list half amqp://, half amqps:// is a mistake.
        raise ConfigError("LIAISON_AMQP_URL mixes amqp:// and amqps:// URLs; use one scheme")
    return tuple(parts)


def tls_files(url: str, env: Mapping[str, str] | None) -> TlsFiles:
    """The TLS files, checked now: a bad one stops the hub before it tries to connect."""
    tls = TlsFiles.from_env(env)
    if urlsplit(url).scheme != "amqps":
        if tls.configured:
            raise ConfigError(
                "LIAISON_TLS_* files are set but LIAISON_AMQP_URL is amqp://: use amqps://"
            )
        return tls
    tls.context()
    return tls


def _with_credential(url: str, env: Mapping[str, str] | None) -> str:
    # A URL without a password takes the account's provisioned credential, so the secret
    # never has to sit in an environment variable or a process listing.
    # Certificate login (?auth=external) has no password: the certificate is the credential.
    parts = urlsplit(url)
    external = parse_qs(parts.query).get("auth", [""])[-1].lower() == "external"
    if parts.password is not None or not parts.username or external:
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
